//! The shell: everything a runner does around its agent framework.
//!
//! [`run_session`] owns one session from start to end: it connects the transport, writes
//! the `Running` status, hands the adapter a [`Session`](ambient_adapter::Session), relays
//! the adapter's events as frames and the backend's messages as input, enforces the
//! timeout and the shutdown signal, writes the final status before the socket closes, and
//! reports how it all ended as a [`SessionReport`] whose [`ExitCode`](exit::RunnerExit)
//! the binary returns.
//!
//! Configuration is typed here ([`config`]) but read by the binaries: the shell never
//! reads the environment, installs no signal handler and no log subscriber.

pub mod config;
pub mod exit;
mod inbox;
pub mod redact;
mod session;
pub mod stopping;
pub mod workspace;

pub use config::{RunnerArgs, RunnerConfig};
pub use exit::RunnerExit;
pub use redact::{RedactingWriter, Redactor};
pub use session::{SessionEnd, SessionReport, run_session};
