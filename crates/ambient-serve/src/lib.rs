//! The AG-UI serve mode: the same adapter, behind an HTTP server instead of the backend's
//! WebSocket.
//!
//! The platform's newer runners are HTTP servers that stream AG-UI events over SSE. With
//! `AGUI_LISTEN` (or `--serve`) set, a runner binary prepares the workspace as usual,
//! starts its adapter once, in interactive mode, and serves:
//!
//! | route | what it does |
//! |---|---|
//! | `GET /health` | `200 {"status":"ok"}` once runs are taken; `503` while starting or after the end. No token. |
//! | `GET /capabilities` | the agent's AG-UI capabilities |
//! | `POST /run` (or `POST /`) | a `RunAgentInput`; answers with the run's AG-UI events as SSE, each with an `id:` |
//! | `GET /runs/{run_id}/events` | the run's events after `Last-Event-ID`, then the rest of the run live |
//! | `POST /interrupt` | stops the open run's turn; the run ends with the `cancelled` outcome |
//!
//! Every route but `/health` needs `Authorization: Bearer <AGUI_TOKEN>`. Every event goes
//! through the shell's [`Redactor`], as frames do in WebSocket
//! mode, and so does every error message.
//!
//! A run is one turn of the adapter ([`hub`]). Its events are numbered and kept in a
//! bounded buffer (`AGUI_REPLAY_EVENTS` per run, the last few runs), so a client that
//! reconnects with `Last-Event-ID` gets every event after it, without gaps or repeats, or
//! `410 Gone` naming what is still kept. Values an adapter keeps for a later session (a
//! thread id, a CLI session id) go to `.ambient-runner/continuation.json` in the
//! workspace, so that a restarted pod resumes the same conversation.

mod continuation;
pub mod http;
pub mod hub;
pub mod request;

use std::{net::SocketAddr, path::PathBuf, pin::pin, sync::Arc, time::Duration};

use ambient_adapter::{
    Adapter, CancellationToken, Event, Mode, Session, SessionInfo, SessionOutput, Workspace,
};
use ambient_protocol::{Secret, error_chain as chain};
use ambient_shell::{
    Redactor, RunnerArgs, RunnerExit, SessionEnd,
    config::{ConfigError, DEFAULT_WORKSPACE},
    stopping::{CANCEL_GRACE, StopStep, Stopping},
    workspace::{self, Credentials},
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::{
    continuation::ContinuationFile,
    hub::{Command, Hub, Initiator, Refused},
};

/// The variables of the serve mode.
pub mod env {
    /// The address to serve on (`host:port`; port 0 picks a free one).
    pub const AGUI_LISTEN: &str = "AGUI_LISTEN";
    /// The bearer token callers present.
    pub const AGUI_TOKEN: &str = "AGUI_TOKEN";
    /// Events kept per run for replay.
    pub const AGUI_REPLAY_EVENTS: &str = "AGUI_REPLAY_EVENTS";
}

/// Events kept per run when `AGUI_REPLAY_EVENTS` does not say.
const DEFAULT_REPLAY_EVENTS: usize = 4096;
/// The shortest token accepted: anything shorter is guessable.
const MIN_TOKEN_LEN: usize = 16;
/// Events the adapter may have in flight before `emit` waits.
const EVENT_BUFFER: usize = 256;
/// How long open streams have to finish once the session is over.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The serve mode's flags, each backed by its variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Serve the session as AG-UI over HTTP on this address (host:port; port 0 picks one),
    /// instead of connecting to the backend's WebSocket.
    #[arg(long = "serve", env = env::AGUI_LISTEN, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The bearer token every caller but /health must present (16 characters or more).
    #[arg(long = "serve-token", env = env::AGUI_TOKEN, hide_env_values = true)]
    pub token: Option<String>,
    /// Events kept per run, so that a client that reconnects with Last-Event-ID misses
    /// nothing [default: 4096]. Read only in the serve mode.
    #[arg(long = "serve-replay-events", env = env::AGUI_REPLAY_EVENTS)]
    pub replay_events: Option<String>,
}

/// What `/capabilities` says about the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeIdentity {
    /// The runner's name (`claude-runner`).
    pub name: String,
    /// The framework it runs (`claude-code`, `langgraph`).
    pub framework: String,
    /// The runner's version.
    pub version: String,
    /// Whether runs can end on a question (the interrupt outcome) and resume.
    pub interrupts: bool,
}

/// The validated serve settings.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The callers' token.
    pub token: Secret,
    /// Events kept per run.
    pub replay_events: usize,
}

