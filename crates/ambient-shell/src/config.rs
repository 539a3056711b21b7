//! The runner's configuration: every setting typed, with the environment variable each
//! comes from (`platform-wire.md` §2).
//!
//! [`RunnerArgs`] is the clap form the binaries flatten into their own arguments (a flag
//! overrides its variable); [`RunnerArgs::into_config`] validates it into a
//! [`RunnerConfig`], naming the variable in every error.

use std::{path::PathBuf, time::Duration};

use ambient_adapter::Mode;
use ambient_protocol::Secret;
use ambient_status::Endpoints;
use ambient_transport::{BackoffPolicy, Keepalive, TokenSource};

/// The names of the environment variables the shell reads.
pub mod env {
    /// The session (custom resource) name.
    pub const SESSION_ID: &str = "SESSION_ID";
    /// The backend's WebSocket endpoint for this session.
    pub const WEBSOCKET_URL: &str = "WEBSOCKET_URL";
    /// The bearer token.
    pub const BOT_TOKEN: &str = "BOT_TOKEN";
    /// A file holding the bearer token, read again before each reconnect.
    pub const BOT_TOKEN_FILE: &str = "BOT_TOKEN_FILE";
    /// The backend's API base URL (`…/api`).
    pub const BACKEND_API_URL: &str = "BACKEND_API_URL";
    /// The project (namespace) of the session.
    pub const AGENTIC_SESSION_NAMESPACE: &str = "AGENTIC_SESSION_NAMESPACE";
    /// The project, as the Python runner's fallback named it.
    pub const PROJECT_NAME: &str = "PROJECT_NAME";
    /// The initial prompt.
    pub const PROMPT: &str = "PROMPT";
    /// Chat mode.
    pub const INTERACTIVE: &str = "INTERACTIVE";
    /// The workspace root.
    pub const WORKSPACE_PATH: &str = "WORKSPACE_PATH";
    /// The session timeout, in seconds.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// The session this one continues.
    pub const PARENT_SESSION_ID: &str = "PARENT_SESSION_ID";
}

/// The prompt a batch session runs when it is given none, as the Python runner does.
pub const DEFAULT_PROMPT: &str = "Hello! How can I help you today?";

/// The workspace root when none is configured, as the Python runner defaults it.
pub const DEFAULT_WORKSPACE: &str = "/workspace";

/// The shell's settings as command-line flags, each backed by its environment variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunnerArgs {
    /// The session (custom resource) name.
    #[arg(long, env = env::SESSION_ID)]
    pub session_id: Option<String>,
    /// The backend's WebSocket URL for this session.
    #[arg(long, env = env::WEBSOCKET_URL)]
    pub websocket_url: Option<String>,
    /// The bearer token for the backend.
    #[arg(long, env = env::BOT_TOKEN, hide_env_values = true)]
    pub bot_token: Option<String>,
    /// A file holding the bearer token; read again before every reconnect.
    #[arg(long, env = env::BOT_TOKEN_FILE)]
    pub bot_token_file: Option<PathBuf>,
    /// The backend's API base URL; derived from the WebSocket URL when absent.
    #[arg(long, env = env::BACKEND_API_URL)]
    pub backend_api_url: Option<String>,
    /// The session's project (namespace).
    #[arg(long, env = env::AGENTIC_SESSION_NAMESPACE)]
    pub project: Option<String>,
    /// The initial prompt.
    #[arg(long, env = env::PROMPT)]
    pub prompt: Option<String>,
    /// Converse until the session is ended, instead of running one prompt.
    #[arg(long, env = env::INTERACTIVE, value_parser = parse_truthy, num_args = 0..=1, default_missing_value = "true")]
    pub interactive: Option<bool>,
    /// The workspace root [default: /workspace].
    #[arg(long, env = env::WORKSPACE_PATH)]
    pub workspace: Option<PathBuf>,
    /// Seconds after which the session fails as timed out.
    #[arg(long, env = env::TIMEOUT, value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// The session this one continues.
    #[arg(long, env = env::PARENT_SESSION_ID)]
    pub parent_session_id: Option<String>,
    /// Credentials the runner may hold; each is redacted from everything it sends.
    #[command(flatten)]
    pub secrets: SecretArgs,
}

