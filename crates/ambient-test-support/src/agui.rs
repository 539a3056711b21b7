//! A runner binary in the AG-UI serve mode, a client for it that reads SSE the way a
//! browser's `EventSource` does (and can hang up after any event), and the check of
//! events against the official AG-UI types (`ag-ui-protocol`, installed by
//! `./scripts/test` into `.venv`).
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use std::{path::Path, process::Stdio};

use ambient_sse::SseDecoder;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::harness::{Finished, WAIT};

/// The token the served runner expects.
pub const SERVE_TOKEN: &str = "serve-token-e2e-7d41c0b9";

/// A runner binary serving AG-UI on a loopback port it picked.
#[derive(Debug)]
pub struct Served {
    /// The runner process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    client: reqwest::Client,
    stderr: std::path::PathBuf,
}

/// The command for `binary` in the serve mode, with `workspace` as its workspace (where
/// its stderr goes too) and nothing else from this process's environment.
pub fn serve_command(binary: impl AsRef<Path>, workspace: &Path) -> Command {
    serve_command_via(&[], binary, workspace)
}

/// [`serve_command`], started through `wrapper` (a program and its arguments, the
/// runner's path after them): `prlimit` to give it a modest file limit, say.
pub fn serve_command_via(wrapper: &[&str], binary: impl AsRef<Path>, workspace: &Path) -> Command {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary.as_ref());
            command
        }
        None => Command::new(binary.as_ref()),
    };
    command
        .env_clear()
        .env("AGUI_LISTEN", "127.0.0.1:0")
        .env("AGUI_TOKEN", SERVE_TOKEN)
        .env("WORKSPACE_PATH", workspace)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr_path(workspace)).unwrap())
        .kill_on_drop(true);
    command
}

/// Where a served runner's stderr goes.
fn stderr_path(workspace: &Path) -> std::path::PathBuf {
    workspace.join("runner-stderr.log")
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    /// Its `id:`.
    pub id: u64,
    /// Its `data:`, parsed.
    pub data: Value,
}

impl Sse {
    /// The AG-UI event type.
    pub fn kind(&self) -> &str {
        self.data["type"].as_str().unwrap_or_default()
    }
}

impl Served {
    /// Starts `command` (from [`serve_command`] for `workspace`) and waits for the address
    /// it announces once it takes runs.
    pub async fn start(mut command: Command, workspace: &Path) -> Self {
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("the runner announces its address in time")
            .unwrap()
            .expect("the runner printed its address before exiting");
        let url = first
            .strip_prefix("ag-ui listening on ")
            .unwrap_or_else(|| panic!("not an announcement: {first}"))
            .to_owned();
        // The rest of stdout is drained so that the runner never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        crate::crypto();
        let stderr = stderr_path(workspace);
        Self {
            child,
            url,
            client: reqwest::Client::new(),
            stderr,
        }
    }

    /// Starts `command` with the operator's `AGUI_PORT` and takes the runner to be at that
    /// port on loopback, as the platform's backend does: it waits for no announcement, and
    /// its first calls are tried again while the port is closed. Works for any runner that
    /// takes the operator's environment, the platform's own among them.
    pub async fn start_on_operators_port(mut command: Command, workspace: &Path) -> Self {
        let port = command
            .as_std()
            .get_envs()
            .find(|(name, _)| *name == "AGUI_PORT")
            .and_then(|(_, value)| value)
            .and_then(|value| value.to_str())
            .expect("the operator's environment names AGUI_PORT")
            .to_owned();
        let mut child = command.spawn().unwrap();
        if let Some(stdout) = child.stdout.take() {
            let mut lines = BufReader::new(stdout).lines();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        }
        crate::crypto();
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            stderr: stderr_path(workspace),
        }
    }

    /// A request to `path` with the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(SERVE_TOKEN)
    }

    /// `GET path` with the token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    /// `POST path` with the JSON `body` and the token.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /run` with `body`; the response streams the run.
    pub async fn post_run(&self, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, "/run")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A whole run: posts it and reads its stream to the end.
    pub async fn run(&self, body: &Value) -> Vec<Sse> {
        let response = self.post_run(body).await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        read_sse(response, None).await
    }

    /// `GET /runs/{run_id}/events` from after event `last` (`Last-Event-ID`).
    pub async fn events_after(&self, run_id: &str, last: impl ToString) -> reqwest::Response {
        self.request(reqwest::Method::GET, &format!("/runs/{run_id}/events"))
            .header("last-event-id", last.to_string())
            .send()
            .await
            .unwrap()
    }

    /// `POST /interrupt`.
    pub async fn interrupt(&self) -> reqwest::Response {
        self.request(reqwest::Method::POST, "/interrupt")
            .send()
            .await
            .unwrap()
    }

    /// Stops the runner with SIGTERM (by its pid) and collects what it left.
    pub async fn stop(mut self) -> Finished {
        crate::harness::terminate(&self.child);
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the runner stops in time")
            .unwrap();
        Finished {
            code: status.code(),
            stdout: String::new(),
            stderr: self.log(),
        }
    }

    /// What the runner logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Checks one whole run as a client received it: ids 1, 2, 3…; every event valid for the
