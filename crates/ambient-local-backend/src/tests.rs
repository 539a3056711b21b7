//! Unit tests of the pure parts: frame normalisation, posted bodies, token lookup and
//! history parsing, and the hub's handling of stuck connections. The routes themselves are tested against a real server in `tests/it`.

use axum::http::{HeaderMap, HeaderValue, Uri};
use serde_json::{Value, json};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    Error,
    http::{presented_token, same_token, truthy},
    hub::{Hub, STALL_LIMIT},
    message::{Incoming, from_frame, from_post, pong, valid_session_name},
    persist::{WriteCmd, parse_history},
};

/// A backend timestamp: RFC 3339 UTC at second precision.
#[track_caller]
fn assert_backend_timestamp(timestamp: &str) {
    assert_eq!(timestamp.len(), 20, "{timestamp}");
    assert!(timestamp.ends_with('Z'), "{timestamp}");
    assert_eq!(&timestamp[10..11], "T", "{timestamp}");
}

/// What a frame becomes: `None` if dropped, `Some((type, payload))` if broadcast.
#[track_caller]
fn check_frame(frame: &str, expect: Option<(&str, Value)>) {
    match (from_frame("s1", frame), expect) {
        (Incoming::Broadcast(message), Some((kind, payload))) => {
            assert_eq!(message.session_id, "s1");
            assert_eq!(message.kind, kind);
            assert_eq!(message.payload, payload);
            assert_eq!(message.partial, None);
            assert_backend_timestamp(&message.timestamp);
        }
        (Incoming::Dropped(_), None) => {}
        (got, expect) => panic!("{frame}: got {got:?}, expected {expect:?}"),
    }
}

#[test]
fn object_payloads_are_kept_and_the_envelope_dropped() {
    check_frame(
        r#"{"seq":2,"type":"system.message","timestamp":"2025-10-31T20:02:42.5","payload":{"message":"hi"},"partial":null}"#,
        Some(("system.message", json!({"message": "hi"}))),
    );
    check_frame(
        r#"{"type":"agent.running","payload":{}}"#,
        Some(("agent.running", json!({}))),
    );
}

#[test]
fn other_payloads_nest_the_whole_envelope() {
    let lifecycle = json!({"seq": 1, "type": "system.message", "timestamp": "2025-10-31T20:02:41.120004", "payload": "session.started", "partial": null});
    check_frame(
        &lifecycle.to_string(),
        Some(("system.message", lifecycle.clone())),
    );
    for payload in [json!(""), json!(null), json!([1, 2]), json!(7)] {
        let frame = json!({"type": "agent.message", "payload": payload});
        check_frame(&frame.to_string(), Some(("agent.message", frame.clone())));
    }
    check_frame(
        r#"{"type":"agent.message","seq":3}"#,
        Some(("agent.message", json!({"type": "agent.message", "seq": 3}))),
    );
}

#[test]
fn frames_without_a_string_type_are_dropped() {
    for frame in [
        "not json",
        "[1,2]",
        r#""agent.message""#,
        r#"{"payload":{}}"#,
        r#"{"type":5,"payload":{}}"#,
        r#"{"type":null}"#,
    ] {
        check_frame(frame, None);
    }
}

