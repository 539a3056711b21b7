//! The HTTP front: health, capabilities, run (an SSE stream of AG-UI events), replay of a
//! run after `Last-Event-ID`, and interrupt.

use std::{collections::VecDeque, convert::Infallible, sync::Arc, time::Duration};

use ambient_host::Redactor;
use ambient_protocol::Secret;
use axum::{
    Extension, Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use ambient_agui::{AguiEvent, Numbered};

use crate::{
    ServeIdentity,
    hub::{Command, Health, Hub, Initiator, Refused, RunLog, Started},
    request::RunRequest,
    server::{ConnectionHandle, Marked},
};

/// The largest run request: the conversation comes whole with every run.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// The KiB of run requests that may wait for the session to start (each counts as 1 MiB
/// at least).
pub const WAITING_FOR_START_KIB: usize = 16 * 1024;
/// A comment on an idle stream, so that proxies do not close it.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Front {
    /// The session's runs.
    pub hub: Arc<Hub>,
    /// Where run and interrupt requests go: the session loop.
    pub commands: mpsc::UnboundedSender<Command>,
    /// The token callers present.
    pub token: Secret,
    /// For error messages that could quote a caller's input.
    pub redactor: Redactor,
    /// What `/capabilities` says.
    pub identity: Arc<ServeIdentity>,
    /// Events kept per run, for `/capabilities`.
    pub replay_events: usize,
    /// The session (`SESSION_ID`), for `/health` and `/capabilities`.
    pub session_id: String,
    /// Room for the runs asked for while the session starts.
    pub waiting_for_start: Arc<tokio::sync::Semaphore>,
    /// The workspace, for the file API.
    pub workspace: crate::content::Workspace,
    /// The runner's git settings, for the git views of the workspace.
    pub git: Arc<ambient_host::workspace::GitSettings>,
    /// Where the repositories are checked out, for `/repos/status`.
    pub layout: ambient_host::config::CheckoutLayout,
    /// The agent's model now (`/model` switches it).
    pub model: Arc<std::sync::Mutex<Option<String>>>,
    /// The browser origins allowed to call (CORS).
    pub cors_origins: Arc<Vec<String>>,
    /// Fingerprints of the tokens callers brought with a change (never the tokens), to
    /// bound how many the redactor learns from them.
    pub callers_tokens: Arc<std::sync::Mutex<std::collections::HashSet<u64>>>,
}

/// The routes.
pub fn router(front: Front) -> Router {
    let guarded = Router::new()
        .route("/", post(run))
        .route("/run", post(run))
        .route("/runs/{run_id}/events", get(replay))
        .route("/interrupt", post(interrupt))
        .route("/events/{thread_id}", get(listen))
        .route("/model", post(switch_model))
        .route("/metrics", get(metrics))
        .route("/mcp/status", get(mcp_status))
        .merge(crate::tasks::routes())
        .merge(crate::workspace_routes::routes())
        .route("/feedback", post(feedback))
        .route("/content/list", get(content_list))
        .route("/content/file", get(content_file))
        .route("/content/write", post(content_write))
        .route("/content/delete", axum::routing::delete(content_delete))
        .route("/events/{thread_id}/wait", get(listen))
        .route("/capabilities", get(capabilities))
        .route_layer(middleware::from_fn_with_state(front.clone(), authenticate))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES));
    Router::new()
        .route("/health", get(health))
        .merge(guarded)
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn_with_state(front.clone(), cors))
        .with_state(front)
}

