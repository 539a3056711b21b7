//! The token check in front of every project-scoped route (`ValidateProjectContext`).

use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::{connect_async, tungstenite};

use crate::support::{
    PROJECT, SESSION, TOKEN, backend, connect_to, http, next_message, send, url, within,
};

/// How a request presents its token.
#[derive(Debug, Clone, Copy)]
enum Presented {
    Nothing,
    Bearer(&'static str),
    Forwarded(&'static str),
    Query(&'static str),
}

/// Every project-scoped route, as method and path under the API URL.
fn routes() -> Vec<(Method, String)> {
    let session = format!("/projects/{PROJECT}/sessions/{SESSION}");
    let resource = format!("/projects/{PROJECT}/agentic-sessions/{SESSION}");
    vec![
        (Method::GET, format!("{session}/ws")),
        (Method::GET, format!("{session}/messages")),
        (Method::POST, format!("{session}/messages")),
        (Method::GET, resource.clone()),
        (Method::PATCH, resource.clone()),
        (Method::PUT, format!("{resource}/status")),
    ]
}

/// Sends every project-scoped route with `presented`; each must answer `expect` (a 401
/// error text), or anything but 401 when `expect` is `None`.
async fn check(presented: Presented, expect: Option<&str>) {
    let backend = backend().await;
    let client = http();
    for (method, path) in routes() {
        let target = match presented {
            Presented::Query(token) => format!("{}?token={token}", url(&backend, &path)),
            _ => url(&backend, &path),
        };
        let mut request = client.request(method.clone(), target).json(&json!({}));
        match presented {
            Presented::Nothing | Presented::Query(_) => {}
            Presented::Bearer(token) => request = request.bearer_auth(token),
            Presented::Forwarded(token) => {
                request = request.header("X-Forwarded-Access-Token", token);
            }
        }
        let response = within(request.send()).await.expect("response");
        let status = response.status().as_u16();
        match expect {
            Some(error) => {
                let body: serde_json::Value = within(response.json()).await.expect("JSON");
                assert_eq!(
                    (status, body),
                    (401, json!({"error": error})),
                    "{method} {path} with {presented:?}"
                );
            }
            None => assert_ne!(status, 401, "{method} {path} with {presented:?}"),
        }
    }
    backend.shutdown().await;
}

#[tokio::test]
async fn no_token_is_refused() {
    check(Presented::Nothing, Some("User token required")).await;
}

#[tokio::test]
async fn a_wrong_token_is_refused_in_every_form() {
    for presented in [
        Presented::Bearer("wrong"),
        Presented::Forwarded("wrong"),
        Presented::Query("wrong"),
        Presented::Bearer("bot-token-for-test"),
    ] {
        check(presented, Some("Invalid or missing token")).await;
    }
}

#[tokio::test]
async fn the_right_token_passes_in_every_form() {
    for presented in [
        Presented::Bearer(TOKEN),
        Presented::Forwarded(TOKEN),
        Presented::Query(TOKEN),
    ] {
        check(presented, None).await;
    }
}

#[tokio::test]
async fn a_websocket_handshake_without_a_valid_token_gets_the_json_error() {
    let backend = backend().await;
    let bare = backend.ws_url(PROJECT, SESSION);
    for (url, error) in [
        (bare.clone(), "User token required"),
        (format!("{bare}?token=wrong"), "Invalid or missing token"),
    ] {
        let refused = within(Box::pin(connect_async(url.as_str()))).await;
        let Err(tungstenite::Error::Http(response)) = refused else {
            panic!("{url}: expected an HTTP refusal, got {refused:?}");
        };
        assert_eq!(response.status().as_u16(), 401, "{url}");
        let body: serde_json::Value =
            serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                .expect("JSON body");
        assert_eq!(body, json!({"error": error}), "{url}");
    }
    backend.shutdown().await;
}

#[tokio::test]
async fn a_websocket_accepts_the_token_in_the_header() {
    let backend = backend().await;
    let url = backend.ws_url(PROJECT, SESSION);
    let mut ws = connect_to(&backend, SESSION, &url, Some(&format!("Bearer {TOKEN}"))).await;
    send(&mut ws, r#"{"type":"agent.running","payload":{}}"#).await;
    assert_eq!(next_message(&mut ws).await.kind, "agent.running");
    backend.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let backend = backend().await;
    let client = http();
    for path in [
        "/projects",
        "/nothing",
        &format!("/projects/{PROJECT}/sessions/{SESSION}"),
    ] {
        let response = within(client.get(url(&backend, path)).bearer_auth(TOKEN).send())
            .await
            .expect("response");
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
    let root = within(client.get(format!("http://{}/", backend.addr())).send())
        .await
        .expect("response");
    assert_eq!(root.status().as_u16(), 404);
    backend.shutdown().await;
}
