//! The runs of a served session: which one is open, what each one streamed, and what the
//! adapter said between them.
//!
//! The session's adapter runs once, in interactive mode, for the life of the process. A
//! run is one turn of it: it opens when a run request delivers the caller's new messages
//! (or answers) to the adapter, and it ends at the adapter's next [`Event::TurnEnded`] (or
//! a question it asks where no turn ends, [`Event::Question`]). Every
//! event of a run is numbered and kept in the run's [`ReplayBuffer`], where each SSE
//! connection reads it from; a connection that drops takes nothing with it.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use ambient_adapter::{Event, Input, ResultPayload};
use ambient_agui::{AguiEvent, AguiMapper, Numbered, ReplayBuffer, ReplayGap, RunEnd};
use ambient_host::Redactor;
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::{
    metrics::{Metrics, Outcome},
    request::{RunRequest, Turn},
};

/// Finished runs kept for replay, besides the open one.
const KEPT_RUNS: usize = 2;
/// The most bytes of event JSON a run keeps for replay, besides its event count.
const REPLAY_BYTES: usize = 8 * 1024 * 1024;
/// The reports the front serves (`/mcp/status`, `/tasks`, `/tasks/{id}/output`); others
/// are not kept.
const REPORTS: [&str; 3] = ["mcp_status", "tasks", "task_output_roots"];
/// The largest report kept.
const MAX_REPORT_BYTES: usize = 256 << 10;
/// Delivered user message ids remembered.
const REMEMBERED_MESSAGES: usize = 1024;

/// Why a run request or an interrupt was refused; each names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Another run is open; one turn runs at a time.
    #[error("run {0} is still running: interrupt it or wait for its end")]
    Busy(String),
    /// The run id was used before.
    #[error("run {0} already exists; to read it again, send Last-Event-ID")]
    RunExists(String),
    /// This session serves another conversation.
    #[error("this runner serves thread {served}, not {asked}")]
    OtherThread {
        /// The session's thread.
        served: String,
        /// The one asked for.
        asked: String,
    },
    /// The request gives the agent nothing to do.
    #[error(
        "the run request carries no new user message and no answer to an interrupt \
         (user messages already delivered are not sent again)"
    )]
    NothingNew,
    /// An answer and a new message in one run: each is a turn of its own.
    #[error(
        "the run request carries both an answer to an interrupt and a new message; send them in two runs"
    )]
    AnswerAndMessage,
    /// The session asks one question at a time.
    #[error("the run request answers several interrupts; the session waits on one at a time")]
    SeveralAnswers,
    /// A resume entry answers an interrupt nobody asked.
    #[error("resume answers interrupt {asked}, but the session waits on {waiting}")]
    UnknownInterrupt {
        /// The id the request named.
        asked: String,
        /// The ids the last run ended with.
        waiting: String,
    },
    /// No run is open to interrupt.
    #[error("no run is open to interrupt")]
    NotRunning,
    /// The model is switched between runs only.
    #[error(
        "cannot switch the model while the agent is answering: wait for the run (and those waiting) to end"
    )]
    MidRun,
    /// Too many runs wait for the open one to end.
    #[error(
        "{runs} runs ({bytes} bytes of requests) already wait for the open run to end; \
         try again when it has"
    )]
    QueueFull {
        /// Runs waiting.
        runs: usize,
        /// Their requests' bytes.
        bytes: usize,
    },
    /// The adapter is still starting.
    #[error("the session is still starting; try again when /health says ok")]
    Starting,
    /// The session is over.
    #[error("the session has ended: {0}")]
    Closed(String),
}

/// What the HTTP front asks of the session loop. Runs are opened and interrupted there,
/// after what the adapter already emitted has been taken in, so that none of it is
/// credited to the wrong run.
#[derive(Debug)]
pub enum Command {
    /// Open a run, now or when the open one ends; with the request's size in bytes.
    Start(RunRequest, usize, oneshot::Sender<Result<Started, Refused>>),
    /// Open a run that waited for the one before it to end.
    Dequeued(QueuedRun),
    /// Interrupt the open run.
    Interrupt(oneshot::Sender<Result<String, Refused>>),
    /// The client that started this run left before its end.
    Abandoned(String),
    /// Switch the agent's model, between runs, from the one before (if known).
    SetModel {
        /// The model asked for.
        model: String,
        /// The model before it.
        previous: Option<String>,
        /// Told whether it was switched.
        reply: oneshot::Sender<Result<(), Refused>>,
    },
    /// Stop a background task of the agent's.
    StopTask(String, oneshot::Sender<Result<(), Refused>>),
    /// Change the workspace; the answer says when it is done, and what it did.
    ChangeWorkspace(
        ambient_host::workspace::Change,
        oneshot::Sender<Result<oneshot::Receiver<ambient_host::ChangeOutcome>, Refused>>,
    ),
}

/// What a run request got. A request that comes while another run is open waits for
/// that run's end, as the platform's runner makes it wait (its backend takes any answer
/// but `200` as a failed run and has no way to send the message again).
#[derive(Debug)]
pub enum Started {
    /// The run is open.
    Now(Initiator),
    /// The run waits for the open one to end; then it opens, or is refused.
    Queued(oneshot::Receiver<Result<Initiator, Refused>>),
}

/// A run request waiting for the open run to end.
#[derive(Debug)]
pub struct QueuedRun {
    pub(crate) request: RunRequest,
    pub(crate) bytes: usize,
    pub(crate) reply: oneshot::Sender<Result<Initiator, Refused>>,
}

/// The client that started a run, while its stream lasts. The run keeps every event it
/// has not taken, and past the buffer's bounds the run waits for it (the session takes
/// no more of the agent's events): it paces the run and is never cut for being slow, as
/// the platform's backend cannot rejoin a run's stream.
#[derive(Debug)]
pub struct Initiator {
    /// The run.
    pub log: Arc<RunLog>,
    /// Where to say that the client left before the run's end, when that stops the run.
    abandon: Option<mpsc::UnboundedSender<Command>>,
}

