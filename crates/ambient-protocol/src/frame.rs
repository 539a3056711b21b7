//! The frames a runner sends: the envelope and every kind it carries.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::status::ResultPayload;

/// The field that carries a frame's stable id.
///
/// The backend keeps only `type` and `payload` of a frame whose payload is an object, so
/// the id goes inside the payload. When the payload is not an object (lifecycle strings,
/// partial text), the backend stores the whole envelope as the payload, so the id goes in
/// the envelope. Either way, the copy the backend broadcasts has it at `payload.frame_id`.
pub const FRAME_ID_FIELD: &str = "frame_id";

/// The `type` string of a runner frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageType {
    /// `system.message`: lifecycle strings and log lines.
    #[serde(rename = "system.message")]
    SystemMessage,
    /// `agent.message`: text, tool use, tool result, result and partial text.
    #[serde(rename = "agent.message")]
    AgentMessage,
    /// `user.message`: the echo of a prompt the runner was given.
    #[serde(rename = "user.message")]
    UserMessage,
    /// `message.partial`: a fragment, accepted by the UI; this runner sends partials as
    /// `agent.message` with a `partial` field instead, as the Python runner defined them.
    #[serde(rename = "message.partial")]
    MessagePartial,
    /// `agent.running`: a turn started.
    #[serde(rename = "agent.running")]
    AgentRunning,
    /// `agent.waiting`: the agent waits for the user.
    #[serde(rename = "agent.waiting")]
    AgentWaiting,
}

impl MessageType {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SystemMessage => "system.message",
            Self::AgentMessage => "agent.message",
            Self::UserMessage => "user.message",
            Self::MessagePartial => "message.partial",
            Self::AgentRunning => "agent.running",
            Self::AgentWaiting => "agent.waiting",
        }
    }

    /// The type for a wire string, if it is a runner frame type.
    pub fn from_wire(kind: &str) -> Option<Self> {
        Some(match kind {
            "system.message" => Self::SystemMessage,
            "agent.message" => Self::AgentMessage,
            "user.message" => Self::UserMessage,
            "message.partial" => Self::MessagePartial,
            "agent.running" => Self::AgentRunning,
            "agent.waiting" => Self::AgentWaiting,
            _ => return None,
        })
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lifecycle event, sent as a bare string payload of a `system.message` (the UI reads it
/// from the stored envelope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lifecycle {
    /// `session.started`.
    #[serde(rename = "session.started")]
    SessionStarted,
    /// `session.completed`.
    #[serde(rename = "session.completed")]
    SessionCompleted,
    /// `session.failed`.
    #[serde(rename = "session.failed")]
    SessionFailed,
}

/// One fragment of a longer text (token streaming, or a text too large for one frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partial {
    /// The stream the fragment belongs to; fragments of one text share it.
    pub id: String,
    /// The fragment's position in its stream, from 0.
    pub index: u32,
    /// How many fragments the stream has, or 0 while that is not known.
    pub total: u32,
    /// The text of the fragment.
    pub data: String,
}

/// The result of one tool call, as the agent framework reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The id of the tool use this answers.
    pub tool_use_id: Option<String>,
    /// A string, an array of content objects, or null: whatever the framework reported.
    pub content: Value,
    /// Whether the tool failed, when the framework says.
    pub is_error: Option<bool>,
}

/// Every kind of frame a runner sends, with its payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// `system.message` with a bare string payload.
    Lifecycle(Lifecycle),
    /// `system.message` `{"message": …}`: a progress or log line for the user.
    Log {
        /// The line.
        message: String,
    },
    /// `user.message` `{"content": …}`: the echo of a prompt.
    UserMessage {
        /// The prompt.
        content: String,
    },
    /// `agent.running` `{}`.
    Running,
    /// `agent.message` `{"type":"agent_message","content":{"type":"text_block","text":…}}`.
    TextBlock {
        /// The text.
        text: String,
    },
    /// `agent.message` `{"tool","input","id"}`.
    ToolUse {
        /// The tool's name.
        tool: String,
        /// The tool's input, an object.
        input: Value,
        /// The framework's id for this call, if it has one.
        id: Option<String>,
    },
    /// `agent.message` `{"tool_result":{…}}`.
    ToolResult(ToolResult),
    /// `agent.waiting` `{}`.
    Waiting,
    /// `agent.message` `{"type":"result.message","payload":{…}}`.
    Result(ResultPayload),
    /// `agent.message` with payload `""` and a `partial`.
    Partial(Partial),
}

