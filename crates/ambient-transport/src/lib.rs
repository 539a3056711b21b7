//! The runner's WebSocket client.
//!
//! [`Transport::connect`] dials the backend with a bearer token and hands back a
//! [`Transport`] to send frames through and a stream of what the backend says. One task
//! owns the socket; everything else talks to it through channels:
//!
//! - Every frame stays in a bounded outbox until the backend's broadcast copy of it (the
//!   echo, matched by the frame's stable id) comes back. When the outbox is full,
//!   [`Transport::send`] waits: backpressure, never a drop.
//! - A normal close, a read error or a missed pong ends the connection; the task then
//!   reconnects with capped exponential backoff and jitter, and resends every frame not yet
//!   echoed, in order. It gives up after the configured deadline.
//! - Messages for another session are ignored; the echoes of our own frames are consumed
//!   here; everything else reaches the caller as [`ambient_protocol::Inbound`].
//!
//! This crate does not know what a session is: lifecycle, status and adapters are the
//! WebSocket front's (`ambient-websocket`). It never puts the token in a URL.

mod connection;
mod error;
mod gate;
mod outbox;
mod task;

use std::{path::PathBuf, time::Duration};

use ambient_protocol::{ByteBudget, Held, Inbound, InboundError, Outbound, Secret, SessionMessage};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

#[doc(no_inline)]
pub use ambient_backoff::BackoffPolicy;
pub use error::{Error, Result};

/// Where the bearer token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// No token: the connection is unauthenticated (the backend will refuse it).
    None,
    /// A token fixed for the life of the process.
    Static(Secret),
    /// A mounted file, read again before every connection attempt so that a rotated
    /// token is picked up.
    File(PathBuf),
}

/// How often to ping, and how long to wait for any sign of life after a ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Time between pings.
    pub interval: Duration,
    /// Silence after a ping that counts as a dead connection.
    pub timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(20),
            timeout: Duration::from_secs(20),
        }
    }
}

/// Bounds of the outbox: the frames kept until the backend echoes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Frames kept at most.
    pub frames: usize,
    /// Bytes of serialised frames kept at most.
    pub bytes: usize,
    /// The largest frame sent; larger ones are split or shortened
    /// ([`ambient_protocol::Outbound::fit`]).
    pub max_frame_bytes: usize,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        Self {
            frames: 1024,
            bytes: 4 << 20,
            max_frame_bytes: ambient_protocol::MAX_FRAME_BYTES,
        }
    }
}

/// Everything the transport needs to reach the backend.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// `ws://` or `wss://` URL of `/api/projects/{p}/sessions/{s}/ws`.
    pub url: String,
    /// The bearer token.
    pub token: TokenSource,
    /// Our session name: messages for any other are ignored.
    pub session_id: String,
    /// A string unique to this process; frame ids are `{instance}-{seq}`.
    pub instance: String,
    /// How much the outbox keeps while waiting for echoes.
    pub outbox: OutboxLimits,
    /// Pings and dead-peer detection.
    pub keepalive: Keepalive,
    /// Delays between connection attempts.
    pub backoff: BackoffPolicy,
    /// How long to keep trying to reach the backend once it is lost (or at start) before
    /// giving up.
    pub give_up_after: Duration,
    /// The largest message read from the backend; a larger one is refused
    /// ([`Received::TooLarge`]) and the connection made again. Never below four of the
    /// largest frames sent, whose echoes come back as large.
    pub max_message_bytes: usize,
    /// What every message received holds until its receiver drops it: past it, messages
    /// are dropped ([`Received::Dropped`]) and the socket is still read, so that an
    /// interrupt or an end is never stuck behind a flood. Control messages have a small
    /// budget of their own.
    pub input_budget: ByteBudget,
    /// Told how long each frame took from the outbox to the backend's echo of it.
    pub delivered: Option<DeliveryObserver>,
}

/// Told, on the socket's task, how long a frame took from being queued to the backend's
/// echo of it (the relay latency). It must not block.
#[derive(Clone)]
pub struct DeliveryObserver(pub std::sync::Arc<dyn Fn(Duration) + Send + Sync>);

impl std::fmt::Debug for DeliveryObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryObserver")
    }
}

/// The largest message read from the backend by default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 << 20;
/// The bytes of received messages held by default.
pub const DEFAULT_INPUT_BUDGET_BYTES: usize = 16 << 20;
/// The most messages held, whatever their size: each takes at least this share of the
/// input budget.
pub const MESSAGES_HELD: usize = 256;
/// Control messages (`interrupt`, `end_session`, …) and malformed ones received and not
/// yet taken: past it, more are dropped.
pub const CONTROL_MESSAGES_HELD: usize = 1024;

