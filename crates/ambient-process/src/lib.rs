//! A child process that speaks JSON lines (a framework's CLI, a driver script), treated as
//! untrusted: spawned in a process group of its own, its stdout framed into JSON values
//! with a line cap and a byte budget on what waits to be read, its stdin written by one
//! task so that lines never interleave, a bounded tail of its stderr kept for error
//! messages, its exit watched (not only its stdout), and a stop in stages that reaches
//! every descendant it started, even one that left its process group.
//!
//! | bound | default | what happens past it |
//! |---|---|---|
//! | one stdout line | [`DEFAULT_MAX_LINE_BYTES`] | [`ProcessError::LineTooLong`]; nothing more is read |
//! | stdout lines waiting to be read | [`DEFAULT_QUEUED_BYTES`] | the reader waits: the child blocks on its next write |
//! | stderr kept | [`STDERR_TAIL_BYTES`], lines cut at [`STDERR_LINE_BYTES`] | the oldest lines go; a cut line says how much was cut |
//! | output after the child exited | [`OUTPUT_AFTER_EXIT`] | the output counts as ended, even if a descendant still holds it open |

pub mod tree;

use std::{
    collections::VecDeque,
    ffi::OsString,
    fmt::Write as _,
    path::Path,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    time::Instant,
};
use tracing::debug;

/// The longest stdout line by default: tool results can be large, well past the SDK's
/// 1 MB buffer.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 << 20;
/// The stdout bytes read ahead of the consumer by default.
pub const DEFAULT_QUEUED_BYTES: usize = 16 << 20;
/// The stderr bytes kept for error messages.
pub const STDERR_TAIL_BYTES: usize = 8 << 10;
/// The longest stderr line kept; the rest of a longer one is counted, not kept.
pub const STDERR_LINE_BYTES: usize = 1 << 10;
/// How long output may go on once the child itself has exited: a descendant that
/// inherited its stdout can hold it open for ever.
pub const OUTPUT_AFTER_EXIT: Duration = Duration::from_secs(2);
/// How long the processes get from `SIGTERM` to `SIGKILL` in [`JsonLinesProcess::finish`].
pub const TERMINATE_GRACE: Duration = Duration::from_secs(2);
/// How often the child's descendants are looked up while it runs, so that one that
/// leaves its process group and outlives its parent is still known at the stop.
const DESCENDANTS_EVERY: Duration = Duration::from_secs(1);
/// What a queued line costs besides its bytes, so that a flood of empty lines is bounded
/// too.
const LINE_OVERHEAD: usize = 64;

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
    #[error("the process printed a line longer than {limit} bytes")]
    LineTooLong {
        /// The cap.
        limit: usize,
    },
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
    /// The user id of a child started as `run_as`: that user's, else the runner's own.
    pub fn uid_of_child(run_as: Option<Self>) -> u32 {
        run_as.map_or_else(|| nix::unistd::geteuid().as_raw(), |user| user.uid)
    }

    /// Makes `command` run as this user.
    pub fn apply(self, command: &mut Command) {
        // With a uid set, the standard library also drops a root parent's supplementary
        // groups before the child runs.
        command.uid(self.uid).gid(self.gid);
    }
}

/// How much of a child's stdout is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// The longest line.
    pub max_line_bytes: usize,
    /// The bytes of lines read and not yet taken: past it, reading waits.
    pub queued_bytes: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            queued_bytes: DEFAULT_QUEUED_BYTES,
        }
    }
}

/// What to start, and how.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    /// The program.
    pub binary: &'a Path,
    /// Its arguments.
    pub argv: &'a [OsString],
    /// Its working directory.
    pub cwd: &'a Path,
    /// Its whole environment (nothing of the runner's is inherited).
    pub env: &'a [(OsString, OsString)],
    /// The user it runs as, when not the runner's.
    pub run_as: Option<RunAs>,
    /// The bounds on its output.
    pub limits: OutputLimits,
}

/// A line read from stdout, holding its share of the byte budget until it is taken.
#[derive(Debug)]
struct Queued {
    line: Vec<u8>,
    _budget: OwnedSemaphorePermit,
}

