//! The AG-UI front: the same adapter, behind an HTTP server instead of the backend's
//! WebSocket.
//!
//! The platform's newer runners are HTTP servers that stream AG-UI events over SSE. With
//! `AGUI_LISTEN` (or `--serve`) set, a runner binary runs its session through
//! [`ambient_host::run`] with this crate's front: the host prepares the workspace as
//! usual and starts the adapter once, in interactive mode, and the front serves:
//!
//! | route | what it does |
//! |---|---|
//! | `GET /health` | `200 {"status":"ok","session_id":…}` once runs are taken; `503` while starting or after the end. No token. |
//! | `GET /capabilities` | the platform's capabilities fields, and AG-UI's under `ag_ui` |
//! | `POST /run` (or `POST /`) | a `RunAgentInput`; answers `200` at once with the run's AG-UI events as SSE, each with an `id:`; a run asked for while another is open (or while the session starts) waits for it |
//! | `GET /runs/{run_id}/events` | the run's events after `Last-Event-ID`, then the rest of the run live |
//! | `POST /interrupt` | stops the open run's turn; the run ends with the `cancelled` outcome |
//! | `GET /events/{thread_id}` (and `…/wait`) | what the agent says between runs, as a run of its own; a heartbeat comment every 30 s |
//! | `POST /model`, `POST /feedback` | the model switched between runs (where the framework's model is the runner's); feedback as the `RAW` event the backend stores |
//! | `/repos/add`, `/repos/remove`, `GET /repos/status`, `POST /workflow` | the workspace changed through the host's workspace code |
//! | `/content/…` | the workspace file API, confined to the workspace ([`content`]), and its git views |
//! | `GET /metrics` | the session's figures in Prometheus' text format ([`metrics`]) |
//!
//! `docs/platform-contract.md` says, route by route, how these meet the platform's
//! backend and UI.
//!
//! With `INITIAL_PROMPT`, the first prompt is posted to the platform's backend
//! ([`initial_prompt`]), which runs it like any message.
//!
//! Every route but `/health` needs the token in `AGUI_TOKEN`, as `X-Ambient-Session-Token`
//! (the platform's backend) or `Authorization: Bearer` (the scheme in any case). Every event comes
//! scrubbed by the host's [`Redactor`](ambient_host::Redactor), as frames do in WebSocket mode, and every error
//! message goes through it too.
//!
//! A run is one turn of the adapter ([`hub`]). Its events are numbered and kept in a
//! bounded buffer (`AGUI_REPLAY_EVENTS` per run, the last few runs), so a client that
//! reconnects with `Last-Event-ID` gets every event after it, without gaps or repeats, or
//! `410 Gone` naming what is still kept. Values an adapter keeps for a later session (a
//! thread id, a CLI session id) go to `.ambient-runner/continuation.json` in the
//! workspace, so that a restarted pod resumes the same conversation.

pub mod content;
mod continuation;
mod front;
pub mod http;
pub mod hub;
pub mod initial_prompt;
pub mod metrics;
pub mod request;
pub mod server;
mod tasks;
mod workspace_routes;

use std::{net::SocketAddr, sync::Arc};

use ambient_adapter::{Adapter, CancellationToken, Mode};
use ambient_host::{
    HostConfig, RunnerExit,
    config::{CheckoutLayout, ConfigError},
};
use ambient_protocol::Secret;
use tokio::sync::mpsc;
use tracing::info;

use crate::{front::ServeFront, hub::Hub};

/// The variables of the serve mode.
pub mod env {
    /// The address to serve on (`host:port`; port 0 picks a free one).
    pub const AGUI_LISTEN: &str = "AGUI_LISTEN";
    /// The bearer token callers present.
    pub const AGUI_TOKEN: &str = "AGUI_TOKEN";
    /// Events kept per run for replay.
    pub const AGUI_REPLAY_EVENTS: &str = "AGUI_REPLAY_EVENTS";
    /// Connections open at once.
    pub const AGUI_MAX_CONNECTIONS: &str = "AGUI_MAX_CONNECTIONS";
    /// The port the platform's operator gives its runner (the address is `AGUI_HOST`).
    pub const AGUI_PORT: &str = "AGUI_PORT";
    /// The host part of the address, with `AGUI_PORT`.
    pub const AGUI_HOST: &str = "AGUI_HOST";
    /// Set `true` by the platform's operator for a runner it reaches over AG-UI.
    pub const USE_AGUI: &str = "USE_AGUI";
    /// The browser origins allowed to call the runner (CORS), comma-separated.
    pub const AGUI_CORS_ORIGINS: &str = "AGUI_CORS_ORIGINS";
    /// The session's first prompt, posted to the backend as a hidden user message.
    pub const INITIAL_PROMPT: &str = "INITIAL_PROMPT";
    /// `true` when the pod resumes a session: its first prompt was sent already.
    pub const IS_RESUME: &str = "IS_RESUME";
    /// Seconds to wait before posting the first prompt.
    pub const INITIAL_PROMPT_DELAY_SECONDS: &str = "INITIAL_PROMPT_DELAY_SECONDS";
    /// The session's project, as the platform's operator names it.
    pub const PROJECT_NAME: &str = "PROJECT_NAME";
    /// Whether a run stops when the client that started it leaves before its end.
    pub const AGUI_ABORT_ON_DISCONNECT: &str = "AGUI_ABORT_ON_DISCONNECT";
}

