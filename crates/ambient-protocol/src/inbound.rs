//! What the backend sends: its `SessionMessage` form, and what a runner makes of one.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{FRAME_ID_FIELD, FrameId, MessageType};

/// A message as the backend stores and broadcasts it (`hub.go` `SessionMessage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionMessage {
    /// The session name from the URL path.
    #[serde(rename = "sessionId")]
    pub session_id: String,
    /// The message type, copied from the frame or POST body.
    #[serde(rename = "type")]
    pub kind: String,
    /// Backend time, RFC 3339 at second precision.
    pub timestamp: String,
    /// The payload; for a runner frame whose payload was not an object, the whole
    /// runner envelope.
    #[serde(default)]
    pub payload: Value,
    /// Omitted unless set, and nothing sets it today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Value>,
}

impl SessionMessage {
    /// The stable id of the runner frame this message is a copy of, if it is one.
    pub fn frame_id(&self) -> Option<FrameId> {
        match self.payload.get(FRAME_ID_FIELD) {
            Some(Value::String(id)) => Some(FrameId::from_wire(id.as_str())),
            _ => None,
        }
    }

    /// What this message means to a runner.
    ///
    /// Bad payloads of known types are errors that name the type and what was wrong;
    /// types a runner does not act on are [`Inbound::Unknown`], never an error, so that a
    /// backend that learns new types does not break old runners.
    pub fn classify(&self) -> Result<Inbound, InboundError> {
        let kind = self.kind.as_str();
        if let (Some(runner_type), Some(frame_id)) = (MessageType::from_wire(kind), self.frame_id())
        {
            return Ok(Inbound::Echo {
                kind: runner_type,
                frame_id,
            });
        }
        let shape = |source| InboundError::PayloadShape {
            kind: self.kind.clone(),
            source,
        };
        Ok(match kind {
            // Other clients may use the dotted spelling (`platform-wire.md` §7 item 8).
            "user_message" | "user.message" => {
                let user = UserPayload::deserialize(&self.payload).map_err(shape)?;
                match user.content.or(user.text) {
                    Some(content) => Inbound::UserMessage { content },
                    None => {
                        return Err(InboundError::MissingContent {
                            kind: self.kind.clone(),
                        });
                    }
                }
            }
            "interrupt" => Inbound::Interrupt,
            "end_session" => Inbound::EndSession,
            "terminate" => Inbound::Terminate,
            "stop" => Inbound::Stop,
            "workflow_change" => {
                Inbound::WorkflowChange(WorkflowChange::deserialize(&self.payload).map_err(shape)?)
            }
            "repo_added" => {
                Inbound::RepoAdded(RepoAdded::deserialize(&self.payload).map_err(shape)?)
            }
            "repo_removed" => {
                let removed = RepoRemoved::deserialize(&self.payload).map_err(shape)?;
                Inbound::RepoRemoved { name: removed.name }
            }
            "pong" => Inbound::Pong,
            _ => match MessageType::from_wire(kind) {
                Some(runner_type) => Inbound::RunnerFrame { kind: runner_type },
                None => Inbound::Unknown {
                    kind: self.kind.clone(),
                },
            },
        })
    }
}

/// The stable id of the runner frame that the backend message `text` is a copy of, when
/// it is one and belongs to `session`; `None` for anything else.
///
/// This reads only the session, the type and `payload.frame_id`, borrowing them from the
/// text: a runner receives a copy of every frame it sends, so telling those apart must
/// cost as little as possible. Everything else goes through [`SessionMessage`].
pub fn echo_frame_id(text: &str, session: &str) -> Option<FrameId> {
    if let Some(found) = scan_echo(text, session) {
        return found.map(FrameId::from_wire);
    }
    let probe: EchoProbe<'_> = serde_json::from_str(text).ok()?;
    if probe.session_id != session || MessageType::from_wire(&probe.kind).is_none() {
        return None;
    }
    probe
        .payload
        .frame_id
        .map(|id| FrameId::from_wire(id.as_ref()))
}

