//! The front itself: the host's items as frames, the backend's messages as input, the
//! status at both ends.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use ambient_adapter::{ByteBudget, Continuation, Event, Held, Input, Stored, UserMessage};
use ambient_host::{
    Control, Ending, Front, Opening, Redactor, Relayed, SessionEnd, Step,
    trace::{KeyValue, SessionMetrics, SessionTrace},
    workspace::{Change, TokenMinter},
};
use ambient_protocol::{
    EventMapper, FrameId, Inbound, Lifecycle, Outbound, ResultPayload, Secret, SessionMessage,
    error_chain as chain,
    repos::{RepoLocation, RepoSpec},
    status::{AnnotationPatch, Phase, StatusUpdate},
};
use ambient_status::{KeptHistory, RetryPolicy, StatusClient};
use ambient_transport::{
    DeliveryObserver, FrameSender, Received, TokenSource, Transport, TransportConfig,
};
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use crate::{
    RunnerConfig, WebSocketSettings,
    inbox::{Inbox, Key, is_input},
};

/// How long the backend has to echo every frame once the session has ended.
const FLUSH_DEADLINE: Duration = Duration::from_secs(30);
/// How long the backend has to echo every frame when the runner is stopping: a part of
/// the host's stop budget.
const STOP_FLUSH_DEADLINE: Duration = Duration::from_secs(2);
/// How often a bot token file is read again, to learn a rotated token (also at every
/// reconnect, when the transport reads it).
const TOKEN_FILE_EVERY: Duration = Duration::from_secs(30);
/// Status calls while stopping: few and quick, to fit the stop budget.
const STOP_RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    initial_delay: Duration::from_millis(100),
    max_delay: Duration::from_millis(500),
    deadline: Duration::from_secs(2),
    timeout: Duration::from_secs(1),
};

/// What the backend said, for [`WebSocketFront::handle`].
#[derive(Debug)]
pub enum Request {
    /// Something the transport received.
    Received(Received),
    /// A history read after a reconnect finished (`None`: it failed).
    History(History),
    /// Time to read the bot token file again.
    TokenFile,
}

/// A session of the original platform: frames over the backend's WebSocket, status and
/// annotations over its HTTP API.
#[derive(Debug)]
pub struct WebSocketFront {
    session_id: String,
    prompt: String,
    parent_session_id: Option<String>,
    timeout: Option<Duration>,
    settings: WebSocketSettings,
    /// Scrubs the status bodies the front writes (frames come scrubbed from the host).
    redactor: Redactor,
    /// The status client, or why it could not be built.
    status: Result<StatusClient, String>,
    connection: Option<Connection>,
    mapper: EventMapper,
    /// Frames waiting for room in the transport; room is awaited in [`Front::next`], so
    /// that the host sees a stop or an interrupt even while the backend is away.
    pending: VecDeque<Outbound>,
    /// Annotation writes and history reads, in the background.
    tracker: TaskTracker,
    inbox: Inbox,
    /// History reads under way after reconnects; while any is, live input waits in
    /// `held`, so that what was missed is delivered before what came after it.
    recoveries: usize,
    held: Vec<(Inbound, Key, Held)>,
    /// What the messages received hold until the adapter takes them: the transport's,
    /// shared with the messages recovered from the history.
    input_budget: ByteBudget,
    /// The largest message taken from the backend.
    max_message_bytes: usize,
    /// Messages refused for their size since the last history read (which finds them
    /// again, and need not tell of them twice).
    refused_live: u64,
    histories: (
        mpsc::UnboundedSender<History>,
        mpsc::UnboundedReceiver<History>,
    ),
    /// Reads the bot token file again now and then, where there is one.
    token_check: Option<tokio::time::Interval>,
    /// The session's trace: reconnects and status writes are spans of it, and its id
    /// goes to the backend in a `system.trace` frame.
    trace: SessionTrace,
    /// Frames sent and reconnects, as OTLP metrics where they are exported.
    metrics: SessionMetrics,
}

/// A history read after a reconnect (`None`: it failed).
type History = Option<KeptHistory>;

/// The connected socket.
#[derive(Debug)]
struct Connection {
    transport: Transport,
    sender: FrameSender,
    inbound: mpsc::UnboundedReceiver<Received>,
    /// This process's frame-id prefix.
    instance: String,
    cancel: CancellationToken,
}

