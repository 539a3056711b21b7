//! The client against a real HTTP server on loopback that records what it receives and
//! fails on demand.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use ambient_protocol::{
    Secret,
    status::{AnnotationPatch, Phase, StatusUpdate},
};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::IntoResponse,
};

use crate::{Endpoints, RetryPolicy, StatusClient};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    /// Statuses to answer before the real answer, one per request.
    failures: Mutex<VecDeque<u16>>,
    answer: Mutex<String>,
}

async fn record(
    State(recorder): State<Arc<Recorder>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    recorder.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_owned(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if let Some(status) = recorder.failures.lock().unwrap().pop_front() {
        let status = StatusCode::from_u16(status).unwrap();
        return (
            status,
            String::from(r#"{"error":"Failed to update agentic session status"}"#),
        );
    }
    (StatusCode::OK, recorder.answer.lock().unwrap().clone())
}

async fn server(answer: &str, failures: &[u16]) -> (Arc<Recorder>, StatusClient) {
    let recorder = Arc::new(Recorder::default());
    *recorder.answer.lock().unwrap() = answer.to_owned();
    recorder.failures.lock().unwrap().extend(failures);
    let app = Router::new().fallback(record).with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let endpoints = Endpoints::new(&format!("http://{addr}/api"), "proj", "sess-1").unwrap();
    let retry = RetryPolicy {
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        ..RetryPolicy::default()
    };
    ambient_test_support::crypto();
    let client = StatusClient::new(endpoints, Some(Secret::new("tok-123")), retry).unwrap();
    (recorder, client)
}

fn running() -> StatusUpdate {
    StatusUpdate {
        phase: Some(Phase::Running),
        message: Some(String::from("Runner started")),
        ..StatusUpdate::default()
    }
}

#[tokio::test]
async fn put_status_sends_the_body_with_the_bearer_token() {
    let (recorder, client) = server(r#"{"message":"agentic session status updated"}"#, &[]).await;
    client.put_status(&running()).await.unwrap();
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::PUT);
    assert_eq!(
        seen[0].path,
        "/api/projects/proj/agentic-sessions/sess-1/status"
    );
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer tok-123"));
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        seen[0].body,
        r#"{"phase":"Running","message":"Runner started"}"#
    );
}

#[tokio::test]
async fn retryable_failures_are_retried_until_the_call_lands() {
    let (recorder, client) = server("{}", &[500, 503, 409, 429]).await;
    client.put_status(&running()).await.unwrap();
    assert_eq!(recorder.seen.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn a_client_error_is_not_retried_and_names_the_call() {
    let (recorder, client) = server("{}", &[403]).await;
    let error = client.put_status(&running()).await.unwrap_err();
    assert_eq!(recorder.seen.lock().unwrap().len(), 1);
    assert!(!error.is_retryable());
    assert!(error.is_auth());
    assert_eq!(
        error.to_string(),
        "PUT /api/projects/proj/agentic-sessions/sess-1/status answered HTTP 403: Failed to update agentic session status"
    );
}

#[tokio::test]
async fn a_call_that_never_lands_reports_its_attempts() {
    let (recorder, client) = server("{}", &[500; 10]).await;
    let error = client.put_status(&running()).await.unwrap_err();
    assert_eq!(recorder.seen.lock().unwrap().len(), 6);
    assert!(
        error.to_string().starts_with("gave up after 6 attempts"),
        "{error}"
    );
    assert_eq!(error.status(), Some(500));
}

#[tokio::test]
async fn an_unreachable_backend_is_a_retryable_connect_error() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoints = Endpoints::new(&format!("http://127.0.0.1:{port}/api"), "p", "s").unwrap();
    let retry = RetryPolicy {
        attempts: 2,
        initial_delay: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    ambient_test_support::crypto();
    let client = StatusClient::new(endpoints, None, retry).unwrap();
    let error = client.put_status(&running()).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(
        error.to_string().starts_with("gave up after 2 attempts"),
        "{error}"
    );
}

#[tokio::test]
async fn annotations_are_patched_as_a_merge_patch() {
    let (recorder, client) = server(
        r#"{"message":"Session patched successfully","annotations":{"a":"b"}}"#,
        &[],
    )
    .await;
    let accepted = client
        .patch_annotations(&AnnotationPatch::single(
            "ambient-code.io/sdk-session-id",
            "abc",
        ))
        .await
        .unwrap();
    assert_eq!(accepted.annotations.get("a").map(String::as_str), Some("b"));
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen[0].method, Method::PATCH);
    assert_eq!(seen[0].path, "/api/projects/proj/agentic-sessions/sess-1");
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        seen[0].body,
        r#"{"metadata":{"annotations":{"ambient-code.io/sdk-session-id":"abc"}}}"#
    );
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_is_a_decode_error() {
    let (_, client) = server(r#"{"unexpected":true}"#, &[]).await;
    let error = client.get_session("parent").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "GET /api/projects/proj/agentic-sessions/parent answered with a body that could not be read"
    );
}

#[test]
fn endpoints_derive_from_the_websocket_url_as_a_fallback() {
    let cases = [
        (
            "ws://backend-service.ns.svc.cluster.local:8080/api/projects/p1/sessions/s1/ws",
            Some(
                "http://backend-service.ns.svc.cluster.local:8080/api/projects/p1/agentic-sessions/s1/status",
            ),
        ),
        (
            "wss://example.com/api/projects/p1/sessions/s1/ws?token=x",
            Some("https://example.com/api/projects/p1/agentic-sessions/s1/status"),
        ),
        ("ws://backend:8080/session/ws", None),
        ("not a url", None),
    ];
    for (ws, expect) in cases {
        let got = Endpoints::from_websocket_url(ws).map(|e| e.status_url().unwrap().to_string());
        assert_eq!(got.as_deref(), expect, "{ws}");
    }
    let explicit = Endpoints::new("http://h:1/api/", "p", "s").unwrap();
    assert_eq!(
        explicit.messages_url().unwrap().as_str(),
        "http://h:1/api/projects/p/sessions/s/messages"
    );
    assert_eq!(
        explicit.websocket_url().unwrap().as_str(),
        "ws://h:1/api/projects/p/sessions/s/ws"
    );
    assert!(Endpoints::new("ftp://h/api", "p", "s").is_err());
}
