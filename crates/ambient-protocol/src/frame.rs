//! The frames a runner sends: the envelope and every kind it carries.

use std::{borrow::Cow, fmt};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::status::ResultPayload;

/// The field that carries a frame's stable id.
///
/// The backend keeps only `type` and `payload` of a frame whose payload is an object, so
/// the id goes inside the payload. When the payload is not an object (lifecycle strings,
/// partial text), the backend stores the whole envelope as the payload, so the id goes in
/// the envelope. Either way, the copy the backend broadcasts has it at `payload.frame_id`.
pub const FRAME_ID_FIELD: &str = "frame_id";

/// Declares [`MessageType`] from one list of variants and their wire strings, so that
/// the strings are written once.
macro_rules! message_types {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// The `type` string of a runner frame.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum MessageType {
            $($(#[$doc])* $variant,)*
        }

        impl MessageType {
            /// The wire string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                }
            }

            /// The type for a wire string, if it is a runner frame type.
            pub fn from_wire(kind: &str) -> Option<Self> {
                match kind {
                    $($wire => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

message_types! {
    /// `system.message`: lifecycle strings and log lines.
    SystemMessage = "system.message",
    /// `agent.message`: text, tool use, tool result, result and partial text.
    AgentMessage = "agent.message",
    /// `user.message`: the echo of a prompt the runner was given.
    UserMessage = "user.message",
    /// `message.partial`: a fragment, accepted by the UI; this runner sends partials as
    /// `agent.message` with a `partial` field instead, as the Python runner defined them.
    MessagePartial = "message.partial",
    /// `agent.running`: a turn started.
    AgentRunning = "agent.running",
    /// `agent.waiting`: the agent waits for the user.
    AgentWaiting = "agent.waiting",
    /// `system.trace`: the id of the session's OpenTelemetry trace. Not a type of the
    /// original runner's: the backend stores and relays it like any frame, and a UI that
    /// does not know it shows nothing for it.
    SystemTrace = "system.trace",
}

impl Serialize for MessageType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let kind = Cow::<'de, str>::deserialize(deserializer)?;
        Self::from_wire(&kind).ok_or_else(|| {
            serde::de::Error::custom(format_args!("`{kind}` is not a runner frame type"))
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
    /// `system.trace` `{"trace_id": …}`: where the session's trace is.
    Trace {
        /// The trace id, 32 hex digits.
        trace_id: String,
    },
    /// What a subagent said or did (a text block, a tool use or a tool result): the
    /// frame of `body`, its payload naming the tool use that started the subagent
    /// (`parent_tool_use_id`).
    Subagent {
        /// The tool use that started the subagent.
        parent_tool_use_id: String,
        /// The frame it would be from the main agent.
        body: Box<Outbound>,
    },
}

impl Outbound {
    /// The frame type this kind is sent as.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Lifecycle(_) | Self::Log { .. } => MessageType::SystemMessage,
            Self::UserMessage { .. } => MessageType::UserMessage,
            Self::Running => MessageType::AgentRunning,
            Self::Waiting => MessageType::AgentWaiting,
            Self::Trace { .. } => MessageType::SystemTrace,
            Self::TextBlock { .. }
            | Self::ToolUse { .. }
            | Self::ToolResult(_)
            | Self::Result(_)
            | Self::Partial(_) => MessageType::AgentMessage,
            Self::Subagent { body, .. } => body.message_type(),
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
            Self::Trace { .. } => "trace",
            Self::Subagent { body, .. } => body.kind_name(),
        }
    }

    /// The payload this kind is sent with (its object fields tagged with `frame_id`),
    /// its partial, and the id the envelope carries when the payload is no object.
    fn wire_parts<'a>(&'a self, frame_id: &'a str) -> WireParts<'a> {
        let object = |body: Body<'a>| WireParts {
            payload: Payload::Object(Tagged {
                body,
                frame_id,
                parent_tool_use_id: None,
            }),
            partial: None,
            envelope_id: None,
        };
        let text = Cow::Borrowed;
        match self {
            Self::Lifecycle(event) => WireParts {
                payload: Payload::Lifecycle(event),
                partial: None,
                envelope_id: Some(frame_id),
            },
            Self::Partial(partial) => WireParts {
                payload: Payload::Empty(""),
                partial: Some(partial),
                envelope_id: Some(frame_id),
            },
            Self::Log { message } => object(Body::Log(LogBody {
                message: text(message),
            })),
            Self::Trace { trace_id } => object(Body::Trace(TraceBody {
                trace_id: text(trace_id),
            })),
            Self::UserMessage { content } => object(Body::User(UserBody {
                content: text(content),
            })),
            Self::Running | Self::Waiting => object(Body::Nothing(NoFields {})),
            Self::TextBlock { text: block } => object(Body::Text(TextBlockBody {
                kind: AgentMessageTag::AgentMessage,
                content: TextContent {
                    kind: TextBlockTag::TextBlock,
                    text: text(block),
                },
            })),
            Self::ToolUse { tool, input, id } => object(Body::ToolUse(ToolUseBody {
                tool: text(tool),
                input: Cow::Borrowed(input),
                id: id.as_deref().map(text),
            })),
            Self::ToolResult(tool_result) => object(Body::ToolResult(ToolResultBody {
                tool_result: Cow::Borrowed(tool_result),
            })),
            Self::Result(payload) => object(Body::Result(ResultBody {
                kind: ResultTag::ResultMessage,
                payload: Cow::Borrowed(payload),
            })),
            Self::Subagent {
                parent_tool_use_id,
                body,
            } => {
                let mut parts = body.wire_parts(frame_id);
                if let Payload::Object(tagged) = &mut parts.payload {
                    tagged.parent_tool_use_id = Some(parent_tool_use_id);
                }
                parts
            }
        }
    }

    /// The size of this frame's payload and partial as JSON, in bytes (the frame id
    /// included).
    pub fn payload_len(&self) -> usize {
        let parts = self.wire_parts("");
        let mut counter = ByteCounter(0);
        // Plain data with string keys: writing it to a counter cannot fail.
        let _written = serde_json::to_writer(&mut counter, &parts.payload);
        let _written = serde_json::to_writer(&mut counter, &parts.partial);
        counter.0
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
                    let log: LogBody<'_> = from_value(payload).map_err(shape)?;
                    Ok(Self::Log {
                        message: log.message.into_owned(),
                    })
                }
            },
            MessageType::UserMessage => {
                let user: UserBody<'_> = from_value(payload).map_err(shape)?;
                Ok(Self::UserMessage {
                    content: user.content.into_owned(),
                })
            }
            MessageType::SystemTrace => {
                let trace: TraceBody<'_> = from_value(payload).map_err(shape)?;
                Ok(Self::Trace {
                    trace_id: trace.trace_id.into_owned(),
                })
            }
            MessageType::AgentRunning => Ok(Self::Running),
            MessageType::AgentWaiting => Ok(Self::Waiting),
            MessageType::AgentMessage => {
                let body = match from_value::<AgentBody<'_>>(payload).map_err(shape)? {
                    AgentBody::ToolResult(p) => Self::ToolResult(p.tool_result.into_owned()),
                    AgentBody::ToolUse(p) => Self::ToolUse {
                        tool: p.tool.into_owned(),
                        input: p.input.into_owned(),
                        id: p.id.map(Cow::into_owned),
                    },
                    AgentBody::Text(p) => Self::TextBlock {
                        text: p.content.text.into_owned(),
                    },
                    AgentBody::Result(p) => Self::Result(p.payload.into_owned()),
                };
                Ok(
                    match payload.get("parent_tool_use_id").and_then(Value::as_str) {
                        Some(parent) => Self::Subagent {
                            parent_tool_use_id: parent.to_owned(),
                            body: Box::new(body),
                        },
                        None => body,
                    },
                )
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
        // One id per frame: written without the formatting machinery.
        let mut id = String::with_capacity(instance.len() + 21);
        id.push_str(instance);
        id.push('-');
        crate::write::write_u64(&mut id, seq);
        Self(id)
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
        let mut out =
            String::with_capacity(self.body.size_bound().map_or(512, |bound| bound / 4 + 160));
        if crate::write::write_frame(&mut out, self) {
            return out;
        }
        // A frame is made of strings, numbers and JSON values only, so serialising it
        // cannot fail; the fallback keeps this total without a panic path.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

impl Serialize for Frame {
    /// Writes the envelope straight from the typed body, borrowing every field: this is
    /// the runner's hot path, so no intermediate JSON value is built.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let parts = self.body.wire_parts(self.id.as_str());
        Envelope {
            seq: self.seq,
            kind: self.body.message_type(),
            timestamp: &self.timestamp,
            payload: parts.payload,
            partial: parts.partial,
            frame_id: parts.envelope_id,
        }
        .serialize(serializer)
    }
}

/// A frame's parts as written.
struct WireParts<'a> {
    payload: Payload<'a>,
    partial: Option<&'a Partial>,
    envelope_id: Option<&'a str>,
}

/// Counts the bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A payload as written.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Lifecycle(&'a Lifecycle),
    Empty(&'static str),
    Object(Tagged<'a>),
}

/// The fields of an object payload: borrowed from the frame when written, owned when
/// read back.
#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Log(LogBody<'a>),
    Trace(TraceBody<'a>),
    User(UserBody<'a>),
    Nothing(NoFields),
    Text(TextBlockBody<'a>),
    ToolUse(ToolUseBody<'a>),
    ToolResult(ToolResultBody<'a>),
    Result(ResultBody<'a>),
}

#[derive(Serialize)]
struct NoFields {}

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
    body: Body<'a>,
    frame_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_tool_use_id: Option<&'a str>,
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

fn from_value<'a, T: Deserialize<'a>>(value: &'a Value) -> Result<T, serde_json::Error> {
    T::deserialize(value)
}

#[derive(Serialize, Deserialize)]
struct LogBody<'a> {
    message: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct TraceBody<'a> {
    trace_id: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct UserBody<'a> {
    content: Cow<'a, str>,
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
struct TextContent<'a> {
    #[serde(rename = "type")]
    kind: TextBlockTag,
    text: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct TextBlockBody<'a> {
    #[serde(rename = "type")]
    kind: AgentMessageTag,
    content: TextContent<'a>,
}

#[derive(Serialize, Deserialize)]
struct ToolUseBody<'a> {
    tool: Cow<'a, str>,
    input: Cow<'a, Value>,
    id: Option<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
struct ToolResultBody<'a> {
    tool_result: Cow<'a, ToolResult>,
}

#[derive(Serialize, Deserialize)]
struct ResultBody<'a> {
    #[serde(rename = "type")]
    kind: ResultTag,
    payload: Cow<'a, ResultPayload>,
}

/// The shapes an `agent.message` payload can take; tried in this order, each told apart by
/// a key or tag the others lack.
#[derive(Deserialize)]
#[serde(untagged)]
enum AgentBody<'a> {
    ToolResult(ToolResultBody<'a>),
    ToolUse(ToolUseBody<'a>),
    Text(TextBlockBody<'a>),
    Result(ResultBody<'a>),
}
