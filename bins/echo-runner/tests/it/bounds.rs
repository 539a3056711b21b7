//! A hostile backend (or peer): more messages than the agent can take, and a message
//! larger than the runner reads. The runner's memory stays under the ceiling, the user is
//! told what was dropped, and the session still ends as it was asked to.

use std::time::{Duration, Instant};

use ambient_local_backend::SessionSeed;
use ambient_test_support::harness::{
    assert_under_ceiling, peak_memory, peak_memory_wrapper, transcript, until,
};
use serde_json::json;

use crate::support::{Backend, PROJECT, SESSION, backend};

#[allow(clippy::print_stderr, reason = "the figure is the test's report")]
fn report_figure(text: &str) {
    eprintln!("{text}");
}

/// An interactive runner under the memory wrapper, waiting for its first message.
async fn interactive(env: &Backend) -> (tokio::process::Child, std::path::PathBuf) {
    let report = env.workspace.path().join("peak-memory");
    let wrapper = peak_memory_wrapper(&report);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut watch = env.backend.watch(SESSION);
    let child = env
        .runner_via(&wrapper, &[("PROMPT", "hello"), ("INTERACTIVE", "true")])
        .spawn()
        .unwrap();
    until(&mut watch, |m| m.kind == "agent.waiting").await;
    (child, report)
}

#[tokio::test]
async fn a_flood_of_100000_messages_is_bounded_and_the_end_is_honoured_within_10_s() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let (child, report) = interactive(&env).await;
    let post = env.backend.post_handle();
    let body = json!({ "content": "x".repeat(1000) });
    for _ in 0..100_000 {
        post.post(PROJECT, SESSION, body.clone()).await.unwrap();
    }
    let ended = Instant::now();
    post.post(PROJECT, SESSION, json!({"type": "end_session"}))
        .await
        .unwrap();
    let finished = env.finish(child).await;
    let took = ended.elapsed();
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    report_figure(&format!("echo-runner, end_session after the flood: exited in {took:?}"));
    assert!(took < Duration::from_secs(10), "the end took {took:?}");
    let status = env.backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Completed"));
    let lines = transcript(&env.backend).await;
    let told = lines
        .iter()
        .find(|line| line.contains("were dropped"))
        .unwrap_or_else(|| panic!("the user was not told: {:#?}", &lines[lines.len() - 20..]));
    assert!(told.contains("RUNNER_INPUT_BUDGET_BYTES"), "{told}");
    let answered = lines
        .iter()
        .filter(|line| line.starts_with("agent: xxxx"))
        .count();
    assert!(answered > 0, "no message of the flood was answered");
    assert_under_ceiling(
        "echo-runner, 100,000 messages of 1 KB",
        peak_memory(&report),
    );
}

#[tokio::test]
async fn a_60_mb_message_is_refused_and_named_and_the_session_goes_on() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let (child, report) = interactive(&env).await;
    let mut watch = env.backend.watch(SESSION);
    env.post(json!({ "content": "y".repeat(60 << 20) })).await;
    until(&mut watch, |m| {
        let text = m.payload.to_string();
        text.contains("was refused") && text.contains("up to 8388608 bytes")
    })
    .await;
    env.post(json!({ "content": "still here" })).await;
    until(&mut watch, |m| m.payload.to_string().contains("still here")).await;
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = transcript(&env.backend).await;
    assert!(
        lines.contains(&String::from("agent: still here")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|line| line.starts_with("agent: yyyy")),
        "the large message was answered"
    );
    assert_under_ceiling("echo-runner, a 60 MB message", peak_memory(&report));
}
