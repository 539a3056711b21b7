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
use tracing::warn;

/// Tasks the `tasks` report lists at most; the oldest are forgotten past it.
const TASKS_KEPT: usize = 100;
/// What the listed tasks may hold in all, in bytes of their fields: the report stays
/// well under what the front keeps of a report, however much the CLI says.
const TASKS_BYTES: usize = 128 << 10;
/// The longest a task's description, summary and output path may be, in bytes.
const MAX_DESCRIPTION: usize = 1 << 10;
const MAX_SUMMARY: usize = 4 << 10;
const MAX_PATH: usize = 4 << 10;
/// The longest a task id, a status, a task type or a tool name may be.
const MAX_NAME: usize = 128;
/// The counts of a task's usage kept at most.
const MAX_USAGE_FIELDS: usize = 16;

/// Where the CLI keeps what its background tasks write, fixed before it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFolders {
    /// The CLI's configuration folder, under which a subagent's transcript is written.
    pub config_dir: Option<PathBuf>,
    /// The only folders a task's output may be read in: the configuration folder's
    /// `projects` and the CLI's user's `claude-<uid>` in its scratch folder. Fixed from
    /// the CLI's settings, never from what the CLI says (whose output the agent can
    /// write to).
    pub output_roots: Vec<PathBuf>,
}

/// What the CLI told of its background tasks.
#[derive(Debug, Default)]
pub(crate) struct BackgroundTasks {
    running: HashSet<String>,
    listed: BTreeMap<String, Map<String, Value>>,
    order: VecDeque<String>,
    /// The bytes of the listed tasks' fields.
    listed_bytes: usize,
    folders: TaskFolders,
    /// The CLI's working folder and session, from its `init` line: a subagent's
    /// transcript is under both.
    cwd: Option<String>,
    session_id: Option<String>,
    /// Whether the output roots were reported.
    roots_reported: bool,
}

