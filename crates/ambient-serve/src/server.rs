//! The serve port's own accept loop, so that no caller can hold the runner's memory or its
//! connections: every connection has a deadline for its request's header, an idle
//! timeout, and a send deadline; their number is capped, and at the cap the oldest idle
//! (or stalled) one makes room for a new one, so that `/health` is always answered.
//!
//! | bound | default | what happens past it |
//! |---|---|---|
//! | connections open | [`DEFAULT_MAX_CONNECTIONS`] (`AGUI_MAX_CONNECTIONS`) | the oldest idle or stalled one is closed for the new one; with none, the new one is closed |
//! | a request's header | [`HEADER_READ_TIMEOUT`] | the connection is closed |
//! | no request on an open connection | [`IDLE_TIMEOUT`] | the connection is closed |
//! | a write the client does not take | [`SEND_STALL`] | the connection is closed; the client can come back with `Last-Event-ID` (the client that started the run is never closed for it: it paces the run instead) |
//! | bytes queued for a connection | 64 KiB in hyper's queue, and the 64 events a stream has taken | the stream waits |

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{Router, extract::Request};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    time::{Instant, Sleep},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, warn};

/// Connections open at once by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// How long a client has to send a request's header.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay open with no request under way.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a write may wait for a client that takes nothing.
pub const SEND_STALL: Duration = Duration::from_secs(30);
/// The most hyper queues to write on one connection.
const QUEUED_BYTES: usize = 64 << 10;
/// How long a connection's writes must have waited for it to count as stalled, so that
/// it can make room at the cap.
const STALLED_AFTER: Duration = Duration::from_secs(1);

/// The serve port's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`SEND_STALL`].
    pub send_stall: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            send_stall: SEND_STALL,
        }
    }
}

/// One connection, as the accept loop and its requests see it.
#[derive(Debug)]
struct Connection {
    /// Requests under way, and streams open, on it.
    busy: AtomicUsize,
    /// Streams on it that must never be cut for not reading (a run's initiator's).
    exempt: AtomicUsize,
    /// Milliseconds since the server started: its last read or write.
    last_active: AtomicU64,
    /// Milliseconds since the server started that a write has waited; 0 when none waits.
    stalled_since: AtomicU64,
    close: CancellationToken,
}

/// The connection a request came on, in its extensions: a stream marks it busy, and a
/// run's initiator marks it as never to be cut for not reading.
#[derive(Debug, Clone)]
pub struct ConnectionHandle(Arc<Connection>);

/// Counts while alive; see [`ConnectionHandle::busy`] and
/// [`ConnectionHandle::exempt`].
#[derive(Debug)]
pub struct Marked {
    connection: Arc<Connection>,
    exempt: bool,
}

impl ConnectionHandle {
    /// The connection is busy while this lives (a request or a stream is under way on
    /// it).
    pub fn busy(&self) -> Marked {
        self.0.busy.fetch_add(1, Ordering::AcqRel);
        Marked {
            connection: Arc::clone(&self.0),
            exempt: false,
        }
    }

    /// The connection is never cut for not reading while this lives.
    pub fn exempt(&self) -> Marked {
        self.0.exempt.fetch_add(1, Ordering::AcqRel);
        Marked {
            connection: Arc::clone(&self.0),
            exempt: true,
        }
    }
}

