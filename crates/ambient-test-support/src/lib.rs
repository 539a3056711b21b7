//! Test support: a TCP proxy that injects network faults, a git smart-HTTP server that
//! requires a token ([`GitHttpServer`]), and bare git repositories made for tests
//! ([`git_repos`]).
//!
//! Where to start: [`harness`] runs a runner binary with the pod environment against a
//! local backend and reads back what the backend kept; [`langgraph`] starts a real
//! `langgraph dev`; [`anthropic`] mocks the Anthropic Messages API for the real Claude
//! Code CLI; [`agui`] runs a runner in the AG-UI serve mode, reads its SSE and checks
//! events against the official AG-UI types; [`bench`](mod@bench) is what the benchmarks
//! share.
//!
//! [`FaultProxy`] sits between a runner and a backend on loopback and forwards bytes both
//! ways until a test tells it otherwise:
//!
//! - [`FaultProxy::cut`] closes every current connection at once, as a network cut or a
//!   backend restart does;
//! - [`FaultProxy::set_down`] makes the backend unreachable: new connections are closed as
//!   soon as they are accepted (and current ones are cut);
//! - [`FaultProxy::stall`] stops forwarding on the current connections without closing them:
//!   a peer that is there but silent;
//! - [`FaultProxy::half_open`] forwards the runner's bytes but drops the backend's: the
//!   backend reads, the runner hears nothing;
//! - [`FaultProxy::heal`] lets stalled and half-open connections flow again.
//!
//! New connections are always healthy unless the proxy is down. It is a dev-dependency
//! only; nothing here reaches a production binary.

pub mod agui;
pub mod anthropic;
pub mod bench;
pub mod continuation;
mod git_http;
pub mod git_repos;
pub mod harness;
pub mod langgraph;
pub mod otlp;
pub mod platform;

pub use git_http::GitHttpServer;

/// Picks the process's TLS crypto provider, as a runner binary's `main` does
/// (`ambient_cli`): the HTTP and TLS libraries are built without a default one. A test
/// that builds an HTTP client calls this first; a second call does nothing.
pub fn crypto() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{Notify, watch},
};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// What the current connections do with the bytes they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Forward both ways.
    Open,
    /// Forward nothing, close nothing.
    Stalled,
    /// Forward the client's bytes, drop the backend's.
    HalfOpen,
}

/// The connections made between two faults share a generation: a cut closes them all,
/// a stall or half-open changes their flow.
#[derive(Debug, Clone)]
struct Generation {
    closed: CancellationToken,
    flow: watch::Sender<Flow>,
}

impl Generation {
    fn new() -> Self {
        Self {
            closed: CancellationToken::new(),
            flow: watch::channel(Flow::Open).0,
        }
    }
}

#[derive(Debug)]
struct Control {
    upstream: SocketAddr,
    down: AtomicBool,
    /// The generation new connections join.
    current: Mutex<Generation>,
    /// Earlier generations whose connections were stalled or half-opened, and are still
    /// there to heal or cut.
    faulted: Mutex<Vec<Generation>>,
    accepted: AtomicU64,
    accepted_changed: Notify,
}

impl Control {
    /// Starts a new generation for later connections and returns the one it replaces.
    fn rotate(&self) -> Generation {
        std::mem::replace(&mut *lock(&self.current), Generation::new())
    }
}

/// A fault-injecting TCP proxy on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    control: Arc<Control>,
    stop: CancellationToken,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port that forwards to `upstream`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped start leaves nothing running.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let control = Arc::new(Control {
            upstream,
            down: AtomicBool::new(false),
            current: Mutex::new(Generation::new()),
            faulted: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            accepted_changed: Notify::new(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, Arc::clone(&control), stop.clone()));
        Ok(Self {
            addr,
            control,
            stop,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` with its `host:port` replaced by the proxy's.
    pub fn route(&self, url: &str) -> String {
        let upstream = self.control.upstream.to_string();
        url.replacen(&upstream, &self.addr.to_string(), 1)
    }

    /// Closes every current connection.
    pub fn cut(&self) {
        self.control.rotate().closed.cancel();
        for generation in lock(&self.control.faulted).drain(..) {
            generation.closed.cancel();
        }
    }

    /// While down, every connection is closed as soon as it is accepted; going down also
    /// cuts the current ones.
    pub fn set_down(&self, down: bool) {
        self.control.down.store(down, Ordering::SeqCst);
        if down {
            self.cut();
        }
    }

    /// Stops forwarding on the current connections, keeping them open.
    pub fn stall(&self) {
        self.fault(Flow::Stalled);
    }

    /// Keeps forwarding what clients send on the current connections, and drops what the
    /// backend sends back.
    pub fn half_open(&self) {
        self.fault(Flow::HalfOpen);
    }

    /// Lets stalled and half-open connections flow again.
    pub fn heal(&self) {
        for generation in lock(&self.control.faulted).iter() {
            generation.flow.send_replace(Flow::Open);
        }
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.control.accepted.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` connections have been accepted.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only waits.
    pub async fn wait_for_accepted(&self, count: u64) {
        loop {
            let changed = self.control.accepted_changed.notified();
            if self.accepted() >= count {
                return;
            }
            changed.await;
        }
    }

    fn fault(&self, flow: Flow) {
        // The fault applies to the connections there are now; later ones start healthy.
        let generation = self.control.rotate();
        generation.flow.send_replace(flow);
        lock(&self.control.faulted).push(generation);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a token that is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, control: Arc<Control>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else { continue };
        control.accepted.fetch_add(1, Ordering::SeqCst);
        control.accepted_changed.notify_waiters();
        if control.down.load(Ordering::SeqCst) {
            debug!("proxy is down: closing a new connection");
            drop(client);
            continue;
        }
        let generation = lock(&control.current).clone();
        let closed = generation.closed;
        let flow = generation.flow.subscribe();
        let upstream = control.upstream;
        tokio::spawn(async move {
            let Ok(backend) = TcpStream::connect(upstream).await else {
                return;
            };
            let _nodelay = (client.set_nodelay(true), backend.set_nodelay(true));
            let (client_read, client_write) = client.into_split();
            let (backend_read, backend_write) = backend.into_split();
            let up = pump(client_read, backend_write, flow.clone(), Direction::Up);
            let down = pump(backend_read, client_write, flow, Direction::Down);
            tokio::select! {
                () = closed.cancelled() => {}
                _ = async { tokio::join!(up, down) } => {}
            }
            // Dropping the halves closes both sockets.
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client to backend.
    Up,
    /// Backend to client.
    Down,
}

/// Copies one direction, obeying the flow.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut flow: watch::Receiver<Flow>,
    direction: Direction,
) {
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        // While stalled, read nothing, so that the sender's buffers fill as with a silent
        // peer.
        while *flow.borrow_and_update() == Flow::Stalled {
            if flow.changed().await.is_err() {
                return;
            }
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _closed = to.shutdown().await;
                return;
            }
            Ok(read) => read,
        };
        let current = *flow.borrow();
        match (current, direction) {
            (Flow::HalfOpen, Direction::Down) => continue,
            (Flow::Stalled, _) => {
                // Stalled after the read: hold the bytes until the flow resumes.
                while *flow.borrow_and_update() == Flow::Stalled {
                    if flow.changed().await.is_err() {
                        return;
                    }
                }
            }
            _ => {}
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