/// Credentials from the environment. Each one the runner holds is scrubbed from every
/// frame, status body and log line, whether or not this runner uses it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecretArgs {
    /// GitHub token for git and pull requests.
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,
    /// GitLab token for git.
    #[arg(long, env = "GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Option<String>,
    /// Anthropic API key, for the Claude Code CLI.
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    pub anthropic_api_key: Option<String>,
    /// LangGraph Server API key.
    #[arg(long, env = "LANGGRAPH_API_KEY", hide_env_values = true)]
    pub langgraph_api_key: Option<String>,
    /// Langfuse secret key (observability).
    #[arg(long, env = "LANGFUSE_SECRET_KEY", hide_env_values = true)]
    pub langfuse_secret_key: Option<String>,
}

impl SecretArgs {
    fn values(&self) -> Vec<Secret> {
        [
            &self.github_token,
            &self.gitlab_token,
            &self.anthropic_api_key,
            &self.langgraph_api_key,
            &self.langfuse_secret_key,
        ]
        .into_iter()
        .flatten()
        .filter(|v| !v.trim().is_empty())
        .map(|v| Secret::new(v.as_str()))
        .collect()
    }
}

/// `1`, `true`, `yes` (any case) are true; `0`, `false`, `no` and the empty string false.
fn parse_truthy(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "" | "0" | "false" | "no" => Ok(false),
        _ => Err(String::from("expected one of 1, true, yes, 0, false, no")),
    }
}

/// Whole seconds; 0 means no timeout.
fn parse_timeout(value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| String::from("expected a whole number of seconds"))
}

/// A setting that is missing or wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is absent.
    #[error("{variable} is not set: {why}")]
    Missing {
        /// The environment variable (or flag) that must be given.
        variable: &'static str,
        /// What it is needed for.
        why: &'static str,
    },
    /// A setting has a value that cannot be used.
    #[error("{variable} is invalid: {why}")]
    Invalid {
        /// The environment variable (or flag).
        variable: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// The validated configuration of one session.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The session name.
    pub session_id: String,
    /// The WebSocket URL.
    pub websocket_url: String,
    /// Where the bearer token comes from.
    pub token: TokenSource,
    /// The HTTP endpoints of the session.
    pub endpoints: Endpoints,
    /// The initial prompt (empty when none).
    pub prompt: String,
    /// Batch or interactive.
    pub mode: Mode,
    /// The workspace root.
    pub workspace: PathBuf,
    /// When the session fails as timed out.
    pub timeout: Option<Duration>,
    /// The session this one continues.
    pub parent_session_id: Option<String>,
    /// How long the backend may be unreachable before the runner gives up.
    pub backend_deadline: Duration,
    /// Pings and dead-peer detection on the WebSocket.
    pub keepalive: Keepalive,
    /// Delays between connection attempts.
    pub backoff: BackoffPolicy,
    /// Every credential the runner holds, for redaction.
    pub secrets: Vec<Secret>,
}

impl RunnerConfig {
    /// The redactor for everything this runner sends.
    pub fn redactor(&self) -> crate::Redactor {
        crate::Redactor::new(&self.secrets)
    }

    /// The bearer token, when it is given inline (for the HTTP client).
    pub fn static_token(&self) -> Option<Secret> {
        match &self.token {
            TokenSource::Static(secret) => Some(secret.clone()),
            TokenSource::File(_) | TokenSource::None => None,
        }
    }
}

impl RunnerArgs {
    /// Every credential these settings carry: for a redactor set up before the settings
    /// are validated (the one that guards the log).
    pub fn secret_values(&self) -> Vec<Secret> {
        let mut secrets = self.secrets.values();
        secrets.extend(
            self.bot_token
                .iter()
                .filter(|t| !t.trim().is_empty())
                .map(|t| Secret::new(t.as_str())),
        );
        if let Some(current) = self
            .bot_token_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
        {
            secrets.push(Secret::new(current.trim()));
        }
        secrets
    }

