//! What a front is to the host: how the platform hears the session and speaks to it.
//!
//! The host runs every session the same way ([`crate::run`]); a front is only the part
//! that differs between platforms: the WebSocket to the original backend
//! (`ambient-websocket`), or an HTTP server streaming AG-UI for the current one
//! (`ambient-serve`). The host hands a front what to say ([`Relayed`]: the adapter's
//! events, already scrubbed of secrets, and the host's own lines), and the front hands
//! the host what the platform asks ([`Front::Request`]), which the front then turns into
//! input for the adapter or a workspace change through [`Control`].

use std::{future::Future, sync::Arc};

use ambient_adapter::{Continuation, Event, Input, Mode, SessionInfo, Stored};
use ambient_protocol::ResultPayload;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::{
    exit::SessionEnd,
    workspace::{Change, TokenMinter},
};

/// What a front knows about the session once it has opened it.
#[derive(Debug, Default)]
pub struct Opening {
    /// Whether this session continues an earlier one: its workspace is kept as it is and
    /// the framework resumes from `continuation`.
    pub is_continuation: bool,
    /// What earlier sessions kept for this one.
    pub continuation: Continuation,
    /// The prompt the conversation already holds (the continued session's own), when the
    /// front knows it: it is not run again.
    pub parent_prompt: Option<String>,
    /// Mints a GitHub token when the session was given none.
    pub minter: Option<Arc<dyn TokenMinter>>,
}

/// One thing the host tells the platform, already scrubbed of secrets.
#[derive(Debug, Clone, PartialEq)]
pub enum Relayed {
    /// An event of the adapter's, or a line of the host's own ([`Event::Log`]).
    Event(Event),
    /// The agent now waits for the user: after a turn in an interactive session, or after
    /// a question.
    Waiting,
    /// The prompt the host gave the adapter as its first message.
    Prompt(String),
    /// A value to keep for a later session.
    Store(Stored),
}

/// What [`Front::next`] did.
#[derive(Debug)]
pub enum Step<R> {
    /// The platform asked something.
    Request(R),
    /// One relayed item went out.
    Sent,
}

/// How the session ended, for [`Front::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    /// How it ended.
    pub end: SessionEnd,
    /// The adapter's last result.
    pub result: Option<ResultPayload>,
    /// Whether the runner is stopping (a signal): what is left must fit the stop budget,
    /// so the front keeps its retries short.
    pub stopping: bool,
}

/// One front of the host.
///
/// Every method runs on the host's loop, one at a time; none may block. A front never
/// sees the adapter: it sees [`Relayed`] items and answers requests with [`Control`].
pub trait Front: Send {
    /// What the platform asks of the session, handed back to [`Front::handle`].
    type Request: Send;

    /// Opens the session on the platform before its workspace is prepared (connects,
    /// says it started, reads what the session continues). `Err` ends the session there,
    /// as that end. The host races it against the stop signal and the timeout.
    fn open(&mut self) -> impl Future<Output = Result<Opening, SessionEnd>> + Send;

    /// Takes one item to tell the platform. Never waits: what cannot go out at once is
    /// the front's backlog, sent by [`Front::next`].
    fn relay(&mut self, item: Relayed);

    /// Whether relayed items are waiting to go out; while they are, the host takes no
    /// more of the adapter's events (backpressure).
    fn is_backlogged(&self) -> bool;

    /// Sends the next backlogged item, or waits for the platform's next request,
    /// whichever comes first. Pending forever when there is neither.
    ///
    /// # Cancel safety
    ///
    /// Must be cancel-safe: the host polls it in a `select!` and drops it when another
    /// branch wins.
    fn next(&mut self) -> impl Future<Output = Step<Self::Request>> + Send;

    /// Sends the next backlogged item, taking no request; pending forever when nothing is
    /// backlogged. Used while no adapter runs yet, and to drain at the end.
    ///
    /// # Cancel safety
    ///
    /// Must be cancel-safe.
    fn send_backlog(&mut self) -> impl Future<Output = ()> + Send;

