//! `echo-runner`: runs a session with the echo adapter.
//!
//! In a pod it reads the environment the operator sets and connects to the backend. With
//! `--local` it starts a local backend in-process, runs the session against it, and prints
//! the conversation as the UI would show it, then the final status. With `AGUI_LISTEN`
//! (`--serve`) it serves the session as AG-UI over HTTP instead (`ambient-serve`).

use std::process::ExitCode;

use ambient_adapter_echo::{EchoAdapter, EchoConfig};
use ambient_cli::CommonArgs;

/// Runs an Ambient Code Platform session with the echo adapter.
#[derive(Debug, clap::Parser)]
#[command(name = "echo-runner", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Filler text blocks the echo adapter emits per turn (a benchmark workload).
    #[arg(long, env = "ECHO_BURST_EVENTS", default_value_t = 0)]
    burst_events: u64,
    /// Length of each filler text, in bytes.
    #[arg(long, env = "ECHO_BURST_BYTES", default_value_t = 200)]
    burst_bytes: usize,
    /// Start each filler text with the time it was emitted (for latency benchmarks).
    #[arg(long, env = "ECHO_BURST_STAMP")]
    burst_stamp: bool,
}

fn main() -> ExitCode {
    let cli: Cli = match ambient_cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let adapter = EchoAdapter::new(EchoConfig {
        burst_events: cli.burst_events,
        burst_bytes: cli.burst_bytes,
        stamp_bursts: cli.burst_stamp,
    });
    ambient_cli::execute_as(
        cli.common,
        Ok::<_, std::convert::Infallible>(adapter),
        ambient_cli::ServeIdentity {
            name: String::from("echo-runner"),
            framework: String::from("echo"),
            version: String::from(env!("CARGO_PKG_VERSION")),
            agent_features: vec![
                String::from("agentic_chat"),
                String::from("backend_tool_rendering"),
            ],
            ..ambient_cli::ServeIdentity::default()
        },
    )
}