/// official AG-UI types; the protocol's ordering rules. Returns the events parsed.
pub fn check_run(events: &[Sse]) -> Vec<ambient_agui::AguiEvent> {
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=events.len() as u64).collect::<Vec<_>>());
    let data: Vec<Value> = events.iter().map(|e| e.data.clone()).collect();
    validate_with_official_types("events", &data);
    let parsed: Vec<ambient_agui::AguiEvent> = data
        .into_iter()
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    ambient_agui::check_order(&parsed).unwrap();
    parsed
}

/// Applies a JSON Patch of `add`, `remove` and `replace` operations (what the runner's
/// `STATE_DELTA` events carry) to `state`, as an AG-UI consumer would.
pub fn apply_patch(state: &mut Value, patch: &[Value]) {
    for operation in patch {
        let path = operation["path"].as_str().unwrap();
        if path.is_empty() {
            *state = operation["value"].clone();
            continue;
        }
        let segments: Vec<String> = path[1..]
            .split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let (last, parents) = segments.split_last().unwrap();
        let mut target = &mut *state;
        for segment in parents {
            target = match target {
                Value::Array(items) => &mut items[segment.parse::<usize>().unwrap()],
                other => &mut other[segment.as_str()],
            };
        }
        match (operation["op"].as_str().unwrap(), target) {
            ("remove", Value::Object(map)) => {
                map.remove(last);
            }
            ("add", Value::Array(items)) => {
                items.insert(last.parse::<usize>().unwrap(), operation["value"].clone())
            }
            ("replace", Value::Array(items)) => {
                items[last.parse::<usize>().unwrap()] = operation["value"].clone();
            }
            ("add" | "replace", Value::Object(map)) => {
                map.insert(last.clone(), operation["value"].clone());
            }
            (op, target) => panic!("cannot {op} {path} in {target}"),
        }
    }
}

/// The text of a run's messages, one string per message.
pub fn message_texts(events: &[ambient_agui::AguiEvent]) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for event in events {
        match event {
            ambient_agui::AguiEvent::TextMessageStart { .. } => texts.push(String::new()),
            ambient_agui::AguiEvent::TextMessageContent { delta, .. } => {
                if let Some(text) = texts.last_mut() {
                    text.push_str(delta);
                }
            }
            _ => {}
        }
    }
    texts
}

/// A run request with the conversation `messages` (id, role, content).
pub fn run_input(thread_id: &str, run_id: &str, messages: &[(&str, &str, &str)]) -> Value {
    let messages: Vec<Value> = messages
        .iter()
        .map(|(id, role, content)| serde_json::json!({"id": id, "role": role, "content": content}))
        .collect();
    serde_json::json!({
        "threadId": thread_id,
        "runId": run_id,
        "messages": messages,
        "tools": [],
        "context": [],
        "state": {},
        "forwardedProps": {},
    })
}