impl Outbound {
    /// The frame type this kind is sent as.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Lifecycle(_) | Self::Log { .. } => MessageType::SystemMessage,
            Self::UserMessage { .. } => MessageType::UserMessage,
            Self::Running => MessageType::AgentRunning,
            Self::Waiting => MessageType::AgentWaiting,
            Self::TextBlock { .. }
            | Self::ToolUse { .. }
            | Self::ToolResult(_)
            | Self::Result(_)
            | Self::Partial(_) => MessageType::AgentMessage,
        }
    }

    /// A short name of the kind, for logs and errors.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Lifecycle(_) => "lifecycle",
            Self::Log { .. } => "log",
            Self::UserMessage { .. } => "user message",
            Self::Running => "running",
            Self::TextBlock { .. } => "text block",
            Self::ToolUse { .. } => "tool use",
            Self::ToolResult(_) => "tool result",
            Self::Waiting => "waiting",
            Self::Result(_) => "result",
            Self::Partial(_) => "partial",
        }
    }

    /// The payload and partial this kind is sent with.
    pub(crate) fn to_payload(&self) -> (Value, Option<Partial>) {
        let payload = match self {
            Self::Lifecycle(event) => to_value(event),
            Self::Log { message } => to_value(&LogPayload {
                message: message.clone(),
            }),
            Self::UserMessage { content } => to_value(&UserPayload {
                content: content.clone(),
            }),
            Self::Running | Self::Waiting => Value::Object(Map::new()),
            Self::TextBlock { text } => to_value(&TextBlockPayload {
                kind: AgentMessageTag::AgentMessage,
                content: TextContent {
                    kind: TextBlockTag::TextBlock,
                    text: text.clone(),
                },
            }),
            Self::ToolUse { tool, input, id } => to_value(&ToolUsePayload {
                tool: tool.clone(),
                input: input.clone(),
                id: id.clone(),
            }),
            Self::ToolResult(result) => to_value(&ToolResultPayload {
                tool_result: result.clone(),
            }),
            Self::Result(result) => to_value(&ResultEnvelope {
                kind: ResultTag::ResultMessage,
                payload: result.clone(),
            }),
            Self::Partial(partial) => return (Value::String(String::new()), Some(partial.clone())),
        };
        (payload, None)
    }

    /// Reads a kind back from its wire parts; the inverse of what [`Frame`] sends.
    pub fn from_wire(
        kind: MessageType,
        payload: &Value,
        partial: Option<&Partial>,
    ) -> Result<Self, WireError> {
        let shape = |source| WireError::PayloadShape { kind, source };
        if let Some(partial) = partial {
            return match kind {
                MessageType::AgentMessage | MessageType::MessagePartial => {
                    Ok(Self::Partial(partial.clone()))
                }
                _ => Err(WireError::UnexpectedPartial { kind }),
            };
        }
        match kind {
            MessageType::SystemMessage => match payload {
                Value::String(_) => Ok(Self::Lifecycle(from_value(payload).map_err(shape)?)),
                _ => {
                    let log: LogPayload = from_value(payload).map_err(shape)?;
                    Ok(Self::Log {
                        message: log.message,
                    })
                }
            },
            MessageType::UserMessage => {
                let user: UserPayload = from_value(payload).map_err(shape)?;
                Ok(Self::UserMessage {
                    content: user.content,
                })
            }
            MessageType::AgentRunning => Ok(Self::Running),
            MessageType::AgentWaiting => Ok(Self::Waiting),
            MessageType::AgentMessage => {
                Ok(match from_value::<AgentPayload>(payload).map_err(shape)? {
                    AgentPayload::ToolResult(p) => Self::ToolResult(p.tool_result),
                    AgentPayload::ToolUse(p) => Self::ToolUse {
                        tool: p.tool,
                        input: p.input,
                        id: p.id,
                    },
                    AgentPayload::Text(p) => Self::TextBlock {
                        text: p.content.text,
                    },
                    AgentPayload::Result(p) => Self::Result(p.payload),
                })
            }
            MessageType::MessagePartial => Err(WireError::MissingPartial),
        }
    }
}

/// A frame's stable id: unique per runner process and frame, kept across resends, so that
/// a consumer can drop the rare duplicate a reconnect produces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameId(String);

