//! The run request (AG-UI's `RunAgentInput`), read for what this runner needs: the ids, the
//! conversation's new user messages, and the answers to the last run's interrupts.

use std::collections::HashSet;

use ambient_adapter::Input;
use serde::Deserialize;
use serde_json::Value;

use crate::hub::Refused;

/// A request to run the agent, its fields in camel case (AG-UI) or snake case (the
/// platform's backend forwards either). Fields this runner does not use (`tools`,
/// `context`, `state`, `forwardedProps`) are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRequest {
    /// The conversation.
    #[serde(alias = "thread_id")]
    pub thread_id: String,
    /// This run; a new UUID when the caller gives none, as the platform's runner makes one.
    #[serde(alias = "run_id", default = "new_run_id")]
    pub run_id: String,
    /// The conversation so far, in order.
    pub messages: Vec<Message>,
    /// Answers to the interrupts the last run ended with.
    #[serde(default)]
    pub resume: Vec<ResumeEntry>,
}

fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One message of the conversation.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// Its id; a message sent without one is given one from its place and content
    /// ([`RunRequest::turn`]), the same each time the conversation is sent again.
    #[serde(default)]
    pub id: String,
    /// `user`, `assistant`, `tool`, `system`…
    pub role: String,
    /// Text, or a list of parts of which the text ones are read.
    #[serde(default)]
    pub content: Value,
}

/// An answer to one interrupt.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeEntry {
    /// The interrupt it answers.
    #[serde(alias = "interrupt_id")]
    pub interrupt_id: String,
    /// `resolved` or `cancelled`.
    pub status: ResumeStatus,
    /// The answer.
    #[serde(default)]
    pub payload: Value,
}

/// Whether an interrupt was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResumeStatus {
    /// Answered with the payload.
    Resolved,
    /// Abandoned: nothing goes to the agent for it.
    Cancelled,
}

/// What a run delivers to the adapter: one input, so that the run is one turn.
#[derive(Debug)]
pub struct Turn {
    /// The answer to the interrupt, or the new messages joined into one.
    pub input: Input,
    /// The ids of the user messages delivered.
    pub message_ids: Vec<String>,
    /// Those messages, as AG-UI user messages with their ids filled in: the run's
    /// `MESSAGES_SNAPSHOT` opens with them.
    pub messages: Vec<Value>,
}

impl RunRequest {
    /// The input this request brings: its answer to the interrupt in `waiting_on`, or
    /// the user messages at the end of the conversation not yet `delivered`, joined.
    pub fn turn(
        &self,
        delivered: &HashSet<String>,
        waiting_on: &[String],
    ) -> Result<Turn, Refused> {
        let mut answers = Vec::new();
        for entry in &self.resume {
            if !waiting_on.contains(&entry.interrupt_id) {
                return Err(Refused::UnknownInterrupt {
                    asked: entry.interrupt_id.clone(),
                    waiting: if waiting_on.is_empty() {
                        String::from("no interrupt")
                    } else {
                        waiting_on.join(", ")
                    },
                });
            }
            if entry.status == ResumeStatus::Resolved {
                // The adapters read an object or an array as structured input, anything
                // else as text.
                answers.push(match &entry.payload {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                });
            }
        }
        // The new input is the user messages after the agent last spoke: a client that
        // sends the whole conversation each time repeats the earlier ones.
        let trailing = self
            .messages
            .iter()
            .enumerate()
            .rev()
            .take_while(|(_, message)| message.role == "user")
            .collect::<Vec<_>>();
        let mut message_ids = Vec::new();
        let mut messages = Vec::new();
        let mut texts = Vec::new();
        for (place, message) in trailing.into_iter().rev() {
            let id = if message.id.is_empty() {
                unnamed_id(place, &message.content)
            } else {
                message.id.clone()
            };
            if delivered.contains(&id) {
                continue;
            }
            let text = text_of(&message.content);
            messages.push(serde_json::json!({"id": id, "role": "user", "content": text}));
            message_ids.push(id);
            if !text.trim().is_empty() {
                texts.push(text.trim().to_owned());
            }
        }
        let input = match (answers.len(), texts.is_empty()) {
            (0, true) => return Err(Refused::NothingNew),
            (0, false) => texts.join("\n\n"),
            (1, true) => answers.remove(0),
            (1, false) => return Err(Refused::AnswerAndMessage),
            (_, _) => return Err(Refused::SeveralAnswers),
        };
        Ok(Turn {
            input: Input::Message(input.into()),
            message_ids,
            messages,
        })
    }
}