/// The port the platform's runner serves on when `AGUI_PORT` does not say.
pub const DEFAULT_AGUI_PORT: u16 = 8001;

/// Events kept per run when `AGUI_REPLAY_EVENTS` does not say.
const DEFAULT_REPLAY_EVENTS: usize = 4096;
/// The shortest token accepted: anything shorter is guessable.
const MIN_TOKEN_LEN: usize = 16;

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
    /// Connections open at once; at the cap, the oldest idle one makes room for a new
    /// one [default: 256]. Read only in the serve mode.
    #[arg(long = "serve-max-connections", env = env::AGUI_MAX_CONNECTIONS)]
    pub max_connections: Option<String>,
    /// The port to serve on, as the platform's operator sets it [default: 8001]; with
    /// AGUI_HOST, the address when AGUI_LISTEN is not set.
    #[arg(long = "serve-port", env = env::AGUI_PORT)]
    pub port: Option<String>,
    /// The host to serve on with AGUI_PORT [default: 0.0.0.0].
    #[arg(long = "serve-host", env = env::AGUI_HOST)]
    pub host: Option<String>,
    /// Serve AG-UI, as the platform's operator asks of its runners (`true`); without
    /// WEBSOCKET_URL, AGUI_PORT alone asks the same.
    #[arg(long = "use-agui", env = env::USE_AGUI)]
    pub use_agui: Option<String>,
    /// Browser origins allowed to call the runner (CORS), comma-separated, each
    /// `scheme://host[:port]` [default: none].
    #[arg(long = "serve-cors-origins", env = env::AGUI_CORS_ORIGINS)]
    pub cors_origins: Option<String>,
    /// The session's first prompt: posted to the backend (BACKEND_API_URL, with
    /// BOT_TOKEN) as a hidden user message, which the backend runs like any other.
    #[arg(long = "initial-prompt", env = env::INITIAL_PROMPT)]
    pub initial_prompt: Option<String>,
    /// `true`: this pod resumes the session, and its first prompt is not sent again.
    #[arg(long = "is-resume", env = env::IS_RESUME)]
    pub is_resume: Option<String>,
    /// Seconds to wait before posting the first prompt [default: 2].
    #[arg(long = "initial-prompt-delay", env = env::INITIAL_PROMPT_DELAY_SECONDS)]
    pub initial_prompt_delay: Option<String>,
    /// The session's project, for the backend's URL [default: AGENTIC_SESSION_NAMESPACE].
    #[arg(long = "project-name", env = env::PROJECT_NAME)]
    pub project_name: Option<String>,
    /// Stop a run when the client that started it leaves before its end, as the
    /// platform's runner does (`true`); `false` lets it run on, for a client that comes
    /// back with Last-Event-ID [default: true].
    #[arg(long = "serve-abort-on-disconnect", env = env::AGUI_ABORT_ON_DISCONNECT)]
    pub abort_on_disconnect: Option<String>,
}

/// What `/capabilities` says about the agent: AG-UI's capabilities, and the fields the
/// platform's backend and UI read (`framework`, `agent_features`, `file_system`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeIdentity {
    /// The runner's name (`claude-runner`).
    pub name: String,
    /// The framework it runs, as the platform's runner registry names it
    /// (`claude-agent-sdk`, `langgraph`): the UI finds the runner type by it.
    pub framework: String,
    /// The runner's version.
    pub version: String,
    /// Whether runs can end on a question (the interrupt outcome) and resume.
    pub interrupts: bool,
    /// What the agent does, in the platform's words (`agentic_chat`,
    /// `backend_tool_rendering`, `shared_state`, `human_in_the_loop`, `thinking`).
    pub agent_features: Vec<String>,
    /// Whether the agent works on the workspace's files (the UI's file panel).
    pub file_system: bool,
    /// Whether the agent takes MCP servers.
    pub mcp: bool,
    /// Whether a restarted pod goes on with the same conversation.
    pub session_persistence: bool,
    /// The model the agent is set to, when the runner sets one.
    pub model: Option<String>,
    /// Whether `/model` can switch it between runs.
    pub switches_model: bool,
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
    /// The port's bounds.
    pub limits: server::ServerLimits,
    /// The browser origins allowed to call (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// The first prompt to post to the backend once runs are taken
    /// ([`ServeArgs::initial_prompt`]).
    pub initial_prompt: Option<initial_prompt::InitialPrompt>,
    /// Whether a run stops when the client that started it leaves before its end.
    pub abort_on_disconnect: bool,
}

