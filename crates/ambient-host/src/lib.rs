//! The host: everything a runner does around its agent framework that does not depend on
//! how the platform is reached.
//!
//! [`run`] owns one session from start to end behind a [`Front`]: the front opens it on
//! the platform, the host prepares the workspace ([`workspace`]), hands the adapter a
//! [`Session`](ambient_adapter::Session) with its prompt as the first input where the
//! rule says so, scrubs every event of secrets ([`Redactor`]) and relays it through the
//! front, applies workspace changes the front asks for, watches the stop signal and the
//! timeout in every phase ([`stopping`]), drains what the adapter emitted, and lets the
//! front finish. The [`SessionReport`] it returns decides the process's exit code
//! ([`exit`]).
//!
//! The fronts are siblings over it: `ambient-websocket` for the original platform's
//! WebSocket and status API, `ambient-serve` for the current platform's AG-UI over HTTP.
//! This crate depends on neither, and on no transport: it reads no environment, opens no
//! socket of its own, installs no signal handler and no log subscriber.

pub mod config;
pub mod exit;
mod front;
pub mod limits;
mod prompt;
pub mod redact;
mod run;
pub mod stopping;
pub mod trace;
pub mod workspace;

pub use config::{HostConfig, RunnerArgs};
pub use exit::{RunnerExit, SessionEnd, SessionReport};
pub use front::{ChangeOutcome, Control, Ending, Front, Opening, Relayed, Step};
pub use limits::{LimitArgs, Limits};
pub use redact::{RedactingWriter, Redactor};
pub use run::run;