impl FrameId {
    /// The id of frame `seq` of the runner instance `instance`.
    pub fn new(instance: &str, seq: u64) -> Self {
        Self(format!("{instance}-{seq}"))
    }

    /// Wraps an id read from the wire.
    pub fn from_wire(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FrameId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The envelope of every runner frame: `seq`, `type`, `timestamp`, `payload` and
/// `partial` (always present, `null` unless the frame is a fragment), plus the stable id
/// (see [`FRAME_ID_FIELD`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawFrame")]
pub struct Frame {
    /// Per-process counter from 1; the backend ignores it.
    pub seq: u64,
    /// The stable id.
    pub id: FrameId,
    /// Naive UTC, see [`crate::runner_timestamp`].
    pub timestamp: String,
    /// What the frame carries.
    pub body: Outbound,
}

impl Frame {
    /// The frame as JSON text, ready for a WebSocket text message.
    pub fn to_json(&self) -> String {
        // A frame is made of strings, numbers and JSON values only, so serialising it
        // cannot fail; the fallback keeps this total without a panic path.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

impl Serialize for Frame {
    /// Writes the envelope straight from the typed body, borrowing every field: this is
    /// the runner's hot path, so no intermediate JSON value is built.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let id = self.id.as_str();
        let (payload, partial, envelope_id) = match &self.body {
            Outbound::Lifecycle(event) => (Payload::Lifecycle(event), None, Some(id)),
            Outbound::Partial(partial) => (Payload::Empty(""), Some(partial), Some(id)),
            Outbound::Log { message } => (object(BodyRef::Log(LogRef { message }), id), None, None),
            Outbound::UserMessage { content } => {
                (object(BodyRef::User(UserRef { content }), id), None, None)
            }
            Outbound::Running | Outbound::Waiting => {
                (object(BodyRef::Nothing(NoFields {}), id), None, None)
            }
            Outbound::TextBlock { text } => {
                let body = BodyRef::Text(TextBlockRef {
                    kind: AgentMessageTag::AgentMessage,
                    content: TextContentRef {
                        kind: TextBlockTag::TextBlock,
                        text,
                    },
                });
                (object(body, id), None, None)
            }
            Outbound::ToolUse {
                tool,
                input,
                id: tool_id,
            } => {
                let body = BodyRef::ToolUse(ToolUseRef {
                    tool,
                    input,
                    id: tool_id.as_deref(),
                });
                (object(body, id), None, None)
            }
            Outbound::ToolResult(tool_result) => (
                object(BodyRef::ToolResult(ToolResultRef { tool_result }), id),
                None,
                None,
            ),
            Outbound::Result(payload) => {
                let body = BodyRef::Result(ResultRef {
                    kind: ResultTag::ResultMessage,
                    payload,
                });
                (object(body, id), None, None)
            }
        };
        Envelope {
            seq: self.seq,
            kind: self.body.message_type(),
            timestamp: &self.timestamp,
            payload,
            partial,
            frame_id: envelope_id,
        }
        .serialize(serializer)
    }
}

fn object<'a>(body: BodyRef<'a>, frame_id: &'a str) -> Payload<'a> {
    Payload::Object(Tagged { body, frame_id })
}

/// A payload as written.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Lifecycle(&'a Lifecycle),
    Empty(&'static str),
    Object(Tagged<'a>),
}

/// The fields of an object payload, borrowed from the frame.
#[derive(Serialize)]
#[serde(untagged)]
enum BodyRef<'a> {
    Log(LogRef<'a>),
    User(UserRef<'a>),
    Nothing(NoFields),
    Text(TextBlockRef<'a>),
    ToolUse(ToolUseRef<'a>),
    ToolResult(ToolResultRef<'a>),
    Result(ResultRef<'a>),
}

#[derive(Serialize)]
struct NoFields {}

#[derive(Serialize)]
struct LogRef<'a> {
    message: &'a str,
}

#[derive(Serialize)]
struct UserRef<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct TextContentRef<'a> {
    #[serde(rename = "type")]
    kind: TextBlockTag,
    text: &'a str,
}

#[derive(Serialize)]
struct TextBlockRef<'a> {
    #[serde(rename = "type")]
    kind: AgentMessageTag,
    content: TextContentRef<'a>,
}

#[derive(Serialize)]
struct ToolUseRef<'a> {
    tool: &'a str,
    input: &'a Value,
    id: Option<&'a str>,
}

#[derive(Serialize)]
struct ToolResultRef<'a> {
    tool_result: &'a ToolResult,
}

#[derive(Serialize)]
struct ResultRef<'a> {
    #[serde(rename = "type")]
    kind: ResultTag,
    payload: &'a ResultPayload,
}

/// The envelope as written (see [`Frame`]'s `Serialize`).
#[derive(Serialize)]
struct Envelope<'a, P: Serialize> {
    seq: u64,
    #[serde(rename = "type")]
    kind: MessageType,
    timestamp: &'a str,
    payload: P,
    partial: Option<&'a Partial>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frame_id: Option<&'a str>,
}

/// An object payload with the frame's id added.
#[derive(Serialize)]
struct Tagged<'a> {
    #[serde(flatten)]
    body: BodyRef<'a>,
    frame_id: &'a str,
}

/// The envelope exactly as it is on the wire.
#[derive(Deserialize)]
struct RawFrame {
    seq: u64,
    #[serde(rename = "type")]
    kind: MessageType,
    timestamp: String,
    payload: Value,
    partial: Option<Partial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frame_id: Option<String>,
}

impl TryFrom<RawFrame> for Frame {
    type Error = WireError;