/// A running process.
#[derive(Debug)]
pub struct JsonLinesProcess {
    child: Child,
    /// The child's pid, while it has not been reaped (after that it may be another
    /// process's).
    pid: Option<i32>,
    /// The process group (the child leads it), kept to stop what it started even after
    /// the child itself is gone.
    group: Option<i32>,
    input: Option<mpsc::UnboundedSender<String>>,
    lines: mpsc::UnboundedReceiver<Result<Queued, ProcessError>>,
    stderr: Arc<Mutex<StderrTail>>,
    /// How it exited, once it has, and when that was seen.
    exited: Option<(ExitStatus, Instant)>,
    /// Its descendants seen so far.
    known: Vec<tree::Known>,
    next_lookup: Instant,
}

impl JsonLinesProcess {
    /// Starts the process in a process group of its own (so that stopping it stops what
    /// it started), with exactly the environment given, as the user given.
    pub fn spawn(launch: Launch<'_>) -> Result<Self, ProcessError> {
        let mut command = Command::new(launch.binary);
        if let Some(run_as) = launch.run_as {
            run_as.apply(&mut command);
        }
        let mut child = command
            .args(launch.argv)
            .current_dir(launch.cwd)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env("PWD", launch.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                binary: launch.binary.display().to_string(),
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
        let (lines_tx, lines) = mpsc::unbounded_channel();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(read_lines(stdout, lines_tx, launch.limits));
        }
        let stderr = Arc::new(Mutex::new(StderrTail::default()));
        if let Some(output) = child.stderr.take() {
            tokio::spawn(keep_tail(output, stderr.clone()));
        }
        let pid = child.id().and_then(|id| i32::try_from(id).ok());
        Ok(Self {
            child,
            pid,
            group: pid,
            input: Some(input),
            lines,
            stderr,
            exited: None,
            known: Vec::new(),
            next_lookup: Instant::now(),
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

    /// The next stdout line; `None` once its output has ended: it closed its stdout, or
    /// it exited and [`OUTPUT_AFTER_EXIT`] has passed (a descendant may hold the pipe
    /// open for ever; it is stopped with the child by [`JsonLinesProcess::finish`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: lines wait in a channel, and the exit, once seen, is kept.
    pub async fn next_line(&mut self) -> Option<Result<Value, ProcessError>> {
        loop {
            let after_exit = self.exited.map(|(_, at)| at + OUTPUT_AFTER_EXIT);
            tokio::select! {
                biased;
                queued = self.lines.recv() => {
                    return match queued? {
                        Ok(queued) => Some(parse(&queued.line)),
                        Err(error) => Some(Err(error)),
                    };
                }
                status = self.child.wait(), if self.exited.is_none() => {
                    self.note_descendants();
                    self.exited = Some((status.unwrap_or_else(|_| failed_wait()), Instant::now()));
                    self.pid = None;
                }
                () = tokio::time::sleep_until(self.next_lookup), if self.exited.is_none() => {
                    self.note_descendants();
                }
                () = sleep_until(after_exit), if after_exit.is_some() => {
                    debug!("the process exited and its output is still open (held by a descendant); treating it as ended");
                    return None;
                }
            }
        }
    }

    /// Adds the child's current descendants to those known.
    fn note_descendants(&mut self) {
        self.next_lookup = Instant::now() + DESCENDANTS_EVERY;
        let Some(pid) = self.pid else {
            return;
        };
        for found in tree::descendants(pid) {
            if !self.known.contains(&found) {
                self.known.push(found);
            }
        }
    }

    /// The end of what it wrote to stderr, at most [`STDERR_TAIL_BYTES`]: the last lines,
    /// each cut at [`STDERR_LINE_BYTES`].
    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|tail| tail.text())
            .unwrap_or_default()
    }

    /// Stops it, in stages: its input is closed and it has `bound` to exit on its own;
    /// then its process group and every descendant known get `SIGTERM`, and
    /// [`TERMINATE_GRACE`] later `SIGKILL`. Descendants that left the group (`setsid`)
    /// are stopped too, and so is what the child left running after it exited.
    pub async fn finish(&mut self, bound: Duration) -> Option<ExitStatus> {
        self.close_input();
        self.note_descendants();
        if self.exited.is_none()
            && let Ok(Ok(status)) = tokio::time::timeout(bound, self.child.wait()).await
        {
            self.note_descendants();
            self.exited = Some((status, Instant::now()));
            self.pid = None;
        }
        self.note_descendants();
        let leftovers = self.leftovers();
        if self.exited.is_some() && leftovers.is_empty() && !self.group_lives() {
            return self.exited.map(|(status, _)| status);
        }
        self.signal_group(nix::sys::signal::Signal::SIGTERM);
        tree::signal_all(&leftovers, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + TERMINATE_GRACE;
        if self.exited.is_none()
            && let Ok(Ok(status)) = tokio::time::timeout_at(deadline, self.child.wait()).await
        {
            self.exited = Some((status, Instant::now()));
            self.pid = None;
        }
        while (self.group_lives() || leftovers.iter().any(|known| tree::alive(*known)))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.note_descendants();
        self.kill_all();
        if self.exited.is_none() {
            let status = self.child.wait().await.unwrap_or_else(|_| failed_wait());
            self.exited = Some((status, Instant::now()));
            self.pid = None;
        }
        self.exited.map(|(status, _)| status)
    }

    /// The known descendants still running.
    fn leftovers(&self) -> Vec<tree::Known> {
        self.known
            .iter()
            .copied()
            .filter(|known| tree::alive(*known))
            .collect()
    }

    /// Whether any process is left in the child's group.
    fn group_lives(&self) -> bool {
        self.group.is_some_and(|group| {
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), None).is_ok()
        })
    }

