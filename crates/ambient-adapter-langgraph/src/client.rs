//! A client for a LangGraph Server: threads, streamed runs, cancel.

use std::{collections::VecDeque, time::Duration};

use ambient_backoff::{Backoff, BackoffPolicy};
use ambient_protocol::Secret;
use ambient_sse::{SseDecoder, SseEvent};
use reqwest::header;
use serde_json::{Value, json};

use crate::{GraphEvent, Interrupt};

/// A failed call to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer.
    #[error("{what} failed")]
    Request {
        /// The call.
        what: &'static str,
        /// The cause (the HTTP library's error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
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
    /// The server does not know the assistant.
    #[error("the server has no assistant or graph `{assistant}` (its graphs: {known})")]
    UnknownAssistant {
        /// The one asked for.
        assistant: String,
        /// The graphs it has.
        known: String,
    },
    /// The server took the connection and did not answer in time.
    #[error("{what} got no answer within {seconds} s")]
    NoAnswer {
        /// The call.
        what: &'static str,
        /// The bound.
        seconds: u64,
    },
    /// The server sent more than the runner reads at once.
    #[error("{what}: the server sent more than {limit} bytes at once")]
    TooLarge {
        /// The call.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
    /// The stream said nothing, not even a heartbeat, for too long.
    #[error("the run's stream was silent for {seconds} s")]
    Silent {
        /// How long.
        seconds: u64,
    },
    /// The stream dropped and could not be rejoined.
    #[error("the run's stream dropped and {attempts} attempts to rejoin it failed")]
    Lost {
        /// Attempts made.
        attempts: u32,
        /// The first failure.
        #[source]
        source: Box<ClientError>,
    },
}

/// A LangGraph Server.
#[derive(Debug, Clone)]
pub struct LangGraphClient {
    http: reqwest::Client,
    base: String,
    api_key: Option<Secret>,
    /// The largest answer, or event of a stream, read from the server.
    max_event_bytes: usize,
    /// How long a call may wait for the server's answer (a stream: its headers).
    response_timeout: Duration,
}

/// The most of an error answer read for its detail.
const REFUSAL_BYTES: usize = 16 << 10;

/// How long a connection to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call waits for the server's answer by default.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest answer or streamed event read from the server by default.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 << 20;

impl LangGraphClient {
    /// A client for the server at `base` (`http://host:port`), sending `api_key` as
    /// `x-api-key` when given.
    pub fn new(base: &str, api_key: Option<Secret>) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
        if base.starts_with("http://") {
            // No TLS connection will be made: the system's root certificates are not
            // loaded.
            builder = builder.tls_certs_only([]);
        }
        let http = builder.build().map_err(|source| ClientError::Request {
            what: "building the HTTP client",
            source: source.into(),
        })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_key,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        })
    }

    /// The same client, waiting at most `timeout` for each answer (a stream's events
    /// have their own idle limit).
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sends `request`, waiting for its answer within the response timeout.
    async fn send(
        &self,
        what: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let sent = tokio::time::timeout(self.response_timeout, request.send())
            .await
            .map_err(|_| self.no_answer(what))?;
        Self::checked(what, sent).await
    }

    fn no_answer(&self, what: &'static str) -> ClientError {
        ClientError::NoAnswer {
            what,
            seconds: self.response_timeout.as_secs(),
        }
    }

    /// The same client, reading answers and streamed events of at most `max` bytes: a
    /// server that sends more gets an error ([`ClientError::TooLarge`]), not the runner's
    /// memory.
    pub fn with_max_event_bytes(mut self, max: usize) -> Self {
        self.max_event_bytes = max;
        self
    }

    /// A response's JSON body, read within the bound.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        mut response: reqwest::Response,
    ) -> Result<T, ClientError> {
        let mut body = Vec::new();
        let deadline = tokio::time::Instant::now() + self.response_timeout;
        while let Some(chunk) = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .map_err(|_| self.no_answer(what))?
            .map_err(|source| ClientError::Request {
                what,
                source: source.into(),
            })?
        {
            if body.len() + chunk.len() > self.max_event_bytes {
                return Err(ClientError::TooLarge {
                    what,
                    limit: self.max_event_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| ClientError::Unexpected { what })
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.authorized(self.http.post(format!("{}{path}", self.base)))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.authorized(self.http.get(format!("{}{path}", self.base)))
    }

    fn authorized(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
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
        let response = sent.map_err(|source| ClientError::Request {
            what,
            source: source.into(),
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        // The server's complaint: a few kilobytes at most are worth reading.
        let mut response = response;
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            bytes.extend_from_slice(&chunk[..chunk.len().min(REFUSAL_BYTES - bytes.len())]);
            if bytes.len() >= REFUSAL_BYTES {
                break;
            }
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
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
        let response = self
            .send(what, self.post("/threads").json(&json!({})))
            .await?;
        let body: Value = self.json(what, response).await?;
        body.get("thread_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(ClientError::Unexpected { what })
    }

    /// Starts a streamed run on `thread` with `body` (`assistant_id`, `input` or
    /// `command`, `stream_mode`, …). The stream rejoins the run if the connection drops.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may have started a run.
    pub async fn stream_run(&self, thread: &str, body: &Value) -> Result<RunStream, ClientError> {
        let what = "starting a run";
        let response = self
            .send(
                what,
                self.post(&format!("/threads/{thread}/runs/stream"))
                    .header(header::ACCEPT, "text/event-stream")
                    .json(body),
            )
            .await?;
        // The run's id is in the headers before the first event, so that a run can be
        // cancelled or rejoined before it says anything.
        let run_id = response
            .headers()
            .get(header::CONTENT_LOCATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|location| location.rsplit('/').next())
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        Ok(RunStream {
            client: self.clone(),
            thread: thread.to_owned(),
            run_id,
            response: Some(response),
            decoder: SseDecoder::new().with_max_event_bytes(self.max_event_bytes),
            ready: VecDeque::new(),
            position: Position::default(),
            skip: 0,
            status: None,
            idle_timeout: IDLE_TIMEOUT,
            rejoins: 0,
        })
    }

    /// Cancels a run, keeping what it did so far.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: cancelling again is harmless.
    pub async fn cancel_run(&self, thread: &str, run: &str) -> Result<(), ClientError> {
        let path = format!("/threads/{thread}/runs/{run}/cancel?wait=true&action=interrupt");
        self.send("cancelling a run", self.post(&path))
            .await
            .map(drop)
    }

    /// The JSON body of `GET path`; `None` when the server answers 404.
    async fn get_json(&self, what: &'static str, path: &str) -> Result<Option<Value>, ClientError> {
        match self.send(what, self.get(path)).await {
            Ok(response) => self.json(what, response).await.map(Some),
            Err(ClientError::Rejected { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The graph's `input_schema` and `output_schema` (JSON Schema); `None` when the
    /// server has no schemas for the assistant.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn schemas(&self, assistant: &str) -> Result<Option<Value>, ClientError> {
        if !is_path_segment(assistant) {
            return Ok(None);
        }
        let what = "reading the graph's schemas";
        // A graph whose schemas the server cannot render gets a 500 on a connection the
        // server then drops: this one is not kept for the next call.
        let request = self
            .get(&format!("/assistants/{assistant}/schemas"))
            .header(header::CONNECTION, "close");
        match self.send(what, request).await {
            Ok(response) => self.json(what, response).await.map(Some),
            Err(ClientError::Rejected { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The values of a thread's state; `None` when the server does not have the thread.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn state_values(&self, thread: &str) -> Result<Option<Value>, ClientError> {
        if !is_path_segment(thread) {
            return Ok(None);
        }
        let state = self
            .get_json(
                "reading a thread's state",
                &format!("/threads/{thread}/state"),
            )
            .await?;
        Ok(state.map(|mut state| {
            state
                .get_mut("values")
                .map(Value::take)
                .unwrap_or(Value::Null)
        }))
    }

    /// A run's status; [`RunStatus::Gone`] when the server no longer has it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn run_status(&self, thread: &str, run: &str) -> Result<RunStatus, ClientError> {
        let what = "reading a run's status";
        let path = format!("/threads/{thread}/runs/{run}");
        let Some(body) = self.get_json(what, &path).await? else {
            return Ok(RunStatus::Gone);
        };
        let status = body
            .get("status")
            .and_then(Value::as_str)
            .ok_or(ClientError::Unexpected { what })?;
        Ok(RunStatus::from_server(status))
    }

    /// A thread's status and the questions it waits on; `None` when the server does not
    /// have it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn thread(&self, thread: &str) -> Result<Option<ThreadState>, ClientError> {
        let what = "reading a thread";
        if !is_path_segment(thread) {
            // Not an id the server could have made.
            return Ok(None);
        }
        let Some(body) = self.get_json(what, &format!("/threads/{thread}")).await? else {
            return Ok(None);
        };
        let status = body
            .get("status")
            .and_then(Value::as_str)
            .ok_or(ClientError::Unexpected { what })?
            .to_owned();
        // `{"<task id>": [{"id", "value"}, …]}`
        let interrupts = body
            .get("interrupts")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|tasks| tasks.values())
            .filter_map(Value::as_array)
            .flatten()
            .map(Interrupt::from_server)
            .collect();
        Ok(Some(ThreadState { status, interrupts }))
    }

    /// Checks that the server knows `assistant` (an assistant id or a graph name); returns
    /// the id of the assistant it names.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn check_assistant(&self, assistant: &str) -> Result<String, ClientError> {
        let what = "looking up the assistant";
        let response = self
            .send(
                what,
                self.post("/assistants/search")
                    .json(&json!({ "limit": 1000 })),
            )
            .await?;
        let assistants: Vec<Value> = self.json(what, response).await?;
        let known = assistants.iter().find(|a| {
            ["assistant_id", "graph_id", "name"]
                .iter()
                .any(|key| a.get(*key).and_then(Value::as_str) == Some(assistant))
        });
        if let Some(found) = known {
            let id = found.get("assistant_id").and_then(Value::as_str);
            return Ok(id.unwrap_or(assistant).to_owned());
        }
        // A search returns a page; an assistant id beyond it is found by its own URL.
        if is_path_segment(assistant) {
            let direct = self.get(&format!("/assistants/{assistant}"));
            if self.send(what, direct).await.is_ok() {
                return Ok(assistant.to_owned());
            }
        }
        let mut graphs: Vec<&str> = assistants
            .iter()
            .filter_map(|a| a.get("graph_id").and_then(Value::as_str))
            .collect();
        graphs.sort_unstable();
        graphs.dedup();
        Err(ClientError::UnknownAssistant {
            assistant: assistant.to_owned(),
            known: graphs.join(", "),
        })
    }

    async fn join_run(
        &self,
        thread: &str,
        run: &str,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self
            .get(&format!("/threads/{thread}/runs/{run}/stream"))
            .header(header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        self.send("rejoining a run", request).await
    }
}

/// Whether `id` can go in a URL path as it is (the server's ids are UUIDs, graph names
/// identifiers).
fn is_path_segment(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && id != "."
        && id != ".."
}

/// A thread as the server reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadState {
    /// `idle`, `busy`, `interrupted` or `error`.
    pub status: String,
    /// The questions it waits on.
    pub interrupts: Vec<Interrupt>,
}

/// A run's status on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    /// Waiting to start.
    Pending,
    /// Running.
    Running,
    /// Finished (also when it stopped at an `interrupt()`: the thread waits then).
    Success,
    /// A node raised.
    Error,
    /// The server's time limit ended it.
    Timeout,
    /// Cancelled.
    Interrupted,
    /// The server no longer has it (rolled back, deleted).
    Gone,
    /// A status this client does not know.
    Other(String),
}

impl RunStatus {
    fn from_server(status: &str) -> Self {
        match status {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "success" => Self::Success,
            "error" => Self::Error,
            "timeout" => Self::Timeout,
            "interrupted" => Self::Interrupted,
            other => Self::Other(other.to_owned()),
        }
    }

    fn is_active(&self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }
}

/// How long a stream may stay silent before it counts as dropped; the server sends a
/// heartbeat every 5 s while a run is idle.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times in a row rejoining may fail before the stream gives up.
const MAX_REJOIN_FAILURES: u32 = 5;
/// Delays between attempts to rejoin a dropped stream.
const REJOIN_BACKOFF: BackoffPolicy =
    BackoffPolicy::doubling(Duration::from_millis(500), Duration::from_secs(4));

/// Where a stream is, in the server's event ids, for rejoining without losing or
/// repeating an event.
///
/// Ids need not be unique (the dev server's are `<epoch ms>-0`, shared by events of the
/// same millisecond), and a rejoin with `Last-Event-ID: X` resumes after *every* event
/// with id `X`. So a rejoin asks for what follows the last id before the current one
/// (the anchor) and skips the events of the current id already relayed.
#[derive(Debug, Default, Clone)]
struct Position {
    /// The id before the current group; `None` at the start of the stream.
    anchor: Option<String>,
    /// The id of the last event relayed.
    current: Option<String>,
    /// Events relayed with that id (or since the start, while the anchor is `None`).
    in_current: usize,
    /// Whether an event without an id was relayed: a rejoin cannot replay then.
    unnumbered: bool,
}

impl Position {
    fn relayed(&mut self, id: Option<&str>) {
        let Some(id) = id else {
            self.unnumbered = true;
            return;
        };
        match &self.current {
            Some(current) if current == id => self.in_current += 1,
            Some(_) => {
                self.anchor = self.current.replace(id.to_owned());
                self.in_current = 1;
            }
            None => {
                self.current = Some(id.to_owned());
                self.in_current = 1;
            }
        }
    }

    /// The `Last-Event-ID` to rejoin with, and how many replayed events to skip.
    fn rejoin(&self) -> (Option<String>, usize) {
        if self.unnumbered {
            return (None, 0);
        }
        match &self.anchor {
            Some(anchor) => (Some(anchor.clone()), self.in_current),
            None => (Some(String::from("-1")), self.in_current),
        }
    }
}

/// The events of one streamed run. When the connection drops or goes silent, it asks the
/// server whether the run is still going and, if so, rejoins it where it left off.
#[derive(Debug)]
pub struct RunStream {
    client: LangGraphClient,
    thread: String,
    run_id: Option<String>,
    response: Option<reqwest::Response>,
    decoder: SseDecoder,
    ready: VecDeque<SseEvent>,
    position: Position,
    /// Replayed events still to skip after a rejoin.
    skip: usize,
    status: Option<RunStatus>,
    idle_timeout: Duration,
    rejoins: u32,
}

impl RunStream {
    /// The run's id, when the server has told it.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// How many times the stream was rejoined.
    pub fn rejoins(&self) -> u32 {
        self.rejoins
    }

    /// The run's status once the stream has ended.
    pub fn status(&self) -> Option<&RunStatus> {
        self.status.as_ref()
    }

    /// The next event; `None` when the run is over ([`RunStream::status`] says how).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe while reading (bytes read are kept in the decoder); a rejoin dropped
    /// midway is started again by the next call.
    pub async fn next(&mut self) -> Result<Option<GraphEvent>, ClientError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                if self.skip > 0 {
                    self.skip -= 1;
                    continue;
                }
                self.position.relayed(event.id.as_deref());
                let event = GraphEvent::from_sse(&event).map_err(ClientError::BadEvent)?;
                if self.run_id.is_none() && event.name == "metadata" {
                    self.run_id = event
                        .data
                        .get("run_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                return Ok(Some(event));
            }
            let Some(response) = self.response.as_mut() else {
                if self.status.is_some() {
                    return Ok(None);
                }
                self.settle(None).await?;
                continue;
            };
            match tokio::time::timeout(self.idle_timeout, response.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    let events =
                        self.decoder
                            .push(&bytes)
                            .map_err(|too_long| ClientError::TooLarge {
                                what: "reading the run's stream",
                                limit: too_long.limit,
                            })?;
                    self.ready.extend(events);
                }
                Ok(Ok(None)) => {
                    self.response = None;
                    self.settle(None).await?;
                }
                Ok(Err(source)) => {
                    self.response = None;
                    self.settle(Some(ClientError::Request {
                        what: "reading the run's stream",
                        source: source.into(),
                    }))
                    .await?;
                }
                Err(_silent) => {
                    self.response = None;
                    self.settle(Some(ClientError::Silent {
                        seconds: self.idle_timeout.as_secs(),
                    }))
                    .await?;
                }
            }
        }
    }

    /// The stream closed (`cause` says why, when it was not a clean end): the run's
    /// status decides whether it is over or to be rejoined.
    async fn settle(&mut self, cause: Option<ClientError>) -> Result<(), ClientError> {
        let Some(run) = self.run_id.clone() else {
            // Without a run id there is nothing to ask or rejoin.
            return match cause {
                Some(error) => Err(error),
                None => {
                    self.status = Some(RunStatus::Other(String::from("unknown")));
                    Ok(())
                }
            };
        };
        let mut failures = 0;
        let mut backoff = Backoff::new(REJOIN_BACKOFF);
        // A stream that broke (rather than ended) may have missed the run's last events,
        // even when the run is over by now: a resumable run replays them to a rejoin.
        let broke = cause.is_some() && !self.position.unnumbered;
        let mut last_error = cause;
        loop {
            let attempt = async {
                let status = self.client.run_status(&self.thread, &run).await?;
                if !status.is_active() && !broke {
                    return Ok(Err(status));
                }
                if matches!(status, RunStatus::Gone) {
                    return Ok(Err(status));
                }
                let (last_event_id, skip) = self.position.rejoin();
                let response = self
                    .client
                    .join_run(&self.thread, &run, last_event_id.as_deref())
                    .await?;
                Ok::<_, ClientError>(Ok((response, skip)))
            };
            match attempt.await {
                Ok(Err(status)) => {
                    self.status = Some(status);
                    return Ok(());
                }
                Ok(Ok((response, skip))) => {
                    self.response = Some(response);
                    self.decoder =
                        SseDecoder::new().with_max_event_bytes(self.client.max_event_bytes);
                    self.skip = skip;
                    self.rejoins += 1;
                    return Ok(());
                }
                Err(error) => {
                    failures += 1;
                    if failures >= MAX_REJOIN_FAILURES {
                        return Err(ClientError::Lost {
                            attempts: failures,
                            source: Box::new(last_error.unwrap_or(error)),
                        });
                    }
                    last_error = Some(error);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Position;

    fn after(ids: &[&str]) -> (Option<String>, usize) {
        let mut position = Position::default();
        for id in ids {
            position.relayed(Some(id));
        }
        position.rejoin()
    }

    #[test]
    fn a_rejoin_replays_from_the_start_while_the_first_id_lasts() {
        assert_eq!(after(&[]), (Some(String::from("-1")), 0));
        assert_eq!(after(&["10-0", "10-0"]), (Some(String::from("-1")), 2));
    }

    #[test]
    fn a_rejoin_asks_for_what_follows_the_previous_id_and_skips_the_current_ones() {
        // The dev server gives events of the same millisecond the same id, and a rejoin
        // with that id would skip the ones not yet seen.
        assert_eq!(
            after(&["10-0", "11-0", "11-0", "12-0"]),
            (Some(String::from("11-0")), 1)
        );
        assert_eq!(
            after(&["10-0", "11-0", "12-0", "12-0"]),
            (Some(String::from("11-0")), 2)
        );
    }

    #[test]
    fn events_without_ids_cannot_be_replayed() {
        let mut position = Position::default();
        position.relayed(Some("10-0"));
        position.relayed(None);
        assert_eq!(position.rejoin(), (None, 0));
    }
}
