//! How a runner process ends: the one place exit codes are chosen.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | the session completed and its final status landed |
//! | 1 | the session failed (the adapter failed, or reported failure); status landed |
//! | 2 | configuration error: a missing or malformed setting; nothing was contacted |
//! | 3 | the backend could not be reached (or refused the token) |
//! | 4 | the session ended but its final status could not be written |
//! | 124 | the session hit its `TIMEOUT` |
//! | 143 | the runner was stopped (SIGTERM, SIGINT, or the session was `Stopped`) |
//!
//! The operator marks a session `Failed` for any non-zero exit whose phase is not terminal
//! yet, so every failure mode is non-zero.

/// How the runner process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerExit {
    /// Completed, status written.
    Completed,
    /// Failed, status written.
    Failed,
    /// Bad configuration.
    ConfigError,
    /// The backend could not be reached.
    BackendUnreachable,
    /// The final status could not be written.
    StatusNotWritten,
    /// The session timed out.
    TimedOut,
    /// Stopped by a signal or by the platform.
    Stopped,
}

impl RunnerExit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Completed => 0,
            Self::Failed => 1,
            Self::ConfigError => 2,
            Self::BackendUnreachable => 3,
            Self::StatusNotWritten => 4,
            Self::TimedOut => 124,
            Self::Stopped => 143,
        }
    }
}