impl TransportConfig {
    /// A configuration with the defaults for everything but the endpoint.
    pub fn new(url: impl Into<String>, token: TokenSource, session_id: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token,
            session_id: session_id.into(),
            instance: format!("{:016x}", fastrand::u64(..)),
            outbox: OutboxLimits::default(),
            keepalive: Keepalive::default(),
            backoff: BackoffPolicy::default(),
            give_up_after: Duration::from_secs(300),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            input_budget: ByteBudget::holding_at_most(DEFAULT_INPUT_BUDGET_BYTES, MESSAGES_HELD),
            delivered: None,
        }
    }
}

/// What the transport tells its caller.
#[derive(Debug)]
pub enum Received {
    /// A message for this session that is not an echo of ours.
    Message {
        /// What it means.
        inbound: Inbound,
        /// The message as the backend sent it.
        message: SessionMessage,
        /// Its share of the input budget (a control message's, of theirs), until dropped.
        held: Held,
    },
    /// A message of a known type whose payload was wrong; the error names what.
    Malformed {
        /// What was wrong.
        error: InboundError,
        /// Its share of the control messages' budget, until dropped.
        held: Held,
    },
    /// Messages were dropped since the last thing received: the budget was spent.
    Dropped {
        /// How many.
        messages: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// A message larger than the limit was refused; the connection is made again.
    TooLarge {
        /// Its size, as its header said.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The connection was lost and made again: messages sent to the session meanwhile
    /// were not delivered, and can be recovered from the message history.
    Reconnected {
        /// When the connection was found lost.
        lost_at: std::time::SystemTime,
        /// Connections made after the first, this one included.
        reconnects: u64,
        /// Frames not yet acknowledged, sent again on the new connection.
        resending: u64,
    },
}

/// Counts from a finished transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Frames accepted from the caller.
    pub frames: u64,
    /// Frames written to a socket, resends included.
    pub writes: u64,
    /// Connections made after the first.
    pub reconnects: u64,
}

/// Queues frames on a [`Transport`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FrameSender {
    commands: mpsc::Sender<Command>,
}

impl FrameSender {
    /// Waits for room for one frame.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping it gives the room back; no frame is involved yet.
    pub async fn reserve(&self) -> Result<FramePermit<'_>> {
        let permit = self.commands.reserve().await.map_err(|_| Error::Closed)?;
        Ok(FramePermit { permit })
    }
}

/// Room for one frame, from [`FrameSender::reserve`].
#[derive(Debug)]
pub struct FramePermit<'a> {
    permit: mpsc::Permit<'a, Command>,
}

impl FramePermit<'_> {
    /// Queues the frame; it cannot wait or fail.
    pub fn send(self, body: Outbound) {
        self.permit.send(Command::Send(body));
    }
}

enum Command {
    Send(Outbound),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// A connected transport. Dropping it stops the socket task without a close handshake;
/// call [`Transport::close`] for a clean end.
#[derive(Debug)]
pub struct Transport {
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<Result<Stats>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Send(body) => write!(f, "Send({})", body.kind_name()),
            Self::Flush(_) => f.write_str("Flush"),
            Self::Close(_) => f.write_str("Close"),
        }
    }
}

impl Transport {
    /// Connects to the backend, retrying within the configured deadline, and starts the
    /// task that owns the socket. A refused handshake (401, 403, 404) fails at once.
    ///
    /// `cancel` stops the task abruptly; use [`Transport::close`] to end cleanly.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future drops the half-made connection.
    pub async fn connect(
        config: TransportConfig,
        cancel: CancellationToken,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Received>)> {
        let socket = connection::connect_with_retry(&config, &cancel, None).await?;
        // The channel is small: the outbox is the buffer, and sending waits on it.
        let (commands, command_rx) = mpsc::channel(64);
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        let task = tokio::spawn(task::run(config, socket, command_rx, inbound_tx, cancel));
        Ok((Self { commands, task }, inbound))
    }

    /// A handle that queues frames, for a caller that must wait for room while it also
    /// waits for other things.
    pub fn sender(&self) -> FrameSender {
        FrameSender {
            commands: self.commands.clone(),
        }
    }

    /// Queues a frame. Waits while the outbox is full.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if dropped before it completes, the frame was not queued.
    pub async fn send(&self, body: Outbound) -> Result<()> {
        self.commands
            .send(Command::Send(body))
            .await
            .map_err(|_| Error::Closed)
    }

    /// Waits until the backend has echoed every frame queued before this call.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping it only stops the waiting.
    pub async fn flush(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Flush(done))
            .await
            .map_err(|_| Error::Closed)?;
        wait.await.map_err(|_| Error::Closed)
    }

    /// Waits for every queued frame to be echoed, closes the socket with a normal close,
    /// and ends the task.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: if dropped, the task keeps running until the transport's
    /// cancellation token fires.
    pub async fn close(self) -> Result<Stats> {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Close(done)).await.is_ok() {
            // The task answers once the close frame is out, or drops the sender if it
            // ended first; either way its result says how it went.
            let _closed = wait.await;
        }
        drop(self.commands);
        self.task.await.map_err(|_| Error::Closed)?
    }
}