/// CORS for the origins `AGUI_CORS_ORIGINS` names: their preflights are answered before
/// any token is asked for (a browser sends none with them), and their responses say they
/// may be read. Other origins get no CORS headers, and their preflights a refusal.
async fn cors(State(front): State<Front>, request: axum::extract::Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let allowed = origin
        .as_deref()
        .filter(|origin| front.cors_origins.iter().any(|known| known == origin))
        .and_then(|origin| HeaderValue::from_str(origin).ok());
    let preflight = request.method() == axum::http::Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let Some(allowed) = allowed else {
            return error(
                StatusCode::FORBIDDEN,
                format!(
                    "the origin {} may not call this runner (AGUI_CORS_ORIGINS)",
                    origin.as_deref().unwrap_or("(none)")
                ),
            );
        };
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "authorization, content-type, last-event-id, x-ambient-session-token",
            ),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(allowed) = allowed {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// An error the framework answered in plain text (a body over the limit, say) gets the
/// JSON body every other error has.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Such a body is a short sentence; more is not read.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text.trim().to_owned()
    };
    let mut json = error(status, message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// The header the platform's backend sends the session's token in.
const SESSION_TOKEN_HEADER: &str = "x-ambient-session-token";

/// The tokens a request presents: its `X-Ambient-Session-Token`, and its
/// `Authorization` bearer token (the scheme read without regard to case, RFC 7235).
fn presented_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let session = headers
        .get(SESSION_TOKEN_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    session.into_iter().chain(bearer)
}

/// Every route but `/health` needs the token, as `X-Ambient-Session-Token` (the
/// platform's backend) or `Authorization: Bearer`.
async fn authenticate(
    State(front): State<Front>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let expected = front.token.expose().as_bytes();
    let mut presented = false;
    let mut accepted = false;
    for token in presented_tokens(request.headers()) {
        presented = true;
        // Every form is compared, in constant time, whatever the first gave.
        accepted |= bool::from(token.as_bytes().ct_eq(expected));
    }
    if accepted {
        return next.run(request).await;
    }
    warn!(path = %request.uri().path(), presented, "refused a caller without the serve token");
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "this runner needs the token in AGUI_TOKEN, as X-Ambient-Session-Token or Authorization: Bearer",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn health(State(front): State<Front>) -> Response {
    match front.hub.health() {
        Health::Ready => {
            axum::Json(json!({"status": "ok", "session_id": front.session_id})).into_response()
        }
        Health::Starting => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "starting"})),
        )
            .into_response(),
        Health::Closed => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "ended"})),
        )
            .into_response(),
    }
}

/// The platform's capabilities, as its backend and UI read them; AG-UI's own
/// (`AgentCapabilities`) under `ag_ui`, since a field the platform reads is one AG-UI does
/// not define.
async fn capabilities(State(front): State<Front>) -> Response {
    let identity = &front.identity;
    axum::Json(json!({
        "framework": identity.framework,
        "agent_features": identity.agent_features,
        "platform_features": PLATFORM_FEATURES,
        "file_system": identity.file_system,
        "mcp": identity.mcp,
        "tracing": null,
        "session_persistence": identity.session_persistence,
        "model": front.current_model(),
        "session_id": front.session_id,
        "ag_ui": {
            "identity": {
                "name": identity.name,
                "type": identity.framework,
                "version": identity.version,
                "provider": "ambient-code",
            },
            "transport": {"streaming": true, "websocket": false, "resumable": true},
            "humanInTheLoop": {"supported": identity.interrupts, "interrupts": identity.interrupts},
            "custom": {"replayEventsPerRun": front.replay_events},
        },
    }))
    .into_response()
}

/// The platform's features this runner serves routes for, as its UI names them.
const PLATFORM_FEATURES: [&str; 4] = ["feedback", "mcp_diagnostics", "repos", "workflows"];

/// `Last-Event-ID`, when the caller sent one.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, Box<Response>> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    match value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
    {
        Some(id) => Ok(Some(id)),
        None => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "Last-Event-ID must be the id of an event of this run (a number)",
        ))),
    }
}

