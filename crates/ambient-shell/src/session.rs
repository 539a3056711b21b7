//! The session loop.

use std::{collections::VecDeque, pin::pin, sync::Arc, time::Duration};

use ambient_adapter::{
    Adapter, CancellationToken, Continuation, Input, Mode, Session, SessionInfo, SessionOutput,
    Stored, Workspace,
};
use ambient_protocol::{
    Event, EventMapper, FrameId, Inbound, Lifecycle, Outbound, ResultPayload, SessionMessage,
    error_chain as chain,
    repos::{RepoLocation, RepoSpec},
    status::{AnnotationPatch, Phase, StatusUpdate},
};
use ambient_status::{RetryPolicy, StatusClient};
use ambient_transport::{Received, Transport, TransportConfig};
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::{
    Redactor, RunnerConfig, RunnerExit,
    config::DEFAULT_PROMPT,
    inbox::Inbox,
    stopping::{StopCause, StopStep, Stopping},
    workspace::{self, Credentials, PreparedWorkspace, WorkspaceError},
};

/// The longest final result text written to the status, as the Python runner truncates.
const MAX_RESULT_CHARS: usize = 10_000;
/// How long the backend has to echo every frame once the session has ended.
const FLUSH_DEADLINE: Duration = Duration::from_secs(30);
/// From a stop signal to the end of `run_session`: the platform kills the pod after its
/// grace period (30 s by default), and the brief promises an exit within 10 s.
const STOP_BUDGET: Duration = Duration::from_secs(8);
/// Status calls while stopping: few and quick, to fit the stop budget.
const STOP_RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    initial_delay: Duration::from_millis(100),
    max_delay: Duration::from_millis(500),
    deadline: Duration::from_secs(2),
    timeout: Duration::from_secs(1),
};
/// Events the adapter may have in flight before `emit` waits.
const EVENT_BUFFER: usize = 256;

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEnd {
    /// The adapter completed.
    Completed,
    /// The adapter failed or reported failure.
    Failed {
        /// Why.
        reason: String,
    },
    /// The session hit its timeout.
    TimedOut,
    /// Stopped by the shutdown signal, or found `Stopped`.
    Stopped,
    /// The backend could not be reached.
    BackendUnreachable {
        /// Why.
        reason: String,
    },
}

/// What the binary needs to know once a session is over.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionReport {
    /// How the session ended.
    pub end: SessionEnd,
    /// Whether the final status reached the backend (or was rightly not written because
    /// the session was already `Stopped`).
    pub status_written: bool,
    /// The adapter's last result.
    pub result: Option<ResultPayload>,
}

impl SessionEnd {
    /// The process exit this end calls for, where there was no final status to write or
    /// it was written.
    pub fn exit(&self) -> RunnerExit {
        match self {
            Self::Completed => RunnerExit::Completed,
            Self::Failed { .. } => RunnerExit::Failed,
            Self::TimedOut => RunnerExit::TimedOut,
            Self::Stopped => RunnerExit::Stopped,
            Self::BackendUnreachable { .. } => RunnerExit::BackendUnreachable,
        }
    }
}

impl SessionReport {
    /// The process exit this report calls for.
    pub fn exit(&self) -> RunnerExit {
        match (&self.end, self.status_written) {
            // Neither had a status to write: the backend was away, or the platform
            // stopped the session and keeps its own.
            (SessionEnd::BackendUnreachable { .. } | SessionEnd::Stopped, _) | (_, true) => {
                self.end.exit()
            }
            (_, false) => RunnerExit::StatusNotWritten,
        }
    }
}

