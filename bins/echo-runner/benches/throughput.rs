//! Throughput, latency and memory of a runner against a bare WebSocket client, each in a
//! process of its own against a backend in a process of its own.
//!
//! The backend is the local backend, served by this bench binary started again
//! (`bench::BackendProcess`). The runner is the release `echo-runner` asked for a burst of
//! `N` text frames of 200 bytes: it pushes them through the adapter, the host's loop,
//! the transport's outbox and the socket, and waits for the backend's echo of each. The
//! baseline is a bare tokio-tungstenite client, this binary started a third way, that
//! sends the same frames (same JSON shape and size), one send each, and reads the echoes.
//!
//! Both are measured the same way, by a watcher (a third client of the session, in this
//! process): the rate is frames over the time between the first and the last to arrive,
//! and the latency of a frame is from its creation (a wall-clock stamp in its text) to its
//! arrival. The runner's peak resident memory is its `VmHWM`, read from `/proc` while it
//! runs.
//!
//! The two alternate (which goes first alternates too) for fifteen pairs, and the median
//! of the pairs' ratios is reported, with each side's median. Run with
//! `cargo bench -p echo-runner --bench throughput`; `-- --frames N` changes the burst
//! (default 100,000), `-- --pairs N` the pairs, `-- --batched` makes the bare client
//! batch its writes (the ceiling, not the rule), `-- --memory` adds a run ten times as
//! long to check that memory stays flat. `-- --traced` pairs the runner with itself
//! exporting its trace (OTLP/HTTP) to a collector that accepts everything, this binary
//! started a fourth way, instead of with the bare client. `docs/performance.md` records
//! the figures.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and fails loudly"
)]

use std::{
    path::Path,
    time::{Duration, Instant},
};

use ambient_test_support::bench::{self, BackendProcess, FRAME_TEXT_BYTES};
use tokio::sync::mpsc;

const TOKEN: &str = "bench-token";
const PROJECT: &str = "bench";

/// What the watcher saw of one sender.
struct Measured {
    frames: usize,
    rate: f64,
    latencies_us: Vec<u64>,
    /// The sender's CPU time (user and system) per frame, in microseconds.
    cpu_us_per_frame: f64,
}