impl BackgroundTasks {
    /// Tasks of a CLI whose folders are `folders`.
    pub(crate) fn new(folders: TaskFolders) -> Self {
        Self {
            folders,
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
        let text = |key: &str, max: usize| {
            line.get(key)
                .and_then(Value::as_str)
                .map(|text| truncated(text, max))
                .unwrap_or_default()
        };
        let id = text("task_id", usize::MAX);
        if !plain_name(id) || id.len() > MAX_NAME {
            if !id.is_empty() {
                warn!(
                    bytes = id.len(),
                    "a task line with an id that is not a plain name is ignored"
                );
            }
            return Vec::new();
        }
        let mut events = Vec::new();
        match subtype {
            "task_started" => {
                self.running.insert(id.to_owned());
                let started = json!({
                    "task_id": id,
                    "description": text("description", MAX_DESCRIPTION),
                    "task_type": text("task_type", MAX_NAME),
                    "status": "running",
                });
                self.note(id, &started);
                if text("task_type", MAX_NAME) == "local_agent"
                    && let Some(transcript) = self.transcript(id)
                {
                    self.note(id, &json!({"output_file": transcript}));
                }
                events.push(Event::Log(format!(
                    "task started: {}",
                    text("description", MAX_DESCRIPTION)
                )));
                events.push(notice("task:started", started));
            }
            "task_progress" => {
                let progress = json!({
                    "task_id": id,
                    "description": text("description", MAX_DESCRIPTION),
                    "usage": usage(line),
                    "last_tool_name": text("last_tool_name", MAX_NAME),
                });
                self.note(id, &progress);
                events.push(notice("task:progress", progress));
            }
            "task_notification" => {
                self.running.remove(id);
                let status = match text("status", MAX_NAME) {
                    "" => "completed",
                    status => status,
                };
                let output_file = self.output_file(text("output_file", usize::MAX));
                let completed = json!({
                    "task_id": id,
                    "status": status,
                    "summary": text("summary", MAX_SUMMARY),
                    "usage": usage(line),
                    "output_file": output_file,
                });
                self.note(id, &completed);
                events.push(Event::Log(format!(
                    "task {status}: {}",
                    text("summary", MAX_SUMMARY)
                )));
                events.push(notice("task:completed", completed));
            }
            "task_updated" => {
                let status = line
                    .pointer("/patch/status")
                    .and_then(Value::as_str)
                    .map(|status| truncated(status, MAX_NAME))
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
            .folders
            .config_dir
            .as_ref()?
            .join("projects")
            .join(project)
            .join(self.session_id.as_deref().filter(|s| plain_name(s))?)
            .join("subagents")
            .join(format!("agent-{id}.jsonl"));
        Some(path.to_string_lossy().into_owned())
    }

    /// Sets `fields` of task `id`; a new one is listed last. Past [`TASKS_KEPT`] tasks or
    /// [`TASKS_BYTES`], the oldest are forgotten, those that ended first.
    fn note(&mut self, id: &str, fields: &Value) {
        let task = self.listed.entry(id.to_owned()).or_insert_with(|| {
            self.order.push_back(id.to_owned());
            Map::new()
        });
        if let Value::Object(fields) = fields {
            for (key, value) in fields {
                let empty = value.is_null() || value.as_str().is_some_and(str::is_empty);
                if !empty {
                    self.listed_bytes += field_bytes(key, value);
                    if let Some(earlier) = task.insert(key.clone(), value.clone()) {
                        self.listed_bytes -= field_bytes(key, &earlier);
                    }
                }
            }
        }
        while self.order.len() > TASKS_KEPT || self.listed_bytes > TASKS_BYTES {
            let ended = self
                .order
                .iter()
                .position(|listed| listed != id && !self.running.contains(listed));
            let Some(oldest) = ended
                .or_else(|| self.order.iter().position(|listed| listed != id))
                .and_then(|at| self.order.remove(at))
            else {
                break;
            };
            if self.running.remove(&oldest) {
                warn!(task = %oldest, "too many background tasks: a running one is no longer followed");
            }
            if let Some(forgotten) = self.listed.remove(&oldest) {
                self.listed_bytes -= forgotten
                    .iter()
                    .map(|(key, value)| field_bytes(key, value))
                    .sum::<usize>();
            }
        }
    }

    /// `reported` if it is a file in one of the output roots, named plainly (no `.` or
    /// `..` on the way); anything else the CLI says is not kept.
    fn output_file(&self, reported: &str) -> Option<String> {
        if reported.is_empty() {
            return None;
        }
        let path = Path::new(reported);
        let plain = reported.len() <= MAX_PATH
            && path.is_absolute()
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        let inside = self.folders.output_roots.iter().any(|root| {
            path.strip_prefix(root)
                .is_ok_and(|rest| rest.components().next().is_some())
        });
        if plain && inside {
            Some(reported.to_owned())
        } else {
            warn!(
                bytes = reported.len(),
                "a task's output file outside the CLI's output folders is not kept"
            );
            None
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

    /// The `task_output_roots` report, once, with the first task.
    fn roots_report(&mut self) -> Option<Event> {
        if self.roots_reported {
            return None;
        }
        self.roots_reported = true;
        Some(Event::Report {
            name: String::from("task_output_roots"),
            value: json!(self.folders.output_roots),
        })
    }
}

/// The counts of a task's usage (`total_tokens`, `tool_uses`, `duration_ms`): numbers
/// under plain names, no more than [`MAX_USAGE_FIELDS`] of them.
fn usage(line: &Value) -> Value {
    let Some(usage) = line.get("usage").and_then(Value::as_object) else {
        return Value::Null;
    };
    let counts: Map<String, Value> = usage
        .iter()
        .filter(|(key, value)| value.is_number() && plain_name(key) && key.len() <= MAX_NAME)
        .take(MAX_USAGE_FIELDS)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if counts.is_empty() {
        Value::Null
    } else {
        Value::Object(counts)
    }
}

/// What a task's field takes in the report's JSON, near enough for a budget.
fn field_bytes(key: &str, value: &Value) -> usize {
    let value_bytes = match value {
        // A control character is written as `\u00XX`, a quote or a backslash escaped.
        Value::String(text) => {
            text.len()
                + text
                    .bytes()
                    .map(|b| match b {
                        0..0x20 => 5,
                        b'"' | b'\\' => 1,
                        _ => 0,
                    })
                    .sum::<usize>()
        }
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + field_bytes("", v)).sum(),
        _ => 16,
    };
    key.len() + value_bytes + 8
}

/// `text` cut to at most `max` bytes, at a character's edge.
fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
