//! An in-process emulator of the Ambient Code Platform backend, as a runner sees it.
//!
//! [`LocalBackend`] serves, on a local port, every route a runner talks to
//! (`platform-wire.md` §3 and §4), with the real backend's bodies, status codes and error
//! texts:
//!
//! - `GET /api/projects/{p}/sessions/{s}/ws`: the session WebSocket. Frames are normalised
//!   into `SessionMessage`s and broadcast to every connection of the session (the sender
//!   too) and persisted; `{"type":"ping"}` gets a pong; a ping control frame goes out every
//!   ping interval.
//! - `GET`/`POST /api/projects/{p}/sessions/{s}/messages`: the persisted history, and
//!   posting a message as the UI does.
//! - `GET`/`PATCH /api/projects/{p}/agentic-sessions/{s}` and `PUT …/status`: the session
//!   resource, its annotations and its whitelisted status fields.
//! - `POST /api/projects/{p}/agentic-sessions/{s}/github/token`: the token mint.
//!
//! Every project-scoped route checks the bearer token first (header,
//! `X-Forwarded-Access-Token` or `?token=`), as `ValidateProjectContext` does; there is one
//! valid token instead of Kubernetes RBAC. Tests also get an in-process view: [`watch`]
//! sees every broadcast, [`post_message`] sends like the UI, and [`session`], [`status`]
//! and [`history`] read the state back.
//!
//! This crate does not emulate the operator, Kubernetes, the UI, or any route a runner
//! does not use. It handles no signals and installs no tracing subscriber; the
//! `local-backend` binary does that.
//!
//! [`watch`]: LocalBackend::watch
//! [`post_message`]: LocalBackend::post_message
//! [`session`]: LocalBackend::session
//! [`status`]: LocalBackend::status
//! [`history`]: LocalBackend::history

mod builder;
mod error;
mod faults;
mod http;
mod hub;
mod message;
mod persist;
mod registry;
pub mod transcript;
mod ws;

use std::{
    fmt, io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    sync::Arc,
};

use ambient_protocol::{SessionMessage, status::AgenticSession};
use serde_json::{Map, Value};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::warn;

pub use builder::{Builder, SessionSeed};
pub use faults::{FaultRoute, Stalled};

/// Posts messages to a running [`LocalBackend`]; see [`LocalBackend::post_handle`].
#[derive(Debug, Clone)]
pub struct PostHandle {
    hub: hub::Hub,
}

impl PostHandle {
    /// Same as [`LocalBackend::post_message`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if cancelled, the message was either queued whole or not at all.
    pub async fn post(&self, project: &str, session: &str, body: Value) -> Result<()> {
        // As in the real hub, the project is not part of the routing.
        let _ = project;
        if !message::valid_session_name(session) {
            return Err(Error::InvalidSessionName {
                name: session.to_owned(),
            });
        }
        let message = message::from_post(session, body)?;
        self.hub.broadcast(message).await
    }

    /// Same as [`LocalBackend::wait_for_connections`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn wait_for_connections(&self, session: &str, count: usize) -> Result<()> {
        self.hub.wait_for_connections(session, count).await
    }
}
pub use error::{Error, Result};

/// A running backend emulator; see the [crate docs](crate).
///
/// Dropping it stops the server and closes every connection in the background; call
/// [`LocalBackend::shutdown`] to wait for that and for the history to be on disk.
pub struct LocalBackend {
    addr: SocketAddr,
    state_dir: PathBuf,
    shared: Arc<http::Shared>,
    shutdown: CancellationToken,
    tasks: Option<Tasks>,
}

/// The tasks a [`LocalBackend`] runs.
struct Tasks {
    server: JoinHandle<io::Result<()>>,
    hub: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBackend")
            .field("addr", &self.addr)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl LocalBackend {
    /// A builder; [`Builder::token`] is required.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The address the backend listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `WEBSOCKET_URL` of a session:
    /// `ws://127.0.0.1:PORT/api/projects/{project}/sessions/{session}/ws`.
    ///
    /// The names are inserted as they are (session names are DNS labels). A backend bound
    /// to an unspecified address (`0.0.0.0`, `::`) is named by its loopback address.
    pub fn ws_url(&self, project: &str, session: &str) -> String {
        format!(
            "ws://{}/api/projects/{project}/sessions/{session}/ws",
            self.reachable_addr()
        )
    }

    /// The API base URL (`BACKEND_API_URL`): `http://127.0.0.1:PORT/api`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.reachable_addr())
    }

