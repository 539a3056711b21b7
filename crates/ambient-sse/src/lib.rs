//! Server-sent events, decoded incrementally from bytes as they arrive: the one decoder
//! for the LangGraph Server's streams and for the tests' reading of the serve mode's.
//!
//! It has no IO: bytes go in, events come out. The LangGraph Server writes `event:`, `data:` and (for resumable runs) `id:` lines,
//! ends each event with an empty line, uses CRLF, and sends `: heartbeat` comments while
//! idle. Lines may arrive split across reads at any byte. An event is held only up to a
//! bound ([`SseDecoder::with_max_event_bytes`]): a server that sends a line that never
//! ends, or an event that never ends, gets an error, not the runner's memory.

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

/// An event grew past the decoder's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stream sent an event (or a line) longer than {limit} bytes")]
pub struct EventTooLong {
    /// The bound.
    pub limit: usize,
}

/// An incremental decoder.
#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    event: Option<String>,
    /// The data lines so far, joined by newlines; `None` before the first.
    data: Option<String>,
    id: Option<String>,
    last_id: Option<String>,
    /// The bytes of the event being read: its data lines and the line being read.
    event_bytes: usize,
    max_event_bytes: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self {
            line: Vec::new(),
            event: None,
            data: None,
            id: None,
            last_id: None,
            event_bytes: 0,
            max_event_bytes: usize::MAX,
        }
    }
}

impl SseDecoder {
    /// A decoder at the start of a stream, holding events of any size.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same decoder, failing once an event (its lines together) passes `max` bytes.
    pub fn with_max_event_bytes(mut self, max: usize) -> Self {
        self.max_event_bytes = max;
        self
    }

    /// The id of the last event that had one: where a rejoin continues from.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Whether the decoder stands between events: no line or event is half read.
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && self.data.is_none() && self.event.is_none() && self.id.is_none()
    }

    /// Feeds bytes; returns the events they complete, or the error once an event passes
    /// the bound (the decoder is then of no further use).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, EventTooLong> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (piece, ends) = match memchr::memchr(b'\n', rest) {
                Some(end) => (&rest[..end], true),
                None => (rest, false),
            };
            self.event_bytes += piece.len();
            if self.event_bytes > self.max_event_bytes {
                return Err(EventTooLong {
                    limit: self.max_event_bytes,
                });
            }
            self.line.extend_from_slice(piece);
            rest = &rest[piece.len() + usize::from(ends)..];
            if !ends {
                break;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            // The buffer is lent out while the line is read, and kept for the next one.
            let mut line = std::mem::take(&mut self.line);
            let done = match std::str::from_utf8(&line) {
                Ok(text) => self.line_done(text),
                Err(_) => self.line_done(&String::from_utf8_lossy(&line)),
            };
            line.clear();
            self.line = line;
            if let Some(event) = done {
                events.push(event);
            }
        }
        Ok(events)
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_none() && self.event.is_none() {
                return None;
            }
            self.event_bytes = 0;
            let event = SseEvent {
                event: self.event.take().unwrap_or_else(|| String::from("message")),
                data: self.data.take().unwrap_or_default(),
                id: self.id.take(),
            };
            if event.id.is_some() {
                self.last_id.clone_from(&event.id);
            }
            return Some(event);
        }
        if line.starts_with(':') {
            // A comment is no part of an event.
            self.event_bytes = self.event_bytes.saturating_sub(line.len());
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
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
        let whole = show(SseDecoder::new().push(stream.as_bytes()).unwrap());
        let mut decoder = SseDecoder::new();
        let bytewise = show(
            stream
                .as_bytes()
                .iter()
                .flat_map(|byte| decoder.push(std::slice::from_ref(byte)).unwrap())
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
    fn bytes_that_are_not_utf8_are_replaced_not_fatal() {
        let events = SseDecoder::new()
            .push(b"data: a\xffb\ndata: c\n\ndata: d\n\n")
            .unwrap();
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a\u{fffd}b\nc", "d"]);
    }

    #[test]
    fn a_half_event_is_not_idle() {
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.push(b"data: x\n"), Ok(Vec::new()));
        assert!(!decoder.is_idle());
        assert_eq!(decoder.push(b"\n").map(|events| events.len()), Ok(1));
        assert!(decoder.is_idle());
        assert_eq!(decoder.push(b"dat"), Ok(Vec::new()));
        assert!(!decoder.is_idle());
    }

    #[test]
    fn a_line_or_an_event_past_the_bound_is_an_error_and_comments_do_not_count() {
        let mut decoder = SseDecoder::new().with_max_event_bytes(16);
        // Events within the bound, one after the other, and comments of any number.
        for _ in 0..100 {
            assert_eq!(
                decoder
                    .push(b": heartbeat\ndata: 0123456789\n\n")
                    .map(|e| e.len()),
                Ok(1)
            );
        }
        // A line that never ends.
        let mut decoder = SseDecoder::new().with_max_event_bytes(16);
        assert_eq!(decoder.push(b"data: 0123456789"), Ok(Vec::new()));
        assert_eq!(decoder.push(b"0123456789"), Err(EventTooLong { limit: 16 }));
        // An event of many short lines that never ends.
        let mut decoder = SseDecoder::new().with_max_event_bytes(16);
        assert_eq!(decoder.push(b"data: a\ndata: b\n"), Ok(Vec::new()));
        assert!(decoder.push(b"data: c\n").is_err());
    }
}
