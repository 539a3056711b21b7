//! SIGTERM in every phase of a session, on both fronts: the runner exits within the bound
//! with its status settled (or the documented exit code when the status cannot be).
//!
//! Each test holds the runner in one phase (a backend call the local backend holds
//! unanswered, a git server that accepts and never answers, a slow turn) and sends
//! SIGTERM only once the runner is there, which the test knows from a signal (the held
//! call arrived, git connected, the turn's text came), never from a sleep.

use std::time::Instant;

use ambient_local_backend::{FaultRoute, SessionSeed};
use ambient_protocol::SessionMessage;
use ambient_test_support::{
    agui::{Served, read_sse, run_input, serve_command},
    harness::{Finished, STOP_BOUND, terminate, transcript, until},
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::{Backend, PROJECT, SESSION, backend};

/// Sends SIGTERM and waits for the runner, which must exit within [`STOP_BOUND`].
async fn stop(env: &Backend, child: tokio::process::Child) -> Finished {
    let signalled = Instant::now();
    terminate(&child);
    let finished = env.finish(child).await;
    let took = signalled.elapsed();
    assert!(took < STOP_BOUND, "exited {took:?} after SIGTERM");
    finished
}

/// The status of a session stopped by something else than the platform: failed, and
/// saying why.
fn assert_stopped_status(env: &Backend) {
    let status = env.backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Failed"), "{status:?}");
    assert_eq!(
        status["message"],
        json!("Runner stopped before the session ended")
    );
}

/// A git server that takes connections and never answers: a clone that hangs. The
/// listener's `accept` is the signal that git is in the middle of it.
async fn hanging_git() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/o/stuck.git", listener.local_addr().unwrap());
    let repos = json!([{ "name": "stuck", "input": { "url": url } }]).to_string();
    (listener, repos)
}

/// SIGTERM while the backend holds the runner's first call of `route` unanswered.
async fn check_stop_while_held(route: FaultRoute) {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let held = env.backend.stall_next(route);
    let child = env.runner(&[("PROMPT", "hi")]).spawn().unwrap();
    assert!(held.arrived().await);
    let finished = stop(&env, child).await;
    assert_eq!(finished.code, Some(143), "stderr:\n{}", finished.stderr);
    assert_stopped_status(&env);
}

#[tokio::test]
async fn while_the_session_is_read() {
    check_stop_while_held(FaultRoute::SessionGet).await;
}

#[tokio::test]
async fn while_the_first_status_is_written_to_a_slow_backend() {
    check_stop_while_held(FaultRoute::StatusUpdate).await;
}

#[tokio::test]
async fn during_a_git_clone_that_hangs() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let (git, repos) = hanging_git().await;
    let child = env
        .runner(&[
            ("PROMPT", "hi"),
            ("REPOS_JSON", &repos),
            ("GIT_PROTOCOLS", "http"),
        ])
        .spawn()
        .unwrap();
    let (_connection, _) = tokio::time::timeout(crate::support::WAIT, git.accept())
        .await
        .expect("git connects in time")
        .unwrap();
    let finished = stop(&env, child).await;
    assert_eq!(finished.code, Some(143), "stderr:\n{}", finished.stderr);
    assert_stopped_status(&env);
    let lines = transcript(&env.backend).await;
    assert!(
        lines.contains(&String::from("· 📥 Cloning stuck (main)...")),
        "{lines:#?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("· session.failed"));
}

#[tokio::test]
async fn mid_turn() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let mut watch = env.backend.watch(SESSION);
    let child = env.runner(&[("PROMPT", "sleep 30")]).spawn().unwrap();
    until(&mut watch, |m: &SessionMessage| {
        m.payload["content"]["text"] == json!("sleep 30")
    })
    .await;
    let finished = stop(&env, child).await;
    assert_eq!(finished.code, Some(143), "stderr:\n{}", finished.stderr);
    assert_stopped_status(&env);
    let lines = transcript(&env.backend).await;
    assert_eq!(lines.last().map(String::as_str), Some("· session.failed"));
}

/// An interactive session at its end: the final status is being written.
async fn ending(env: &Backend) -> tokio::process::Child {
    let mut watch = env.backend.watch(SESSION);
    let child = env
        .runner(&[("INTERACTIVE", "true"), ("PROMPT", "hi")])
        .spawn()
        .unwrap();
    until(&mut watch, |m| m.kind == "agent.waiting").await;
    child
}

#[tokio::test]
async fn while_the_final_status_is_retried_it_still_lands() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let child = ending(&env).await;
    let mut calls = env.backend.calls(FaultRoute::StatusUpdate);
    let before = *calls.borrow_and_update();
    env.backend
        .fail_next(FaultRoute::StatusUpdate, [503, 503, 503]);
    env.post(json!({"type": "end_session"})).await;
    // The first attempt at the final status failed: the runner is retrying it.
    calls.wait_for(|count| *count > before).await.unwrap();
    let finished = stop(&env, child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let status = env.backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Completed"), "{status:?}");
}

#[tokio::test]
async fn while_the_final_status_hangs_it_exits_saying_the_status_was_not_written() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let child = ending(&env).await;
    let held = env.backend.stall_next(FaultRoute::StatusUpdate);
    env.post(json!({"type": "end_session"})).await;
    assert!(held.arrived().await);
    let finished = stop(&env, child).await;
    assert_eq!(finished.code, Some(4), "stderr:\n{}", finished.stderr);
    assert!(
        finished.stderr.contains("exiting without a settled status"),
        "stderr:\n{}",
        finished.stderr
    );
}

/// The serve mode's stops: it has no status to settle, and ends with the stop's code.
mod served {
    use super::*;

    #[tokio::test]
    async fn during_a_git_clone_that_hangs() {
        let workspace = tempfile::tempdir().unwrap();
        let (git, repos) = hanging_git().await;
        let mut command = serve_command(env!("CARGO_BIN_EXE_echo-runner"), workspace.path());
        command
            .env("REPOS_JSON", &repos)
            .env("GIT_PROTOCOLS", "http");
        let child = command.spawn().unwrap();
        let (_connection, _) = tokio::time::timeout(crate::support::WAIT, git.accept())
            .await
            .expect("git connects in time")
            .unwrap();
        let signalled = Instant::now();
        terminate(&child);
        let status = tokio::time::timeout(crate::support::WAIT, child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(signalled.elapsed() < STOP_BOUND);
        assert_eq!(status.status.code(), Some(143));
    }

    #[tokio::test]
    async fn mid_run() {
        let workspace = tempfile::tempdir().unwrap();
        let served = Served::start(
            serve_command(env!("CARGO_BIN_EXE_echo-runner"), workspace.path()),
            workspace.path(),
        )
        .await;
        let response = served
            .post_run(&run_input("t1", "r1", &[("u1", "user", "sleep 30")]))
            .await;
        assert_eq!(response.status(), 200);
        let reading = tokio::spawn(read_sse(response, None));
        // The slow turn is under way once its text has come: read it from the replay.
        let first = served.events_after("r1", 0).await;
        let early = read_sse(first, Some(3)).await;
        assert!(
            early.iter().any(|e| e.data["delta"] == json!("sleep 30")),
            "{early:?}"
        );
        let signalled = Instant::now();
        let finished = served.stop().await;
        assert!(signalled.elapsed() < STOP_BOUND);
        assert_eq!(finished.code, Some(143), "stderr:\n{}", finished.stderr);
        let events = reading.await.unwrap();
        let last: &Value = &events.last().unwrap().data;
        assert_eq!(last["type"], json!("RUN_ERROR"), "{events:?}");
    }
}
