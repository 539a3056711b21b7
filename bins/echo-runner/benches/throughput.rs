//! Throughput, latency and memory of a runner against a bare WebSocket client.
//!
//! One local backend serves both in the same run. The runner is the `echo-runner`
//! binary asked for a burst of `N` text frames of 200 bytes; it pushes them through the
//! adapter, the host's event loop, the transport's outbox and the socket, and waits for
//! the backend's echo of each. The baseline is a bare tokio-tungstenite client that sends
//! the same frames (same JSON shape and size) to the same backend and reads the echoes.
//!
//! Both are measured the same way, at the backend: the rate is frames received over the
//! time between the first and the last, and the latency of a frame is the time from its
//! creation (a wall-clock stamp in its text) to its arrival at the backend. The runner's
//! peak resident memory is its `VmHWM`, read from `/proc` while it runs.
//!
//! The two alternate for five rounds and the medians are reported, since these machines
//! are noisy. Run with `cargo bench -p echo-runner --bench throughput`; `-- --frames N`
//! changes the burst (default 100,000), `-- --rounds N` the rounds, `-- --memory` adds a
//! run ten times as long to check that memory stays flat. `docs/performance.md` records
//! the figures.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and fails loudly"
)]

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ambient_local_backend::{LocalBackend, SessionSeed};
use ambient_protocol::{Frame, FrameId, Outbound, SessionMessage, runner_timestamp};
use ambient_test_support::bench;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-token";
const PROJECT: &str = "bench";
const FRAME_TEXT_BYTES: usize = 200;

/// What the backend saw of one sender.
struct Measured {
    frames: usize,
    rate: f64,
    latencies_us: Vec<u64>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Reads the backend's broadcasts until `count` stamped text frames have arrived.
async fn measure(mut watch: mpsc::UnboundedReceiver<SessionMessage>, count: usize) -> Measured {
    let mut latencies_us = Vec::with_capacity(count);
    let mut first = None;
    let mut last = std::time::Instant::now();
    while latencies_us.len() < count {
        let message = bench::next_broadcast(&mut watch).await;
        let Some(text) = message.payload["content"]["text"].as_str() else {
            continue;
        };
        let Some(stamp) = text.strip_prefix("t=").and_then(|t| t.split(' ').next()) else {
            continue;
        };
        let arrived = std::time::Instant::now();
        first.get_or_insert(arrived);
        last = arrived;
        let sent: u64 = stamp.parse().unwrap();
        latencies_us.push(now_us().saturating_sub(sent));
    }
    let elapsed = last
        .duration_since(first.unwrap_or(last))
        .as_secs_f64()
        .max(1e-9);
    Measured {
        frames: count,
        rate: count as f64 / elapsed,
        latencies_us,
    }
}

/// The bare client: the same frames, sent as fast as the socket takes them.
async fn bare_client(backend: &LocalBackend, session: &str, count: usize) -> Measured {
    let socket = bench::bare_client(backend, PROJECT, session, TOKEN).await;
    let (mut sink, mut stream) = socket.split();
    let watch = backend.watch(session);
    let measuring = tokio::spawn(measure(watch, count));
    // Read the echoes, as any client of the backend must.
    let reader = tokio::spawn(async move {
        let mut echoes = 0;
        while echoes < count {
            match stream.next().await {
                Some(Ok(Message::Text(_))) => echoes += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    });
    let filler = "x".repeat(FRAME_TEXT_BYTES);
    for seq in 1..=count as u64 {
        let mut text = format!("t={} ", now_us());
        text.push_str(&filler[..FRAME_TEXT_BYTES - text.len()]);
        let frame = Frame {
            seq,
            id: FrameId::new("bare", seq),
            timestamp: runner_timestamp(time::OffsetDateTime::now_utc()),
            body: Outbound::TextBlock { text },
        };
        sink.feed(Message::Text(frame.to_json().into()))
            .await
            .unwrap();
    }
    sink.flush().await.unwrap();
    reader.await.unwrap();
    measuring.await.unwrap()
}

/// The runner binary with a burst of `count` frames; returns its measurement and peak RSS.
async fn runner(backend: &LocalBackend, session: &str, count: usize) -> (Measured, u64) {
    let watch = backend.watch(session);
    let measuring = tokio::spawn(measure(watch, count));
    let binary = Path::new(env!("CARGO_BIN_EXE_echo-runner"));
    let mut child = bench::runner(binary, backend, PROJECT, session, TOKEN)
        .env("PROMPT", "bench")
        .env("ECHO_BURST_EVENTS", count.to_string())
        .env("ECHO_BURST_BYTES", FRAME_TEXT_BYTES.to_string())
        .env("ECHO_BURST_STAMP", "true")
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut peak_kb = 0;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.unwrap(),
            () = tokio::time::sleep(Duration::from_millis(10)) => {
                if let Some(kb) = bench::vm_hwm_kb(pid) {
                    peak_kb = peak_kb.max(kb);
                }
            }
        }
    };
    assert!(status.success(), "the runner exited with {status}");
    (measuring.await.unwrap(), peak_kb)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(0) as f64 / 1000.0
}

fn report(name: &str, measured: &mut Measured) {
    measured.latencies_us.sort_unstable();
    let l = &measured.latencies_us;
    println!(
        "{name:<28} {:>9} frames {:>10.0} frames/s   latency ms p50 {:>7.2} p90 {:>7.2} p99 {:>7.2} max {:>7.2}",
        measured.frames,
        measured.rate,
        percentile(l, 0.5),
        percentile(l, 0.9),
        percentile(l, 0.99),
        percentile(l, 1.0),
    );
}

#[tokio::main]
async fn main() {
    let frames = bench::number_flag("--frames", 100_000);
    let memory = std::env::args().any(|a| a == "--memory");
    let rounds = bench::number_flag("--rounds", 5);
    let backend = bench::paired_backend(TOKEN, PROJECT, rounds)
        .session(SessionSeed::new(PROJECT, "runner-large"))
        .start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();

    println!(
        "{frames} text frames of {FRAME_TEXT_BYTES} bytes, local backend on loopback, {rounds} rounds"
    );
    let mut paired = bench::Paired::default();
    let mut peaks = Vec::new();
    for round in 0..rounds {
        let mut bare = bare_client(&backend, &format!("bare-{round}"), frames).await;
        let (mut ours, peak_kb) = runner(&backend, &format!("runner-{round}"), frames).await;
        report(&format!("round {round}: bare"), &mut bare);
        report(&format!("round {round}: echo-runner"), &mut ours);
        paired.push(bare.rate, ours.rate);
        peaks.push(peak_kb);
    }
    paired.report("bare tokio-tungstenite:", "echo-runner:", "frames/s", 0, "");
    let peak = peaks.iter().copied().max().unwrap_or(0);
    println!(
        "runner peak RSS at {frames} frames: {:.1} MB",
        peak as f64 / 1024.0
    );
    if memory {
        let large = frames * 10;
        let (mut ours_large, peak_large_kb) = runner(&backend, "runner-large", large).await;
        report("echo-runner, 10x frames", &mut ours_large);
        println!(
            "runner peak RSS at {large} frames: {:.1} MB",
            peak_large_kb as f64 / 1024.0
        );
    }
    backend.shutdown().await;
}
