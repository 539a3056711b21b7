//! What can go wrong in a backend call, classified for retry.

use std::{fmt, time::Duration};

/// A failure of the HTTP client (a connection refused, reset or timed out, a body cut
/// short). Opaque, so that the HTTP library stays an implementation detail.
#[derive(Debug)]
pub struct HttpError(reqwest::Error);

impl HttpError {
    pub(crate) fn new(error: reqwest::Error) -> Self {
        Self(error)
    }

    /// Whether it may pass: a timeout, a failed connection, a request or body cut short.
    pub fn is_transient(&self) -> bool {
        self.0.is_timeout() || self.0.is_connect() || self.0.is_request() || self.0.is_body()
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// A failed backend call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("building the HTTP client failed")]
    ClientSetup {
        /// The cause.
        #[source]
        source: HttpError,
    },
    /// A URL could not be formed from the configured base.
    #[error("`{base}` cannot be the base of the backend's URLs")]
    InvalidUrl {
        /// The base URL as configured.
        base: String,
    },
    /// The token contains characters an HTTP header cannot carry.
    #[error("the bot token cannot be sent in an HTTP header")]
    InvalidToken,
    /// The body could not be encoded.
    #[error("encoding the request body failed")]
    Encode {
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// No answer: connection refused, reset, or timed out.
    #[error("{method} {path} failed")]
    RequestFailed {
        /// The method.
        method: &'static str,
        /// The URL path.
        path: String,
        /// The cause.
        #[source]
        source: HttpError,
    },
    /// The backend answered with an error status.
    #[error("{method} {path} answered HTTP {status}: {message}")]
    Rejected {
        /// The method.
        method: &'static str,
        /// The URL path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The backend's `error` text, or the start of the body.
        message: String,
    },
    /// The answer was not what the endpoint returns.
    #[error("{method} {path} answered with a body that could not be read")]
    Decode {
        /// The method.
        method: &'static str,
        /// The URL path.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An attempt took longer than the policy allows.
    #[error("{method} {path} took longer than {after:?}")]
    TimedOut {
        /// The method.
        method: &'static str,
        /// The URL path.
        path: String,
        /// The bound.
        after: Duration,
    },
    /// The answer was larger than the runner reads.
    #[error("{method} {path} answered with more than {limit} bytes")]
    TooLarge {
        /// The method.
        method: &'static str,
        /// The URL path.
        path: String,
        /// The bound.
        limit: usize,
    },
    /// The message history was not the JSON the endpoint returns.
    #[error("GET {path} answered with a history that could not be read: {why}")]
    Malformed {
        /// The URL path.
        path: String,
        /// What was wrong.
        why: String,
    },
    /// Every attempt failed.
    #[error("gave up after {attempts} attempts in {elapsed:?}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last attempt's failure.
        #[source]
        last: Box<Error>,
    },
}

impl Error {
    /// Whether another attempt may succeed: a timeout, a failed connection, or HTTP 409,
    /// 429 or 5xx. A 400, 401, 403, 404 or 422 will not change by asking again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RequestFailed { source, .. } => source.is_transient(),
            Self::TimedOut { .. } => true,
            Self::Rejected { status, .. } => matches!(status, 409 | 429) || *status >= 500,
            Self::RetriesExhausted { last, .. } => last.is_retryable(),
            Self::ClientSetup { .. }
            | Self::InvalidUrl { .. }
            | Self::InvalidToken
            | Self::Encode { .. }
            | Self::Decode { .. }
            | Self::TooLarge { .. }
            | Self::Malformed { .. } => false,
        }
    }

    /// The HTTP status the backend answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } => Some(*status),
            Self::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// Whether the backend refused the token (401 or 403).
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// Whether the resource does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// The status crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The backend's `{"error": …}` text, or the start of the body when it is not that shape.
pub(crate) fn backend_message(body: &[u8]) -> String {
    const MAX: usize = 200;
    if let Ok(parsed) = serde_json::from_slice::<ambient_protocol::status::ErrorBody>(body) {
        return parsed.error.chars().take(MAX).collect();
    }
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
