//! The runner's HTTP client for the backend's runner-facing API (`platform-wire.md` §4):
//! the status PUT, the annotation PATCH, the session GET, the message history GET and the
//! git token mint.
//!
//! Every call carries the bearer token in a header (never in a URL), has a timeout, and is
//! retried with backoff while its error [is retryable](Error::is_retryable), within a
//! bounded number of attempts and a deadline.
//!
//! This crate does not decide what status to write or when: that is the WebSocket front's (`ambient-websocket`).

mod endpoints;
mod error;
mod history;

use std::{
    future::Future,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use ambient_backoff::{Backoff, BackoffPolicy};
use ambient_protocol::{
    Secret, SessionMessage,
    status::{
        AgenticSession, AnnotationPatch, MessageHistory, MintedToken, PatchAccepted, StatusUpdate,
    },
};
use reqwest::{Method, header};
use serde::{Serialize, de::DeserializeOwned};
use tokio::time::Instant;
use tracing::debug;

pub use endpoints::Endpoints;
pub use error::{Error, HttpError, Result};

/// How a call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts at most, the first included.
    pub attempts: u32,
    /// The first delay between attempts (with jitter); it doubles each time.
    pub initial_delay: Duration,
    /// The largest delay between attempts.
    pub max_delay: Duration,
    /// No attempt starts after this much time since the first.
    pub deadline: Duration,
    /// Time one attempt may take.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            deadline: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    /// Shared by the clones, so that a token read again (rotated) serves them all.
    token: Arc<RwLock<Option<Secret>>>,
    retry: RetryPolicy,
}

