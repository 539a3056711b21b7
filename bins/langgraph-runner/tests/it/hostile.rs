//! A hostile LangGraph server and a hostile driver: an event stream whose line never
//! ends, and a driver whose output line never ends. The session fails naming the bound,
//! with the runner's memory under the ceiling.

use std::convert::Infallible;

use ambient_local_backend::SessionSeed;
use ambient_test_support::harness::{
    Backend, PROJECT, SESSION, assert_under_ceiling, peak_memory, peak_memory_wrapper, python,
};
use axum::{Json, Router, body::Body, routing::post};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

/// A server that knows one graph, makes a thread, and answers a run with a stream whose
/// second event never ends.
async fn endless_server() -> String {
    let chunk = axum::body::Bytes::from(vec![b'x'; 64 << 10]);
    let app = Router::new()
        .route(
            "/assistants/search",
            post(|| async { Json(json!([{"assistant_id": "agent", "graph_id": "agent"}])) }),
        )
        .route(
            "/threads",
            post(|| async { Json(json!({"thread_id": "t-1"})) }),
        )
        .route(
            "/threads/t-1/runs/stream",
            post(move || {
                let chunk = chunk.clone();
                async move {
                    let opening = axum::body::Bytes::from_static(
                        b"event: metadata\r\ndata: {\"run_id\":\"r-1\"}\r\n\r\nevent: values\r\ndata: ",
                    );
                    let endless = stream::iter(std::iter::once(opening).chain(std::iter::repeat(chunk)))
                        .map(Ok::<_, Infallible>);
                    axum::http::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Body::from_stream(endless))
                        .unwrap()
                }
            }),
        )
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, Json(Value::Null)) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn run_measured(env: &Backend, settings: &[(&str, &str)]) -> (i32, String, u64) {
    let report = env.workspace.path().join("peak-memory");
    let wrapper = peak_memory_wrapper(&report);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut all = vec![("PROMPT", "go"), ("PATH", "/usr/local/bin:/usr/bin:/bin")];
    all.extend_from_slice(settings);
    let child = env.runner_via(&wrapper, &all).spawn().unwrap();
    let finished = env.finish(child).await;
    let status = env.backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Failed"), "{status:?}");
    (
        finished.code.unwrap_or(-1),
        status["message"].as_str().unwrap_or_default().to_owned(),
        peak_memory(&report),
    )
}

#[tokio::test]
async fn a_server_stream_whose_line_never_ends_fails_the_session_naming_the_bound() {
    let url = endless_server().await;
    let env = Backend::start(
        env!("CARGO_BIN_EXE_langgraph-runner"),
        SessionSeed::new(PROJECT, SESSION),
    )
    .await;
    let (code, message, peak) =
        run_measured(&env, &[("LANGGRAPH_URL", &url), ("WORKFLOW_ID", "agent")]).await;
    assert_eq!(code, 1, "{message}");
    assert!(message.contains("more than 8388608 bytes"), "{message}");
    assert_under_ceiling("langgraph-runner, an endless SSE line", peak);
}

#[tokio::test]
async fn a_driver_whose_output_line_never_ends_fails_the_session_naming_the_bound() {
    let env = Backend::start(
        env!("CARGO_BIN_EXE_langgraph-runner"),
        SessionSeed::new(PROJECT, SESSION),
    )
    .await;
    // A driver that says it is ready, then writes one line for ever.
    let driver = env.workspace.path().join("hostile_driver.py");
    std::fs::write(
        &driver,
        "import sys\n\
         sys.stdout.write('{\"event\": \"ready\"}\\n'); sys.stdout.flush()\n\
         chunk = 'x' * 65536\n\
         sys.stdout.write('{\"event\": \"')\n\
         while True:\n    sys.stdout.write(chunk)\n",
    )
    .unwrap();
    let driver = driver.to_str().unwrap().to_owned();
    let (code, message, peak) = run_measured(
        &env,
        &[
            ("WORKFLOW_ID", "graphs:chat"),
            ("LANGGRAPH_PYTHON", python()),
            ("LANGGRAPH_DRIVER", &driver),
        ],
    )
    .await;
    assert_eq!(code, 1, "{message}");
    assert!(message.contains("longer than 8388608 bytes"), "{message}");
    assert_under_ceiling("langgraph-runner, an endless driver line", peak);
}

/// A server that accepts connections, reads what is sent, and never answers.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

#[tokio::test]
async fn a_server_that_never_answers_fails_the_session_within_the_timeout_naming_the_call() {
    let url = silent_server().await;
    let env = Backend::start(
        env!("CARGO_BIN_EXE_langgraph-runner"),
        SessionSeed::new(PROJECT, SESSION),
    )
    .await;
    let started = std::time::Instant::now();
    let child = env
        .runner(&[
            ("PROMPT", "go"),
            ("LANGGRAPH_URL", &url),
            ("WORKFLOW_ID", "agent"),
            ("LANGGRAPH_TIMEOUT", "2"),
        ])
        .spawn()
        .unwrap();
    let finished = env.finish(child).await;
    let took = started.elapsed();
    assert_eq!(finished.code, Some(1), "{}", finished.stderr);
    // The bound, and not the session's own timeout, ended it.
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    let status = env.backend.status(PROJECT, SESSION).unwrap();
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("no answer within 2 s"), "{message}");
    assert!(message.contains(&url), "the server is not named: {message}");
    assert!(message.contains("looking up the assistant"), "{message}");
}
