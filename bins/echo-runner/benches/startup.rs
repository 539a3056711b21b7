//! Time from process start to the first frame at the backend.
//!
//! Starts a local backend in this process, then runs the echo-runner binary against it
//! `ITERATIONS` times in pod mode, measuring from just before the spawn to the moment the
//! backend broadcasts the runner's first frame (`session.started`), and to the process's
//! exit. As a baseline in the same run, it measures spawning `true` and waiting for it to
//! exit: the cost of process creation that no runner can avoid.
//!
//! Run with `cargo bench -p echo-runner --bench startup`. It prints medians and 90th
//! percentiles; `docs/performance.md` records the figures.
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

use ambient_local_backend::{LocalBackend, SessionSeed};
use ambient_test_support::bench;
use tokio::process::Command;

const ITERATIONS: usize = 40;
const TOKEN: &str = "bench-token";
const PROJECT: &str = "bench";

fn session(n: usize) -> String {
    format!("bench-session-{n}")
}

#[tokio::main]
async fn main() {
    let mut builder = LocalBackend::builder().token(TOKEN);
    for n in 0..ITERATIONS {
        builder = builder.session(SessionSeed::new(PROJECT, session(n)));
    }
    let backend = builder.start(([127, 0, 0, 1], 0).into()).await.unwrap();
    let workspace = std::env::temp_dir();

    let mut baseline = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        let status = Command::new("true").status().await.unwrap();
        assert!(status.success());
        baseline.push(started.elapsed());
    }

    let mut first_frame = Vec::with_capacity(ITERATIONS);
    let mut whole_session = Vec::with_capacity(ITERATIONS);
    for n in 0..ITERATIONS {
        let name = session(n);
        let mut watch = backend.watch(&name);
        let started = Instant::now();
        let binary = Path::new(env!("CARGO_BIN_EXE_echo-runner"));
        let mut child = bench::runner(binary, &backend, PROJECT, &name, TOKEN)
            .env("PROMPT", "hello")
            .env("WORKSPACE_PATH", &workspace)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let first = tokio::time::timeout(Duration::from_secs(30), watch.recv())
            .await
            .unwrap()
            .unwrap();
        first_frame.push(started.elapsed());
        assert_eq!(first.kind, "system.message");
        let status = child.wait().await.unwrap();
        whole_session.push(started.elapsed());
        assert!(status.success(), "run {n} exited with {status}");
    }

    println!("startup of echo-runner against the local backend, {ITERATIONS} runs each");
    println!("{:<44} {:>10} {:>10}", "measure", "median", "p90");
    for (name, samples) in [
        ("baseline: spawn `true` and wait for exit", &mut baseline),
        ("process start -> first frame at backend", &mut first_frame),
        ("process start -> batch session exited", &mut whole_session),
    ] {
        samples.sort();
        let median = samples[samples.len() / 2];
        let p90 = samples[samples.len() * 9 / 10];
        println!("{name:<44} {:>8.2}ms {:>8.2}ms", ms(median), ms(p90));
    }
    backend.shutdown().await;
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