impl StatusClient {
    /// A client for one session's endpoints.
    pub fn new(endpoints: Endpoints, token: Option<Secret>, retry: RetryPolicy) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ambient-runner/", env!("CARGO_PKG_VERSION")))
            .timeout(retry.timeout);
        if endpoints.api_base.scheme() == "http" {
            // No TLS connection will be made: the system's root certificates are not
            // loaded (reading them was most of the runner's start-up).
            builder = builder.tls_certs_only([]);
        }
        let http = builder.build().map_err(|source| Error::ClientSetup {
            source: HttpError::new(source),
        })?;
        Ok(Self {
            http,
            endpoints,
            token: Arc::new(RwLock::new(token)),
            retry,
        })
    }

    /// Sends `token` from now on, from this client and its clones: a bot token read again
    /// from its file after the platform rotated it.
    pub fn set_token(&self, token: Option<Secret>) {
        *self.token.write().unwrap_or_else(PoisonError::into_inner) = token;
    }

    /// The same client with another retry policy (a shorter one when the runner is
    /// stopping, say).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The endpoints this client talks to.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// `GET …/agentic-sessions/{name}`: a session resource (ours, or a parent's).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a GET has no effect to lose.
    pub async fn get_session(&self, name: &str) -> Result<AgenticSession> {
        let url = self.endpoints.session_url(name)?;
        self.call(Method::GET, url, None::<&()>, "application/json")
            .await
    }

    /// `PUT …/agentic-sessions/{s}/status`.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have reached the backend.
    pub async fn put_status(&self, update: &StatusUpdate) -> Result<()> {
        let url = self.endpoints.status_url()?;
        let _answer: serde_json::Value = self
            .call(Method::PUT, url, Some(update), "application/json")
            .await?;
        Ok(())
    }

    /// `PATCH …/agentic-sessions/{s}` with a merge patch of annotations.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have reached the backend.
    pub async fn patch_annotations(&self, patch: &AnnotationPatch) -> Result<PatchAccepted> {
        let url = self.endpoints.session_url(&self.endpoints.session)?;
        self.call(
            Method::PATCH,
            url,
            Some(patch),
            "application/merge-patch+json",
        )
        .await
    }

    /// `GET …/sessions/{s}/messages`: everything the backend stored for the session, as
    /// one body (for a short history; [`StatusClient::message_history_kept`] reads a
    /// session's).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn message_history(&self) -> Result<MessageHistory> {
        let url = self.endpoints.messages_url()?;
        self.call(Method::GET, url, None::<&()>, "application/json")
            .await
    }

    /// `GET …/sessions/{s}/messages`, read as it streams: only the messages `keep` (made
    /// afresh for each attempt by `keeper`) takes are kept, up to `max_kept_bytes` of
    /// them, and a message larger than `max_message_bytes` is skipped unread. However long
    /// the history, what is held stays within those bounds.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn message_history_kept<K: FnMut(&SessionMessage) -> bool>(
        &self,
        max_message_bytes: usize,
        max_kept_bytes: usize,
        keeper: impl Fn() -> K,
    ) -> Result<KeptHistory> {
        let url = self.endpoints.messages_url()?;
        self.retrying(&Method::GET, &url, || async {
            let (mut response, path) = self
                .send(Method::GET, url.clone(), None::<&()>, "application/json")
                .await?;
            let mut splitter = history::MessageSplitter::new(max_message_bytes);
            let mut keep = keeper();
            let mut kept = KeptHistory::default();
            let mut kept_bytes = 0;
            let mut take = |piece: history::Piece| match piece {
                history::Piece::TooLarge(_) => kept.skipped += 1,
                history::Piece::Message(json) => {
                    let Ok(message) = serde_json::from_slice::<SessionMessage>(&json) else {
                        return;
                    };
                    if !keep(&message) {
                        return;
                    }
                    if kept_bytes + json.len() > max_kept_bytes {
                        kept.cut = true;
                        return;
                    }
                    kept_bytes += json.len();
                    kept.messages.push(message);
                }
            };
            while let Some(chunk) =
                response
                    .chunk()
                    .await
                    .map_err(|source| Error::RequestFailed {
                        method: "GET",
                        path: path.clone(),
                        source: HttpError::new(source),
                    })?
            {
                splitter
                    .feed(&chunk, &mut take)
                    .map_err(|why| Error::Malformed {
                        path: path.clone(),
                        why,
                    })?;
            }
            Ok(kept)
        })
        .await
    }

    /// `POST …/agentic-sessions/{s}/github/token`: a git token minted for the session.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a token minted and dropped is simply unused.
    pub async fn mint_github_token(&self) -> Result<Secret> {
        let url = self.endpoints.github_token_url()?;
        let minted: MintedToken = self
            .call(
                Method::POST,
                url,
                Some(&serde_json::json!({})),
                "application/json",
            )
            .await?;
        Ok(Secret::new(minted.token))
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&B>,
        content_type: &'static str,
    ) -> Result<T> {
        self.retrying(&method, &url, || async {
            let (response, path) = self
                .send(method.clone(), url.clone(), body, content_type)
                .await?;
            let verb = method_name(&method);
            let bytes = read_capped(response, MAX_ANSWER_BYTES, verb, &path).await?;
            serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
                method: verb,
                path,
                source,
            })
        })
        .await
    }

    /// Runs `attempt` until it succeeds, its error is not retryable, or the policy's
    /// attempts or deadline run out.
    async fn retrying<T, F: Future<Output = Result<T>>>(
        &self,
        method: &Method,
        url: &url::Url,
        attempt: impl Fn() -> F,
    ) -> Result<T> {
        let started = Instant::now();
        let mut backoff = Backoff::new(BackoffPolicy::doubling(
            self.retry.initial_delay,
            self.retry.max_delay,
        ));
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match tokio::time::timeout(self.retry.timeout, attempt()).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(error)) => error,
                Err(_) => Error::TimedOut {
                    method: method_name(method),
                    path: url.path().to_owned(),
                    after: self.retry.timeout,
                },
            };
            let elapsed = started.elapsed();
            let delay = backoff.next_delay();
            let out_of_time = elapsed + delay > self.retry.deadline;
            if !error.is_retryable() || attempts >= self.retry.attempts || out_of_time {
                return Err(if attempts > 1 {
                    Error::RetriesExhausted {
                        attempts,
                        elapsed,
                        last: Box::new(error),
                    }
                } else {
                    error
                });
            }
            debug!(%method, path = url.path(), attempt = attempts, ?delay, error = %error, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends one request; the response when its status is a success, with the path for
    /// errors. A refusal's body is read (within a bound) for the backend's message.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&B>,
        content_type: &'static str,
    ) -> Result<(reqwest::Response, String)> {
        let path = url.path().to_owned();
        let verb = method_name(&method);
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(header::CONTENT_TYPE, content_type);
        let token = self
            .token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(token) = &token {
            let mut value = header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| Error::InvalidToken)?;
            value.set_sensitive(true);
            request = request.header(header::AUTHORIZATION, value);
        }
        if let Some(body) = body {
            let body = serde_json::to_vec(body).map_err(|source| Error::Encode { source })?;
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| Error::RequestFailed {
                method: verb,
                path: path.clone(),
                source: HttpError::new(source),
            })?;
        let status = response.status();
        if !status.is_success() {
            let bytes = read_capped(response, MAX_REFUSAL_BYTES, verb, &path)
                .await
                .unwrap_or_default();
            return Err(Error::Rejected {
                method: verb,
                path,
                status: status.as_u16(),
                message: error::backend_message(&bytes),
            });
        }
        Ok((response, path))
    }
}

/// The largest answer read from the backend (a session, a token, an acknowledgement).
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// The most of a refusal's body read for its message.
const MAX_REFUSAL_BYTES: usize = 64 << 10;

/// A response's body, failing once it passes `max` bytes.
async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
    method: &'static str,
    path: &str,
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| Error::RequestFailed {
            method,
            path: path.to_owned(),
            source: HttpError::new(source),
        })?
    {
        if body.len() + chunk.len() > max {
            return Err(Error::TooLarge {
                method,
                path: path.to_owned(),
                limit: max,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What [`StatusClient::message_history_kept`] kept.
#[derive(Debug, Default)]
pub struct KeptHistory {
    /// The messages kept, in order.
    pub messages: Vec<SessionMessage>,
    /// Messages skipped unread for their size.
    pub skipped: u64,
    /// Whether messages were left out because the bytes kept reached their bound.
    pub cut: bool,
}

#[cfg(test)]
mod tests;

/// The method's name, for errors that must not carry the HTTP library's own type.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "HTTP",
    }
}
