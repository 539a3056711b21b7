//! The events of a served run, numbered and kept in a bounded buffer, so that a client that
//! reconnects with `Last-Event-ID` gets every event after it, without gaps or repeats.
//!
//! Each event is formatted as a server-sent event once, when it is kept, and shared from
//! then on: every connection that sends it holds a reference, not a copy, so that many
//! clients of one run cost little more than one.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::AguiEvent;

/// A client asked to resume from an event the buffer no longer holds (or never held).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {asked} cannot be resumed from: the buffer holds events {oldest} to {newest}")]
pub struct ReplayGap {
    /// The `Last-Event-ID` asked for.
    pub asked: u64,
    /// The oldest event kept (0 when none is).
    pub oldest: u64,
    /// The newest event kept (0 when none is).
    pub newest: u64,
}

/// One event as the SSE stream carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    /// Its id, from 1, in the order the events were made.
    pub id: u64,
    /// `id:` then `data:`, ended by an empty line.
    sse: Bytes,
    /// Where the JSON starts in `sse`.
    json_start: usize,
}

impl Numbered {
    /// `event` written as JSON straight after its `id:` and `data:` head: one buffer, no
    /// copy of the JSON.
    fn of(id: u64, event: &AguiEvent) -> Self {
        let head = format!("id: {id}\ndata: ");
        let mut sse = Vec::with_capacity(head.len() + 256);
        sse.extend_from_slice(head.as_bytes());
        if let Err(error) = serde_json::to_writer(&mut sse, event) {
            // The event types serialise to JSON by construction; say so if one does not.
            let json = format!(
                r#"{{"type":"RUN_ERROR","message":"an event could not be encoded: {error}"}}"#
            );
            return Self::new(id, &json);
        }
        sse.extend_from_slice(b"\n\n");
        Self {
            id,
            sse: Bytes::from(sse),
            json_start: head.len(),
        }
    }

    fn new(id: u64, json: &str) -> Self {
        let head = format!("id: {id}\ndata: ");
        let mut sse = Vec::with_capacity(head.len() + json.len() + 2);
        sse.extend_from_slice(head.as_bytes());
        sse.extend_from_slice(json.as_bytes());
        sse.extend_from_slice(b"\n\n");
        Self {
            id,
            sse: Bytes::from(sse),
            json_start: head.len(),
        }
    }

    /// The event's JSON.
    pub fn json(&self) -> &str {
        let json = &self.sse[self.json_start..self.sse.len() - 2];
        // Built from a `&str` and ASCII around it.
        std::str::from_utf8(json).unwrap_or_default()
    }

    /// The event as one server-sent event, shared (cloning it copies nothing).
    pub fn sse(&self) -> Bytes {
        self.sse.clone()
    }

    /// The event as one server-sent event, as text.
    pub fn to_sse(&self) -> String {
        String::from_utf8_lossy(&self.sse).into_owned()
    }

    /// Its size as sent.
    pub fn len(&self) -> usize {
        self.sse.len()
    }

    /// Whether it is empty (never: an event has at least its id).
    pub fn is_empty(&self) -> bool {
        self.sse.is_empty()
    }
}

/// The last `capacity` events of a run, within a byte budget.
#[derive(Debug)]
pub struct ReplayBuffer {
    capacity: usize,
    /// The most bytes kept (the newest event is kept whatever its size).
    max_bytes: usize,
    bytes: usize,
    events: VecDeque<Numbered>,
    next_id: u64,
    /// Events after this id are kept past the bounds: a client that must not miss them
    /// (the one that started the run) has not taken them yet.
    pin: Option<u64>,
    /// The bytes of the events after the pin.
    pinned_bytes: usize,
}

