//! One WebSocket connection of a session (`platform-wire.md` §3.1, §3.2).
//!
//! The connection is a reader and a writer running side by side in one task. The reader
//! turns text frames into broadcasts (through the hub) or, for `{"type":"ping"}`, into a
//! pong for this connection only. The writer drains the connection's queue, sends a ping
//! control frame every ping interval and closes the socket when the connection is
//! cancelled (shutdown, or the hub dropping a stalled connection). Keeping the two apart
//! means a reader waiting on a busy hub never stops the writer from draining the queue
//! the hub is waiting on.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code},
};
use futures_util::{
    SinkExt as _, StreamExt as _,
    stream::{SplitSink, SplitStream},
};
use tokio::{
    sync::mpsc,
    time::{Instant, MissedTickBehavior, interval_at},
};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::{
    hub::{CONNECTION_QUEUE, Hub},
    message::{self, Incoming},
};

/// How many queued messages the writer sends before it flushes the socket.
const WRITE_BATCH: usize = 256;
/// How long a closing connection may take to send its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a connection needs from the backend.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionContext {
    pub(crate) hub: Hub,
    /// `None` disables ping control frames.
    pub(crate) ping_every: Option<Duration>,
    /// Cancelled when the backend shuts down.
    pub(crate) shutdown: CancellationToken,
}

/// Serves one upgraded connection of `session` until either side ends it.
pub(crate) async fn serve(socket: WebSocket, session: String, context: ConnectionContext) {
    let close = context.shutdown.child_token();
    let (outgoing, queue) = mpsc::channel(CONNECTION_QUEUE);
    let Some(id) = context
        .hub
        .register(&session, outgoing, close.clone())
        .await
    else {
        return;
    };
    debug!(session, id, "websocket connected");
    let (pongs, pong_queue) = mpsc::channel(16);
    let (sink, stream) = socket.split();
    let write = async {
        write_loop(sink, queue, pong_queue, context.ping_every, &close).await;
        close.cancel();
    };
    let read = async {
        read_loop(stream, &session, &context.hub, pongs, &close).await;
        close.cancel();
    };
    tokio::join!(write, read);
    context.hub.unregister(&session, id).await;
    debug!(session, id, "websocket closed");
}

async fn read_loop(
    mut stream: SplitStream<WebSocket>,
    session: &str,
    hub: &Hub,
    pongs: mpsc::Sender<Utf8Bytes>,
    close: &CancellationToken,
) {
    loop {
        let next = tokio::select! {
            () = close.cancelled() => return,
            next = stream.next() => next,
        };
        let text = match next {
            None | Some(Ok(Message::Close(_))) => return,
            Some(Err(error)) => {
                debug!(session, %error, "websocket read failed");
                return;
            }
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                debug!(session, "ignoring a binary frame");
                continue;
            }
            // Tungstenite answers pings itself; pongs need nothing.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
        };
        let sent = match message::from_frame(session, text.as_str()) {
            Incoming::Ping => {
                let pong = Utf8Bytes::from(message::pong());
                tokio::select! {
                    () = close.cancelled() => return,
                    sent = pongs.send(pong) => sent.is_ok(),
                }
            }
            Incoming::Broadcast(message) => tokio::select! {
                () = close.cancelled() => return,
                sent = hub.broadcast(message) => sent.is_ok(),
            },
            Incoming::Dropped(reason) => {
                debug!(session, reason, "dropping a frame");
                true
            }
        };
        if !sent {
            return;
        }
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Utf8Bytes>,
    mut pongs: mpsc::Receiver<Utf8Bytes>,
    ping_every: Option<Duration>,
    close: &CancellationToken,
) {
    // With pings disabled the timer still exists but its branch never runs.
    let period = ping_every.unwrap_or(Duration::from_secs(3600));
    let mut ping = interval_at(Instant::now() + period, period);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            biased;
            () = close.cancelled() => break,
            Some(pong) = pongs.recv() => Message::Text(pong),
            line = queue.recv() => match line {
                Some(line) => Message::Text(line),
                // The hub let go of this connection.
                None => break,
            },
            _ = ping.tick(), if ping_every.is_some() => Message::Ping(Bytes::new()),
        };
        let send = async {
            sink.feed(first).await?;
            for _ in 1..WRITE_BATCH {
                match queue.try_recv() {
                    Ok(line) => sink.feed(Message::Text(line)).await?,
                    Err(_) => break,
                }
            }
            sink.flush().await
        };
        let sent = tokio::select! {
            // A peer that does not read must not hold up a shutdown.
            () = close.cancelled() => return,
            sent = send => sent,
        };
        if let Err(error) = sent {
            debug!(%error, "websocket write failed");
            return;
        }
    }
    let goodbye = Message::Close(Some(CloseFrame {
        code: close_code::AWAY,
        reason: Utf8Bytes::from_static("closing"),
    }));
    // The peer may already be gone; the socket is dropped either way.
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(goodbye)).await;
}
