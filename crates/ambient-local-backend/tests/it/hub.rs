//! The session hub: broadcast, normalisation, application pings, dropped frames and the
//! order of delivery and persistence.

use ambient_protocol::SessionMessage;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    PROJECT, SESSION, WAIT, Ws, assert_backend_timestamp, backend, connect, next_json,
    next_message, send, watched, within,
};

#[tokio::test]
async fn a_frame_reaches_every_connection_including_the_sender_and_the_watchers() {
    let backend = backend().await;
    let mut watcher = backend.watch(SESSION);
    let mut sender = connect(&backend, SESSION).await;
    let mut other = connect(&backend, SESSION).await;
    let mut elsewhere = connect(&backend, "another-session").await;
    send(
        &mut sender,
        r#"{"seq":1,"type":"agent.message","timestamp":"2025-10-31T20:02:41.5","payload":{"tool":"Bash","input":{}},"partial":null}"#,
    )
    .await;
    let to_sender = next_message(&mut sender).await;
    let to_other = next_message(&mut other).await;
    let to_watcher = watched(&mut watcher).await;
    assert_eq!(to_sender, to_other);
    assert_eq!(to_sender, to_watcher);
    assert_eq!(to_sender.session_id, SESSION);
    assert_eq!(to_sender.kind, "agent.message");
    assert_eq!(to_sender.payload, json!({"tool": "Bash", "input": {}}));
    assert_backend_timestamp(&to_sender.timestamp);

    // Another session's connection sees only its own session's traffic.
    send(&mut elsewhere, r#"{"type":"agent.waiting","payload":{}}"#).await;
    let own = next_message(&mut elsewhere).await;
    assert_eq!(
        (own.session_id.as_str(), own.kind.as_str()),
        ("another-session", "agent.waiting")
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn the_project_is_not_part_of_the_routing_key() {
    let backend = backend().await;
    let mut runner = connect(&backend, SESSION).await;
    backend
        .post_message("some-other-project", SESSION, json!({"content": "hi"}))
        .await
        .expect("posted");
    assert_eq!(
        next_message(&mut runner).await.payload,
        json!({"content": "hi"})
    );
    backend.shutdown().await;
}

/// Sends `frame` and returns the payload the backend broadcasts for it.
async fn normalised(ws: &mut Ws, frame: Value) -> (String, Value) {
    send(ws, frame.to_string()).await;
    let message = next_message(ws).await;
    (message.kind, message.payload)
}

#[tokio::test]
async fn object_payloads_stand_alone_and_other_payloads_nest_the_envelope() {
    let backend = backend().await;
    let mut ws = connect(&backend, SESSION).await;
    let log = json!({"seq": 2, "type": "system.message", "timestamp": "2025-10-31T20:02:42.5", "payload": {"message": "Cloning"}, "partial": null});
    assert_eq!(
        normalised(&mut ws, log).await,
        ("system.message".to_owned(), json!({"message": "Cloning"}))
    );
    let lifecycle = json!({"seq": 1, "type": "system.message", "timestamp": "2025-10-31T20:02:41.120004", "payload": "session.started", "partial": null});
    assert_eq!(
        normalised(&mut ws, lifecycle.clone()).await,
        ("system.message".to_owned(), lifecycle)
    );
    let partial = json!({"seq": 3, "type": "agent.message", "timestamp": "t", "payload": "", "partial": {"id": "p", "index": 0, "total": 0, "data": "x"}});
    assert_eq!(
        normalised(&mut ws, partial.clone()).await,
        ("agent.message".to_owned(), partial)
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn a_ping_gets_a_pong_on_that_connection_only_and_is_not_persisted() {
    let backend = backend().await;
    let mut watcher = backend.watch(SESSION);
    let mut pinger = connect(&backend, SESSION).await;
    let mut other = connect(&backend, SESSION).await;
    send(&mut pinger, r#"{"type":"ping"}"#).await;
    let pong = next_json(&mut pinger).await;
    assert_eq!(pong["type"], "pong");
    assert_backend_timestamp(pong["timestamp"].as_str().expect("timestamp"));
    assert_eq!(pong.as_object().map(serde_json::Map::len), Some(2));

    // Broadcasts keep their order, so if the ping had been broadcast the others would see
    // it before this marker.
    send(&mut pinger, r#"{"type":"marker","payload":{}}"#).await;
    assert_eq!(next_message(&mut other).await.kind, "marker");
    assert_eq!(watched(&mut watcher).await.kind, "marker");
    assert_eq!(next_message(&mut pinger).await.kind, "marker");
    let kinds: Vec<_> = backend
        .history(SESSION)
        .await
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(kinds, ["marker"]);
    backend.shutdown().await;
}

#[tokio::test]
async fn frames_without_a_string_type_and_binary_frames_are_dropped() {
    let backend = backend().await;
    let mut watcher = backend.watch(SESSION);
    let mut ws = connect(&backend, SESSION).await;
    for frame in [
        "not json",
        "[1]",
        "\"text\"",
        r#"{"payload":{}}"#,
        r#"{"type":7}"#,
    ] {
        send(&mut ws, frame).await;
    }
    within(ws.send(Message::binary(b"{\"type\":\"binary\"}".to_vec())))
        .await
        .expect("sent");
    send(&mut ws, r#"{"type":"marker","payload":{}}"#).await;
    assert_eq!(next_message(&mut ws).await.kind, "marker");
    assert_eq!(watched(&mut watcher).await.kind, "marker");
    assert_eq!(backend.history(SESSION).await.len(), 1);
    backend.shutdown().await;
}

#[tokio::test]
async fn every_observer_and_the_file_see_one_order() {
    const PER_CLIENT: usize = 300;
    let backend = backend().await;
    let mut watcher = backend.watch(SESSION);
    let a = connect(&backend, SESSION).await;
    let b = connect(&backend, SESSION).await;
    let total = 2 * PER_CLIENT + PER_CLIENT / 10;

    // Each client reads everything while it sends; the test posts over HTTP meanwhile.
    let client = |ws: Ws, name: &'static str| async move {
        let (mut sink, mut stream) = ws.split();
        let write = async {
            for i in 0..PER_CLIENT {
                let frame = json!({"type": "agent.message", "payload": {"from": name, "i": i}});
                sink.send(Message::text(frame.to_string()))
                    .await
                    .expect("sent");
            }
        };
        let read = async {
            let mut seen = Vec::with_capacity(total);
            while seen.len() < total {
                match stream.next().await.expect("open").expect("read") {
                    Message::Text(text) => seen.push(
                        serde_json::from_str::<SessionMessage>(text.as_str()).expect("message"),
                    ),
                    Message::Ping(_) | Message::Pong(_) => {}
                    other => panic!("unexpected frame {other:?}"),
                }
            }
            seen
        };
        let ((), seen) = tokio::join!(write, read);
        seen
    };
    let post = async {
        for i in 0..PER_CLIENT / 10 {
            backend
                .post_message(PROJECT, SESSION, json!({"from": "post", "i": i}))
                .await
                .expect("posted");
        }
    };
    let (seen_a, seen_b, ()) = tokio::time::timeout(WAIT * 3, async {
        tokio::join!(client(a, "a"), client(b, "b"), post)
    })
    .await
    .expect("all messages delivered");
    let mut seen_watcher = Vec::with_capacity(total);
    while seen_watcher.len() < total {
        seen_watcher.push(watched(&mut watcher).await);
    }
    let history = backend.history(SESSION).await;
    assert_eq!(seen_a.len(), total);
    assert_eq!(seen_a, seen_b);
    assert_eq!(seen_a, seen_watcher);
    assert_eq!(seen_a, history);
    // Each sender's own frames stay in the order it sent them.
    for name in ["a", "b", "post"] {
        let order: Vec<_> = history
            .iter()
            .filter(|m| m.payload["from"] == name)
            .map(|m| m.payload["i"].as_u64().expect("index"))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{name}: {order:?}");
    }
    // The file has one line per broadcast, in that order.
    let file = std::fs::read_to_string(backend.messages_path(SESSION)).expect("history file");
    let lines: Vec<SessionMessage> = file
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(lines, history);
    backend.shutdown().await;
}
