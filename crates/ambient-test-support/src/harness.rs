//! A local backend, a runner binary pointed at it with the pod environment, and reads of
//! what the backend kept: the end-to-end harness of every runner's tests.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use std::{process::Stdio, time::Duration};

use ambient_local_backend::{LocalBackend, SessionSeed};
use serde_json::Value;
use tokio::process::{Child, Command};

/// The bot token the backend expects.
pub const TOKEN: &str = "bot-token-e2e-5f2c9a";
/// The session's project.
pub const PROJECT: &str = "team-a";
/// The session's name.
pub const SESSION: &str = "agentic-session-1730404961";
/// The bound on every wait; generous, since CI machines are slow.
pub const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
/// A local backend with one session, and a workspace for the runner.
pub struct Backend {
    /// The backend.
    pub backend: LocalBackend,
    /// The session's workspace (and where the runner's stderr goes).
    pub workspace: tempfile::TempDir,
    binary: std::path::PathBuf,
}

impl Backend {
    /// A local backend with `seed`, for the runner binary at `binary`.
    pub async fn start(binary: impl Into<std::path::PathBuf>, seed: SessionSeed) -> Self {
        let backend = LocalBackend::builder()
            .token(TOKEN)
            .session(seed)
            .start(([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        Self {
            backend,
            workspace: tempfile::tempdir().unwrap(),
            binary: binary.into(),
        }
    }

    /// The runner binary with the pod environment the operator would set, and nothing else
    /// from this process's environment.
    pub fn runner(&self, extra: &[(&str, &str)]) -> Command {
        self.runner_via(&[], extra)
    }

    /// [`Backend::runner`], started through `wrapper` (a program and its arguments, the
    /// runner's path after them): `setpriv` to run it as another user, say.
    pub fn runner_via(&self, wrapper: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        command
            .env_clear()
            .env("SESSION_ID", SESSION)
            .env("AGENTIC_SESSION_NAMESPACE", PROJECT)
            .env("WEBSOCKET_URL", self.backend.ws_url(PROJECT, SESSION))
            .env("BACKEND_API_URL", self.backend.api_url())
            .env("BOT_TOKEN", TOKEN)
            .env("WORKSPACE_PATH", self.workspace.path())
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // A file, not a pipe: a runner logging at trace level would fill a pipe that
            // nobody reads until it exits, and block.
            .stderr(std::fs::File::create(self.stderr_path()).unwrap())
            .kill_on_drop(true);
        for (key, value) in extra {
            command.env(key, value);
        }
        command
    }

    fn stderr_path(&self) -> std::path::PathBuf {
        self.workspace.path().join("runner-stderr.log")
    }

    /// Like [`Backend::start`], with more sessions (a parent to continue from).
    pub async fn start_with(
        binary: impl Into<std::path::PathBuf>,
        seeds: impl IntoIterator<Item = SessionSeed>,
    ) -> Self {
        Self::start_built(binary, seeds, |builder| builder).await
    }

    /// Like [`Backend::start_with`], with more of the backend's settings (`configure` gets
    /// the builder with the token and the sessions set: a GitHub token to mint, say).
    pub async fn start_built(
        binary: impl Into<std::path::PathBuf>,
        seeds: impl IntoIterator<Item = SessionSeed>,
        configure: impl FnOnce(ambient_local_backend::Builder) -> ambient_local_backend::Builder,
    ) -> Self {
        let mut builder = LocalBackend::builder().token(TOKEN);
        for seed in seeds {
            builder = builder.session(seed);
        }
        let backend = configure(builder)
            .start(([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        Self {
            backend,
            workspace: tempfile::tempdir().unwrap(),
            binary: binary.into(),
        }
    }

    /// Posts `body` to the session's messages, as the platform's UI does.
    pub async fn post(&self, body: Value) {
        self.backend
            .post_message(PROJECT, SESSION, body)
            .await
            .unwrap();
    }

    /// Waits for a runner started by [`Backend::runner`] and collects what it left.
    pub async fn finish(&self, child: Child) -> Finished {
        let mut finished = finish(child).await;
        finished.stderr = std::fs::read_to_string(self.stderr_path()).unwrap_or_default();
        finished
    }

    /// The persisted JSON lines, parsed.
    pub async fn persisted(&self) -> Vec<Value> {
        // Reading the history flushes what the backend has not written yet.
        let history = self.backend.history(SESSION).await;
        let text = std::fs::read_to_string(self.backend.messages_path(SESSION)).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(
            lines.len(),
            history.len(),
            "the history GET and the file disagree"
        );
        lines
    }
}

/// What a finished runner process left.
#[derive(Debug)]
pub struct Finished {
    /// The exit code.
    pub code: Option<i32>,
    /// What it printed.
    pub stdout: String,
    /// What it logged.
    pub stderr: String,
}

/// Waits (within [`WAIT`]) for a runner and collects its output.
pub async fn finish(child: Child) -> Finished {
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the runner finishes in time")
        .unwrap();
    Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The highest peak memory a runner may reach in the tests of its bounds, whatever its
/// input: the fake CLI or server it reads counts too (its peak is part of the figure).
pub const MEMORY_CEILING: u64 = 64 << 20;

/// A wrapper (for [`Backend::runner_via`]) that runs the runner and, when it has ended,
/// writes to `report` the peak resident memory, in bytes, of the runner and every process
/// it waited for (`RUSAGE_CHILDREN` of a process whose only child is the runner). A
/// separate process, so that the figure is the runner's alone, whichever test harness
/// runs the test. The runner's exit code passes through.
pub fn peak_memory_wrapper(report: &std::path::Path) -> Vec<String> {
    const SCRIPT: &str = "import resource, subprocess, sys\n\
code = subprocess.call(sys.argv[2:])\n\
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n\
open(sys.argv[1], 'w').write(str(peak))\n\
sys.exit(code if code >= 0 else 128 - code)\n";
    let python = python();
    vec![
        python.to_owned(),
        String::from("-c"),
        String::from(SCRIPT),
        report.display().to_string(),
    ]
}

/// Asserts that `peak` (bytes) is under [`MEMORY_CEILING`], and prints it (`--no-capture`
/// shows the figures the budgets in `docs/architecture.md` quote).
#[allow(clippy::print_stderr, reason = "the figure is the test's report")]
pub fn assert_under_ceiling(what: &str, peak: u64) {
    eprintln!(
        "{what}: peak resident memory {:.1} MB",
        peak as f64 / f64::from(1 << 20)
    );
    assert!(
        peak < MEMORY_CEILING,
        "{what}: peak resident memory {} MB, over the ceiling of {} MB",
        peak >> 20,
        MEMORY_CEILING >> 20
    );
}

/// The system's Python 3 interpreter itself (not a launcher such as a pyenv shim, which
/// needs this process's environment), for scripts a test runs with a cleared one.
pub fn python() -> &'static str {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let output = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    })
}

/// The peak resident memory, in bytes, of the running process `pid` so far (`VmHWM`):
/// for a served runner, which outlives its runs.
pub fn peak_memory_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kilobytes: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap();
    kilobytes * 1024
}

/// The figure [`peak_memory_wrapper`] wrote.
pub fn peak_memory(report: &std::path::Path) -> u64 {
    std::fs::read_to_string(report)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Sends SIGTERM to a process by its PID, as the kubelet does to a pod's container.
pub fn terminate(child: &Child) {
    let pid = child
        .id()
        .expect("the process is still running")
        .to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success(), "kill -TERM {pid} failed");
}

/// The longest a runner may take from SIGTERM to its exit, in any phase.
pub const STOP_BOUND: Duration = Duration::from_secs(10);

/// Reads broadcasts until one satisfies `matches` (within [`WAIT`]), and returns it.
pub async fn until(
    watch: &mut tokio::sync::mpsc::UnboundedReceiver<ambient_protocol::SessionMessage>,
    matches: impl Fn(&ambient_protocol::SessionMessage) -> bool,
) -> ambient_protocol::SessionMessage {
    loop {
        let message = tokio::time::timeout(WAIT, watch.recv())
            .await
            .expect("the awaited message arrives in time")
            .expect("the backend is still there");
        if matches(&message) {
            return message;
        }
    }
}

/// The session's history as the UI shows it, one line per message.
pub async fn transcript(backend: &LocalBackend) -> Vec<String> {
    backend
        .history(SESSION)
        .await
        .iter()
        .filter_map(ambient_local_backend::transcript::render)
        .collect()
}

/// Checks that `binary --help` shows, for every option, the environment variable it reads
/// (so that an operator can set any of them in a Job), that the variables every runner
/// shares are among them, and returns them all.
pub fn help_names_every_variable(binary: &str) -> Vec<String> {
    let help = std::process::Command::new(binary)
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success(), "{binary} --help failed");
    let text = String::from_utf8(help.stdout).unwrap();
    let mut variables = Vec::new();
    // Options start a line with two spaces and `--` (or `-x, --`); their text runs to the
    // next option.
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if (2..=6).contains(&indent) && trimmed.starts_with('-') {
            blocks.push(String::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    for block in blocks {
        let flag = block.lines().next().unwrap_or_default().trim().to_owned();
        if flag.contains("--help") || flag.contains("--version") {
            continue;
        }
        let variable: String = block
            .split("[env: ")
            .nth(1)
            .unwrap_or_else(|| panic!("{binary}: `{flag}` names no environment variable"))
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        variables.push(variable);
    }
    for shared in [
        "SESSION_ID",
        "WEBSOCKET_URL",
        "BOT_TOKEN",
        "LOG_FORMAT",
        "RUNNER_LOCAL",
    ] {
        assert!(
            variables.iter().any(|v| v == shared),
            "{binary}: {shared} missing from {variables:?}"
        );
    }
    variables
}
