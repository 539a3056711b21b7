//! Connection-level behaviour: ping control frames, large frames and shutdown.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::json;
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

use crate::support::{
    PROJECT, SESSION, builder, connect, next_message, send, start, watched, within,
};

#[tokio::test]
async fn the_server_sends_ping_control_frames() {
    let backend = start(builder().ping_interval(Duration::from_millis(50))).await;
    let mut ws = connect(&backend, SESSION).await;
    // Nothing else is sent on this connection, so the first frame is the ping.
    let frame = within(ws.next()).await.expect("open").expect("read");
    let Message::Ping(ping) = frame else {
        panic!("expected a ping, got {frame:?}");
    };
    assert!(ping.is_empty());
    backend.shutdown().await;
}

#[tokio::test]
async fn a_five_mebibyte_frame_round_trips() {
    let backend = backend_without_pings().await;
    let mut ws = connect(&backend, SESSION).await;
    let text = "x".repeat(5 * 1024 * 1024);
    let frame = json!({"type": "agent.message", "payload": {"tool_result": {"content": text}}});
    send(&mut ws, frame.to_string()).await;
    let echo = next_message(&mut ws).await;
    assert_eq!(
        echo.payload["tool_result"]["content"]
            .as_str()
            .map(str::len),
        Some(text.len())
    );
    assert_eq!(echo.payload, frame["payload"]);
    let history = backend.history(SESSION).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].payload, frame["payload"]);
    backend.shutdown().await;
}

async fn backend_without_pings() -> ambient_local_backend::LocalBackend {
    start(builder().ping_interval(Duration::ZERO)).await
}

#[tokio::test]
async fn shutdown_closes_connections_ends_watchers_and_keeps_the_history() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let backend = start(builder().state_dir(dir.path())).await;
    let mut watcher = backend.watch(SESSION);
    let mut ws = connect(&backend, SESSION).await;
    send(&mut ws, r#"{"type":"agent.running","payload":{}}"#).await;
    assert_eq!(next_message(&mut ws).await.kind, "agent.running");
    assert_eq!(watched(&mut watcher).await.kind, "agent.running");
    let path = backend.messages_path(SESSION);
    assert_eq!(
        path,
        dir.path()
            .join("sessions")
            .join(SESSION)
            .join("messages.jsonl")
    );

    within(backend.shutdown()).await;

    let close = within(async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(close.map(|frame| frame.code), Some(CloseCode::Away));
    assert_eq!(within(watcher.recv()).await, None);
    let file = std::fs::read_to_string(&path).expect("history file");
    assert_eq!(file.lines().count(), 1);
    assert!(file.contains(r#""type":"agent.running""#));
}

#[tokio::test]
async fn the_default_state_directory_is_removed_after_shutdown() {
    let backend = backend_without_pings().await;
    backend
        .post_message(PROJECT, SESSION, json!({"content": "hi"}))
        .await
        .expect("posted");
    assert_eq!(backend.history(SESSION).await.len(), 1);
    let path = backend.messages_path(SESSION);
    assert!(path.exists());
    within(backend.shutdown()).await;
    assert!(!path.exists());
}

#[tokio::test]
async fn a_client_that_closes_is_unregistered() {
    let backend = backend_without_pings().await;
    let mut ws = connect(&backend, SESSION).await;
    assert_eq!(backend.connection_count(SESSION), 1);
    within(ws.close(None)).await.expect("closed");
    within(async {
        while backend.connection_count(SESSION) != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    backend.shutdown().await;
}