    fn kill_all(&self) {
        self.signal_group(nix::sys::signal::Signal::SIGKILL);
        tree::signal_all(&self.known, nix::sys::signal::Signal::SIGKILL);
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
        if let Some(pid) = self.pid {
            self.known.extend(tree::descendants(pid));
        }
        self.kill_all();
    }
}

/// The status of a child whose wait failed (it cannot be reaped: it is not ours any
/// more); reported as a kill.
fn failed_wait() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(9)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn parse(line: &[u8]) -> Result<Value, ProcessError> {
    serde_json::from_slice(line).map_err(|error| ProcessError::NotJson {
        error: error.to_string(),
        excerpt: String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned(),
    })
}

/// Reads JSON lines from the process's stdout, each within the line cap, and queues
/// them within the byte budget; lines that do not start with `{` (banners) are skipped.
async fn read_lines(
    output: impl AsyncRead + Unpin,
    lines: mpsc::UnboundedSender<Result<Queued, ProcessError>>,
    limits: OutputLimits,
) {
    let budget = Arc::new(Semaphore::new(limits.queued_bytes.max(1)));
    let mut reader = BufReader::new(output);
    loop {
        let mut line = Vec::new();
        let read = match read_capped_line(&mut reader, &mut line, limits.max_line_bytes).await {
            Ok(read) => read,
            Err(error) => {
                let _closed = lines.send(Err(error));
                return;
            }
        };
        if read == 0 {
            return;
        }
        let start = line.iter().position(|b| !b.is_ascii_whitespace());
        let Some(start) = start else {
            continue;
        };
        if line[start] != b'{' {
            let end = line.len().min(start + STDERR_LINE_BYTES);
            debug!(line = %String::from_utf8_lossy(&line[start..end]).trim_end(), "the process printed a line that is not a message; skipped");
            continue;
        }
        let cost = (line.len() + LINE_OVERHEAD).min(limits.queued_bytes.max(1));
        let Ok(budget) = Arc::clone(&budget)
            .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
            .await
        else {
            return;
        };
        line.drain(..start);
        if lines
            .send(Ok(Queued {
                line,
                _budget: budget,
            }))
            .is_err()
        {
            return;
        }
    }
}

async fn read_capped_line(
    reader: &mut (impl AsyncBufReadExt + Unpin),
    line: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, ProcessError> {
    let mut total = 0;
    loop {
        let buffer = reader.fill_buf().await.map_err(ProcessError::Read)?;
        if buffer.is_empty() {
            return Ok(total);
        }
        let (used, done) = match memchr::memchr(b'\n', buffer) {
            Some(end) => (end + 1, true),
            None => (buffer.len(), false),
        };
        if line.len() + used > limit.saturating_add(1) {
            return Err(ProcessError::LineTooLong { limit });
        }
        line.extend_from_slice(&buffer[..used]);
        reader.consume(used);
        total += used;
        if done {
            return Ok(total);
        }
    }
}

/// The last lines of stderr, within [`STDERR_TAIL_BYTES`].
#[derive(Debug, Default)]
struct StderrTail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl StderrTail {
    fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > STDERR_TAIL_BYTES
            && let Some(oldest) = self.lines.pop_front()
        {
            self.bytes -= oldest.len() + 1;
        }
    }

    fn text(&self) -> String {
        let mut text = String::with_capacity(self.bytes);
        for (n, line) in self.lines.iter().enumerate() {
            if n > 0 {
                text.push('\n');
            }
            text.push_str(line);
        }
        text
    }
}

