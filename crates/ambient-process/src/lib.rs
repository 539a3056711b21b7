//! A child process that speaks JSON lines (a framework's CLI, a driver script): spawned in a
//! process group of its own, its stdout framed into JSON values with a line cap, its stdin
//! written by one task so that lines never interleave, the tail of its stderr kept for
//! error messages, and a bounded stop (input closed, then SIGTERM, then SIGKILL to the
//! group).

use std::{
    collections::VecDeque,
    ffi::OsString,
    path::Path,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};
use tracing::debug;

/// The longest stdout line: tool results can be large, well past the SDK's 1 MB.
const MAX_LINE_BYTES: usize = 16 << 20;

/// How many of the last stderr lines an error carries.
const STDERR_TAIL_LINES: usize = 20;

/// What went wrong with the process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// It could not start.
    #[error("`{binary}` could not start")]
    Spawn {
        /// The binary.
        binary: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading its output failed.
    #[error("reading the process's output failed")]
    Read(#[source] std::io::Error),
    /// It printed a line that looks like JSON and is not.
    #[error("the process printed a line that is not JSON ({error}): {excerpt}")]
    NotJson {
        /// The parser's complaint.
        error: String,
        /// The start of the line.
        excerpt: String,
    },
    /// It printed a line longer than the cap.
    #[error("the process printed a line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
}

/// The user a child runs as, where the runner can switch (as root, or with
/// `CAP_SETUID` and `CAP_SETGID`): the agent's processes then cannot read what only the
/// runner's user can. Supplementary groups are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
}

impl RunAs {
    /// Makes `command` run as this user.
    pub fn apply(self, command: &mut Command) {
        // With a uid set, the standard library also drops a root parent's supplementary
        // groups before the child runs.
        command.uid(self.uid).gid(self.gid);
    }
}

/// A running process.
#[derive(Debug)]
pub struct JsonLinesProcess {
    child: Child,
    /// The process group (the child leads it), kept to stop what it started even after
    /// the child itself is gone.
    group: Option<i32>,
    input: Option<mpsc::UnboundedSender<String>>,
    lines: mpsc::Receiver<Result<Value, ProcessError>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl JsonLinesProcess {
    /// Starts `binary` with `argv` in `cwd`, with exactly the environment `env`, in a
    /// process group of its own (so that stopping it stops what it started), as the user
    /// `run_as` when given.
    pub fn spawn(
        binary: &Path,
        argv: &[OsString],
        cwd: &Path,
        env: &[(OsString, OsString)],
        run_as: Option<RunAs>,
    ) -> Result<Self, ProcessError> {
        let mut command = Command::new(binary);
        if let Some(run_as) = run_as {
            run_as.apply(&mut command);
        }
        let mut child = command
            .args(argv)
            .current_dir(cwd)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("PWD", cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                binary: binary.display().to_string(),
                source,
            })?;
        let (input, mut input_rx) = mpsc::unbounded_channel::<String>();
        if let Some(mut stdin) = child.stdin.take() {
            // One writer, so that lines never interleave; dropping the sender closes stdin.
            tokio::spawn(async move {
                while let Some(line) = input_rx.recv().await {
                    if stdin.write_all(line.as_bytes()).await.is_err()
                        || stdin.flush().await.is_err()
                    {
                        break;
                    }
                }
            });
        }
        let (lines_tx, lines) = mpsc::channel(256);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(read_lines(stdout, lines_tx));
        }
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(output) = child.stderr.take() {
            tokio::spawn(keep_tail(output, stderr.clone()));
        }
        let group = child.id().and_then(|id| i32::try_from(id).ok());
        Ok(Self {
            child,
            group,
            input: Some(input),
            lines,
            stderr,
        })
    }

    /// The process id.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Writes one JSON line to its stdin; false when its input is closed.
    pub fn send(&self, message: &Value) -> bool {
        self.input
            .as_ref()
            .is_some_and(|input| input.send(format!("{message}\n")).is_ok())
    }

    /// Closes its stdin (most programs finish what they are doing, then exit).
    pub fn close_input(&mut self) {
        self.input = None;
    }

    /// The next stdout line; `None` once it closed its stdout.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: lines wait in a channel.
    pub async fn next_line(&mut self) -> Option<Result<Value, ProcessError>> {
        self.lines.recv().await
    }

    /// The last lines it wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|tail| tail.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Waits up to `bound` for it to exit; then stops its process group (SIGTERM, and
    /// SIGKILL a moment later). What the child left running in its group is stopped too.
    pub async fn finish(&mut self, bound: Duration) -> Option<ExitStatus> {
        self.close_input();
        let mut status = None;
        if let Ok(Ok(exited)) = tokio::time::timeout(bound, self.child.wait()).await {
            status = Some(exited);
        } else {
            self.signal_group(nix::sys::signal::Signal::SIGTERM);
            if let Ok(Ok(exited)) =
                tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await
            {
                status = Some(exited);
            }
        }
        self.signal_group(nix::sys::signal::Signal::SIGKILL);
        match status {
            Some(status) => Some(status),
            None => self.child.wait().await.ok(),
        }
    }

    fn signal_group(&self, signal: nix::sys::signal::Signal) {
        let Some(group) = self.group else {
            return;
        };
        if let Err(error) = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), signal) {
            // ESRCH: the group is already empty.
            if error != nix::errno::Errno::ESRCH {
                debug!(%error, "signalling the child's process group failed");
            }
        }
    }
}