impl WebSocketFront {
    /// A front for this session; nothing is contacted before [`Front::open`].
    pub fn new(config: &RunnerConfig) -> Self {
        let settings = config.websocket.clone();
        let status = StatusClient::new(
            settings.endpoints.clone(),
            settings.static_token(),
            RetryPolicy::default(),
        )
        .map_err(|error| format!("the HTTP client could not be built: {}", chain(&error)));
        Self {
            session_id: config.host.session_id.clone(),
            prompt: config.host.prompt.clone(),
            parent_session_id: config.host.parent_session_id.clone(),
            timeout: config.host.timeout,
            settings,
            redactor: config.host.redactor.clone(),
            status,
            connection: None,
            mapper: EventMapper::new(),
            pending: VecDeque::new(),
            tracker: TaskTracker::new(),
            inbox: Inbox::default(),
            recoveries: 0,
            held: Vec::new(),
            input_budget: ByteBudget::holding_at_most(
                config.host.limits.input_budget_bytes,
                ambient_transport::MESSAGES_HELD,
            ),
            max_message_bytes: config.host.limits.max_message_bytes,
            refused_live: 0,
            histories: mpsc::unbounded_channel(),
            token_check: None,
            trace: SessionTrace::default(),
            metrics: SessionMetrics::default(),
        }
    }

