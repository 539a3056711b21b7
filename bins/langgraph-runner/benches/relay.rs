//! The cost of relaying one LangGraph event: from an SSE event written by the server to
//! its frame at the backend.
//!
//! A replay server in this process plays a LangGraph Server's part: it answers the few
//! calls the runner makes (assistant lookup, thread, run status) and streams one run of
//! `N` events shaped like the captured ones (`fixtures/langgraph/03-chat-messages-tuple.sse`:
//! eight token chunks of about 1.3 KB each, then the whole message in `updates`, then a
//! `custom` event, over and over). A real `langgraph dev` cannot be the source here: it
//! produces a few thousand events a second, and the figure would be Python's.
//!
//! The runner is the release `langgraph-runner` binary, connected to a local backend in
//! this process. Its cost per event is the time from the first byte of the stream to the
//! run's result at the backend, over `N`. The baseline, in the same run and measured the
//! same way, is a bare relay: reqwest reads the same stream, and each event's data goes
//! to the same backend as one frame through tokio-tungstenite, with no mapping.
//!
//! Rounds alternate and medians are reported. Run with
//! `cargo bench -p langgraph-runner --bench relay`; `-- --events N` and `-- --rounds N`
//! change the defaults (20,000 and 5). `docs/performance.md` records the figures.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and fails loudly"
)]

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Instant,
};

use ambient_local_backend::LocalBackend;
use ambient_protocol::{Frame, FrameId, Outbound, SessionMessage, runner_timestamp};
use ambient_test_support::bench;
use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::header,
    response::IntoResponse,
    routing::{get, post},
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-token";
const PROJECT: &str = "bench";
const THREAD: &str = "01a21647-47e3-73e7-a3cf-77a90849c4e5";
const RUN: &str = "01a21647-47e3-73e7-a3cf-77a8b437f734";
/// How many bytes of the stream each write carries, about what a server's writes hold.
const CHUNK: usize = 16 * 1024;

/// The replay server's stream, and when its first byte was asked for.
#[derive(Clone)]
struct Replay {
    body: Bytes,
    started: Arc<Mutex<Option<Instant>>>,
}

impl Replay {
    fn start_time(&self) -> Instant {
        self.started.lock().unwrap().expect("the stream was read")
    }
}

/// `events` events in the captured shapes, with resumable-run ids.
fn stream_body(events: usize) -> Bytes {
    let mut body = String::new();
    let mut id = 1_795_670_110_138_u64;
    let mut push = |name: &str, data: &Value| {
        id += 1;
        body.push_str(&format!(
            "event: {name}\r\ndata: {data}\r\nid: {id}-0\r\n\r\n"
        ));
    };
    push("metadata", &json!({"run_id": RUN, "attempt": 1}));
    let token_metadata = json!({"created_by":"system","assistant_id":"eb6db400-e3c8-5d06-a834-015cb89efe69","run_attempt":1,"langgraph_version":"1.2.24","langgraph_api_version":"0.16.7","langgraph_plan":"enterprise","langgraph_host":"self-hosted","langgraph_api_url":"http://127.0.0.1:2124","run_id":RUN,"thread_id":THREAD,"graph_id":"chat","ls_integration":"langchain_chat_model","langgraph_step":1,"langgraph_node":"chatbot","langgraph_triggers":["branch:to:chatbot"],"langgraph_path":["__pregel_pull","chatbot"],"langgraph_checkpoint_ns":"chatbot:24d8dd04-936e-1a2a-6b2f-63a12212c6a2","checkpoint_ns":"chatbot:24d8dd04-936e-1a2a-6b2f-63a12212c6a2","ls_provider":"genericfakechatmodel","ls_model_type":"chat","lc_versions":{"langchain-core":"1.8.3"}});
    let mut written = 0;
    let mut message = 0;
    while written < events {
        message += 1;
        let message_id = format!("lc_run--01a21647-4bab-7317-90d7-{message:012}");
        let mut whole = String::new();
        for token in 0..8 {
            if written == events {
                break;
            }
            let text = format!("word{token} ");
            whole.push_str(&text);
            push(
                "messages",
                &json!([{"content": text, "additional_kwargs":{}, "response_metadata":{}, "type":"AIMessageChunk", "name":null, "id": message_id, "tool_calls":[], "invalid_tool_calls":[], "usage_metadata":null, "tool_call_chunks":[], "chunk_position":null}, token_metadata]),
            );
            written += 1;
        }
        if written < events {
            push(
                "updates",
                &json!({"chatbot":{"messages":[{"content": whole, "additional_kwargs":{}, "response_metadata":{}, "type":"ai", "name":null, "id": message_id, "tool_calls":[], "invalid_tool_calls":[], "usage_metadata":null}]}}),
            );
            written += 1;
        }
        if written < events {
            push("custom", &json!({"progress": message}));
            written += 1;
        }
    }
    Bytes::from(body)
}

