//! Redaction: the one layer every outgoing string passes through.
//!
//! The host scrubs every event before a front maps it (so every frame and every AG-UI
//! event), the WebSocket front every status body it writes, and (through
//! [`RedactingWriter`], which the binaries install) every log line. Adapters only emit
//! events, so they cannot bypass it. Two things are scrubbed:
//!
//! - the secret values the runner holds (the bot token, API keys, git tokens, and those it
//!   learns later: a minted token, a rotated one), wherever they appear, exactly, and in
//!   their common encodings (base64 at any alignment, percent-encoded, JSON-escaped);
//! - known token shapes (GitHub, GitLab, Anthropic, Langfuse, AWS and Slack tokens, JWTs,
//!   bearer headers, credentials in URLs, `NAME=value` for secret variable names), so that
//!   a token the runner never held (one a tool printed) is caught too.
//!
//! Streamed text needs more: a secret printed by a model arrives as deltas of a few
//! characters. [`Redactor::stream`] holds back the tail of each stream that could be the
//! start of a secret and releases it, scrubbed, once the next delta (or the stream's end)
//! shows what it was ([`stream`]).

use std::{
    borrow::Cow,
    fmt, io,
    sync::{Arc, PoisonError, RwLock},
};

use ambient_protocol::{Event, ResultPayload, Secret, status::StatusUpdate};
use regex::{Captures, Regex, RegexBuilder};
use serde_json::Value;

/// What a secret becomes.
pub const REDACTED: &str = "***REDACTED***";

mod forms;
pub mod stream;

/// A secret's value as matched, when it is long enough to match by value.
fn usable(secret: &Secret) -> Option<String> {
    let value = secret.expose().trim();
    (value.len() >= MIN_SECRET_LEN).then(|| value.to_owned())
}

/// Secrets shorter than this are not matched by value: a two-letter "secret" would
/// redact half of every text.
const MIN_SECRET_LEN: usize = 6;

/// Known token shapes. Groups named `keep` are kept around the redaction.
const PATTERNS: &[&str] = &[
    r"gh[a-z]_[A-Za-z0-9]{16,}",
    r"github_pat_[A-Za-z0-9_]{22,}",
    r"glpat-[A-Za-z0-9_\-]{20,}",
    r"sk-ant-[A-Za-z0-9_\-]{8,}",
    r"[ps]k-lf-[A-Za-z0-9_\-]{8,}",
    r"(?P<keep1>(?:://)?x-access-token:)[^@\s]+@",
    r"(?P<keep2>(?:://)?oauth2:)[^@\s]+@",
    r"(?P<keep3>://)[^/\s:@]+:[^@\s/]+@",
    r"(?P<keep4>(?:ANTHROPIC_API_KEY|LANGFUSE_SECRET_KEY|LANGFUSE_PUBLIC_KEY|LANGGRAPH_API_KEY|BOT_TOKEN|GIT_TOKEN|GITHUB_TOKEN|GITLAB_TOKEN)=)\S+",
    r"(?P<keep5>[Bb]earer\s+)[A-Za-z0-9\-._~+/]{8,}=*",
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",
    r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    r"xox[abposre]-[A-Za-z0-9\-]{10,}",
];

/// Scrubs secrets from text. Cheap to clone; clones share what they know, so a secret
/// one of them learns ([`Redactor::learn`]) is scrubbed by all from then on.
#[derive(Clone)]
pub struct Redactor {
    known: Arc<RwLock<Known>>,
}

/// The secret values known, the forms they are matched in, and the matcher built from
/// those and the token shapes.
struct Known {
    values: Vec<String>,
    forms: Arc<[String]>,
    matcher: Arc<Regex>,
    /// Whether the matcher matches every value (else only the token shapes).
    complete: bool,
}

/// Secret values the redactor holds at most: past it, one more is refused rather than let
/// the matcher grow without bound. A bot token rotated hourly fills it in six weeks; the
/// tests use a smaller bound, to reach it quickly.
pub const MAX_KNOWN_SECRETS: usize = if cfg!(test) { 64 } else { 1024 };

/// Why a secret could not be learned: it is then not scrubbed, and whoever brought it is
/// told so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unlearnable {
    /// The redactor already holds [`MAX_KNOWN_SECRETS`].
    #[error("the runner already holds {MAX_KNOWN_SECRETS} secrets and takes no more")]
    TooMany,
    /// The matcher with this one too would be over its size bound.
    #[error("the runner's secrets would be too large to match with this one too")]
    TooLarge,
}

