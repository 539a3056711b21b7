//! The messages a run owns, kept for its `MESSAGES_SNAPSHOT` as the JSON they are sent
//! as, written once when each message is complete: a run's snapshot costs its bytes,
//! not a tree of values per message, and nothing is built again at the end.

use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};

/// The most bytes of JSON a run's `MESSAGES_SNAPSHOT` carries; past it, a text is cut
/// short, later messages are left out, and the snapshot says so.
pub(crate) const TRANSCRIPT_BYTES: usize = 512 << 10;
/// Room kept for the last message, which says what was left out.
const NOTE_ROOM: usize = 256;
const CUT_MARK: &str = "[… cut short]";

/// The messages of a `MESSAGES_SNAPSHOT`: as the runner writes them (JSON it made), or
/// as a client read them.
#[derive(Debug, Clone)]
pub enum Messages {
    /// Read from JSON.
    Parsed(Vec<Value>),
    /// Written by the runner: a JSON array.
    Json(Box<RawValue>),
}

impl Messages {
    /// The messages as values.
    pub fn to_values(&self) -> Vec<Value> {
        match self {
            Self::Parsed(values) => values.clone(),
            Self::Json(raw) => serde_json::from_str(raw.get()).unwrap_or_default(),
        }
    }
}

impl PartialEq for Messages {
    fn eq(&self, other: &Self) -> bool {
        self.to_values() == other.to_values()
    }
}

impl Serialize for Messages {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Parsed(values) => values.serialize(serializer),
            Self::Json(raw) => raw.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Value>::deserialize(deserializer).map(Self::Parsed)
    }
}

/// The message streaming now, written when it closes.
#[derive(Debug)]
struct Streaming {
    id: String,
    content: String,
}

/// The run's messages so far, as the inside of a JSON array.
#[derive(Debug)]
pub(crate) struct Transcript {
    /// `[` and the messages written, comma-separated.
    json: String,
    /// Messages written.
    count: usize,
    streaming: Option<Streaming>,
    /// Messages left out for want of room.
    left_out: usize,
}

impl Default for Transcript {
    fn default() -> Self {
        Self {
            json: String::from("["),
            count: 0,
            streaming: None,
            left_out: 0,
        }
    }
}

impl Transcript {
    fn room(&self) -> usize {
        let open = self.streaming.as_ref().map_or(0, |s| s.content.len());
        TRANSCRIPT_BYTES.saturating_sub(NOTE_ROOM + self.json.len() + open)
    }

    /// Writes `message` if it fits; a text in it is cut to fit first.
    fn write(&mut self, message: &Value) {
        let Ok(json) = serde_json::to_string(message) else {
            return;
        };
        if json.len() + 1 > self.room() {
            self.left_out += 1;
            return;
        }
        if self.count > 0 {
            self.json.push(',');
        }
        self.json.push_str(&json);
        self.count += 1;
    }

    /// `text`, cut to what room is left for a message of about `overhead` bytes more.
    fn fitted<'a>(&self, text: &'a str, overhead: usize) -> std::borrow::Cow<'a, str> {
        // Escaping can grow a text: a sixth of the room is kept for it.
        let room = self.room().saturating_sub(overhead) * 5 / 6;
        if text.len() <= room {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut end = room.saturating_sub(CUT_MARK.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        std::borrow::Cow::Owned(format!("{}{CUT_MARK}", &text[..end]))
    }

    /// The run's input messages, first.
    pub(crate) fn set_input(&mut self, messages: &[Value]) {
        for message in messages {
            self.write(message);
        }
    }

    pub(crate) fn assistant(&mut self, message_id: &str, text: &str, subagent: Option<&str>) {
        self.close_streaming();
        let content = self.fitted(text, 128);
        let mut message =
            serde_json::json!({"id": message_id, "role": "assistant", "content": content});
        if let Some(subagent) = subagent {
            message["subagentRunId"] = Value::String(subagent.to_owned());
        }
        self.write(&message);
    }

    pub(crate) fn start_streaming(&mut self, message_id: &str) {
        self.close_streaming();
        self.streaming = Some(Streaming {
            id: message_id.to_owned(),
            content: String::new(),
        });
    }

    pub(crate) fn stream(&mut self, delta: &str) {
        let room = self.room();
        let Some(streaming) = self.streaming.as_mut() else {
            return;
        };
        if delta.len() <= room {
            streaming.content.push_str(delta);
        }
        // Past the room, the rest of the message is cut when it closes.
    }

    pub(crate) fn close_streaming(&mut self) {
        if let Some(Streaming { id, content }) = self.streaming.take() {
            self.assistant(&id, &content, None);
        }
    }

    pub(crate) fn tool_call(
        &mut self,
        message_id: &str,
        tool_call_id: &str,
        name: &str,
        arguments: &str,
    ) {
        self.close_streaming();
        let arguments = self.fitted(arguments, 256);
        self.write(&serde_json::json!({
            "id": message_id,
            "role": "assistant",
            "toolCalls": [{"id": tool_call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
        }));
    }

    pub(crate) fn tool_result(&mut self, message_id: &str, tool_call_id: &str, content: &str) {
        self.close_streaming();
        let content = self.fitted(content, 128);
        self.write(&serde_json::json!({
            "id": message_id, "role": "tool", "content": content, "toolCallId": tool_call_id,
        }));
    }

    /// The snapshot's messages, with a last one that says how many were left out, if
    /// any were; the transcript starts again empty.
    pub(crate) fn take(&mut self, run_id: &str) -> Messages {
        self.close_streaming();
        let mut taken = std::mem::take(self);
        if taken.left_out > 0 {
            let note = serde_json::json!({
                "id": format!("{run_id}-snapshot-cut"),
                "role": "assistant",
                "content": format!(
                    "[{} more messages of this run are left out: its snapshot is limited to {TRANSCRIPT_BYTES} bytes]",
                    taken.left_out
                ),
            });
            if taken.count > 0 {
                taken.json.push(',');
            }
            taken.json.push_str(&note.to_string());
        }
        taken.json.push(']');
        match RawValue::from_string(taken.json) {
            Ok(raw) => Messages::Json(raw),
            Err(_) => Messages::Parsed(Vec::new()),
        }
    }
}
