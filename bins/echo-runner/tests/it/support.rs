//! A local backend, the runner binary pointed at it, and reads of what the backend kept.

use std::{process::Stdio, time::Duration};

use ambient_local_backend::{LocalBackend, SessionSeed};
use serde_json::Value;
use tokio::process::{Child, Command};

pub(crate) const TOKEN: &str = "bot-token-e2e-5f2c9a";
pub(crate) const PROJECT: &str = "team-a";
pub(crate) const SESSION: &str = "agentic-session-1730404961";
/// The bound on every wait; generous, since CI machines are slow.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) struct Backend {
    pub(crate) backend: LocalBackend,
    pub(crate) workspace: tempfile::TempDir,
}

pub(crate) async fn backend(seed: SessionSeed) -> Backend {
    let backend = LocalBackend::builder()
        .token(TOKEN)
        .session(seed)
        .start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    Backend {
        backend,
        workspace: tempfile::tempdir().unwrap(),
    }
}

impl Backend {
    /// The runner binary with the pod environment the operator would set, and nothing else
    /// from this process's environment.
    pub(crate) fn runner(&self, extra: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_echo-runner"));
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

    /// Waits for a runner started by [`Backend::runner`] and collects what it left.
    pub(crate) async fn finish(&self, child: Child) -> Finished {
        let mut finished = finish(child).await;
        finished.stderr = std::fs::read_to_string(self.stderr_path()).unwrap_or_default();
        finished
    }

    /// The persisted JSON lines, parsed.
    pub(crate) async fn persisted(&self) -> Vec<Value> {
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
pub(crate) struct Finished {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) async fn finish(child: Child) -> Finished {
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