impl ServeArgs {
    /// Whether the serve mode was asked for: `AGUI_LISTEN`, or (the platform's operator
    /// sets no `WEBSOCKET_URL`) `USE_AGUI=true` or an `AGUI_PORT`.
    pub fn is_on(&self, has_websocket_url: bool) -> bool {
        let set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.trim().is_empty());
        let asked = self
            .use_agui
            .as_deref()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        set(&self.listen) || (!has_websocket_url && (asked || set(&self.port)))
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
        let listen = match self.listen.as_deref().map(str::trim) {
            Some(listen) if !listen.is_empty() => {
                listen
                    .parse::<SocketAddr>()
                    .map_err(|error| ConfigError::Invalid {
                        variable: env::AGUI_LISTEN,
                        why: format!("expected host:port, like 0.0.0.0:8000 ({error})"),
                    })?
            }
            _ => {
                let port = match self.port.as_deref().map(str::trim) {
                    None | Some("") => DEFAULT_AGUI_PORT,
                    Some(text) => text.parse::<u16>().map_err(|_| ConfigError::Invalid {
                        variable: env::AGUI_PORT,
                        why: format!("`{text}` is not a port"),
                    })?,
                };
                let host = self
                    .host
                    .as_deref()
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .unwrap_or("0.0.0.0");
                let ip =
                    host.parse::<std::net::IpAddr>()
                        .map_err(|error| ConfigError::Invalid {
                            variable: env::AGUI_HOST,
                            why: format!("`{host}` is not an IP address ({error})"),
                        })?;
                SocketAddr::new(ip, port)
            }
        };
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
        let max_connections = match self.max_connections.as_deref().map(str::trim) {
            None | Some("") => server::DEFAULT_MAX_CONNECTIONS,
            Some(text) => match text.parse::<usize>() {
                Ok(count) if count >= 4 => count,
                _ => {
                    return Err(ConfigError::Invalid {
                        variable: env::AGUI_MAX_CONNECTIONS,
                        why: format!("`{text}` is not a number of connections of 4 or more"),
                    });
                }
            },
        };
        let abort_on_disconnect = match self.abort_on_disconnect.as_deref().map(str::trim) {
            None | Some("") => true,
            Some(text) if text.eq_ignore_ascii_case("true") || text == "1" => true,
            Some(text) if text.eq_ignore_ascii_case("false") || text == "0" => false,
            Some(text) => {
                return Err(ConfigError::Invalid {
                    variable: env::AGUI_ABORT_ON_DISCONNECT,
                    why: format!("`{text}` is not true or false"),
                });
            }
        };
        let mut cors_origins = Vec::new();
        for origin in self.cors_origins.as_deref().unwrap_or_default().split(',') {
            let origin = origin.trim().trim_end_matches('/');
            if origin.is_empty() {
                continue;
            }
            let well_formed = origin.split_once("://").is_some_and(|(scheme, host)| {
                matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/')
            });
            if !well_formed {
                return Err(ConfigError::Invalid {
                    variable: env::AGUI_CORS_ORIGINS,
                    why: format!("`{origin}` is not an origin like https://app.example.com"),
                });
            }
            cors_origins.push(origin.to_owned());
        }
        Ok(ServeSettings {
            listen,
            token: Secret::new(token),
            replay_events,
            cors_origins,
            initial_prompt: None,
            abort_on_disconnect,
            limits: server::ServerLimits {
                max_connections,
                ..server::ServerLimits::default()
            },
        })
    }
}