/// Runs one session with `adapter` to its end.
///
/// `shutdown` is the process's stop signal (SIGTERM, SIGINT): the adapter is cancelled,
/// what it emitted is flushed, and the status is settled without leaving `Stopped`.
///
/// # Cancel safety
///
/// Not cancel-safe: dropping it abandons the session without a final status. Use
/// `shutdown` instead.
pub async fn run_session<A: Adapter>(
    config: RunnerConfig,
    mut adapter: A,
    shutdown: CancellationToken,
) -> SessionReport {
    let status = match StatusClient::new(
        config.endpoints.clone(),
        config.static_token(),
        RetryPolicy::default(),
    ) {
        Ok(status) => status,
        Err(error) => {
            return unreachable_report(format!(
                "the HTTP client could not be built: {}",
                chain(&error)
            ));
        }
    };
    let mut transport_config = TransportConfig::new(
        config.websocket_url.clone(),
        config.token.clone(),
        config.session_id.clone(),
    );
    transport_config.give_up_after = config.backend_deadline;
    transport_config.keepalive = config.keepalive;
    transport_config.backoff = config.backoff;
    let instance = transport_config.instance.clone();
    let transport_cancel = CancellationToken::new();
    let connect = Transport::connect(transport_config, transport_cancel.clone());
    let connected = tokio::select! {
        () = shutdown.cancelled() => return SessionReport { end: SessionEnd::Stopped, status_written: true, result: None },
        connected = connect => connected,
    };
    let (transport, inbound) = match connected {
        Ok(connected) => connected,
        Err(error) => {
            let reason = chain(&error);
            warn!(error = %reason, "the backend could not be reached");
            return unreachable_report(reason);
        }
    };
    let redactor = config.redactor();
    let run = Run {
        config,
        status,
        transport,
        mapper: EventMapper::new(),
        tracker: TaskTracker::new(),
        inbox: Inbox::default(),
        instance,
        redactor,
        recoveries: 0,
        held: Vec::new(),
        workspace: None,
        workspace_changes: mpsc::unbounded_channel(),
    };
    let report = run.drive(&mut adapter, inbound, &shutdown).await;
    transport_cancel.cancel();
    report
}

fn unreachable_report(reason: String) -> SessionReport {
    SessionReport {
        end: SessionEnd::BackendUnreachable { reason },
        status_written: false,
        result: None,
    }
}

struct Run {
    config: RunnerConfig,
    status: StatusClient,
    transport: Transport,
    mapper: EventMapper,
    tracker: TaskTracker,
    inbox: Inbox,
    /// This process's frame-id prefix.
    instance: String,
    /// Every frame, status and annotation goes through it.
    redactor: Redactor,
    /// History reads under way after reconnects; while any is, live input waits in
    /// `held`, so that what was missed is delivered before what came after it.
    recoveries: usize,
    held: Vec<(Inbound, SessionMessage)>,
    /// The prepared workspace, changed by `repo_added`, `repo_removed` and
    /// `workflow_change` while the session runs; changes are applied one at a time.
    workspace: Option<Arc<tokio::sync::Mutex<WorkspaceState>>>,
    /// What applying a change reports: a line for the user, or the new workspace.
    workspace_changes: (
        mpsc::UnboundedSender<WorkspaceNews>,
        mpsc::UnboundedReceiver<WorkspaceNews>,
    ),
}

