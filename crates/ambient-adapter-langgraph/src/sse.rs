//! Server-sent events, decoded incrementally from bytes as they arrive.
//!
//! The LangGraph Server writes `event:`, `data:` and (for resumable runs) `id:` lines,
//! ends each event with an empty line, uses CRLF, and sends `: heartbeat` comments while
//! idle. Lines may arrive split across reads at any byte.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` when absent, as the SSE standard says).
    pub event: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
    /// The `id:`, when the server sent one (the value for `Last-Event-ID`).
    pub id: Option<String>,
}

/// An incremental decoder.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    id: Option<String>,
    last_id: Option<String>,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of the last event that had one: where a rejoin continues from.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                let line = String::from_utf8_lossy(&self.line).into_owned();
                self.line.clear();
                if let Some(event) = self.line_done(&line) {
                    events.push(event);
                }
            } else {
                self.line.push(byte);
            }
        }
        events
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() && self.event.is_none() {
                return None;
            }
            let event = SseEvent {
                event: self.event.take().unwrap_or_else(|| String::from("message")),
                data: std::mem::take(&mut self.data).join("\n"),
                id: self.id.take(),
            };
            if event.id.is_some() {
                self.last_id.clone_from(&event.id);
            }
            return Some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}