/// The stamp of a frame's text, `t=<microseconds> `, wherever it is in the message.
fn stamp(text: &str) -> Option<u64> {
    let at = text.find("\"t=")? + 3;
    let digits = &text[at..];
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// Reads the watcher's messages until `count` stamped frames have arrived.
async fn measure(mut watch: mpsc::UnboundedReceiver<(Instant, String)>, count: usize) -> Measured {
    let mut latencies_us = Vec::with_capacity(count);
    let mut first = None;
    let mut last = Instant::now();
    while latencies_us.len() < count {
        let (arrived, text) = tokio::time::timeout(Duration::from_secs(120), watch.recv())
            .await
            .expect("frames keep arriving")
            .expect("the watcher is connected");
        let Some(sent) = stamp(&text) else {
            continue;
        };
        first.get_or_insert(arrived);
        last = arrived;
        latencies_us.push(bench::now_us().saturating_sub(sent));
    }
    let elapsed = last
        .duration_since(first.unwrap_or(last))
        .as_secs_f64()
        .max(1e-9);
    Measured {
        frames: count,
        rate: count as f64 / elapsed,
        latencies_us,
        cpu_us_per_frame: 0.0,
    }
}

/// The bare client, in a process of its own, for `session`.
async fn bare_client(
    backend: &BackendProcess,
    session: &str,
    count: usize,
    batched: bool,
) -> Measured {
    let url = backend.ws_url(session);
    let watch = bench::watch_socket(url, TOKEN).await;
    let measuring = tokio::spawn(measure(watch, count));
    let cpu_before = bench::children_cpu();
    let status = bench::bare_client_command(url, TOKEN, count, batched)
        .status()
        .await
        .unwrap();
    assert!(status.success(), "the bare client exited with {status}");
    let mut measured = measuring.await.unwrap();
    measured.cpu_us_per_frame = per_frame_us(bench::children_cpu() - cpu_before, count);
    measured
}

fn per_frame_us(cpu: Duration, frames: usize) -> f64 {
    cpu.as_secs_f64() * 1e6 / frames as f64
}

/// The runner binary with a burst of `count` frames, its trace sent to `collector` if
/// given; its measurement and peak RSS (KiB).
async fn runner(
    backend: &BackendProcess,
    session: &str,
    count: usize,
    collector: Option<&str>,
) -> (Measured, u64) {
    let watch = bench::watch_socket(backend.ws_url(session), TOKEN).await;
    let measuring = tokio::spawn(measure(watch, count));
    let binary = Path::new(env!("CARGO_BIN_EXE_echo-runner"));
    let cpu_before = bench::children_cpu();
    let mut child = backend
        .runner(binary, PROJECT, session, TOKEN)
        .env("PROMPT", "bench")
        .env("ECHO_BURST_EVENTS", count.to_string())
        .env("ECHO_BURST_BYTES", FRAME_TEXT_BYTES.to_string())
        .env("ECHO_BURST_STAMP", "true")
        .envs(collector.map(|url| ("OTEL_EXPORTER_OTLP_ENDPOINT", url)))
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
    let mut measured = measuring.await.unwrap();
    measured.cpu_us_per_frame = per_frame_us(bench::children_cpu() - cpu_before, count);
    (measured, peak_kb)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(0) as f64 / 1000.0
}

fn report(name: &str, measured: &mut Measured) {
    measured.latencies_us.sort_unstable();
    let l = &measured.latencies_us;
    println!(
        "{name:<28} {:>9} frames {:>10.0} frames/s {:>6.2} µs CPU/frame   latency ms p50 {:>7.2} p90 {:>7.2} p99 {:>7.2} max {:>7.2}",
        measured.frames,
        measured.rate,
        measured.cpu_us_per_frame,
        percentile(l, 0.5),
        percentile(l, 0.9),
        percentile(l, 0.99),
        percentile(l, 1.0),
    );
}

/// A peak in KiB as megabytes (10^6 bytes) and mebibytes.
fn megabytes(kb: u64) -> String {
    format!(
        "{:.2} MB ({:.2} MiB)",
        kb as f64 * 1024.0 / 1e6,
        kb as f64 / 1024.0
    )
}

#[tokio::main]
async fn main() {
    if bench::serve_if_backend().await || bench::serve_if_bare_client().await {
        return;
    }
    if std::env::args().any(|a| a == "--as-collector") {
        return serve_as_collector().await;
    }
    let args: Vec<String> = std::env::args().collect();
    let batched = args.iter().any(|a| a == "--batched");
    let frames = bench::number_flag("--frames", 100_000);
    let memory = args.iter().any(|a| a == "--memory");
    let pairs = bench::number_flag("--pairs", 15);
    if args.iter().any(|a| a == "--traced") {
        return traced(frames, pairs).await;
    }
    let mut sessions: Vec<String> = (0..pairs)
        .flat_map(|pair| [format!("bare-{pair}"), format!("runner-{pair}")])
        .collect();
    sessions.push(String::from("runner-large"));
    let backend = BackendProcess::start(TOKEN, PROJECT, &sessions).await;
    println!(
        "{frames} text frames of {FRAME_TEXT_BYTES} bytes; backend, runner, bare client ({}) and watcher each in a process of its own; {pairs} pairs",
        if batched {
            "batched writes"
        } else {
            "one send per frame"
        }
    );
    let mut paired = bench::Paired::default();
    let mut cpu = bench::Paired::default();
    let mut peaks = Vec::new();
    for pair in 0..pairs {
        let bare_session = format!("bare-{pair}");
        let runner_session = format!("runner-{pair}");
        // Which goes first alternates, so that neither always follows the other.
        let (mut bare, (mut ours, peak_kb)) = if pair % 2 == 0 {
            let bare = bare_client(&backend, &bare_session, frames, batched).await;
            (bare, runner(&backend, &runner_session, frames, None).await)
        } else {
            let ours = runner(&backend, &runner_session, frames, None).await;
            (
                bare_client(&backend, &bare_session, frames, batched).await,
                ours,
            )
        };
        report(&format!("pair {pair}: bare"), &mut bare);
        report(&format!("pair {pair}: echo-runner"), &mut ours);
        paired.push(bare.rate, ours.rate);
        cpu.push(bare.cpu_us_per_frame, ours.cpu_us_per_frame);
        peaks.push(peak_kb);
    }
    paired.report("bare tokio-tungstenite:", "echo-runner:", "frames/s", 0, "");
    cpu.report(
        "bare tokio-tungstenite:",
        "echo-runner:",
        "µs of CPU per frame",
        2,
        "",
    );
    let peak = peaks.iter().copied().max().unwrap_or(0);
    println!("runner peak RSS at {frames} frames: {}", megabytes(peak));
    if memory {
        let large = frames * 10;
        let (mut ours_large, peak_large_kb) = runner(&backend, "runner-large", large, None).await;
        report("echo-runner, 10x frames", &mut ours_large);
        println!(
            "runner peak RSS at {large} frames: {}",
            megabytes(peak_large_kb)
        );
    }
    backend.stop().await;
}

/// This binary as the collector: an OTLP/HTTP receiver that accepts everything, its
/// endpoint on stdout, until its stdin closes.
async fn serve_as_collector() {
    let receiver = ambient_test_support::otlp::OtlpReceiver::start(
        ambient_test_support::otlp::Behaviour::Accept,
    )
    .await;
    println!("{}", receiver.endpoint());
    let mut rest = String::new();
    let _closed = tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut rest).await;
    println!("spans received: {}", receiver.spans().len());
}