impl ServeArgs {
    /// Whether the serve mode was asked for.
    pub fn is_on(&self) -> bool {
        self.listen.as_deref().is_some_and(|l| !l.trim().is_empty())
    }

    /// The token, for the log's redactor.
    pub fn secret_values(&self) -> Vec<Secret> {
        self.token
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| Secret::new(t.trim()))
            .collect()
    }

    /// Validates the settings; each error names its variable.
    pub fn into_settings(self) -> Result<ServeSettings, ConfigError> {
        let listen = self.listen.unwrap_or_default();
        let listen = listen
            .trim()
            .parse::<SocketAddr>()
            .map_err(|error| ConfigError::Invalid {
                variable: env::AGUI_LISTEN,
                why: format!("expected host:port, like 0.0.0.0:8000 ({error})"),
            })?;
        let token = self
            .token
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or(ConfigError::Missing {
                variable: env::AGUI_TOKEN,
                why: "the serve mode authenticates every caller",
            })?;
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(ConfigError::Invalid {
                variable: env::AGUI_TOKEN,
                why: format!("shorter than {MIN_TOKEN_LEN} characters"),
            });
        }
        let replay_events = match self.replay_events.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_REPLAY_EVENTS,
            Some(text) => match text.parse::<usize>() {
                Ok(0) | Err(_) => {
                    return Err(ConfigError::Invalid {
                        variable: env::AGUI_REPLAY_EVENTS,
                        why: format!("`{text}` is not a number of events of 1 or more"),
                    });
                }
                Ok(events) => events,
            },
        };
        Ok(ServeSettings {
            listen,
            token: Secret::new(token),
            replay_events,
        })
    }
}

/// Serves `adapter`'s session until it ends, the session times out, or `shutdown` fires.
pub async fn serve<A: Adapter>(
    settings: ServeSettings,
    runner: RunnerArgs,
    identity: ServeIdentity,
    mut adapter: A,
    shutdown: CancellationToken,
) -> RunnerExit {
    let mut secrets = runner.secret_values();
    secrets.push(settings.token.clone());
    let redactor = Redactor::new(&secrets);
    let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    let workspace_settings = match runner.workspace_args.clone().into_settings() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!(%error, "configuration error");
            return RunnerExit::ConfigError;
        }
    };
    let root = runner
        .workspace
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_WORKSPACE));
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, address = %settings.listen, "{} cannot be served on", env::AGUI_LISTEN);
            return RunnerExit::ConfigError;
        }
    };
    let address = listener.local_addr().unwrap_or(settings.listen);
    let (input_tx, input_rx) = mpsc::unbounded_channel();
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let hub = Arc::new(Hub::new(input_tx, redactor.clone(), settings.replay_events));
    let front = http::Front {
        hub: Arc::clone(&hub),
        commands: commands_tx,
        token: settings.token.clone(),
        redactor: redactor.clone(),
        identity: Arc::new(identity),
        replay_events: settings.replay_events,
    };
    let server_stop = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, http::router(front))
            .with_graceful_shutdown(server_stop.clone().cancelled_owned())
            .into_future(),
    );
    info!(%address, "serving AG-UI; preparing the session");

    let plan = Plan {
        address,
        session_id: non_empty(&runner.session_id).unwrap_or_else(|| String::from("ag-ui-session")),
        root,
        workspace_settings,
    };
    let end = Box::pin(run(
        &mut adapter,
        &hub,
        Channels { input_rx, commands },
        &runner,
        plan,
        shutdown,
    ))
    .await;
    let (reason, failure) = match &end {
        SessionEnd::Completed => (String::from("the session completed"), None),
        SessionEnd::Failed { reason } | SessionEnd::BackendUnreachable { reason } => (
            format!("the session failed: {reason}"),
            Some(reason.as_str()),
        ),
        SessionEnd::Stopped => (String::from("the runner was stopped"), None),
        SessionEnd::TimedOut => (String::from("the session timed out"), None),
    };
    let reason = redactor.text(&reason).into_owned();
    hub.close(reason.clone(), failure);
    info!(%reason, "session over; closing the server");
    server_stop.cancel();
    match tokio::time::timeout(DRAIN_GRACE, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => warn!(%error, "the server failed"),
        Ok(Err(error)) => warn!(%error, "the server task failed"),
        Err(_) => warn!(grace = ?DRAIN_GRACE, "streams still open at exit were cut"),
    }
    end.exit()
}