/// The echo's id read by scanning the text, when it has the usual shape: the session and
/// the type first, as both the backend and the emulator write them. `None` when it has
/// another shape (the caller parses it then); `Some(None)` when it is not an echo.
///
/// A `"frame_id":"` in the text can only be a key: a quote inside a string is escaped.
fn scan_echo<'a>(text: &'a str, session: &str) -> Option<Option<&'a str>> {
    const KEY: &str = "\"frame_id\":\"";
    let rest = text
        .strip_prefix("{\"sessionId\":\"")?
        .strip_prefix(session)?
        .strip_prefix("\",\"type\":\"")?;
    let kind = &rest[..rest.find('"')?];
    if MessageType::from_wire(kind).is_none() {
        return Some(None);
    }
    // A searcher built once: this runs for every echo.
    static FRAME_ID_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(KEY));
    let Some(at) = FRAME_ID_KEY.find(rest.as_bytes()) else {
        return Some(None);
    };
    let id = &rest[at + KEY.len()..];
    let id = &id[..id.find('"')?];
    // An id with an escape is not one of a runner's: let the parser read it.
    if id.contains('\\') {
        return None;
    }
    Some(Some(id))
}

#[derive(Deserialize)]
struct EchoProbe<'a> {
    #[serde(rename = "sessionId", borrow)]
    session_id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    payload: PayloadProbe<'a>,
}

#[derive(Deserialize)]
struct PayloadProbe<'a> {
    #[serde(borrow, default)]
    frame_id: Option<Cow<'a, str>>,
}

/// What an incoming message means to a runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A user message (`user_message`, or `user.message` from another client).
    UserMessage {
        /// The text, from `content` or else `text`.
        content: String,
    },
    /// Stop the current turn.
    Interrupt,
    /// End an interactive session normally.
    EndSession,
    /// Same as [`Inbound::EndSession`].
    Terminate,
    /// Same as [`Inbound::EndSession`].
    Stop,
    /// Switch the active workflow repository.
    WorkflowChange(WorkflowChange),
    /// A repository was added to the session.
    RepoAdded(RepoAdded),
    /// A repository was removed from the session.
    RepoRemoved {
        /// The repository's folder name.
        name: String,
    },
    /// The backend's answer to an application-level ping.
    Pong,
    /// The backend's copy of a runner frame that carries a stable id: the delivery
    /// acknowledgement when the id is one of ours.
    Echo {
        /// The frame type.
        kind: MessageType,
        /// The frame's stable id.
        frame_id: FrameId,
    },
    /// A runner frame type without a stable id (an older runner's, or a tool's).
    RunnerFrame {
        /// The frame type.
        kind: MessageType,
    },
    /// A type this runner does not act on.
    Unknown {
        /// The type string.
        kind: String,
    },
}

/// The payload of `workflow_change`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowChange {
    /// The workflow repository.
    #[serde(rename = "gitUrl")]
    pub git_url: String,
    /// Its branch; `main` when missing.
    #[serde(default)]
    pub branch: Option<String>,
    /// A folder inside it.
    #[serde(default)]
    pub path: Option<String>,
}

/// The payload of `repo_added`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoAdded {
    /// The folder name.
    pub name: String,
    /// The clone URL.
    pub url: String,
    /// The branch; `main` when missing.
    #[serde(default)]
    pub branch: Option<String>,
}

#[derive(Deserialize)]
struct RepoRemoved {
    name: String,
}

#[derive(Deserialize)]
struct UserPayload {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

/// An incoming message of a known type whose payload is wrong.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// The payload does not fit the type.
    #[error("payload of a `{kind}` message has the wrong shape")]
    PayloadShape {
        /// The type string.
        kind: String,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
    /// A user message with neither `content` nor `text`.
    #[error("`{kind}` message has neither `content` nor `text`")]
    MissingContent {
        /// The type string.
        kind: String,
    },
}
