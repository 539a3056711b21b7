//! The HTTP bodies of the runner-facing backend API (`platform-wire.md` §3.6 and §4).

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SessionMessage;

/// Annotation where the runner keeps the agent framework's session id for a continuation.
pub const SDK_SESSION_ID_ANNOTATION: &str = "ambient-code.io/sdk-session-id";
/// Annotation the backend sets on a session that continues another.
pub const PARENT_SESSION_ANNOTATION: &str = "vteam.ambient-code/parent-session-id";

/// The keys of a status PUT body that the backend keeps; it drops every other key.
pub const STATUS_FIELDS: &[&str] = &[
    "phase",
    "completionTime",
    "cost",
    "message",
    "subtype",
    "duration_ms",
    "duration_api_ms",
    "is_error",
    "num_turns",
    "session_id",
    "total_cost_usd",
    "usage",
    "result",
];

/// The phase of an agentic session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Created, not yet picked up by the operator.
    Pending,
    /// The operator is creating the Job.
    Creating,
    /// The runner is running.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with a failure.
    Failed,
    /// Stopped by a user; the runner must never move a session out of it.
    Stopped,
    /// The operator could not run the session.
    Error,
}

impl Phase {
    /// Whether the session has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Stopped | Self::Error
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What the agent framework reported at the end of a run or a turn. Every field may be
/// missing; `usage` is passed through as the framework gave it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultPayload {
    /// `success`, `error_max_turns`, `error_during_execution`, …
    pub subtype: Option<String>,
    /// Wall time of the run.
    pub duration_ms: Option<u64>,
    /// Time spent waiting for the model's API.
    pub duration_api_ms: Option<u64>,
    /// Whether the run ended in an error.
    pub is_error: Option<bool>,
    /// Turns the framework counted.
    pub num_turns: Option<u64>,
    /// The framework's own session id (not the platform's session name).
    pub session_id: Option<String>,
    /// Cost in US dollars.
    pub total_cost_usd: Option<f64>,
    /// Token usage, as the framework reported it.
    pub usage: Option<Value>,
    /// The final text.
    pub result: Option<String>,
}

/// A framework's token counts, read from its `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenCounts {
    /// Tokens of the prompt: Anthropic's `input_tokens` with its cache reads and writes
    /// (which it counts apart), or LangChain's `input_tokens`.
    pub input: Option<u64>,
    /// Tokens of the answers.
    pub output: Option<u64>,
    /// Of the prompt's, those read from Anthropic's cache.
    pub cache_read: Option<u64>,
    /// Of the prompt's, those written to Anthropic's cache.
    pub cache_write: Option<u64>,
}

impl TokenCounts {
    /// The counts `usage` names; both `None` when it names none.
    pub fn of(usage: &Value) -> Self {
        let count = |key: &str| usage.get(key).and_then(Value::as_u64);
        let cache_read = count("cache_read_input_tokens");
        let cache_write = count("cache_creation_input_tokens");
        let input = count("input_tokens").map(|input| {
            input
                .saturating_add(cache_read.unwrap_or(0))
                .saturating_add(cache_write.unwrap_or(0))
        });
        Self {
            input,
            output: count("output_tokens"),
            cache_read,
            cache_write,
        }
    }
}

impl ResultPayload {
    /// The token counts of its `usage`.
    pub fn tokens(&self) -> TokenCounts {
        self.usage.as_ref().map(TokenCounts::of).unwrap_or_default()
    }
}

/// The body of `PUT …/agentic-sessions/{s}/status`. Only set fields are sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// The new phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// A human-readable line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339 time the session ended.
    #[serde(rename = "completionTime", skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// See [`ResultPayload::subtype`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// See [`ResultPayload::duration_ms`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// See [`ResultPayload::duration_api_ms`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_api_ms: Option<u64>,
    /// Whether the session failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// See [`ResultPayload::num_turns`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<u64>,
    /// The platform session name (the CR name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// See [`ResultPayload::total_cost_usd`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_cost_usd: Option<f64>,
    /// See [`ResultPayload::usage`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    /// The final text, truncated by the sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// The longest status `message`: a failure's reason can quote a child's output, and the
/// status must stay small enough for the backend to take.
pub const MAX_STATUS_MESSAGE_CHARS: usize = 4_000;
/// The longest final result text in a status, as the Python runner truncates it.
pub const MAX_STATUS_RESULT_CHARS: usize = 10_000;
/// The largest `usage` object kept in a status, serialised; a larger one is dropped.
pub const MAX_STATUS_USAGE_BYTES: usize = 16 << 10;
/// The longest short field (`subtype`, `session_id`).
const MAX_STATUS_NAME_CHARS: usize = 256;