/// Tells whoever started the runner that runs are taken, and where (the first line on
/// stdout), so that a port picked by the system can be found.
fn announce(address: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _told = writeln!(out, "ag-ui listening on http://{address}").and_then(|()| out.flush());
}

/// Where the served session runs.
struct Plan {
    /// Where the server listens, to announce once runs are taken.
    address: SocketAddr,
    session_id: String,
    root: PathBuf,
    workspace_settings: ambient_shell::config::WorkspaceSettings,
}

/// What reaches the session loop: the adapter's input, and the front's requests.
struct Channels {
    input_rx: mpsc::UnboundedReceiver<ambient_adapter::Input>,
    commands: mpsc::UnboundedReceiver<Command>,
}

/// Prepares the workspace and runs the adapter's session to its end.
async fn run<A: Adapter>(
    adapter: &mut A,
    hub: &Hub,
    channels: Channels,
    runner: &RunnerArgs,
    plan: Plan,
    shutdown: CancellationToken,
) -> SessionEnd {
    let Channels {
        input_rx,
        mut commands,
    } = channels;
    let Plan {
        address,
        session_id,
        root,
        workspace_settings,
    } = plan;
    let non_empty = |value: &Option<String>| {
        value
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(Secret::new)
    };
    let mut credentials = Credentials::new(
        non_empty(&runner.secrets.github_token),
        non_empty(&runner.secrets.gitlab_token),
        None,
    );
    let mut store = ContinuationFile::open(&root);
    let is_continuation = runner.parent_session_id.is_some() || !store.values().is_empty();
    let preparing = workspace::prepare_relaying(
        &root,
        &workspace_settings,
        is_continuation,
        &mut credentials,
        |line| {
            hub.event(Event::Log(line));
            std::future::ready(())
        },
    );
    let prepared = tokio::select! {
        prepared = preparing => prepared,
        () = shutdown.cancelled() => return SessionEnd::Stopped,
    };
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            return SessionEnd::Failed {
                reason: format!("Workspace preparation failed: {}", chain(&error)),
            };
        }
    };
    let (output_tx, mut output) = mpsc::channel(EVENT_BUFFER);
    let cancel = CancellationToken::new();
    let info = SessionInfo {
        session_id,
        prompt: String::new(),
        mode: Mode::Interactive,
        is_continuation,
        workspace: Workspace {
            main: prepared.main,
            extra: prepared.extra,
            artifacts: prepared.artifacts,
        },
    };
    let mut session = Session::new(
        info,
        output_tx,
        input_rx,
        cancel.clone(),
        ambient_adapter::Continuation::new(store.values().clone()),
    );
    hub.started();
    announce(address);
    let mut stopping = Stopping::new(shutdown, cancel, runner.timeout);
    let outcome = {
        let mut running = pin!(adapter.run(&mut session));
        loop {
            tokio::select! {
                biased;
                outcome = &mut running => break Some(outcome),
                step = stopping.next() => if step == StopStep::Abandon {
                    break None;
                },
                Some(command) = commands.recv() => {
                    // What the adapter emitted before this request belongs before it.
                    while let Ok(earlier) = output.try_recv() {
                        relay(hub, &mut store, earlier);
                    }
                    answer(hub, command, stopping.cause().is_some());
                }
                Some(output) = output.recv() => relay(hub, &mut store, output),
            }
        }
    };
    drop(session);
    // What the adapter emitted before it returned still goes out, within a bound: a task
    // it left behind could hold its emitter open.
    let drain = async {
        while let Some(output) = output.recv().await {
            relay(hub, &mut store, output);
        }
    };
    if tokio::time::timeout(CANCEL_GRACE, drain).await.is_err() {
        warn!("the adapter's output did not end after it returned; leaving the rest");
    }
    stopping.end(outcome).0
}

fn answer(hub: &Hub, command: Command, stopping: bool) {
    // The front may have gone (the caller hung up): then nobody needs the answer.
    match command {
        Command::Start(_, reply) if stopping => {
            let _answered =
                reply.send(Err(Refused::Closed(String::from("the runner is stopping"))));
        }
        Command::Start(request, reply) => {
            // Unanswered, the initiator is dropped here and the run's buffer released.
            let _answered = reply.send(hub.start_run(&request).map(Initiator));
        }
        Command::Interrupt(reply) => {
            let _answered = reply.send(hub.interrupt());
        }
    }
}

fn relay(hub: &Hub, store: &mut ContinuationFile, output: SessionOutput) {
    match output {
        SessionOutput::Event(event) => hub.event(event),
        SessionOutput::Store(stored) => store.save(&stored.key, &stored.value),
    }
}