impl Drop for Marked {
    fn drop(&mut self) {
        let counter = if self.exempt {
            &self.connection.exempt
        } else {
            &self.connection.busy
        };
        counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections, oldest first.
#[derive(Debug)]
struct Registry {
    connections: Mutex<BTreeMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    started: Instant,
}

impl Registry {
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Connection>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for one more connection under `max`: closes the oldest idle or stalled
    /// one if it must; `false` when none can go.
    fn make_room(&self, max: usize) -> bool {
        let now = self.now();
        let stalled_after = u64::try_from(STALLED_AFTER.as_millis()).unwrap_or(u64::MAX);
        let mut connections = self.lock();
        if connections.len() < max {
            return true;
        }
        let victim = connections.iter().find_map(|(id, connection)| {
            let idle = connection.busy.load(Ordering::Acquire) == 0;
            let stalled_since = connection.stalled_since.load(Ordering::Acquire);
            let stalled = stalled_since != 0
                && now.saturating_sub(stalled_since) >= stalled_after
                && connection.exempt.load(Ordering::Acquire) == 0;
            (idle || stalled).then_some(*id)
        });
        match victim.and_then(|id| connections.remove(&id)) {
            Some(connection) => {
                debug!("at the connection cap: closing the oldest idle or stalled connection");
                connection.close.cancel();
                true
            }
            None => false,
        }
    }

    /// Closes the connections with no request under way for longer than `idle`.
    fn close_idle(&self, idle: Duration) {
        let now = self.now();
        let idle = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        self.lock().retain(|_, connection| {
            let keep = connection.busy.load(Ordering::Acquire) > 0
                || now.saturating_sub(connection.last_active.load(Ordering::Acquire)) < idle;
            if !keep {
                connection.close.cancel();
            }
            keep
        });
    }

    fn add(&self) -> (u64, Arc<Connection>) {
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        let connection = Arc::new(Connection {
            busy: AtomicUsize::new(0),
            exempt: AtomicUsize::new(0),
            last_active: AtomicU64::new(self.now()),
            stalled_since: AtomicU64::new(0),
            close: CancellationToken::new(),
        });
        self.lock().insert(id, Arc::clone(&connection));
        (id, connection)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// Serves `router` on `listener` within `limits` until `stop` fires; then lets the
/// requests under way finish (the caller bounds how long it waits).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    stop: CancellationToken,
) {
    let registry = Arc::new(Registry {
        connections: Mutex::new(BTreeMap::new()),
        next_id: AtomicU64::new(0),
        started: Instant::now(),
    });
    let tracker = TaskTracker::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = sweep.tick() => registry.close_idle(limits.idle_timeout),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if !registry.make_room(limits.max_connections) {
                        debug!(max = limits.max_connections, "at the connection cap with every connection busy; refusing one");
                        continue;
                    }
                    let (id, connection) = registry.add();
                    let registry = Arc::clone(&registry);
                    let router = router.clone();
                    let stop = stop.clone();
                    tracker.spawn(async move {
                        serve_connection(stream, router, limits, Arc::clone(&connection), &registry, stop).await;
                        registry.remove(id);
                    });
                }
                Err(error) => {
                    // Out of file descriptors, say: let some close before trying again.
                    warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    tracker.close();
    tracker.wait().await;
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: ServerLimits,
    connection: Arc<Connection>,
    registry: &Arc<Registry>,
    stop: CancellationToken,
) {
    let io = TokioIo::new(Guarded {
        inner: stream,
        connection: Arc::clone(&connection),
        registry: Arc::clone(registry),
        stall: None,
        send_stall: limits.send_stall,
    });
    let handle = ConnectionHandle(Arc::clone(&connection));
    let service = service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        let busy = handle.busy();
        let service = TowerToHyperService::new(router.clone());
        async move {
            let response = hyper::service::Service::call(&service, request).await;
            drop(busy);
            response.map_err(|never: Infallible| match never {})
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // What hyper queues for a connection: with the events a stream has taken, all
        // that a client that reads nothing holds.
        .max_buf_size(QUEUED_BYTES)
        .keep_alive(true);
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(error) = result {
                debug!(%error, "a connection ended with an error");
            }
        }
        () = connection.close.cancelled() => {}
        () = stop.cancelled() => {
            served.as_mut().graceful_shutdown();
            tokio::select! {
                _ = served.as_mut() => {}
                () = connection.close.cancelled() => {}
            }
        }
    }
}

/// A connection's socket, noting its activity and cutting writes that wait too long.
#[derive(Debug)]
struct Guarded {
    inner: TcpStream,
    connection: Arc<Connection>,
    registry: Arc<Registry>,
    stall: Option<Pin<Box<Sleep>>>,
    send_stall: Duration,
}

impl Guarded {
    fn active(&self) {
        self.connection
            .last_active
            .store(self.registry.now(), Ordering::Release);
    }

    /// A write finished, or must wait: past the stall deadline (for a connection not
    /// exempt) the wait is an error, and the connection ends.
    fn pace(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if written.is_ready() {
            self.stall = None;
            self.connection.stalled_since.store(0, Ordering::Release);
            self.active();
            return written;
        }
        if self.connection.exempt.load(Ordering::Acquire) > 0 {
            self.stall = None;
            self.connection.stalled_since.store(0, Ordering::Release);
            return Poll::Pending;
        }
        let send_stall = self.send_stall;
        let registry = &self.registry;
        let connection = &self.connection;
        let stall = self.stall.get_or_insert_with(|| {
            connection
                .stalled_since
                .store(registry.now().max(1), Ordering::Release);
            Box::pin(tokio::time::sleep(send_stall))
        });
        ready!(stall.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client took nothing for {send_stall:?}"),
        )))
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.active();
        }
        read
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.pace(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.pace(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
