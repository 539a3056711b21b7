//! The WebSocket front: a session of the original platform, whose backend the runner
//! dials.
//!
//! [`run_session`] runs one session through [`ambient_host::run`] with a
//! [`WebSocketFront`]: the front connects the transport, says the session started, reads
//! the session's phase and the continued session's annotations, writes the `Running`
//! status, relays the host's items as frames (kept in the transport's outbox until the
//! backend echoes them), turns the backend's messages into input for the adapter,
//! delivering each once across reconnects (its inbox), keeps continuation values as
//! annotations, and at the end sends the lifecycle frame, flushes, and writes the final
//! status before the socket closes.
//!
//! Everything else (the workspace, redaction, the prompt, the stop, the exit decision) is
//! the host's. This crate reads no environment: its settings come from the same
//! [`RunnerArgs`] the binaries parse.

mod front;
mod inbox;

use std::time::Duration;

use ambient_adapter::Adapter;
use ambient_host::{
    HostConfig, Redactor, RunnerArgs, SessionReport,
    config::{ConfigError, env},
};
use ambient_protocol::Secret;
use ambient_status::Endpoints;
use ambient_transport::{BackoffPolicy, Keepalive, TokenSource};
use tokio_util::sync::CancellationToken;

pub use front::WebSocketFront;

/// The WebSocket front's settings.
#[derive(Debug, Clone)]
pub struct WebSocketSettings {
    /// The WebSocket URL.
    pub url: String,
    /// Where the bearer token comes from.
    pub token: TokenSource,
    /// The HTTP endpoints of the session.
    pub endpoints: Endpoints,
    /// How long the backend may be unreachable before the runner gives up.
    pub backend_deadline: Duration,
    /// Pings and dead-peer detection on the WebSocket.
    pub keepalive: Keepalive,
    /// Delays between connection attempts.
    pub backoff: BackoffPolicy,
}

impl WebSocketSettings {
    /// The bearer token, when it is given inline (for the HTTP client).
    pub fn static_token(&self) -> Option<Secret> {
        match &self.token {
            TokenSource::Static(secret) => Some(secret.clone()),
            TokenSource::File(_) | TokenSource::None => None,
        }
    }
}

/// A WebSocket session's whole configuration: the host's and the front's.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// What every front shares.
    pub host: HostConfig,
    /// The WebSocket front's own.
    pub websocket: WebSocketSettings,
}

impl RunnerConfig {
    /// Validates the settings of a session in WebSocket mode; each error names its
    /// variable. `redactor` is the process's (see [`RunnerArgs::host_config`]).
    pub fn from_args(args: &RunnerArgs, redactor: Redactor) -> Result<Self, ConfigError> {
        let host = args.host_config(None, redactor)?;
        let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
        let url = non_empty(&args.websocket_url).ok_or(ConfigError::Missing {
            variable: env::WEBSOCKET_URL,
            why: "the runner must know where the backend is",
        })?;
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(ConfigError::Invalid {
                variable: env::WEBSOCKET_URL,
                why: String::from("expected a ws:// or wss:// URL"),
            });
        }
        let token = match (non_empty(&args.bot_token), &args.bot_token_file) {
            (_, Some(path)) => TokenSource::File(path.clone()),
            (Some(token), None) => TokenSource::Static(Secret::new(token)),
            (None, None) => TokenSource::None,
        };
        let endpoints = match non_empty(&args.backend_api_url) {
            Some(base) => {
                let project = non_empty(&args.project)
                    .or_else(|| Endpoints::from_websocket_url(&url).map(|e| e.project))
                    .ok_or(ConfigError::Missing {
                        variable: env::AGENTIC_SESSION_NAMESPACE,
                        why: "the project is needed to build the status URL",
                    })?;
                Endpoints::new(&base, project, host.session_id.clone()).map_err(|_| {
                    ConfigError::Invalid {
                        variable: env::BACKEND_API_URL,
                        why: String::from("expected an http:// or https:// URL"),
                    }
                })?
            }
            None => Endpoints::from_websocket_url(&url).ok_or(ConfigError::Invalid {
                variable: env::WEBSOCKET_URL,
                why: format!(
                    "the status URL cannot be derived from it (no /projects/…/sessions/… path); set {}",
                    env::BACKEND_API_URL
                ),
            })?,
        };
        Ok(Self {
            host,
            websocket: WebSocketSettings {
                url,
                token,
                endpoints,
                backend_deadline: Duration::from_secs(300),
                keepalive: Keepalive::default(),
                backoff: BackoffPolicy::default(),
            },
        })
    }
}

/// Runs one session with `adapter` against the backend `config` names, to its end.
///
/// `shutdown` is the process's stop signal (SIGTERM, SIGINT): in whatever phase the
/// session is, the adapter is cancelled (or the phase given up), what it emitted is
/// flushed, and the status is settled without leaving `Stopped`.
///
/// # Cancel safety
///
/// Not cancel-safe: dropping it abandons the session without a final status. Use
/// `shutdown` instead.
pub async fn run_session<A: Adapter>(
    config: RunnerConfig,
    adapter: A,
    shutdown: CancellationToken,
) -> SessionReport {
    let front = WebSocketFront::new(&config);
    // Boxed: the whole session's state is large for a caller's stack.
    Box::pin(ambient_host::run(config.host, front, adapter, shutdown)).await
}

#[cfg(test)]
mod tests;
