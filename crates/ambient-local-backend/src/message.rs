//! How the backend turns what clients send into the [`SessionMessage`] it broadcasts
//! (`platform-wire.md` §3.3 and §3.6).

use ambient_protocol::{SessionMessage, backend_timestamp};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::Error;

/// The type a posted message gets when its body names none.
const DEFAULT_POST_TYPE: &str = "user_message";

/// What one WebSocket text frame asks of the backend.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming {
    /// `{"type":"ping"}`: answer this connection only, with [`pong`].
    Ping,
    /// Broadcast and persist this message.
    Broadcast(SessionMessage),
    /// Not a JSON object with a string `type`: dropped without an answer.
    Dropped(&'static str),
}

/// Reads one text frame sent to session `session`.
///
/// The frame must be a JSON object with a string `type`. If its `payload` is a JSON
/// object, that object is the payload and the rest of the envelope (`seq`, `timestamp`,
/// `partial`) is dropped; otherwise the whole frame becomes the payload.
pub(crate) fn from_frame(session: &str, text: &str) -> Incoming {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Incoming::Dropped("not JSON");
    };
    let Value::Object(mut frame) = value else {
        return Incoming::Dropped("not a JSON object");
    };
    let kind = match frame.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => return Incoming::Dropped("no string `type`"),
    };
    if kind == "ping" {
        return Incoming::Ping;
    }
    let payload = match frame.remove("payload") {
        Some(Value::Object(payload)) => Value::Object(payload),
        other => {
            if let Some(payload) = other {
                frame.insert("payload".to_owned(), payload);
            }
            Value::Object(frame)
        }
    };
    Incoming::Broadcast(stamp(session, kind, payload))
}

/// Reads the body of `POST …/sessions/{s}/messages`: a JSON object whose `type` (default
/// `user_message`) is taken out, the rest being the payload.
pub(crate) fn from_post(session: &str, body: Value) -> Result<SessionMessage, Error> {
    let Value::Object(mut body) = body else {
        return Err(Error::InvalidBody);
    };
    let kind = match body.remove("type") {
        Some(Value::String(kind)) if !kind.is_empty() => kind,
        _ => DEFAULT_POST_TYPE.to_owned(),
    };
    Ok(stamp(session, kind, Value::Object(body)))
}

/// The answer to an application-level ping: `{"type":"pong","timestamp":…}`.
pub(crate) fn pong() -> String {
    let mut pong = Map::new();
    pong.insert("type".to_owned(), Value::String("pong".to_owned()));
    pong.insert("timestamp".to_owned(), Value::String(now()));
    Value::Object(pong).to_string()
}

fn stamp(session: &str, kind: String, payload: Value) -> SessionMessage {
    SessionMessage {
        session_id: session.to_owned(),
        kind,
        timestamp: now(),
        payload,
        partial: None,
    }
}

fn now() -> String {
    backend_timestamp(OffsetDateTime::now_utc())
}

/// Whether `name` can be a session name here: it names a folder of the state directory,
/// so it must not be empty, `.` or `..`, nor hold a path separator or NUL.
///
/// The real backend does not check (Kubernetes names are DNS labels anyway); this emulator
/// does, because the name becomes a path.
pub(crate) fn valid_session_name(name: &str) -> bool {
    !(name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']))
}
