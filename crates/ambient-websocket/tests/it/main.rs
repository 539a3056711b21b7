//! Whole sessions through the host and the WebSocket front, against the local backend.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use std::time::Duration;

use ambient_adapter_echo::{EchoAdapter, EchoConfig};
use ambient_host::{RunnerArgs, RunnerExit, SessionEnd};
use ambient_local_backend::{LocalBackend, SessionSeed};
use ambient_websocket::{RunnerConfig, run_session};
use serde_json::json;
use tokio_util::sync::CancellationToken;

mod faults;
mod workspace;

pub(crate) const TOKEN: &str = "shell-test-token";
pub(crate) const PROJECT: &str = "p";
pub(crate) const SESSION: &str = "s";
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Reads the backend's broadcasts until one satisfies `matches`.
pub(crate) async fn until(
    watch: &mut tokio::sync::mpsc::UnboundedReceiver<ambient_protocol::SessionMessage>,
    matches: impl Fn(&ambient_protocol::SessionMessage) -> bool,
) {
    loop {
        let message = tokio::time::timeout(WAIT, watch.recv())
            .await
            .unwrap()
            .unwrap();
        if matches(&message) {
            return;
        }
    }
}

pub(crate) async fn backend() -> LocalBackend {
    LocalBackend::builder()
        .token(TOKEN)
        .session(SessionSeed::new(PROJECT, SESSION))
        .start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

pub(crate) fn config(
    backend: &LocalBackend,
    interactive: bool,
    timeout: Option<Duration>,
) -> RunnerConfig {
    ambient_test_support::crypto();
    let args = RunnerArgs {
        session_id: Some(String::from(SESSION)),
        websocket_url: Some(backend.ws_url(PROJECT, SESSION)),
        bot_token: Some(String::from(TOKEN)),
        prompt: Some(String::from("hello")),
        interactive: Some(interactive),
        workspace: Some(std::env::temp_dir()),
        ..RunnerArgs::default()
    };
    let redactor = ambient_host::Redactor::new(&args.secret_values());
    let mut config = RunnerConfig::from_args(&args, redactor).unwrap();
    config.host.timeout = timeout;
    config
}

#[tokio::test]
async fn a_session_that_times_out_fails_and_says_so() {
    let backend = backend().await;
    // Interactive and never ended: only the timeout can end it.
    let config = config(&backend, true, Some(Duration::from_millis(300)));
    let report = tokio::time::timeout(
        WAIT,
        run_session(config, EchoAdapter::default(), CancellationToken::new()),
    )
    .await
    .unwrap();
    assert_eq!(report.end, SessionEnd::TimedOut);
    assert_eq!(report.exit(), RunnerExit::TimedOut);
    let status = backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Failed"));
    assert_eq!(status["message"], json!("Session timed out after 300ms"));
    let kinds: Vec<_> = backend
        .history(SESSION)
        .await
        .into_iter()
        .map(|m| m.payload["payload"].clone())
        .collect();
    assert!(kinds.contains(&json!("session.failed")), "{kinds:?}");
}

#[tokio::test]
async fn shutdown_interrupts_the_adapter_flushes_and_settles_the_status() {
    let backend = backend().await;
    let mut watch = backend.watch(SESSION);
    let shutdown = CancellationToken::new();
    // A burst far longer than the test: only the shutdown can end it.
    let adapter = EchoAdapter::new(EchoConfig {
        burst_events: u64::MAX,
        burst_bytes: 10,
        stamp_bursts: false,
    });
    let session = tokio::spawn(run_session(
        config(&backend, false, None),
        adapter,
        shutdown.clone(),
    ));
    // Stop once the burst is under way.
    loop {
        let message = tokio::time::timeout(WAIT, watch.recv())
            .await
            .unwrap()
            .unwrap();
        if message.payload["content"]["text"] == json!("xxxxxxxxxx") {
            break;
        }
    }
    shutdown.cancel();
    let report = tokio::time::timeout(WAIT, session).await.unwrap().unwrap();
    assert_eq!(report.end, SessionEnd::Stopped);
    assert_eq!(report.exit(), RunnerExit::Stopped);
    assert!(report.status_written);
    let status = backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Failed"));
    assert_eq!(
        status["message"],
        json!("Runner stopped before the session ended")
    );
    let last = backend.history(SESSION).await.pop().unwrap();
    assert_eq!(last.payload["payload"], json!("session.failed"));
}

#[tokio::test]
async fn an_adapter_store_becomes_an_annotation() {
    use ambient_adapter::{Adapter, Outcome, Session};

    struct Storing;
    impl Adapter for Storing {
        type Error = ambient_adapter::SessionClosed;
        async fn run(&mut self, session: &mut Session) -> Result<Outcome, Self::Error> {
            session
                .store("ambient-code.io/thread-id", "thread-42")
                .await?;
            Ok(Outcome::Completed { result: None })
        }
    }
    let backend = backend().await;
    let report = tokio::time::timeout(
        WAIT,
        run_session(
            config(&backend, false, None),
            Storing,
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(report.exit(), RunnerExit::Completed);
    let session = backend.session(PROJECT, SESSION).unwrap();
    assert_eq!(
        session
            .metadata
            .annotations
            .get("ambient-code.io/thread-id")
            .map(String::as_str),
        Some("thread-42")
    );
}