impl StatusUpdate {
    /// Cuts every field that carries what an agent or a child said to its bound, so that
    /// the whole body stays a few kilobytes whatever they said. A cut text says so. The
    /// message keeps its start and its end (a failure's reason, then a child's last
    /// words), the result its start.
    pub fn bound(&mut self) {
        cut_middle(&mut self.message, MAX_STATUS_MESSAGE_CHARS);
        cut(&mut self.result, MAX_STATUS_RESULT_CHARS);
        cut(&mut self.subtype, MAX_STATUS_NAME_CHARS);
        cut(&mut self.session_id, MAX_STATUS_NAME_CHARS);
        if self
            .usage
            .as_ref()
            .is_some_and(|usage| usage.to_string().len() > MAX_STATUS_USAGE_BYTES)
        {
            self.usage = None;
        }
    }
}

/// Cuts `text` to about `max` characters by taking out its middle, marking the cut.
fn cut_middle(text: &mut Option<String>, max: usize) {
    let Some(value) = text else {
        return;
    };
    let count = value.chars().count();
    if count <= max {
        return;
    }
    let head = max / 4;
    let tail = max - head;
    let start: String = value.chars().take(head).collect();
    let end: String = value.chars().skip(count - tail).collect();
    *value = format!("{start} … ({} characters cut) … {end}", count - max);
}

/// Cuts `text` to `max` characters, marking the cut.
fn cut(text: &mut Option<String>, max: usize) {
    let Some(value) = text else {
        return;
    };
    if let Some((end, _)) = value.char_indices().nth(max) {
        let rest = value[end..].chars().count();
        value.truncate(end);
        value.push_str(&format!(" … ({rest} more characters cut)"));
    }
}

/// The body of `PATCH …/agentic-sessions/{s}` (a JSON merge patch of annotations).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnnotationPatch {
    /// The object metadata to merge.
    pub metadata: AnnotationMetadata,
}

/// The `metadata` of an [`AnnotationPatch`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnnotationMetadata {
    /// Annotations to set.
    pub annotations: BTreeMap<String, String>,
}

impl AnnotationPatch {
    /// A patch that sets one annotation.
    pub fn single(key: impl Into<String>, value: impl Into<String>) -> Self {
        let mut annotations = BTreeMap::new();
        annotations.insert(key.into(), value.into());
        Self {
            metadata: AnnotationMetadata { annotations },
        }
    }
}

/// The answer to the annotation PATCH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchAccepted {
    /// `Session patched successfully`.
    pub message: String,
    /// The annotations after the merge.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `GET …/agentic-sessions/{s}`: the custom resource as the backend returns it. Only the
/// parts a runner reads are typed; the spec is kept as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgenticSession {
    /// `vteam.ambient-code/v1alpha1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// `AgenticSession`.
    pub kind: String,
    /// Name, namespace and annotations.
    pub metadata: ObjectMeta,
    /// The session's spec, untyped.
    #[serde(default)]
    pub spec: Value,
    /// The session's status.
    #[serde(default)]
    pub status: Option<SessionStatus>,
}

/// The metadata of an [`AgenticSession`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The session name.
    pub name: String,
    /// The project (namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The part of a session's status a runner reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// The phase, when set.
    #[serde(default)]
    pub phase: Option<Phase>,
    /// The last status message.
    #[serde(default)]
    pub message: Option<String>,
}

/// `GET …/sessions/{s}/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageHistory {
    /// The session name.
    #[serde(rename = "sessionId")]
    pub session_id: String,
    /// Every stored message, oldest first.
    pub messages: Vec<SessionMessage>,
}

/// The answer of `POST …/sessions/{s}/messages`: `{"status":"queued"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// `queued`.
    pub status: String,
}

/// The backend's error body: `{"error": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// The answer of `POST …/github/token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintedToken {
    /// The token.
    pub token: String,
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn a_status_stays_small_whatever_its_fields_carry() {
        let mut update = StatusUpdate {
            message: Some("é".repeat(1_000_000)),
            result: Some("r".repeat(20_000)),
            subtype: Some("x".repeat(300)),
            usage: Some(serde_json::json!({"pad": "y".repeat(20_000)})),
            ..StatusUpdate::default()
        };
        update.bound();
        let message = update.message.as_deref().unwrap_or_default();
        assert!(message.starts_with(&"é".repeat(MAX_STATUS_MESSAGE_CHARS / 4)));
        assert!(
            message.contains(" … (996000 characters cut) … "),
            "{message}"
        );
        assert!(message.ends_with(&"é".repeat(MAX_STATUS_MESSAGE_CHARS * 3 / 4)));
        let result = update.result.as_deref().unwrap_or_default();
        assert!(
            result.ends_with("r … (10000 more characters cut)"),
            "{result}"
        );
        assert!(
            update
                .subtype
                .as_deref()
                .unwrap_or_default()
                .ends_with("(44 more characters cut)")
        );
        assert_eq!(update.usage, None);
        let body = serde_json::to_string(&update).unwrap_or_default();
        assert!(body.len() < 32 << 10, "{} bytes", body.len());
    }
}
