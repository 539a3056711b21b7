//! The hub: one task that owns the set of WebSocket connections of every session and
//! broadcasts each message to them, to the in-process watchers and to the history writer.
//!
//! Everything that changes the hub's state (a connection coming or going, a broadcast, a
//! flush request) is a [`Command`] on one channel, handled by one task in arrival order,
//! as in the real hub (`hub.go`). Because persistence goes through the same task, every
//! connection, every watcher and the history file see the messages of a session in the
//! same order. (The real hub persists each message from its own goroutine, so its file may
//! be out of order; this one never is.)
//!
//! Each message is serialized once per broadcast and the bytes are shared by every
//! recipient. Each connection has a bounded outgoing queue: when it is full the hub waits,
//! which slows every sender down as the real hub's synchronous writes do, but for at most
//! [`STALL_LIMIT`]; a connection whose queue stays full that long is dropped (its socket
//! is closed) so that one dead or stuck peer cannot stop the hub.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use ambient_protocol::SessionMessage;
use axum::extract::ws::Utf8Bytes;
use tokio::sync::{
    mpsc::{self, error::SendTimeoutError, error::TrySendError},
    oneshot, watch,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::{Error, persist::WriteCmd};

/// How long the hub waits for room in one connection's queue before dropping it.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(5);
/// How many messages wait for one connection's writer at most.
pub(crate) const CONNECTION_QUEUE: usize = 256;
/// How many commands wait for the hub at most.
const COMMAND_QUEUE: usize = 1024;

type Watchers = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<SessionMessage>>>>>;

/// A connection as the hub knows it: where its messages go, and how to close it.
#[derive(Debug)]
pub(crate) struct Connection {
    id: u64,
    outgoing: mpsc::Sender<Utf8Bytes>,
    close: CancellationToken,
}

#[derive(Debug)]
enum Command {
    Register {
        session: String,
        connection: Connection,
    },
    Unregister {
        session: String,
        id: u64,
    },
    Broadcast(SessionMessage),
    Flush(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle on the hub task; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    commands: mpsc::Sender<Command>,
    watchers: Watchers,
    counts: watch::Receiver<HashMap<String, usize>>,
    next_id: Arc<AtomicU64>,
}

impl Hub {
    /// Starts the hub task, which sends every broadcast line to `writer`. The task ends on
    /// [`Hub::shutdown`] or when every handle is gone.
    pub(crate) fn start(writer: mpsc::Sender<WriteCmd>) -> (Self, tokio::task::JoinHandle<()>) {
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let watchers = Watchers::default();
        let (counts_tx, counts) = watch::channel(HashMap::new());
        let state = State {
            sessions: HashMap::new(),
            watchers: Arc::clone(&watchers),
            counts: counts_tx,
            writer,
        };
        let task = tokio::spawn(state.run(receiver));
        let hub = Self {
            commands,
            watchers,
            counts,
            next_id: Arc::new(AtomicU64::new(1)),
        };
        (hub, task)
    }

    /// Registers a connection of `session`; returns its id, or `None` if the hub stopped.
    pub(crate) async fn register(
        &self,
        session: &str,
        outgoing: mpsc::Sender<Utf8Bytes>,
        close: CancellationToken,
    ) -> Option<u64> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Connection {
            id,
            outgoing,
            close,
        };
        let command = Command::Register {
            session: session.to_owned(),
            connection,
        };
        self.commands.send(command).await.ok().map(|()| id)
    }

    /// Forgets a connection (a no-op if the hub already dropped it).
    pub(crate) async fn unregister(&self, session: &str, id: u64) {
        let command = Command::Unregister {
            session: session.to_owned(),
            id,
        };
        // A stopped hub has no connections left to forget.
        let _ = self.commands.send(command).await;
    }

    /// Queues a message for broadcast; it is delivered after everything queued before.
    pub(crate) async fn broadcast(&self, message: SessionMessage) -> Result<(), Error> {
        self.commands
            .send(Command::Broadcast(message))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Waits until every message queued before this call is written to disk.
    pub(crate) async fn flush(&self) -> Result<(), Error> {
        let (done, flushed) = oneshot::channel();
        self.commands
            .send(Command::Flush(done))
            .await
            .map_err(|_| Error::Stopped)?;
        flushed.await.map_err(|_| Error::Stopped)
    }

    /// Stops the hub: flushes persistence, closes remaining connections and drops every
    /// watcher. Returns once the hub task has let go of the history writer.
    pub(crate) async fn shutdown(&self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).await.is_ok() {
            // An error means the hub ended on its own, which is just as stopped.
            let _ = stopped.await;
        }
    }

    /// Every message broadcast for `session` from now on.
    pub(crate) fn watch(&self, session: &str) -> mpsc::UnboundedReceiver<SessionMessage> {
        let (sender, receiver) = mpsc::unbounded_channel();
        lock(&self.watchers)
            .entry(session.to_owned())
            .or_default()
            .push(sender);
        receiver
    }

    /// How many WebSocket connections of `session` the hub has registered.
    pub(crate) fn connection_count(&self, session: &str) -> usize {
        self.counts.borrow().get(session).copied().unwrap_or(0)
    }

    /// Waits until at least `count` connections of `session` are registered.
    pub(crate) async fn wait_for_connections(
        &self,
        session: &str,
        count: usize,
    ) -> Result<(), Error> {
        let mut counts = self.counts.clone();
        counts
            .wait_for(|counts| counts.get(session).copied().unwrap_or(0) >= count)
            .await
            .map(|_| ())
            .map_err(|_| Error::Stopped)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps guarded here stay consistent even if a holder panicked mid-way.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The state the hub task owns.
struct State {
    sessions: HashMap<String, Vec<Connection>>,
    watchers: Watchers,
    counts: watch::Sender<HashMap<String, usize>>,
    writer: mpsc::Sender<WriteCmd>,
}

impl State {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut stopped = None;
        while let Some(command) = commands.recv().await {
            match command {
                Command::Register {
                    session,
                    connection,
                } => {
                    debug!(session, id = connection.id, "connection registered");
                    self.sessions
                        .entry(session.clone())
                        .or_default()
                        .push(connection);
                    self.publish_count(&session);
                }
                Command::Unregister { session, id } => {
                    self.remove(&session, &[id]);
                    debug!(session, id, "connection unregistered");
                }
                Command::Broadcast(message) => self.broadcast(message).await,
                Command::Flush(done) => {
                    // The writer answers directly, after every line queued before.
                    if let Err(error) = self.writer.send(WriteCmd::Flush { done }).await {
                        warn!(%error, "history writer is gone; cannot flush");
                    }
                }
                Command::Shutdown(done) => {
                    stopped = Some(done);
                    break;
                }
            }
        }
        self.stop().await;
        if let Some(done) = stopped {
            let _ = done.send(());
        }
        debug!("hub stopped");
    }

    async fn broadcast(&mut self, message: SessionMessage) {
        let line = match serde_json::to_string(&message) {
            Ok(line) => Utf8Bytes::from(line),
            Err(error) => {
                warn!(%error, session = message.session_id, "could not serialize a message; dropped");
                return;
            }
        };
        let session = message.session_id.clone();
        self.notify_watchers(&message);
        let mut gone = Vec::new();
        if let Some(connections) = self.sessions.get(&session) {
            for connection in connections {
                if !deliver(connection, line.clone()).await {
                    gone.push(connection.id);
                }
            }
        }
        if !gone.is_empty() {
            self.remove(&session, &gone);
        }
        let append = WriteCmd::Append { session, line };
        if self.writer.send(append).await.is_err() {
            warn!("history writer is gone; message not persisted");
        }
    }

    fn notify_watchers(&self, message: &SessionMessage) {
        let mut watchers = lock(&self.watchers);
        if let Some(list) = watchers.get_mut(&message.session_id) {
            list.retain(|watcher| watcher.send(message.clone()).is_ok());
            if list.is_empty() {
                watchers.remove(&message.session_id);
            }
        }
    }

    fn remove(&mut self, session: &str, ids: &[u64]) {
        if let Some(connections) = self.sessions.get_mut(session) {
            connections.retain(|connection| !ids.contains(&connection.id));
            if connections.is_empty() {
                self.sessions.remove(session);
            }
        }
        self.publish_count(session);
    }

    fn publish_count(&self, session: &str) {
        let count = self.sessions.get(session).map_or(0, Vec::len);
        self.counts.send_modify(|counts| {
            if count == 0 {
                counts.remove(session);
            } else {
                counts.insert(session.to_owned(), count);
            }
        });
    }

    async fn stop(&mut self) {
        for connection in self.sessions.values().flatten() {
            connection.close.cancel();
        }
        self.sessions.clear();
        self.counts.send_modify(HashMap::clear);
        lock(&self.watchers).clear();
        let (done, flushed) = oneshot::channel();
        if self.writer.send(WriteCmd::Flush { done }).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

/// Puts a line in a connection's queue; `false` if the connection is gone or was dropped
/// for stalling.
async fn deliver(connection: &Connection, line: Utf8Bytes) -> bool {
    let line = match connection.outgoing.try_send(line) {
        Ok(()) => return true,
        Err(TrySendError::Closed(_)) => return false,
        Err(TrySendError::Full(line)) => line,
    };
    match connection.outgoing.send_timeout(line, STALL_LIMIT).await {
        Ok(()) => true,
        Err(SendTimeoutError::Closed(_)) => false,
        Err(SendTimeoutError::Timeout(_)) => {
            warn!(
                id = connection.id,
                limit = ?STALL_LIMIT,
                "dropping a connection whose queue stayed full"
            );
            connection.close.cancel();
            false
        }
    }
}
