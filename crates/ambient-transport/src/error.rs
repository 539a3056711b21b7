//! What can go wrong in the transport.

use std::{path::PathBuf, time::Duration};

/// A transport failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection could not be made (DNS, refused, TLS, timeout).
    #[error("connecting to the backend failed")]
    ConnectFailed {
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend answered the handshake with an HTTP error.
    #[error("the backend refused the WebSocket handshake with HTTP {status}{}", auth_hint(*status))]
    HandshakeRejected {
        /// The HTTP status.
        status: u16,
    },
    /// The URL is not a WebSocket URL.
    #[error("`{url}` is not a ws:// or wss:// URL")]
    BadUrl {
        /// The URL as given.
        url: String,
    },
    /// The mounted token file could not be read.
    #[error("reading the token file {} failed", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The backend could not be reached within the deadline.
    #[error("gave up reaching the backend after {attempts} attempts in {elapsed:?}")]
    GaveUp {
        /// Connection attempts made.
        attempts: u32,
        /// Time spent trying.
        elapsed: Duration,
        /// The last attempt's failure.
        #[source]
        last: Box<Error>,
    },
    /// The transport task has ended.
    #[error("the transport is closed")]
    Closed,
}

fn auth_hint(status: u16) -> &'static str {
    match status {
        401 => " (the bot token is missing, invalid or expired)",
        403 => " (the bot token may not access this project)",
        404 => " (no such WebSocket endpoint: check the URL)",
        _ => "",
    }
}

impl Error {
    /// Whether retrying cannot help: a refused handshake other than an expired token that
    /// a token file may have rotated, or a bad URL.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::HandshakeRejected { status } => *status != 401 && *status < 500,
            Self::BadUrl { .. } | Self::GaveUp { .. } | Self::Closed => true,
            Self::ConnectFailed { .. } | Self::TokenFile { .. } => false,
        }
    }

    /// Whether the backend refused our credentials.
    pub fn is_auth(&self) -> bool {
        match self {
            Self::HandshakeRejected { status } => matches!(status, 401 | 403),
            Self::GaveUp { last, .. } => last.is_auth(),
            _ => false,
        }
    }
}

/// The transport's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
