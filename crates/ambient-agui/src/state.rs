//! The agent's state as AG-UI streams it: a whole snapshot first, then JSON Patch
//! (RFC 6902) deltas from one state to the next.

use serde_json::{Value, json};

/// The JSON Patch that turns `old` into `new`: objects key by key, an array that only
/// grew as additions at its end (a conversation's messages), anything else replaced.
pub fn diff(old: &Value, new: &Value) -> Vec<Value> {
    let mut patch = Vec::new();
    diff_at(old, new, &mut String::new(), &mut patch);
    patch
}

fn diff_at(old: &Value, new: &Value, path: &mut String, patch: &mut Vec<Value>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            for key in old.keys().filter(|key| !new.contains_key(*key)) {
                patch.push(json!({"op": "remove", "path": format!("{path}/{}", escape(key))}));
            }
            for (key, value) in new {
                let at = path.len();
                path.push('/');
                path.push_str(&escape(key));
                match old.get(key) {
                    Some(before) => diff_at(before, value, path, patch),
                    None => patch.push(json!({"op": "add", "path": path.clone(), "value": value})),
                }
                path.truncate(at);
            }
        }
        (Value::Array(old_items), Value::Array(new_items))
            if new_items.len() >= old_items.len()
                && new_items.iter().zip(old_items).all(|(a, b)| a == b) =>
        {
            for (index, item) in new_items.iter().enumerate().skip(old_items.len()) {
                patch.push(json!({"op": "add", "path": format!("{path}/{index}"), "value": item}));
            }
        }
        _ if path.is_empty() => patch.push(json!({"op": "replace", "path": "", "value": new})),
        _ => patch.push(json!({"op": "replace", "path": path.clone(), "value": new})),
    }
}

/// A key as a JSON Pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use ambient_test_support::agui::apply_patch as apply;

    use super::*;

    #[test]
    fn a_patch_turns_each_state_into_the_next() {
        let states = [
            json!({"messages": [{"type": "human", "content": "hi"}], "step": 1, "a/b": {"x": 1}}),
            json!({"messages": [{"type": "human", "content": "hi"}, {"type": "ai", "content": "hello"}], "step": 2, "a/b": {"x": 1, "y": [1]}}),
            json!({"messages": [{"type": "ai", "content": "rewritten"}], "note": null, "a/b": {"y": [1, 2]}}),
            json!([1, 2]),
            json!({"back": "to an object"}),
        ];
        for pair in states.windows(2) {
            let patch = diff(&pair[0], &pair[1]);
            let mut state = pair[0].clone();
            apply(&mut state, &patch);
            assert_eq!(state, pair[1], "{patch:?}");
        }
        let grew = diff(&states[0], &states[1]);
        assert!(
            grew.contains(&json!({"op": "add", "path": "/messages/1", "value": {"type": "ai", "content": "hello"}})),
            "a new message is an addition, not the whole list again: {grew:?}"
        );
        assert!(diff(&states[1], &states[1]).is_empty());
    }
}
