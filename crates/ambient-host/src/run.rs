//! A session from the front's opening to its end: the one loop every front runs in.
//!
//! 1. The front opens the session (the WebSocket connects and says it started; the
//!    serve mode reads its continuation file).
//! 2. The workspace is prepared, its lines relayed as they come.
//! 3. The adapter runs with a [`Session`]: its prompt first where the rule says so
//!    ([`crate::prompt`]), then what the front delivers; its events are scrubbed and
//!    relayed, and the host says when the agent waits for the user.
//! 4. What the adapter emitted is drained, and the front finishes (the final status).
//!
//! The stop signal and the timeout are watched in every phase. The signal cancels the
//! adapter's session (or, before the adapter runs, the phase under way), and from it all
//! that is left runs within [`STOP_BUDGET`].

use std::{convert::Infallible, future::Future, path::PathBuf, pin::pin};

use ambient_adapter::{
    Adapter, CancellationToken, Event, Input, Mode, Next, Session, SessionInfo, SessionOutput,
    Workspace,
};
use ambient_protocol::{ResultPayload, error_chain as chain};
use opentelemetry::context::FutureExt as _;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::{
    HostConfig, Redactor,
    config::AgentUser,
    exit::{SessionEnd, SessionReport},
    front::{ChangeOutcome, ChangeRequest, Control, Ending, Front, Relayed, Step},
    prompt::{Continued, first_turn},
    redact::stream::HeldStreams,
    stopping::{CANCEL_GRACE, STOP_BUDGET, StopCause, StopStep, Stopping},
    trace::{SessionMetrics, SessionTrace, TurnSpans},
    workspace::{self, Credentials, PreparedWorkspace},
};

/// Events the adapter may have in flight before `emit` waits.
const EVENT_BUFFER: usize = 256;
/// Workspace changes (each a git clone, say) waiting for the one under way; past it,
/// more are refused.
pub(crate) const WORKSPACE_CHANGES_WAITING: usize = 64;

/// Runs one session with `adapter` behind `front`, to its end.
///
/// `shutdown` is the process's stop signal (SIGTERM, SIGINT): the phase under way is
/// given up (the adapter's session is cancelled), what was emitted is relayed, and the
/// front settles the session within [`STOP_BUDGET`].
///
/// # Cancel safety
///
/// Not cancel-safe: dropping it abandons the session unsettled. Use `shutdown` instead.
pub async fn run<A: Adapter, F: Front>(
    config: HostConfig,
    mut front: F,
    adapter: A,
    shutdown: CancellationToken,
) -> SessionReport {
    let trace = SessionTrace::start(
        &config.session_id,
        &config.trace_identity,
        config.redactor.clone(),
    );
    front.traced(&trace);
    let report = Box::pin(run_traced(config, front, adapter, shutdown, &trace)).await;
    trace.end(&report.end);
    report
}