impl Initiator {
    /// The client that started the run in `log`; with `abandon`, leaving before the
    /// run's end stops the run.
    pub(crate) fn new(log: Arc<RunLog>, abandon: Option<mpsc::UnboundedSender<Command>>) -> Self {
        Self { log, abandon }
    }

    /// The client has taken every event up to `id`.
    pub fn taken(&self, id: u64) {
        self.log.taken(id);
    }
}

impl Drop for Initiator {
    fn drop(&mut self) {
        self.log.release();
        if let Some(abandon) = &self.abandon
            && !self.log.has_ended()
        {
            // The session may be over already: then there is nothing to stop.
            let _told = abandon.send(Command::Abandoned(self.log.run_id.clone()));
        }
    }
}

/// One run's events, as every connection to it reads them.
#[derive(Debug)]
pub struct RunLog {
    run_id: String,
    events: Mutex<RunEvents>,
    /// Bumped at every change, so that connections wake up.
    changed: watch::Sender<u64>,
    /// Told when the client that started the run takes events (or leaves).
    progress: Arc<Notify>,
    /// Where the relay latency goes.
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct RunEvents {
    buffer: ReplayBuffer,
    ended: bool,
    /// When each batch of events came, by the id of its last event, until the client
    /// that started the run takes it: the relay latency. The oldest are forgotten past
    /// [`TIMED_BATCHES`].
    pushed: std::collections::VecDeque<(u64, std::time::Instant)>,
}

/// Batches whose relay latency is waiting to be measured, at most.
const TIMED_BATCHES: usize = 1024;

/// What a connection reads at once.
#[derive(Debug)]
pub struct Batch {
    /// The events after the one it asked from.
    pub events: Vec<Numbered>,
    /// Whether the run has ended (so that no more will come).
    pub ended: bool,
}

impl RunLog {
    /// A run whose events are all kept until the client that starts it takes them
    /// ([`RunLog::taken`]) or leaves ([`RunLog::release`]).
    fn new(run_id: String, capacity: usize, progress: Arc<Notify>, metrics: Arc<Metrics>) -> Self {
        let mut buffer = ReplayBuffer::new(capacity).with_byte_limit(REPLAY_BYTES);
        buffer.pin_after(0);
        Self {
            run_id,
            events: Mutex::new(RunEvents {
                buffer,
                ended: false,
                pushed: std::collections::VecDeque::new(),
            }),
            changed: watch::Sender::new(0),
            progress,
            metrics,
        }
    }

    /// The client that started the run has taken every event up to `id`.
    fn taken(&self, id: u64) {
        let mut run = self.lock();
        run.buffer.pin_after(id);
        while let Some(&(last, at)) = run.pushed.front()
            && last <= id
        {
            run.pushed.pop_front();
            self.metrics.relayed(at.elapsed());
        }
        drop(run);
        self.progress.notify_one();
    }

    /// The client that started the run is gone: from now on only the last `capacity`
    /// events are kept.
    pub fn release(&self) {
        self.lock().buffer.unpin();
        self.progress.notify_one();
    }

    /// Whether the client that started the run has fallen behind by more than the
    /// buffer's bounds.
    fn is_backlogged(&self) -> bool {
        self.lock().buffer.pinned_past_bounds()
    }

    /// Where a client that comes back after event `after` starts, so that its stream
    /// reads well on its own (a stock AG-UI client checks it from its start): before the
    /// first text message, tool call or reasoning still open at `after`, or at `after`.
    pub fn resume_point(&self, after: u64) -> u64 {
        let Ok(batch) = self.since_at_most(0, usize::try_from(after).unwrap_or(usize::MAX)) else {
            // Not all kept: the stream says what is missing.
            return after;
        };
        let mut open: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for event in &batch.events {
            let Ok(parsed) = serde_json::from_str::<AguiEvent>(event.json()) else {
                continue;
            };
            match parsed {
                AguiEvent::TextMessageStart { message_id, .. }
                | AguiEvent::ReasoningStart { message_id }
                | AguiEvent::ReasoningMessageStart { message_id, .. } => {
                    open.entry(message_id).or_insert(event.id);
                }
                AguiEvent::ToolCallStart { tool_call_id, .. } => {
                    open.entry(tool_call_id).or_insert(event.id);
                }
                // Steps are named apart from messages and calls, which may share a name.
                AguiEvent::StepStarted { step_name } => {
                    open.entry(format!("step:{step_name}")).or_insert(event.id);
                }
                AguiEvent::StepFinished { step_name } => {
                    open.remove(&format!("step:{step_name}"));
                }
                AguiEvent::TextMessageEnd { message_id }
                | AguiEvent::ReasoningEnd { message_id }
                | AguiEvent::ReasoningMessageEnd { message_id } => {
                    open.remove(&message_id);
                }
                AguiEvent::ToolCallEnd { tool_call_id } => {
                    open.remove(&tool_call_id);
                }
                _ => {}
            }
        }
        open.values()
            .min()
            .map_or(after, |first_open| first_open.saturating_sub(1))
    }

    /// Whether the run has ended.
    pub fn has_ended(&self) -> bool {
        self.lock().ended
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn lock(&self) -> MutexGuard<'_, RunEvents> {
        // A panic while holding the lock leaves consistent data behind (a push is one
        // step), so a poisoned lock is still used.
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, events: &[AguiEvent], ends: bool) {
        if events.is_empty() && !ends {
            return;
        }
        {
            let mut run = self.lock();
            let mut last = None;
            for event in events {
                last = Some(run.buffer.push(event).id);
            }
            if let Some(last) = last {
                if run.pushed.len() >= TIMED_BATCHES {
                    run.pushed.pop_front();
                }
                run.pushed.push_back((last, std::time::Instant::now()));
            }
            run.ended |= ends;
        }
        self.changed.send_modify(|version| *version += 1);
    }

    /// Every event after `last_event_id`, or the gap when some are no longer kept.
    pub fn since(&self, last_event_id: u64) -> Result<Batch, ReplayGap> {
        self.since_at_most(last_event_id, usize::MAX)
    }