async fn run(
    State(front): State<Front>,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let connection = connection.as_ref().map(|Extension(handle)| handle);
    let after = match last_event_id(&headers) {
        Ok(after) => after,
        Err(response) => return *response,
    };
    let request: RunRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(why) => {
            let why = front.redactor.text(&why.to_string()).into_owned();
            return error(
                StatusCode::BAD_REQUEST,
                format!("the run request is not a valid RunAgentInput: {why}"),
            );
        }
    };
    // A client that reconnects to its run sends the same request with Last-Event-ID; it
    // must never start the run's turn a second time.
    if let Some(after) = after {
        return match front.hub.run(&request.run_id) {
            Some(log) => {
                // An AG-UI client checks its stream from its start: a resumed one opens
                // with the run's RUN_STARTED again (without an id, so that the place the
                // client resumes from next time is unchanged), and takes up a message or
                // a tool call cut in the middle from its start.
                let started = AguiEvent::RunStarted {
                    thread_id: request.thread_id.clone(),
                    run_id: request.run_id.clone(),
                };
                let json = serde_json::to_string(&started).unwrap_or_default();
                let preface = (after > 0).then(|| Bytes::from(format!("data: {json}\n\n")));
                // A message or call cut in the middle is sent again from its start.
                let from = log.resume_point(after);
                stream_from(&front, log, from, preface, connection)
            }
            None => front.unknown_run(&request.run_id),
        };
    }
    let ids = (request.thread_id.clone(), request.run_id.clone());
    if front.hub.refusal() == Some(Refused::Starting) {
        return front.run_after_start(request, body.len(), ids, connection);
    }
    let started = front
        .ask(|reply| Command::Start(request, body.len(), reply))
        .await
        .and_then(|started| started);
    match started {
        Ok(Started::Now(initiator)) => stream(
            &front,
            Arc::clone(&initiator.log),
            0,
            Some(initiator),
            connection,
        ),
        // Answered 200 at once, as the platform's runner answers: the events follow when
        // the run before it ends.
        Ok(Started::Queued(opened)) => waiting_stream(&front, ids, opened, connection),
        Err(refused) => front.refusal(&refused),
    }
}

async fn replay(
    State(front): State<Front>,
    Path(run_id): Path<String>,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
) -> Response {
    let connection = connection.as_ref().map(|Extension(handle)| handle);
    let after = match last_event_id(&headers) {
        Ok(after) => after.unwrap_or(0),
        Err(response) => return *response,
    };
    match front.hub.run(&run_id) {
        Some(log) => stream(&front, log, after, None, connection),
        None => front.unknown_run(&run_id),
    }
}

impl Front {
    /// A JSON body of the `shape` named, or the `400` that names it and what was wrong.
    pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
        &self,
        body: &Bytes,
        shape: &str,
    ) -> Result<T, Box<Response>> {
        serde_json::from_slice(body).map_err(|why| {
            Box::new(self.error(
                StatusCode::BAD_REQUEST,
                &format!("the body must be {shape}: {why}"),
            ))
        })
    }

    fn current_model(&self) -> Option<String> {
        self.model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The agent's MCP servers as it last reported them. A framework that takes no MCP
/// servers has none; one that does but has not started them yet says so.
async fn mcp_status(State(front): State<Front>) -> Response {
    let status = match front.hub.report("mcp_status") {
        Some(status) => status,
        None if !front.identity.mcp => json!({"servers": [], "totalCount": 0}),
        None => json!({
            "servers": [],
            "totalCount": 0,
            "message": "the agent has not started its MCP servers yet",
        }),
    };
    axum::Json(status).into_response()
}

/// The session's figures, in Prometheus' text format.
async fn metrics(State(front): State<Front>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        front.hub.metrics().render(),
    )
        .into_response()
}

/// The body of `/model`.
#[derive(Debug, serde::Deserialize)]
struct ModelBody {
    #[serde(default)]
    model: String,
}

