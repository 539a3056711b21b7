//! `GET` and `POST …/sessions/{s}/messages`, and their in-process counterparts.

use ambient_local_backend::Error;
use ambient_protocol::status::MessageHistory;
use serde_json::{Value, json};

use crate::support::{
    PROJECT, SESSION, TOKEN, answer, assert_backend_timestamp, backend, connect, http,
    next_message, send, url, watched,
};

fn messages_path(session: &str) -> String {
    format!("/projects/{PROJECT}/sessions/{session}/messages")
}

/// The types `GET …/messages{query}` lists.
async fn listed_types(backend: &ambient_local_backend::LocalBackend, query: &str) -> Vec<String> {
    let target = format!("{}{query}", url(backend, &messages_path(SESSION)));
    let (status, body) = answer(http().get(target).bearer_auth(TOKEN)).await;
    assert_eq!(status, 200, "{query}: {body}");
    let history: MessageHistory = serde_json::from_value(body).expect("a MessageHistory");
    assert_eq!(history.session_id, SESSION);
    history.messages.into_iter().map(|m| m.kind).collect()
}

#[tokio::test]
async fn history_leaves_out_partials_unless_asked() {
    let backend = backend().await;
    let mut ws = connect(&backend, SESSION).await;
    for kind in [
        "agent.running",
        "message.partial",
        "message.partial",
        "agent.message",
    ] {
        send(
            &mut ws,
            json!({"type": kind, "payload": {"k": kind}}).to_string(),
        )
        .await;
        assert_eq!(next_message(&mut ws).await.kind, kind);
    }
    let without = ["agent.running", "agent.message"];
    let with = [
        "agent.running",
        "message.partial",
        "message.partial",
        "agent.message",
    ];
    for (query, expect) in [
        ("", &without[..]),
        ("?include_partial_messages=0", &without[..]),
        ("?include_partial_messages=no", &without[..]),
        ("?include_partial_messages=1", &with[..]),
        ("?include_partial_messages=true", &with[..]),
        ("?include_partial_messages=yes", &with[..]),
    ] {
        assert_eq!(listed_types(&backend, query).await, expect, "{query}");
    }
    let in_process: Vec<_> = backend
        .history(SESSION)
        .await
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(in_process, without);
    backend.shutdown().await;
}

#[tokio::test]
async fn history_of_a_session_without_messages_is_empty() {
    let backend = backend().await;
    let (status, body) = answer(
        http()
            .get(url(&backend, &messages_path("nobody")))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({"sessionId": "nobody", "messages": []}))
    );
    assert!(backend.history("nobody").await.is_empty());
    backend.shutdown().await;
}

#[tokio::test]
async fn history_skips_malformed_lines_in_the_file() {
    let backend = backend().await;
    backend
        .post_message(PROJECT, SESSION, json!({"content": "one"}))
        .await
        .expect("posted");
    assert_eq!(backend.history(SESSION).await.len(), 1);
    let path = backend.messages_path(SESSION);
    let mut file = std::fs::read_to_string(&path).expect("history file");
    file.push_str("{not json\n\n");
    std::fs::write(&path, file).expect("history file written");
    let kinds = listed_types(&backend, "").await;
    assert_eq!(kinds, ["user_message"]);
    backend.shutdown().await;
}

/// Posts `body` as raw text and returns the answer.
async fn post(backend: &ambient_local_backend::LocalBackend, body: &str) -> (u16, Value) {
    let request = http()
        .post(url(backend, &messages_path(SESSION)))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned());
    answer(request).await
}

#[tokio::test]
async fn posted_messages_are_broadcast_and_persisted() {
    let backend = backend().await;
    let mut watcher = backend.watch(SESSION);
    let mut runner = connect(&backend, SESSION).await;
    let queued = (202, json!({"status": "queued"}));

    assert_eq!(
        post(&backend, r#"{"content":"Now add a test"}"#).await,
        queued
    );
    let message = next_message(&mut runner).await;
    assert_eq!(message.kind, "user_message");
    assert_eq!(message.payload, json!({"content": "Now add a test"}));
    assert_eq!(message.session_id, SESSION);
    assert_backend_timestamp(&message.timestamp);
    assert_eq!(watched(&mut watcher).await, message);

    assert_eq!(post(&backend, r#"{"type":"interrupt"}"#).await, queued);
    let interrupt = next_message(&mut runner).await;
    assert_eq!(
        (interrupt.kind.as_str(), &interrupt.payload),
        ("interrupt", &json!({}))
    );

    let kinds: Vec<_> = backend
        .history(SESSION)
        .await
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(kinds, ["user_message", "interrupt"]);
    backend.shutdown().await;
}

#[tokio::test]
async fn posts_are_accepted_without_a_runner() {
    let backend = backend().await;
    let queued = (202, json!({"status": "queued"}));
    assert_eq!(post(&backend, r#"{"type":"end_session"}"#).await, queued);
    let history = backend.history(SESSION).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].kind, "end_session");
    backend.shutdown().await;
}

#[tokio::test]
async fn posts_that_are_not_json_objects_are_refused() {
    let backend = backend().await;
    for body in [
        "",
        "not json",
        "[1,2]",
        "\"text\"",
        "null",
        "{\"unclosed\":",
    ] {
        assert_eq!(
            post(&backend, body).await,
            (400, json!({"error": "invalid JSON body"})),
            "{body:?}"
        );
    }
    assert!(backend.history(SESSION).await.is_empty());
    backend.shutdown().await;
}

#[tokio::test]
async fn the_in_process_post_behaves_like_the_route() {
    let backend = backend().await;
    let mut watcher = backend.watch(SESSION);
    backend
        .post_message(PROJECT, SESSION, json!({"content": "hi"}))
        .await
        .expect("posted");
    backend
        .post_message(PROJECT, SESSION, json!({"type": "stop", "why": "done"}))
        .await
        .expect("posted");
    let first = watched(&mut watcher).await;
    assert_eq!(
        (first.kind.as_str(), &first.payload),
        ("user_message", &json!({"content": "hi"}))
    );
    let second = watched(&mut watcher).await;
    assert_eq!(
        (second.kind.as_str(), &second.payload),
        ("stop", &json!({"why": "done"}))
    );
    assert!(matches!(
        backend.post_message(PROJECT, SESSION, json!(["no"])).await,
        Err(Error::InvalidBody)
    ));
    assert!(matches!(
        backend.post_message(PROJECT, "../escape", json!({})).await,
        Err(Error::InvalidSessionName { .. })
    ));
    backend.shutdown().await;
}

#[tokio::test]
async fn session_names_that_are_not_folder_names_are_refused() {
    let backend = backend().await;
    let target = url(&backend, &messages_path("a%2Fb"));
    let (status, body) = answer(http().get(target).bearer_auth(TOKEN)).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "invalid session name"}))
    );
    backend.shutdown().await;
}
