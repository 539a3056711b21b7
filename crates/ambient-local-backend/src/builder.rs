//! Configuring and starting a [`LocalBackend`].

use axum::serve::ListenerExt as _;
use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use ambient_protocol::{Secret, status::Phase};
use serde_json::{Map, Value};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info};

use crate::faults::Faults;
use crate::{
    Error, LocalBackend, Tasks,
    http::{self, Shared},
    hub::Hub,
    persist::{self, Layout},
    registry::Registry,
    ws::ConnectionContext,
};

/// The default interval of the WebSocket ping control frames, as in the real backend.
const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// How many lines wait for the history writer at most.
const WRITER_QUEUE: usize = 4096;

/// A session resource to register before the backend starts, as the operator and backend
/// would have created it before the runner runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSeed {
    pub(crate) project: String,
    pub(crate) name: String,
    pub(crate) phase: Phase,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) spec: Value,
}

impl SessionSeed {
    /// A session `name` in project `project`, in phase `Pending`, with no annotations and
    /// an empty spec.
    pub fn new(project: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            name: name.into(),
            phase: Phase::Pending,
            annotations: BTreeMap::new(),
            spec: Value::Object(Map::new()),
        }
    }

    /// Sets the phase of the status.
    #[must_use]
    pub fn phase(mut self, phase: Phase) -> Self {
        self.phase = phase;
        self
    }

    /// Adds one annotation.
    #[must_use]
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Sets the spec, returned as is by the session GET.
    #[must_use]
    pub fn spec(mut self, spec: Value) -> Self {
        self.spec = spec;
        self
    }
}

/// Configures a [`LocalBackend`]; see [`LocalBackend::builder`].
#[derive(Debug)]
#[must_use]
pub struct Builder {
    token: Option<Secret>,
    state_dir: Option<PathBuf>,
    sessions: Vec<SessionSeed>,
    github_token: Option<Secret>,
    ping_interval: Duration,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Self {
            token: None,
            state_dir: None,
            sessions: Vec::new(),
            github_token: None,
            ping_interval: DEFAULT_PING_INTERVAL,
        }
    }

    /// The bearer token the backend accepts (the runner's `BOT_TOKEN`). Required.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret::new(token));
        self
    }

    /// The state directory (`STATE_BASE_DIR`): histories are kept in
    /// `{dir}/sessions/{session}/messages.jsonl`. By default the backend makes a temporary
    /// directory, removed when the backend has shut down or been dropped.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Registers a session resource; repeatable. A later seed with the same project and
    /// name replaces an earlier one.
    pub fn session(mut self, seed: SessionSeed) -> Self {
        self.sessions.push(seed);
        self
    }

    /// The token `POST …/github/token` answers with. Without one, that route answers 502
    /// as the real backend does when it has no GitHub credentials.
    pub fn github_token(mut self, token: impl Into<String>) -> Self {
        self.github_token = Some(Secret::new(token));
        self
    }

    /// How often each WebSocket connection gets a ping control frame (default 30 s, as
    /// in the real backend). `Duration::ZERO` disables them.
    pub fn ping_interval(mut self, every: Duration) -> Self {
        self.ping_interval = every;
        self
    }

    /// Prepares the state directory, binds `addr` (use `127.0.0.1:0` in tests) and starts
    /// serving.
    ///
    /// # Errors
    ///
    /// [`Error::MissingToken`] without a (non-empty) token, [`Error::TempDir`] or
    /// [`Error::Persist`] when the state directory cannot be made, [`Error::Bind`] when
    /// the address cannot be bound.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a start dropped half-way may leave the state directory created.
    /// Nothing keeps running.
    pub async fn start(self, addr: SocketAddr) -> Result<LocalBackend, Error> {
        let token = match self.token {
            Some(token) if !token.is_empty() => token,
            _ => return Err(Error::MissingToken),
        };
        let (state_dir, temp_dir) = match self.state_dir {
            Some(dir) => (dir, None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("ambient-local-backend-")
                    .tempdir()
                    .map_err(Error::TempDir)?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let layout = Layout::new(state_dir.clone());
        let sessions_dir = layout.sessions_dir();
        tokio::fs::create_dir_all(&sessions_dir)
            .await
            .map_err(|source| Error::Persist {
                path: sessions_dir,
                source,
            })?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;

        let (writer_tx, writer_rx) = mpsc::channel(WRITER_QUEUE);
        let writer = tokio::spawn(persist::run_writer(layout.clone(), writer_rx, temp_dir));
        let (hub, hub_task) = Hub::start(writer_tx);
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            tokens: std::sync::RwLock::new(vec![token]),
            github_token: self.github_token,
            registry: Registry::new(self.sessions),
            layout,
            connection: ConnectionContext {
                hub,
                ping_every: (!self.ping_interval.is_zero()).then_some(self.ping_interval),
                shutdown: shutdown.clone(),
            },
            connections: TaskTracker::new(),
            faults: Faults::new(shutdown.clone()),
        });
        let app = http::router(Arc::clone(&shared));
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            // Go's net package (the real backend's) disables Nagle on every connection;
            // without that, small echoes wait out the peer's delayed ACK (~40 ms).
            let listener = listener.tap_io(|tcp| {
                if let Err(error) = tcp.set_nodelay(true) {
                    debug!(%error, "TCP_NODELAY could not be set");
                }
            });
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            debug!("http server stopped");
            served
        });
        info!(addr = %local_addr, state_dir = %state_dir.display(), "local backend listening");
        Ok(LocalBackend {
            addr: local_addr,
            state_dir,
            shared,
            shutdown,
            tasks: Some(Tasks {
                server,
                hub: hub_task,
                writer,
            }),
        })
    }
}
