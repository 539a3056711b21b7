//! The serve mode as a front of the host: run requests become input, the host's items
//! become the runs' AG-UI events.

use std::{collections::VecDeque, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use ambient_adapter::{CancellationToken, Continuation, Input, SessionInfo};
use ambient_host::{Control, Ending, Front, HostConfig, Opening, Relayed, SessionEnd, Step};
use serde_json::json;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    continuation::ContinuationFile,
    hub::{Command, Hub, Initiator, MODEL_SWITCHED_EVENT, QueuedRun, Refused, Started},
    initial_prompt::{self, InitialPrompt},
};

/// Runs that may wait for the open one to end.
const MAX_QUEUED_RUNS: usize = 16;
/// The most bytes of run requests that may wait.
const MAX_QUEUED_BYTES: usize = 16 << 20;

/// How long open streams have to finish once the session is over.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How long the session's end waits for a run's initiator that reads nothing.
const INITIATOR_GRACE: Duration = Duration::from_secs(5);

/// The HTTP server, to stop at the end.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) stop: CancellationToken,
    pub(crate) task: JoinHandle<()>,
}

/// The served session.
#[derive(Debug)]
pub(crate) struct ServeFront {
    hub: Arc<Hub>,
    commands: mpsc::UnboundedReceiver<Command>,
    root: PathBuf,
    has_parent: bool,
    /// Opened with the session: the values a restarted pod resumes from.
    store: Option<ContinuationFile>,
    address: SocketAddr,
    server: Server,
    /// Run requests that came while a run was open, in order, and their bytes.
    queued: VecDeque<QueuedRun>,
    queued_bytes: usize,
    /// The first prompt, posted to the backend once runs are taken.
    pub(crate) initial_prompt: Option<(InitialPrompt, ambient_host::Redactor)>,
    /// Where a run's initiator says it left, when that stops the run.
    pub(crate) abandon: Option<mpsc::UnboundedSender<Command>>,
}

impl ServeFront {
    pub(crate) fn new(
        hub: Arc<Hub>,
        commands: mpsc::UnboundedReceiver<Command>,
        config: &HostConfig,
        address: SocketAddr,
        server: Server,
    ) -> Self {
        Self {
            hub,
            commands,
            root: config.workspace.clone(),
            has_parent: config.parent_session_id.is_some(),
            store: None,
            address,
            server,
            queued: VecDeque::new(),
            queued_bytes: 0,
            initial_prompt: None,
            abandon: None,
        }
    }

    /// Opens a run for `request` and delivers its input.
    fn start(
        &self,
        request: &crate::request::RunRequest,
        control: &mut Control<'_>,
    ) -> Result<Initiator, Refused> {
        if control.is_stopping() {
            return Err(Refused::Closed(String::from("the runner is stopping")));
        }
        let (log, input) = self.hub.start_run(request)?;
        control.deliver(input);
        Ok(Initiator::new(log, self.abandon.clone()))
    }

    /// Waits `request` behind the open run, within the queue's bounds.
    fn enqueue(
        &mut self,
        request: crate::request::RunRequest,
        bytes: usize,
    ) -> Result<Started, Refused> {
        let waiting: Vec<&str> = self
            .queued
            .iter()
            .map(|queued| queued.request.run_id.as_str())
            .collect();
        self.hub.check_queueable(&request, &waiting)?;
        if self.queued.len() >= MAX_QUEUED_RUNS
            || self.queued_bytes.saturating_add(bytes) > MAX_QUEUED_BYTES
        {
            return Err(Refused::QueueFull {
                runs: self.queued.len(),
                bytes: self.queued_bytes,
            });
        }
        info!(run_id = %request.run_id, waiting = self.queued.len() + 1, "run waits for the open run to end");
        let (reply, started) = tokio::sync::oneshot::channel();
        self.queued_bytes += bytes;
        self.queued.push_back(QueuedRun {
            request,
            bytes,
            reply,
        });
        self.hub.metrics().set_waiting(self.queued.len());
        Ok(Started::Queued(started))
    }
}

impl Front for ServeFront {
    type Request = Command;

    fn traced(&mut self, trace: &ambient_host::trace::SessionTrace) {
        if let Some(trace_id) = trace.trace_id() {
            self.hub.set_trace_id(trace_id);
        }
    }

    async fn open(&mut self) -> Result<Opening, SessionEnd> {
        let store = ContinuationFile::open(&self.root);
        let values = store.values().clone();
        self.store = Some(store);
        Ok(Opening {
            is_continuation: self.has_parent || !values.is_empty(),
            continuation: Continuation::new(values),
            parent_prompt: None,
            minter: None,
        })
    }

    fn relay(&mut self, item: Relayed) {
        match item {
            Relayed::Event(event) => self.hub.event(event),
            Relayed::Store(stored) => {
                if let Some(store) = &mut self.store {
                    store.save(&stored.key, &stored.value);
                }
            }
            // A run's end says whether the agent waits, and the prompt comes in a run.
            Relayed::Waiting | Relayed::Prompt(_) => {}
        }
    }

    fn is_backlogged(&self) -> bool {
        // The open run's initiator has fallen behind: it paces the run.
        self.hub.is_backlogged()
    }