/// The id of a message sent without one: its place in the conversation and a hash of its
/// content (FNV-1a), so that the same message sent again is known.
fn unnamed_id(place: usize, content: &Value) -> String {
    let hash = content
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("unnamed-{place}-{hash:016x}")
}

/// A message's text: the string itself, or its text parts joined by newlines.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use serde_json::json;

    use super::*;

    fn request(body: Value) -> RunRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn the_new_input_is_the_user_messages_after_the_agent_last_spoke() {
        let request = request(json!({
            "threadId": "t", "runId": "r2",
            "messages": [
                {"id": "u1", "role": "user", "content": "first"},
                {"id": "a1", "role": "assistant", "content": "answer"},
                {"id": "u2", "role": "user", "content": "second"},
                {"id": "u3", "role": "user", "content": [{"type": "text", "text": "third"}, {"type": "image", "source": {}}]},
            ],
            "tools": [], "context": [], "state": {}, "forwardedProps": {},
        }));
        let turn = request.turn(&HashSet::new(), &[]).unwrap();
        assert_eq!(turn.input, Input::Message("second\n\nthird".into()));
        assert_eq!(turn.message_ids, ["u2", "u3"]);
        let delivered = HashSet::from([String::from("u2"), String::from("u3")]);
        assert_eq!(
            request.turn(&delivered, &[]).unwrap_err(),
            Refused::NothingNew
        );
    }

    #[test]
    fn snake_case_bodies_and_messages_without_ids_are_taken() {
        let body = |messages: Value| {
            request(json!({
                "thread_id": "t", "run_id": "r1", "messages": messages,
                "resume": [{"interrupt_id": "i1", "status": "cancelled"}],
            }))
        };
        let first = body(json!([{"role": "user", "content": "hello"}]));
        assert_eq!(
            (first.thread_id.as_str(), first.run_id.as_str()),
            ("t", "r1")
        );
        assert_eq!(first.resume[0].interrupt_id, "i1");
        let turn = first.turn(&HashSet::new(), &[String::from("i1")]).unwrap();
        assert_eq!(turn.input, Input::Message("hello".into()));
        // The conversation sent again, the same message unnamed: it is known.
        let delivered: HashSet<String> = turn.message_ids.into_iter().collect();
        let again = body(json!([
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "hello"},
        ]));
        let next = again.turn(&delivered, &[String::from("i1")]).unwrap();
        assert_eq!(
            next.input,
            Input::Message("hello".into()),
            "a new message at a new place"
        );
        assert!(!delivered.contains(&next.message_ids[0]));
        let repeated = body(json!([{"role": "user", "content": "hello"}]));
        assert_eq!(
            repeated
                .turn(&delivered, &[String::from("i1")])
                .unwrap_err(),
            Refused::NothingNew
        );
    }

    #[test]
    fn an_answer_must_name_an_interrupt_the_session_waits_on_and_come_alone() {
        let request = request(json!({
            "threadId": "t", "runId": "r2", "messages": [],
            "resume": [{"interruptId": "i1", "status": "resolved", "payload": {"approved": true}}],
        }));
        let turn = request
            .turn(&HashSet::new(), &[String::from("i1")])
            .unwrap();
        assert_eq!(turn.input, Input::Message(r#"{"approved":true}"#.into()));
        assert_eq!(
            request.turn(&HashSet::new(), &[]).unwrap_err().to_string(),
            "resume answers interrupt i1, but the session waits on no interrupt"
        );
        let both = request_with_message(&request);
        assert_eq!(
            both.turn(&HashSet::new(), &[String::from("i1")])
                .unwrap_err(),
            Refused::AnswerAndMessage
        );
    }

    fn request_with_message(request: &RunRequest) -> RunRequest {
        let mut both = request.clone();
        both.messages.push(Message {
            id: String::from("u9"),
            role: String::from("user"),
            content: json!("and another thing"),
        });
        both
    }
}
