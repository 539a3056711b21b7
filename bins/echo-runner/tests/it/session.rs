//! Whole sessions: what the backend persisted, the status it holds, and the exit code.

use ambient_local_backend::SessionSeed;
use ambient_protocol::status::Phase;
use serde_json::json;

use crate::support::{Backend, PROJECT, SESSION, TOKEN, WAIT, backend, finish};

/// The batch session of `PROMPT=hello`, as the backend persisted it.
async fn assert_batch_persisted(env: &Backend) {
    insta::assert_json_snapshot!("batch_persisted", env.persisted().await, {
        "[].timestamp" => "[backend time]",
        "[].payload.frame_id" => "[frame id]",
        "[].payload.timestamp" => "[runner time]",
        "[].payload.payload.duration_ms" => "[ms]",
    });
}

#[tokio::test]
async fn a_batch_session_persists_the_whole_conversation_and_completes() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let child = env.runner(&[("PROMPT", "hello")]).spawn().unwrap();
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_batch_persisted(&env).await;
    insta::assert_json_snapshot!("batch_status", env.backend.status(PROJECT, SESSION).unwrap(), {
        ".completionTime" => "[time]",
        ".duration_ms" => "[ms]",
    });
    assert!(
        !finished.stderr.contains(TOKEN),
        "the token reached the log"
    );
    assert!(!finished.stdout.contains(TOKEN), "the token reached stdout");
}

#[tokio::test]
async fn the_websocket_mode_is_unchanged_by_the_serve_mode_settings() {
    // The serve mode's token and buffer size, without its address, leave the session as
    // it was before the serve mode existed: the same frames, persisted the same way.
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let child = env
        .runner(&[
            ("PROMPT", "hello"),
            ("AGUI_TOKEN", "serve-token-not-used-here"),
            ("AGUI_REPLAY_EVENTS", "10"),
        ])
        .spawn()
        .unwrap();
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_batch_persisted(&env).await;
    // It did not serve: no announcement on stdout, no server in the log.
    assert!(
        !finished.stdout.contains("ag-ui listening"),
        "{}",
        finished.stdout
    );
    assert!(
        !finished.stderr.contains("serving AG-UI"),
        "{}",
        finished.stderr
    );
}

#[tokio::test]
async fn an_interactive_session_answers_each_message_and_ends_on_request() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let mut watch = env.backend.watch(SESSION);
    let child = env.runner(&[("INTERACTIVE", "true")]).spawn().unwrap();
    env.backend.wait_for_connections(SESSION, 1).await.unwrap();
    env.post(json!({"content": "first"})).await;
    env.post(json!({"content": "second"})).await;
    // End the session only once both turns are answered, so that the test also shows
    // that the runner waits for more.
    let mut waits = 0;
    while waits < 2 {
        let message = tokio::time::timeout(WAIT, watch.recv())
            .await
            .unwrap()
            .unwrap();
        if message.kind == "agent.waiting" {
            waits += 1;
        }
    }
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let kinds: Vec<String> = env
        .persisted()
        .await
        .iter()
        .map(|m| {
            let kind = m["type"].as_str().unwrap();
            let text = m["payload"]["content"]["text"]
                .as_str()
                .or(m["payload"]["content"].as_str());
            match text {
                Some(text) => format!("{kind} {text}"),
                None => kind.to_owned(),
            }
        })
        .collect();
    insta::assert_json_snapshot!("interactive_kinds", kinds);
    let status = env.backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Completed"));
    assert_eq!(status["num_turns"], json!(2));
}

#[tokio::test]
async fn a_refused_token_exits_with_the_backend_unreachable_code_and_says_why() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let child = env
        .runner(&[("BOT_TOKEN", "not-the-token-xyz")])
        .spawn()
        .unwrap();
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(3), "stderr:\n{}", finished.stderr);
    assert!(
        finished.stderr.contains("HTTP 401"),
        "stderr:\n{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("not-the-token-xyz"),
        "the token reached the log"
    );
}

#[tokio::test]
async fn a_stopped_session_is_left_stopped() {
    let env = backend(SessionSeed::new(PROJECT, SESSION).phase(Phase::Stopped)).await;
    let child = env.runner(&[("PROMPT", "hello")]).spawn().unwrap();
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(143), "stderr:\n{}", finished.stderr);
    let status = env.backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Stopped"));
    let kinds: Vec<_> = env
        .persisted()
        .await
        .iter()
        .map(|m| m["type"].clone())
        .collect();
    assert!(
        !kinds.contains(&json!("agent.message")),
        "the agent ran: {kinds:?}"
    );
}

#[tokio::test]
async fn a_missing_setting_is_named_and_exits_with_the_configuration_code() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let mut command = env.runner(&[]);
    command.env_remove("SESSION_ID");
    let finished = env.finish(command.spawn().unwrap()).await;
    assert_eq!(finished.code, Some(2));
    assert!(
        finished.stderr.contains("SESSION_ID is not set"),
        "stderr:\n{}",
        finished.stderr
    );
}

#[tokio::test]
async fn local_mode_prints_the_conversation_and_the_final_status() {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_echo-runner"));
    command
        .args(["--local", "--prompt", "hi there"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let finished = finish(command.spawn().unwrap()).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let conversation: Vec<&str> = finished
        .stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .collect();
    insta::assert_json_snapshot!("local_conversation", conversation);
    assert!(
        finished.stdout.contains(r#""phase": "Completed""#),
        "{}",
        finished.stdout
    );
}

#[tokio::test]
async fn repositories_are_checked_out_before_the_agent_starts() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let origins = tempfile::tempdir().unwrap();
    let good = ambient_test_support::git_repos::bare_repo(origins.path(), "o", "app");
    let repos = json!([{"input": {"url": good}}, {"name": "gone", "input": {"url": "file:///no/such.git"}}]).to_string();
    let child = env
        .runner(&[
            ("PROMPT", "hi"),
            ("REPOS_JSON", repos.as_str()),
            ("GIT_PROTOCOLS", "https,file"),
        ])
        .spawn()
        .unwrap();
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert!(env.workspace.path().join("app/README.md").exists());
    let lines: Vec<String> = env
        .persisted()
        .await
        .iter()
        .filter_map(|m| m["payload"]["message"].as_str().map(str::to_owned))
        .collect();
    assert!(lines.iter().any(|l| l == "✓ app: cloned"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("✗ gone: git clone failed")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_main_repository_that_cannot_be_had_fails_the_session() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let repos = json!([{"name": "main", "input": {"url": "file:///no/such.git"}}]).to_string();
    let child = env
        .runner(&[
            ("PROMPT", "hi"),
            ("REPOS_JSON", repos.as_str()),
            ("GIT_PROTOCOLS", "https,file"),
        ])
        .spawn()
        .unwrap();
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let status = env.backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Failed"));
    let message = status["message"].as_str().unwrap();
    assert!(
        message
            .starts_with("Workspace preparation failed: the main repository main could not be had"),
        "{message}"
    );
}

#[test]
fn every_option_of_the_help_names_its_environment_variable() {
    ambient_test_support::harness::help_names_every_variable(env!("CARGO_BIN_EXE_echo-runner"));
}

#[tokio::test]
async fn a_continuation_runs_a_new_prompt_never_its_parents_and_never_does_nothing() {
    use ambient_test_support::continuation::{CASES, seeds};
    for case in CASES {
        let env = Backend::start_with(env!("CARGO_BIN_EXE_echo-runner"), seeds()).await;
        let (finished, lines) = case
            .follow(&env, || env.runner(&case.vars()).spawn().unwrap())
            .await;
        case.check(&finished, &lines);
    }
}
