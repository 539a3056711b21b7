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

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEnd {
    /// The adapter completed.
    Completed,
    /// The adapter failed or reported failure.
    Failed {
        /// Why.
        reason: String,
    },
    /// The session hit its timeout.
    TimedOut,
    /// Stopped by the shutdown signal, or found `Stopped`.
    Stopped,
    /// The backend could not be reached.
    BackendUnreachable {
        /// Why.
        reason: String,
    },
}

impl SessionEnd {
    /// The process exit this end calls for, where there was no final status to write or
    /// it was written.
    pub fn exit(&self) -> RunnerExit {
        match self {
            Self::Completed => RunnerExit::Completed,
            Self::Failed { .. } => RunnerExit::Failed,
            Self::TimedOut => RunnerExit::TimedOut,
            Self::Stopped => RunnerExit::Stopped,
            Self::BackendUnreachable { .. } => RunnerExit::BackendUnreachable,
        }
    }
}

/// What the binary needs to know once a session is over.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionReport {
    /// How the session ended.
    pub end: SessionEnd,
    /// Whether the front settled the session's status: the final status reached the
    /// backend (or was rightly left alone because the session was `Stopped`), or the
    /// front has no status to write.
    pub status_written: bool,
    /// The adapter's last result.
    pub result: Option<ambient_protocol::ResultPayload>,
}

impl SessionReport {
    /// The process exit this report calls for.
    pub fn exit(&self) -> RunnerExit {
        match (&self.end, self.status_written) {
            // Neither had a status to write: the backend was away, or the platform
            // stopped the session and keeps its own.
            (SessionEnd::BackendUnreachable { .. } | SessionEnd::Stopped, _) | (_, true) => {
                self.end.exit()
            }
            (_, false) => RunnerExit::StatusNotWritten,
        }
    }
}
