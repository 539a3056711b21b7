//! The message history on disk: one JSON line per broadcast, in
//! `{state_dir}/sessions/{session}/messages.jsonl`, as the real backend keeps it on its PVC.
//!
//! One writer task owns every open history file. Lines reach it in broadcast order (the hub
//! is its only producer), go into a [`BufWriter`] per file, and reach the OS when a buffer
//! fills, at most [`FLUSH_DELAY`] after the first unflushed line, on an explicit flush
//! (every history read asks for one) and when the writer stops. A busy backend therefore
//! writes in large chunks instead of one syscall per line, and an idle one has everything
//! on disk within a few milliseconds.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    pin::pin,
    time::Duration,
};

use ambient_protocol::SessionMessage;
use axum::extract::ws::Utf8Bytes;
use tempfile::TempDir;
use tokio::{
    fs::{File, OpenOptions},
    io::{AsyncWriteExt, BufWriter},
    sync::{mpsc, oneshot},
    time::{Instant, sleep},
};
use tracing::{debug, warn};

/// How long a written line may stay in a buffer before it is flushed.
const FLUSH_DELAY: Duration = Duration::from_millis(20);
/// The buffer size of each history file.
const BUFFER_SIZE: usize = 256 * 1024;
/// The type of the partial-output rows that history reads leave out unless asked.
pub(crate) const PARTIAL_TYPE: &str = "message.partial";

/// Where the history files of a state directory live.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    state_dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(state_dir: PathBuf) -> Self {
        Self { state_dir }
    }

    /// `{state_dir}/sessions`.
    pub(crate) fn sessions_dir(&self) -> PathBuf {
        self.state_dir.join("sessions")
    }

    /// `{state_dir}/sessions/{session}/messages.jsonl`.
    pub(crate) fn messages_path(&self, session: &str) -> PathBuf {
        self.sessions_dir().join(session).join("messages.jsonl")
    }
}

/// What the hub asks of the writer.
#[derive(Debug)]
pub(crate) enum WriteCmd {
    /// Append one line (the serialized message, without the newline).
    Append { session: String, line: Utf8Bytes },
    /// Flush every buffer, then answer.
    Flush { done: oneshot::Sender<()> },
}

/// The writer task: runs until every sender is gone, then flushes and drops `keep` (the
/// temporary state directory, if the backend made one), so that nothing is written into a
/// removed directory.
pub(crate) async fn run_writer(
    layout: Layout,
    mut commands: mpsc::Receiver<WriteCmd>,
    keep: Option<TempDir>,
) {
    let mut files = Files::new(layout);
    let mut flush_timer = pin!(sleep(FLUSH_DELAY));
    let mut dirty = false;
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            () = &mut flush_timer, if dirty => {
                files.flush_all().await;
                dirty = false;
                continue;
            }
        };
        match command {
            Some(WriteCmd::Append { session, line }) => {
                files.append(&session, line.as_str().as_bytes()).await;
                if !dirty {
                    dirty = true;
                    flush_timer.as_mut().reset(Instant::now() + FLUSH_DELAY);
                }
            }
            Some(WriteCmd::Flush { done }) => {
                files.flush_all().await;
                dirty = false;
                // The asker may have given up waiting; that is not an error here.
                let _ = done.send(());
            }
            None => break,
        }
    }
    files.close_all().await;
    drop(keep);
    debug!("history writer stopped");
}

/// The open history files, by session name.
struct Files {
    layout: Layout,
    open: HashMap<String, BufWriter<File>>,
}

impl Files {
    fn new(layout: Layout) -> Self {
        Self {
            layout,
            open: HashMap::new(),
        }
    }

    async fn append(&mut self, session: &str, line: &[u8]) {
        if !self.open.contains_key(session) {
            match open_history(&self.layout, session).await {
                Ok(file) => {
                    self.open.insert(session.to_owned(), file);
                }
                Err(error) => {
                    warn!(session, %error, "could not open a history file; message not persisted");
                    return;
                }
            }
        }
        let Some(file) = self.open.get_mut(session) else {
            return;
        };
        let written = async {
            file.write_all(line).await?;
            file.write_all(b"\n").await
        }
        .await;
        if let Err(error) = written {
            warn!(session, %error, "could not write a history file; reopening it next time");
            self.open.remove(session);
        }
    }

    async fn flush_all(&mut self) {
        let mut failed = Vec::new();
        for (session, file) in &mut self.open {
            if let Err(error) = file.flush().await {
                warn!(session, %error, "could not flush a history file");
                failed.push(session.clone());
            }
        }
        for session in failed {
            self.open.remove(&session);
        }
    }

    async fn close_all(&mut self) {
        for (session, mut file) in self.open.drain() {
            if let Err(error) = file.shutdown().await {
                warn!(session, %error, "could not flush a history file on shutdown");
            }
        }
    }
}

async fn open_history(layout: &Layout, session: &str) -> io::Result<BufWriter<File>> {
    let path = layout.messages_path(session);
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await?;
    Ok(BufWriter::with_capacity(BUFFER_SIZE, file))
}

/// Reads a history file as `GET …/messages` does: a missing file is an empty history,
/// malformed lines are skipped, and `message.partial` rows are kept only when asked.
pub(crate) async fn read_history(
    path: &Path,
    include_partial: bool,
) -> io::Result<Vec<SessionMessage>> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    Ok(parse_history(&bytes, include_partial))
}

/// Parses the lines of a history file; see [`read_history`].
pub(crate) fn parse_history(bytes: &[u8], include_partial: bool) -> Vec<SessionMessage> {
    bytes
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .filter_map(
            |line| match serde_json::from_slice::<SessionMessage>(line) {
                Ok(message) => Some(message),
                Err(error) => {
                    debug!(%error, "skipping a malformed history line");
                    None
                }
            },
        )
        .filter(|message| include_partial || message.kind != PARTIAL_TYPE)
        .collect()
}
