//! The lifecycle a platform can trust, through the real binary: status retries, stops,
//! timeouts, interrupts, secrets, and bad input.

use std::time::{Duration, Instant};

use ambient_local_backend::{FaultRoute, SessionSeed};
use ambient_protocol::{SessionMessage, status::Phase};
use ambient_test_support::harness::{terminate, until};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support::{Backend, PROJECT, SESSION, TOKEN, backend};

fn is(kind: &'static str) -> impl Fn(&SessionMessage) -> bool {
    move |m| m.kind == kind
}

async fn interactive(
    env: &Backend,
    extra: &[(&str, &str)],
) -> (tokio::process::Child, UnboundedReceiver<SessionMessage>) {
    let mut watch = env.backend.watch(SESSION);
    let mut vars = vec![("INTERACTIVE", "true"), ("PROMPT", "first")];
    vars.extend_from_slice(extra);
    let child = env.runner(&vars).spawn().unwrap();
    until(&mut watch, is("agent.waiting")).await;
    (child, watch)
}

/// A runner in an endless burst of small text frames, once the burst is under way.
async fn bursting(
    env: &Backend,
    extra: &[(&str, &str)],
) -> (tokio::process::Child, UnboundedReceiver<SessionMessage>) {
    let mut watch = env.backend.watch(SESSION);
    let mut vars = vec![
        ("PROMPT", "go"),
        ("ECHO_BURST_EVENTS", "100000000"),
        ("ECHO_BURST_BYTES", "10"),
    ];
    vars.extend_from_slice(extra);
    let child = env.runner(&vars).spawn().unwrap();
    until(&mut watch, |m| {
        m.payload["content"]["text"] == json!("x".repeat(10))
    })
    .await;
    (child, watch)
}

#[tokio::test]
async fn the_final_status_lands_through_500_503_and_409() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let (child, _watch) = interactive(&env, &[]).await;
    env.backend
        .fail_next(FaultRoute::StatusUpdate, [500, 503, 409, 503]);
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_eq!(
        env.backend.status(PROJECT, SESSION).unwrap()["phase"],
        json!("Completed")
    );
}

#[tokio::test]
async fn a_status_endpoint_that_never_recovers_is_the_status_not_written_exit() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let (child, _watch) = interactive(&env, &[]).await;
    env.backend.fail_status_updates(Some(503));
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(4), "stderr:\n{}", finished.stderr);
    assert!(
        finished.stderr.contains("HTTP 503"),
        "stderr:\n{}",
        finished.stderr
    );
    assert_eq!(
        env.backend.status(PROJECT, SESSION).unwrap()["phase"],
        json!("Running")
    );
}

#[tokio::test]
async fn sigterm_mid_turn_stops_within_the_bound_and_leaves_stopped_alone() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let (child, _watch) = bursting(&env, &[]).await;
    // The platform's stop: the backend writes Stopped, then the pod gets SIGTERM.
    let client = reqwest_put_stopped(&env).await;
    assert!(client, "the stop could not be written");
    let stopped_at = Instant::now();
    terminate(&child);
    let finished = env.finish(child).await;
    let took = stopped_at.elapsed();
    assert_eq!(finished.code, Some(143), "stderr:\n{}", finished.stderr);
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM"
    );
    assert_eq!(
        env.backend.status(PROJECT, SESSION).unwrap()["phase"],
        json!("Stopped")
    );
}

/// Writes `Stopped` as the backend's stop handler does.
async fn reqwest_put_stopped(env: &Backend) -> bool {
    let url = format!(
        "{}/projects/{PROJECT}/agentic-sessions/{SESSION}/status",
        env.backend.api_url()
    );
    let output = tokio::process::Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            "-H",
            "Content-Type: application/json",
        ])
        .args([
            "-d",
            r#"{"phase":"Stopped","message":"Session stopped by user"}"#,
            &url,
        ])
        .output()
        .await
        .unwrap();
    output.status.success()
}

#[tokio::test]
async fn the_timeout_fails_the_session_and_says_so() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let child = env
        .runner(&[("INTERACTIVE", "true"), ("TIMEOUT", "1")])
        .spawn()
        .unwrap();
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(124), "stderr:\n{}", finished.stderr);
    let status = env.backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Failed"));
    assert_eq!(status["message"], json!("Session timed out after 1s"));
}

#[tokio::test]
async fn an_interrupt_is_acted_on_mid_turn() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let (child, mut watch) = bursting(&env, &[("INTERACTIVE", "true")]).await;
    env.post(json!({"type": "interrupt"})).await;
    until(&mut watch, |m| {
        m.payload["payload"]["subtype"] == json!("interrupted")
    })
    .await;
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
}

#[tokio::test]
async fn planted_secrets_reach_no_frame_log_or_status() {
    const ANTHROPIC: &str = "sk-ant-api03-planted-key-0123456789";
    const GITHUB: &str = "ghp_plantedplantedplantedplantedplant01";
    const LANGGRAPH: &str = "lg-planted-langgraph-key-77";
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    // The prompt carries two of them: the echo adapter repeats its input in a text block,
    // a tool input, a tool result and a result.
    let prompt = format!("use {ANTHROPIC} and {GITHUB} and {LANGGRAPH} and {TOKEN}");
    let (child, _watch) = interactive(
        &env,
        &[
            ("PROMPT", prompt.as_str()),
            ("ANTHROPIC_API_KEY", ANTHROPIC),
            ("GITHUB_TOKEN", GITHUB),
            ("LANGGRAPH_API_KEY", LANGGRAPH),
            ("RUST_LOG", "trace"),
        ],
    )
    .await;
    env.post(json!({"content": format!("my token is {TOKEN}, key {ANTHROPIC}")}))
        .await;
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let ours: Vec<String> = env
        .persisted()
        .await
        .into_iter()
        .filter(|m| m["payload"]["frame_id"].is_string())
        .map(|m| m.to_string())
        .collect();
    assert!(
        ours.iter().any(|m| m.contains("***REDACTED***")),
        "nothing was redacted: {ours:?}"
    );
    let status = serde_json::to_string(&env.backend.status(PROJECT, SESSION).unwrap()).unwrap();
    for secret in [ANTHROPIC, GITHUB, LANGGRAPH, TOKEN] {
        for frame in &ours {
            assert!(!frame.contains(secret), "{secret} in a frame: {frame}");
        }
        assert!(!finished.stderr.contains(secret), "{secret} in the log");
        assert!(!finished.stdout.contains(secret), "{secret} on stdout");
        assert!(!status.contains(secret), "{secret} in the status: {status}");
    }
}