/// Switches the agent's model between runs, as the platform's UI asks: the CLI's for
/// Claude; refused with the reason for a framework whose model is not the runner's.
async fn switch_model(State(front): State<Front>, body: Bytes) -> Response {
    let model = match front.parse_body::<ModelBody>(&body, r#"{"model": "…"}"#) {
        Ok(body) => body.model.trim().to_owned(),
        Err(response) => return *response,
    };
    if model.is_empty() {
        return front.error(StatusCode::BAD_REQUEST, "model is required");
    }
    if !front.identity.switches_model {
        return front.error(
            StatusCode::BAD_REQUEST,
            &format!(
                "this runner cannot switch the model: a {} agent's model is its own (set in its code or configuration)",
                front.identity.framework
            ),
        );
    }
    let previous = front.current_model();
    if previous.as_deref() == Some(model.as_str()) {
        return axum::Json(json!({"message": "Model unchanged", "model": model})).into_response();
    }
    let switched = front
        .ask(|reply| Command::SetModel {
            model: model.clone(),
            previous: previous.clone(),
            reply,
        })
        .await
        .and_then(|switched| switched);
    match switched {
        Ok(()) => {
            *front
                .model
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(model.clone());
            info!(%model, "model switched");
            axum::Json(json!({
                "message": "Model switched",
                "model": model,
                "previousModel": previous,
            }))
            .into_response()
        }
        Err(refused) => front.refusal(&refused),
    }
}

/// A thumbs up or down from the UI, as an AG-UI `META` event.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeedbackBody {
    #[serde(rename = "type")]
    kind: String,
    meta_type: String,
    payload: serde_json::Map<String, serde_json::Value>,
}

/// Takes the user's feedback and gives it back as the `RAW` event the backend stores.
/// Nothing is sent elsewhere, so `recorded` is `false`; only its kind is logged (its
/// payload can carry the conversation).
async fn feedback(State(front): State<Front>, body: Bytes) -> Response {
    let feedback: FeedbackBody =
        match front.parse_body(&body, "a META event with metaType and payload") {
            Ok(feedback) => feedback,
            Err(response) => return *response,
        };
    if feedback.kind != "META" {
        return front.error(StatusCode::BAD_REQUEST, "Expected META event type");
    }
    if !matches!(feedback.meta_type.as_str(), "thumbs_up" | "thumbs_down") {
        return front.error(
            StatusCode::BAD_REQUEST,
            "metaType must be 'thumbs_up' or 'thumbs_down'",
        );
    }
    info!(kind = %feedback.meta_type, "feedback received");
    axum::Json(json!({
        "type": "RAW",
        "event": {
            "name": "ambient:feedback",
            "metaType": feedback.meta_type,
            "payload": feedback.payload,
            "recorded": false,
        },
    }))
    .into_response()
}

/// `?path=` of a file API request.
#[derive(Debug, serde::Deserialize)]
struct PathQuery {
    path: Option<String>,
}

/// The body of `/content/write`.
#[derive(Debug, serde::Deserialize)]
struct WriteBody {
    path: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    encoding: Option<String>,
}

/// The body of `/content/delete`.
#[derive(Debug, serde::Deserialize)]
struct DeleteBody {
    path: String,
}

impl Front {
    /// Runs a file operation off the async threads; its error as the JSON answer.
    async fn on_workspace<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&crate::content::Workspace) -> Result<T, crate::content::ContentError>
        + Send
        + 'static,
    ) -> Result<T, Response> {
        let workspace = self.workspace.clone();
        let done = tokio::task::spawn_blocking(move || operation(&workspace)).await;
        match done {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(refused)) => {
                let status = StatusCode::from_u16(refused.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Err(self.error(status, &refused.to_string()))
            }
            Err(_) => Err(self.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the file operation failed",
            )),
        }
    }
}

fn path_of(query: PathQuery) -> String {
    query.path.unwrap_or_else(|| String::from("/"))
}

async fn content_list(
    State(front): State<Front>,
    axum::extract::Query(query): axum::extract::Query<PathQuery>,
) -> Response {
    let path = path_of(query);
    match front
        .on_workspace(move |workspace| workspace.list(&path))
        .await
    {
        Ok(items) => axum::Json(json!({"items": items})).into_response(),
        Err(response) => response,
    }
}

async fn content_file(
    State(front): State<Front>,
    axum::extract::Query(query): axum::extract::Query<PathQuery>,
) -> Response {
    let path = path_of(query);
    match front
        .on_workspace(move |workspace| workspace.read(&path))
        .await
    {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(response) => response,
    }
}