impl ReplayBuffer {
    /// A buffer that keeps the last `capacity` events (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_bytes: usize::MAX,
            bytes: 0,
            events: VecDeque::new(),
            next_id: 1,
            pin: None,
            pinned_bytes: 0,
        }
    }

    /// The same buffer, keeping at most `max_bytes` of events (but always the newest
    /// event): a few large events (a file's contents in a tool result, a big state) count
    /// for what they weigh.
    pub fn with_byte_limit(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Keeps every event after `id` until the pin moves on or is lifted, past the bounds.
    /// A pin moves forward only (one that would move back stays where it is).
    pub fn pin_after(&mut self, id: u64) {
        match self.pin {
            Some(pin) if id <= pin => return,
            Some(pin) => {
                // The events the pin passes over no longer count as pinned.
                let oldest = self.events.front().map_or(self.next_id, |e| e.id);
                let from = usize::try_from((pin + 1).saturating_sub(oldest)).unwrap_or(0);
                let to = usize::try_from((id + 1).saturating_sub(oldest)).unwrap_or(0);
                let passed: usize = self
                    .events
                    .range(from.min(self.events.len())..to.min(self.events.len()))
                    .map(Numbered::len)
                    .sum();
                self.pinned_bytes = self.pinned_bytes.saturating_sub(passed);
            }
            None => {
                self.pinned_bytes = self
                    .events
                    .iter()
                    .filter(|e| e.id > id)
                    .map(Numbered::len)
                    .sum();
            }
        }
        self.pin = Some(id);
        self.trim();
    }

    /// Lifts the pin: the oldest events beyond the bounds go.
    pub fn unpin(&mut self) {
        self.pin = None;
        self.pinned_bytes = 0;
        self.trim();
    }

    /// Whether more events, or more bytes, wait after the pin than the buffer's bounds
    /// allow. Constant time: it is asked on every turn of the session's loop.
    pub fn pinned_past_bounds(&self) -> bool {
        let Some(pin) = self.pin else {
            return false;
        };
        let events = (self.next_id - 1).saturating_sub(pin);
        events > self.capacity as u64 || self.pinned_bytes > self.max_bytes
    }

    /// Forgets the oldest events beyond the bounds, but none the pin keeps.
    fn trim(&mut self) {
        while self.events.len() > self.capacity
            || (self.bytes > self.max_bytes && self.events.len() > 1)
        {
            let Some(oldest) = self.events.front() else {
                break;
            };
            if self.pin.is_some_and(|pin| oldest.id > pin) {
                break;
            }
            if let Some(oldest) = self.events.pop_front() {
                self.bytes -= oldest.len();
            }
        }
    }

    /// Numbers and keeps an event, forgetting the oldest when full; returns it numbered.
    pub fn push(&mut self, event: &AguiEvent) -> Numbered {
        let numbered = Numbered::of(self.next_id, event);
        self.next_id += 1;
        self.bytes += numbered.len();
        if self.pin.is_some() {
            self.pinned_bytes += numbered.len();
        }
        self.events.push_back(numbered.clone());
        self.trim();
        numbered
    }

    /// Every event after `last_event_id` (all of them for 0), or the gap when some of them
    /// are no longer kept.
    pub fn since(&self, last_event_id: u64) -> Result<Vec<Numbered>, ReplayGap> {
        self.since_at_most(last_event_id, usize::MAX)
    }

    /// The first `count` events after `last_event_id`, or the gap.
    pub fn since_at_most(
        &self,
        last_event_id: u64,
        count: usize,
    ) -> Result<Vec<Numbered>, ReplayGap> {
        let newest = self.next_id - 1;
        let oldest = self.events.front().map_or(0, |e| e.id);
        let complete = last_event_id <= newest
            && (last_event_id + 1 >= oldest || self.events.is_empty() && last_event_id == newest);
        if !complete {
            return Err(ReplayGap {
                asked: last_event_id,
                oldest,
                newest,
            });
        }
        // Ids are consecutive: the first event wanted is found by its offset.
        let skip = usize::try_from((last_event_id + 1).saturating_sub(oldest)).unwrap_or(0);
        Ok(self.events.iter().skip(skip).take(count).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: u64) -> AguiEvent {
        AguiEvent::Custom {
            name: String::from("log"),
            value: serde_json::json!(n),
        }
    }

    #[test]
    fn a_client_cut_at_any_point_resumes_without_gaps_or_repeats() {
        let mut buffer = ReplayBuffer::new(64);
        let sent: Vec<Numbered> = (1..=50).map(|n| buffer.push(&log(n))).collect();
        for cut in 0..=50 {
            let mut seen: Vec<u64> = sent.iter().take(cut).map(|e| e.id).collect();
            let last = seen.last().copied().unwrap_or(0);
            seen.extend(buffer.since(last).unwrap().iter().map(|e| e.id));
            assert_eq!(seen, (1..=50).collect::<Vec<_>>(), "cut after {cut} events");
        }
    }

    #[test]
    fn resuming_from_an_event_no_longer_kept_is_a_named_gap() {
        let mut buffer = ReplayBuffer::new(10);
        for n in 1..=25 {
            buffer.push(&log(n));
        }
        assert_eq!(buffer.since(15).unwrap().len(), 10);
        assert_eq!(
            buffer.since(5),
            Err(ReplayGap {
                asked: 5,
                oldest: 16,
                newest: 25
            })
        );
        assert!(buffer.since(26).is_err(), "an id from the future");
        assert_eq!(buffer.since(25).unwrap(), Vec::new());
    }

    #[test]
    fn large_events_are_bounded_by_their_bytes_but_the_newest_is_always_kept() {
        let big = |n: u64| AguiEvent::Custom {
            name: String::from("log"),
            value: serde_json::json!(format!("{n}{}", "x".repeat(1000))),
        };
        let mut buffer = ReplayBuffer::new(100).with_byte_limit(3500);
        for n in 1..=10 {
            buffer.push(&big(n));
        }
        let kept: Vec<u64> = buffer.since(7).unwrap().iter().map(|e| e.id).collect();
        assert_eq!(kept, [8, 9, 10]);
        assert!(buffer.since(6).is_err());
        let mut tiny = ReplayBuffer::new(100).with_byte_limit(10);
        tiny.push(&big(1));
        tiny.push(&big(2));
        assert_eq!(tiny.since(1).unwrap().len(), 1, "the newest stays");
    }

    #[test]
    fn a_pin_keeps_every_event_after_it_until_it_moves_on() {
        let mut buffer = ReplayBuffer::new(4);
        buffer.pin_after(0);
        for n in 1..=10 {
            buffer.push(&log(n));
        }
        assert_eq!(buffer.since(0).unwrap().len(), 10);
        assert!(buffer.pinned_past_bounds());
        // The client took four: what it took goes as far as the bounds need.
        buffer.pin_after(4);
        assert_eq!(buffer.since(4).unwrap().len(), 6);
        assert!(buffer.since(3).is_err());
        assert!(buffer.pinned_past_bounds());
        buffer.pin_after(6);
        assert!(!buffer.pinned_past_bounds());
        buffer.unpin();
        assert_eq!(buffer.since(6).unwrap().len(), 4);
        assert!(buffer.since(0).is_err());
        assert_eq!(
            buffer
                .since_at_most(6, 2)
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>(),
            [7, 8]
        );
        // The pin's bytes count too, and leave the count as the pin moves.
        let big = AguiEvent::Custom {
            name: String::from("log"),
            value: serde_json::json!("x".repeat(1000)),
        };
        let mut buffer = ReplayBuffer::new(100).with_byte_limit(3500);
        buffer.pin_after(0);
        for _ in 0..5 {
            buffer.push(&big);
        }
        assert!(buffer.pinned_past_bounds(), "5 KB pinned of 3.5 KB");
        buffer.pin_after(3);
        assert!(!buffer.pinned_past_bounds(), "2 KB pinned");
        buffer.pin_after(2);
        assert!(!buffer.pinned_past_bounds(), "a pin never moves back");
    }

    #[test]
    fn events_go_out_as_server_sent_events_with_their_ids() {
        let mut buffer = ReplayBuffer::new(4);
        let first = buffer.push(&log(7));
        assert_eq!(
            first.to_sse(),
            "id: 1\ndata: {\"type\":\"CUSTOM\",\"name\":\"log\",\"value\":7}\n\n"
        );
        assert_eq!(first.json(), r#"{"type":"CUSTOM","name":"log","value":7}"#);
    }
}