impl Known {
    /// What is known of `values`, with every one of them matched, or nothing.
    fn all_of(values: Vec<String>) -> Option<Self> {
        let known = Self::new(values);
        known.complete.then_some(known)
    }

    fn new(values: Vec<String>) -> Self {
        let mut forms: Vec<String> = values.iter().flat_map(|v| forms::of(v)).collect();
        // Longest first, so that a secret containing another is replaced whole.
        forms.sort_by_key(|v| std::cmp::Reverse(v.len()));
        forms.dedup();
        let alternatives: Vec<String> = forms
            .iter()
            .map(|v| regex::escape(v))
            .chain(PATTERNS.iter().map(|p| (*p).to_owned()))
            .collect();
        // The secrets are escaped, so only the size limit can refuse them (thousands of
        // long secrets); the built-in patterns alone are then still enforced.
        // A small lazy-DFA cache: the redactor runs on every frame, and the default
        // cache alone would be a fifth of the runner's memory budget.
        let build = |pattern: &str| RegexBuilder::new(pattern).dfa_size_limit(256 << 10).build();
        let (matcher, complete) = match build(&alternatives.join("|")) {
            Ok(matcher) => (matcher, true),
            Err(_) => (
                build(&PATTERNS.join("|")).expect("the built-in patterns compile"),
                false,
            ),
        };
        Self {
            values,
            forms: forms.into(),
            matcher: Arc::new(matcher),
            complete,
        }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redactor")
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new([])
    }
}

