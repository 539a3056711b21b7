//! The stream mapping against a real `langgraph dev` server, run from the project-local
//! venv that `./scripts/test` installs with the pinned packages.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use std::{path::PathBuf, time::Duration};

use ambient_adapter::Event;
use ambient_adapter_langgraph::{GraphEvent, RunEnd, StreamMapper};
use ambient_sse::SseDecoder;
use ambient_test_support::langgraph::LangGraphDev;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

async fn server() -> LangGraphDev {
    LangGraphDev::start(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/server")).await
}

/// Runs `body` as a streamed run on `server` and maps what comes back.
async fn stream(server: &LangGraphDev, path: &str, body: Value) -> (Vec<Event>, RunEnd) {
    ambient_test_support::crypto();
    let client = reqwest::Client::new();
    let mut response = client
        .post(format!("{}{path}", server.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let mut decoder = SseDecoder::new();
    let mut mapper = StreamMapper::new();
    let mut events = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, response.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        for sse in decoder.push(&chunk).unwrap() {
            events.extend(mapper.map(&GraphEvent::from_sse(&sse).unwrap()));
        }
    }
    (events, mapper.end())
}

#[tokio::test]
async fn a_real_server_streams_tokens_that_map_to_deltas_and_the_whole_text() {
    let server = server().await;
    let (events, end) = stream(
        &server,
        "/runs/stream",
        json!({
            "assistant_id": "chat",
            "input": {"messages": [{"role": "user", "content": "hi"}]},
            "stream_mode": ["updates", "messages-tuple"],
        }),
    )
    .await;
    let deltas: String = events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta { data, .. } => Some(data.as_str()),
            _ => None,
        })
        .collect();
    let whole = "You said hi, streamed word by word.";
    assert_eq!(deltas, whole);
    // The node is a step around all it said: the first token's metadata names it.
    let step = |finished| Event::Step {
        name: String::from("chatbot"),
        finished,
    };
    assert_eq!(events.first(), Some(&step(false)));
    assert_eq!(events.last(), Some(&step(true)));
    assert_eq!(
        events.get(events.len() - 2),
        Some(&Event::Text(String::from(whole)))
    );
    assert_eq!(end, RunEnd::Completed);

    // Human in the loop: the question, and a run that ends waiting for the answer.
    let (events, end) = stream(
            &server,
            "/runs/stream",
            json!({"assistant_id": "hitl", "input": {"request": "deploy v2"}, "stream_mode": ["updates"]}),
        )
        .await;
    let RunEnd::Interrupted(interrupts) = end else {
        panic!("expected an interrupted run, got {end:?}: {events:?}");
    };
    assert_eq!(interrupts.len(), 1);
    assert_eq!(interrupts[0].value["request"], json!("deploy v2"));
    // The question, then the interrupt value's other fields.
    assert_eq!(
        interrupts[0].shown(false),
        "Approve this request?\n{\"request\":\"deploy v2\"}"
    );
}

#[tokio::test]
async fn a_thread_stops_at_an_interrupt_and_resumes_with_a_command() {
    use ambient_adapter_langgraph::{ClientError, LangGraphClient};

    let server = server().await;
    ambient_test_support::crypto();
    let client = LangGraphClient::new(server.url(), None).unwrap();
    let thread = client.create_thread().await.unwrap();
    let run = |body: Value| {
        let client = client.clone();
        let thread = thread.clone();
        async move {
            let mut stream = client.stream_run(&thread, &body).await?;
            let mut mapper = StreamMapper::new();
            let mut events = Vec::new();
            while let Some(event) = tokio::time::timeout(WAIT, stream.next()).await.unwrap()? {
                events.extend(mapper.map(&event));
            }
            Ok::<_, ClientError>((events, mapper.end()))
        }
    };
    let (_, end) = run(json!({"assistant_id": "hitl", "input": {"request": "deploy v2"}, "stream_mode": ["updates"]}))
        .await
        .unwrap();
    assert!(
        matches!(end, RunEnd::Interrupted(ref pending) if pending.len() == 1),
        "{end:?}"
    );
    let (events, end) = run(json!({"assistant_id": "hitl", "command": {"resume": {"approved": true}}, "stream_mode": ["updates"]}))
        .await
        .unwrap();
    assert_eq!(end, RunEnd::Completed);
    assert!(
        events.contains(&Event::Log(String::from(
            r#"ask_human: {"approved":{"approved":true}}"#
        ))),
        "{events:?}"
    );
    let error = run(json!({"assistant_id": "no-such-graph", "input": {}}))
        .await
        .unwrap_err();
    // The server names what is wrong, and the error carries it.
    assert!(
        matches!(&error, ClientError::Rejected { status: 422, detail, .. }
            if detail.starts_with("Invalid assistant: 'no-such-graph'")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_api_key_goes_in_x_api_key_and_nowhere_else() {
    use ambient_adapter_langgraph::LangGraphClient;
    use ambient_protocol::Secret;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // A socket, not a server, so that the test sees the request's bytes as sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0_u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = socket.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the request ended early");
            request.extend_from_slice(&buffer[..read]);
        }
        let body = r#"{"thread_id":"t-1","status":"idle"}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
        String::from_utf8(request).unwrap()
    });
    ambient_test_support::crypto();
    let client = LangGraphClient::new(&url, Some(Secret::new("lsv2_sk_key_123"))).unwrap();
    assert_eq!(client.create_thread().await.unwrap(), "t-1");
    let request = server.await.unwrap().to_lowercase();
    assert!(
        request.contains("\r\nx-api-key: lsv2_sk_key_123\r\n"),
        "{request}"
    );
    assert_eq!(request.matches("lsv2_sk_key_123").count(), 1, "{request}");
}