    /// The first `count` events after `last_event_id`, or the gap; `ended` says whether
    /// the run has ended and these were its last.
    pub fn since_at_most(&self, last_event_id: u64, count: usize) -> Result<Batch, ReplayGap> {
        let run = self.lock();
        let mut events = run
            .buffer
            .since_at_most(last_event_id, count.saturating_add(1))?;
        let last = events.len() <= count;
        events.truncate(count);
        Ok(Batch {
            ended: run.ended && last,
            events,
        })
    }

    /// Wakes up at every change after this call.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// The open run: its log, its mapping, whether the caller interrupted it, and how many
/// turn results it waits for (its own, after one already under way when it opened).
#[derive(Debug)]
struct OpenRun {
    log: Arc<RunLog>,
    mapper: AguiMapper,
    interrupted: bool,
    results_due: usize,
    opened: std::time::Instant,
}

#[derive(Debug, Default)]
struct State {
    /// Set when the adapter's session starts.
    started: bool,
    /// The conversation this session serves, set by the first run.
    thread_id: Option<String>,
    open: Option<OpenRun>,
    /// The open run and the last finished ones, oldest first.
    runs: VecDeque<Arc<RunLog>>,
    /// What the adapter said while no run was open; it goes out in the next run.
    held: VecDeque<Event>,
    /// About how many bytes `held` holds ([`event_bytes`]), at most [`REPLAY_BYTES`].
    held_bytes: usize,
    dropped: u64,
    /// Whether a turn the agent started on its own (a background task's) is under way:
    /// its result comes before the next run's.
    turn_under_way: bool,
    /// User message ids already delivered, so that a request that repeats the
    /// conversation does not deliver it twice; the oldest are forgotten past
    /// [`REMEMBERED_MESSAGES`] (only the messages after the agent last spoke count).
    delivered: HashSet<String>,
    delivered_order: VecDeque<String>,
    /// The interrupts the last run ended with.
    waiting_on: Vec<String>,
    /// The latest report of each name the front serves (`Event::Report`).
    reports: std::collections::HashMap<String, Value>,
    /// Connections listening for what the agent says between runs.
    listeners: usize,
    /// The thread listeners asked for, before a run named the session's.
    listening_thread: Option<String>,
    /// The run that shows listeners what the agent says between runs, while open.
    between: Option<OpenRun>,
    /// Why the session takes no more runs.
    closed: Option<String>,
}

/// The served session's runs; shared by the HTTP handlers and the session loop.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    /// For the reasons a session fails with, which may quote anything.
    redactor: Redactor,
    capacity: usize,
    /// Told when a run's initiator takes events.
    progress: Arc<Notify>,
    /// Whether the session has left its start: taking runs, or over.
    past_start: watch::Sender<bool>,
    /// The last run opened for what the agent said between runs, for listeners.
    between_runs: watch::Sender<Option<Arc<RunLog>>>,
    /// The session's figures, for `/metrics`.
    metrics: Arc<Metrics>,
    /// The session's trace id, when it is traced: every run says it first thing.
    trace_id: std::sync::OnceLock<String>,
}

/// The `CUSTOM` event that tells the UI where the session's trace is, named as the
/// platform's runner names it.
pub const TRACE_ID_EVENT: &str = "ambient:trace_id";

/// The `CUSTOM` event that tells the UI the model was switched, named and shaped
/// (`{previousModel, newModel}`) as the platform's runner sends it.
pub const MODEL_SWITCHED_EVENT: &str = "ambient:model_switched";

/// A connection listening for what the agent says between runs (the platform backend's
/// `GET /events/{thread_id}`): while one listens, that goes out as a run of its own
/// instead of waiting for the next run.
#[derive(Debug)]
pub struct Listening {
    hub: Arc<Hub>,
    runs: watch::Receiver<Option<Arc<RunLog>>>,
}

impl Listening {
    /// The next run opened for what the agent says between runs; `None` once the session
    /// is over.
    pub async fn next_run(&mut self) -> Option<Arc<RunLog>> {
        loop {
            if self.hub.lock().closed.is_some() {
                return None;
            }
            // The hub owns the sender, and this holds the hub.
            self.runs.changed().await.ok()?;
            // The session's end wakes listeners too: the last run is not theirs again.
            if self.hub.lock().closed.is_some() {
                return None;
            }
            if let Some(log) = self.runs.borrow_and_update().clone() {
                return Some(log);
            }
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        state.listeners = state.listeners.saturating_sub(1);
        self.hub.metrics.listener(false);
    }
}

/// What `/health` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The workspace is being prepared.
    Starting,
    /// Runs are taken.
    Ready,
    /// The session has ended.
    Closed,
}

impl Hub {
    /// A hub that scrubs failure reasons with `redactor` and keeps `capacity` events per
    /// run. Events reach it scrubbed already (the host's).
    pub fn new(redactor: Redactor, capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            redactor,
            capacity: capacity.max(1),
            progress: Arc::new(Notify::new()),
            past_start: watch::Sender::new(false),
            between_runs: watch::Sender::new(None),
            metrics: Arc::new(Metrics::default()),
            trace_id: std::sync::OnceLock::new(),
        }
    }

    /// Whether the open run's initiator has fallen behind by more than the run's buffer
    /// holds: then the session takes no more of the agent's events until it catches up.
    pub fn is_backlogged(&self) -> bool {
        let open = self.lock().open.as_ref().map(|open| Arc::clone(&open.log));
        open.is_some_and(|log| log.is_backlogged())
    }

    /// Resolves when an initiator next takes events (or leaves).
    pub async fn progress(&self) {
        self.progress.notified().await;
    }

