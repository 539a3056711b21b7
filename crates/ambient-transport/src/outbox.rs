//! Frames kept until the backend has echoed them.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use ambient_protocol::{Frame, FrameId, Outbound, RunnerClock};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::OutboxLimits;

/// A frame waiting for its echo, already serialised so that a resend costs nothing.
#[derive(Debug)]
struct Pending {
    id: FrameId,
    text: Utf8Bytes,
    /// When it was queued, where deliveries are timed.
    queued: Option<Instant>,
}

/// The bounded outbox. Frames before `written` went out on the current connection;
/// the rest are still to be written (new, or resent after a reconnect).
#[derive(Debug)]
pub(crate) struct Outbox {
    instance: String,
    capacity: usize,
    capacity_bytes: usize,
    max_frame_bytes: usize,
    bytes: usize,
    frames: VecDeque<Pending>,
    written: usize,
    next_seq: u64,
    clock: RunnerClock,
    /// Whether each frame's time in the outbox is measured.
    timed: bool,
}

impl Outbox {
    pub(crate) fn new(instance: String, limits: OutboxLimits) -> Self {
        Self {
            instance,
            capacity: limits.frames.max(1),
            capacity_bytes: limits.bytes.max(1),
            max_frame_bytes: limits.max_frame_bytes.max(1024),
            bytes: 0,
            frames: VecDeque::new(),
            written: 0,
            next_seq: 1,
            clock: RunnerClock::default(),
            timed: false,
        }
    }

    /// Measures each frame's time from its queueing to its echo.
    pub(crate) fn timed(mut self) -> Self {
        self.timed = true;
        self
    }

    /// Whether another frame may be taken. A frame larger than what is left is still
    /// taken when the outbox is empty, so that the bound never blocks forever.
    pub(crate) fn has_room(&self) -> bool {
        self.frames.is_empty()
            || (self.frames.len() < self.capacity && self.bytes < self.capacity_bytes)
    }

    /// Bytes of frames kept.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// Keeps a frame, split or shortened to the frame cap first (see
    /// [`Outbound::fit`]); returns how many frames that made.
    pub(crate) fn push(&mut self, body: Outbound) -> usize {
        if body.fits(self.max_frame_bytes) {
            self.push_one(body);
            return 1;
        }
        let stream = format!("{}-s{}", self.instance, self.next_seq);
        let pieces = body.fit(self.max_frame_bytes, &stream);
        let count = pieces.len();
        for piece in pieces {
            self.push_one(piece);
        }
        count
    }

    /// Stamps a frame with the next `seq`, its stable id and the time, and keeps it.
    fn push_one(&mut self, body: Outbound) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = Frame {
            seq,
            id: FrameId::new(&self.instance, seq),
            timestamp: self.clock.now(),
            body,
        };
        let text = Utf8Bytes::from(frame.to_json());
        self.bytes += text.len();
        self.frames.push_back(Pending {
            id: frame.id,
            text,
            queued: self.timed.then(Instant::now),
        });
    }

    /// The next frame to write on this connection, if any.
    pub(crate) fn next_unwritten(&self) -> Option<Utf8Bytes> {
        self.frames.get(self.written).map(|p| p.text.clone())
    }

    pub(crate) fn mark_written(&mut self) {
        self.written = (self.written + 1).min(self.frames.len());
    }

    /// A new connection: every frame still here goes out again, in order.
    pub(crate) fn rewind(&mut self) {
        self.written = 0;
    }

    /// Whether `id` names one of our frames.
    pub(crate) fn is_ours(&self, id: &FrameId) -> bool {
        id.as_str()
            .strip_prefix(self.instance.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    }

    /// The echo of `id` came back: the frame is delivered. Returns how long it was kept,
    /// if it was here.
    pub(crate) fn acknowledge(&mut self, id: &FrameId) -> Option<Duration> {
        // Echoes come back in the order frames were written, so the frame is nearly
        // always at the front.
        let position = self.frames.iter().position(|p| &p.id == id)?;
        let pending = self.frames.remove(position)?;
        self.bytes -= pending.text.len();
        if position < self.written {
            self.written -= 1;
        }
        Some(
            pending
                .queued
                .map_or(Duration::ZERO, |queued| queued.elapsed()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(frames: usize) -> OutboxLimits {
        OutboxLimits {
            frames,
            ..OutboxLimits::default()
        }
    }

    #[test]
    fn the_byte_bound_applies_too_and_an_oversized_frame_is_split() {
        let mut outbox = Outbox::new(
            String::from("abc"),
            OutboxLimits {
                frames: 1000,
                bytes: 10_000,
                max_frame_bytes: 4096,
            },
        );
        let pieces = outbox.push(Outbound::TextBlock {
            text: "z".repeat(12_000),
        });
        assert!(pieces > 2, "{pieces}");
        assert!(!outbox.has_room(), "{} bytes kept", outbox.bytes());
        while let Some(text) = outbox.next_unwritten() {
            assert!(text.len() < 4096 + 512, "{} bytes", text.len());
            outbox.mark_written();
        }
        for seq in 1..=pieces as u64 {
            assert!(outbox.acknowledge(&FrameId::new("abc", seq)).is_some());
        }
        assert_eq!(outbox.bytes(), 0);
        assert!(outbox.has_room());
    }

    fn log(n: u32) -> Outbound {
        Outbound::Log {
            message: n.to_string(),
        }
    }

    #[test]
    fn frames_stay_until_echoed_and_are_resent_after_a_rewind() {
        let mut outbox = Outbox::new(String::from("abc"), limits(3));
        for n in 0..3 {
            outbox.push(log(n));
        }
        assert!(!outbox.has_room());
        outbox.mark_written();
        outbox.mark_written();
        assert!(outbox.acknowledge(&FrameId::new("abc", 1)).is_some());
        assert!(
            outbox.acknowledge(&FrameId::new("abc", 1)).is_none(),
            "acknowledged twice"
        );
        assert!(outbox.has_room());
        // Frame 2 was written, frame 3 was not.
        let next = outbox.next_unwritten().unwrap();
        assert!(next.as_str().contains("abc-3"), "{next}");
        outbox.rewind();
        let again = outbox.next_unwritten().unwrap();
        assert!(again.as_str().contains("abc-2"), "{again}");
    }

    #[test]
    fn only_ids_of_this_instance_are_ours() {
        let outbox = Outbox::new(String::from("abc"), limits(1));
        assert!(outbox.is_ours(&FrameId::new("abc", 9)));
        assert!(!outbox.is_ours(&FrameId::new("abcd", 9)));
        assert!(!outbox.is_ours(&FrameId::new("xyz", 9)));
    }
}