/// One stderr line as it is read: its first [`STDERR_LINE_BYTES`], and how many more.
#[derive(Debug, Default)]
struct LineStart {
    kept: Vec<u8>,
    cut: usize,
}

impl LineStart {
    fn take(&mut self, bytes: &[u8]) {
        let room = STDERR_LINE_BYTES.saturating_sub(self.kept.len());
        let kept = bytes.len().min(room);
        self.kept.extend_from_slice(&bytes[..kept]);
        self.cut += bytes.len() - kept;
    }

    fn finish(&mut self) -> Option<String> {
        if self.kept.is_empty() && self.cut == 0 {
            return None;
        }
        let mut text = String::from_utf8_lossy(&self.kept).trim_end().to_owned();
        if self.cut > 0 {
            let _written = write!(text, " … [{} more bytes cut]", self.cut);
        }
        self.kept.clear();
        self.cut = 0;
        Some(text)
    }
}

/// Keeps the tail of the process's stderr, and logs each line (cut) at debug level.
async fn keep_tail(output: impl AsyncRead + Unpin, tail: Arc<Mutex<StderrTail>>) {
    read_stderr_lines(output, &tail, |line| debug!(line = %line, "child stderr")).await;
}

/// Reads stderr to its end into `tail`, handing each line to `on_line` as it is kept. A
/// line is never held whole: past its first [`STDERR_LINE_BYTES`] it is only counted.
/// Bytes that are not UTF-8 are replaced, never a reason to stop reading (a child whose
/// stderr is closed dies of it on its next write).
async fn read_stderr_lines(
    mut output: impl AsyncRead + Unpin,
    tail: &Mutex<StderrTail>,
    mut on_line: impl FnMut(&str),
) {
    let mut buffer = vec![0; 8 << 10];
    let mut line = LineStart::default();
    let mut done = |line: &mut LineStart| {
        if let Some(text) = line.finish() {
            on_line(&text);
            if let Ok(mut tail) = tail.lock() {
                tail.push(text);
            }
        }
    };
    loop {
        let read = match output.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let mut rest = &buffer[..read];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            line.take(&rest[..end]);
            done(&mut line);
            rest = &rest[end + 1..];
        }
        line.take(rest);
    }
    done(&mut line);
}

/// What a command run to its end with [`collect`] printed, within bounds.
#[derive(Debug)]
pub struct Collected {
    /// How it exited.
    pub status: ExitStatus,
    /// The first bytes of its stdout.
    pub stdout: Vec<u8>,
    /// How many more bytes of stdout it printed, not kept.
    pub stdout_cut: usize,
    /// The end of its stderr, as [`JsonLinesProcess::stderr_tail`] keeps it.
    pub stderr_tail: String,
}

/// Reads a started command's stdout (its first `max_stdout` bytes kept, the rest counted)
/// and stderr (its tail kept, each line cut and handed to `on_stderr`, which may log it)
/// to their ends, and waits for it. Whatever it prints, what is held stays bounded.
pub async fn collect(
    child: &mut Child,
    max_stdout: usize,
    on_stderr: impl FnMut(&str),
) -> std::io::Result<Collected> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_stdout = async {
        let mut kept = Vec::new();
        let mut cut = 0;
        if let Some(mut stdout) = stdout {
            let mut buffer = vec![0; 8 << 10];
            loop {
                let read = match stdout.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => read,
                };
                let room = max_stdout.saturating_sub(kept.len()).min(read);
                kept.extend_from_slice(&buffer[..room]);
                cut += read - room;
            }
        }
        (kept, cut)
    };
    let tail = Mutex::new(StderrTail::default());
    let read_stderr = async {
        if let Some(stderr) = stderr {
            read_stderr_lines(stderr, &tail, on_stderr).await;
        }
    };
    let ((stdout, stdout_cut), ()) = tokio::join!(read_stdout, read_stderr);
    let status = child.wait().await?;
    let stderr_tail = tail.lock().map(|tail| tail.text()).unwrap_or_default();
    Ok(Collected {
        status,
        stdout,
        stdout_cut,
        stderr_tail,
    })
}

/// The end of a child's stderr as the tail of an error message: the text after a colon,
/// or, when there was none, a phrase that says so (so no message ends on a dangling
/// colon).
pub fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::from(", with nothing on stderr")
    } else {
        format!("; the end of its stderr:\n{stderr}")
    }
}

#[cfg(test)]
mod tests;