impl Drop for JsonLinesProcess {
    fn drop(&mut self) {
        self.signal_group(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Reads NDJSON lines from the process's stdout, at most [`MAX_LINE_BYTES`] each; lines that do
/// not start with `{` (banners) are skipped.
async fn read_lines(
    output: impl AsyncRead + Unpin,
    lines: mpsc::Sender<Result<Value, ProcessError>>,
) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = match read_capped_line(&mut reader, &mut line).await {
            Ok(read) => read,
            Err(error) => {
                let _closed = lines.send(Err(error)).await;
                return;
            }
        };
        if read == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if !text.starts_with('{') {
            if !text.is_empty() {
                debug!(line = %text, "the process printed a line that is not a message; skipped");
            }
            continue;
        }
        let parsed = serde_json::from_str(text).map_err(|error| ProcessError::NotJson {
            error: error.to_string(),
            excerpt: text.chars().take(200).collect(),
        });
        let failed = parsed.is_err();
        if lines.send(parsed).await.is_err() || failed {
            return;
        }
    }
}

async fn read_capped_line(
    reader: &mut (impl AsyncBufReadExt + Unpin),
    line: &mut Vec<u8>,
) -> Result<usize, ProcessError> {
    let mut total = 0;
    loop {
        let buffer = reader.fill_buf().await.map_err(ProcessError::Read)?;
        if buffer.is_empty() {
            return Ok(total);
        }
        let (used, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (buffer.len(), false),
        };
        if line.len() + used > MAX_LINE_BYTES {
            return Err(ProcessError::LineTooLong);
        }
        line.extend_from_slice(&buffer[..used]);
        reader.consume(used);
        total += used;
        if done {
            return Ok(total);
        }
    }
}

/// Keeps the last lines of the process's stderr, and logs each at debug level. Bytes that
/// are not UTF-8 are replaced, never a reason to stop reading (a child whose stderr is
/// closed dies of it on its next write).
async fn keep_tail(output: impl AsyncRead + Unpin, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_capped_line(&mut reader, &mut line).await {
            Ok(0) | Err(ProcessError::Read(_)) => return,
            Ok(_) => {}
            // A line past the cap is kept in part; the rest of it follows as more lines.
            Err(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        debug!(line = %text, "child stderr");
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text);
        }
    }
}
