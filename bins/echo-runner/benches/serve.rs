//! The AG-UI serve mode's cost per event, against a bare SSE server.
//!
//! The runner is the `echo-runner` binary in serve mode, asked for a burst of `N` filler
//! texts of 200 bytes per turn: each becomes three AG-UI events (`TEXT_MESSAGE_START`,
//! `…_CONTENT`, `…_END`), which go through the adapter, the redactor, the AG-UI mapping,
//! the run's replay buffer and the SSE stream. The baseline is an axum server in this
//! process that streams the same number of events of the same shape and size, each made
//! with `serde_json` as it is sent and written 64 at a time, with nothing in between.
//!
//! Both are read by the same client, which posts the run and counts events to the end of
//! the stream; the figure is the time from the request to the last byte, per event. The
//! runner keeps its default replay buffer (4096 events a run): a client that fell that far
//! behind would be cut, and the count would not match, failing the bench. The runner's
//! peak resident memory is its `VmHWM`. The two alternate for five rounds and
//! the medians are reported. Run with `cargo bench -p echo-runner --bench serve`;
//! `-- --texts N` changes the burst (default 30,000), `-- --rounds N` the rounds.
//! `docs/performance.md` records the figures.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and fails loudly"
)]

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use ambient_test_support::bench;
use axum::{Router, body::Body, routing::post};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "bench-serve-token-0123456789";
const TEXT_BYTES: usize = 200;
/// Events per write of the bare server.
const BATCH: usize = 64;

/// What a client read of one run.
struct Read {
    events: usize,
    elapsed: Duration,
}

/// Posts a run to `url` and reads its SSE stream to the end.
async fn read_run(client: &reqwest::Client, url: &str) -> Read {
    let started = Instant::now();
    let mut response = client
        .post(format!("{url}/run"))
        .bearer_auth(TOKEN)
        .json(&json!({
            "threadId": "bench",
            "runId": "bench-run",
            "messages": [{"id": "u1", "role": "user", "content": "bench"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = 0;
    let mut tail = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        // An event ends with a blank line, which may straddle two chunks.
        tail.extend_from_slice(&chunk);
        events += tail.windows(2).filter(|w| w == b"\n\n").count();
        let keep = tail.len().min(1);
        tail.drain(..tail.len() - keep);
    }
    Read {
        events,
        elapsed: started.elapsed(),
    }
}

/// The served runner with a burst of `texts`; returns what the client read and the peak
/// RSS.
async fn runner(client: &reqwest::Client, texts: usize) -> (Read, u64) {
    let workspace = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(Path::new(env!("CARGO_BIN_EXE_echo-runner")))
        .env_clear()
        .env("AGUI_LISTEN", "127.0.0.1:0")
        .env("AGUI_TOKEN", TOKEN)
        .env("WORKSPACE_PATH", workspace.path())
        .env("ECHO_BURST_EVENTS", texts.to_string())
        .env("ECHO_BURST_BYTES", TEXT_BYTES.to_string())
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let announced = lines.next_line().await.unwrap().unwrap();
    let url = announced
        .strip_prefix("ag-ui listening on ")
        .unwrap()
        .to_owned();
    let read = read_run(client, &url).await;
    // The kernel keeps the high-water mark, and a served runner outlives its runs: one
    // read after the run is the peak.
    let peak_kb = bench::vm_hwm_kb(pid).unwrap_or(0);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    (read, peak_kb)
}

/// A bare SSE server streaming `events` events of the runner's shape and size.
async fn bare_server(events: usize) -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new().route(
        "/run",
        post(move || async move {
            let filler = "x".repeat(TEXT_BYTES);
            // Written in batches, as the runner writes what has accumulated since the last
            // write: one chunk per event would make the baseline, not the runner, slow.
            let ids: Vec<usize> = (1..=events).collect();
            let batches: Vec<Vec<usize>> = ids.chunks(BATCH).map(<[usize]>::to_vec).collect();
            let stream = futures_util::stream::iter(batches.into_iter().map(move |batch| {
                let mut text = String::new();
                for id in batch {
                    let data = json!({
                        "type": "TEXT_MESSAGE_CONTENT",
                        "messageId": format!("bench-run-message-{id}"),
                        "delta": filler,
                    });
                    text.push_str(&format!("id: {id}\ndata: {data}\n\n"));
                }
                Ok::<_, std::convert::Infallible>(text)
            }));
            axum::response::Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, server)
}

fn per_event_us(read: &Read) -> f64 {
    read.elapsed.as_secs_f64() * 1e6 / read.events as f64
}

#[tokio::main]
async fn main() {
    let texts = bench::number_flag("--texts", 30_000);
    let rounds = bench::number_flag("--rounds", 5);
    ambient_test_support::crypto();
    let client = reqwest::Client::new();
    println!(
        "{texts} filler texts of {TEXT_BYTES} bytes (three AG-UI events each), SSE on loopback, {rounds} rounds"
    );
    let mut paired = bench::Paired::default();
    let mut peaks = Vec::new();
    for round in 0..rounds {
        let (read, peak_kb) = runner(&client, texts).await;
        let (url, server) = bare_server(read.events).await;
        let baseline = read_run(&client, &url).await;
        server.abort();
        assert_eq!(baseline.events, read.events);
        println!(
            "round {round}: echo-runner {} events in {:?} ({:.2} µs/event, peak RSS {:.1} MB); bare {:?} ({:.2} µs/event)",
            read.events,
            read.elapsed,
            per_event_us(&read),
            peak_kb as f64 / 1024.0,
            baseline.elapsed,
            per_event_us(&baseline),
        );
        paired.push(per_event_us(&baseline), per_event_us(&read));
        peaks.push(peak_kb as f64 / 1024.0);
    }
    paired.report("bare SSE server:", "echo-runner serve:", "µs/event", 2, "");
    println!(
        "median peak RSS:          {:.1} MB",
        bench::median(&mut peaks)
    );
}