#[test]
fn ping_frames_ask_for_a_pong() {
    assert_eq!(from_frame("s1", r#"{"type":"ping"}"#), Incoming::Ping);
    let pong: Value = serde_json::from_str(&pong()).unwrap();
    assert_eq!(pong["type"], "pong");
    assert_backend_timestamp(pong["timestamp"].as_str().unwrap());
    assert_eq!(pong.as_object().unwrap().len(), 2);
}

/// What a posted body becomes: `None` if refused, `Some((type, payload))` otherwise.
#[track_caller]
fn check_post(body: &Value, expect: Option<(&str, Value)>) {
    match (from_post("s1", body.clone()), expect) {
        (Ok(message), Some((kind, payload))) => {
            assert_eq!(message.kind, kind, "{body}");
            assert_eq!(message.payload, payload, "{body}");
            assert_eq!(message.session_id, "s1");
            assert_backend_timestamp(&message.timestamp);
        }
        (Err(Error::InvalidBody), None) => {}
        (got, expect) => panic!("{body}: got {got:?}, expected {expect:?}"),
    }
}

#[test]
fn posted_bodies_lose_their_type() {
    check_post(
        &json!({"content": "hello"}),
        Some(("user_message", json!({"content": "hello"}))),
    );
    check_post(
        &json!({"type": "interrupt"}),
        Some(("interrupt", json!({}))),
    );
    check_post(
        &json!({"type": "repo_added", "name": "a", "url": "u"}),
        Some(("repo_added", json!({"name": "a", "url": "u"}))),
    );
    check_post(&json!({"type": ""}), Some(("user_message", json!({}))));
    check_post(
        &json!({"type": 3, "x": 1}),
        Some(("user_message", json!({"x": 1}))),
    );
    check_post(&json!([1]), None);
    check_post(&json!("text"), None);
    check_post(&json!(null), None);
}

/// The token a request presents, from its headers and URI.
#[track_caller]
fn check_token(headers: &[(&'static str, &str)], uri: &str, expect: Option<&str>) {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    let uri: Uri = uri.parse().unwrap();
    assert_eq!(
        presented_token(&map, &uri).as_deref(),
        expect,
        "{headers:?} {uri}"
    );
}

#[test]
fn tokens_come_from_the_header_the_proxy_header_or_the_query() {
    let path = "/api/projects/p/sessions/s/ws";
    check_token(&[("authorization", "Bearer abc")], path, Some("abc"));
    check_token(&[("authorization", "bearer  abc ")], path, Some("abc"));
    check_token(&[("x-forwarded-access-token", "fwd")], path, Some("fwd"));
    check_token(&[], &format!("{path}?token=q%20t"), Some("q t"));
    check_token(
        &[("authorization", "Bearer abc")],
        &format!("{path}?token=other"),
        Some("abc"),
    );
    check_token(
        &[
            ("authorization", "Basic xyz"),
            ("x-forwarded-access-token", "fwd"),
        ],
        path,
        Some("fwd"),
    );
    check_token(&[("authorization", "Bearer ")], path, None);
    check_token(&[], &format!("{path}?token="), None);
    check_token(&[], path, None);
}

#[test]
fn tokens_compare_whole() {
    assert!(same_token(b"secret", b"secret"));
    assert!(!same_token(b"secret", b"secreT"));
    assert!(!same_token(b"secret", b"secret2"));
    assert!(!same_token(b"", b"secret"));
}

#[test]
fn history_skips_malformed_lines_and_partials_unless_asked() {
    let file = concat!(
        r#"{"sessionId":"s","type":"a","timestamp":"2025-01-01T00:00:00Z","payload":{}}"#,
        "\n",
        "not json\n",
        "\n",
        r#"{"sessionId":"s","type":"message.partial","timestamp":"2025-01-01T00:00:01Z","payload":{"x":1}}"#,
        "\n",
        r#"{"type":"missing-fields"}"#,
        "\n",
        r#"{"sessionId":"s","type":"b","timestamp":"2025-01-01T00:00:02Z","payload":{}}"#,
    );
    let kinds = |include| {
        parse_history(file.as_bytes(), include)
            .into_iter()
            .map(|message| message.kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(false), ["a", "b"]);
    assert_eq!(kinds(true), ["a", "message.partial", "b"]);
}

#[test]
fn session_names_must_name_a_folder() {
    for good in ["agentic-session-1", "s", "a.b", "..."] {
        assert!(valid_session_name(good), "{good}");
    }
    for bad in ["", ".", "..", "a/b", "../x", "a\\b", "a\0b"] {
        assert!(!valid_session_name(bad), "{bad:?}");
    }
}

#[test]
fn partial_messages_are_included_for_truthy_values() {
    for yes in ["1", "true", "TRUE", "yes", "Yes"] {
        assert!(truthy(yes), "{yes}");
    }
    for no in ["", "0", "false", "no", "y"] {
        assert!(!truthy(no), "{no}");
    }
}

/// A hub whose history writer only answers flushes.
fn hub_without_disk() -> Hub {
    let (writer, mut commands) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(command) = commands.recv().await {
            if let WriteCmd::Flush { done } = command {
                let _ = done.send(());
            }
        }
    });
    Hub::start(writer).0
}

fn posted(i: u64) -> ambient_protocol::SessionMessage {
    from_post("s", json!({"i": i})).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_connection_whose_queue_stays_full_is_dropped() {
    let hub = hub_without_disk();
    let (outgoing, mut queue) = mpsc::channel(1);
    let close = CancellationToken::new();
    hub.register("s", outgoing, close.clone()).await.unwrap();
    hub.wait_for_connections("s", 1).await.unwrap();
    let started = Instant::now();
    for i in 0..3 {
        hub.broadcast(posted(i)).await.unwrap();
    }
    // Answered only once the hub has handled every broadcast before it.
    hub.flush().await.unwrap();
    assert!(started.elapsed() >= STALL_LIMIT);
    assert!(
        close.is_cancelled(),
        "the stuck connection is told to close"
    );
    assert_eq!(hub.connection_count("s"), 0);
    // The first line fit in the queue; then the hub let go of the connection.
    assert_eq!(
        queue
            .recv()
            .await
            .map(|line| line.as_str().contains(r#""i":0"#)),
        Some(true)
    );
    assert_eq!(queue.recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_is_gone_is_forgotten_without_waiting() {
    let hub = hub_without_disk();
    let (outgoing, queue) = mpsc::channel(1);
    hub.register("s", outgoing, CancellationToken::new())
        .await
        .unwrap();
    hub.wait_for_connections("s", 1).await.unwrap();
    drop(queue);
    let started = Instant::now();
    hub.broadcast(posted(0)).await.unwrap();
    hub.flush().await.unwrap();
    assert_eq!(started.elapsed(), std::time::Duration::ZERO);
    assert_eq!(hub.connection_count("s"), 0);
}