    /// Whether `request` must come after the events the adapter has already emitted
    /// (the serve mode opens a run with it, and they belong to the run before).
    fn after_emitted(&self, request: &Self::Request) -> bool {
        let _ = request;
        false
    }

    /// Acts on a request: input for the adapter, a workspace change, or an answer of the
    /// front's own.
    fn handle(&mut self, request: Self::Request, control: &mut Control<'_>);

    /// The session's trace, before the front opens the session: a front hangs its own
    /// spans on it (reconnects, status writes) and shows the platform its id.
    fn traced(&mut self, trace: &crate::trace::SessionTrace) {
        let _ = trace;
    }

    /// The adapter starts with this session.
    fn started(&mut self, info: &SessionInfo) {
        let _ = info;
    }

    /// Ends the session on the platform (its last frames, its final status) and says
    /// whether its status is settled. The host bounds it by the stop budget when stopping.
    fn finish(self, ending: Ending) -> impl Future<Output = bool> + Send;
}

/// A workspace change, and who waits for what it did.
#[derive(Debug)]
pub(crate) struct ChangeRequest {
    pub(crate) change: Change,
    pub(crate) done: Option<tokio::sync::oneshot::Sender<ChangeOutcome>>,
}

/// What a workspace change did.
#[derive(Debug, Clone)]
pub struct ChangeOutcome {
    /// Whether the workspace changed.
    pub changed: bool,
    /// What the change reported, line by line, as the session's log shows it (scrubbed
    /// by the front that shows it).
    pub lines: Vec<String>,
    /// The workspace's repositories after it.
    pub repos: Vec<crate::workspace::RepoOutcome>,
}

/// What a front may do with a request: deliver input to the adapter, change the
/// workspace.
#[derive(Debug)]
pub struct Control<'a> {
    pub(crate) input: &'a mpsc::UnboundedSender<Input>,
    pub(crate) changes: &'a mpsc::Sender<ChangeRequest>,
    pub(crate) mode: Mode,
    pub(crate) ending: &'a mut bool,
    pub(crate) stopping: bool,
}

impl Control<'_> {
    /// Delivers `input` to the adapter, as the host's rules allow: a user message is
    /// dropped in a batch session (it runs its prompt only), and an empty one always.
    pub fn deliver(&mut self, input: Input) {
        let input = match input {
            Input::Message(_) if self.mode == Mode::Batch => {
                debug!("ignoring a user message in batch mode");
                return;
            }
            Input::Message(message) => {
                let message = message.trimmed();
                if message.is_empty() {
                    return;
                }
                Input::Message(message)
            }
            Input::EndSession => {
                *self.ending = true;
                Input::EndSession
            }
            other => other,
        };
        // The adapter may have returned already; then there is no one to tell.
        let _delivered = self.input.send(input);
    }

    /// Changes the workspace (a repository added or removed, a workflow switched), in the
    /// background and one change at a time; the adapter hears of the result.
    pub fn change_workspace(&mut self, change: Change) {
        self.queue_change(change, None);
    }

    /// [`Control::change_workspace`], for a front that answers for the change: what it
    /// did comes on the receiver once it is done (dropped unanswered when the change
    /// could not be queued, or the session ended first).
    pub fn change_workspace_reporting(
        &mut self,
        change: Change,
    ) -> tokio::sync::oneshot::Receiver<ChangeOutcome> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.queue_change(change, Some(done));
        outcome
    }

    fn queue_change(
        &mut self,
        change: Change,
        done: Option<tokio::sync::oneshot::Sender<ChangeOutcome>>,
    ) {
        let request = ChangeRequest { change, done };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.changes.try_send(request) {
            // Not the change itself: a repository URL may carry a credential.
            warn!(
                waiting = crate::run::WORKSPACE_CHANGES_WAITING,
                "too many workspace changes are waiting; this one is refused"
            );
        }
    }

    /// Whether the session is stopping: no new work should start.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }
}
