//! `local-backend`: the backend emulator of `ambient-local-backend` on a local port, for
//! running a runner without a cluster.
//!
//! It registers the sessions named on the command line, prints the environment a runner
//! needs (`BACKEND_API_URL`, and a `WEBSOCKET_URL` per session) on stdout, logs to stderr
//! (filtered by `RUST_LOG`, `info` by default) and runs until Ctrl-C or SIGTERM, then
//! closes every connection and flushes the message history before it exits.

use std::{
    io::{self, Write as _},
    net::SocketAddr,
    path::PathBuf,
};

use ambient_local_backend::{LocalBackend, SessionSeed};
use anyhow::{Context as _, Result};
use clap::Parser;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// Runs an emulator of the Ambient Code Platform backend's runner-facing API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The address to listen on.
    #[arg(
        long,
        env = "LOCAL_BACKEND_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    listen: SocketAddr,
    /// The bearer token the backend accepts (give the runner the same as BOT_TOKEN).
    #[arg(long, env = "LOCAL_BACKEND_TOKEN", hide_env_values = true)]
    token: String,
    /// Where message histories are kept ({dir}/sessions/{session}/messages.jsonl).
    #[arg(
        long,
        env = "LOCAL_BACKEND_STATE_DIR",
        value_name = "DIR",
        default_value = "./local-backend-state"
    )]
    state_dir: PathBuf,
    /// A session to register, in phase Pending; repeatable.
    #[arg(long = "session", env = "LOCAL_BACKEND_SESSIONS", value_delimiter = ',', value_name = "PROJECT/NAME", value_parser = parse_session)]
    sessions: Vec<SessionName>,
    /// The token `POST …/github/token` hands out; without it that route answers 502.
    #[arg(long, env = "LOCAL_BACKEND_GITHUB_TOKEN", hide_env_values = true)]
    github_token: Option<String>,
}

/// A session given as `PROJECT/NAME`.
#[derive(Debug, Clone)]
struct SessionName {
    project: String,
    name: String,
}

fn parse_session(value: &str) -> Result<SessionName, String> {
    match value.split_once('/') {
        Some((project, name)) if !project.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(SessionName {
                project: project.to_owned(),
                name: name.to_owned(),
            })
        }
        _ => Err(format!("expected PROJECT/NAME, got {value:?}")),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .init();
    let args = Args::parse();

    let mut builder = LocalBackend::builder()
        .token(args.token)
        .state_dir(&args.state_dir);
    for session in &args.sessions {
        builder = builder.session(SessionSeed::new(&session.project, &session.name));
    }
    if let Some(token) = args.github_token {
        builder = builder.github_token(token);
    }
    let backend = builder
        .start(args.listen)
        .await
        .context("starting the local backend")?;
    print_environment(&backend, &args.sessions).context("writing to stdout")?;

    shutdown_signal()
        .await
        .context("listening for shutdown signals")?;
    info!("shutting down");
    backend.shutdown().await;
    Ok(())
}

/// Prints the environment a runner needs, as shell `export` lines.
fn print_environment(backend: &LocalBackend, sessions: &[SessionName]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "export BACKEND_API_URL={}", backend.api_url())?;
    for session in sessions {
        writeln!(out, "# session {}/{}", session.project, session.name)?;
        writeln!(
            out,
            "export WEBSOCKET_URL={}",
            backend.ws_url(&session.project, &session.name)
        )?;
    }
    out.flush()
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one.
async fn shutdown_signal() -> io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
