//! The session resource: status PUT, GET and annotation PATCH.

use ambient_protocol::status::{AgenticSession, Phase, SDK_SESSION_ID_ANNOTATION};
use serde_json::{Value, json};

use crate::support::{PROJECT, SESSION, TOKEN, answer, builder, http, start, url};
use ambient_local_backend::{LocalBackend, SessionSeed};

fn resource(session: &str) -> String {
    format!("/projects/{PROJECT}/agentic-sessions/{session}")
}

async fn seeded() -> LocalBackend {
    let seed = SessionSeed::new(PROJECT, "with-spec")
        .phase(Phase::Running)
        .annotation("ambient-code.io/runner-sa", "runner-sa")
        .spec(json!({"interactive": true, "initialPrompt": "Fix it"}));
    start(builder().session(seed)).await
}

async fn put_status(backend: &LocalBackend, session: &str, body: &str) -> (u16, Value) {
    let request = http()
        .put(url(backend, &format!("{}/status", resource(session))))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned());
    answer(request).await
}

#[tokio::test]
async fn status_put_keeps_only_whitelisted_fields_and_merges_them() {
    let backend = seeded().await;
    let updated = (200, json!({"message": "agentic session status updated"}));
    assert_eq!(
        put_status(
            &backend,
            SESSION,
            r#"{"phase":"Running","message":"Runner started","startTime":"x","bogus":1}"#
        )
        .await,
        updated
    );
    let status = backend.status(PROJECT, SESSION).expect("status");
    assert_eq!(
        Value::Object(status),
        json!({"phase": "Running", "message": "Runner started"})
    );
    let final_body = json!({
        "phase": "Completed", "completionTime": "2025-10-31T20:10:03.512331+00:00",
        "message": "Runner completed", "subtype": "success", "is_error": false,
        "num_turns": 3, "session_id": SESSION, "result": "", "cost": 0.1,
        "duration_ms": 10, "duration_api_ms": 5, "total_cost_usd": 0.2,
        "usage": {"input_tokens": 1}, "has_workspace_changes": true,
    });
    assert_eq!(
        put_status(&backend, SESSION, &final_body.to_string()).await,
        updated
    );
    let mut expected = final_body.clone();
    expected
        .as_object_mut()
        .expect("object")
        .remove("has_workspace_changes");
    assert_eq!(
        Value::Object(backend.status(PROJECT, SESSION).expect("status")),
        expected
    );
    let session = backend.session(PROJECT, SESSION).expect("session");
    let status = session.status.expect("typed status");
    assert_eq!(status.phase, Some(Phase::Completed));
    assert_eq!(status.message.as_deref(), Some("Runner completed"));
    backend.shutdown().await;
}

#[tokio::test]
async fn status_put_refuses_bad_bodies_and_unknown_sessions() {
    let backend = seeded().await;
    for body in ["", "[]", "\"Running\"", "{"] {
        assert_eq!(
            put_status(&backend, SESSION, body).await,
            (400, json!({"error": "Invalid request body"})),
            "{body:?}"
        );
    }
    assert_eq!(
        put_status(&backend, "nobody", r#"{"phase":"Running"}"#).await,
        (404, json!({"error": "Session not found"}))
    );
    assert!(backend.status(PROJECT, "nobody").is_none());
    backend.shutdown().await;
}

#[tokio::test]
async fn session_get_returns_the_resource() {
    let backend = seeded().await;
    let (status, body) = answer(
        http()
            .get(url(&backend, &resource("with-spec")))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "apiVersion": "vteam.ambient-code/v1alpha1",
            "kind": "AgenticSession",
            "metadata": {
                "name": "with-spec",
                "namespace": PROJECT,
                "annotations": {"ambient-code.io/runner-sa": "runner-sa"},
            },
            "spec": {"interactive": true, "initialPrompt": "Fix it"},
            "status": {"phase": "Running"},
        })
    );
    let typed: AgenticSession = serde_json::from_value(body).expect("an AgenticSession");
    assert_eq!(Some(typed), backend.session(PROJECT, "with-spec"));

    let (status, body) = answer(
        http()
            .get(url(&backend, &resource(SESSION)))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(
        (status, &body["status"], &body["spec"]),
        (200, &json!({"phase": "Pending"}), &json!({}))
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn session_get_of_an_unknown_session_is_404() {
    let backend = seeded().await;
    let not_found = (404, json!({"error": "Session not found"}));
    assert_eq!(
        answer(
            http()
                .get(url(&backend, &resource("nobody")))
                .bearer_auth(TOKEN)
        )
        .await,
        not_found
    );
    // Resources are namespaced: the same name in another project is another resource.
    let elsewhere = url(
        &backend,
        &format!("/projects/other/agentic-sessions/{SESSION}"),
    );
    assert_eq!(
        answer(http().get(elsewhere).bearer_auth(TOKEN)).await,
        not_found
    );
    assert!(backend.session("other", SESSION).is_none());
    backend.shutdown().await;
}

async fn patch(backend: &LocalBackend, session: &str, body: &str) -> (u16, Value) {
    let request = http()
        .patch(url(backend, &resource(session)))
        .bearer_auth(TOKEN)
        .header("content-type", "application/merge-patch+json")
        .body(body.to_owned());
    answer(request).await
}

#[tokio::test]
async fn patch_merges_annotations() {
    let backend = seeded().await;
    let body = json!({"metadata": {"annotations": {SDK_SESSION_ID_ANNOTATION: "0b0f7c1e"}}});
    let all =
        json!({"ambient-code.io/runner-sa": "runner-sa", SDK_SESSION_ID_ANNOTATION: "0b0f7c1e"});
    assert_eq!(
        patch(&backend, "with-spec", &body.to_string()).await,
        (
            200,
            json!({"message": "Session patched successfully", "annotations": all})
        )
    );
    let session = backend.session(PROJECT, "with-spec").expect("session");
    assert_eq!(
        session
            .metadata
            .annotations
            .get(SDK_SESSION_ID_ANNOTATION)
            .map(String::as_str),
        Some("0b0f7c1e")
    );
    // Only annotations are read; anything else in the body changes nothing.
    let (status, answer) = patch(&backend, "with-spec", r#"{"spec":{"interactive":false}}"#).await;
    assert_eq!((status, &answer["annotations"]), (200, &all));
    assert_eq!(
        session.spec,
        backend.session(PROJECT, "with-spec").expect("session").spec
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn patch_refuses_bad_bodies_unknown_sessions_and_non_string_annotations() {
    let backend = seeded().await;
    assert_eq!(
        patch(&backend, "with-spec", "not json").await,
        (400, json!({"error": "Invalid request body"}))
    );
    assert_eq!(
        patch(
            &backend,
            "nobody",
            r#"{"metadata":{"annotations":{"a":"b"}}}"#
        )
        .await,
        (404, json!({"error": "Session not found"}))
    );
    assert_eq!(
        patch(
            &backend,
            "with-spec",
            r#"{"metadata":{"annotations":{"a":"b","n":1}}}"#
        )
        .await,
        (500, json!({"error": "Failed to patch session"}))
    );
    let session = backend.session(PROJECT, "with-spec").expect("session");
    assert!(
        !session.metadata.annotations.contains_key("a"),
        "a refused patch changes nothing"
    );
    backend.shutdown().await;
}
