//! The session's first prompt, sent the way the platform's own runner sends it: not run
//! directly, but posted to the backend as a hidden user message of the session, so that
//! the backend records it and starts the run with it like any other (`POST /` back to
//! this runner). A pod that resumes a session (`IS_RESUME=true`) sends nothing.

use std::time::Duration;

use ambient_backoff::{Backoff, BackoffPolicy};
use ambient_host::{Redactor, RunnerArgs, config::ConfigError};
use ambient_protocol::Secret;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{ServeArgs, env};

/// Tries in all, as the platform's runner makes them.
const ATTEMPTS: u32 = 8;
/// How long one try may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the runner takes runs the prompt is sent, when
/// `INITIAL_PROMPT_DELAY_SECONDS` does not say.
const DEFAULT_DELAY: Duration = Duration::from_secs(2);

/// Where and what to post.
#[derive(Debug, Clone)]
pub struct InitialPrompt {
    /// `…/projects/{project}/agentic-sessions/{session}/agui/run`.
    pub url: String,
    /// The bot token, sent as `Authorization: Bearer`.
    pub token: Secret,
    /// The session, the run's thread.
    pub session_id: String,
    /// The prompt.
    pub prompt: String,
    /// How long to wait first (the backend's listener connects meanwhile).
    pub delay: Duration,
    /// The pause before the second try, doubled for each one after.
    pub retry_delay: Duration,
}

impl ServeArgs {
    /// The initial prompt to post, if this pod has one to send: `INITIAL_PROMPT` set,
    /// not resuming, and the backend's address and token known. Errors name the
    /// variable.
    pub fn initial_prompt(
        &self,
        runner: &RunnerArgs,
        session_id: &str,
    ) -> Result<Option<InitialPrompt>, ConfigError> {
        let Some(prompt) = self
            .initial_prompt
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        else {
            return Ok(None);
        };
        if self
            .is_resume
            .as_deref()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            info!("resuming the session: the initial prompt was sent by the first pod");
            return Ok(None);
        }
        let Some(base) = non_empty_str(runner.backend_api_url.as_deref()) else {
            warn!(
                "INITIAL_PROMPT is set but BACKEND_API_URL is not: the prompt has no backend to go to, and is not sent"
            );
            return Ok(None);
        };
        let project = non_empty_str(self.project_name.as_deref())
            .or(non_empty_str(runner.project.as_deref()))
            .ok_or(ConfigError::Missing {
                variable: env::PROJECT_NAME,
                why: "the initial prompt is posted to the session's project (or AGENTIC_SESSION_NAMESPACE)",
            })?;
        let token = non_empty_str(runner.bot_token.as_deref())
            .map(str::to_owned)
            .or_else(|| {
                runner
                    .bot_token_file
                    .as_ref()
                    .and_then(|path| std::fs::read_to_string(path).ok())
                    .map(|token| token.trim().to_owned())
                    .filter(|token| !token.is_empty())
            })
            .ok_or(ConfigError::Missing {
                variable: ambient_host::config::env::BOT_TOKEN,
                why: "the initial prompt is posted to the backend with the bot token",
            })?;
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                variable: ambient_host::config::env::BACKEND_API_URL,
                why: format!("`{base}` is not an http(s) URL"),
            });
        }
        let segment_ok = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !segment_ok(project) || !segment_ok(session_id) {
            return Err(ConfigError::Invalid {
                variable: env::PROJECT_NAME,
                why: String::from(
                    "the project and session names must be Kubernetes names to make the backend's URL",
                ),
            });
        }
        let delay = match self.initial_prompt_delay.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_DELAY,
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|seconds| seconds.is_finite() && (0.0..=600.0).contains(seconds))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| ConfigError::Invalid {
                    variable: env::INITIAL_PROMPT_DELAY_SECONDS,
                    why: format!("`{text}` is not a number of seconds from 0 to 600"),
                })?,
        };
        Ok(Some(InitialPrompt {
            url: format!(
                "{}/projects/{project}/agentic-sessions/{session_id}/agui/run",
                base.trim_end_matches('/')
            ),
            token: Secret::new(token),
            session_id: session_id.to_owned(),
            prompt: prompt.to_owned(),
            delay,
            retry_delay: Duration::from_secs(2),
        }))
    }
}

/// Whether an answer is worth another try: the backend not ready yet (5xx), the token
/// not yet known to it (401), or the session not yet taking runs.
fn retryable(status: reqwest::StatusCode, body: &str) -> bool {
    status.is_server_error()
        || status == reqwest::StatusCode::UNAUTHORIZED
        || body.contains("not available")
}

/// Posts the prompt (after its delay), trying again on what may pass, until it is taken,
/// refused for good, or `stop` fires. Nothing it logs carries the token; the prompt and
/// the backend's answers go through `redactor`.
pub async fn send(prompt: InitialPrompt, redactor: Redactor, stop: CancellationToken) {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("ambient-runner/", env!("CARGO_PKG_VERSION")))
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if prompt.url.starts_with("http://") {
        // No TLS connection will be made: the system's root certificates are not loaded.
        builder = builder.tls_certs_only([]);
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(error) => {
            warn!(%error, "the initial prompt cannot be sent: no HTTP client");
            return;
        }
    };
    tokio::select! {
        () = stop.cancelled() => return,
        () = tokio::time::sleep(prompt.delay) => {}
    }
    let mut backoff = Backoff::new(BackoffPolicy {
        initial: prompt.retry_delay,
        max: Duration::from_secs(30),
        factor: 2.0,
        reset_after: Duration::MAX,
    });
    for attempt in 1..=ATTEMPTS {
        // A new run id each try, as the platform's runner makes: a try the backend took
        // but did not answer cannot be confused with the next.
        let body = json!({
            "threadId": prompt.session_id,
            "runId": uuid::Uuid::new_v4().to_string(),
            "messages": [{
                "id": uuid::Uuid::new_v4().to_string(),
                "role": "user",
                "content": prompt.prompt,
                "metadata": {"hidden": true, "autoSent": true, "source": "runner_initial_prompt"},
            }],
        });
        let sent = client
            .post(&prompt.url)
            .bearer_auth(prompt.token.expose())
            .json(&body)
            .send()
            .await;
        let why = match sent {
            Ok(response) if response.status().is_success() => {
                info!(attempt, "the initial prompt was sent to the backend");
                return;
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let text: String = redactor.text(&text).chars().take(300).collect();
                if !retryable(status, &text) {
                    warn!(%status, answer = %text, "the backend refused the initial prompt; it is not sent again");
                    return;
                }
                format!("the backend answered {status}: {text}")
            }
            Err(error) => {
                // reqwest's errors name the URL, which carries no secret.
                redactor.text(&error.to_string()).into_owned()
            }
        };
        if attempt == ATTEMPTS {
            warn!(attempts = ATTEMPTS, last = %why, "the initial prompt could not be sent");
            return;
        }
        let delay = backoff.next_delay();
        info!(attempt, ?delay, %why, "the initial prompt was not taken; trying again");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

fn non_empty_str(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}
