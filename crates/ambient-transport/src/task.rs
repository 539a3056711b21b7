//! The task that owns the socket.

use ambient_backoff::Backoff;
use ambient_protocol::{ByteBudget, Inbound, SessionMessage, echo_frame_id};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use tokio::{
    sync::{mpsc, oneshot},
    time::{Instant, MissedTickBehavior},
};
use tokio_tungstenite::tungstenite::{
    self, Message, Utf8Bytes,
    error::CapacityError,
    protocol::{CloseFrame, frame::coding::CloseCode},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    Command, Received, Result, Stats, TransportConfig,
    connection::{Socket, connect_with_retry, error_chain},
    gate::Gated,
    outbox::Outbox,
};

/// Why a connection ended.
#[derive(Debug)]
enum Disconnect {
    /// The caller asked to close and everything was delivered.
    Finished,
    /// The connection was lost; reconnect.
    Lost(String),
}

/// State that outlives a connection.
struct State {
    config: TransportConfig,
    outbox: Outbox,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::UnboundedSender<Received>,
    flush_waiters: Vec<oneshot::Sender<()>>,
    closing: Option<oneshot::Sender<()>>,
    commands_done: bool,
    stats: Stats,
    /// What control and malformed messages may hold (one unit each).
    controls: ByteBudget,
    /// Messages dropped since the last one delivered, and their bytes.
    dropped: (u64, u64),
}

pub(crate) async fn run(
    config: TransportConfig,
    mut socket: Socket,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::UnboundedSender<Received>,
    cancel: CancellationToken,
) -> Result<Stats> {
    let mut backoff = Backoff::new(config.backoff);
    let mut state = State {
        outbox: {
            let outbox = Outbox::new(config.instance.clone(), config.outbox);
            if config.delivered.is_some() {
                outbox.timed()
            } else {
                outbox
            }
        },
        config,
        commands,
        inbound,
        flush_waiters: Vec::new(),
        closing: None,
        commands_done: false,
        stats: Stats::default(),
        controls: ByteBudget::new(crate::CONTROL_MESSAGES_HELD),
        dropped: (0, 0),
    };
    loop {
        let connected_at = Instant::now();
        let reason = tokio::select! {
            () = cancel.cancelled() => return Ok(state.stats),
            reason = state.serve(socket) => reason,
        };
        match reason {
            Disconnect::Finished => return Ok(state.stats),
            Disconnect::Lost(why) => {
                let lost_at = std::time::SystemTime::now();
                if connected_at.elapsed() >= backoff.policy().reset_after {
                    backoff.reset();
                }
                warn!(reason = %why, unacknowledged = state.outbox.len(), "connection lost, reconnecting");
                socket = connect_with_retry(&state.config, &cancel, Some(&mut backoff)).await?;
                state.stats.reconnects += 1;
                info!(
                    reconnects = state.stats.reconnects,
                    resending = state.outbox.len(),
                    bytes = state.outbox.bytes(),
                    "reconnected"
                );
                let _told = state.inbound.send(Received::Reconnected {
                    lost_at,
                    reconnects: state.stats.reconnects,
                    resending: u64::try_from(state.outbox.len()).unwrap_or(u64::MAX),
                });
            }
        }
    }
}