/// The runner against itself with its trace exported: the cost of tracing.
async fn traced(frames: usize, pairs: usize) {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let sessions: Vec<String> = (0..pairs)
        .flat_map(|pair| [format!("plain-{pair}"), format!("traced-{pair}")])
        .collect();
    let backend = BackendProcess::start(TOKEN, PROJECT, &sessions).await;
    let mut collector = tokio::process::Command::new(std::env::current_exe().unwrap())
        .arg("--as-collector")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(collector.stdout.take().unwrap()).lines();
    let endpoint = lines.next_line().await.unwrap().unwrap();
    println!(
        "{frames} text frames of {FRAME_TEXT_BYTES} bytes; echo-runner untraced and traced (OTLP/HTTP to a collector in a process of its own); {pairs} pairs"
    );
    let mut paired = bench::Paired::default();
    let mut cpu = bench::Paired::default();
    let (mut plain_peaks, mut traced_peaks) = (Vec::new(), Vec::new());
    for pair in 0..pairs {
        let plain_session = format!("plain-{pair}");
        let traced_session = format!("traced-{pair}");
        let ((mut plain, plain_kb), (mut traced, traced_kb)) = if pair % 2 == 0 {
            let plain = runner(&backend, &plain_session, frames, None).await;
            (
                plain,
                runner(&backend, &traced_session, frames, Some(&endpoint)).await,
            )
        } else {
            let traced = runner(&backend, &traced_session, frames, Some(&endpoint)).await;
            (runner(&backend, &plain_session, frames, None).await, traced)
        };
        report(&format!("pair {pair}: untraced"), &mut plain);
        report(&format!("pair {pair}: traced"), &mut traced);
        paired.push(plain.rate, traced.rate);
        cpu.push(plain.cpu_us_per_frame, traced.cpu_us_per_frame);
        plain_peaks.push(plain_kb);
        traced_peaks.push(traced_kb);
    }
    paired.report("untraced:", "traced:", "frames/s", 0, "");
    cpu.report("untraced:", "traced:", "µs of CPU per frame", 2, "");
    for (name, peaks) in [("untraced", &plain_peaks), ("traced", &traced_peaks)] {
        let peak = peaks.iter().copied().max().unwrap_or(0);
        println!("{name} peak RSS at {frames} frames: {}", megabytes(peak));
    }
    drop(collector.stdin.take());
    if let Ok(Some(line)) = lines.next_line().await {
        println!("collector: {line}");
    }
    let _exited = collector.wait().await;
    backend.stop().await;
}
