//! Instructions per frame, counted: the figure to watch from commit to commit, since it
//! does not move with the machine's load as a rate does.
//!
//! `valgrind --tool=callgrind` counts every instruction of one process. The release
//! `echo-runner` runs under it at two session lengths against a local backend in a
//! process of its own (not counted), and so does the bare client of the throughput bench
//! (this binary started again: one send per frame). The difference between the two
//! lengths over the difference in frames is the cost of a frame; what is left of the
//! shorter run is the fixed cost (start-up, connecting, the final status). Run with
//! `cargo bench -p echo-runner --bench instructions`; `-- --frames A,B` changes the
//! lengths (default 2,000 and 12,000), `-- --keep DIR` keeps the callgrind files for
//! `callgrind_annotate`. `docs/performance.md` records the figures.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and fails loudly"
)]

use std::path::Path;

use ambient_test_support::bench::{self, BackendProcess, FRAME_TEXT_BYTES};

const TOKEN: &str = "bench-token";
const PROJECT: &str = "bench";

#[tokio::main]
async fn main() {
    if bench::serve_if_backend().await || bench::serve_if_bare_client().await {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let lengths: Vec<usize> = args
        .iter()
        .position(|a| a == "--frames")
        .and_then(|at| args.get(at + 1))
        .map_or_else(
            || vec![2_000, 12_000],
            |list| list.split(',').map(|n| n.parse().unwrap()).collect(),
        );
    let (folder, _scratch) = bench::callgrind_folder();
    let sessions: Vec<String> = lengths
        .iter()
        .flat_map(|n| [format!("runner-{n}"), format!("bare-{n}")])
        .collect();
    let backend = BackendProcess::start(TOKEN, PROJECT, &sessions).await;
    println!(
        "instructions (callgrind) of the release echo-runner and of a bare client (one send per frame), text frames of {FRAME_TEXT_BYTES} bytes, at {lengths:?} frames"
    );
    let binary = Path::new(env!("CARGO_BIN_EXE_echo-runner"));
    let mut runner = Vec::new();
    let mut bare = Vec::new();
    for &frames in &lengths {
        let session = format!("runner-{frames}");
        let mut command = backend.runner(binary, PROJECT, &session, TOKEN);
        command
            .env("PROMPT", "bench")
            .env("ECHO_BURST_EVENTS", frames.to_string())
            .env("ECHO_BURST_BYTES", FRAME_TEXT_BYTES.to_string())
            .env("ECHO_BURST_STAMP", "true");
        let count =
            bench::callgrind(command, &folder.join(format!("runner-{frames}.callgrind"))).await;
        println!("echo-runner, {frames:>6} frames: {count:>14} instructions");
        runner.push((frames, count));
        let command = bench::bare_client_command(
            backend.ws_url(&format!("bare-{frames}")),
            TOKEN,
            frames,
            false,
        );
        let count =
            bench::callgrind(command, &folder.join(format!("bare-{frames}.callgrind"))).await;
        println!("bare client, {frames:>6} frames: {count:>14} instructions");
        bare.push((frames, count));
    }
    let (runner_frame, runner_fixed) = bench::per_unit(runner[0], runner[runner.len() - 1]);
    let (bare_frame, bare_fixed) = bench::per_unit(bare[0], bare[bare.len() - 1]);
    println!(
        "echo-runner: {runner_frame:>9.0} instructions per frame, {:>6.1} million fixed",
        runner_fixed / 1e6
    );
    println!(
        "bare client: {bare_frame:>9.0} instructions per frame, {:>6.1} million fixed",
        bare_fixed / 1e6
    );
    println!(
        "ratio per frame runner/bare: {:.2}",
        runner_frame / bare_frame
    );
    backend.stop().await;
}