    fn reachable_addr(&self) -> SocketAddr {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.addr.port())
    }

    /// Every message broadcast for `session` from now on, in broadcast order: the order
    /// every connection and the history file see too. The channel is unbounded (it never
    /// lags or drops) and ends when the backend shuts down.
    pub fn watch(&self, session: &str) -> mpsc::UnboundedReceiver<SessionMessage> {
        self.shared.connection.hub.watch(session)
    }

    /// Broadcasts and persists a message as `POST …/sessions/{session}/messages` with this
    /// body does: the body must be a JSON object; its `type` (default `user_message`) is
    /// taken out and the rest is the payload. As in the real hub, the project is not part
    /// of the routing; it is taken for symmetry with the route.
    ///
    /// Returns once the message is queued for broadcast: it is delivered and persisted
    /// before anything queued later, and a later [`LocalBackend::history`] includes it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBody`] for a body that is not an object,
    /// [`Error::InvalidSessionName`] for a name that cannot name a file, and
    /// [`Error::Stopped`] if the hub is no longer running.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if cancelled, the message was either queued whole or not at all.
    pub async fn post_message(&self, project: &str, session: &str, body: Value) -> Result<()> {
        self.post_handle().post(project, session, body).await
    }

    /// Makes the next calls of `route` fail with these HTTP statuses, one each, with the
    /// error body the real backend sends; later calls succeed again.
    pub fn fail_next(&self, route: FaultRoute, statuses: impl IntoIterator<Item = u16>) {
        self.shared.faults.push(route, statuses);
    }

    /// Accepts `token` as a bot token too, as the platform's does once it has rotated a
    /// projected token: the old one stays valid for a while.
    pub fn accept_token(&self, token: impl Into<String>) {
        self.shared
            .tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ambient_protocol::Secret::new(token.into()));
    }

    /// Holds the next call of `route` unanswered, as a backend that accepted the request
    /// and is slow to answer: the caller waits until it gives up, or until the backend
    /// shuts down (then the call fails with 503). [`Stalled::arrived`] says when the call
    /// came, so that a test acts while a runner waits on it.
    pub fn stall_next(&self, route: FaultRoute) -> Stalled {
        self.shared.faults.stall_next(route)
    }

    /// The number of calls `route` has had so far, updated as more come: a test waits on
    /// it to act once a runner has made a call (its first status update, say).
    pub fn calls(&self, route: FaultRoute) -> tokio::sync::watch::Receiver<u64> {
        self.shared.faults.calls(route)
    }

    /// Makes every status update fail with `status` until called with `None`.
    pub fn fail_status_updates(&self, status: Option<u16>) {
        self.shared.faults.always(status);
    }

    /// A handle that posts messages like [`LocalBackend::post_message`] and can move into
    /// a task of its own (a terminal reader, say). It fails with [`Error::Stopped`] once
    /// the backend has shut down.
    pub fn post_handle(&self) -> PostHandle {
        PostHandle {
            hub: self.shared.connection.hub.clone(),
        }
    }

    /// The session resource as `GET …/agentic-sessions/{name}` returns it (the typed
    /// status has the phase and message; [`LocalBackend::status`] has every field).
    pub fn session(&self, project: &str, name: &str) -> Option<AgenticSession> {
        self.shared.registry.session(project, name)
    }

    /// The raw status object of a session: every field the status PUT whitelist kept.
    pub fn status(&self, project: &str, name: &str) -> Option<Map<String, Value>> {
        self.shared.registry.status(project, name)
    }

    /// The persisted history of `session`, as `GET …/messages` returns it (without
    /// `message.partial` rows). Everything broadcast before the call is flushed first.
    /// Unreadable files read as empty (the error is logged).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is lost if the call is dropped.
    pub async fn history(&self, session: &str) -> Vec<SessionMessage> {
        if let Err(error) = self.shared.connection.hub.flush().await {
            warn!(%error, "could not flush the history before reading it");
        }
        match persist::read_history(&self.messages_path(session), false).await {
            Ok(messages) => messages,
            Err(error) => {
                warn!(session, %error, "could not read a history file");
                Vec::new()
            }
        }
    }

    /// The path of the JSON-lines history of `session`:
    /// `{state_dir}/sessions/{session}/messages.jsonl`.
    pub fn messages_path(&self, session: &str) -> PathBuf {
        self.shared.layout.messages_path(session)
    }

    /// How many WebSocket connections of `session` are registered with the hub right now.
    pub fn connection_count(&self, session: &str) -> usize {
        self.shared.connection.hub.connection_count(session)
    }

    /// Waits until at least `count` WebSocket connections of `session` are registered.
    ///
    /// A client's handshake completes a moment before the backend registers it, and the
    /// real backend has the same gap: a message broadcast in between is not delivered to
    /// that client. Tests await this before posting what a runner must receive.
    ///
    /// # Errors
    ///
    /// [`Error::Stopped`] if the hub stops first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_for_connections(&self, session: &str, count: usize) -> Result<()> {
        self.shared
            .connection
            .hub
            .wait_for_connections(session, count)
            .await
    }

    /// Stops accepting connections, closes every WebSocket (with a close frame, code
    /// 1001), writes the history to disk and drops every watcher (their receivers then
    /// end). A temporary state directory is removed.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a shutdown dropped half-way finishes in the background, as a
    /// dropped backend does.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let Some(tasks) = self.tasks.take() else {
            return;
        };
        match tasks.server.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%error, "http server failed"),
            Err(error) => warn!(%error, "http server task failed"),
        }
        self.shared.connections.close();
        self.shared.connections.wait().await;
        self.shared.connection.hub.shutdown().await;
        if let Err(error) = tasks.hub.await {
            warn!(%error, "hub task failed");
        }
        if let Err(error) = tasks.writer.await {
            warn!(%error, "history writer task failed");
        }
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        // The server, the connections, the hub and the writer all end from here on.
        self.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests;
