//! The in-pod driver: a Python process that runs the graph with the LangGraph library and
//! speaks JSON lines in the server's vocabulary, so that one mapping serves both.

use std::{ffi::OsString, path::Path, path::PathBuf, time::Duration};

use ambient_process::{JsonLinesProcess, Launch, OutputLimits, ProcessError, RunAs};
use serde_json::{Value, json};

use crate::{GraphEvent, Interrupt, RunStatus};

/// The driver script, shipped inside the adapter; written out when no installed copy is
/// named.
pub const DRIVER_SOURCE: &str = include_str!("../driver/ambient_langgraph_driver.py");

/// How the driver is run.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    /// The Python with LangGraph installed (`LANGGRAPH_PYTHON`).
    pub python: PathBuf,
    /// An installed copy of the driver script (`LANGGRAPH_DRIVER`); else the embedded one.
    pub script: Option<PathBuf>,
    /// The driver's whole environment: the binary chooses what passes.
    pub env: Vec<(OsString, OsString)>,
    /// How long loading the graph may take.
    pub start_timeout: Duration,
    /// The user the graph's process runs as (`AGENT_UID`, `AGENT_GID`), when not the
    /// runner's.
    pub run_as: Option<RunAs>,
    /// How much of the driver's output is held: its longest line, and what is read ahead.
    pub output_limits: OutputLimits,
}

impl Default for DriverSettings {
    fn default() -> Self {
        Self {
            python: PathBuf::from("python3"),
            script: None,
            env: Vec::new(),
            start_timeout: Duration::from_secs(120),
            run_as: None,
            output_limits: OutputLimits::default(),
        }
    }
}

/// What went wrong with the driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Its process could not be run or read.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The driver script could not be written out.
    #[error("the LangGraph driver script could not be written to {path}")]
    Script {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The graph could not be loaded.
    #[error(
        "the graph `{graph}` could not be loaded: {error}: {message}{}",
        ambient_process::stderr_suffix(.stderr)
    )]
    Load {
        /// The graph asked for.
        graph: String,
        /// The exception's type.
        error: String,
        /// Its message.
        message: String,
        /// The end of the driver's stderr.
        stderr: String,
    },
    /// The driver exited when it should not have.
    #[error("the LangGraph driver exited {when} ({status}){}", ambient_process::stderr_suffix(.stderr))]
    Exited {
        /// At what point.
        when: &'static str,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// The driver did not answer in time.
    #[error(
        "the LangGraph driver did not {what} within {seconds} s{}",
        ambient_process::stderr_suffix(.stderr)
    )]
    NoAnswer {
        /// What it did not do.
        what: &'static str,
        /// The bound.
        seconds: u64,
        /// The end of its stderr.
        stderr: String,
    },
    /// An event's data was not what the driver sends.
    #[error("the LangGraph driver sent a line that is not an event: {0}")]
    BadLine(String),
}

/// What the driver says while a run goes.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverEvent {
    /// An event of the run.
    Graph(GraphEvent),
    /// The run ended.
    End(RunStatus),
}

/// A running driver with its graph loaded.
#[derive(Debug)]
pub struct GraphDriver {
    process: JsonLinesProcess,
    /// What the driver said when ready: the graph's `input_schema` and `output_schema`.
    ready: Value,
    /// The embedded script's file, removed when the driver goes.
    _script: Option<tempfile::TempPath>,
}