    async fn next(&mut self) -> Step<Command> {
        // A run that waited opens as soon as the one before it has ended.
        if !self.hub.is_run_open()
            && let Some(queued) = self.queued.pop_front()
        {
            self.queued_bytes = self.queued_bytes.saturating_sub(queued.bytes);
            self.hub.metrics().set_waiting(self.queued.len());
            return Step::Request(Command::Dequeued(queued));
        }
        let backlogged = self.hub.is_backlogged();
        tokio::select! {
            command = self.commands.recv() => match command {
                Some(command) => Step::Request(command),
                None => std::future::pending().await,
            },
            () = self.hub.progress(), if backlogged => Step::Sent,
        }
    }

    async fn send_backlog(&mut self) {
        if !self.hub.is_backlogged() {
            return std::future::pending().await;
        }
        // Used as the session ends: an initiator that reads nothing is waited for a
        // while, then no longer paces the run.
        if tokio::time::timeout(INITIATOR_GRACE, self.hub.progress())
            .await
            .is_err()
        {
            warn!(grace = ?INITIATOR_GRACE, "the client that started the run reads nothing; the session ends without waiting for it");
            self.hub.stop_pacing();
        }
    }

    fn after_emitted(&self, _request: &Command) -> bool {
        // A run opened now must not be credited with what the adapter said before it.
        true
    }

    fn handle(&mut self, command: Command, control: &mut Control<'_>) {
        // The caller may have hung up: then nobody needs the answer.
        match command {
            Command::Start(request, bytes, reply) => {
                let started = if control.is_stopping() {
                    Err(Refused::Closed(String::from("the runner is stopping")))
                } else if self.hub.is_run_open() || !self.queued.is_empty() {
                    self.enqueue(request, bytes)
                } else {
                    self.start(&request, control).map(Started::Now)
                };
                // Unanswered, the initiator is dropped here and the run's buffer
                // released.
                let _answered = reply.send(started);
            }
            Command::Dequeued(queued) => {
                // Its caller has gone: nobody would read the run, so it never opens.
                if queued.reply.is_closed() {
                    info!(run_id = %queued.request.run_id, "a waiting run's caller left; it does not open");
                    return;
                }
                let started = self.start(&queued.request, control);
                let _answered = queued.reply.send(started);
            }
            Command::SetModel {
                model,
                previous,
                reply,
            } => {
                let switched = if self.hub.is_run_open() || !self.queued.is_empty() {
                    Err(Refused::MidRun)
                } else {
                    control.deliver(Input::SetModel(model.clone()));
                    // The UI shows the switch in the conversation, from this event; sent
                    // here, it comes before any run the switch is for.
                    self.hub.notice(
                        MODEL_SWITCHED_EVENT,
                        json!({"previousModel": previous.unwrap_or_default(), "newModel": model}),
                    );
                    Ok(())
                };
                let _answered = reply.send(switched);
            }
            Command::StopTask(id, reply) => {
                let stopped = if control.is_stopping() {
                    Err(Refused::Closed(String::from("the runner is stopping")))
                } else {
                    control.deliver(Input::StopTask(id));
                    Ok(())
                };
                let _answered = reply.send(stopped);
            }
            Command::ChangeWorkspace(change, reply) => {
                let queued = if control.is_stopping() {
                    Err(Refused::Closed(String::from("the runner is stopping")))
                } else {
                    Ok(control.change_workspace_reporting(change))
                };
                let _answered = reply.send(queued);
            }
            Command::Abandoned(run_id) => {
                if self.hub.abandon(&run_id) {
                    control.deliver(Input::Interrupt);
                }
            }
            Command::Interrupt(reply) => {
                let interrupted = self.hub.interrupt();
                if interrupted.is_ok() {
                    control.deliver(Input::Interrupt);
                }
                let _answered = reply.send(interrupted);
            }
        }
    }

    fn started(&mut self, _info: &SessionInfo) {
        self.hub.started();
        announce(self.address);
        if let Some((prompt, redactor)) = self.initial_prompt.take() {
            // The backend runs it by posting it back here; the session's end stops the
            // tries.
            tokio::spawn(initial_prompt::send(
                prompt,
                redactor,
                self.server.stop.clone(),
            ));
        }
    }

    async fn finish(mut self, ending: Ending) -> bool {
        let (reason, failure) = match &ending.end {
            SessionEnd::Completed => (String::from("the session completed"), None),
            SessionEnd::Failed { reason } | SessionEnd::BackendUnreachable { reason } => (
                format!("the session failed: {reason}"),
                Some(reason.as_str()),
            ),
            SessionEnd::Stopped => (String::from("the runner was stopped"), None),
            SessionEnd::TimedOut => (String::from("the session timed out"), None),
        };
        self.hub.close(&reason, failure);
        for queued in self.queued.drain(..) {
            let _answered = queued.reply.send(Err(Refused::Closed(reason.clone())));
        }
        info!("session over; closing the server");
        self.server.stop.cancel();
        match tokio::time::timeout(DRAIN_GRACE, self.server.task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%error, "the server task failed"),
            Err(_) => warn!(grace = ?DRAIN_GRACE, "streams still open at exit were cut"),
        }
        // There is no status to write: the platform's backend keeps its own.
        true
    }
}

/// Tells whoever started the runner that runs are taken, and where (the first line on
/// stdout), so that a port picked by the system can be found.
fn announce(address: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _told = writeln!(out, "ag-ui listening on http://{address}").and_then(|()| out.flush());
}
