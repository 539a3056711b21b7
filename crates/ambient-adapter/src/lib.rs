//! The plug-in point: one trait, [`Adapter`], that an agent framework implements, and the
//! [`Session`] it is handed.
//!
//! An adapter drives one session of its framework to the end. It reads user input from the
//! session, emits framework-neutral [`Event`]s, watches the session's cancellation, and
//! keeps what a later continuation needs in the session's [`Continuation`] store. It never
//! sees a WebSocket, a status URL or a token it does not need: the host and its front own those.
//!
//! This crate has no IO and depends only on the protocol types and tokio's channels, so
//! that a framework crate pulls in nothing it does not use.
//!
//! Where to start: `docs/adapter-guide.md` in the repository explains the trait, the
//! events and how they reach the UI, interrupts, continuation and testing, and
//! `examples/parrot-runner` is a whole runner for a made-up framework in one file. A
//! runner binary hands its adapter to `ambient_cli::execute`.

use std::{collections::BTreeMap, fmt, future::Future, path::PathBuf};

#[doc(no_inline)]
pub use ambient_protocol::{ByteBudget, Event, Held, ModelCall, Next, ResultPayload, TokenCounts};
use tokio::sync::mpsc;
#[doc(no_inline)]
pub use tokio_util::sync::CancellationToken;

/// An agent framework, run by the host once per session.
pub trait Adapter: Send {
    /// What can go wrong in this framework; the host reports it as the failure reason.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Drives one session to its end: a turn for each [`Input::Message`], until
    /// [`Input::EndSession`] has come and its turns are done (or no more input can come).
    ///
    /// The host decides what runs: the session's prompt, where it is to run, arrives as
    /// the first message, and a batch session's input ends with `EndSession` after it.
    /// When the session's cancellation fires the adapter returns promptly; from then on
    /// [`Session::emit`] fails, so `?` stops it.
    fn run(
        &mut self,
        session: &mut Session,
    ) -> impl Future<Output = Result<Outcome, Self::Error>> + Send;
}

/// How a session ended, as the adapter saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The work finished; `result` is the framework's last report, if any.
    Completed {
        /// The last result.
        result: Option<ResultPayload>,
    },
    /// The framework ran and reported failure (an error result, a failed graph).
    Failed {
        /// Why, in words for the user.
        reason: String,
        /// The last result.
        result: Option<ResultPayload>,
    },
}

impl Outcome {
    /// The session's outcome from its last turn: its result, and why it failed if it did;
    /// completed with no result when no turn ran.
    pub fn from_last_turn(last: Option<(ResultPayload, Option<String>)>) -> Self {
        match last {
            Some((result, Some(reason))) => Self::Failed {
                reason,
                result: Some(result),
            },
            Some((result, None)) => Self::Completed {
                result: Some(result),
            },
            None => Self::Completed { result: None },
        }
    }
}

/// What the user (or the platform) says to a running session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A user message: a prompt for a new turn. The session's prompt, where the host runs
    /// it, is the first.
    Message(UserMessage),
    /// Stop the current turn, keep the session.
    Interrupt,
    /// End the session normally once the turns already asked for are done. An
    /// [`Input::Interrupt`] may still follow (a batch session's turn can be interrupted).
    EndSession,
    /// The workspace changed while the session runs (a repository added or removed, a
    /// workflow switched): an adapter that hands folders to its framework picks up the
    /// new set, restarting the framework if it must.
    WorkspaceChanged(Workspace),
    /// Use this model from the next turn on. Only sent to an adapter whose runner says it
    /// can switch models (the serve mode's `/model`), and only between turns; others
    /// ignore it.
    SetModel(String),
    /// Stop the background task with this id (a subagent the framework runs beside its
    /// turns), which the adapter reported in its `tasks` report. Others ignore it.
    StopTask(String),
}

/// A user message. It holds its share of the session's input budget until it is
/// dropped: an adapter that queues messages while a turn runs keeps them as they came, and
/// takes the text out ([`UserMessage::into_text`]) when their turn starts. A peer that
/// sends faster than the agent works is then refused by the host past the budget, instead
/// of filling the adapter's queue.
#[derive(Debug)]
pub struct UserMessage {
    text: String,
    held: Option<Held>,
}

impl UserMessage {
    /// A message that counts against no budget (tests, a host's own).
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            held: None,
        }
    }

    /// A message holding `held` of a budget until it is dropped.
    pub fn held(text: impl Into<String>, held: Held) -> Self {
        Self {
            text: text.into(),
            held: Some(held),
        }
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text, giving its bytes back to the budget.
    pub fn into_text(self) -> String {
        self.text
    }

    /// The message without its leading and trailing whitespace, holding what it held.
    pub fn trimmed(mut self) -> Self {
        let trimmed = self.text.trim();
        if trimmed.len() != self.text.len() {
            self.text = trimmed.to_owned();
        }
        self
    }

    /// The bytes it holds of a budget.
    pub fn held_bytes(&self) -> usize {
        self.held.as_ref().map_or(0, Held::bytes)
    }
}

