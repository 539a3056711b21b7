//! Secrets against what the agent can make the runner say, through the real binary on both
//! fronts: a token streamed in pieces, a token the runner learned after it started (a
//! rotated bot token), and a repository a peer adds on a host no token is for.

use ambient_local_backend::SessionSeed;
use ambient_test_support::{
    FaultProxy, GitHttpServer,
    agui::{Served, run_input, serve_command},
    git_repos::bare_repo,
    harness::{TOKEN, transcript, until},
};
use serde_json::json;

use crate::support::{Backend, PROJECT, SESSION, backend};

/// A credential the runner holds, of no known token shape: only knowing it scrubs it.
const PLANTED: &str = "planted-gh-token-5a7c1e9d";

/// Every 8 characters of `secret`: none may appear anywhere.
#[track_caller]
fn assert_no_part_of(secret: &str, text: &str) {
    for part in secret.as_bytes().windows(8) {
        let part = std::str::from_utf8(part).unwrap();
        assert!(
            !text.contains(part),
            "{part:?} of the secret went out:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_token_streamed_in_pieces_never_reaches_the_backend() {
    for pieces in [2, 3, 30] {
        let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
        let prompt = format!("stream {pieces} the token is {PLANTED}, keep it safe");
        let child = env
            .runner(&[("PROMPT", prompt.as_str()), ("GITHUB_TOKEN", PLANTED)])
            .spawn()
            .unwrap();
        let finished = env.finish(child).await;
        assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
        let stored = std::fs::read_to_string(env.backend.messages_path(SESSION)).unwrap();
        assert_no_part_of(PLANTED, &stored);
        assert_no_part_of(PLANTED, &finished.stderr);
        let streamed: String = env
            .backend
            .history(SESSION)
            .await
            .iter()
            .filter_map(|m| m.payload["partial"]["data"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            streamed, "the token is ***REDACTED***, keep it safe",
            "{pieces} pieces"
        );
    }
}

#[tokio::test]
async fn a_token_streamed_in_pieces_never_reaches_an_ag_ui_client() {
    let workspace = tempfile::tempdir().unwrap();
    let mut command = serve_command(env!("CARGO_BIN_EXE_echo-runner"), workspace.path());
    command.env("GITHUB_TOKEN", PLANTED);
    let served = Served::start(command, workspace.path()).await;
    for (run, pieces) in [2, 3, 30].into_iter().enumerate() {
        let said = format!("stream {pieces} the token is {PLANTED}, keep it safe");
        let events = served
            .run(&run_input(
                "t1",
                &format!("r{run}"),
                &[(&format!("u{run}"), "user", said.as_str())],
            ))
            .await;
        let text: String = events.iter().map(|e| e.data.to_string()).collect();
        assert_no_part_of(PLANTED, &text);
        let streamed: String = events
            .iter()
            .filter(|e| e.kind() == "TEXT_MESSAGE_CONTENT")
            .filter_map(|e| e.data["delta"].as_str().map(str::to_owned))
            .take_while(|delta| !delta.starts_with("stream "))
            .collect();
        assert_eq!(streamed, "the token is ***REDACTED***, keep it safe");
    }
    let finished = served.stop().await;
    assert_no_part_of(PLANTED, &finished.stderr);
}

#[tokio::test]
async fn a_rotated_bot_token_is_scrubbed_once_the_runner_reads_it() {
    const ROTATED: &str = "rotated-bot-token-77c1d2e3";
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let token_file = env.workspace.path().join("bot-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let proxy = FaultProxy::start(env.backend.addr()).await.unwrap();
    let ws = proxy.route(&env.backend.ws_url(PROJECT, SESSION));
    let mut watch = env.backend.watch(SESSION);
    let child = env
        .runner(&[
            ("INTERACTIVE", "true"),
            ("PROMPT", "hi"),
            ("BOT_TOKEN_FILE", token_file.to_str().unwrap()),
            ("WEBSOCKET_URL", ws.as_str()),
        ])
        .spawn()
        .unwrap();
    until(&mut watch, |m| m.kind == "agent.waiting").await;
    // The platform rotates the token; the runner meets it when it reconnects.
    env.backend.accept_token(ROTATED);
    std::fs::write(&token_file, ROTATED).unwrap();
    proxy.cut();
    proxy.wait_for_accepted(2).await;
    env.post(json!({ "content": format!("stream 5 my new token is {ROTATED}!") }))
        .await;
    until(&mut watch, |m| m.kind == "agent.waiting").await;
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let frames: String = env
        .backend
        .history(SESSION)
        .await
        .iter()
        .filter(|m| m.kind != "user_message")
        .map(|m| m.payload.to_string())
        .collect();
    assert!(
        frames.contains("my new token is ***REDACTED***"),
        "{frames}"
    );
    assert_no_part_of(ROTATED, &frames);
    assert_no_part_of(ROTATED, &finished.stderr);
}

#[tokio::test]
async fn a_repository_added_on_a_host_no_token_is_for_gets_none() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let origins = tempfile::tempdir().unwrap();
    bare_repo(origins.path(), "o", "elsewhere");
    let server = GitHttpServer::start_tls(origins.path(), "x-access-token", PLANTED)
        .await
        .unwrap();
    let certificate = server.certificate().unwrap().to_str().unwrap().to_owned();
    let mut watch = env.backend.watch(SESSION);
    let child = env
        .runner(&[
            ("INTERACTIVE", "true"),
            ("GITHUB_TOKEN", PLANTED),
            ("GIT_SSL_CAINFO", certificate.as_str()),
        ])
        .spawn()
        .unwrap();
    env.backend.wait_for_connections(SESSION, 1).await.unwrap();
    env.post(json!({
        "type": "repo_added",
        "name": "elsewhere",
        "url": server.url("o/elsewhere.git"),
    }))
    .await;
    until(&mut watch, |m| {
        m.payload["message"]
            .as_str()
            .is_some_and(|line| line.starts_with("✗ elsewhere:"))
    })
    .await;
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert!(server.requests() > 0, "git never asked the server");
    assert_eq!(server.authorized_requests(), 0);
    for seen in server.credentials_seen() {
        assert_eq!(
            seen, "Basic Og==",
            "a credential went to a host it is not for"
        );
    }
    let lines = transcript(&env.backend).await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("elsewhere: cloned without a token")
                && l.contains("is not a host the tokens are for")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_token_minted_mid_session_is_scrubbed_from_the_moment_it_is_minted() {
    // No token shape: only learning it scrubs it.
    const MINTED: &str = "mnt7Qx2-kz8RpW4-vb5y";
    let env = Backend::start_built(
        env!("CARGO_BIN_EXE_echo-runner"),
        [SessionSeed::new(PROJECT, SESSION)],
        |builder| builder.github_token(MINTED),
    )
    .await;
    let origins = tempfile::tempdir().unwrap();
    bare_repo(origins.path(), "o", "app");
    let server = GitHttpServer::start_tls(origins.path(), "x-access-token", MINTED)
        .await
        .unwrap();
    let certificate = server.certificate().unwrap().to_str().unwrap().to_owned();
    let mut watch = env.backend.watch(SESSION);
    let child = env
        .runner(&[
            ("INTERACTIVE", "true"),
            ("GITHUB_HOSTS", server.host().as_str()),
            ("GIT_SSL_CAINFO", certificate.as_str()),
        ])
        .spawn()
        .unwrap();
    env.backend.wait_for_connections(SESSION, 1).await.unwrap();
    // The repository is on a GitHub host and the session has no token: one is minted.
    env.post(json!({"type": "repo_added", "name": "app", "url": server.url("o/app.git")}))
        .await;
    until(&mut watch, |m| {
        m.payload["message"] == json!("✓ app: added")
    })
    .await;
    assert!(
        server.authorized_requests() > 0,
        "the minted token was not used"
    );
    for pieces in [2, 3, 30] {
        env.post(json!({ "content": format!("stream {pieces} it cloned with {MINTED} fine") }))
            .await;
        until(&mut watch, |m| m.kind == "agent.waiting").await;
    }
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let history = env.backend.history(SESSION).await;
    let frames: String = history
        .iter()
        .filter(|m| m.kind != "user_message")
        .map(|m| m.payload.to_string())
        .collect();
    let streamed: String = history
        .iter()
        .filter_map(|m| m.payload["partial"]["data"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(streamed, "it cloned with ***REDACTED*** fine".repeat(3));
    assert_no_part_of(MINTED, &frames);
    assert_no_part_of(MINTED, &finished.stderr);
}