/// Serves `adapter`'s session until it ends, the session times out, or `shutdown` fires.
///
/// `config` is the host's (with `SESSION_ID` defaulting to [`DEFAULT_SESSION`]); the
/// serve token joins what its redactor scrubs.
pub async fn serve<A: Adapter>(
    settings: ServeSettings,
    mut config: HostConfig,
    identity: ServeIdentity,
    adapter: A,
    shutdown: CancellationToken,
) -> RunnerExit {
    if let Err(error) = config.redactor.learn(&settings.token) {
        tracing::error!(%error, "{} cannot be scrubbed, so it is not used", env::AGUI_TOKEN);
        return RunnerExit::ConfigError;
    }
    let redactor = config.redactor.clone();
    // A run is one turn: the session converses, and its prompts come as runs.
    config.mode = Mode::Interactive;
    config.prompt = String::new();
    // The AG-UI platform's pods and UI keep repositories in `repos/`.
    config.workspace_settings.layout = CheckoutLayout::ReposFolder;
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, address = %settings.listen, "{} cannot be served on", env::AGUI_LISTEN);
            return RunnerExit::ConfigError;
        }
    };
    let address = listener.local_addr().unwrap_or(settings.listen);
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let abandon = settings.abort_on_disconnect.then(|| commands_tx.clone());
    let hub = Arc::new(Hub::new(redactor.clone(), settings.replay_events));
    let handlers = http::Front {
        hub: Arc::clone(&hub),
        commands: commands_tx,
        token: settings.token.clone(),
        redactor,
        model: Arc::new(std::sync::Mutex::new(identity.model.clone())),
        identity: Arc::new(identity),
        replay_events: settings.replay_events,
        session_id: config.session_id.clone(),

        workspace: match config.agent.agent_user {
            Some(user) => {
                content::Workspace::new(config.workspace.clone()).owned_by(user.uid, user.gid)
            }
            None => content::Workspace::new(config.workspace.clone()),
        },
        git: Arc::new(config.workspace_settings.git.clone()),
        layout: config.workspace_settings.layout,
        waiting_for_start: Arc::new(tokio::sync::Semaphore::new(http::WAITING_FOR_START_KIB)),
        cors_origins: Arc::new(settings.cors_origins.clone()),
        callers_tokens: Arc::default(),
    };
    let server_stop = CancellationToken::new();
    let server = tokio::spawn(server::serve(
        listener,
        http::router(handlers),
        settings.limits,
        server_stop.clone(),
    ));
    info!(%address, "serving AG-UI; preparing the session");
    let mut front = ServeFront::new(
        hub,
        commands,
        &config,
        address,
        front::Server {
            stop: server_stop,
            task: server,
        },
    );
    front.abandon = abandon;
    front.initial_prompt = settings
        .initial_prompt
        .map(|prompt| (prompt, config.redactor.clone()));
    let report = Box::pin(ambient_host::run(config, front, adapter, shutdown)).await;
    report.exit()
}

/// The session's name when `SESSION_ID` does not give one.
pub const DEFAULT_SESSION: &str = "ag-ui-session";

#[cfg(test)]
mod operator_tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use super::ServeArgs;

    fn args(listen: Option<&str>, port: Option<&str>, use_agui: Option<&str>) -> ServeArgs {
        ServeArgs {
            listen: listen.map(str::to_owned),
            token: Some(String::from("a-token-of-16-chars-or-more")),
            replay_events: None,
            max_connections: None,
            port: port.map(str::to_owned),
            host: None,
            use_agui: use_agui.map(str::to_owned),
            cors_origins: None,
            initial_prompt: None,
            is_resume: None,
            initial_prompt_delay: None,
            project_name: None,
            abort_on_disconnect: None,
        }
    }

    #[test]
    fn the_operators_variables_serve_unless_a_websocket_url_says_otherwise() {
        // The platform's operator: USE_AGUI and AGUI_PORT, no WEBSOCKET_URL.
        assert!(args(None, Some("8001"), Some("true")).is_on(false));
        assert!(args(None, None, Some("TRUE")).is_on(false));
        assert!(args(None, Some("9000"), None).is_on(false));
        // The WebSocket mode stays what it is when WEBSOCKET_URL is set.
        assert!(!args(None, Some("8001"), Some("true")).is_on(true));
        assert!(!args(None, None, Some("false")).is_on(false));
        // AGUI_LISTEN always serves.
        assert!(args(Some("127.0.0.1:0"), None, None).is_on(true));
        let settings = args(None, None, Some("true")).into_settings().unwrap();
        assert_eq!(settings.listen.to_string(), "0.0.0.0:8001");
        let bad = args(None, Some("eighty"), Some("true"))
            .into_settings()
            .unwrap_err();
        assert!(bad.to_string().contains("AGUI_PORT"), "{bad}");
        let mut cors = args(None, None, Some("true"));
        cors.cors_origins = Some(String::from(
            "https://app.example.com/, http://localhost:3000",
        ));
        assert_eq!(
            cors.clone().into_settings().unwrap().cors_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        cors.cors_origins = Some(String::from("app.example.com/path"));
        let bad = cors.into_settings().unwrap_err();
        assert!(bad.to_string().contains("AGUI_CORS_ORIGINS"), "{bad}");
    }
}