async fn content_write(State(front): State<Front>, body: Bytes) -> Response {
    let body: WriteBody = match front.parse_body(&body, r#"{"path", "content", "encoding"?}"#) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let bytes = match body.encoding.as_deref() {
        None | Some("" | "utf-8" | "utf8") => body.content.into_bytes(),
        Some("base64") => {
            use base64::Engine as _;
            match base64::engine::general_purpose::STANDARD.decode(body.content.trim()) {
                Ok(bytes) => bytes,
                Err(why) => {
                    return front.error(
                        StatusCode::BAD_REQUEST,
                        &format!("the content is not valid base64: {why}"),
                    );
                }
            }
        }
        Some(other) => {
            return front.error(
                StatusCode::BAD_REQUEST,
                &format!("unknown encoding `{other}`: base64, or none for text"),
            );
        }
    };
    let path = body.path;
    match front
        .on_workspace(move |workspace| workspace.write(&path, &bytes))
        .await
    {
        Ok(()) => axum::Json(json!({"message": "ok"})).into_response(),
        Err(response) => response,
    }
}

async fn content_delete(State(front): State<Front>, body: Bytes) -> Response {
    let body: DeleteBody = match front.parse_body(&body, r#"{"path"}"#) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let path = body.path;
    match front
        .on_workspace(move |workspace| workspace.delete(&path))
        .await
    {
        Ok(()) => axum::Json(json!({"message": "file deleted successfully"})).into_response(),
        Err(response) => response,
    }
}

/// How often a quiet listener gets a comment, as the platform's runner sends one.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// What the agent says between runs, as the platform's backend listens for it: the next
/// run of it (without its `MESSAGES_SNAPSHOT`, as the platform's runner leaves it out),
/// then the end of the stream, with a heartbeat comment every 30 s while nothing comes.
/// The backend connects again at once. `/events/{thread_id}/wait` is the same: this
/// runner is always ready to be listened to.
async fn listen(
    State(front): State<Front>,
    Path(thread_id): Path<String>,
    connection: Option<Extension<ConnectionHandle>>,
) -> Response {
    let mut listening = match front.hub.listen(&thread_id) {
        Ok(listening) => listening,
        Err(Refused::OtherThread { served, asked }) => {
            return front.error(
                StatusCode::NOT_FOUND,
                &format!("this runner serves thread {served}, not {asked}"),
            );
        }
        Err(refused) => return front.refusal(&refused),
    };
    let marks = marks(connection.as_ref().map(|Extension(handle)| handle), false);
    let (chunks, received) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let log = loop {
            tokio::select! {
                log = listening.next_run() => match log {
                    Some(log) => break log,
                    None => return,
                },
                () = chunks.closed() => return,
                () = tokio::time::sleep(HEARTBEAT) => {
                    if chunks.send(Bytes::from_static(b": heartbeat\n\n")).await.is_err() {
                        return;
                    }
                }
            }
        };
        let follow = Follow {
            changes: log.subscribe(),
            log,
            last: 0,
            initiator: None,
            pending: VecDeque::new(),
            ended: false,
            skip_snapshots: true,
            preface: None,
            _marks: marks,
        };
        let events = follow_events(follow);
        futures_util::pin_mut!(events);
        while let Some(Ok(chunk)) = events.next().await {
            if chunks.send(chunk).await.is_err() {
                return;
            }
        }
        drop(listening);
    });
    let stream = futures_util::stream::unfold(received, |mut received| async move {
        let chunk = received.recv().await?;
        Some((Ok::<_, Infallible>(chunk), received))
    });
    sse_response(stream)
}

async fn interrupt(State(front): State<Front>) -> Response {
    match front.ask(Command::Interrupt).await.and_then(|done| done) {
        // 200, as the platform's backend expects of its runner.
        Ok(run_id) => axum::Json(json!({"interrupted": run_id})).into_response(),
        Err(refused) => front.refusal(&refused),
    }
}

