//! Delivering user and control messages exactly once, across reconnects.
//!
//! The backend delivers a message only to the connections it has when the message is
//! posted (`platform-wire.md` §7 item 32), but it stores every one. After a reconnect the
//! shell reads the history and delivers what it missed. A message is known by its type,
//! payload and backend timestamp; the inbox remembers which it delivered live and which it
//! recovered, so that none is delivered twice whichever way it arrives first.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
};

use ambient_protocol::{FrameId, Inbound, SessionMessage};

/// What identifies a stored message: a keyed hash of its type, payload and timestamp (a
/// message's whole payload would be kept for the life of the session otherwise).
pub(crate) type Key = u64;

/// Whether a message is input for the session (as opposed to frames, pongs, unknowns).
pub(crate) fn is_input(inbound: &Inbound) -> bool {
    matches!(
        inbound,
        Inbound::UserMessage { .. }
            | Inbound::Interrupt
            | Inbound::EndSession
            | Inbound::Terminate
            | Inbound::Stop
            | Inbound::WorkflowChange(_)
            | Inbound::RepoAdded(_)
            | Inbound::RepoRemoved { .. }
    )
}

/// The record of delivered input.
///
/// Counts, per message identity, how often it was delivered (either way) and how often it
/// arrived live. Counting rather than remembering a set keeps two identical messages in
/// the same second apart.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    delivered: HashMap<Key, usize>,
    arrived_live: HashMap<Key, usize>,
    /// Random keys, so that nobody can make two messages look alike.
    hasher: RandomState,
}

impl Inbox {
    /// What identifies `message`.
    pub(crate) fn key(&self, message: &SessionMessage) -> Key {
        self.hasher.hash_one((
            &message.kind,
            message.payload.to_string(),
            &message.timestamp,
        ))
    }

    /// A message that arrived on the socket, by its key: whether to deliver it.
    pub(crate) fn accept_live(&mut self, key: Key) -> bool {
        let live = self.arrived_live.entry(key).or_default();
        *live += 1;
        let delivered = self.delivered.entry(key).or_default();
        if *live <= *delivered {
            // Recovered from the history before its live copy came.
            return false;
        }
        *delivered += 1;
        true
    }

    /// The session's stored history after a reconnect: the input messages that were
    /// missed, in order. Only messages stored after this runner's first frame count, so
    /// that a restarted session does not replay the previous run's input.
    pub(crate) fn recover(
        &mut self,
        history: Vec<SessionMessage>,
        is_ours: impl Fn(&FrameId) -> bool,
    ) -> Vec<Inbound> {
        let Some(start) = history
            .iter()
            .position(|m| m.frame_id().is_some_and(|id| is_ours(&id)))
        else {
            return Vec::new();
        };
        let mut occurrences: HashMap<Key, usize> = HashMap::new();
        let mut missed = Vec::new();
        for message in history.into_iter().skip(start + 1) {
            let Ok(inbound) = message.classify() else {
                continue;
            };
            if !is_input(&inbound) {
                continue;
            }
            let key = self.key(&message);
            let seen = occurrences.entry(key).or_default();
            *seen += 1;
            let delivered = self.delivered.entry(key).or_default();
            if *seen > *delivered {
                *delivered += 1;
                missed.push(inbound);
            }
        }
        missed
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(kind: &str, content: &str, at: &str) -> SessionMessage {
        SessionMessage {
            session_id: String::from("s"),
            kind: kind.to_owned(),
            timestamp: at.to_owned(),
            payload: json!({ "content": content }),
            partial: None,
        }
    }

    fn ours() -> SessionMessage {
        SessionMessage {
            session_id: String::from("s"),
            kind: String::from("system.message"),
            timestamp: String::from("t0"),
            payload: json!({ "payload": "session.started", "frame_id": "me-1" }),
            partial: None,
        }
    }

    fn mine(id: &FrameId) -> bool {
        id.as_str().starts_with("me-")
    }

    fn contents(inbound: &[Inbound]) -> Vec<String> {
        inbound
            .iter()
            .map(|i| match i {
                Inbound::UserMessage { content } => content.clone(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn missed_input_is_recovered_once_in_order_and_live_copies_are_dropped() {
        let mut inbox = Inbox::default();
        let before = message("user_message", "from the previous run", "t-1");
        let seen = message("user_message", "seen live", "t1");
        let missed_a = message("user_message", "missed a", "t2");
        let missed_b = message("interrupt", "", "t3");
        let racing = message("user_message", "posted during the reconnect", "t4");
        assert!(inbox.accept_live(inbox.key(&seen)));
        let history = vec![
            before,
            ours(),
            seen.clone(),
            missed_a.clone(),
            message("agent.message", "a frame", "t2"),
            missed_b,
            racing.clone(),
        ];
        let recovered = inbox.recover(history.clone(), mine);
        assert_eq!(
            contents(&recovered),
            ["missed a", "Interrupt", "posted during the reconnect"]
        );
        // The racing message also arrives live afterwards: not delivered twice.
        assert!(!inbox.accept_live(inbox.key(&racing)));
        // A second recovery over the same history finds nothing new.
        assert!(inbox.recover(history, mine).is_empty());
        // Identical text at another time is another message.
        let other = message("user_message", "missed a", "t9");
        assert!(inbox.accept_live(inbox.key(&other)));
    }

    #[test]
    fn without_our_first_frame_in_the_history_nothing_is_recovered() {
        let mut inbox = Inbox::default();
        let history = vec![message("user_message", "x", "t1")];
        assert!(inbox.recover(history, mine).is_empty());
    }
}
