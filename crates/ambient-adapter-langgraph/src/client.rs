//! A client for a LangGraph Server: threads, streamed runs, cancel.

use ambient_protocol::Secret;
use reqwest::header;
use serde_json::{Value, json};

use crate::{GraphEvent, sse::SseDecoder};

/// A failed call to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer.
    #[error("{what} failed")]
    Request {
        /// The call.
        what: &'static str,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error (`{"detail": …}`).
    #[error("{what} answered HTTP {status}: {detail}")]
    Rejected {
        /// The call.
        what: &'static str,
        /// The status.
        status: u16,
        /// The server's detail.
        detail: String,
    },
    /// The answer was not what the endpoint returns.
    #[error("{what} answered with an unexpected body")]
    Unexpected {
        /// The call.
        what: &'static str,
    },
    /// An event's data was not JSON.
    #[error("{0}")]
    BadEvent(String),
}

/// A LangGraph Server.
#[derive(Debug, Clone)]
pub struct LangGraphClient {
    http: reqwest::Client,
    base: String,
    api_key: Option<Secret>,
}

impl LangGraphClient {
    /// A client for the server at `base` (`http://host:port`), sending `api_key` as
    /// `x-api-key` when given.
    pub fn new(base: &str, api_key: Option<Secret>) -> Result<Self, ClientError> {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .build()
            .map_err(|source| ClientError::Request {
                what: "building the HTTP client",
                source,
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_key,
        })
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(key) = &self.api_key
            && let Ok(mut value) = header::HeaderValue::from_str(key.expose())
        {
            value.set_sensitive(true);
            request = request.header("x-api-key", value);
        }
        request
    }

    async fn checked(
        what: &'static str,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, ClientError> {
        let response = sent.map_err(|source| ClientError::Request { what, source })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let detail = body.get("detail").map_or_else(
            || body.to_string(),
            |d| d.as_str().map_or_else(|| d.to_string(), str::to_owned),
        );
        Err(ClientError::Rejected {
            what,
            status,
            detail,
        })
    }

    /// Creates a thread; returns its id.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may have created a thread.
    pub async fn create_thread(&self) -> Result<String, ClientError> {
        let what = "creating a thread";
        let response =
            Self::checked(what, self.post("/threads").json(&json!({})).send().await).await?;
        let body: Value = response
            .json()
            .await
            .map_err(|source| ClientError::Request { what, source })?;
        body.get("thread_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(ClientError::Unexpected { what })
    }

    /// Starts a streamed run on `thread` with `body` (`assistant_id`, `input` or
    /// `command`, `stream_mode`, …).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may have started a run.
    pub async fn stream_run(&self, thread: &str, body: &Value) -> Result<RunStream, ClientError> {
        let what = "starting a run";
        let response = Self::checked(
            what,
            self.post(&format!("/threads/{thread}/runs/stream"))
                .json(body)
                .send()
                .await,
        )
        .await?;
        Ok(RunStream {
            response,
            decoder: SseDecoder::new(),
            ready: std::collections::VecDeque::new(),
        })
    }

    /// Cancels a run, keeping what it did so far.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: cancelling again is harmless.
    pub async fn cancel_run(&self, thread: &str, run: &str) -> Result<(), ClientError> {
        let path = format!("/threads/{thread}/runs/{run}/cancel?wait=true&action=interrupt");
        Self::checked("cancelling a run", self.post(&path).send().await)
            .await
            .map(drop)
    }
}

/// The events of one streamed run.
#[derive(Debug)]
pub struct RunStream {
    response: reqwest::Response,
    decoder: SseDecoder,
    ready: std::collections::VecDeque<crate::sse::SseEvent>,
}

impl RunStream {
    /// The next event; `None` when the server closed the stream.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: bytes read are kept in the decoder.
    pub async fn next(&mut self) -> Result<Option<GraphEvent>, ClientError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return GraphEvent::from_sse(&event)
                    .map(Some)
                    .map_err(ClientError::BadEvent);
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.ready.extend(self.decoder.push(&bytes)),
                Ok(None) => return Ok(None),
                Err(source) => {
                    return Err(ClientError::Request {
                        what: "reading the run's stream",
                        source,
                    });
                }
            }
        }
    }
}