    /// Stops pacing the open run by its initiator (the session is ending, and it does
    /// not read).
    pub fn stop_pacing(&self) {
        let open = self.lock().open.as_ref().map(|open| Arc::clone(&open.log));
        if let Some(log) = open {
            log.release();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session's adapter is running: runs are taken from now on.
    pub fn started(&self) {
        self.lock().started = true;
        self.past_start.send_replace(true);
    }

    /// Resolves once the session takes runs, or has ended without ever taking one.
    pub async fn past_start(&self) {
        let mut past = self.past_start.subscribe();
        // The hub owns the sender, and the caller holds the hub.
        let _changed = past.wait_for(|past| *past).await;
    }

    /// Why no run is taken now, if none is.
    pub fn refusal(&self) -> Option<Refused> {
        let state = self.lock();
        match (&state.closed, state.started) {
            (Some(reason), _) => Some(Refused::Closed(reason.clone())),
            (None, false) => Some(Refused::Starting),
            (None, true) => None,
        }
    }

    /// Whether runs are taken.
    pub fn health(&self) -> Health {
        match self.refusal() {
            None => Health::Ready,
            Some(Refused::Starting) => Health::Starting,
            Some(_) => Health::Closed,
        }
    }

    /// A run kept for replay.
    pub fn run(&self, run_id: &str) -> Option<Arc<RunLog>> {
        self.lock()
            .runs
            .iter()
            .find(|run| run.run_id == run_id)
            .cloned()
    }

    /// Listens for what the agent says between runs, on `thread_id` (which must be the
    /// session's, once a run has named it).
    pub fn listen(self: &Arc<Self>, thread_id: &str) -> Result<Listening, Refused> {
        let mut state = self.lock();
        if let Some(reason) = &state.closed {
            return Err(Refused::Closed(reason.clone()));
        }
        if let Some(served) = &state.thread_id
            && served != thread_id
        {
            return Err(Refused::OtherThread {
                served: served.clone(),
                asked: thread_id.to_owned(),
            });
        }
        if state.thread_id.is_none() {
            state.listening_thread = Some(thread_id.to_owned());
        }
        state.listeners += 1;
        self.metrics.listener(true);
        let mut runs = self.between_runs.subscribe();
        if state.between.is_some() {
            // Open already: the new listener gets it from its start.
            runs.mark_changed();
        }
        Ok(Listening {
            hub: Arc::clone(self),
            runs,
        })
    }

    /// Keeps the latest report of a name the front serves, within its bound.
    fn keep_report(&self, name: String, value: Value) {
        if !REPORTS.contains(&name.as_str()) {
            return;
        }
        let size = value.to_string().len();
        if size > MAX_REPORT_BYTES {
            warn!(%name, size, "a report larger than {MAX_REPORT_BYTES} bytes is not kept");
            return;
        }
        self.lock().reports.insert(name, value);
    }

    /// The latest report of `name`, if the agent made one.
    pub fn report(&self, name: &str) -> Option<Value> {
        self.lock().reports.get(name).cloned()
    }

    /// The session's figures.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether a run is open.
    pub fn is_run_open(&self) -> bool {
        self.lock().open.is_some()
    }

    /// Whether `request` could wait for the open run's end: the session takes runs, the
    /// thread is this session's, and its run id is new (`queued` lists those waiting).
    pub fn check_queueable(&self, request: &RunRequest, queued: &[&str]) -> Result<(), Refused> {
        let state = self.lock();
        if let Some(reason) = &state.closed {
            return Err(Refused::Closed(reason.clone()));
        }
        if !state.started {
            return Err(Refused::Starting);
        }
        if state.runs.iter().any(|run| run.run_id == request.run_id)
            || queued.contains(&request.run_id.as_str())
        {
            return Err(Refused::RunExists(request.run_id.clone()));
        }
        match &state.thread_id {
            Some(served) if *served != request.thread_id => Err(Refused::OtherThread {
                served: served.clone(),
                asked: request.thread_id.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The session's trace id, said at the start of every run from now on.
    pub fn set_trace_id(&self, trace_id: String) {
        let _first = self.trace_id.set(trace_id);
    }

    /// Opens a run for `request`: its `RUN_STARTED` and what the adapter said since the
    /// last run. The input it gives the adapter (the request's new messages, or its
    /// answer) comes back with the run, to deliver at once.
    pub fn start_run(&self, request: &RunRequest) -> Result<(Arc<RunLog>, Input), Refused> {
        let mut state = self.lock();
        if let Some(reason) = &state.closed {
            return Err(Refused::Closed(reason.clone()));
        }
        if !state.started {
            return Err(Refused::Starting);
        }
        if let Some(open) = &state.open {
            return Err(Refused::Busy(open.log.run_id.clone()));
        }
        if state.runs.iter().any(|run| run.run_id == request.run_id) {
            return Err(Refused::RunExists(request.run_id.clone()));
        }
        if let Some(served) = &state.thread_id
            && *served != request.thread_id
        {
            return Err(Refused::OtherThread {
                served: served.clone(),
                asked: request.thread_id.clone(),
            });
        }
        let Turn {
            input,
            message_ids,
            messages,
        } = request.turn(&state.delivered, &state.waiting_on)?;
        state.thread_id = Some(request.thread_id.clone());
        for id in message_ids {
            if state.delivered.insert(id.clone()) {
                state.delivered_order.push_back(id);
            }
            while state.delivered_order.len() > REMEMBERED_MESSAGES {
                if let Some(oldest) = state.delivered_order.pop_front() {
                    state.delivered.remove(&oldest);
                }
            }
        }
        state.waiting_on.clear();
        Self::finish_between(&mut state);
        let log = Arc::new(RunLog::new(
            request.run_id.clone(),
            self.capacity,
            Arc::clone(&self.progress),
            Arc::clone(&self.metrics),
        ));
        // The caller's messages go out again in the run's snapshot: scrubbed, as every
        // event is.
        let messages: Vec<Value> = messages
            .into_iter()
            .map(|mut message| {
                if let Some(Value::String(content)) = message.get_mut("content") {
                    *content = self.redactor.text(content).into_owned();
                }
                message
            })
            .collect();
        let mut mapper = AguiMapper::new(request.thread_id.clone(), request.run_id.clone())
            .with_input_messages(&messages);
        let mut events = vec![mapper.start()];
        if let Some(trace_id) = self.trace_id.get() {
            events.push(AguiEvent::Custom {
                name: String::from(TRACE_ID_EVENT),
                value: serde_json::json!({ "traceId": trace_id }),
            });
        }
        if state.dropped > 0 {
            events.push(AguiEvent::Custom {
                name: String::from("log"),
                value: serde_json::Value::String(format!(
                    "{} earlier events from between runs were dropped (the buffer holds {})",
                    state.dropped, self.capacity
                )),
            });
            state.dropped = 0;
        }
        state.held_bytes = 0;
        for event in std::mem::take(&mut state.held) {
            // A turn that ended between runs (a background task's) does not end this run,
            // and a question asked then is asked again when it matters.
            let event = match event {
                Event::TurnEnded { .. } => Event::TurnStarted,
                Event::Question(text) | Event::ToolApproval { question: text, .. } => {
                    Event::Text(text)
                }
                other => other,
            };
            events.extend(mapper.map(event));
        }
        self.metrics.events_sent(events.len());
        log.push(&events, false);
        info!(run_id = %request.run_id, thread_id = %request.thread_id, "run started");
        state.runs.push_back(Arc::clone(&log));
        while state.runs.len() > KEPT_RUNS + 1 {
            state.runs.pop_front();
        }
        let results_due = 1 + usize::from(state.turn_under_way);
        state.open = Some(OpenRun {
            log: Arc::clone(&log),
            mapper,
            interrupted: false,
            results_due,
            opened: std::time::Instant::now(),
        });
        Ok((log, input))
    }

    /// Interrupts run `run_id` if it is the open one (its client left); whether it was.
    pub fn abandon(&self, run_id: &str) -> bool {
        let mut state = self.lock();
        match state.open.as_mut() {
            Some(open) if open.log.run_id == run_id && !open.interrupted => {
                open.interrupted = true;
                info!(%run_id, "the client that started the run left: the run is stopped (AGUI_ABORT_ON_DISCONNECT)");
                true
            }
            _ => false,
        }
    }

    /// Marks the open run interrupted: it ends, cancelled, when the adapter reports the
    /// turn's end. The caller delivers the interrupt to the adapter.
    pub fn interrupt(&self) -> Result<String, Refused> {
        let mut state = self.lock();
        let Some(open) = state.open.as_mut() else {
            return Err(Refused::NotRunning);
        };
        open.interrupted = true;
        let run_id = open.log.run_id.clone();
        info!(%run_id, "run interrupted");
        Ok(run_id)
    }

    /// Holds `event` for the next run, within `capacity` events and [`REPLAY_BYTES`], the
    /// oldest dropped past either. A task's progress replaces its progress held before:
    /// a chatty background task does not push out what the agent said.
    fn hold(state: &mut State, event: Event, capacity: usize) {
        if let Some(task) = progress_of(&event)
            && let Some(at) = state
                .held
                .iter()
                .position(|held| progress_of(held) == Some(task))
            && let Some(earlier) = state.held.remove(at)
        {
            state.held_bytes = state.held_bytes.saturating_sub(event_bytes(&earlier));
        }
        let bytes = event_bytes(&event);
        if bytes > REPLAY_BYTES {
            state.dropped += 1;
            return;
        }
        while !state.held.is_empty()
            && (state.held.len() >= capacity || state.held_bytes + bytes > REPLAY_BYTES)
        {
            if let Some(oldest) = state.held.pop_front() {
                state.held_bytes = state.held_bytes.saturating_sub(event_bytes(&oldest));
                state.dropped += 1;
            }
        }
        state.held_bytes += bytes;
        state.held.push_back(event);
    }

    /// A notice of the front's own (not the adapter's), scrubbed here, as the adapter's
    /// events are before they reach the hub: `value` may quote a caller.
    pub fn notice(&self, name: &str, mut value: Value) {
        self.redactor.value(&mut value);
        self.event(Event::Notice {
            name: name.to_owned(),
            value,
        });
    }

    /// One event from the adapter, scrubbed: into the open run, or held for the next one.
    pub fn event(&self, event: Event) {
        if let Event::Report { name, value } = event {
            self.keep_report(name, value);
            return;
        }
        // The trace's, with no AG-UI event: never held between runs, never opening one.
        if matches!(event, Event::ModelCall(_)) {
            return;
        }
        match &event {
            Event::ToolUse { .. } => self.metrics.tool_called(),
            Event::TurnEnded { result, .. } => self.metrics.turn_ended(result),
            _ => {}
        }
        let mut state = self.lock();
        match &event {
            Event::TurnStarted => state.turn_under_way = true,
            // A turn paused on an approval goes on in the run its answer opens, which
            // ends with that turn's result.
            Event::TurnEnded { .. } | Event::ToolApproval { .. } => state.turn_under_way = false,
            _ => {}
        }
        let Some(open) = state.open.as_mut() else {
            if state.between.is_none() && state.listeners > 0 {
                self.open_between(&mut state);
            }
            if let Some(between) = state.between.as_mut() {
                // As what is held for the next run: a turn's end ends this run only, and
                // a question is asked again when it matters.
                let event = match event {
                    Event::TurnEnded { result, .. } => {
                        let events = between.mapper.finish(Some(&result), RunEnd::Completed);
                        self.metrics.events_sent(events.len());
                        between.log.push(&events, true);
                        state.between = None;
                        return;
                    }
                    Event::Question(text) | Event::ToolApproval { question: text, .. } => {
                        Event::Text(text)
                    }
                    other => other,
                };
                let events = between.mapper.map(event);
                self.metrics.events_sent(events.len());
                between.log.push(&events, false);
                return;
            }
            Self::hold(&mut state, event, self.capacity);
            return;
        };
        // A run ends with its own turn's result (busy or not: a background task may still
        // run), or with a question asked on its own; the agent waits for the user either
        // way. A turn already under way when the run opened reports first.
        let (ends, result) = match &event {
            Event::TurnEnded { result, .. } => {
                open.results_due = open.results_due.saturating_sub(1);
                (open.results_due == 0, Some(result.clone()))
            }
            Event::Question(_) | Event::ToolApproval { .. } => (true, None),
            _ => (false, None),
        };
        let events = open.mapper.map(event);
        self.metrics.events_sent(events.len());
        open.log.push(&events, false);
        if ends {
            self.finish(&mut state, result.as_ref(), None);
        }
    }

    /// The adapter returned: the open run ends (with `failure`, if the session failed),
    /// and no run is taken any more.
    pub fn close(&self, reason: &str, failure: Option<&str>) {
        let reason = self.redactor.text(reason).into_owned();
        let mut state = self.lock();
        if state.open.is_some() {
            let failure = failure.map(|f| self.redactor.text(f).into_owned());
            self.finish(
                &mut state,
                None,
                Some(failure.as_deref().unwrap_or(&reason)),
            );
        }
        Self::finish_between(&mut state);
        state.closed = Some(reason);
        drop(state);
        self.past_start.send_replace(true);
        // Listeners waiting for a run learn that none will come.
        self.between_runs.send_modify(|_| {});
    }

    /// Opens a run for what the agent says while no run is open, and tells listeners.
    fn open_between(&self, state: &mut State) {
        let run_id = format!("between-{}", uuid::Uuid::new_v4());
        let thread_id = state
            .thread_id
            .clone()
            .or_else(|| state.listening_thread.clone())
            .unwrap_or_default();
        let log = Arc::new(RunLog::new(
            run_id.clone(),
            self.capacity,
            Arc::clone(&self.progress),
            Arc::clone(&self.metrics),
        ));
        // Nobody paces it: it keeps its last events, like any run whose client left.
        log.release();
        let mapper = AguiMapper::new(thread_id, run_id.clone());
        self.metrics.events_sent(1);
        log.push(&[mapper.start()], false);
        info!(%run_id, "the agent speaks between runs: a run of its own for the listeners");
        state.runs.push_back(Arc::clone(&log));
        while state.runs.len() > KEPT_RUNS + 1 {
            state.runs.pop_front();
        }
        state.between = Some(OpenRun {
            log: Arc::clone(&log),
            mapper,
            interrupted: false,
            results_due: 0,
            opened: std::time::Instant::now(),
        });
        self.between_runs.send_replace(Some(log));
    }

    /// Ends the run of what the agent said between runs, if one is open.
    fn finish_between(state: &mut State) {
        if let Some(mut between) = state.between.take() {
            let events = between.mapper.finish(None, RunEnd::Completed);
            between.log.push(&events, true);
        }
    }

    /// Ends the open run: `error` makes it a `RUN_ERROR`; a failed result does too.
    fn finish(&self, state: &mut State, result: Option<&ResultPayload>, error: Option<&str>) {
        let Some(mut open) = state.open.take() else {
            return;
        };
        let failed_result = result
            .filter(|r| r.is_error == Some(true))
            .map(failure_text);
        let end = match (error, &failed_result) {
            (Some(error), _) => RunEnd::Failed(error),
            (None, Some(failure)) => RunEnd::Failed(failure),
            (None, None) if open.interrupted => RunEnd::Cancelled,
            (None, None) => RunEnd::Completed,
        };
        let events = open.mapper.finish(result, end);
        if let Some(AguiEvent::RunFinished {
            outcome: Some(outcome),
            ..
        }) = events.last()
        {
            state.waiting_on = interrupt_ids(outcome);
        }
        let outcome = match end {
            RunEnd::Failed(_) => Outcome::Error,
            RunEnd::Cancelled => Outcome::Cancelled,
            RunEnd::Completed if state.waiting_on.is_empty() => Outcome::Success,
            RunEnd::Completed => Outcome::Interrupt,
        };
        self.metrics.run_ended(outcome, open.opened.elapsed());
        match end {
            RunEnd::Failed(why) => warn!(run_id = %open.log.run_id, error = %why, "run failed"),
            _ => info!(run_id = %open.log.run_id, "run finished"),
        }
        self.metrics.events_sent(events.len());
        open.log.push(&events, true);
    }
}

/// Words for a result that reports failure.
fn failure_text(result: &ResultPayload) -> String {
    match (&result.subtype, &result.result) {
        (_, Some(text)) if !text.trim().is_empty() => text.clone(),
        (Some(subtype), _) => format!("the agent's turn ended with {subtype}"),
        (None, _) => String::from("the agent's turn failed"),
    }
}

fn interrupt_ids(outcome: &serde_json::Value) -> Vec<String> {
    outcome
        .get("interrupts")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|interrupt| interrupt.get("id")?.as_str().map(str::to_owned))
        .collect()
}

/// The task a `task:progress` notice is about.
fn progress_of(event: &Event) -> Option<&Value> {
    match event {
        Event::Notice { name, value } if name == "task:progress" => value.get("task_id"),
        _ => None,
    }
}

/// About how many bytes `event` holds: its text and the strings and numbers of its
/// values, plus a little for itself.
fn event_bytes(event: &Event) -> usize {
    const ITSELF: usize = 64;
    ITSELF
        + match event {
            Event::Log(text)
            | Event::Text(text)
            | Event::Thinking(text)
            | Event::Question(text) => text.len(),
            Event::TextDelta { stream, data } => stream.len() + data.len(),
            Event::ToolUse { name, input, id } => {
                name.len() + value_bytes(input) + id.as_ref().map_or(0, String::len)
            }
            Event::ToolResult {
                tool_use_id,
                content,
                ..
            } => tool_use_id.as_ref().map_or(0, String::len) + value_bytes(content),
            Event::Subagent {
                parent_tool_use_id,
                event,
            } => parent_tool_use_id.len() + event_bytes(event),
            Event::ToolApproval {
                tool_call_id,
                tool,
                input,
                question,
            } => tool_call_id.len() + tool.len() + value_bytes(input) + question.len(),
            Event::TurnEnded { result, .. } => {
                result.result.as_ref().map_or(0, String::len)
                    + result.usage.as_ref().map_or(0, value_bytes)
                    + 256
            }
            Event::State(value) => value_bytes(value),
            Event::Report { name, value } | Event::Notice { name, value } => {
                name.len() + value_bytes(value)
            }
            _ => 0,
        }
}

/// About how many bytes of JSON `value` is, without writing it.
fn value_bytes(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len() + 2,
        Value::Array(items) => items.iter().map(value_bytes).sum::<usize>() + items.len() + 2,
        Value::Object(map) => {
            map.iter()
                .map(|(key, value)| key.len() + 4 + value_bytes(value))
                .sum::<usize>()
                + 2
        }
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use ambient_agui::check_order;
    use serde_json::{Value, json};

    use super::*;

    fn hub() -> Hub {
        let hub = Hub::new(Redactor::default(), 64);
        hub.started();
        hub
    }

    fn request(run_id: &str, body: Value) -> RunRequest {
        let mut body = body;
        body["threadId"] = json!("t");
        body["runId"] = json!(run_id);
        serde_json::from_value(body).unwrap()
    }

    fn said(run_id: &str, id: &str, text: &str) -> RunRequest {
        request(
            run_id,
            json!({"messages": [{"id": id, "role": "user", "content": text}]}),
        )
    }

    /// The run's events, parsed back.
    fn events(log: &RunLog) -> Vec<AguiEvent> {
        log.since(0)
            .unwrap()
            .events
            .iter()
            .map(|e| serde_json::from_str(e.json()).unwrap())
            .collect()
    }

    fn result(subtype: &str, is_error: bool, text: &str) -> Event {
        Event::turn_ended(ResultPayload {
            subtype: Some(subtype.to_owned()),
            is_error: Some(is_error),
            result: Some(text.to_owned()),
            ..ResultPayload::default()
        })
    }

    fn busy() -> Event {
        Event::TurnEnded {
            result: ResultPayload::default(),
            next: ambient_protocol::Next::Busy,
        }
    }

    fn question(text: &str) -> Event {
        Event::TurnEnded {
            result: ResultPayload {
                subtype: Some(String::from("awaiting_input")),
                result: Some(text.to_owned()),
                ..ResultPayload::default()
            },
            next: ambient_protocol::Next::Answer,
        }
    }

    #[test]
    fn what_the_agent_says_between_runs_opens_the_next_run_without_ending_it() {
        let hub = hub();
        // A background turn, finished while nobody asked.
        hub.event(Event::Text(String::from("background done")));
        hub.event(result("success", false, "background done"));
        let (log, input) = hub.start_run(&said("r1", "u1", "hi")).unwrap();
        assert_eq!(input, Input::Message("hi".into()));
        assert!(
            !log.since(0).unwrap().ended,
            "the held result ended the run"
        );
        hub.event(Event::Text(String::from("hi")));
        hub.event(result("success", false, "hi"));
        let events = events(&log);
        check_order(&events).unwrap();
        let kinds: Vec<&str> = events.iter().map(AguiEvent::kind).collect();
        assert_eq!(
            kinds,
            [
                "RUN_STARTED",
                "TEXT_MESSAGE_START",
                "TEXT_MESSAGE_CONTENT",
                "TEXT_MESSAGE_END",
                "TEXT_MESSAGE_START",
                "TEXT_MESSAGE_CONTENT",
                "TEXT_MESSAGE_END",
                "MESSAGES_SNAPSHOT",
                "RUN_FINISHED"
            ]
        );
        assert!(log.since(0).unwrap().ended);
    }

    #[test]
    fn a_turn_under_way_when_the_run_opens_reports_first_and_a_busy_result_still_ends_the_run() {
        let hub = hub();
        // A background task's turn starts while no run is open.
        hub.event(Event::TurnStarted);
        hub.event(Event::Text(String::from("background work")));
        let (log, _) = hub.start_run(&said("r1", "u1", "hi")).unwrap();
        // Its result comes first, while the user's turn is due: the run goes on.
        hub.event(busy());
        assert!(!log.since(0).unwrap().ended);
        // The user's turn ends while a background task still runs: busy, but it is the
        // run's own result.
        hub.event(Event::Text(String::from("hi")));
        hub.event(busy());
        let events = events(&log);
        check_order(&events).unwrap();
        assert!(matches!(events.last(), Some(AguiEvent::RunFinished { .. })));
        // With nothing under way, the next run waits for one result only.
        let (log, _) = hub.start_run(&said("r2", "u2", "again")).unwrap();
        hub.event(result("success", false, "again"));
        assert!(log.since(0).unwrap().ended);
    }

    #[test]
    fn a_question_ends_the_run_as_an_interrupt_that_the_next_run_answers() {
        let hub = hub();
        let (log, _) = hub.start_run(&said("r1", "u1", "deploy")).unwrap();
        hub.event(Event::Text(String::from("Approve the deploy?")));
        hub.event(question("Approve the deploy?"));
        let Some(AguiEvent::RunFinished {
            outcome: Some(outcome),
            ..
        }) = events(&log).pop()
        else {
            panic!("the run did not finish");
        };
        assert_eq!(outcome["type"], "interrupt");
        assert_eq!(outcome["interrupts"][0]["message"], "Approve the deploy?");
        let interrupt_id = outcome["interrupts"][0]["id"].as_str().unwrap().to_owned();
        let wrong = request(
            "r2",
            json!({"messages": [], "resume": [{"interruptId": "other", "status": "resolved", "payload": "yes"}]}),
        );
        assert!(matches!(
            hub.start_run(&wrong),
            Err(Refused::UnknownInterrupt { .. })
        ));
        let answer = request(
            "r2",
            json!({"messages": [], "resume": [{"interruptId": interrupt_id, "status": "resolved", "payload": {"approved": true}}]}),
        );
        let (log, input) = hub.start_run(&answer).unwrap();
        assert_eq!(input, Input::Message(r#"{"approved":true}"#.into()));
        // One more question, asked without a result: the run ends on it all the same.
        hub.event(Event::Question(String::from("And the region?")));
        let events = events(&log);
        check_order(&events).unwrap();
        let Some(AguiEvent::RunFinished {
            outcome: Some(outcome),
            ..
        }) = events.last()
        else {
            panic!("the run did not finish: {events:?}");
        };
        assert_eq!(outcome["interrupts"][0]["message"], "And the region?");
    }

    #[test]
    fn a_failed_turn_and_an_ended_session_end_the_run_with_run_error() {
        let hub = hub();
        let (log, _) = hub.start_run(&said("r1", "u1", "go")).unwrap();
        hub.event(result("error", true, "ValueError: boom"));
        assert_eq!(
            events(&log).pop().unwrap(),
            AguiEvent::RunError {
                message: String::from("ValueError: boom")
            }
        );
        let (log, _) = hub.start_run(&said("r2", "u2", "again")).unwrap();
        hub.event(Event::TextDelta {
            stream: String::from("m"),
            data: String::from("half"),
        });
        hub.close("the session failed", Some("the CLI exited with status 1"));
        let events = events(&log);
        check_order(&events).unwrap();
        assert_eq!(
            events.last().unwrap(),
            &AguiEvent::RunError {
                message: String::from("the CLI exited with status 1")
            }
        );
        assert_eq!(
            hub.start_run(&said("r3", "u3", "more")).unwrap_err(),
            Refused::Closed(String::from("the session failed"))
        );
        assert_eq!(hub.health(), Health::Closed);
    }

    #[tokio::test]
    async fn a_listener_gets_what_is_said_between_runs_once_and_nothing_at_the_end() {
        let hub = Arc::new(hub());
        let mut listening = hub.listen("t").unwrap();
        // Said while no run is open, with a listener: a run of its own.
        hub.event(Event::TurnStarted);
        hub.event(Event::Text(String::from("the report is ready")));
        hub.event(result("success", false, "the report is ready"));
        let between = listening.next_run().await.unwrap();
        let events = events(&between);
        check_order(&events).unwrap();
        assert!(between.run_id().starts_with("between-"));
        assert_eq!(
            crate::hub::tests::texts_of(&events),
            ["the report is ready"]
        );
        // The session ends while the listener waits for the next run: it is let go, not
        // given that run again.
        let waiting = tokio::spawn(async move {
            listening
                .next_run()
                .await
                .map(|log| log.run_id().to_owned())
        });
        tokio::task::yield_now().await;
        hub.close("the session completed", None);
        assert_eq!(waiting.await.unwrap(), None);
        assert!(hub.listen("t").is_err(), "no listener after the end");
    }

    fn texts_of(events: &[AguiEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|event| match event {
                AguiEvent::TextMessageContent { delta, .. } => Some(delta.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_client_that_comes_back_mid_step_or_mid_message_starts_before_what_is_open() {
        let hub = hub();
        let (log, _) = hub.start_run(&said("r1", "u1", "go")).unwrap();
        hub.event(Event::Step {
            name: String::from("plan"),
            finished: false,
        });
        hub.event(Event::TextDelta {
            stream: String::from("m"),
            data: String::from("half"),
        });
        let events = events(&log);
        // 1 RUN_STARTED, 2 STEP_STARTED, 3 TEXT_MESSAGE_START, 4 TEXT_MESSAGE_CONTENT.
        assert_eq!(events[1].kind(), "STEP_STARTED");
        assert_eq!(log.resume_point(4), 1, "the open step started at event 2");
        hub.event(Event::Text(String::from("half")));
        hub.event(Event::Step {
            name: String::from("plan"),
            finished: true,
        });
        let count = events_count(&log);
        assert_eq!(log.resume_point(count), count, "nothing is open");
    }

    fn events_count(log: &RunLog) -> u64 {
        log.since(0).unwrap().events.len() as u64
    }

    #[test]
    fn runs_wait_for_the_session_to_start_and_only_the_last_few_are_kept() {
        let hub = Hub::new(Redactor::default(), 8);
        assert_eq!(hub.health(), Health::Starting);
        assert_eq!(
            hub.start_run(&said("r0", "u0", "hi")).unwrap_err(),
            Refused::Starting
        );
        hub.started();
        for n in 0..10 {
            hub.start_run(&said(&format!("r{n}"), &format!("u{n}"), "hi"))
                .unwrap();
            hub.event(result("success", false, "hi"));
        }
        assert!(hub.run("r9").is_some());
        assert!(hub.run(&format!("r{}", 9 - KEPT_RUNS)).is_some());
        assert!(hub.run(&format!("r{}", 8 - KEPT_RUNS)).is_none());
    }

    /// Between runs, with nobody listening, what the agent says is held within a byte
    /// budget as well as a count, and a background task's progress keeps only its latest.
    #[test]
    fn what_is_held_between_runs_has_a_byte_budget_and_keeps_one_progress_per_task() {
        let hub = hub();
        hub.event(Event::Text(String::from("the agent's own words")));
        for n in 0..40 {
            hub.event(Event::Notice {
                name: String::from("task:progress"),
                value: json!({"task_id": format!("t{}", n % 2), "step": n}),
            });
        }
        let (log, _) = hub.start_run(&said("r1", "u1", "hi")).unwrap();
        let held = events(&log);
        let progress: Vec<&Value> = held
            .iter()
            .filter_map(|e| match e {
                AguiEvent::Custom { name, value } if name == "task:progress" => Some(value),
                _ => None,
            })
            .collect();
        assert_eq!(
            progress,
            [
                &json!({"task_id": "t0", "step": 38}),
                &json!({"task_id": "t1", "step": 39})
            ]
        );
        assert!(
            held.iter()
                .any(|e| matches!(e, AguiEvent::TextMessageContent { delta, .. }
                if delta == "the agent's own words")),
            "{held:?}"
        );
        hub.event(result("success", false, "hi"));

        // Megabytes said while nobody listens: the oldest go, within the budget.
        let megabyte = "m".repeat(1 << 20);
        for _ in 0..20 {
            hub.event(Event::Log(megabyte.clone()));
        }
        let (log, _) = hub.start_run(&said("r2", "u2", "again")).unwrap();
        let held = events(&log);
        let logs = held
            .iter()
            .filter(|e| matches!(e, AguiEvent::Custom { value, .. } if value.as_str().is_some_and(|v| v.len() == 1 << 20)))
            .count();
        assert!(
            logs > 0 && logs <= REPLAY_BYTES >> 20,
            "{logs} megabytes held"
        );
        assert!(
            held.iter().any(|e| matches!(e, AguiEvent::Custom { value, .. }
                if value.as_str().is_some_and(|v| v.contains("earlier events from between runs were dropped")))),
            "the drop is not told"
        );
    }
}
