//! The forms a secret's value takes in text besides itself: base64 (standard and URL-safe
//! alphabets, at each of the three alignments the value can have inside a longer
//! encoding, such as `Authorization: Basic base64(user:token)`), percent-encoded, and
//! JSON-escaped.

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD},
};

use super::MIN_SECRET_LEN;

/// `value` and its encodings, each long enough to match on its own.
pub(super) fn of(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_owned()];
    for offset in 0..3 {
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            forms.extend(base64_core(engine, value, offset));
        }
    }
    let percent = percent_encoded(value);
    if percent != value {
        forms.push(percent);
    }
    if let Ok(quoted) = serde_json::to_string(value)
        && let Some(escaped) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'))
        && escaped != value
    {
        forms.push(escaped.to_owned());
    }
    forms.retain(|form| form.len() >= MIN_SECRET_LEN);
    forms.dedup();
    forms
}

/// The characters of the base64 of `value` that do not depend on what stands around it,
/// when `offset` bytes (0, 1 or 2) come before it in the encoded data: every encoding that
/// holds the value at that alignment holds these characters.
fn base64_core(
    engine: &base64::engine::GeneralPurpose,
    value: &str,
    offset: usize,
) -> Option<String> {
    let mut data = vec![0_u8; offset];
    data.extend_from_slice(value.as_bytes());
    let encoded = engine.encode(&data);
    // A character covers 6 bits: the first one made only of the value's bits, and the
    // last one made only of them.
    let skip = (offset * 8).div_ceil(6);
    let end = data.len() * 8 / 6;
    encoded.get(skip..end).map(str::to_owned)
}

/// `value` with every byte outside the URL-safe set as `%XX`, as a URL or a form body
/// carries it.
fn percent_encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_found_in_base64_at_any_alignment() {
        let secret = "s3cret-token-value";
        let forms = of(secret);
        for prefix in ["", "x", "xy", "user:", "x-access-token:"] {
            let text = format!("{prefix}{secret}");
            for encoded in [STANDARD_NO_PAD.encode(&text), URL_SAFE_NO_PAD.encode(&text)] {
                assert!(
                    forms.iter().any(|form| encoded.contains(form.as_str())),
                    "{prefix:?}: {encoded} holds none of {forms:?}"
                );
            }
        }
    }

    #[test]
    fn percent_and_json_forms_are_added_only_where_they_differ() {
        let forms = of("p@ss \"word\"/42");
        assert!(
            forms.contains(&String::from("p%40ss%20%22word%22%2F42")),
            "{forms:?}"
        );
        assert!(
            forms.contains(&String::from(r#"p@ss \"word\"/42"#)),
            "{forms:?}"
        );
        assert!(
            !of("plain-token-123").iter().any(|f| f.contains('%')),
            "no percent form for a value that needs none"
        );
    }
}