impl State {
    /// Runs one connection until it ends. Every branch of the loop is cancel-safe: reads
    /// and channel receives lose nothing, and `feed` either hands a frame to the socket
    /// or leaves it in the outbox to be fed again.
    async fn serve(&mut self, socket: Socket) -> Disconnect {
        let (mut sink, stream) = socket.split();
        let mut stream = Gated::new(stream);
        self.outbox.rewind();
        let keepalive = self.config.keepalive;
        let mut ping =
            tokio::time::interval_at(Instant::now() + keepalive.interval, keepalive.interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Armed when a ping goes out, cleared by anything the backend sends.
        let mut silence_deadline: Option<Instant> = None;
        let mut ping_due = false;
        let mut dirty = false;
        loop {
            self.answer_flush_waiters();
            if self.outbox.is_empty() && (self.closing.is_some() || self.commands_done) {
                let close = Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "session ended".into(),
                }));
                // The close is a courtesy: everything was already delivered.
                let _sent = sink.send(close).await;
                if let Some(done) = self.closing.take() {
                    let _answered = done.send(());
                }
                return Disconnect::Finished;
            }
            // A pending ping goes first; frames are fed while there are any, and the
            // socket is flushed once they run out, so that a burst costs few syscalls.
            let next_write = if ping_due {
                Some(Write::Ping)
            } else if let Some(text) = self.outbox.next_unwritten() {
                Some(Write::Frame(text))
            } else if dirty {
                Some(Write::Flush)
            } else {
                None
            };
            let accepting = self.outbox.has_room() && self.closing.is_none() && !self.commands_done;
            tokio::select! {
                biased;
                message = stream.next() => {
                    silence_deadline = None;
                    match message {
                        Some(Ok(Message::Text(text))) => self.receive(text.as_str()),
                        Some(Ok(Message::Close(_))) | None => return Disconnect::Lost(String::from("the backend closed the connection")),
                        Some(Ok(_)) => {}
                        Some(Err(tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                            warn!(size, limit = max_size, "the backend sent a message larger than the limit; refused");
                            let _told = self.inbound.send(Received::TooLarge { size, limit: max_size });
                            return Disconnect::Lost(format!("a message of {size} bytes is over the limit of {max_size}"));
                        }
                        Some(Err(error)) => return Disconnect::Lost(error_chain(&error)),
                    }
                }
                written = write(&mut sink, next_write.clone()), if next_write.is_some() => {
                    if let Err(error) = written { return Disconnect::Lost(error_chain(&error)); }
                    match next_write {
                        Some(Write::Ping) => {
                            ping_due = false;
                            dirty = true;
                            silence_deadline.get_or_insert(Instant::now() + keepalive.timeout);
                        }
                        Some(Write::Frame(_)) => {
                            self.outbox.mark_written();
                            self.stats.writes += 1;
                            dirty = true;
                        }
                        Some(Write::Flush) | None => dirty = false,
                    }
                }
                command = self.commands.recv(), if accepting => {
                    self.take(command);
                    // Every command already queued is taken now, so that their frames
                    // go out in one write rather than one write each.
                    while self.outbox.has_room() && self.closing.is_none() && !self.commands_done {
                        match self.commands.try_recv() {
                            Ok(command) => self.take(Some(command)),
                            Err(_) => break,
                        }
                    }
                }
                _ = ping.tick() => ping_due = true,
                () = sleep_until_or_never(silence_deadline) => {
                    return Disconnect::Lost(format!("no answer to a ping within {:?}", keepalive.timeout));
                }
            }
        }
    }

    /// One command from the caller (`None`: the caller is gone).
    fn take(&mut self, command: Option<Command>) {
        match command {
            Some(Command::Send(body)) => {
                self.outbox.push(body);
                self.stats.frames += 1;
            }
            Some(Command::Flush(done)) => self.flush_waiters.push(done),
            Some(Command::Close(done)) => self.closing = Some(done),
            None => self.commands_done = true,
        }
    }

    fn answer_flush_waiters(&mut self) {
        if self.outbox.is_empty() {
            for done in self.flush_waiters.drain(..) {
                let _answered = done.send(());
            }
        }
    }

    /// The backend echoed our frame `id`: it is delivered.
    fn delivered(&mut self, id: &ambient_protocol::FrameId) {
        if let (Some(took), Some(observer)) = (self.outbox.acknowledge(id), &self.config.delivered)
        {
            (observer.0)(took);
        }
    }

    /// One text message from the backend.
    fn receive(&mut self, text: &str) {
        // Most messages are echoes of our own frames: recognise those from their id
        // alone, without building the message.
        if let Some(id) = echo_frame_id(text, &self.config.session_id)
            && self.outbox.is_ours(&id)
        {
            self.delivered(&id);
            return;
        }
        let message: SessionMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => {
                warn!(%error, bytes = text.len(), "ignoring a message that is not a session message");
                return;
            }
        };
        if message.session_id != self.config.session_id {
            debug!(session = %message.session_id, kind = %message.kind, "ignoring a message for another session");
            return;
        }
        let (inbound, budget) = match message.classify() {
            Ok(Inbound::Echo { frame_id, .. }) if self.outbox.is_ours(&frame_id) => {
                self.delivered(&frame_id);
                return;
            }
            Ok(Inbound::Echo { .. } | Inbound::RunnerFrame { .. } | Inbound::Pong) => return,
            Ok(
                inbound @ (Inbound::Interrupt
                | Inbound::EndSession
                | Inbound::Terminate
                | Inbound::Stop),
            ) => (Ok(inbound), (&self.controls, 1)),
            Ok(inbound) => (Ok(inbound), (&self.config.input_budget, text.len())),
            Err(error) => (Err(error), (&self.controls, 1)),
        };
        let Some(held) = budget.0.try_take(budget.1) else {
            self.dropped.0 += 1;
            self.dropped.1 += text.len() as u64;
            if self.dropped.0 == 1 {
                warn!(
                    budget = budget.0.capacity(),
                    "the messages received fill their budget; dropping until the session catches up"
                );
            }
            return;
        };
        if self.dropped.0 > 0 {
            let (messages, bytes) = std::mem::take(&mut self.dropped);
            let _told = self.inbound.send(Received::Dropped { messages, bytes });
        }
        let received = match inbound {
            Ok(inbound) => Received::Message {
                inbound,
                message,
                held,
            },
            Err(error) => Received::Malformed { error, held },
        };
        // The receiver may be gone when the session is ending; nothing to do then.
        let _delivered = self.inbound.send(received);
    }
}

/// One step of writing to the socket.
#[derive(Clone)]
enum Write {
    Ping,
    Frame(Utf8Bytes),
    Flush,
}

/// Performs one write step.
///
/// Cancel-safe: `feed` either hands the message to the socket in the poll that completes
/// or not at all, and a flush can be started again.
async fn write(
    sink: &mut SplitSink<Socket, Message>,
    step: Option<Write>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    match step {
        Some(Write::Ping) => sink.feed(Message::Ping(Default::default())).await,
        Some(Write::Frame(text)) => sink.feed(Message::Text(text)).await,
        Some(Write::Flush) => sink.flush().await,
        None => Ok(()),
    }
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
