//! What the benchmarks share: the runner in pod mode, a bare WebSocket client, flags and
//! medians.
#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]
#![allow(
    clippy::print_stdout,
    reason = "a benchmark, and the processes it starts, report on stdout"
)]

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

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
    runner_at(
        binary,
        &backend.ws_url(project, session),
        &backend.api_url(),
        project,
        session,
        token,
    )
}

/// [`runner`], for a backend at these URLs.
fn runner_at(
    binary: &Path,
    ws_url: &str,
    api_url: &str,
    project: &str,
    session: &str,
    token: &str,
) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("SESSION_ID", session)
        .env("AGENTIC_SESSION_NAMESPACE", project)
        .env("WEBSOCKET_URL", ws_url)
        .env("BACKEND_API_URL", api_url)
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

/// The CPU time (user and system) of every child this process has waited for so far;
/// the difference across one child's wait is that child's CPU.
pub fn children_cpu() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage of the children");
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    micros(usage.user_time()) + micros(usage.system_time())
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

/// The flag that makes a bench binary the backend of its own benchmark, in a process of
/// its own (see [`BackendProcess`]).
const BACKEND_FLAG: &str = "--as-backend";

/// A local backend in a process of its own: the bench binary started again with
/// `--as-backend`, so that neither the runner nor the baseline shares a process (or a
/// runtime) with the server it talks to. It serves until its stdin closes.
#[derive(Debug)]
pub struct BackendProcess {
    child: tokio::process::Child,
    api_url: String,
    ws_urls: std::collections::HashMap<String, String>,
}

impl BackendProcess {
    /// Starts the backend with `token` and the sessions of `project` named.
    pub async fn start(token: &str, project: &str, sessions: &[String]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg(BACKEND_FLAG)
            .arg(token)
            .arg(project)
            .args(sessions)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut api_url = String::new();
        let mut ws_urls = std::collections::HashMap::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("api"), Some(url), None) => api_url = url.to_owned(),
                (Some("ws"), Some(session), Some(url)) => {
                    ws_urls.insert(session.to_owned(), url.to_owned());
                }
                (Some("ready"), None, None) => break,
                _ => panic!("the backend process said {line:?}"),
            }
        }
        Self {
            child,
            api_url,
            ws_urls,
        }
    }

    /// The backend's API base URL (`BACKEND_API_URL`).
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// A session's WebSocket URL.
    pub fn ws_url(&self, session: &str) -> &str {
        &self.ws_urls[session]
    }

    /// The runner `binary` for `session` in pod mode (see [`runner`]).
    pub fn runner(&self, binary: &Path, project: &str, session: &str, token: &str) -> Command {
        runner_at(
            binary,
            self.ws_url(session),
            self.api_url(),
            project,
            session,
            token,
        )
    }

    /// Stops the backend (it closes its connections and flushes its histories).
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _exited = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}

/// When this bench binary was started as a [`BackendProcess`], serves until stdin closes
/// and returns `true`: the bench's `main` returns then. Call it first.
pub async fn serve_if_backend() -> bool {
    use tokio::io::AsyncReadExt;
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|a| a == BACKEND_FLAG) else {
        return false;
    };
    let (token, project) = (&args[at + 1], &args[at + 2]);
    let sessions = &args[at + 3..];
    let mut builder = LocalBackend::builder()
        .token(token.as_str())
        .ping_interval(Duration::ZERO);
    for session in sessions {
        builder = builder.session(SessionSeed::new(project.as_str(), session.as_str()));
    }
    let backend = builder.start(([127, 0, 0, 1], 0).into()).await.unwrap();
    println!("api {}", backend.api_url());
    for session in sessions {
        println!("ws {session} {}", backend.ws_url(project, session));
    }
    println!("ready");
    let mut rest = Vec::new();
    let _closed = tokio::io::stdin().read_to_end(&mut rest).await;
    backend.shutdown().await;
    true
}

/// A WebSocket client of a session's socket, as a watcher: every text the backend
/// broadcasts, with when it arrived. It sends nothing.
pub async fn watch_socket(
    url: &str,
    token: &str,
) -> mpsc::UnboundedReceiver<(std::time::Instant, String)> {
    use futures_util::StreamExt;
    let socket = connect(url, token).await;
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (_sink, mut stream) = socket.split();
        while let Some(Ok(message)) = stream.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message
                && sender
                    .send((std::time::Instant::now(), text.as_str().to_owned()))
                    .is_err()
            {
                break;
            }
        }
    });
    receiver
}

