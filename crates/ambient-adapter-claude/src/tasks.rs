//! The CLI's background tasks (subagents run in the background, background shells), as
//! the platform's UI follows them: `task:started`, `task:progress` and `task:completed`
//! notices with the fields its `BackgroundTask` reads, the `tasks` report behind `GET
//! /tasks`, and where each task's output is, for `GET /tasks/{id}/output`.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    path::{Component, Path, PathBuf},
};

use ambient_adapter::Event;
use serde_json::{Map, Value, json};

/// Tasks the `tasks` report lists at most; the oldest are forgotten past it.
const TASKS_KEPT: usize = 100;

/// What the CLI told of its background tasks.
#[derive(Debug, Default)]
pub(crate) struct BackgroundTasks {
    running: HashSet<String>,
    listed: BTreeMap<String, Map<String, Value>>,
    order: VecDeque<String>,
    /// The CLI's configuration folder, where a subagent's transcript is written.
    config_dir: Option<PathBuf>,
    /// The CLI's scratch folder (`TMPDIR`), where a background shell's output is.
    scratch_dir: Option<PathBuf>,
    /// The CLI's working folder and session, from its `init` line: a subagent's
    /// transcript is under both.
    cwd: Option<String>,
    session_id: Option<String>,
    /// The folders the tasks' outputs were found in, as last reported.
    roots_reported: Vec<PathBuf>,
}

impl BackgroundTasks {
    /// Tasks of a CLI whose configuration folder is `config_dir` and scratch folder
    /// `scratch_dir`, where known.
    pub(crate) fn new(config_dir: Option<PathBuf>, scratch_dir: Option<PathBuf>) -> Self {
        Self {
            config_dir,
            scratch_dir,
            ..Self::default()
        }
    }

    /// Whether any task still runs.
    pub(crate) fn any_running(&self) -> bool {
        !self.running.is_empty()
    }

    /// The CLI's `init` line: its working folder and session.
    pub(crate) fn init(&mut self, line: &Value) {
        let text = |key: &str| line.get(key).and_then(Value::as_str).map(str::to_owned);
        self.cwd = text("cwd").or(self.cwd.take());
        self.session_id = text("session_id").or(self.session_id.take());
    }

    /// A `system` line about a task (`task_started`, `task_progress`,
    /// `task_notification`, `task_updated`): the events it becomes.
    pub(crate) fn line(&mut self, subtype: &str, line: &Value) -> Vec<Event> {
        let text = |key: &str| line.get(key).and_then(Value::as_str).unwrap_or_default();
        let id = text("task_id");
        if id.is_empty() {
            return Vec::new();
        }
        let mut events = Vec::new();
        match subtype {
            "task_started" => {
                self.running.insert(id.to_owned());
                let started = json!({
                    "task_id": id,
                    "description": text("description"),
                    "task_type": text("task_type"),
                    "status": "running",
                });
                self.note(id, &started);
                if text("task_type") == "local_agent"
                    && let Some(transcript) = self.transcript(id)
                {
                    self.note(id, &json!({"output_file": transcript}));
                }
                events.push(Event::Log(format!("task started: {}", text("description"))));
                events.push(notice("task:started", started));
            }
            "task_progress" => {
                let progress = json!({
                    "task_id": id,
                    "description": text("description"),
                    "usage": line.get("usage").cloned().unwrap_or(Value::Null),
                    "last_tool_name": line.get("last_tool_name").cloned().unwrap_or(Value::Null),
                });
                self.note(id, &progress);
                events.push(notice("task:progress", progress));
            }
            "task_notification" => {
                self.running.remove(id);
                let status = match text("status") {
                    "" => "completed",
                    status => status,
                };
                let completed = json!({
                    "task_id": id,
                    "status": status,
                    "summary": text("summary"),
                    "usage": line.get("usage").cloned().unwrap_or(Value::Null),
                    "output_file": line.get("output_file").cloned().unwrap_or(Value::Null),
                });
                self.note(id, &completed);
                events.push(Event::Log(format!("task {status}: {}", text("summary"))));
                events.push(notice("task:completed", completed));
            }
            "task_updated" => {
                let status = line
                    .pointer("/patch/status")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if status.is_empty() {
                    return Vec::new();
                }
                if matches!(status, "completed" | "failed" | "killed" | "cancelled") {
                    self.running.remove(id);
                }
                self.note(id, &json!({ "status": status }));
            }
            _ => return Vec::new(),
        }
        events.push(self.report());
        events.extend(self.roots_report());
        events
    }