impl GraphDriver {
    /// Starts the driver for `graph` in `cwd`, keeping checkpoints in `checkpoints`, and
    /// waits until the graph is loaded.
    pub async fn start(
        settings: &DriverSettings,
        graph: &str,
        cwd: &Path,
        checkpoints: &Path,
    ) -> Result<Self, DriverError> {
        let (script, written) = match &settings.script {
            Some(path) => (path.clone(), None),
            None => {
                let file = tempfile::Builder::new()
                    .prefix("ambient_langgraph_driver")
                    .suffix(".py")
                    .tempfile()
                    .and_then(|mut file| {
                        std::io::Write::write_all(&mut file, DRIVER_SOURCE.as_bytes())?;
                        // The driver may run as the agent's user: the script is public.
                        std::fs::set_permissions(
                            file.path(),
                            std::os::unix::fs::PermissionsExt::from_mode(0o644),
                        )?;
                        Ok(file.into_temp_path())
                    })
                    .map_err(|source| DriverError::Script {
                        path: std::env::temp_dir().display().to_string(),
                        source,
                    })?;
                (file.to_path_buf(), Some(file))
            }
        };
        if let Some(parent) = checkpoints.parent() {
            std::fs::create_dir_all(parent).map_err(|source| DriverError::Script {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let argv = [
            script.into_os_string(),
            OsString::from(graph),
            checkpoints.as_os_str().to_owned(),
        ];
        let mut process = JsonLinesProcess::spawn(Launch {
            binary: &settings.python,
            argv: &argv,
            cwd,
            env: &settings.env,
            run_as: settings.run_as,
            limits: settings.output_limits,
        })?;
        let loaded = tokio::time::timeout(settings.start_timeout, process.next_line()).await;
        let line = match loaded {
            Err(_) => {
                let stderr = process.stderr_tail();
                process.finish(Duration::ZERO).await;
                return Err(DriverError::NoAnswer {
                    what: "load the graph",
                    seconds: settings.start_timeout.as_secs(),
                    stderr,
                });
            }
            Ok(None) => {
                let status = process.finish(Duration::from_secs(5)).await;
                return Err(DriverError::Exited {
                    when: "before it loaded the graph",
                    status: describe(status),
                    stderr: process.stderr_tail(),
                });
            }
            Ok(Some(line)) => line?,
        };
        match line.get("event").and_then(Value::as_str) {
            Some("ready") => Ok(Self {
                process,
                ready: line.get("data").cloned().unwrap_or(Value::Null),
                _script: written,
            }),
            Some("fatal") => {
                process.finish(Duration::from_secs(5)).await;
                let text = |key: &str| {
                    line.pointer(&format!("/data/{key}"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                Err(DriverError::Load {
                    graph: graph.to_owned(),
                    error: text("error"),
                    message: text("message"),
                    stderr: process.stderr_tail(),
                })
            }
            _ => {
                process.finish(Duration::ZERO).await;
                Err(DriverError::BadLine(line.to_string()))
            }
        }
    }

    /// Starts a run (`body` as the server takes it, plus the thread).
    pub fn run(&self, thread: &str, body: &Value) {
        let mut command = body.clone();
        if let Some(object) = command.as_object_mut() {
            object.insert(String::from("op"), json!("run"));
            object.insert(String::from("thread_id"), json!(thread));
            if let Some(subgraphs) = object.remove("stream_subgraphs") {
                object.insert(String::from("subgraphs"), subgraphs);
            }
        }
        self.process.send(&command);
    }

    /// Cancels the run in progress.
    pub fn cancel(&self) {
        self.process.send(&json!({"op": "cancel"}));
    }

    /// The questions `thread` waits on.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: the answer would be taken for a run's event.
    pub async fn pending(&mut self, thread: &str) -> Result<Vec<Interrupt>, DriverError> {
        let state = self
            .ask(&json!({"op": "state", "thread_id": thread}), "state")
            .await?;
        Ok(state
            .get("interrupts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(Interrupt::from_server)
            .collect())
    }

    /// The values of `thread`'s state.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: the answer would be taken for a run's event.
    pub async fn values(&mut self, thread: &str) -> Result<Value, DriverError> {
        let mut state = self
            .ask(&json!({"op": "state", "thread_id": thread}), "state")
            .await?;
        Ok(state
            .get_mut("values")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }

    /// The graph's `input_schema` and `output_schema` (JSON Schema, or null), as the
    /// driver said when ready (a driver that does not say gives null).
    pub fn schemas(&self) -> &Value {
        &self.ready
    }

    /// Sends `command` and returns the data of the driver's `answer` line.
    async fn ask(&mut self, command: &Value, answer: &str) -> Result<Value, DriverError> {
        self.process.send(command);
        loop {
            let mut line = self.line().await?;
            if line.get("event").and_then(Value::as_str) == Some(answer) {
                return Ok(line.get_mut("data").map(Value::take).unwrap_or(Value::Null));
            }
        }
    }

    /// The next event of the run in progress.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: lines wait in a channel.
    pub async fn next(&mut self) -> Result<DriverEvent, DriverError> {
        let line = self.line().await?;
        let name = line
            .get("event")
            .and_then(Value::as_str)
            .ok_or_else(|| DriverError::BadLine(line.to_string()))?;
        if name == "end" {
            let status = match line.pointer("/data/status").and_then(Value::as_str) {
                // A run that stopped at questions ended well; the questions came as updates.
                Some("success" | "interrupted") => RunStatus::Success,
                Some("error") => RunStatus::Error,
                Some("cancelled") => RunStatus::Interrupted,
                other => RunStatus::Other(other.unwrap_or("unknown").to_owned()),
            };
            return Ok(DriverEvent::End(status));
        }
        let ns = line
            .get("ns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        Ok(DriverEvent::Graph(GraphEvent {
            name: name.to_owned(),
            ns,
            data: line.get("data").cloned().unwrap_or(Value::Null),
        }))
    }

    async fn line(&mut self) -> Result<Value, DriverError> {
        match self.process.next_line().await {
            Some(line) => Ok(line?),
            None => {
                let status = self.process.finish(Duration::from_secs(5)).await;
                Err(DriverError::Exited {
                    when: "in the middle of a run",
                    status: describe(status),
                    stderr: self.process.stderr_tail(),
                })
            }
        }
    }

    /// Closes its input and waits up to `bound` for it to exit, then stops it.
    pub async fn finish(&mut self, bound: Duration) {
        self.process.finish(bound).await;
    }
}

fn describe(status: Option<std::process::ExitStatus>) -> String {
    status.map_or_else(|| String::from("exit status unknown"), |s| s.to_string())
}