/// Reads `response` as SSE until it ends, or until `limit` events were read (then the
/// connection is dropped: a cut). Keep-alive comments are skipped.
pub async fn read_sse(mut response: reqwest::Response, limit: Option<usize>) -> Vec<Sse> {
    let mut events = Vec::new();
    let mut decoder = SseDecoder::new();
    loop {
        if limit.is_some_and(|limit| events.len() >= limit) {
            return events;
        }
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .expect("the stream moves in time")
            .unwrap();
        let Some(chunk) = chunk else {
            assert!(decoder.is_idle(), "the stream ended mid-event");
            return events;
        };
        for event in decoder
            .push(&chunk)
            .expect("the serve mode sends events of any size")
        {
            // Keep-alive comments make no event; every event of the serve mode has an id
            // but the RUN_STARTED a resumed stream opens with again, which is left out.
            let data: Value = serde_json::from_str(&event.data).unwrap();
            let Some(id) = event.id else {
                assert_eq!(data["type"], "RUN_STARTED", "an event without an id");
                continue;
            };
            let id = id.parse().unwrap();
            if limit.is_some_and(|limit| events.len() >= limit) {
                return events;
            }
            events.push(Sse { id, data });
        }
    }
}

const VALIDATE: &str = r#"
import json, sys
from pydantic import BaseModel, TypeAdapter
from ag_ui.core import Event
from ag_ui.core.capabilities import AgentCapabilities

def unknown_fields(value, path):
    # The official models keep unknown fields instead of refusing them; a field the
    # protocol does not define is an error here.
    found = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{key}" for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += unknown_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += unknown_fields(item, f"{path}[{index}]")
    return found

kind, path, extras = sys.argv[1], sys.argv[2], sys.argv[3]
adapter = TypeAdapter(Event) if kind == "events" else TypeAdapter(AgentCapabilities)
for number, line in enumerate(open(path), 1):
    raw = json.loads(line)
    model = adapter.validate_python(raw)
    unknown = unknown_fields(model, raw.get("type", kind))
    if extras == "refused":
        assert not unknown, f"line {number}: fields the protocol does not define: {unknown}"
        back = model.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert back == raw, f"line {number}: {raw} reads back as {back}"
print(f"{number} valid")
"#;

/// Checks every value against the official AG-UI types: `kind` is `events` (each an
/// `Event`) or `capabilities` (each an `AgentCapabilities`). A value must validate, carry
/// no field the protocol does not define, and read back as itself.
pub fn validate_with_official_types(kind: &str, values: &[Value]) {
    validate(kind, values, "refused");
}

/// [`validate_with_official_types`] as the official types themselves read a value: a
/// field the protocol does not define is kept, not refused, and a value need not read
/// back as itself (an explicit `null` is the field left out). What a consumer of the
/// protocol, the platform's backend among them, relies on.
pub fn validate_with_official_types_keeping_extras(kind: &str, values: &[Value]) {
    validate(kind, values, "kept");
}

fn validate(kind: &str, values: &[Value], extras: &str) {
    assert!(!values.is_empty(), "nothing to validate");
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("values.jsonl");
    let lines: Vec<String> = values.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let python = crate::langgraph::venv().join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test",
        python.display()
    );
    let output = std::process::Command::new(python)
        .args(["-c", VALIDATE, kind])
        .arg(&file)
        .arg(extras)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the official AG-UI types refused a value:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs the stock AG-UI client (`HttpAgent` from `@ag-ui/client`, pinned in
/// `package.json` and installed into `node_modules` by `./scripts/test`) against the
/// runner at `url` with the serve token: `args` are the mode and its arguments
/// (`tests/agui-client/client.mjs` says which). Returns what it printed; a stream its
/// verifier rejects fails here, with its message.
pub async fn stock_client(url: &str, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/agui-client/client.mjs");
    let output = tokio::time::timeout(
        WAIT,
        Command::new("node")
            .arg(script)
            .arg(url)
            .arg(SERVE_TOKEN)
            .args(args)
            .env("SUPPRESS_TRANSFORMATION_WARNINGS", "true")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the stock client ends in time")
    .unwrap();
    assert!(
        output.status.success(),
        "the stock AG-UI client failed ({args:?}):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "the stock client printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The event types the stock client saw, in order, from what [`stock_client`] printed.
pub fn stock_event_types(seen: &Value) -> Vec<String> {
    seen["events"]
        .as_array()
        .expect("the stock client lists the events it saw")
        .iter()
        .filter_map(|e| e.as_str().map(str::to_owned))
        .collect()
}
