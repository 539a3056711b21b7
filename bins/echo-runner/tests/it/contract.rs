//! The echo runner dropped in for the platform's own runner: started by the operator's
//! environment alone, driven by calls made the way the platform's backend makes them
//! (`docs/platform-contract.md`).

use ambient_agui::AguiEvent;
use ambient_test_support::{
    agui::{Served, check_run, read_sse},
    platform::{
        BOT_TOKEN, Backend, BackendCalls, PROJECT, SESSION, free_port, operator_command,
        relay_lines,
    },
};
use serde_json::{Value, json};

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect()
}

fn texts(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter(|event| event["type"] == "TEXT_MESSAGE_CONTENT")
        .map(|event| event["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_operators_environment_the_backends_calls_and_the_initial_prompt() {
    let workspace = tempfile::tempdir().unwrap();
    // The backend is not ready for the first post: the runner tries again.
    let mut backend = Backend::start(1).await;
    let port = free_port();
    let command = operator_command(
        env!("CARGO_BIN_EXE_echo-runner"),
        workspace.path(),
        port,
        &backend,
        Some("Summarise the repository"),
    );
    let calls = BackendCalls::new(format!("http://127.0.0.1:{port}"));

    // The run proxy's first POST goes while the pod starts, tried again while the
    // connection is refused; it is answered 200, and its run follows once the session
    // takes runs. Its body is in snake case, which the platform's runner also takes.
    let first_body = json!({
        "thread_id": SESSION,
        "run_id": "run-first",
        "messages": [{"role": "user", "content": "hello from the backend"}],
    });
    let (served, first) = tokio::join!(
        Served::start(command, workspace.path()),
        calls.run(&first_body)
    );
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "text/event-stream");
    let (first, _) = relay_lines(first).await;
    assert_eq!(first[0]["type"], "RUN_STARTED");
    assert_eq!(first[0]["runId"], "run-first");
    assert_eq!(texts(&first), ["hello from the backend"]);
    // The backend keeps a finished run as its snapshot, and a run without one as corrupt.
    let kinds_of_first = kinds(&first);
    assert_eq!(
        kinds_of_first[kinds_of_first.len() - 2..],
        ["MESSAGES_SNAPSHOT", "RUN_FINISHED"]
    );
    let snapshot = &first[first.len() - 2]["messages"];
    assert_eq!(snapshot[0]["role"], "user");
    assert_eq!(snapshot[0]["content"], "hello from the backend");
    assert!(
        snapshot[0]["id"].as_str().unwrap().starts_with("unnamed-"),
        "a message without an id is given one"
    );
    let usage = &first.last().unwrap()["usage"];
    assert_eq!(usage[0]["inputTokens"], 0, "{usage}");

    // The initial prompt: posted to the backend, with the bot token, as a hidden user
    // message of the session; tried again after the backend's 503.
    let refused = backend.next_post().await;
    let taken = backend.next_post().await;
    for posted in [&refused, &taken] {
        assert_eq!(
            posted.path,
            format!("/api/projects/{PROJECT}/agentic-sessions/{SESSION}/agui/run")
        );
        assert_eq!(
            posted.authorization.as_deref(),
            Some(format!("Bearer {BOT_TOKEN}").as_str())
        );
        assert_eq!(posted.body["threadId"], SESSION);
        let message = &posted.body["messages"][0];
        assert_eq!(message["role"], "user");
        assert_eq!(message["content"], "Summarise the repository");
        assert_eq!(
            message["metadata"],
            json!({"hidden": true, "autoSent": true, "source": "runner_initial_prompt"})
        );
    }
    assert_ne!(
        refused.body["runId"], taken.body["runId"],
        "each try is a new run"
    );
    // The backend runs it by posting it back, as any run.
    let (initial, _) = relay_lines(calls.run(&taken.body).await).await;
    assert_eq!(texts(&initial), ["Summarise the repository"]);

    // Capabilities in the shape the backend and the UI read.
    let capabilities: Value = calls.get("/capabilities").await.json().await.unwrap();
    for key in [
        "framework",
        "agent_features",
        "platform_features",
        "file_system",
        "mcp",
        "tracing",
        "session_persistence",
        "model",
        "session_id",
    ] {
        assert!(capabilities.get(key).is_some(), "no {key}: {capabilities}");
    }
    assert_eq!(capabilities["framework"], "echo");
    assert_eq!(capabilities["session_id"], SESSION);
    let health: Value = reqwest::get(format!("{}/health", calls.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["session_id"], SESSION);

    // The between-run listener stays open across runs and carries what the agent says
    // between them, as a run of its own without a snapshot, then ends (the backend
    // connects again at once). What came on a run's own stream never comes on it.
    let listener = calls.listen(SESSION).await;
    assert_eq!(listener.status(), 200);
    let (later, _) = relay_lines(
        calls
            .run(&json!({
                "threadId": SESSION, "runId": "run-later",
                "messages": [{"id": "u-later", "role": "user", "content": "later 0.2 the report is ready"}],
            }))
            .await,
    )
    .await;
    assert_eq!(texts(&later), ["later 0.2 the report is ready"]);
    let (between, heartbeats) = relay_lines(listener).await;
    assert_eq!(heartbeats, 0);
    assert_eq!(texts(&between), ["the report is ready"]);
    assert_eq!(between[0]["type"], "RUN_STARTED");
    assert_eq!(between.last().unwrap()["type"], "RUN_FINISHED");
    assert!(
        !kinds(&between).contains(&"MESSAGES_SNAPSHOT"),
        "the listener leaves the snapshot out"
    );
    let parsed: Vec<AguiEvent> = between
        .iter()
        .map(|event| serde_json::from_value(event.clone()).unwrap())
        .collect();
    ambient_agui::check_order(&parsed).unwrap();
    // Listening on a thread this runner does not serve is refused.
    assert_eq!(calls.listen("another-session").await.status(), 404);

    // A POST during a run is answered 200 at once and its events follow when the earlier
    // turn ends; the interrupt is answered 200.
    let long = calls
        .run(&json!({
            "threadId": SESSION, "runId": "run-long",
            "messages": [{"id": "u-long", "role": "user", "content": "sleep 600"}],
        }))
        .await;
    assert_eq!(long.status(), 200);
    let long_events = read_sse(long, Some(2)).await;
    assert_eq!(long_events[0].data["runId"], "run-long");
    let second_user = calls
        .run(&json!({
            "threadId": SESSION, "runId": "run-second-user",
            "messages": [{"id": "u-second", "role": "user", "content": "I was second"}],
        }))
        .await;
    assert_eq!(second_user.status(), 200);
    let interrupted = calls.interrupt().await;
    assert_eq!(interrupted.status(), 200);
    let second_user = read_sse(second_user, None).await;
    check_run(&second_user);
    assert_eq!(second_user[0].data["runId"], "run-second-user");
    assert_eq!(
        second_user
            .iter()
            .filter(|e| e.kind() == "TEXT_MESSAGE_CONTENT")
            .map(|e| e.data["delta"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["I was second"]
    );

    let finished = served.stop().await;
    assert_eq!(finished.code, Some(143), "{}", finished.stderr);
    for secret in [BOT_TOKEN, "caller-token-of-the-user"] {
        assert!(
            !finished.stderr.contains(secret),
            "{secret} reached the log"
        );
    }
}

#[tokio::test]
async fn a_resumed_pod_does_not_send_the_initial_prompt_again() {
    let workspace = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(0).await;
    let port = free_port();
    let mut command = operator_command(
        env!("CARGO_BIN_EXE_echo-runner"),
        workspace.path(),
        port,
        &backend,
        Some("Summarise the repository"),
    );
    command.env("IS_RESUME", "true");
    let served = Served::start(command, workspace.path()).await;
    let calls = BackendCalls::new(&served.url);
    // A run taken, answered and finished: the session is well under way, and the backend
    // has had nothing from the runner.
    let (run, _) = relay_lines(
        calls
            .run(&json!({
                "threadId": SESSION, "runId": "run-1",
                "messages": [{"id": "u1", "role": "user", "content": "hi"}],
            }))
            .await,
    )
    .await;
    assert_eq!(texts(&run), ["hi"]);
    assert!(
        backend.try_next_post().is_none(),
        "a resumed pod posted its prompt"
    );
    let finished = served.stop().await;
    assert!(
        finished
            .stderr
            .contains("resuming the session: the initial prompt was sent by the first pod"),
        "{}",
        finished.stderr
    );
}