impl Front {
    /// A run asked for while the workspace is being prepared: answered 200 at once, as
    /// the platform's runner answers (its backend takes anything else as a failed run);
    /// the run is asked for once the session takes runs, and its events follow. At most
    /// [`WAITING_FOR_START_KIB`] of requests wait so.
    fn run_after_start(
        &self,
        request: RunRequest,
        bytes: usize,
        ids: (String, String),
        connection: Option<&ConnectionHandle>,
    ) -> Response {
        // A permit is a KiB of request, and a run takes a MiB at least: at most 16 runs
        // and 16 MiB wait.
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1024);
        let Ok(permit) = Arc::clone(&self.waiting_for_start).try_acquire_many_owned(kib) else {
            return self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "enough runs already wait for the session to start (16, or 16 MiB of requests); \
                 try again when /health says ok",
            );
        };
        let (opened_tx, opened) = oneshot::channel();
        let front = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            front.hub.past_start().await;
            // Its caller left while the session started: nobody would read the run.
            if opened_tx.is_closed() {
                return;
            }
            let started = front
                .ask(|reply| Command::Start(request, bytes, reply))
                .await
                .and_then(|started| started);
            let opened = match started {
                Ok(Started::Now(initiator)) => Ok(initiator),
                Ok(Started::Queued(later)) => later.await.unwrap_or_else(|_| {
                    Err(Refused::Closed(String::from(
                        "the session ended before this run opened",
                    )))
                }),
                Err(refused) => Err(refused),
            };
            // Its caller may have gone; an initiator dropped here releases the run.
            let _told = opened_tx.send(opened);
        });
        waiting_stream(self, ids, opened, connection)
    }

    /// Hands `command` to the session loop and waits for its answer.
    pub(crate) async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Refused> {
        if let Some(refused) = self.hub.refusal() {
            return Err(refused);
        }
        let (reply, answer) = oneshot::channel();
        let ended = || Refused::Closed(String::from("the session has ended"));
        self.commands.send(command(reply)).map_err(|_| ended())?;
        answer.await.map_err(|_| ended())
    }

    /// An error response whose message is scrubbed of secrets: it may quote the caller.
    pub(crate) fn error(&self, status: StatusCode, message: &str) -> Response {
        error(status, self.redactor.text(message))
    }

    fn unknown_run(&self, run_id: &str) -> Response {
        self.error(
            StatusCode::NOT_FOUND,
            &format!("run {run_id} is not known here (only the last few runs are kept)"),
        )
    }

    pub(crate) fn refusal(&self, refused: &Refused) -> Response {
        let status = match refused {
            Refused::Busy(_)
            | Refused::RunExists(_)
            | Refused::OtherThread { .. }
            | Refused::NotRunning => StatusCode::CONFLICT,
            Refused::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            // As the platform's runner answers it.
            Refused::MidRun => StatusCode::UNPROCESSABLE_ENTITY,
            Refused::NothingNew
            | Refused::UnknownInterrupt { .. }
            | Refused::AnswerAndMessage
            | Refused::SeveralAnswers => StatusCode::BAD_REQUEST,
            Refused::Starting | Refused::Closed(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        debug!(%refused, "refused");
        self.error(status, &refused.to_string())
    }
}

/// Events a connection takes from the run at a time: with what hyper queues, all that a
/// connection holds.
const BATCH: usize = 64;
/// Small events are sent together, in pieces of about this size; a larger event goes as
/// it is, shared with the run's own copy.
const CHUNK_BYTES: usize = 16 << 10;

/// A connection following a run.
struct Follow {
    log: Arc<RunLog>,
    /// The last event sent.
    last: u64,
    changes: watch::Receiver<u64>,
    /// Set for the client that started the run: it paces the run.
    initiator: Option<Initiator>,
    /// Events taken from the run and not yet sent.
    pending: VecDeque<Numbered>,
    /// The run has ended, and `pending` holds its last events.
    ended: bool,
    /// Leaves `MESSAGES_SNAPSHOT` out (for the between-run listener).
    skip_snapshots: bool,
    /// Sent before the events.
    preface: Option<Bytes>,
    /// The connection is busy while the stream lasts; for the initiator, it is never cut
    /// for not reading.
    _marks: Vec<Marked>,
}

impl Follow {
    /// The next piece of the stream from the events taken: one large event as it is, or
    /// small ones together.
    fn next_chunk(&mut self) -> Option<Bytes> {
        let first = self.pending.pop_front()?;
        self.last = first.id;
        if first.len() >= CHUNK_BYTES / 4 || self.pending.front().is_none() {
            self.took(first.id);
            return Some(first.sse());
        }
        let mut chunk = Vec::with_capacity(CHUNK_BYTES);
        chunk.extend_from_slice(&first.sse());
        while let Some(next) = self.pending.front() {
            if chunk.len() + next.len() > CHUNK_BYTES {
                break;
            }
            chunk.extend_from_slice(&next.sse());
            self.last = next.id;
            self.pending.pop_front();
        }
        self.took(self.last);
        Some(Bytes::from(chunk))
    }

    fn took(&self, id: u64) {
        if let Some(initiator) = &self.initiator {
            initiator.taken(id);
        }
    }
}

/// The run's events after `after` as an SSE stream that follows the run to its end. A
/// client that asks from an event no longer kept gets `410 Gone`, naming what is kept.
fn stream(
    front: &Front,
    log: Arc<RunLog>,
    after: u64,
    initiator: Option<Initiator>,
    connection: Option<&ConnectionHandle>,
) -> Response {
    follow_response(front, log, after, initiator, None, connection)
}

/// [`stream`] for a client that comes back, with `preface` sent first.
fn stream_from(
    front: &Front,
    log: Arc<RunLog>,
    after: u64,
    preface: Option<Bytes>,
    connection: Option<&ConnectionHandle>,
) -> Response {
    follow_response(front, log, after, None, preface, connection)
}

fn follow_response(
    front: &Front,
    log: Arc<RunLog>,
    after: u64,
    initiator: Option<Initiator>,
    preface: Option<Bytes>,
    connection: Option<&ConnectionHandle>,
) -> Response {
    if let Err(gap) = log.since_at_most(after, 0) {
        return front.error(StatusCode::GONE, &format!("run {}: {gap}", log.run_id()));
    }
    let follow = Follow {
        changes: log.subscribe(),
        log,
        last: after,
        _marks: marks(connection, initiator.is_some()),
        initiator,
        pending: VecDeque::new(),
        ended: false,
        skip_snapshots: false,
        preface,
    };
    sse_response(follow_events(follow))
}

/// The connection is busy while a stream lasts; an initiator's is never cut for not
/// reading.
fn marks(connection: Option<&ConnectionHandle>, initiator: bool) -> Vec<Marked> {
    let mut marks = Vec::new();
    if let Some(connection) = connection {
        marks.push(connection.busy());
        if initiator {
            marks.push(connection.exempt());
        }
    }
    marks
}

/// The stream of a run that waits for the open one to end: nothing until it opens, then
/// its events; a run refused when its turn comes (or by the session's end) is streamed as
/// `RUN_STARTED` and `RUN_ERROR`, the status being sent already.
fn waiting_stream(
    front: &Front,
    (thread_id, run_id): (String, String),
    opened: oneshot::Receiver<Result<Initiator, Refused>>,
    connection: Option<&ConnectionHandle>,
) -> Response {
    let mut opening = Some((
        marks(connection, true),
        front.redactor.clone(),
        thread_id,
        run_id,
    ));
    // Until the run opens, a comment now and then, so that no proxy on the way takes the
    // quiet connection for a dead one (the run would never open for it).
    let waiting = futures_util::stream::unfold(Some(opened), |opened| async move {
        let mut opened = opened?;
        tokio::select! {
            result = &mut opened => Some((Err(result), None)),
            () = tokio::time::sleep(KEEPALIVE) => {
                Some((Ok(Bytes::from_static(b": keepalive\n\n")), Some(opened)))
            }
        }
    });
    let events = waiting.flat_map(move |item| match item {
        Ok(keepalive) => futures_util::stream::iter([Ok::<_, Infallible>(keepalive)]).boxed(),
        Err(result) => match opening.take() {
            Some((marks, redactor, thread_id, run_id)) => {
                opened_events(result, marks, &redactor, thread_id, run_id)
            }
            None => futures_util::stream::empty().boxed(),
        },
    });
    sse_response(events)
}

/// The stream of a run that waited, once its turn came: its events, or `RUN_STARTED` and
/// `RUN_ERROR` saying why it did not open.
fn opened_events(
    result: Result<Result<Initiator, Refused>, oneshot::error::RecvError>,
    marks: Vec<Marked>,
    redactor: &Redactor,
    thread_id: String,
    run_id: String,
) -> futures_util::stream::BoxStream<'static, Result<Bytes, Infallible>> {
    let why = match result {
        Ok(Ok(initiator)) => {
            let follow = Follow {
                changes: initiator.log.subscribe(),
                log: Arc::clone(&initiator.log),
                last: 0,
                initiator: Some(initiator),
                pending: VecDeque::new(),
                ended: false,
                skip_snapshots: false,
                preface: None,
                _marks: marks,
            };
            return follow_events(follow).boxed();
        }
        Ok(Err(refused)) => refused.to_string(),
        Err(_) => String::from("the session ended before this run opened"),
    };
    let message = redactor.text(&why).into_owned();
    let events = [
        AguiEvent::RunStarted { thread_id, run_id },
        AguiEvent::RunError { message },
    ];
    let chunks: Vec<Result<Bytes, Infallible>> = events
        .iter()
        .zip(1_u64..)
        .map(|(event, id)| {
            let json = serde_json::to_string(event).unwrap_or_default();
            Ok(Bytes::from(format!("id: {id}\ndata: {json}\n\n")))
        })
        .collect();
    futures_util::stream::iter(chunks).boxed()
}

