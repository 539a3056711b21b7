//! The HTTP routes of the runner-facing API (`platform-wire.md` §3.1, §3.6, §4) and the
//! token check in front of them.

use std::{collections::HashMap, sync::Arc};

use ambient_protocol::{
    Secret,
    status::{ErrorBody, MessageHistory, MintedToken, Queued},
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, Request, State, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, Uri, header::AUTHORIZATION},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde_json::{Map, Value, json};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::{
    faults::{FaultRoute, Faults, error_text},
    message,
    persist::{self, Layout},
    registry::{PatchError, Registry},
    ws::{self, ConnectionContext},
};

/// The largest request body and WebSocket message accepted (the real backend has no
/// limit; large tool results must pass).
pub(crate) const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// The header a proxy puts the user's token in.
const FORWARDED_TOKEN: &str = "x-forwarded-access-token";
/// The error text of a GitHub token mint without credentials.
const NO_GITHUB_CREDENTIALS: &str = "no GitHub credentials available. Install the GitHub App for this user or set GIT_TOKEN in the project's runner secret";

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The bot tokens accepted: the first, and those a rotation added.
    pub(crate) tokens: std::sync::RwLock<Vec<Secret>>,
    pub(crate) github_token: Option<Secret>,
    pub(crate) registry: Registry,
    pub(crate) layout: Layout,
    pub(crate) connection: ConnectionContext,
    /// Tracks the WebSocket connections, so that shutdown can wait for them.
    pub(crate) connections: TaskTracker,
    /// Failures tests asked for.
    pub(crate) faults: Faults,
}

type AppState = Arc<Shared>;

/// Every route, with the token check on the project-scoped ones.
pub(crate) fn router(state: AppState) -> Router {
    let project_scoped = Router::new()
        .route(
            "/api/projects/{project}/sessions/{session}/ws",
            get(upgrade),
        )
        .route(
            "/api/projects/{project}/sessions/{session}/messages",
            get(history).post(post_message),
        )
        .route(
            "/api/projects/{project}/agentic-sessions/{session}",
            get(get_session).patch(patch_session),
        )
        .route(
            "/api/projects/{project}/agentic-sessions/{session}/status",
            put(put_status),
        )
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ));
    // The token mint does its own check, as in the real backend (routes.go).
    Router::new()
        .route(
            "/api/projects/{project}/agentic-sessions/{session}/github/token",
            post(mint_github_token),
        )
        .merge(project_scoped)
        .layer(DefaultBodyLimit::max(MAX_MESSAGE))
        .with_state(state)
}

fn error(status: StatusCode, text: &str) -> Response {
    let body = ErrorBody {
        error: text.to_owned(),
    };
    (status, Json(body)).into_response()
}

impl Shared {
    /// Whether `presented` is a bot token the backend accepts.
    pub(crate) fn accepts(&self, presented: &str) -> bool {
        let tokens = self
            .tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens
            .iter()
            .any(|token| same_token(presented.as_bytes(), token.expose().as_bytes()))
    }
}

/// Compares two tokens without stopping at the first difference.
pub(crate) fn same_token(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0_u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// The token of a project-scoped request, as `ValidateProjectContext` finds it: the bearer
/// token of `Authorization`, else `X-Forwarded-Access-Token`, else the `token` query
/// parameter.
pub(crate) fn presented_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    let forwarded = || {
        headers
            .get(FORWARDED_TOKEN)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .map(str::to_owned)
    };
    let query = || {
        Query::<HashMap<String, String>>::try_from_uri(uri)
            .ok()
            .and_then(|Query(mut query)| query.remove("token"))
            .filter(|token| !token.is_empty())
    };
    bearer.or_else(forwarded).or_else(query)
}

/// The token of an `Authorization: Bearer …` value, if it is one and not empty.
fn bearer_token(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match presented_token(request.headers(), request.uri()) {
        None => error(StatusCode::UNAUTHORIZED, "User token required"),
        Some(token) if !state.accepts(&token) => {
            debug!(
                path = request.uri().path(),
                "rejecting a request with a wrong token"
            );
            error(StatusCode::UNAUTHORIZED, "Invalid or missing token")
        }
        Some(_) => next.run(request).await,
    }
}

fn invalid_session_name() -> Response {
    error(StatusCode::BAD_REQUEST, "invalid session name")
}