async fn stream_run(State(replay): State<Replay>) -> impl IntoResponse {
    let body = replay.body.clone();
    let started = replay.started.clone();
    let chunks = futures_util::stream::iter(0..body.len().div_ceil(CHUNK)).map(move |i| {
        started.lock().unwrap().get_or_insert_with(Instant::now);
        let end = ((i + 1) * CHUNK).min(body.len());
        Ok::<_, std::convert::Infallible>(body.slice(i * CHUNK..end))
    });
    (
        [
            (
                header::CONTENT_TYPE,
                String::from("text/event-stream; charset=utf-8"),
            ),
            (
                header::CONTENT_LOCATION,
                format!("/threads/{THREAD}/runs/{RUN}"),
            ),
        ],
        Body::from_stream(chunks),
    )
}

async fn replay_server(replay: Replay) -> String {
    let app = Router::new()
        .route(
            "/assistants/search",
            post(|| async { Json(json!([{"assistant_id": "a", "graph_id": "chat"}])) }),
        )
        .route(
            "/threads",
            post(|| async { Json(json!({"thread_id": THREAD, "status": "idle"})) }),
        )
        .route("/threads/{thread}/runs/stream", post(stream_run))
        .route(
            "/threads/{thread}/runs/{run}",
            get(|| async { Json(json!({"run_id": RUN, "status": "success"})) }),
        )
        .with_state(replay);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The runner relaying one run; returns microseconds per event.
async fn runner(
    backend: &LocalBackend,
    session: &str,
    url: &str,
    replay: &Replay,
    events: usize,
) -> f64 {
    *replay.started.lock().unwrap() = None;
    let mut watch = backend.watch(session);
    let binary = Path::new(env!("CARGO_BIN_EXE_langgraph-runner"));
    let mut child = bench::runner(binary, backend, PROJECT, session, TOKEN)
        .env("PROMPT", "bench")
        .env("LANGGRAPH_URL", url)
        .env("WORKFLOW_ID", "chat")
        .spawn()
        .unwrap();
    let arrived = arrival(&mut watch, 1, |m| {
        m.payload["type"] == json!("result.message")
    })
    .await;
    let status = child.wait().await.unwrap();
    assert!(status.success(), "the runner exited with {status}");
    per_event_us(replay.start_time(), arrived, events)
}

/// Reads broadcasts until `count` of them match; returns when the last arrived.
async fn arrival(
    watch: &mut mpsc::UnboundedReceiver<SessionMessage>,
    count: usize,
    matches: impl Fn(&SessionMessage) -> bool,
) -> Instant {
    let mut seen = 0;
    loop {
        let message = bench::next_broadcast(watch).await;
        if matches(&message) {
            seen += 1;
            if seen == count {
                return Instant::now();
            }
        }
    }
}

/// The bare relay: the same stream, one frame per event, no mapping.
async fn bare_relay(
    backend: &LocalBackend,
    session: &str,
    url: &str,
    replay: &Replay,
    events: usize,
) -> f64 {
    *replay.started.lock().unwrap() = None;
    let mut watch = backend.watch(session);
    let socket = bench::bare_client(backend, PROJECT, session, TOKEN).await;
    let (mut sink, mut echoes) = socket.split();
    tokio::spawn(async move { while let Some(Ok(_)) = echoes.next().await {} });
    let client = reqwest::Client::new();
    let mut response = client
        .post(format!("{url}/threads/{THREAD}/runs/stream"))
        .json(&json!({"assistant_id": "chat"}))
        .send()
        .await
        .unwrap();
    let mut pending = Vec::new();
    let mut seq = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let event: Vec<u8> = pending.drain(..end + 4).collect();
            let text = String::from_utf8_lossy(&event);
            let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            seq += 1;
            let frame = Frame {
                seq,
                id: FrameId::new("bare", seq),
                timestamp: runner_timestamp(time::OffsetDateTime::now_utc()),
                body: Outbound::Log {
                    message: data.to_owned(),
                },
            };
            sink.feed(Message::Text(frame.to_json().into()))
                .await
                .unwrap();
        }
        sink.flush().await.unwrap();
    }
    let arrived = arrival(&mut watch, seq as usize, |m| m.kind == "system.message").await;
    per_event_us(replay.start_time(), arrived, events)
}