#[tokio::test]
async fn bad_settings_are_named_with_the_configuration_exit() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("SESSION_ID", "")], "SESSION_ID is not set"),
        (
            &[("WEBSOCKET_URL", "http://backend/ws")],
            "WEBSOCKET_URL is invalid: expected a ws:// or wss:// URL",
        ),
        (&[("BACKEND_API_URL", "nope")], "BACKEND_API_URL is invalid"),
        (&[("INTERACTIVE", "maybe")], "INTERACTIVE"),
        (&[("TIMEOUT", "soon")], "TIMEOUT"),
        (
            &[("REPOS_JSON", "[{\"name\": \"a\"}]")],
            "REPOS_JSON is invalid",
        ),
        (&[("MAIN_REPO_INDEX", "-1")], "MAIN_REPO_INDEX is invalid"),
        (&[("LLM_TEMPERATURE", "hot")], "LLM_TEMPERATURE is invalid"),
    ];
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    for (vars, expect) in cases {
        let finished = env.finish(env.runner(vars).spawn().unwrap()).await;
        assert_eq!(
            finished.code,
            Some(2),
            "{vars:?}: stderr:\n{}",
            finished.stderr
        );
        assert!(
            finished.stderr.contains(expect),
            "{vars:?} should say {expect:?}:\n{}",
            finished.stderr
        );
        assert!(!finished.stderr.contains("panicked"), "{vars:?} panicked");
    }
}

#[tokio::test]
async fn refused_handshakes_are_named_and_a_500_is_retried() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    for (status, code, expect) in [(403, 3, "HTTP 403"), (500, 0, "")] {
        env.backend.fail_next(FaultRoute::Handshake, [status]);
        let finished = env
            .finish(env.runner(&[("PROMPT", "x")]).spawn().unwrap())
            .await;
        assert_eq!(
            finished.code,
            Some(code),
            "{status}: stderr:\n{}",
            finished.stderr
        );
        assert!(
            finished.stderr.contains(expect),
            "{status}: stderr:\n{}",
            finished.stderr
        );
    }
    let wrong_path = env.backend.ws_url(PROJECT, SESSION).replace("/ws", "/nope");
    let finished = env
        .finish(
            env.runner(&[("WEBSOCKET_URL", wrong_path.as_str())])
                .spawn()
                .unwrap(),
        )
        .await;
    assert_eq!(finished.code, Some(3), "stderr:\n{}", finished.stderr);
    assert!(
        finished.stderr.contains("HTTP 404"),
        "stderr:\n{}",
        finished.stderr
    );
}

#[tokio::test]
async fn malformed_unknown_and_oversized_messages_do_not_break_a_session() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let (child, mut watch) = interactive(&env, &[]).await;
    env.post(json!({"content": 5})).await;
    env.post(json!({"type": "user_message"})).await;
    env.post(json!({"type": "repo_removed", "name": 7})).await;
    env.post(json!({"type": "brand_new_type", "whatever": [1, 2, 3]}))
        .await;
    let huge = "h".repeat(3 << 20);
    env.post(json!({"content": huge})).await;
    env.post(json!({"content": "still here"})).await;
    until(&mut watch, |m| {
        m.payload["content"]["text"] == json!("still here")
    })
    .await;
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert!(!finished.stderr.contains("panicked"));
    assert!(
        finished
            .stderr
            .contains("payload of a `user_message` message has the wrong shape"),
        "stderr:\n{}",
        finished.stderr
    );
    let phase = env
        .backend
        .session(PROJECT, SESSION)
        .unwrap()
        .status
        .unwrap()
        .phase;
    assert_eq!(phase, Some(Phase::Completed));
}

#[tokio::test]
async fn sigterm_while_the_backend_is_away_still_exits_within_the_bound() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let proxy = ambient_test_support::FaultProxy::start(env.backend.addr())
        .await
        .unwrap();
    let ws = proxy.route(&env.backend.ws_url(PROJECT, SESSION));
    let api = proxy.route(&env.backend.api_url());
    let (child, _watch) = bursting(
        &env,
        &[
            ("WEBSOCKET_URL", ws.as_str()),
            ("BACKEND_API_URL", api.as_str()),
        ],
    )
    .await;
    proxy.set_down(true);
    let stopped_at = Instant::now();
    terminate(&child);
    let finished = env.finish(child).await;
    let took = stopped_at.elapsed();
    assert_eq!(finished.code, Some(143), "stderr:\n{}", finished.stderr);
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM"
    );
}

#[tokio::test]
async fn log_format_json_writes_one_json_object_per_line() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let finished = env
        .finish(
            env.runner(&[
                ("PROMPT", "x"),
                ("LOG_FORMAT", "json"),
                ("RUST_LOG", "info"),
            ])
            .spawn()
            .unwrap(),
        )
        .await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines: Vec<&str> = finished.stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
}
