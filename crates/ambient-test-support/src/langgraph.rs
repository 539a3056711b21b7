//! A real `langgraph dev` server, run from the project-local venv that `./scripts/test`
//! installs with the pinned packages, serving a test project on a free loopback port.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
};

/// How long the server may take to start: CI machines are slow.
const START_BOUND: Duration = Duration::from_secs(90);

/// The venv `./scripts/test` installs the pinned LangGraph packages into.
pub fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv")
}

/// A `langgraph dev` serving a copy of a test project; killed (by its PID, through the
/// child handle) when dropped.
#[derive(Debug)]
pub struct LangGraphDev {
    _child: Child,
    _project: tempfile::TempDir,
    url: String,
}

impl LangGraphDev {
    /// Starts a server for the project in `project` (its `langgraph.json` and the Python
    /// files beside it), and waits until it listens.
    pub async fn start(project: &Path) -> Self {
        let langgraph = venv().join("bin/langgraph");
        assert!(
            langgraph.exists(),
            "{} is missing: run ./scripts/test, which installs the pinned LangGraph packages into .venv",
            langgraph.display()
        );
        // The dev server writes its state next to langgraph.json: give it a copy.
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(project).unwrap() {
            let path = entry.unwrap().path();
            let is_project_file = path
                .extension()
                .is_some_and(|ext| ext == "py" || ext == "json");
            if is_project_file {
                std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(langgraph)
            .args([
                "dev",
                "--no-browser",
                "--no-reload",
                "--host",
                "127.0.0.1",
                "--server-log-level",
                "info",
            ])
            .args(["--port", &port.to_string()])
            .current_dir(copy.path())
            .env("LANGGRAPH_CLI_NO_ANALYTICS", "1")
            .env("LANGSMITH_TRACING", "false")
            .env("LANGCHAIN_TRACING_V2", "false")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Uvicorn says where it listens once it does (the port may have moved if taken).
        let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        let outputs: [Option<Box<dyn AsyncRead + Send + Unpin>>; 2] = [
            child.stdout.take().map(|o| Box::new(o) as _),
            child.stderr.take().map(|e| Box::new(e) as _),
        ];
        for output in outputs.into_iter().flatten() {
            let lines_tx = lines_tx.clone();
            // Read to the end, so that the server never blocks on a full pipe.
            tokio::spawn(async move {
                let mut reader = BufReader::new(output).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let _kept = lines_tx.send(line);
                }
            });
        }
        drop(lines_tx);
        let mut seen = Vec::new();
        let url = tokio::time::timeout(START_BOUND, async {
            while let Some(line) = lines.recv().await {
                if let Some(rest) = line.split("Uvicorn running on ").nth(1) {
                    return rest
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .trim_end_matches('\u{1b}')
                        .to_owned();
                }
                seen.push(line);
            }
            panic!(
                "langgraph dev ended before it listened:\n{}",
                seen.join("\n")
            );
        })
        .await
        .expect("langgraph dev listens in time");
        Self {
            _child: child,
            _project: copy,
            url,
        }
    }

    /// The server's base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }
}