    fn try_from(mut raw: RawFrame) -> Result<Self, Self::Error> {
        let id = match &mut raw.payload {
            Value::Object(object) => match object.remove(FRAME_ID_FIELD) {
                Some(Value::String(id)) => Some(id),
                _ => None,
            },
            _ => raw.frame_id.take(),
        };
        let id = id.ok_or(WireError::MissingFrameId)?;
        let body = Outbound::from_wire(raw.kind, &raw.payload, raw.partial.as_ref())?;
        Ok(Self {
            seq: raw.seq,
            id: FrameId(id),
            timestamp: raw.timestamp,
            body,
        })
    }
}

/// A frame or payload that does not have the shape its type requires.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The payload does not fit the frame type.
    #[error("payload of a `{kind}` frame has the wrong shape")]
    PayloadShape {
        /// The frame type.
        kind: MessageType,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
    /// A `partial` on a frame type that never carries one.
    #[error("a `{kind}` frame cannot carry a partial")]
    UnexpectedPartial {
        /// The frame type.
        kind: MessageType,
    },
    /// A `message.partial` frame without its `partial`.
    #[error("a `message.partial` frame has no partial")]
    MissingPartial,
    /// No stable id in the payload or the envelope.
    #[error("frame has no `frame_id`")]
    MissingFrameId,
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // Every payload type here is plain data with string keys, which serde_json always
    // serialises; `Null` is an unreachable fallback, never a panic.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn from_value<T: for<'de> Deserialize<'de>>(value: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(value)
}

#[derive(Serialize, Deserialize)]
struct LogPayload {
    message: String,
}

#[derive(Serialize, Deserialize)]
struct UserPayload {
    content: String,
}

#[derive(Serialize, Deserialize)]
enum AgentMessageTag {
    #[serde(rename = "agent_message")]
    AgentMessage,
}

#[derive(Serialize, Deserialize)]
enum TextBlockTag {
    #[serde(rename = "text_block")]
    TextBlock,
}

#[derive(Serialize, Deserialize)]
enum ResultTag {
    #[serde(rename = "result.message")]
    ResultMessage,
}

#[derive(Serialize, Deserialize)]
struct TextContent {
    #[serde(rename = "type")]
    kind: TextBlockTag,
    text: String,
}

#[derive(Serialize, Deserialize)]
struct TextBlockPayload {
    #[serde(rename = "type")]
    kind: AgentMessageTag,
    content: TextContent,
}

#[derive(Serialize, Deserialize)]
struct ToolUsePayload {
    tool: String,
    input: Value,
    id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ToolResultPayload {
    tool_result: ToolResult,
}

#[derive(Serialize, Deserialize)]
struct ResultEnvelope {
    #[serde(rename = "type")]
    kind: ResultTag,
    payload: ResultPayload,
}

/// The shapes an `agent.message` payload can take; tried in this order, each told apart by
/// a key or tag the others lack.
#[derive(Deserialize)]
#[serde(untagged)]
enum AgentPayload {
    ToolResult(ToolResultPayload),
    ToolUse(ToolUsePayload),
    Text(TextBlockPayload),
    Result(ResultEnvelope),
}