fn per_event_us(started: Instant, arrived: Instant, events: usize) -> f64 {
    arrived.duration_since(started).as_secs_f64() * 1e6 / events as f64
}

/// The runner's instructions per event, counted by callgrind at two stream lengths.
async fn instructions() {
    let backend = bench::paired_backend(TOKEN, PROJECT, 2)
        .start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (folder, _scratch) = bench::callgrind_folder();
    let binary = Path::new(env!("CARGO_BIN_EXE_langgraph-runner"));
    let mut counts = Vec::new();
    for (run, events) in [2_000, 12_000].into_iter().enumerate() {
        let replay = Replay {
            body: stream_body(events),
            started: Arc::new(Mutex::new(None)),
        };
        let url = replay_server(replay).await;
        let mut command = bench::runner(binary, &backend, PROJECT, &format!("runner-{run}"), TOKEN);
        command
            .env("PROMPT", "bench")
            .env("LANGGRAPH_URL", &url)
            .env("WORKFLOW_ID", "chat");
        let count = bench::callgrind(command, &folder.join(format!("{run}.out"))).await;
        println!("langgraph-runner, {events:>6} events: {count:>14} instructions");
        counts.push((events, count));
    }
    let (per_event, fixed) = bench::per_unit(counts[0], counts[1]);
    println!(
        "langgraph-runner: {per_event:.0} instructions per event, {:.1} million fixed",
        fixed / 1e6
    );
    backend.shutdown().await;
}

#[tokio::main]
async fn main() {
    ambient_test_support::crypto();
    if std::env::args().any(|a| a == "--instructions") {
        instructions().await;
        return;
    }
    let events = bench::number_flag("--events", 20_000);
    let rounds = bench::number_flag("--rounds", 5);
    let replay = Replay {
        body: stream_body(events),
        started: Arc::new(Mutex::new(None)),
    };
    let url = replay_server(replay.clone()).await;
    let backend = bench::paired_backend(TOKEN, PROJECT, rounds)
        .start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    println!(
        "{events} LangGraph events ({:.1} MB of SSE), replay server and local backend on loopback, {rounds} rounds",
        replay.body.len() as f64 / 1e6
    );
    let mut paired = bench::Paired::default();
    for round in 0..rounds {
        let b = bare_relay(&backend, &format!("bare-{round}"), &url, &replay, events).await;
        let r = runner(&backend, &format!("runner-{round}"), &url, &replay, events).await;
        println!(
            "round {round}: bare relay {b:>6.2} µs/event   langgraph-runner {r:>6.2} µs/event"
        );
        paired.push(b, r);
    }
    paired.report(
        "bare relay:",
        "langgraph-runner:",
        "µs/event",
        2,
        " (target: under 50)",
    );
    backend.shutdown().await;
}