    /// Reads the bot token file, where the token comes from one: the status client sends
    /// what it holds, and the redactor scrubs it, from now on (the platform rotates it).
    fn read_token_file(&self) {
        let TokenSource::File(path) = &self.settings.token else {
            return;
        };
        match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => {
                let token = Secret::new(text.trim());
                if let Err(error) = self.redactor.learn(&token) {
                    // The status writes need it all the same; its shapes (a bearer
                    // header, BOT_TOKEN=) are still scrubbed.
                    warn!(%error, "the rotated bot token is not scrubbed by value");
                }
                if let Some(status) = self.status() {
                    status.set_token(Some(token));
                }
            }
            Ok(_) => warn!(path = %path.display(), "the bot token file is empty"),
            Err(error) => {
                warn!(path = %path.display(), %error, "the bot token file cannot be read")
            }
        }
    }

    fn status(&self) -> Option<&StatusClient> {
        self.status.as_ref().ok()
    }

    /// Sends a frame, waiting for room (the opening and the end, when nothing else runs).
    async fn send_now(&self, frame: Outbound) {
        let Some(connection) = &self.connection else {
            return;
        };
        match connection.transport.send(frame).await {
            Ok(()) => self.metrics.frames_sent(1),
            Err(error) => warn!(error = %chain(&error), "a frame could not be queued"),
        }
    }

    async fn put_status(&self, mut update: StatusUpdate) -> bool {
        let Some(status) = self.status() else {
            return false;
        };
        // Scrubbed whole, then cut: a cut first could leave the start of a secret that
        // the scrubber no longer recognises.
        self.redactor.status(&mut update);
        update.bound();
        let started = SystemTime::now();
        let phase = update
            .phase
            .map(|phase| KeyValue::new("ambient.status.phase", phase.to_string()));
        let written = status.put_status(&update).await;
        let failed = written.as_ref().err().map(|error| chain(error));
        self.trace.record(
            "status.write",
            started,
            phase.into_iter().collect(),
            failed.as_deref(),
        );
        match written {
            Ok(()) => true,
            Err(error) => {
                warn!(phase = ?update.phase, error = %chain(&error), "writing the status failed");
                false
            }
        }
    }

    async fn current_phase(&self) -> Option<Phase> {
        let status = self.status()?;
        match status.get_session(&self.session_id).await {
            Ok(session) => session.status.and_then(|s| s.phase),
            Err(error) => {
                warn!(error = %chain(&error), "reading the session's phase failed");
                None
            }
        }
    }

    /// The continued session's annotations and the prompt its conversation holds.
    async fn read_parent(&self) -> (Continuation, Option<String>) {
        let (Some(parent), Some(status)) = (&self.parent_session_id, self.status()) else {
            return (Continuation::default(), None);
        };
        // A restart continues the session itself: its prompt is this one.
        let own_prompt = (*parent == self.session_id).then(|| self.prompt.clone());
        match status.get_session(parent).await {
            Ok(session) => {
                let prompt = ["prompt", "initialPrompt"]
                    .iter()
                    .find_map(|key| session.spec.get(key).and_then(|v| v.as_str()))
                    .map(str::to_owned);
                (
                    Continuation::new(session.metadata.annotations),
                    own_prompt.or(prompt),
                )
            }
            Err(error) => {
                warn!(%parent, error = %chain(&error), "reading the parent session failed; starting fresh");
                (Continuation::default(), own_prompt)
            }
        }
    }

    /// Keeps a continuation value as an annotation, in the background.
    fn store(&self, stored: Stored) {
        let Some(status) = self.status().cloned() else {
            return;
        };
        self.tracker.spawn(async move {
            let patch = AnnotationPatch::single(stored.key.clone(), stored.value);
            match status.patch_annotations(&patch).await {
                Ok(_) => debug!(key = %stored.key, "continuation value stored"),
                Err(error) => warn!(key = %stored.key, error = %chain(&error), "storing a continuation value failed"),
            }
        });
    }

    /// One thing the transport reported.
    fn receive(&mut self, received: Received, control: &mut Control<'_>) {
        match received {
            Received::Message {
                inbound,
                message,
                held,
            } => {
                let key = self.inbox.key(&message);
                drop(message);
                if self.recoveries > 0 {
                    self.held.push((inbound, key, held));
                } else {
                    self.accept_live(inbound, key, held, control);
                }
            }
            Received::Malformed { error, .. } => {
                warn!(error = %chain(&error), "ignoring a malformed message");
            }
            Received::Dropped { messages, bytes } => self.tell_dropped(messages, bytes),
            Received::TooLarge { size, limit } => {
                self.refused_live += 1;
                self.tell(format!(
                    "⚠️ A message of {size} bytes was refused: this runner takes messages of up to {limit} bytes (RUNNER_MAX_MESSAGE_BYTES)."
                ));
            }
            Received::Reconnected {
                lost_at,
                reconnects,
                resending,
            } => {
                self.metrics.reconnected(resending);
                self.trace.record(
                    "websocket.reconnect",
                    lost_at,
                    vec![KeyValue::new(
                        "ambient.reconnects",
                        i64::try_from(reconnects).unwrap_or(i64::MAX),
                    )],
                    None,
                );
                // The transport read the token file again to reconnect.
                self.read_token_file();
                // Read in the background so that relaying goes on meanwhile.
                let (Some(status), Some(connection)) = (self.status().cloned(), &self.connection)
                else {
                    return;
                };
                self.recoveries += 1;
                let histories = self.histories.0.clone();
                let instance = connection.instance.clone();
                let max_message = self.max_message_bytes;
                let max_kept = self.input_budget.capacity();
                self.tracker.spawn(async move {
                    // From this runner's first frame on, the input messages only.
                    let keeper = || {
                        let mut started = false;
                        let instance = instance.clone();
                        move |message: &SessionMessage| {
                            if started {
                                return message.classify().is_ok_and(|i| is_input(&i));
                            }
                            started = message
                                .frame_id()
                                .is_some_and(|id| is_ours(&instance, &id));
                            started
                        }
                    };
                    let history = match status
                        .message_history_kept(max_message, max_kept, keeper)
                        .await
                    {
                        Ok(history) => Some(history),
                        Err(error) => {
                            warn!(error = %chain(&error), "reading the message history failed; messages posted during the outage may be missed");
                            None
                        }
                    };
                    let _delivered = histories.send(history);
                });
            }
        }
    }

    fn accept_live(&mut self, inbound: Inbound, key: Key, held: Held, control: &mut Control<'_>) {
        if self.inbox.accept_live(key) {
            deliver(inbound, Some(held), control);
        } else {
            debug!("already delivered from the history");
        }
    }

    /// Tells the user, in the session, something the runner did with their input.
    fn tell(&mut self, text: String) {
        warn!("{text}");
        self.relay(Relayed::Event(Event::Log(text)));
    }

    fn tell_dropped(&mut self, messages: u64, bytes: u64) {
        self.tell(format!(
            "⚠️ {messages} messages ({bytes} bytes) were dropped: the agent already has {} bytes of messages it has not taken up (RUNNER_INPUT_BUDGET_BYTES).",
            self.input_budget.capacity()
        ));
    }

    /// A history read finished: deliver what was missed, then what arrived meanwhile.
    fn recovered(&mut self, history: History, control: &mut Control<'_>) {
        self.recoveries = self.recoveries.saturating_sub(1);
        if let (Some(history), Some(connection)) = (history, &self.connection) {
            let instance = connection.instance.clone();
            let missed = self
                .inbox
                .recover(history.messages, |id| is_ours(&instance, id));
            if !missed.is_empty() {
                info!(
                    count = missed.len(),
                    "delivering messages posted while the connection was down"
                );
            }
            let mut dropped = (0, 0);
            for inbound in missed {
                let bytes = match &inbound {
                    Inbound::UserMessage { content } => content.len(),
                    _ => 1,
                };
                match self.input_budget.try_take(bytes) {
                    Some(held) => deliver(inbound, Some(held), control),
                    None => {
                        dropped.0 += 1;
                        dropped.1 += bytes as u64;
                    }
                }
            }
            if dropped.0 > 0 {
                self.tell_dropped(dropped.0, dropped.1);
            }
            let untold = history
                .skipped
                .saturating_sub(std::mem::take(&mut self.refused_live));
            if untold > 0 {
                self.tell(format!(
                    "⚠️ {untold} messages posted while the connection was down were larger than {} bytes and were not delivered.",
                    self.max_message_bytes
                ));
            }
            if history.cut {
                self.tell(String::from(
                    "⚠️ More was posted while the connection was down than the runner holds; the latest messages were not delivered.",
                ));
            }
        }
        if self.recoveries == 0 {
            for (inbound, key, held) in std::mem::take(&mut self.held) {
                self.accept_live(inbound, key, held, control);
            }
        }
    }

    /// Why the session failed, in the words of its final status; `None` when it completed.
    fn failure(&self, end: &SessionEnd) -> Option<String> {
        match end {
            SessionEnd::Completed => None,
            SessionEnd::Failed { reason } | SessionEnd::BackendUnreachable { reason } => {
                Some(reason.clone())
            }
            SessionEnd::TimedOut => Some(format!(
                "Session timed out after {:?}",
                self.timeout.unwrap_or_default()
            )),
            SessionEnd::Stopped => Some(String::from("Runner stopped before the session ended")),
        }
    }

    async fn write_final_status(&self, end: &SessionEnd, result: Option<&ResultPayload>) -> bool {
        let phase = self.current_phase().await;
        if phase == Some(Phase::Stopped) {
            info!("the session is Stopped; leaving its status as it is");
            return true;
        }
        let completion_time = time::OffsetDateTime::now_utc().format(&Rfc3339).ok();
        let (phase, message, is_error) = match self.failure(end) {
            None => {
                let is_error = result.and_then(|r| r.is_error).unwrap_or(false);
                (Phase::Completed, String::from("Runner completed"), is_error)
            }
            Some(reason) => (Phase::Failed, reason, true),
        };
        let mut update = StatusUpdate {
            phase: Some(phase),
            message: Some(message),
            completion_time,
            is_error: Some(is_error),
            session_id: Some(self.session_id.clone()),
            ..StatusUpdate::default()
        };
        if let Some(result) = result {
            update.subtype = result.subtype.clone();
            update.duration_ms = result.duration_ms;
            update.duration_api_ms = result.duration_api_ms;
            update.num_turns = result.num_turns;
            update.total_cost_usd = result.total_cost_usd;
            update.usage = result.usage.clone();
            update.result.clone_from(&result.result);
            if let Some(framework_session) = &result.session_id {
                update.session_id = Some(framework_session.clone());
            }
        }
        self.put_status(update).await
    }
}

