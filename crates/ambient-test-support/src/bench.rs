//! What the benchmarks share: the runner in pod mode, a bare WebSocket client, flags and
//! medians.
#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::{path::Path, process::Stdio, time::Duration};

use ambient_local_backend::{Builder, LocalBackend, SessionSeed};
use ambient_protocol::SessionMessage;
use tokio::{net::TcpStream, process::Command, sync::mpsc};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{client::IntoClientRequest, http::HeaderValue},
};

/// The runner `binary` for `session` of `project` in pod mode, with nothing from this
/// process's environment, its output discarded and its errors on this process's stderr.
pub fn runner(
    binary: &Path,
    backend: &LocalBackend,
    project: &str,
    session: &str,
    token: &str,
) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("SESSION_ID", session)
        .env("AGENTIC_SESSION_NAMESPACE", project)
        .env("WEBSOCKET_URL", backend.ws_url(project, session))
        .env("BACKEND_API_URL", backend.api_url())
        .env("BOT_TOKEN", token)
        .env("WORKSPACE_PATH", std::env::temp_dir())
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

/// A bare tokio-tungstenite client connected to the backend's socket for a session: the
/// baseline a runner is measured against.
pub async fn bare_client(
    backend: &LocalBackend,
    project: &str,
    session: &str,
    token: &str,
) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    let mut request = backend
        .ws_url(project, session)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// A local backend for paired rounds, to be started: no pings (they would be measured
/// too), and for each round a `bare-N` session for the baseline and a `runner-N` one for
/// the runner.
pub fn paired_backend(token: &str, project: &str, rounds: usize) -> Builder {
    let mut builder = LocalBackend::builder()
        .token(token)
        .ping_interval(Duration::ZERO);
    for round in 0..rounds {
        builder = builder
            .session(SessionSeed::new(project, format!("bare-{round}")))
            .session(SessionSeed::new(project, format!("runner-{round}")));
    }
    builder
}

/// The backend's next broadcast to a watcher; none in two minutes fails the benchmark.
pub async fn next_broadcast(watch: &mut mpsc::UnboundedReceiver<SessionMessage>) -> SessionMessage {
    tokio::time::timeout(Duration::from_secs(120), watch.recv())
        .await
        .expect("frames keep arriving")
        .expect("the backend is up")
}

/// The number after `flag` on the command line, or `default`.
pub fn number_flag(flag: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The peak resident set of a process in KiB, from `/proc/{pid}/status`.
pub fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A runner's figure and its baseline's, round by round; reported as medians, with the
/// median of their per-round ratios (runner over baseline).
#[derive(Debug, Default)]
pub struct Paired {
    baseline: Vec<f64>,
    runner: Vec<f64>,
    ratios: Vec<f64>,
}

impl Paired {
    /// One round's figures.
    pub fn push(&mut self, baseline: f64, runner: f64) {
        self.baseline.push(baseline);
        self.runner.push(runner);
        self.ratios.push(runner / baseline);
    }

    /// Prints the three medians: `baseline` and `runner` name the two, `unit` follows
    /// each figure (with its precision, `precision` decimals), and `target` the runner's.
    #[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
    pub fn report(
        mut self,
        baseline: &str,
        runner: &str,
        unit: &str,
        precision: usize,
        target: &str,
    ) {
        let width = baseline.len().max(runner.len());
        let base = median(&mut self.baseline);
        let ours = median(&mut self.runner);
        println!("median {baseline:<width$}  {base:.precision$} {unit}");
        println!("median {runner:<width$}  {ours:.precision$} {unit}{target}");
        println!(
            "median ratio runner/baseline: {:.2}",
            median(&mut self.ratios)
        );
    }
}

/// The median (the upper one of an even count).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