impl Redactor {
    /// A redactor for the known token shapes and these secret values.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let values = secrets.into_iter().filter_map(usable).collect();
        Self {
            known: Arc::new(RwLock::new(Known::new(values))),
        }
    }

    /// Scrubs `secret` too, from now on, wherever a clone of this redactor is used: for a
    /// credential the runner learns after it started (a token it mints, one it reads
    /// again from a rotated file, one a caller brings). A secret that cannot be learned
    /// is refused, and every one known before is still scrubbed.
    pub fn learn(&self, secret: &Secret) -> Result<(), Unlearnable> {
        let Some(value) = usable(secret) else {
            return Ok(());
        };
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        if known.values.contains(&value) {
            // Known, but matched only if every known value is.
            return if known.complete {
                Ok(())
            } else {
                Err(Unlearnable::TooLarge)
            };
        }
        if known.values.len() >= MAX_KNOWN_SECRETS {
            return Err(Unlearnable::TooMany);
        }
        let mut values = known.values.clone();
        values.push(value);
        *known = Known::all_of(values).ok_or(Unlearnable::TooLarge)?;
        Ok(())
    }

    fn matcher(&self) -> Arc<Regex> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&known.matcher)
    }

    /// The forms of the known secrets, as matched.
    fn forms(&self) -> Arc<[String]> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&known.forms)
    }

    /// Whether `text` holds anything to scrub.
    pub fn finds(&self, text: &str) -> bool {
        self.matcher().is_match(text)
    }

    /// `text` with every secret replaced.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.matcher().replace_all(text, |caps: &Captures<'_>| {
            let kept = (1..=5)
                .find_map(|n| caps.name(&format!("keep{n}")))
                .map_or("", |m| m.as_str());
            let suffix = if caps.get(0).is_some_and(|m| m.as_str().ends_with('@')) {
                "@"
            } else {
                ""
            };
            format!("{kept}{REDACTED}{suffix}")
        })
    }

    fn string(&self, text: &mut String) {
        if let Cow::Owned(clean) = self.text(text) {
            *text = clean;
        }
    }

    /// Every string inside a JSON value, keys included.
    pub fn value(&self, value: &mut Value) {
        match value {
            Value::String(text) => self.string(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.value(item)),
            Value::Object(map) => {
                let dirty: Vec<String> = map.keys().filter(|k| self.finds(k)).cloned().collect();
                for key in dirty {
                    if let Some(item) = map.remove(&key) {
                        map.insert(self.text(&key).into_owned(), item);
                    }
                }
                map.values_mut().for_each(|item| self.value(item));
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// An event with every string in it scrubbed: the host passes every event through
    /// this before any front maps it to its protocol.
    pub fn event(&self, mut event: Event) -> Event {
        match &mut event {
            Event::Log(text)
            | Event::Text(text)
            | Event::Question(text)
            | Event::Thinking(text)
            | Event::TextDelta { data: text, .. } => {
                self.string(text);
            }
            Event::ToolApproval {
                tool_call_id,
                tool,
                input,
                question,
            } => {
                self.string(tool_call_id);
                self.string(tool);
                self.value(input);
                self.string(question);
            }
            Event::ToolUse { name, input, id } => {
                self.string(name);
                self.value(input);
                if let Some(id) = id {
                    self.string(id);
                }
            }
            Event::ToolResult {
                content,
                tool_use_id,
                ..
            } => {
                self.value(content);
                if let Some(id) = tool_use_id {
                    self.string(id);
                }
            }
            Event::State(state) => self.value(state),
            Event::Step { name, .. } => self.string(name),
            Event::Report { name, value } | Event::Notice { name, value } => {
                self.string(name);
                self.value(value);
            }
            Event::ModelCall(call) => {
                self.string(&mut call.system);
                if let Some(model) = &mut call.model {
                    self.string(model);
                }
            }
            Event::Subagent {
                parent_tool_use_id,
                event,
            } => {
                self.string(parent_tool_use_id);
                let inner = std::mem::replace(event.as_mut(), Event::TurnStarted);
                **event = self.event(inner);
            }
            Event::TurnEnded { result, .. } => self.result(result),
            Event::TurnStarted => {}
        }
        event
    }

    fn result(&self, result: &mut ResultPayload) {
        for text in [
            &mut result.result,
            &mut result.subtype,
            &mut result.session_id,
        ]
        .into_iter()
        .flatten()
        {
            self.string(text);
        }
        if let Some(usage) = &mut result.usage {
            self.value(usage);
        }
    }

    /// A status body with every string in it scrubbed.
    pub fn status(&self, update: &mut StatusUpdate) {
        for text in [
            &mut update.message,
            &mut update.subtype,
            &mut update.session_id,
            &mut update.result,
        ]
        .into_iter()
        .flatten()
        {
            self.string(text);
        }
        if let Some(usage) = &mut update.usage {
            self.value(usage);
        }
    }
}

/// The longest log record written: past it, the record keeps its start and end, and
/// says how much was cut between them. Whatever a field quotes (a child's line, a peer's
/// message), the log stays readable and small.
pub const MAX_LOG_RECORD_BYTES: usize = 16 << 10;

/// A log writer that scrubs each formatted line before it reaches `inner`, and cuts one
/// longer than [`MAX_LOG_RECORD_BYTES`]: install it with
/// `tracing_subscriber::fmt().with_writer(…)`.
#[derive(Debug, Clone)]
pub struct RedactingWriter<W> {
    redactor: Redactor,
    inner: W,
}

impl<W> RedactingWriter<W> {
    /// Wraps `inner` (a `MakeWriter`, such as `std::io::stderr`).
    pub fn new(redactor: Redactor, inner: W) -> Self {
        Self { redactor, inner }
    }
}

impl<'a, W: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for RedactingWriter<W>
{
    type Writer = RedactingLine<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingLine {
            redactor: self.redactor.clone(),
            inner: self.inner.make_writer(),
        }
    }
}

/// One formatted event on its way out.
#[derive(Debug)]
pub struct RedactingLine<W> {
    redactor: Redactor,
    inner: W,
}

impl<W: io::Write> io::Write for RedactingLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter writes an event in one call, so a secret is never split across
        // two writes.
        let text = String::from_utf8_lossy(buf);
        // Scrubbed whole, then cut: a cut first could leave the start of a secret that the
        // scrubber no longer recognises.
        let scrubbed = self.redactor.text(&text);
        self.inner.write_all(cut_record(&scrubbed).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `record` within [`MAX_LOG_RECORD_BYTES`]: its start and end, the middle named.
fn cut_record(record: &str) -> std::borrow::Cow<'_, str> {
    if record.len() <= MAX_LOG_RECORD_BYTES {
        return std::borrow::Cow::Borrowed(record);
    }
    let mut head = MAX_LOG_RECORD_BYTES / 2;
    while !record.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = record.len() - MAX_LOG_RECORD_BYTES / 4;
    while !record.is_char_boundary(tail) {
        tail += 1;
    }
    let cut = tail - head;
    std::borrow::Cow::Owned(format!(
        "{} … [{cut} bytes cut] … {}",
        &record[..head],
        &record[tail..]
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[track_caller]
    fn check(redactor: &Redactor, input: &str, expect: &str) {
        assert_eq!(redactor.text(input), expect);
    }

    #[test]
    fn a_long_log_record_keeps_its_ends_and_a_secret_across_the_cut_is_scrubbed_first() {
        use std::io::Write as _;
        let secret = "planted-log-secret-77";
        let redactor = Redactor::new([&Secret::new(secret)]);
        let mut out = Vec::new();
        {
            let mut line = RedactingLine {
                redactor,
                inner: &mut out,
            };
            // The secret straddles where the cut falls.
            let mut record = "a".repeat(MAX_LOG_RECORD_BYTES / 2 - 5);
            record.push_str(secret);
            record.push_str(&"b".repeat(1 << 20));
            record.push_str(" the end\n");
            line.write_all(record.as_bytes()).unwrap();
        }
        let written = String::from_utf8(out).unwrap();
        assert!(
            written.len() < MAX_LOG_RECORD_BYTES + 64,
            "{}",
            written.len()
        );
        assert!(written.ends_with(" the end\n"));
        assert!(written.contains("bytes cut]"));
        assert!(
            !written.contains("plant"),
            "{}",
            &written[..MAX_LOG_RECORD_BYTES / 2 + 40]
        );
    }

    #[test]
    fn secrets_and_token_shapes_are_scrubbed() {
        let bot = Secret::new("eyJhbGciOiJSUzI1NiJ9.bot-token-value");
        let short = Secret::new("abc");
        let r = Redactor::new([&bot, &short]);
        check(
            &r,
            "token eyJhbGciOiJSUzI1NiJ9.bot-token-value here",
            "token ***REDACTED*** here",
        );
        check(
            &r,
            "abc stays: too short to match by value",
            "abc stays: too short to match by value",
        );
        check(&r, &format!("ghp_{}", "a".repeat(36)), "***REDACTED***");
        check(
            &r,
            "clone https://x-access-token:ghs_secret123@github.com/o/r.git",
            "clone https://x-access-token:***REDACTED***@github.com/o/r.git",
        );
        check(
            &r,
            "https://oauth2:glsecret@gitlab.com/o/r",
            "https://oauth2:***REDACTED***@gitlab.com/o/r",
        );
        check(
            &r,
            "https://user:pass@example.com/x",
            "https://***REDACTED***@example.com/x",
        );
        check(&r, "key sk-ant-api03-abcdefghijkl", "key ***REDACTED***");
        check(
            &r,
            "ANTHROPIC_API_KEY=whatever123 next",
            "ANTHROPIC_API_KEY=***REDACTED*** next",
        );
        check(
            &r,
            "Authorization: Bearer abcdefghijklmnop",
            "Authorization: Bearer ***REDACTED***",
        );
        check(&r, "nothing secret here", "nothing secret here");
        check(
            &r,
            "aws AKIAIOSFODNN7EXAMPLE and ASIAY34FZKBOKMUTVV7A",
            "aws ***REDACTED*** and ***REDACTED***",
        );
        check(
            &r,
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U!",
            "jwt ***REDACTED***!",
        );
        check(
            &r,
            "slack xoxb-1234567890-abcdefghij and ghs_short0123456789ab",
            "slack ***REDACTED*** and ***REDACTED***",
        );
    }

    #[test]
    fn a_held_secret_is_found_in_its_encodings() {
        use base64::Engine as _;
        let token = "tok-e5f1-held-secret";
        let r = Redactor::new([&Secret::new(token)]);
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        assert!(r.finds(&format!("Authorization: Basic {basic}")), "{basic}");
        let spaced = Secret::new("p@ss word/42!");
        let r = Redactor::new([&spaced]);
        check(
            &r,
            "url?pw=p%40ss%20word%2F42%21&x=1",
            "url?pw=***REDACTED***&x=1",
        );
        check(
            &r,
            r#"{"pw":"p@ss word/42!"}"#,
            r#"{"pw":"***REDACTED***"}"#,
        );
    }

    #[test]
    fn a_secret_learned_later_is_scrubbed_by_every_clone() {
        let r = Redactor::default();
        let log = r.clone();
        check(
            &log,
            "minted m1nted-t0ken-value",
            "minted m1nted-t0ken-value",
        );
        r.learn(&Secret::new("m1nted-t0ken-value")).unwrap();
        r.learn(&Secret::new("m1nted-t0ken-value")).unwrap();
        r.learn(&Secret::new("abc")).unwrap();
        check(&log, "minted m1nted-t0ken-value", "minted ***REDACTED***");
        check(&log, "abc is too short", "abc is too short");
    }

    /// A caller can bring token after token: past the bound, or past what the matcher
    /// can hold, one more is refused, and every secret known before is still scrubbed.
    #[test]
    fn a_flood_of_secrets_is_refused_and_what_was_known_is_still_scrubbed() {
        let configured = Secret::new("configured-bot-token-1");
        let r = Redactor::new([&configured]);
        let mut refused = None;
        for i in 0..MAX_KNOWN_SECRETS + 1 {
            let huge = format!("{i:08}{}", "q".repeat(8 << 10));
            if let Err(error) = r.learn(&Secret::new(huge)) {
                refused = Some(error);
                break;
            }
        }
        assert!(refused.is_some(), "every secret was taken");
        check(&r, "bot configured-bot-token-1", "bot ***REDACTED***");
        let short: Vec<Secret> = (0..MAX_KNOWN_SECRETS)
            .map(|i| Secret::new(format!("caller-token-{i:04}")))
            .collect();
        let r = Redactor::new([&configured]);
        let learned = short.iter().take_while(|t| r.learn(t).is_ok()).count();
        assert_eq!(learned, MAX_KNOWN_SECRETS - 1);
        assert_eq!(
            r.learn(&Secret::new("one-token-too-many")),
            Err(Unlearnable::TooMany)
        );
        check(&r, "bot configured-bot-token-1", "bot ***REDACTED***");
        check(&r, "caller-token-0000", "***REDACTED***");
    }

    #[test]
    fn every_string_of_a_status_is_scrubbed() {
        let key = Secret::new("planted-secret-42");
        let r = Redactor::new([&key]);
        let mut status = StatusUpdate {
            message: Some(String::from("failed: planted-secret-42")),
            result: Some(String::from("planted-secret-42")),
            ..StatusUpdate::default()
        };
        r.status(&mut status);
        assert!(
            !format!("{status:?}").contains("planted-secret-42"),
            "{status:?}"
        );
    }

    #[test]
    fn every_string_of_an_event_is_scrubbed() {
        let key = Secret::new("planted-secret-42");
        let r = Redactor::new([&key]);
        let events = [
            Event::Log(String::from("planted-secret-42")),
            Event::Text(String::from("say planted-secret-42")),
            Event::TextDelta {
                stream: String::from("m"),
                data: String::from("planted-secret-42"),
            },
            Event::ToolUse {
                name: String::from("Bash"),
                input: json!({"command": "echo planted-secret-42", "env": ["X=planted-secret-42"], "planted-secret-42": 1}),
                id: Some(String::from("planted-secret-42")),
            },
            Event::Question(String::from("paste planted-secret-42?")),
            Event::ToolResult {
                tool_use_id: Some(String::from("planted-secret-42")),
                content: json!([{"type": "text", "text": "planted-secret-42"}]),
                is_error: None,
            },
            Event::turn_ended(ResultPayload {
                result: Some(String::from("planted-secret-42")),
                ..ResultPayload::default()
            }),
            Event::State(json!({"token": "planted-secret-42"})),
        ];
        for event in events {
            let scrubbed = r.event(event);
            assert!(
                !format!("{scrubbed:?}").contains("planted-secret-42"),
                "{scrubbed:?}"
            );
        }
    }

    #[test]
    fn log_lines_are_scrubbed_on_their_way_out() {
        use std::io::Write;
        let key = Secret::new("planted-secret-42");
        let mut out = Vec::new();
        let mut line = RedactingLine {
            redactor: Redactor::new([&key]),
            inner: &mut out,
        };
        line.write_all(b"error=planted-secret-42 rejected\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "error=***REDACTED*** rejected\n"
        );
    }
}