async fn run_traced<A: Adapter, F: Front>(
    config: HostConfig,
    mut front: F,
    mut adapter: A,
    shutdown: CancellationToken,
    trace: &SessionTrace,
) -> SessionReport {
    let cancel = CancellationToken::new();
    let mut stopping = Stopping::new(shutdown.clone(), cancel.clone(), config.timeout);
    let mut stop_deadline = None;
    let mut relay = Relay {
        redactor: config.redactor.clone(),
        streams: HeldStreams::default(),
        mode: config.mode,
        ending: false,
        last_result: None,
        spans: TurnSpans::new(trace.clone()),
        metrics: SessionMetrics::of(trace),
    };

    let opened = tokio::select! {
        biased;
        step = stopping.next() => {
            note_stop(step, &mut stop_deadline);
            None
        }
        opened = front.open() => Some(opened),
    };
    let opening = match opened {
        Some(Ok(opening)) => opening,
        Some(Err(end)) => return close(front, end, None, stop_deadline, &shutdown).await,
        None => {
            let (end, _) = stopping.end::<Infallible>(None);
            return close(front, end, None, stop_deadline, &shutdown).await;
        }
    };

    if opening.is_continuation
        && let Some(parent) = &config.parent_session_id
    {
        let short: String = parent.chars().take(8).collect();
        relay.log(
            &mut front,
            format!("♻️ Reusing workspace from session {short}"),
        );
    }
    let mut credentials = Credentials::new(
        config.github_token.clone(),
        config.gitlab_token.clone(),
        opening.minter.clone(),
        config.redactor.clone(),
    );
    let preparing_span = trace.open("workspace.prepare", Vec::new());
    let prepared = {
        let (log, mut lines) = mpsc::unbounded_channel();
        let prepared = {
            let mut preparing = pin!(
                workspace::prepare(
                    &config.workspace,
                    &config.workspace_settings,
                    opening.is_continuation,
                    &mut credentials,
                    &log,
                )
                .with_context(preparing_span.clone())
            );
            loop {
                tokio::select! {
                    biased;
                    step = stopping.next() => {
                        note_stop(step, &mut stop_deadline);
                        break None;
                    }
                    prepared = &mut preparing => break Some(prepared),
                    Some(line) = lines.recv() => relay.log(&mut front, line),
                    () = front.send_backlog(), if front.is_backlogged() => {}
                }
            }
        };
        drop(log);
        while let Ok(line) = lines.try_recv() {
            relay.log(&mut front, line);
        }
        prepared
    };
    crate::trace::finish(
        &preparing_span,
        match &prepared {
            Some(Err(error)) => Some(trace.scrubbed(&chain(error))),
            _ => None,
        },
    );
    let prepared = match prepared {
        Some(Ok(prepared)) => {
            if let Some(user) = config.agent.agent_user {
                workspace::hand_over(&config.workspace, user);
            }
            prepared
        }
        Some(Err(error)) => {
            let reason = format!("Workspace preparation failed: {}", chain(&error));
            relay.log(&mut front, reason.clone());
            let end = SessionEnd::Failed { reason };
            return close(front, end, None, stop_deadline, &shutdown).await;
        }
        None => {
            let (end, _) = stopping.end::<Infallible>(None);
            return close(front, end, None, stop_deadline, &shutdown).await;
        }
    };

    let continued = opening.is_continuation.then_some(Continued {
        name: config.parent_session_id.as_deref(),
        prompt: opening.parent_prompt.as_deref(),
    });
    let first = first_turn(&config.prompt, config.mode, continued);
    relay.mode = first.mode;
    if let Some(note) = first.note {
        relay.log(&mut front, note);
    }
    let (input_tx, input_rx) = mpsc::unbounded_channel();
    if let Some(prompt) = first.prompt {
        let echo = relay.redactor.text(&prompt).into_owned();
        front.relay(Relayed::Prompt(echo));
        let _queued = input_tx.send(Input::Message(prompt.into()));
    }
    if first.mode == Mode::Batch {
        let _queued = input_tx.send(Input::EndSession);
        relay.ending = true;
    }
    let tracker = TaskTracker::new();
    let (changes, news) = workspace_worker(
        &tracker,
        WorkspaceState {
            root: config.workspace.clone(),
            settings: config.workspace_settings.clone(),
            prepared: prepared.clone(),
            credentials,
            agent_user: config.agent.agent_user,
        },
    );
    let mut news = news;
    let info = SessionInfo {
        session_id: config.session_id.clone(),
        mode: first.mode,
        is_continuation: opening.is_continuation,
        workspace: workspace_of(&prepared),
    };
    let (output_tx, mut output) = mpsc::channel(EVENT_BUFFER);
    let mut session = Session::new(
        info.clone(),
        output_tx,
        input_rx,
        cancel,
        opening.continuation,
    );
    front.started(&info);
    let outcome = {
        let mut running = pin!(adapter.run(&mut session));
        loop {
            tokio::select! {
                // The front's requests and the signals come before the adapter's output,
                // which can be ready every time: a busy adapter must not starve an
                // interrupt or a stop.
                biased;
                outcome = &mut running => break Some(outcome),
                step = stopping.next() => match step {
                    StopStep::Cancelled(_) => note_stop(step, &mut stop_deadline),
                    StopStep::Abandon => break None,
                },
                Some(news) = news.recv() => match news {
                    WorkspaceNews::Line(line) => relay.log(&mut front, line),
                    WorkspaceNews::Changed(workspace) => {
                        let _told = input_tx.send(Input::WorkspaceChanged(workspace));
                    }
                },
                step = front.next() => if let Step::Request(request) = step {
                    if front.after_emitted(&request) {
                        while let Ok(item) = output.try_recv() {
                            relay.output(&mut front, item);
                        }
                    }
                    let mut control = Control {
                        input: &input_tx,
                        changes: &changes,
                        mode: relay.mode,
                        ending: &mut relay.ending,
                        stopping: stopping.cause().is_some(),
                    };
                    front.handle(request, &mut control);
                },
                Some(item) = output.recv(), if !front.is_backlogged() => relay.output(&mut front, item),
            }
        }
    };
    drop(session);
    drop(changes);
    let (end, result) = stopping.end(outcome);
    let unsettled_end = end.clone();
    let closing = async move {
        drain(&mut front, &mut output, &mut relay).await;
        // A workspace change under way is let finish, so that no git command is cut.
        tracker.close();
        tracker.wait().await;
        // An adapter stopped mid-turn may return without its result (`?` on an emit that
        // failed): its last turn's is the one the status reports.
        let result = match stopping.cause() {
            Some(_) => result.or(relay.last_result),
            None => result,
        };
        let ending = Ending {
            end: end.clone(),
            result: result.clone(),
            stopping: stop_deadline.is_some(),
        };
        let status_written = front.finish(ending).await;
        SessionReport {
            end,
            status_written,
            result,
        }
    };
    match within_stop_budget(closing, stop_deadline, &shutdown).await {
        Some(report) => report,
        None => {
            warn!(budget = ?STOP_BUDGET, "stopping took too long; exiting without a settled status");
            SessionReport {
                end: unsettled_end,
                status_written: false,
                result: None,
            }
        }
    }
}