/// A run's events from `follow`'s place to the run's end, with a keepalive comment on a
/// quiet stream.
fn follow_events(follow: Follow) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures_util::stream::unfold(Some(follow), |follow| async move {
        let mut follow = follow?;
        if let Some(preface) = follow.preface.take() {
            return Some((Ok::<_, Infallible>(preface), Some(follow)));
        }
        loop {
            if let Some(chunk) = follow.next_chunk() {
                let more = !(follow.ended && follow.pending.is_empty());
                return Some((Ok::<_, Infallible>(chunk), more.then_some(follow)));
            }
            if follow.ended {
                return None;
            }
            follow.changes.borrow_and_update();
            match follow.log.since_at_most(follow.last, BATCH) {
                Ok(batch) => {
                    follow.ended = batch.ended;
                    if let Some(newest) = batch.events.last().map(|event| event.id) {
                        let skip = follow.skip_snapshots;
                        follow.pending.extend(
                            batch
                                .events
                                .into_iter()
                                .filter(|event| !(skip && is_snapshot(event))),
                        );
                        if follow.pending.is_empty() {
                            follow.last = newest;
                        }
                        continue;
                    }
                    if batch.ended {
                        return None;
                    }
                }
                Err(gap) => {
                    // The client fell behind the buffer: the connection ends, and its
                    // reconnect is told what was lost.
                    warn!(run_id = %follow.log.run_id(), %gap, "a slow client lost its place; closing its stream");
                    return None;
                }
            }
            tokio::select! {
                // The log owns the sender and the stream holds the log, so this never
                // fails while the stream lives.
                _changed = follow.changes.changed() => {}
                () = tokio::time::sleep(KEEPALIVE) => {
                    return Some((Ok(Bytes::from_static(b": keepalive\n\n")), Some(follow)));
                }
            }
        }
    })
}

fn is_snapshot(event: &Numbered) -> bool {
    event.json().starts_with(r#"{"type":"MESSAGES_SNAPSHOT""#)
}

fn sse_response(
    events: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(events))
        .unwrap_or_else(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the stream could not start",
            )
        })
}