/// A tokio-tungstenite client connected to `url` with the bearer token.
pub async fn connect(url: &str, token: &str) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The flag that makes a bench binary the bare client of its own benchmark.
const BARE_FLAG: &str = "--as-bare-client";
/// The size of a stamped frame's text.
pub const FRAME_TEXT_BYTES: usize = 200;

/// Microseconds since the Unix epoch: a frame's stamp.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The bench binary started as the bare client: it connects to `url` with `token`,
/// sends `frames` stamped text frames of [`FRAME_TEXT_BYTES`] (one send each, or fed and
/// flushed together when `batched`), reads their echoes, and exits. Each frame is the
/// runner's JSON, made with `serde_json` and the `time` crate's formatting, as a client
/// without the runner's own hand-written writer would make it.
pub fn bare_client_command(url: &str, token: &str, frames: usize, batched: bool) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([BARE_FLAG, url, token, &frames.to_string()])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if batched {
        command.arg("--batched");
    }
    command
}

/// When this bench binary was started by [`bare_client_command`], does that and returns
/// `true`: the bench's `main` returns then. Call it first.
pub async fn serve_if_bare_client() -> bool {
    use ambient_protocol::{Frame, FrameId, Outbound, runner_timestamp};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|a| a == BARE_FLAG) else {
        return false;
    };
    let (url, token) = (&args[at + 1], &args[at + 2]);
    let count: usize = args[at + 3].parse().unwrap();
    let batched = args.iter().any(|a| a == "--batched");
    let socket = connect(url, token).await;
    let (mut sink, mut stream) = socket.split();
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
        // Built as a client without the runner's own writer would: with serde_json.
        let message = Message::Text(serde_json::to_string(&frame).unwrap().into());
        if batched {
            sink.feed(message).await.unwrap();
        } else {
            sink.send(message).await.unwrap();
        }
    }
    sink.flush().await.unwrap();
    reader.await.unwrap();
    true
}

/// Where a callgrind bench writes its profiles: the folder named by `--keep DIR` (kept
/// for `callgrind_annotate`), or a scratch folder removed with the returned guard.
pub fn callgrind_folder() -> (PathBuf, Option<tempfile::TempDir>) {
    let args: Vec<String> = std::env::args().collect();
    let kept = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|at| args.get(at + 1))
        .map(PathBuf::from);
    match kept {
        Some(folder) => {
            std::fs::create_dir_all(&folder).unwrap();
            println!("callgrind files in {}", folder.display());
            (folder, None)
        }
        None => {
            let scratch = tempfile::tempdir().unwrap();
            (scratch.path().to_owned(), Some(scratch))
        }
    }
}

/// `command` (a program and its environment) run under `valgrind --tool=callgrind`,
/// which counts every instruction of that one process (not its children); the count,
/// read back from the file callgrind writes at `out`.
pub async fn callgrind(command: Command, out: &Path) -> u64 {
    let program = command.as_std().get_program().to_owned();
    let args: Vec<_> = command.as_std().get_args().map(ToOwned::to_owned).collect();
    let mut wrapped = Command::new("valgrind");
    wrapped
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(program)
        .args(args)
        .env_clear()
        .envs(
            command
                .as_std()
                .get_envs()
                .filter_map(|(key, value)| Some((key.to_owned(), value?.to_owned()))),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let status = wrapped.status().await.unwrap();
    assert!(status.success(), "{wrapped:?} exited with {status}");
    let text = std::fs::read_to_string(out).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("totals: "))
        .and_then(|total| total.trim().parse().ok())
        .unwrap_or_else(|| panic!("no totals in {}", out.display()))
}

/// The cost of one unit (a frame, a line, an event) and the fixed cost, from the counts
/// of two runs of different lengths: `(units, count)` each.
pub fn per_unit(short: (usize, u64), long: (usize, u64)) -> (f64, f64) {
    let per_unit = (long.1 - short.1) as f64 / (long.0 - short.0) as f64;
    (per_unit, short.1 as f64 - per_unit * short.0 as f64)
}
