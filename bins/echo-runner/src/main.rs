//! `echo-runner`: runs a session with the echo adapter.
//!
//! In a pod it reads the environment the operator sets and connects to the backend. With
//! `--local` it starts a local backend in-process, runs the session against it, and prints
//! the conversation as the UI would show it, then the final status.

mod local;

use std::process::ExitCode;

use ambient_adapter_echo::{EchoAdapter, EchoConfig};
use ambient_shell::{RedactingWriter, Redactor, RunnerArgs, RunnerExit, run_session};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, filter::LevelFilter};

/// Runs an Ambient Code Platform session with the echo adapter.
#[derive(Debug, Parser)]
#[command(name = "echo-runner", version, about)]
struct Cli {
    #[command(flatten)]
    runner: RunnerArgs,
    /// Start a local backend in-process, run the session against it, and print the
    /// conversation and the final status.
    #[arg(long)]
    local: bool,
    /// Filler text blocks the echo adapter emits per turn (a benchmark workload).
    #[arg(long, env = "ECHO_BURST_EVENTS", default_value_t = 0)]
    burst_events: u64,
    /// Length of each filler text, in bytes.
    #[arg(long, env = "ECHO_BURST_BYTES", default_value_t = 200)]
    burst_bytes: usize,
    /// How log lines are written to stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Start each filler text with the time it was emitted (for latency benchmarks).
    #[arg(long, env = "ECHO_BURST_STAMP")]
    burst_stamp: bool,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                RunnerExit::ConfigError.code()
            } else {
                0
            };
            // clap prints help, version and usage errors itself.
            let _printed = error.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "the async runtime could not start");
            return ExitCode::from(RunnerExit::ConfigError.code());
        }
    };
    let exit = runtime.block_on(run(cli));
    ExitCode::from(exit.code())
}

/// Logs to stderr through the redactor: human-readable, or JSON lines with
/// `LOG_FORMAT=json`; `RUST_LOG` filters.
fn init_logging(cli: &Cli) {
    let default_level = if cli.local { "warn" } else { "info" };
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // The WebSocket library traces every frame's payload as hex, which no redactor can
    // read; where tracing is on, its trace level is held back.
    if filter
        .max_level_hint()
        .is_none_or(|level| level >= LevelFilter::TRACE)
    {
        for directive in ["tungstenite=debug", "tokio_tungstenite=debug"] {
            if let Ok(directive) = directive.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let writer = RedactingWriter::new(Redactor::new(&cli.runner.secret_values()), std::io::stderr);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(cli: Cli) -> RunnerExit {
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let adapter = EchoAdapter::new(EchoConfig {
        burst_events: cli.burst_events,
        burst_bytes: cli.burst_bytes,
        stamp_bursts: cli.burst_stamp,
    });
    if cli.local {
        return match Box::pin(local::run(cli.runner, adapter, shutdown)).await {
            Ok(exit) => exit,
            Err(error) => {
                tracing::error!("{error:#}");
                RunnerExit::ConfigError
            }
        };
    }
    let config = match cli.runner.into_config() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "configuration error");
            return RunnerExit::ConfigError;
        }
    };
    let report = run_session(config, adapter, shutdown).await;
    tracing::info!(end = ?report.end, status_written = report.status_written, "session over");
    report.exit()
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "SIGTERM cannot be caught");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM: stopping"),
        result = tokio::signal::ctrl_c() => match result {
            Ok(()) => tracing::info!("SIGINT: stopping"),
            Err(error) => {
                tracing::warn!(%error, "SIGINT cannot be caught");
                std::future::pending::<()>().await;
            }
        },
    }
    shutdown.cancel();
}