impl Run {
    async fn drive<A: Adapter>(
        mut self,
        adapter: &mut A,
        mut inbound: mpsc::UnboundedReceiver<Received>,
        shutdown: &CancellationToken,
    ) -> SessionReport {
        self.send(Outbound::Lifecycle(Lifecycle::SessionStarted))
            .await;
        if self.current_phase().await == Some(Phase::Stopped) {
            info!("the session is already stopped; not starting");
            return self.finish(SessionEnd::Stopped, None).await;
        }
        self.put_status(StatusUpdate {
            phase: Some(Phase::Running),
            message: Some(String::from("Runner started")),
            ..StatusUpdate::default()
        })
        .await;
        let continuation = self.load_continuation().await;
        let is_continuation = self.config.parent_session_id.is_some();
        let prepared = match self.prepare_workspace(is_continuation).await {
            Ok((prepared, credentials)) => {
                self.workspace = Some(Arc::new(tokio::sync::Mutex::new(WorkspaceState {
                    settings: self.config.workspace_settings.clone(),
                    prepared: prepared.clone(),
                    credentials,
                })));
                prepared
            }
            Err(error) => {
                let reason = format!("Workspace preparation failed: {}", chain(&error));
                self.send(Outbound::Log {
                    message: reason.clone(),
                })
                .await;
                return self.finish(SessionEnd::Failed { reason }, None).await;
            }
        };
        let mut prompt = self.config.prompt.trim().to_owned();
        if prompt.is_empty() && self.config.mode == Mode::Batch && !is_continuation {
            prompt = String::from(DEFAULT_PROMPT);
        }
        if !prompt.is_empty() && !is_continuation {
            self.send(Outbound::UserMessage {
                content: prompt.clone(),
            })
            .await;
        }
        let (output_tx, mut output) = mpsc::channel(EVENT_BUFFER);
        // Unbounded so that reading the socket never waits on the adapter; what flows here
        // is user input, a handful of messages.
        let (input_tx, input_rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let info = SessionInfo {
            session_id: self.config.session_id.clone(),
            prompt,
            mode: self.config.mode,
            is_continuation,
            workspace: Workspace {
                main: prepared.main,
                extra: prepared.extra,
                artifacts: prepared.artifacts,
            },
        };
        let mut session = Session::new(info, output_tx, input_rx, cancel.clone(), continuation);
        let mut stopping = Stopping::new(shutdown.clone(), cancel, self.config.timeout);
        let mut stop_deadline = None;
        // Frames made from the adapter's output, waiting for room in the transport. Room
        // is awaited inside the select, so that a stop or an interrupt is seen even while
        // the backend is away and the outbox is full.
        let sender = self.transport.sender();
        let mut pending: VecDeque<Outbound> = VecDeque::new();
        let (history_tx, mut histories) = mpsc::unbounded_channel();
        let outcome = {
            let mut running = pin!(adapter.run(&mut session));
            loop {
                tokio::select! {
                    // Input and signals come before the adapter's output, which can be
                    // ready every time: a busy adapter must not starve an interrupt.
                    biased;
                    outcome = &mut running => break Some(outcome),
                    Some(received) = inbound.recv() => self.receive(received, &input_tx, &history_tx),
                    Some(history) = histories.recv() => self.recovered(history, &input_tx),
                    Some(news) = self.workspace_changes.1.recv() => match news {
                        WorkspaceNews::Line(message) => pending.push_back(self.redactor.outbound(Outbound::Log { message })),
                        WorkspaceNews::Changed(workspace) => {
                            // The adapter may have returned already; then nobody needs to know.
                            let _told = input_tx.send(Input::WorkspaceChanged(workspace));
                        }
                    },
                    step = stopping.next() => match step {
                        StopStep::Cancelled(StopCause::Signal) => {
                            stop_deadline = Some(tokio::time::Instant::now() + STOP_BUDGET);
                        }
                        StopStep::Cancelled(StopCause::Timeout) => {}
                        StopStep::Abandon => break None,
                    },
                    permit = sender.reserve(), if !pending.is_empty() => match (permit, pending.pop_front()) {
                        (Ok(permit), Some(frame)) => permit.send(frame),
                        (Err(error), _) => warn!(error = %chain(&error), "a frame could not be queued"),
                        (Ok(_), None) => {}
                    },
                    Some(output) = output.recv(), if pending.is_empty() => pending.extend(self.frames_for(output)),
                }
            }
        };
        drop(session);
        // What the adapter emitted before it returned still goes out; while stopping, only
        // within the stop budget (with the backend away, sending would wait for it).
        let drain = async {
            for frame in pending {
                self.send_scrubbed(frame).await;
            }
            while let Some(output) = output.recv().await {
                for frame in self.frames_for(output) {
                    self.send_scrubbed(frame).await;
                }
            }
        };
        match stop_deadline {
            Some(deadline) => {
                if tokio::time::timeout_at(deadline, drain).await.is_err() {
                    warn!("the backend did not take every frame before the stop budget ran out");
                }
            }
            None => drain.await,
        }
        let (end, result) = stopping.end(outcome);
        match stop_deadline {
            None => self.finish(end, result).await,
            Some(deadline) => {
                self.status = self.status.clone().with_retry(STOP_RETRY);
                let settle = self.finish(end.clone(), result.clone());
                match tokio::time::timeout_at(deadline, settle).await {
                    Ok(report) => report,
                    Err(_) => {
                        warn!(budget = ?STOP_BUDGET, "stopping took too long; exiting without a settled status");
                        SessionReport {
                            end,
                            status_written: false,
                            result,
                        }
                    }
                }
            }
        }
    }

    /// Checks out the session's repositories, relaying progress as log lines while it
    /// runs.
    async fn prepare_workspace(
        &self,
        is_continuation: bool,
    ) -> Result<(PreparedWorkspace, Credentials), WorkspaceError> {
        if is_continuation {
            let parent = self.config.parent_session_id.as_deref().unwrap_or_default();
            let short: String = parent.chars().take(8).collect();
            self.send(Outbound::Log {
                message: format!("♻️ Reusing workspace from session {short}"),
            })
            .await;
        }
        let mut credentials = Credentials::new(
            self.config.github_token.clone(),
            self.config.gitlab_token.clone(),
            Some(self.status.clone()),
        );
        let prepared = workspace::prepare_relaying(
            &self.config.workspace,
            &self.config.workspace_settings,
            is_continuation,
            &mut credentials,
            |line| self.send(Outbound::Log { message: line }),
        )
        .await;
        prepared.map(|prepared| (prepared, credentials))
    }

    /// Sends the lifecycle frame, flushes, settles the status, closes the socket.
    async fn finish(self, end: SessionEnd, result: Option<ResultPayload>) -> SessionReport {
        let lifecycle = match end {
            SessionEnd::Completed => Lifecycle::SessionCompleted,
            _ => Lifecycle::SessionFailed,
        };
        if end != SessionEnd::Stopped || self.current_phase().await != Some(Phase::Stopped) {
            self.send(Outbound::Lifecycle(lifecycle)).await;
        }
        // While stopping, the stop budget bounds all of this instead.
        let flush_deadline = if end == SessionEnd::Stopped {
            STOP_BUDGET / 4
        } else {
            FLUSH_DEADLINE
        };
        match tokio::time::timeout(flush_deadline, self.transport.flush()).await {
            Ok(Ok(())) => debug!("every frame was echoed"),
            Ok(Err(error)) => {
                warn!(error = %chain(&error), "frames may not have reached the backend")
            }
            Err(_) => {
                warn!(deadline = ?FLUSH_DEADLINE, "the backend did not echo every frame in time")
            }
        }
        self.tracker.close();
        self.tracker.wait().await;
        let status_written = self.write_final_status(&end, result.as_ref()).await;
        match tokio::time::timeout(FLUSH_DEADLINE, self.transport.close()).await {
            Ok(Ok(stats)) => info!(
                frames = stats.frames,
                reconnects = stats.reconnects,
                "connection closed"
            ),
            Ok(Err(error)) => warn!(error = %chain(&error), "closing the connection failed"),
            Err(_) => warn!("closing the connection timed out"),
        }
        SessionReport {
            end,
            status_written,
            result,
        }
    }

    async fn write_final_status(&self, end: &SessionEnd, result: Option<&ResultPayload>) -> bool {
        let phase = self.current_phase().await;
        if phase == Some(Phase::Stopped) {
            info!("the session is Stopped; leaving its status as it is");
            return true;
        }
        let completion_time = time::OffsetDateTime::now_utc().format(&Rfc3339).ok();
        let (phase, message, is_error) = match end {
            SessionEnd::Completed => {
                let is_error = result.and_then(|r| r.is_error).unwrap_or(false);
                (Phase::Completed, String::from("Runner completed"), is_error)
            }
            SessionEnd::Failed { reason } => (Phase::Failed, reason.clone(), true),
            SessionEnd::TimedOut => {
                let after = self.config.timeout.unwrap_or_default();
                (
                    Phase::Failed,
                    format!("Session timed out after {after:?}"),
                    true,
                )
            }
            SessionEnd::Stopped => (
                Phase::Failed,
                String::from("Runner stopped before the session ended"),
                true,
            ),
            SessionEnd::BackendUnreachable { reason } => (Phase::Failed, reason.clone(), true),
        };
        let mut update = StatusUpdate {
            phase: Some(phase),
            message: Some(message),
            completion_time,
            is_error: Some(is_error),
            session_id: Some(self.config.session_id.clone()),
            ..StatusUpdate::default()
        };
        if let Some(result) = result {
            update.subtype = result.subtype.clone();
            update.duration_ms = result.duration_ms;
            update.duration_api_ms = result.duration_api_ms;
            update.num_turns = result.num_turns;
            update.total_cost_usd = result.total_cost_usd;
            update.usage = result.usage.clone();
            update.result = result.result.as_deref().map(truncate);
            if let Some(framework_session) = &result.session_id {
                update.session_id = Some(framework_session.clone());
            }
        }
        self.put_status(update).await
    }

    /// The frames one thing the adapter produced becomes, scrubbed of secrets; a stored
    /// value becomes none (it goes to an annotation).
    fn frames_for(&mut self, output: SessionOutput) -> Vec<Outbound> {
        match output {
            SessionOutput::Event(event) => {
                let ends_turn = matches!(event, Event::Result(_));
                let mut frames: Vec<Outbound> = self
                    .mapper
                    .map(event)
                    .map(|frame| self.redactor.outbound(frame))
                    .into_iter()
                    .collect();
                if ends_turn && self.config.mode == Mode::Interactive {
                    frames.push(Outbound::Waiting);
                }
                frames
            }
            SessionOutput::Store(stored) => {
                self.store(stored);
                Vec::new()
            }
        }
    }

    /// Keeps a continuation value as an annotation, in the background.
    fn store(&self, stored: Stored) {
        let status = self.status.clone();
        let value = self.redactor.text(&stored.value).into_owned();
        self.tracker.spawn(async move {
            let patch = AnnotationPatch::single(stored.key.clone(), value);
            match status.patch_annotations(&patch).await {
                Ok(_) => debug!(key = %stored.key, "continuation value stored"),
                Err(error) => warn!(key = %stored.key, error = %chain(&error), "storing a continuation value failed"),
            }
        });
    }

    /// One thing the transport reported.
    fn receive(
        &mut self,
        received: Received,
        input: &mpsc::UnboundedSender<Input>,
        histories: &mpsc::UnboundedSender<Option<Vec<SessionMessage>>>,
    ) {
        match received {
            Received::Message { inbound, message } => {
                if self.recoveries > 0 {
                    self.held.push((inbound, message));
                } else {
                    self.accept_live(inbound, &message, input);
                }
            }
            Received::Malformed(error) => {
                warn!(error = %chain(&error), "ignoring a malformed message")
            }
            Received::Reconnected => {
                // Read in the background so that relaying goes on meanwhile.
                self.recoveries += 1;
                let status = self.status.clone();
                let histories = histories.clone();
                self.tracker.spawn(async move {
                    let history = match status.message_history().await {
                        Ok(history) => Some(history.messages),
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

    fn accept_live(
        &mut self,
        inbound: Inbound,
        message: &SessionMessage,
        input: &mpsc::UnboundedSender<Input>,
    ) {
        if self.inbox.accept_live(message) {
            self.deliver(inbound, input);
        } else {
            debug!(kind = %message.kind, "already delivered from the history");
        }
    }

    /// A history read finished: deliver what was missed, then what arrived meanwhile.
    fn recovered(
        &mut self,
        history: Option<Vec<SessionMessage>>,
        input: &mpsc::UnboundedSender<Input>,
    ) {
        self.recoveries = self.recoveries.saturating_sub(1);
        if let Some(history) = history {
            let instance = self.instance.clone();
            let is_ours = |id: &FrameId| {
                id.as_str()
                    .strip_prefix(instance.as_str())
                    .is_some_and(|rest| rest.starts_with('-'))
            };
            let missed = self.inbox.recover(history, is_ours);
            if !missed.is_empty() {
                info!(
                    count = missed.len(),
                    "delivering messages posted while the connection was down"
                );
            }
            for inbound in missed {
                self.deliver(inbound, input);
            }
        }
        if self.recoveries == 0 {
            for (inbound, message) in std::mem::take(&mut self.held) {
                self.accept_live(inbound, &message, input);
            }
        }
    }

    /// Applies a workspace change in the background, one at a time; what it reports comes
    /// back to the loop as [`WorkspaceNews`].
    fn change_workspace(&self, change: workspace::Change) {
        let Some(state) = self.workspace.clone() else {
            warn!("a workspace change arrived before the workspace was prepared; ignoring it");
            return;
        };
        let news = self.workspace_changes.0.clone();
        let root = self.config.workspace.clone();
        self.tracker.spawn(async move {
            let mut state = state.lock().await;
            let state = &mut *state;
            let (log, mut lines) = mpsc::unbounded_channel();
            let changed = workspace::apply(
                &root,
                &mut state.settings,
                &mut state.prepared,
                change,
                &mut state.credentials,
                &log,
            )
            .await;
            drop(log);
            while let Some(line) = lines.recv().await {
                let _relayed = news.send(WorkspaceNews::Line(line));
            }
            if changed {
                let _relayed = news.send(WorkspaceNews::Changed(Workspace {
                    main: state.prepared.main.clone(),
                    extra: state.prepared.extra.clone(),
                    artifacts: state.prepared.artifacts.clone(),
                }));
            }
        });
    }

    /// One user or control message for the adapter.
    fn deliver(&self, inbound: Inbound, input: &mpsc::UnboundedSender<Input>) {
        let to_adapter = match inbound {
            Inbound::UserMessage { content } => {
                if self.config.mode == Mode::Batch {
                    debug!("ignoring a user message in batch mode");
                    return;
                }
                let content = content.trim();
                if content.is_empty() {
                    return;
                }
                Input::Message(content.to_owned())
            }
            Inbound::Interrupt => Input::Interrupt,
            Inbound::EndSession | Inbound::Terminate | Inbound::Stop => Input::EndSession,
            Inbound::RepoAdded(added) => {
                let branch = added.branch.clone();
                self.change_workspace(workspace::Change::AddRepo(RepoSpec {
                    name: Some(added.name),
                    input: RepoLocation {
                        url: added.url,
                        branch,
                    },
                    output: None,
                    status: None,
                }));
                return;
            }
            Inbound::RepoRemoved { name } => {
                self.change_workspace(workspace::Change::RemoveRepo(name));
                return;
            }
            Inbound::WorkflowChange(change) => {
                let location = RepoLocation {
                    url: change.git_url,
                    branch: change.branch,
                };
                self.change_workspace(workspace::Change::SwitchWorkflow(location, change.path));
                return;
            }
            Inbound::Unknown { kind } => {
                debug!(%kind, "ignoring a message of an unknown type");
                return;
            }
            Inbound::Pong | Inbound::Echo { .. } | Inbound::RunnerFrame { .. } => return,
        };
        // The adapter may have returned already; then there is no one to tell.
        let _delivered = input.send(to_adapter);
    }

    /// Sends a frame the shell made itself, scrubbed of secrets first.
    async fn send(&self, frame: Outbound) {
        self.send_scrubbed(self.redactor.outbound(frame)).await;
    }

    /// Sends a frame already scrubbed ([`Run::frames_for`]).
    async fn send_scrubbed(&self, frame: Outbound) {
        if let Err(error) = self.transport.send(frame).await {
            warn!(error = %chain(&error), "a frame could not be queued");
        }
    }

    async fn put_status(&self, mut update: StatusUpdate) -> bool {
        self.redactor.status(&mut update);
        match self.status.put_status(&update).await {
            Ok(()) => true,
            Err(error) => {
                warn!(phase = ?update.phase, error = %chain(&error), "writing the status failed");
                false
            }
        }
    }

    async fn current_phase(&self) -> Option<Phase> {
        match self.status.get_session(&self.config.session_id).await {
            Ok(session) => session.status.and_then(|s| s.phase),
            Err(error) => {
                warn!(error = %chain(&error), "reading the session's phase failed");
                None
            }
        }
    }

    /// The parent session's annotations, for an adapter that continues its work.
    async fn load_continuation(&self) -> Continuation {
        let Some(parent) = &self.config.parent_session_id else {
            return Continuation::default();
        };
        match self.status.get_session(parent).await {
            Ok(session) => Continuation::new(session.metadata.annotations),
            Err(error) => {
                warn!(%parent, error = %chain(&error), "reading the parent session failed; starting fresh");
                Continuation::default()
            }
        }
    }
}

/// The workspace as changes see it.
#[derive(Debug)]
struct WorkspaceState {
    settings: crate::config::WorkspaceSettings,
    prepared: PreparedWorkspace,
    credentials: Credentials,
}

/// What a workspace change reports back to the session loop.
#[derive(Debug)]
enum WorkspaceNews {
    Line(String),
    Changed(Workspace),
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_RESULT_CHARS).collect()
}