/// Starts the stop budget when the signal comes.
fn note_stop(step: StopStep, deadline: &mut Option<Instant>) {
    if step == StopStep::Cancelled(StopCause::Signal) && deadline.is_none() {
        *deadline = Some(Instant::now() + STOP_BUDGET);
    }
}

/// Ends a session that never got to its adapter: the front finishes, within the stop
/// budget.
async fn close<F: Front>(
    front: F,
    end: SessionEnd,
    result: Option<ResultPayload>,
    deadline: Option<Instant>,
    shutdown: &CancellationToken,
) -> SessionReport {
    let ending = Ending {
        end: end.clone(),
        result: result.clone(),
        stopping: deadline.is_some(),
    };
    let status_written = within_stop_budget(front.finish(ending), deadline, shutdown)
        .await
        .unwrap_or_else(|| {
            warn!(budget = ?STOP_BUDGET, "stopping took too long; exiting without a settled status");
            false
        });
    SessionReport {
        end,
        status_written,
        result,
    }
}

/// `work`, cut at `deadline` if there is one; with none, cut [`STOP_BUDGET`] after the
/// stop signal if it comes meanwhile.
async fn within_stop_budget<T>(
    work: impl Future<Output = T>,
    deadline: Option<Instant>,
    shutdown: &CancellationToken,
) -> Option<T> {
    let mut work = pin!(work);
    let deadline = match deadline {
        Some(deadline) => deadline,
        None => tokio::select! {
            done = &mut work => return Some(done),
            () = shutdown.cancelled() => Instant::now() + STOP_BUDGET,
        },
    };
    tokio::time::timeout_at(deadline, work).await.ok()
}

/// Relays what the adapter emitted before it returned. A task it left behind could hold
/// its emitter open: its output is waited for [`CANCEL_GRACE`] at most.
async fn drain<F: Front>(
    front: &mut F,
    output: &mut mpsc::Receiver<SessionOutput>,
    relay: &mut Relay,
) {
    let given_up = Instant::now() + CANCEL_GRACE;
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            () = front.send_backlog(), if front.is_backlogged() => {}
            item = output.recv(), if open && !front.is_backlogged() => match item {
                Some(item) => relay.output(front, item),
                None => open = false,
            },
            () = tokio::time::sleep_until(given_up), if open && !front.is_backlogged() => {
                warn!("the adapter's output did not end after it returned; leaving the rest");
                open = false;
            }
            else => break,
        }
    }
    relay.release(front);
    relay.spans.close();
}

/// What the host makes of the adapter's output on its way to the front.
struct Relay {
    redactor: Redactor,
    /// The tails of text streams that could be the start of a secret.
    streams: HeldStreams,
    mode: Mode,
    /// The session is ending: a turn's end no longer asks the user to speak.
    ending: bool,
    last_result: Option<ResultPayload>,
    /// The trace's turns, tool calls and model calls.
    spans: TurnSpans,
    /// The session's figures.
    metrics: SessionMetrics,
}

impl Relay {
    /// A line of the host's own for the user.
    fn log<F: Front>(&self, front: &mut F, line: String) {
        front.relay(Relayed::Event(self.redactor.event(Event::Log(line))));
    }