async fn upgrade(
    State(state): State<AppState>,
    Path((_project, session)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !message::valid_session_name(&session) {
        return invalid_session_name();
    }
    if let Some(status) = state.faults.next(FaultRoute::Handshake).await {
        return injected(status);
    }
    let context = state.connection.clone();
    // Counted from here, so that shutdown also waits for an upgrade still in progress.
    let tracked = state.connections.token();
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            ws::serve(socket, session, context).await;
            drop(tracked);
        })
}

/// Whether a query value turns an option on, as the backend reads it.
pub(crate) fn truthy(value: &str) -> bool {
    ["1", "true", "yes"]
        .iter()
        .any(|yes| value.eq_ignore_ascii_case(yes))
}

async fn history(
    State(state): State<AppState>,
    Path((_project, session)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !message::valid_session_name(&session) {
        return invalid_session_name();
    }
    let include_partial = query
        .get("include_partial_messages")
        .is_some_and(|value| truthy(value));
    if let Err(error) = state.connection.hub.flush().await {
        warn!(%error, "could not flush the history before reading it");
    }
    let path = state.layout.messages_path(&session);
    match persist::read_history(&path, include_partial).await {
        Ok(messages) => Json(MessageHistory {
            session_id: session,
            messages,
        })
        .into_response(),
        Err(read_error) => {
            warn!(session, error = %read_error, "could not read a history file");
            error(StatusCode::INTERNAL_SERVER_ERROR, "failed to read messages")
        }
    }
}

async fn post_message(
    State(state): State<AppState>,
    Path((_project, session)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if !message::valid_session_name(&session) {
        return invalid_session_name();
    }
    let parsed = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| message::from_post(&session, body).ok());
    let Some(message) = parsed else {
        return error(StatusCode::BAD_REQUEST, "invalid JSON body");
    };
    match state.connection.hub.broadcast(message).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(Queued {
                status: "queued".to_owned(),
            }),
        )
            .into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "backend is shutting down"),
    }
}

fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

async fn put_status(
    State(state): State<AppState>,
    Path((project, session)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Some(status) = state.faults.next(FaultRoute::StatusUpdate).await {
        return injected(status);
    }
    let Some(update) = json_object(&body) else {
        return error(StatusCode::BAD_REQUEST, "Invalid request body");
    };
    if state.registry.merge_status(&project, &session, update) {
        Json(json!({"message": "agentic session status updated"})).into_response()
    } else {
        error(StatusCode::NOT_FOUND, "Session not found")
    }
}

/// A failure a test asked for.
fn injected(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(code, error_text(status))
}

async fn get_session(
    State(state): State<AppState>,
    Path((project, session)): Path<(String, String)>,
) -> Response {
    if let Some(status) = state.faults.next(FaultRoute::SessionGet).await {
        return injected(status);
    }
    match state.registry.resource_json(&project, &session) {
        Some(resource) => Json(resource).into_response(),
        None => error(StatusCode::NOT_FOUND, "Session not found"),
    }
}

async fn patch_session(
    State(state): State<AppState>,
    Path((project, session)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(patch) = json_object(&body) else {
        return error(StatusCode::BAD_REQUEST, "Invalid request body");
    };
    match state.registry.patch_annotations(&project, &session, &patch) {
        Ok(annotations) => Json(json!({
            "message": "Session patched successfully",
            "annotations": annotations,
        }))
        .into_response(),
        Err(PatchError::NotFound) => error(StatusCode::NOT_FOUND, "Session not found"),
        // What the real backend answers when the API server refuses the update.
        Err(PatchError::NotAString) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "Failed to patch session")
        }
    }
}

async fn mint_github_token(
    State(state): State<AppState>,
    Path((project, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return error(StatusCode::UNAUTHORIZED, "missing Authorization header");
    };
    let value = value.to_str().map(str::trim).unwrap_or_default();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return error(StatusCode::UNAUTHORIZED, "invalid Authorization header");
    }
    let token = token.trim();
    if token.is_empty() {
        return error(StatusCode::UNAUTHORIZED, "empty token");
    }
    if !state.accepts(token) {
        return error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    if !state.registry.contains(&project, &session) {
        return error(StatusCode::NOT_FOUND, "session not found");
    }
    match &state.github_token {
        Some(github) => Json(MintedToken {
            token: github.expose().to_owned(),
        })
        .into_response(),
        None => error(StatusCode::BAD_GATEWAY, NO_GITHUB_CREDENTIALS),
    }
}
