//! The runner protocol of the Ambient Code Platform, as types.
//!
//! Everything the runner and the backend say to each other is defined here, in both
//! directions, with serde and nothing else:
//!
//! - [`Frame`] is the envelope the runner sends over the WebSocket, and [`Outbound`] the
//!   kinds of frame it can carry (lifecycle strings, log lines, user echo, text, tool use,
//!   tool result, waiting, result, partial text).
//! - [`SessionMessage`] is the backend's form of every message it broadcasts, and
//!   [`Inbound`] what a runner makes of one (user messages, interrupt, end of session,
//!   workspace changes, the echo of its own frames, and an `Unknown` catch-all).
//! - [`status`] holds the HTTP bodies: the status PUT, the annotation PATCH, the session
//!   GET and the message history.
//! - [`Event`] is the framework-neutral vocabulary adapters speak, and [`EventMapper`]
//!   turns events into frames.
//!
//! This crate does no IO: it has no async runtime, no sockets and no clock beyond reading
//! the wall time for a timestamp. Transport, retries and orchestration live in the crates
//! above it.

mod budget;
mod event;
mod fit;
mod frame;
mod inbound;
pub mod repos;
mod secret;
pub mod status;
mod timestamp;
mod write;

pub use budget::{ByteBudget, Held};
pub use event::{Event, EventMapper, ModelCall, Next, THINKING_PREFIX};
pub use fit::MAX_FRAME_BYTES;
pub use frame::{
    FRAME_ID_FIELD, Frame, FrameId, Lifecycle, MessageType, Outbound, Partial, ToolResult,
    WireError,
};
pub use inbound::{
    Inbound, InboundError, RepoAdded, SessionMessage, WorkflowChange, echo_frame_id,
};
pub use secret::Secret;
pub use status::{ResultPayload, TokenCounts};
pub use timestamp::{RunnerClock, backend_timestamp, runner_timestamp};

/// An error and its sources on one line (`connecting failed: connection refused`), for
/// logs and status messages; error types here do not repeat their sources in `Display`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests;
