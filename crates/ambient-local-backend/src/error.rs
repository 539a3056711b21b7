//! The errors of starting and driving a [`crate::LocalBackend`].

use std::{io, net::SocketAddr, path::PathBuf};

/// What went wrong, named by the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// [`crate::Builder::start`] was called without [`crate::Builder::token`].
    #[error("no bearer token configured for the local backend")]
    MissingToken,
    /// The default state directory (a temporary directory) could not be created.
    #[error("could not create a temporary state directory")]
    TempDir(#[source] io::Error),
    /// The state directory, where the message history persists, could not be prepared.
    #[error("could not prepare the state directory {}", path.display())]
    Persist {
        /// The directory that could not be created.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The listening socket could not be bound.
    #[error("could not bind the local backend to {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A posted message body was not a JSON object.
    #[error("message body is not a JSON object")]
    InvalidBody,
    /// A session name that cannot name a history file (empty, `.`, `..`, or with a path
    /// separator).
    #[error("invalid session name {name:?}")]
    InvalidSessionName {
        /// The name given.
        name: String,
    },
    /// The hub task is no longer running, so nothing can be broadcast.
    #[error("the local backend has stopped")]
    Stopped,
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