impl std::ops::Deref for UserMessage {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

/// A copy holds nothing of the budget: only the message the host delivered counts.
impl Clone for UserMessage {
    fn clone(&self) -> Self {
        Self::new(self.text.clone())
    }
}

impl PartialEq for UserMessage {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for UserMessage {}

impl From<&str> for UserMessage {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for UserMessage {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

/// Whether the session runs one prompt or converses. The host delivers input
/// accordingly; an adapter need not look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run the prompt, then finish.
    Batch,
    /// Answer user messages until the session is ended.
    Interactive,
}

/// Where the adapter works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The working directory: the main repository, or the workspace root.
    pub main: PathBuf,
    /// Other folders the agent may use (other repositories, the artifacts folder).
    pub extra: Vec<PathBuf>,
    /// Where the agent leaves files that belong to no repository.
    pub artifacts: PathBuf,
}

/// What the adapter knows about its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The platform's session name.
    pub session_id: String,
    /// Batch or interactive.
    pub mode: Mode,
    /// Whether this session continues an earlier one: resume what
    /// [`Session::continuation`] holds.
    pub is_continuation: bool,
    /// The prepared workspace.
    pub workspace: Workspace,
}

/// Values kept across sessions (a thread id, a framework session id), stored by the front:
/// as annotations on the session resource over the WebSocket, in a file on the
/// workspace's volume in the serve mode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Continuation {
    values: BTreeMap<String, String>,
}

impl Continuation {
    /// A store with these values, as a previous session left them.
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self { values }
    }

    /// A value a previous session stored.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// The session is over for the adapter: it was cancelled (a stop, the timeout), or the
/// host no longer reads its events. Every [`Session::emit`] fails with it from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClosed;

impl fmt::Display for SessionClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the session is over")
    }
}

impl std::error::Error for SessionClosed {}

/// A value an adapter stores for later sessions: an annotation key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The annotation key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// What an adapter gives the host: events to relay, values to keep.
#[derive(Debug)]
pub enum SessionOutput {
    /// An event to relay.
    Event(Event),
    /// A continuation value to store.
    Store(Stored),
}

/// The sending half of a session: relays events to the platform.
#[derive(Debug, Clone)]
pub struct Emitter {
    output: mpsc::Sender<SessionOutput>,
    cancel: CancellationToken,
}

impl Emitter {
    /// Relays an event to the platform. Waits while the outgoing buffer is full
    /// (backpressure: events are never dropped), and fails with [`SessionClosed`] once the
    /// session is cancelled or closed, even while waiting: `?` is all an adapter needs to
    /// stop emitting when the session is over.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it completes, the event was not sent.
    pub async fn emit(&self, event: Event) -> Result<(), SessionClosed> {
        self.send(SessionOutput::Event(event)).await
    }

    async fn send(&self, output: SessionOutput) -> Result<(), SessionClosed> {
        if self.cancel.is_cancelled() {
            return Err(SessionClosed);
        }
        // Room in the buffer is the common case, and needs no wait on the cancellation.
        let output = match self.output.try_send(output) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(SessionClosed),
            Err(mpsc::error::TrySendError::Full(output)) => output,
        };
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(SessionClosed),
            sent = self.output.send(output) => sent.map_err(|_| SessionClosed),
        }
    }
}

/// The receiving half of a session: user input in arrival order.
#[derive(Debug)]
pub struct Inputs {
    input: mpsc::UnboundedReceiver<Input>,
}

impl Inputs {
    /// The next user input; `None` when no more can come.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: an input is never lost by dropping this future.
    pub async fn next(&mut self) -> Option<Input> {
        self.input.recv().await
    }
}

/// Everything an adapter gets from the host for one session.
#[derive(Debug)]
pub struct Session {
    info: SessionInfo,
    emitter: Emitter,
    inputs: Inputs,
    cancel: CancellationToken,
    continuation: Continuation,
}

impl Session {
    /// Assembles a session; the host (or a test) keeps the other ends of the channels.
    pub fn new(
        info: SessionInfo,
        output: mpsc::Sender<SessionOutput>,
        input: mpsc::UnboundedReceiver<Input>,
        cancel: CancellationToken,
        continuation: Continuation,
    ) -> Self {
        Self {
            info,
            emitter: Emitter {
                output,
                cancel: cancel.clone(),
            },
            inputs: Inputs { input },
            cancel,
            continuation,
        }
    }

