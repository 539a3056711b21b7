//! Server-sent events, decoded incrementally from bytes as they arrive: the one decoder
//! for the LangGraph Server's streams and for the tests' reading of the serve mode's.
//!
//! It has no IO: bytes go in, events come out. The LangGraph Server writes `event:`, `data:` and (for resumable runs) `id:` lines,
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

    /// Whether the decoder stands between events: no line or event is half read.
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && self.data.is_empty() && self.event.is_none() && self.id.is_none()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `stream` fed one byte at a time and whole; both must give `expect`, as
    /// `event|data|id` lines.
    #[track_caller]
    fn check(stream: &str, expect: &[&str]) {
        let show = |events: Vec<SseEvent>| -> Vec<String> {
            events
                .into_iter()
                .map(|e| format!("{}|{}|{}", e.event, e.data, e.id.unwrap_or_default()))
                .collect()
        };
        let whole = show(SseDecoder::new().push(stream.as_bytes()));
        let mut decoder = SseDecoder::new();
        let bytewise = show(
            stream
                .as_bytes()
                .iter()
                .flat_map(|byte| decoder.push(std::slice::from_ref(byte)))
                .collect(),
        );
        assert_eq!(whole, expect);
        assert_eq!(bytewise, expect);
        assert!(decoder.is_idle(), "the stream ended mid-event");
    }

    #[test]
    fn events_are_read_whatever_the_splits() {
        check(
            "event: values\r\ndata: {\"a\":1}\r\nid: 7-0\r\n\r\n",
            &["values|{\"a\":1}|7-0"],
        );
        check("data: one\ndata: two\n\n", &["message|one\ntwo|"]);
        check(": heartbeat\n\n: heartbeat\n\n", &[]);
        check(
            "data:no space\n\nevent: end\n\n",
            &["message|no space|", "end||"],
        );
        check("data: héllo ✓\n\n", &["message|héllo ✓|"]);
    }

    #[test]
    fn a_half_event_is_not_idle() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.push(b"data: x\n").is_empty());
        assert!(!decoder.is_idle());
        assert_eq!(decoder.push(b"\n").len(), 1);
        assert!(decoder.is_idle());
        decoder.push(b"dat");
        assert!(!decoder.is_idle());
    }
}