    /// Relays what the text streams held: they have ended.
    fn release<F: Front>(&mut self, front: &mut F) {
        if self.streams.is_empty() {
            return;
        }
        for (stream, data) in self.redactor.release(&mut self.streams) {
            if !data.is_empty() {
                front.relay(Relayed::Event(Event::TextDelta { stream, data }));
            }
        }
    }

    /// One thing the adapter produced: scrubbed, relayed, and followed by the agent's
    /// waiting where the agent now waits for the user.
    fn output<F: Front>(&mut self, front: &mut F, output: SessionOutput) {
        match output {
            // A piece of a stream goes out as far as it cannot be a secret's start.
            SessionOutput::Event(Event::TextDelta { stream, data }) => {
                let data = self.redactor.stream(&mut self.streams, &stream, &data);
                if !data.is_empty() {
                    front.relay(Relayed::Event(Event::TextDelta { stream, data }));
                }
            }
            SessionOutput::Event(event) => {
                // Anything but a log line or a state ends the text streams under way.
                if !matches!(event, Event::Log(_) | Event::State(_)) {
                    self.release(front);
                }
                let event = self.redactor.event(event);
                self.spans.event(&event);
                self.metrics.event(&event);
                let waits = match &event {
                    Event::TurnEnded { result, next } => {
                        self.last_result = Some(result.clone());
                        match next {
                            Next::User => self.mode == Mode::Interactive && !self.ending,
                            Next::Busy => false,
                            Next::Answer => true,
                        }
                    }
                    Event::Question(_) | Event::ToolApproval { .. } => true,
                    _ => false,
                };
                front.relay(Relayed::Event(event));
                if waits {
                    front.relay(Relayed::Waiting);
                }
            }
            SessionOutput::Store(mut stored) => {
                if let std::borrow::Cow::Owned(clean) = self.redactor.text(&stored.value) {
                    stored.value = clean;
                }
                front.relay(Relayed::Store(stored));
            }
        }
    }
}

/// What a workspace change reports back to the loop.
#[derive(Debug)]
enum WorkspaceNews {
    Line(String),
    Changed(Workspace),
}

/// The folders an adapter works with.
fn workspace_of(prepared: &PreparedWorkspace) -> Workspace {
    Workspace {
        main: prepared.main.clone(),
        extra: prepared.extra.clone(),
        artifacts: prepared.artifacts.clone(),
    }
}

/// The prepared workspace, as changes see it.
struct WorkspaceState {
    root: PathBuf,
    settings: crate::config::WorkspaceSettings,
    prepared: PreparedWorkspace,
    credentials: Credentials,
    agent_user: Option<AgentUser>,
}

/// Applies workspace changes one at a time, in a task of its own, so that the session
/// goes on while git runs; what each change reports comes back as [`WorkspaceNews`].
fn workspace_worker(
    tracker: &TaskTracker,
    mut state: WorkspaceState,
) -> (
    mpsc::Sender<ChangeRequest>,
    mpsc::UnboundedReceiver<WorkspaceNews>,
) {
    let (changes, mut queue) = mpsc::channel::<ChangeRequest>(WORKSPACE_CHANGES_WAITING);
    let (news, news_rx) = mpsc::unbounded_channel();
    tracker.spawn(async move {
        while let Some(ChangeRequest { change, done }) = queue.recv().await {
            let (log, mut lines) = mpsc::unbounded_channel();
            let changed = workspace::apply(
                &state.root,
                &mut state.settings,
                &mut state.prepared,
                change,
                &mut state.credentials,
                &log,
            )
            .await;
            drop(log);
            if let Some(user) = state.agent_user {
                workspace::hand_over(&state.root, user);
            }
            let prepared = &state.prepared;
            let mut reported = Vec::new();
            while let Some(line) = lines.recv().await {
                if done.is_some() {
                    reported.push(line.clone());
                }
                let _relayed = news.send(WorkspaceNews::Line(line));
            }
            if let Some(done) = done {
                // The one who asked may have gone.
                let _told = done.send(ChangeOutcome {
                    changed,
                    lines: reported,
                    repos: prepared.repos.clone(),
                });
            }
            if changed {
                let _relayed = news.send(WorkspaceNews::Changed(workspace_of(prepared)));
            }
        }
    });
    (changes, news_rx)
}

#[cfg(test)]
mod tests;