    /// Validates the settings.
    pub fn into_config(self) -> Result<RunnerConfig, ConfigError> {
        let secrets = self.secret_values();
        let non_empty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        let session_id = non_empty(self.session_id).ok_or(ConfigError::Missing {
            variable: env::SESSION_ID,
            why: "the runner must know which session it runs",
        })?;
        let websocket_url = non_empty(self.websocket_url).ok_or(ConfigError::Missing {
            variable: env::WEBSOCKET_URL,
            why: "the runner must know where the backend is",
        })?;
        if !(websocket_url.starts_with("ws://") || websocket_url.starts_with("wss://")) {
            return Err(ConfigError::Invalid {
                variable: env::WEBSOCKET_URL,
                why: String::from("expected a ws:// or wss:// URL"),
            });
        }
        let token = match (non_empty(self.bot_token), self.bot_token_file) {
            (_, Some(path)) => TokenSource::File(path),
            (Some(token), None) => TokenSource::Static(Secret::new(token)),
            (None, None) => TokenSource::None,
        };
        let endpoints = match non_empty(self.backend_api_url) {
            Some(base) => {
                let project = non_empty(self.project)
                    .or_else(|| Endpoints::from_websocket_url(&websocket_url).map(|e| e.project))
                    .ok_or(ConfigError::Missing {
                        variable: env::AGENTIC_SESSION_NAMESPACE,
                        why: "the project is needed to build the status URL",
                    })?;
                Endpoints::new(&base, project, session_id.clone()).map_err(|_| ConfigError::Invalid {
                    variable: env::BACKEND_API_URL,
                    why: String::from("expected an http:// or https:// URL"),
                })?
            }
            None => Endpoints::from_websocket_url(&websocket_url).ok_or(ConfigError::Invalid {
                variable: env::WEBSOCKET_URL,
                why: format!(
                    "the status URL cannot be derived from it (no /projects/…/sessions/… path); set {}",
                    env::BACKEND_API_URL
                ),
            })?,
        };
        Ok(RunnerConfig {
            session_id,
            websocket_url,
            token,
            endpoints,
            prompt: self.prompt.unwrap_or_default(),
            mode: if self.interactive.unwrap_or(false) {
                Mode::Interactive
            } else {
                Mode::Batch
            },
            workspace: self
                .workspace
                .unwrap_or_else(|| PathBuf::from(DEFAULT_WORKSPACE)),
            timeout: self.timeout.filter(|t| !t.is_zero()),
            parent_session_id: non_empty(self.parent_session_id),
            backend_deadline: Duration::from_secs(300),
            keepalive: Keepalive::default(),
            backoff: BackoffPolicy::default(),
            secrets,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        runner: RunnerArgs,
    }

    /// Parses `args` (environment variables are given as flags of the same meaning) and
    /// checks the outcome: the error text, or a summary of the configuration.
    #[track_caller]
    fn check(args: &[&str], expect: &str) {
        let parsed = Cli::try_parse_from(std::iter::once("runner").chain(args.iter().copied()));
        let got = match parsed {
            Err(error) => format!("usage: {}", error.kind()),
            Ok(cli) => match cli.runner.into_config() {
                Err(error) => format!("error: {error}"),
                Ok(config) => format!(
                    "status={} mode={:?} timeout={:?}",
                    config
                        .endpoints
                        .status_url()
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                    config.mode,
                    config.timeout
                ),
            },
        };
        assert_eq!(got, expect);
    }

    const WS: &str = "--websocket-url=ws://backend:8080/api/projects/p1/sessions/s1/ws";

    #[test]
    fn settings_are_validated_and_errors_name_the_variable() {
        check(
            &[WS],
            "error: SESSION_ID is not set: the runner must know which session it runs",
        );
        check(
            &["--session-id=s1"],
            "error: WEBSOCKET_URL is not set: the runner must know where the backend is",
        );
        check(
            &["--session-id=s1", "--websocket-url=http://backend/ws"],
            "error: WEBSOCKET_URL is invalid: expected a ws:// or wss:// URL",
        );
        check(
            &[
                "--session-id=s1",
                "--websocket-url=ws://backend:8080/session/ws",
            ],
            "error: WEBSOCKET_URL is invalid: the status URL cannot be derived from it (no /projects/…/sessions/… path); set BACKEND_API_URL",
        );
        check(
            &["--session-id=s1", WS],
            "status=http://backend:8080/api/projects/p1/agentic-sessions/s1/status mode=Batch timeout=None",
        );
        check(
            &[
                "--session-id=s1",
                WS,
                "--backend-api-url=http://api.internal/api",
                "--project=team",
            ],
            "status=http://api.internal/api/projects/team/agentic-sessions/s1/status mode=Batch timeout=None",
        );
        check(
            &["--session-id=s1", WS, "--backend-api-url=nope"],
            "error: BACKEND_API_URL is invalid: expected an http:// or https:// URL",
        );
        check(
            &["--session-id=s1", WS, "--interactive=YES", "--timeout=300"],
            "status=http://backend:8080/api/projects/p1/agentic-sessions/s1/status mode=Interactive timeout=Some(300s)",
        );
        check(
            &["--session-id=s1", WS, "--interactive", "--timeout=0"],
            "status=http://backend:8080/api/projects/p1/agentic-sessions/s1/status mode=Interactive timeout=None",
        );
        check(
            &["--session-id=s1", WS, "--interactive=maybe"],
            "usage: invalid value for one of the arguments",
        );
        check(
            &["--session-id=s1", WS, "--timeout=soon"],
            "usage: invalid value for one of the arguments",
        );
    }
}