    /// The user stopped task `id`: if it runs, it is stopped now (the CLI does not always
    /// say so of a task it kills), with its notice.
    pub(crate) fn stopped(&mut self, id: &str) -> Vec<Event> {
        if !self.running.remove(id) {
            return Vec::new();
        }
        let completed = json!({
            "task_id": id,
            "status": "stopped",
            "summary": "Task stopped by user",
        });
        self.note(id, &completed);
        vec![
            Event::Log(format!("task {id} stopped by the user")),
            notice("task:completed", completed),
            self.report(),
        ]
    }

    /// Where the CLI writes subagent `id`'s transcript: under its configuration folder,
    /// in the project named after its working folder (every character but a letter or a
    /// digit made `-`; a long one is shortened with a hash, which is not predicted) and
    /// its session.
    fn transcript(&self, id: &str) -> Option<String> {
        let project: String = self
            .cwd
            .as_deref()?
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        if project.len() > 200 || !plain_name(id) {
            return None;
        }
        let path = self
            .config_dir
            .as_ref()?
            .join("projects")
            .join(project)
            .join(self.session_id.as_deref().filter(|s| plain_name(s))?)
            .join("subagents")
            .join(format!("agent-{id}.jsonl"));
        Some(path.to_string_lossy().into_owned())
    }

    /// Sets `fields` of task `id`; a new one is listed last, and the oldest are forgotten
    /// past [`TASKS_KEPT`].
    fn note(&mut self, id: &str, fields: &Value) {
        let task = self.listed.entry(id.to_owned()).or_insert_with(|| {
            self.order.push_back(id.to_owned());
            Map::new()
        });
        if let Value::Object(fields) = fields {
            for (key, value) in fields {
                let empty = value.is_null() || value.as_str().is_some_and(str::is_empty);
                if !empty {
                    task.insert(key.clone(), value.clone());
                }
            }
        }
        while self.order.len() > TASKS_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.listed.remove(&oldest);
            }
        }
    }

    /// The `tasks` report: every task, in the order they came.
    fn report(&self) -> Event {
        let tasks: Vec<Value> = self
            .order
            .iter()
            .filter_map(|id| self.listed.get(id).cloned().map(Value::Object))
            .collect();
        Event::Report {
            name: String::from("tasks"),
            value: json!({ "tasks": tasks }),
        }
    }

    /// The `task_output_roots` report, when it changed: the folders a task's output may
    /// be read from. The configuration folder, and the CLI's own `claude-<uid>` folder in
    /// its scratch folder once a task's output is seen there; never the scratch folder
    /// itself, which holds more than the CLI's.
    fn roots_report(&mut self) -> Option<Event> {
        let mut roots: Vec<PathBuf> = self.config_dir.iter().cloned().collect();
        if let Some(scratch) = &self.scratch_dir {
            for task in self.listed.values() {
                let Some(file) = task.get("output_file").and_then(Value::as_str) else {
                    continue;
                };
                let Ok(inside) = Path::new(file).strip_prefix(scratch) else {
                    continue;
                };
                if let Some(Component::Normal(first)) = inside.components().next()
                    && first.to_str().is_some_and(|name| {
                        name.strip_prefix("claude-").is_some_and(|uid| {
                            !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit())
                        })
                    })
                {
                    let root = scratch.join(first);
                    if !roots.contains(&root) {
                        roots.push(root);
                    }
                }
            }
        }
        if roots == self.roots_reported {
            return None;
        }
        self.roots_reported = roots.clone();
        Some(Event::Report {
            name: String::from("task_output_roots"),
            value: json!(roots),
        })
    }
}

/// Whether `name` is a plain name, fit for a path's one component.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn notice(name: &str, value: Value) -> Event {
    Event::Notice {
        name: name.to_owned(),
        value,
    }
}