    /// The session's name, prompt, mode and workspace.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// Relays an event to the platform; see [`Emitter::emit`]: it waits while the
    /// outgoing buffer is full and fails once the session is over.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it completes, the event was not sent.
    pub async fn emit(&self, event: Event) -> Result<(), SessionClosed> {
        self.emitter.emit(event).await
    }

    /// The next user input, in arrival order; `None` when no more can come.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: an input is never lost by dropping this future.
    pub async fn next_input(&mut self) -> Option<Input> {
        self.inputs.next().await
    }

    /// Both halves at once, to emit while watching for input (an interrupt mid-turn).
    pub fn io(&mut self) -> (&Emitter, &mut Inputs) {
        (&self.emitter, &mut self.inputs)
    }

    /// Fires when the session must stop (timeout, SIGTERM, stop): the adapter stops its
    /// framework and returns promptly.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// What earlier sessions stored for this one to continue from.
    pub fn continuation(&self) -> &Continuation {
        &self.continuation
    }

    /// Keeps a value for a later continuation (stored in the background, with retry).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if dropped before it completes, the value was not stored.
    pub async fn store(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), SessionClosed> {
        let stored = Stored {
            key: key.into(),
            value: value.into(),
        };
        self.continuation
            .values
            .insert(stored.key.clone(), stored.value.clone());
        self.emitter.send(SessionOutput::Store(stored)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> (
        Session,
        mpsc::Receiver<SessionOutput>,
        mpsc::UnboundedSender<Input>,
    ) {
        session_with(CancellationToken::new())
    }

    fn session_with(
        cancel: CancellationToken,
    ) -> (
        Session,
        mpsc::Receiver<SessionOutput>,
        mpsc::UnboundedSender<Input>,
    ) {
        let (output, output_rx) = mpsc::channel(1);
        let (input, input_rx) = mpsc::unbounded_channel();
        let mut earlier = BTreeMap::new();
        earlier.insert(String::from("thread"), String::from("t-1"));
        let info = SessionInfo {
            session_id: String::from("s"),
            mode: Mode::Interactive,
            is_continuation: true,
            workspace: Workspace {
                main: PathBuf::from("/w"),
                extra: Vec::new(),
                artifacts: PathBuf::from("/w/artifacts"),
            },
        };
        let session = Session::new(info, output, input_rx, cancel, Continuation::new(earlier));
        (session, output_rx, input)
    }

    #[tokio::test]
    async fn stored_values_are_visible_at_once_and_reach_the_host() {
        let (mut session, mut output, _input) = session();
        assert_eq!(session.continuation().get("thread"), Some("t-1"));
        session.store("thread", "t-2").await.unwrap();
        assert_eq!(session.continuation().get("thread"), Some("t-2"));
        let Some(SessionOutput::Store(stored)) = output.recv().await else {
            panic!("expected a store");
        };
        assert_eq!(
            stored,
            Stored {
                key: String::from("thread"),
                value: String::from("t-2")
            }
        );
    }

    #[tokio::test]
    async fn input_arrives_in_order_and_a_closed_host_is_an_error() {
        let (mut session, output, input) = session();
        input.send(Input::Message("a".into())).unwrap();
        input.send(Input::Interrupt).unwrap();
        drop(input);
        assert_eq!(session.next_input().await, Some(Input::Message("a".into())));
        assert_eq!(session.next_input().await, Some(Input::Interrupt));
        assert_eq!(session.next_input().await, None);
        drop(output);
        assert_eq!(session.emit(Event::TurnStarted).await, Err(SessionClosed));
    }

    #[tokio::test]
    async fn emit_fails_once_cancelled_even_while_the_buffer_is_full() {
        let cancel = CancellationToken::new();
        let (session, mut output, _input) = session_with(cancel.clone());
        session.emit(Event::TurnStarted).await.unwrap();
        // The buffer holds one event: the next emit waits, until the cancellation.
        let waiting = session.emit(Event::Text(String::from("late")));
        let cancelling = async {
            tokio::task::yield_now().await;
            cancel.cancel();
        };
        let (sent, ()) = tokio::join!(waiting, cancelling);
        assert_eq!(sent, Err(SessionClosed));
        assert_eq!(
            session.emit(Event::Log(String::from("after"))).await,
            Err(SessionClosed)
        );
        assert!(matches!(
            output.recv().await,
            Some(SessionOutput::Event(Event::TurnStarted))
        ));
        assert!(output.try_recv().is_err(), "nothing after the cancellation");
    }
}