impl Front for WebSocketFront {
    type Request = Request;

    async fn open(&mut self) -> Result<Opening, SessionEnd> {
        if let Err(reason) = &self.status {
            return Err(SessionEnd::BackendUnreachable {
                reason: reason.clone(),
            });
        }
        if matches!(self.settings.token, TokenSource::File(_)) {
            self.read_token_file();
            let mut every = tokio::time::interval(TOKEN_FILE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.reset();
            self.token_check = Some(every);
        }
        let mut transport_config = TransportConfig::new(
            self.settings.url.clone(),
            self.settings.token.clone(),
            self.session_id.clone(),
        );
        transport_config.give_up_after = self.settings.backend_deadline;
        transport_config.keepalive = self.settings.keepalive;
        transport_config.backoff = self.settings.backoff;
        transport_config.max_message_bytes = self.max_message_bytes;
        transport_config.input_budget = self.input_budget.clone();
        if self.metrics.is_on() {
            let metrics = self.metrics.clone();
            transport_config.delivered = Some(DeliveryObserver(Arc::new(move |took| {
                metrics.relayed(took);
            })));
        }
        let instance = transport_config.instance.clone();
        let cancel = CancellationToken::new();
        let (transport, inbound) = Transport::connect(transport_config, cancel.clone())
            .await
            .map_err(|error| {
                let reason = chain(&error);
                warn!(error = %reason, "the backend could not be reached");
                SessionEnd::BackendUnreachable { reason }
            })?;
        self.connection = Some(Connection {
            sender: transport.sender(),
            transport,
            inbound,
            instance,
            cancel,
        });
        self.send_now(Outbound::Lifecycle(Lifecycle::SessionStarted))
            .await;
        if let Some(trace_id) = self.trace.trace_id() {
            self.send_now(Outbound::Trace { trace_id }).await;
        }
        if self.current_phase().await == Some(Phase::Stopped) {
            info!("the session is already stopped; not starting");
            return Err(SessionEnd::Stopped);
        }
        self.put_status(StatusUpdate {
            phase: Some(Phase::Running),
            message: Some(String::from("Runner started")),
            ..StatusUpdate::default()
        })
        .await;
        let (continuation, parent_prompt) = self.read_parent().await;
        Ok(Opening {
            is_continuation: self.parent_session_id.is_some(),
            continuation,
            parent_prompt,
            minter: self
                .status()
                .cloned()
                .map(|status| Arc::new(BackendMinter(status)) as Arc<dyn TokenMinter>),
        })
    }

    fn relay(&mut self, item: Relayed) {
        let frame = match item {
            Relayed::Event(event) => self.mapper.map(event),
            Relayed::Waiting => Some(Outbound::Waiting),
            Relayed::Prompt(content) => Some(Outbound::UserMessage { content }),
            Relayed::Store(stored) => {
                self.store(stored);
                None
            }
        };
        self.pending.extend(frame);
    }

    fn is_backlogged(&self) -> bool {
        self.connection.is_some() && !self.pending.is_empty()
    }

    async fn next(&mut self) -> Step<Request> {
        let Some(connection) = &mut self.connection else {
            return std::future::pending().await;
        };
        let Connection {
            sender, inbound, ..
        } = connection;
        let histories = &mut self.histories.1;
        let pending = &mut self.pending;
        let token_check = &mut self.token_check;
        let metrics = &self.metrics;
        tokio::select! {
            biased;
            Some(received) = inbound.recv() => Step::Request(Request::Received(received)),
            Some(history) = histories.recv() => Step::Request(Request::History(history)),
            Some(_) = async { Some(token_check.as_mut()?.tick().await) }, if token_check.is_some() => {
                Step::Request(Request::TokenFile)
            }
            permit = sender.reserve(), if !pending.is_empty() => {
                match (permit, pending.pop_front()) {
                    (Ok(permit), Some(frame)) => {
                        permit.send(frame);
                        metrics.frames_sent(1);
                    }
                    (Err(error), _) => warn!(error = %chain(&error), "a frame could not be queued"),
                    (Ok(_), None) => {}
                }
                Step::Sent
            }
            else => std::future::pending().await,
        }
    }

    async fn send_backlog(&mut self) {
        let Some(connection) = &self.connection else {
            return std::future::pending().await;
        };
        if self.pending.is_empty() {
            return std::future::pending().await;
        }
        match connection.sender.reserve().await {
            Ok(permit) => {
                if let Some(frame) = self.pending.pop_front() {
                    permit.send(frame);
                    self.metrics.frames_sent(1);
                }
            }
            Err(error) => {
                warn!(error = %chain(&error), "a frame could not be queued");
                self.pending.clear();
            }
        }
    }

    fn traced(&mut self, trace: &SessionTrace) {
        self.trace = trace.clone();
        self.metrics = SessionMetrics::of(trace);
    }

    fn handle(&mut self, request: Request, control: &mut Control<'_>) {
        match request {
            Request::Received(received) => self.receive(received, control),
            Request::History(history) => self.recovered(history, control),
            Request::TokenFile => self.read_token_file(),
        }
    }

    async fn finish(mut self, ending: Ending) -> bool {
        if ending.stopping
            && let Ok(status) = &self.status
        {
            self.status = Ok(status.clone().with_retry(STOP_RETRY));
        }
        if matches!(ending.end, SessionEnd::BackendUnreachable { .. }) {
            return false;
        }
        let Some(connection) = self.connection.take() else {
            // Stopped while connecting: the status is still settled.
            return self
                .write_final_status(&ending.end, ending.result.as_ref())
                .await;
        };
        for frame in std::mem::take(&mut self.pending) {
            match connection.transport.send(frame).await {
                Ok(()) => self.metrics.frames_sent(1),
                Err(error) => warn!(error = %chain(&error), "a frame could not be queued"),
            }
        }
        let lifecycle = match ending.end {
            SessionEnd::Completed => Lifecycle::SessionCompleted,
            _ => Lifecycle::SessionFailed,
        };
        let leave_stopped_alone =
            ending.end == SessionEnd::Stopped && self.current_phase().await == Some(Phase::Stopped);
        // The reason goes into the conversation too, where the user reads, before the end.
        let reason = self
            .failure(&ending.end)
            .filter(|_| !leave_stopped_alone)
            .map(|reason| Outbound::Log {
                message: self.redactor.text(&reason).into_owned(),
            });
        let closing = reason
            .into_iter()
            .chain((!leave_stopped_alone).then_some(Outbound::Lifecycle(lifecycle)));
        for frame in closing {
            match connection.transport.send(frame).await {
                Ok(()) => self.metrics.frames_sent(1),
                Err(error) => warn!(error = %chain(&error), "a frame could not be queued"),
            }
        }
        let flush_deadline = if ending.stopping {
            STOP_FLUSH_DEADLINE
        } else {
            FLUSH_DEADLINE
        };
        match tokio::time::timeout(flush_deadline, connection.transport.flush()).await {
            Ok(Ok(())) => debug!("every frame was echoed"),
            Ok(Err(error)) => {
                warn!(error = %chain(&error), "frames may not have reached the backend");
            }
            Err(_) => {
                warn!(deadline = ?flush_deadline, "the backend did not echo every frame in time");
            }
        }
        self.tracker.close();
        self.tracker.wait().await;
        let status_written = self
            .write_final_status(&ending.end, ending.result.as_ref())
            .await;
        match tokio::time::timeout(FLUSH_DEADLINE, connection.transport.close()).await {
            Ok(Ok(stats)) => info!(
                frames = stats.frames,
                reconnects = stats.reconnects,
                "connection closed"
            ),
            Ok(Err(error)) => warn!(error = %chain(&error), "closing the connection failed"),
            Err(_) => warn!("closing the connection timed out"),
        }
        connection.cancel.cancel();
        status_written
    }
}

impl Drop for WebSocketFront {
    fn drop(&mut self) {
        // A front dropped unfinished (the stop budget ran out) stops its socket task.
        if let Some(connection) = &self.connection {
            connection.cancel.cancel();
        }
    }
}

/// Whether a frame id is one of this process's (`{instance}-{seq}`).
fn is_ours(instance: &str, id: &FrameId) -> bool {
    id.as_str()
        .strip_prefix(instance)
        .is_some_and(|rest| rest.starts_with('-'))
}

/// One user or control message for the adapter, or a workspace change. A user message
/// keeps `held` of the input budget until the adapter takes it up.
fn deliver(inbound: Inbound, held: Option<Held>, control: &mut Control<'_>) {
    let input = match inbound {
        Inbound::UserMessage { content } => Input::Message(match held {
            Some(held) => UserMessage::held(content, held),
            None => UserMessage::new(content),
        }),
        Inbound::Interrupt => Input::Interrupt,
        Inbound::EndSession | Inbound::Terminate | Inbound::Stop => Input::EndSession,
        Inbound::RepoAdded(added) => {
            control.change_workspace(Change::AddRepo(RepoSpec {
                name: Some(added.name),
                input: RepoLocation {
                    url: added.url,
                    branch: added.branch,
                },
                output: None,
                status: None,
            }));
            return;
        }
        Inbound::RepoRemoved { name } => {
            control.change_workspace(Change::RemoveRepo(name));
            return;
        }
        Inbound::WorkflowChange(change) => {
            let location = RepoLocation {
                url: change.git_url,
                branch: change.branch,
            };
            control.change_workspace(Change::SwitchWorkflow(location, change.path));
            return;
        }
        Inbound::Unknown { kind } => {
            debug!(%kind, "ignoring a message of an unknown type");
            return;
        }
        Inbound::Pong | Inbound::Echo { .. } | Inbound::RunnerFrame { .. } => return,
    };
    control.deliver(input);
}

/// Mints GitHub tokens through the backend.
#[derive(Debug)]
struct BackendMinter(StatusClient);

impl TokenMinter for BackendMinter {
    fn mint(&self) -> Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + '_>> {
        Box::pin(async move {
            self.0
                .mint_github_token()
                .await
                .map_err(|error| chain(&error))
        })
    }
}
