//! The stream mapping against a real `langgraph dev` server, run from the project-local
//! venv that `./scripts/test` installs with the pinned packages.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use std::{path::PathBuf, process::Stdio, time::Duration};

use ambient_adapter::Event;
use ambient_adapter_langgraph::{GraphEvent, RunEnd, StreamMapper, sse::SseDecoder};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const WAIT: Duration = Duration::from_secs(90);

/// A `langgraph dev` serving the test graphs on a free loopback port; killed (by its PID,
/// through the child handle) when dropped.
struct LangGraphDev {
    _child: Child,
    _project: tempfile::TempDir,
    url: String,
}

impl LangGraphDev {
    async fn start() -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let langgraph = root.join("../../.venv/bin/langgraph");
        assert!(
            langgraph.exists(),
            "{} is missing: run ./scripts/test, which installs the pinned LangGraph packages into .venv",
            langgraph.display()
        );
        // The dev server writes its state next to langgraph.json: give it a copy.
        let project = tempfile::tempdir().unwrap();
        for file in ["langgraph.json", "graphs.py"] {
            std::fs::copy(
                root.join("tests/server").join(file),
                project.path().join(file),
            )
            .unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(langgraph)
            .args([
                "dev",
                "--no-browser",
                "--no-reload",
                "--host",
                "127.0.0.1",
                "--server-log-level",
                "info",
            ])
            .args(["--port", &port.to_string()])
            .current_dir(project.path())
            .env("LANGGRAPH_CLI_NO_ANALYTICS", "1")
            .env("LANGSMITH_TRACING", "false")
            .env("LANGCHAIN_TRACING_V2", "false")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Uvicorn says where it listens once it does (the port may have moved if taken).
        let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        for output in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let lines_tx = lines_tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(output).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let _kept = lines_tx.send(line);
                }
            });
        }
        let url = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.recv().await {
                if let Some(rest) = line.split("Uvicorn running on ").nth(1) {
                    return rest
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .trim_end_matches('\u{1b}')
                        .to_owned();
                }
            }
            panic!("langgraph dev ended before it listened");
        })
        .await
        .expect("langgraph dev listens in time");
        Self {
            _child: child,
            _project: project,
            url,
        }
    }

    /// Runs `body` as a streamed run and maps what comes back.
    async fn stream(&self, path: &str, body: Value) -> (Vec<Event>, RunEnd) {
        let _installed = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let mut response = client
            .post(format!("{}{path}", self.url))
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
            for sse in decoder.push(&chunk) {
                events.extend(mapper.map(&GraphEvent::from_sse(&sse).unwrap()));
            }
        }
        (events, mapper.end())
    }
}

#[tokio::test]
async fn a_real_server_streams_tokens_that_map_to_deltas_and_the_whole_text() {
    let server = LangGraphDev::start().await;
    let (events, end) = server
        .stream(
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
    let whole = "Hello from the fake model, streamed word by word.";
    assert_eq!(deltas, whole);
    assert_eq!(events.last(), Some(&Event::Text(String::from(whole))));
    assert_eq!(end, RunEnd::Completed);

    // Human in the loop: the question, and a run that ends waiting for the answer.
    let (events, end) = server
        .stream(
            "/runs/stream",
            json!({"assistant_id": "hitl", "input": {"request": "deploy v2"}, "stream_mode": ["updates"]}),
        )
        .await;
    assert!(
        events.contains(&Event::Text(String::from("Approve this request?"))),
        "{events:?}"
    );
    let RunEnd::Interrupted(interrupts) = end else {
        panic!("expected an interrupted run, got {end:?}");
    };
    assert_eq!(interrupts.len(), 1);
    assert_eq!(interrupts[0].value["request"], json!("deploy v2"));
}

#[tokio::test]
async fn a_thread_stops_at_an_interrupt_and_resumes_with_a_command() {
    use ambient_adapter_langgraph::{ClientError, LangGraphClient};

    let server = LangGraphDev::start().await;
    let client = LangGraphClient::new(&server.url, None).unwrap();
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
