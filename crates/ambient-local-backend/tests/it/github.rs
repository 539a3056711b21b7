//! `POST …/github/token`: its own token check, then the session, then the credentials.

use serde_json::{Value, json};

use crate::support::{PROJECT, SESSION, TOKEN, answer, builder, http, start, url};

/// Posts the mint for `session` with `authorization` (and the project routes' query token) to a backend with or
/// without a GitHub token, and checks the answer.
async fn check(
    github: Option<&'static str>,
    session: &'static str,
    authorization: Option<&'static str>,
    expect: (u16, Value),
) {
    let mut backend = builder();
    if let Some(token) = github {
        backend = backend.github_token(token);
    }
    let backend = start(backend).await;
    let target = url(
        &backend,
        &format!("/projects/{PROJECT}/agentic-sessions/{session}/github/token?token={TOKEN}"),
    );
    let mut request = http().post(target).json(&json!({}));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let got = answer(request).await;
    assert_eq!(got, expect, "{authorization:?} {session}");
    backend.shutdown().await;
}

fn refused(status: u16, error: &str) -> (u16, Value) {
    (status, json!({"error": error}))
}

#[tokio::test]
async fn the_mint_checks_its_own_authorization_header() {
    // The query token of the project routes does not count here.
    check(
        Some("ghs_x"),
        SESSION,
        None,
        refused(401, "missing Authorization header"),
    )
    .await;
    check(
        Some("ghs_x"),
        SESSION,
        Some("Basic abc"),
        refused(401, "invalid Authorization header"),
    )
    .await;
    check(
        Some("ghs_x"),
        SESSION,
        Some("Bearer "),
        refused(401, "empty token"),
    )
    .await;
    check(
        Some("ghs_x"),
        SESSION,
        Some("Bearer wrong"),
        refused(401, "unauthenticated"),
    )
    .await;
}

#[tokio::test]
async fn the_mint_needs_a_known_session() {
    let bearer = Some("Bearer bot-token-for-tests");
    check(
        Some("ghs_x"),
        "nobody",
        bearer,
        refused(404, "session not found"),
    )
    .await;
}

#[tokio::test]
async fn the_mint_answers_the_configured_token() {
    let bearer = Some("Bearer bot-token-for-tests");
    check(
        Some("ghs_minted"),
        SESSION,
        bearer,
        (200, json!({"token": "ghs_minted"})),
    )
    .await;
}

#[tokio::test]
async fn the_mint_without_credentials_is_a_bad_gateway() {
    let backend = start(builder()).await;
    let target = url(
        &backend,
        &format!("/projects/{PROJECT}/agentic-sessions/{SESSION}/github/token"),
    );
    let (status, body) = answer(http().post(target).bearer_auth(TOKEN).json(&json!({}))).await;
    assert_eq!(status, 502);
    let error = body["error"].as_str().expect("an error text");
    assert!(
        error.starts_with("no GitHub credentials available. "),
        "{error}"
    );
    backend.shutdown().await;
}
