//! The platform around a runner that serves AG-UI, as the platform's own code drives its
//! runner (`docs/platform-contract.md`): the operator's environment, the backend's calls
//! to the runner (the session-token header, the run proxy's retries and headers, the
//! between-run listener), and the backend route the runner posts its first prompt to.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use std::{path::Path, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::{Value, json};
use tokio::{
    process::Command,
    sync::{Mutex, mpsc},
};

use crate::{
    agui::{SERVE_TOKEN, serve_command},
    harness::WAIT,
};

/// The session the operator starts.
pub const SESSION: &str = "session-contract";
/// Its project (namespace).
pub const PROJECT: &str = "project-contract";
/// The bot token the operator gives the runner, for its calls to the backend.
pub const BOT_TOKEN: &str = "bot-token-contract-5f0c2e9a";

/// What the runner posted to the backend.
#[derive(Debug, Clone)]
pub struct Posted {
    /// The request's path.
    pub path: String,
    /// Its `Authorization` header.
    pub authorization: Option<String>,
    /// Its body.
    pub body: Value,
}

/// The backend's API as the runner calls it: `POST
/// /api/projects/{project}/agentic-sessions/{session}/agui/run`, answered `503` the first
/// few times (the backend not ready yet), then `200 {runId, threadId}`.
#[derive(Debug)]
pub struct Backend {
    /// `http://127.0.0.1:<port>/api`, for `BACKEND_API_URL`.
    pub api_url: String,
    posts: mpsc::UnboundedReceiver<Posted>,
}

#[derive(Clone)]
struct Answering {
    refusals_left: Arc<Mutex<usize>>,
    posts: mpsc::UnboundedSender<Posted>,
}

async fn agui_run(
    State(answering): State<Answering>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _recorded = answering.posts.send(Posted {
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
    });
    let mut refusals = answering.refusals_left.lock().await;
    if *refusals > 0 {
        *refusals -= 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "backend starting"})),
        );
    }
    (
        StatusCode::OK,
        axum::Json(json!({"runId": body["runId"], "threadId": body["threadId"]})),
    )
}

impl Backend {
    /// A backend on a loopback port that refuses the first `refusals` posts with `503`.
    pub async fn start(refusals: usize) -> Self {
        let (sender, posts) = mpsc::unbounded_channel();
        let answering = Answering {
            refusals_left: Arc::new(Mutex::new(refusals)),
            posts: sender,
        };
        let router = Router::new()
            .route(
                "/api/projects/{project}/agentic-sessions/{session}/agui/run",
                post(agui_run),
            )
            .with_state(answering);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            api_url: format!("http://{address}/api"),
            posts,
        }
    }

    /// A post the runner made and that was not read yet, if there is one.
    pub fn try_next_post(&mut self) -> Option<Posted> {
        self.posts.try_recv().ok()
    }

    /// The next post the runner made.
    pub async fn next_post(&mut self) -> Posted {
        tokio::time::timeout(WAIT, self.posts.recv())
            .await
            .expect("the runner posts to the backend in time")
            .unwrap()
    }
}

/// A port free now, for an operator that names the runner's port before it starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `binary` with the environment the platform's operator gives its runner's pod: the
/// port (`AGUI_PORT`, on loopback with `AGUI_HOST`), the session token, the session and
/// project, the backend's address and bot token, `USE_AGUI=true`, and `INITIAL_PROMPT`;
/// no `WEBSOCKET_URL`, no `AGUI_LISTEN`.
pub fn operator_command(
    binary: impl AsRef<Path>,
    workspace: &Path,
    port: u16,
    backend: &Backend,
    initial_prompt: Option<&str>,
) -> Command {
    let mut command = serve_command(binary, workspace);
    command
        .env_remove("AGUI_LISTEN")
        .env("AGUI_PORT", port.to_string())
        .env("AGUI_HOST", "127.0.0.1")
        .env("USE_AGUI", "true")
        .env("SESSION_ID", SESSION)
        .env("AGENTIC_SESSION_NAME", SESSION)
        .env("AGENTIC_SESSION_NAMESPACE", PROJECT)
        .env("PROJECT_NAME", PROJECT)
        .env("BACKEND_API_URL", &backend.api_url)
        .env("BOT_TOKEN", BOT_TOKEN)
        .env("IS_RESUME", "false")
        .env("INITIAL_PROMPT_DELAY_SECONDS", "0");
    if let Some(prompt) = initial_prompt {
        command.env("INITIAL_PROMPT", prompt);
    }
    command
}

/// The backend's calls to a runner at `url`: every one with `X-Ambient-Session-Token`
/// and never `Authorization`, as its transport adds them.
#[derive(Debug, Clone)]
pub struct BackendCalls {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    client: reqwest::Client,
}

impl BackendCalls {
    /// Calls to the runner at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        crate::crypto();
        Self {
            url: url.into(),
            client: reqwest::Client::new(),
        }
    }

    /// A request with the session token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .header("x-ambient-session-token", SERVE_TOKEN)
    }

    /// `POST /` as the run proxy sends it (its headers, the user's identity, the caller's
    /// token), tried again on a refused connection as the proxy tries while the pod
    /// starts: up to 15 times, 0.5 s growing by half each time up to 5 s.
    pub async fn run(&self, body: &Value) -> reqwest::Response {
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=15 {
            let sent = self
                .request(reqwest::Method::POST, "/")
                .header("accept", "text/event-stream")
                .header("x-current-user-id", "user-1")
                .header("x-current-user-name", "User One")
                .header("x-caller-token", "Bearer caller-token-of-the-user")
                .json(body)
                .send()
                .await;
            match sent {
                Ok(response) => return response,
                Err(error) if error.is_connect() && attempt < 15 => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 3 / 2).min(Duration::from_secs(5));
                }
                Err(error) => panic!("the run proxy could not reach the runner: {error}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// `GET /events/{thread_id}`, the between-run listener.
    pub async fn listen(&self, thread_id: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, &format!("/events/{thread_id}"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap()
    }

    /// `POST /interrupt` with `{}`, as the backend sends it.
    pub async fn interrupt(&self) -> reqwest::Response {
        self.request(reqwest::Method::POST, "/interrupt")
            .json(&json!({}))
            .send()
            .await
            .unwrap()
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    /// `GET path`, its answer read as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }
}

/// Reads SSE lines from `response` the way the backend's relay reads them: every line
/// that starts with `data: ` is one event; comments (heartbeats) are counted apart. Reads
/// until the stream ends.
pub async fn relay_lines(response: reqwest::Response) -> (Vec<Value>, usize) {
    let mut events = Vec::new();
    let comments = relay_each(response, |event| events.push(event)).await;
    (events, comments)
}

/// [`relay_lines`], handing each event over as it comes: the receiver ends with the
/// stream.
pub fn relay_as_it_comes(response: reqwest::Response) -> mpsc::UnboundedReceiver<Value> {
    let (sender, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        relay_each(response, |event| {
            let _still_read = sender.send(event);
        })
        .await
    });
    events
}

async fn relay_each(mut response: reqwest::Response, mut each: impl FnMut(Value)) -> usize {
    let mut comments = 0;
    let mut pending = String::new();
    loop {
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .expect("the stream moves in time")
            .unwrap();
        let Some(chunk) = chunk else {
            return comments;
        };
        pending.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let line = line.trim_end_matches('\n');
            if let Some(data) = line.strip_prefix("data: ") {
                each(serde_json::from_str(data).unwrap());
            } else if line.starts_with(':') {
                comments += 1;
            }
        }
    }
}

/// What a runner is asked in [`drive_contract`], in its framework's terms.
#[derive(Debug, Clone)]
pub struct ContractPrompts {
    /// `INITIAL_PROMPT`.
    pub initial: String,
    /// Three messages, one per run, each answered in a run that finishes.
    pub messages: [String; 3],
    /// A message whose run is long enough to be interrupted, if the runner has one.
    pub long: Option<LongMessage>,
}

/// A message whose answer is long enough to interrupt.
#[derive(Debug, Clone)]
pub struct LongMessage {
    /// The message.
    pub text: String,
    /// The bytes of its whole answer: an interrupted run says less.
    pub whole_answer_bytes: usize,
}

/// The platform's contract, driven the way its operator, backend and UI drive a runner,
/// on `command` (from [`operator_command`] with `backend` and `prompts.initial`):
///
/// - the first prompt arrives at the backend, with the bot token, hidden, and runs when
///   the backend posts it back;
/// - the between-run listener stays open across three runs, each posted with the session
///   token (the first in snake case, without message ids), each with a
///   `MESSAGES_SNAPSHOT` before its `RUN_FINISHED`, none of their events on the listener;
/// - capabilities in the platform's shape;
/// - with a long message: a POST during its run answered 200 and run after it, and the
///   interrupt, sent once the agent is answering, answered 200 and ending the run early
///   with its snapshot.
///
/// The runner is found where the backend finds it, at the operator's `AGUI_PORT`, with no
/// announcement awaited. Returns the runner, still serving, and every run's events as
/// the backend relayed them (the interrupted run last), for checks of the runner's own.
pub async fn drive_contract(
    command: Command,
    workspace: &Path,
    backend: &mut Backend,
    prompts: &ContractPrompts,
) -> (crate::agui::Served, Vec<Vec<Value>>) {
    let served = crate::agui::Served::start_on_operators_port(command, workspace).await;
    let calls = BackendCalls::new(&served.url);

    let posted = backend.next_post().await;
    assert_eq!(
        posted.authorization.as_deref(),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    assert_eq!(
        posted.body["messages"][0]["content"],
        json!(prompts.initial)
    );
    assert_eq!(posted.body["messages"][0]["metadata"]["hidden"], true);
    let mut runs = Vec::new();
    let (initial, _) = relay_lines(calls.run(&posted.body).await).await;
    assert_run_for_the_backend(&initial);
    runs.push(initial);

    let listener = calls.listen(SESSION).await;
    assert_eq!(listener.status(), 200);
    let listening = tokio::spawn(relay_lines(listener));
    for (number, message) in prompts.messages.iter().enumerate() {
        let body = if number == 0 {
            json!({"thread_id": SESSION, "run_id": "contract-run-0",
                   "messages": [{"role": "user", "content": message}]})
        } else {
            json!({"threadId": SESSION, "runId": format!("contract-run-{number}"),
                   "messages": [{"id": format!("contract-user-{number}"), "role": "user", "content": message}]})
        };
        let (events, _) = relay_lines(calls.run(&body).await).await;
        assert_run_for_the_backend(&events);
        assert_eq!(events[0]["runId"], json!(format!("contract-run-{number}")));
        runs.push(events);
    }
    assert!(
        !listening.is_finished(),
        "the listener closed with nothing said between runs"
    );
    listening.abort();

    let capabilities: Value = calls.get_json("/capabilities").await;
    assert_platform_capabilities(&capabilities);

    if let Some(long) = &prompts.long {
        let running = calls
            .run(&json!({"threadId": SESSION, "runId": "contract-long",
                         "messages": [{"id": "contract-long-user", "role": "user", "content": long.text}]}))
            .await;
        assert_eq!(running.status(), 200);
        // The interrupt goes once the agent is answering, as a user presses stop.
        let (mut long_events, mut running) = until_answering(running).await;
        let waiting = calls
            .run(&json!({"threadId": SESSION, "runId": "contract-after",
                         "messages": [{"id": "contract-after-user", "role": "user", "content": prompts.messages[0]}]}))
            .await;
        assert_eq!(waiting.status(), 200, "a POST during a run is answered 200");
        let interrupted = calls.interrupt().await;
        assert_eq!(interrupted.status(), 200);
        while let Some(event) = running.recv().await {
            long_events.push(event);
        }
        // It ends early, as a run the backend keeps.
        assert_run_for_the_backend(&long_events);
        let said: String = long_events
            .iter()
            .filter(|event| event["type"] == "TEXT_MESSAGE_CONTENT")
            .filter_map(|event| event["delta"].as_str())
            .collect();
        assert!(said.len() < long.whole_answer_bytes, "not cut: {said}");
        let (after, _) = relay_lines(waiting).await;
        assert_run_for_the_backend(&after);
        assert_eq!(after[0]["runId"], "contract-after");
        runs.push(after);
        runs.push(long_events);
    }
    (served, runs)
}

/// Relays a run's events until the agent says something: the events so far, and the
/// rest as they come.
pub async fn until_answering(
    run: reqwest::Response,
) -> (Vec<Value>, mpsc::UnboundedReceiver<Value>) {
    let mut running = relay_as_it_comes(run);
    let mut events = Vec::new();
    while !events
        .iter()
        .any(|event: &Value| event["type"] == "TEXT_MESSAGE_CONTENT")
    {
        let event = tokio::time::timeout(WAIT, running.recv())
            .await
            .expect("the run answers in time")
            .expect("the run answers before it ends");
        events.push(event);
    }
    (events, running)
}

/// A model switch as the UI asks for it, on a Claude runner started with `LLM_MODEL`
/// `claude-sonnet-4-5` against `mock`: switched between runs (the next run asks the API
/// for the new model), unchanged when asked again, refused (`422`) while the agent is
/// answering. Returns the refusal's answer and the run after the switch, for the
/// runner's own checks.
pub async fn check_model_switch(
    calls: &BackendCalls,
    mock: &crate::anthropic::MockAnthropic,
) -> (Value, Vec<Value>) {
    let (status, switched) = post_json(calls, "/model", json!({"model": "claude-opus-4-1"})).await;
    assert_eq!(status, 200, "{switched}");
    assert_eq!(
        switched,
        json!({"message": "Model switched", "model": "claude-opus-4-1", "previousModel": "claude-sonnet-4-5"})
    );
    let (after, _) = relay_lines(
        calls
            .run(&json!({"threadId": SESSION, "runId": "after-the-switch",
                         "messages": [{"id": "u-switch", "role": "user", "content": "after the switch"}]}))
            .await,
    )
    .await;
    assert_run_for_the_backend(&after);
    let asked = mock
        .requests()
        .iter()
        .rev()
        .find(|request| request["messages"].to_string().contains("after the switch"))
        .and_then(|request| request["model"].as_str().map(str::to_owned))
        .expect("the run after the switch reached the API");
    // The CLI maps a retired id to its successor.
    assert!(asked.starts_with("claude-opus-"), "{asked}");
    let (status, unchanged) = post_json(calls, "/model", json!({"model": "claude-opus-4-1"})).await;
    assert_eq!(
        (status, &unchanged["message"]),
        (200, &json!("Model unchanged"))
    );

    let story = calls
        .run(&json!({"threadId": SESSION, "runId": "story-during-switch",
                     "messages": [{"id": "u-story", "role": "user", "content": "MOCK_SLOW story"}]}))
        .await;
    let (_, mut story) = until_answering(story).await;
    let (status, refused) = post_json(calls, "/model", json!({"model": "claude-haiku-4-5"})).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(calls.interrupt().await.status(), 200);
    while story.recv().await.is_some() {}
    (refused, after)
}

/// A run as the backend keeps it: `RUN_STARTED` first, a `MESSAGES_SNAPSHOT` right
/// before `RUN_FINISHED`, every event valid AG-UI in the protocol's order. Fields the
/// protocol does not define are kept, as the official types and the backend keep them.
pub fn assert_run_for_the_backend(events: &[Value]) {
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds.first(), Some(&"RUN_STARTED"), "{events:?}");
    assert_eq!(
        kinds[kinds.len().saturating_sub(2)..],
        ["MESSAGES_SNAPSHOT", "RUN_FINISHED"],
        "{kinds:?}"
    );
    let parsed: Vec<ambient_agui::AguiEvent> = events
        .iter()
        .map(|event| serde_json::from_value(event.clone()).unwrap())
        .collect();
    ambient_agui::check_order(&parsed).unwrap();
    crate::agui::validate_with_official_types_keeping_extras("events", events);
}

/// Capabilities in the shape the platform's backend and UI read, for this session.
pub fn assert_platform_capabilities(capabilities: &Value) {
    for key in [
        "framework",
        "agent_features",
        "platform_features",
        "file_system",
        "mcp",
        "tracing",
        "session_persistence",
        "model",
        "session_id",
    ] {
        assert!(capabilities.get(key).is_some(), "no {key}: {capabilities}");
    }
    assert_eq!(capabilities["session_id"], SESSION);
}

/// The workspace file API as the UI calls it through the backend, with `workspace` the
/// runner's `WORKSPACE_PATH`: writes (plain and base64), a listing, a read, a delete, and
/// the refusals of every way out of the workspace the agent could plant (a symbolic link
/// out, `..`; an absolute path is inside the workspace), each with a JSON body; behind the
/// token. Returns the refusals' bodies, by path, for the runner's own checks.
pub async fn check_file_api(calls: &BackendCalls, workspace: &Path) -> Vec<(String, Value)> {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "outside the workspace").unwrap();
    std::os::unix::fs::symlink(outside.path(), workspace.join("escape")).unwrap();
    let write = |path: &str, content: &str, encoding: Option<&str>| {
        let mut body = json!({"path": path, "content": content});
        if let Some(encoding) = encoding {
            body["encoding"] = json!(encoding);
        }
        calls
            .request(reqwest::Method::POST, "/content/write")
            .json(&body)
            .send()
    };
    assert_eq!(
        write("/docs/plan.md", "# plan", None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        write("docs/logo.bin", "AAEC", Some("base64"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        std::fs::read(workspace.join("docs/logo.bin")).unwrap(),
        [0, 1, 2]
    );
    let listed: Value = calls.get_json("/content/list?path=/docs").await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/docs/logo.bin", "/docs/plan.md"]);
    assert_eq!(listed["items"][1]["isDir"], false);
    let file = calls.get("/content/file?path=docs/plan.md").await;
    assert_eq!(file.headers()["content-type"], "application/octet-stream");
    assert_eq!(file.text().await.unwrap(), "# plan");
    let mut refusals = Vec::new();
    for (path, status) in [
        ("escape/secret", 400),
        ("../escape", 400),
        ("/etc/passwd", 404),
    ] {
        let refused = calls.get(&format!("/content/file?path={path}")).await;
        assert_eq!(refused.status(), status, "{path}");
        refusals.push((path.to_owned(), refused.json().await.unwrap()));
    }
    assert_eq!(
        write("escape/planted", "x", None).await.unwrap().status(),
        400
    );
    assert!(!outside.path().join("planted").exists());
    let deleted = calls
        .request(reqwest::Method::DELETE, "/content/delete")
        .json(&json!({"path": "docs/plan.md"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(!workspace.join("docs/plan.md").exists());
    let anonymous = reqwest::get(format!("{}/content/file?path=docs/logo.bin", calls.url))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    refusals
}

/// `POST path` with the JSON `body`: the status and the JSON answer.
pub async fn post_json(calls: &BackendCalls, path: &str, body: Value) -> (u16, Value) {
    let response = calls
        .request(reqwest::Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The repository and workflow routes as the UI calls them, against local git
/// repositories (`file://` URLs, made under `origins`), with `workspace` the runner's
/// `WORKSPACE_PATH`: a repository added (cloned into `repos/<name>`, where the UI
/// browses it), added again, listed by `/repos/status` and the file API, its git status
/// read, removed; a workflow switched to (checked out in `workflows/<name>`).
pub async fn check_repository_routes(calls: &BackendCalls, workspace: &Path, origins: &Path) {
    let extra = crate::git_repos::bare_repo(origins, "o", "extra");
    let flow = crate::git_repos::bare_repo(origins, "o", "flow");

    let (status, added) =
        post_json(calls, "/repos/add", json!({"url": extra, "branch": "main"})).await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["message"], "Repository added");
    assert_eq!(added["name"], "extra");
    assert_eq!(added["newly_cloned"], true);
    assert!(workspace.join("repos/extra/README.md").exists());
    let (status, again) = post_json(calls, "/repos/add", json!({"url": extra})).await;
    assert_eq!(
        (status, &again["newly_cloned"]),
        (200, &json!(false)),
        "{again}"
    );

    let listed: Value = calls.get_json("/repos/status").await;
    let repos = listed["repos"].as_array().unwrap();
    assert_eq!(repos.len(), 1, "{listed}");
    assert_eq!(repos[0]["name"], "extra");
    assert_eq!(repos[0]["url"], json!(extra));
    assert_eq!(repos[0]["currentActiveBranch"], "main");
    assert!(
        repos[0]["branches"]
            .as_array()
            .unwrap()
            .contains(&json!("main"))
    );
    // The UI's file browser and its remote configuration take `repos/<name>`.
    let files: Value = calls.get_json("/content/list?path=repos/extra").await;
    assert!(
        files["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["path"] == "/repos/extra/README.md"),
        "{files}"
    );
    std::fs::write(workspace.join("repos/extra/new.txt"), "new\n").unwrap();
    let git_status: Value = calls.get_json("/content/git-status?path=repos/extra").await;
    assert_eq!(git_status["initialized"], true, "{git_status}");
    assert_eq!(git_status["branch"], "main", "{git_status}");
    assert_eq!(git_status["hasChanges"], true, "{git_status}");
    let branches: Value = calls
        .get_json("/content/git-list-branches?path=repos/extra")
        .await;
    // The platform's runner lists `origin` too (its `origin/HEAD`, shortened).
    assert!(
        branches["branches"]
            .as_array()
            .unwrap()
            .contains(&json!("main")),
        "{branches}"
    );
    std::fs::remove_file(workspace.join("repos/extra/new.txt")).unwrap();

    let (status, removed) = post_json(calls, "/repos/remove", json!({"name": "extra"})).await;
    assert_eq!(
        (status, &removed["message"]),
        (200, &json!("Repository removed")),
        "{removed}"
    );
    assert!(!workspace.join("repos/extra").exists());

    let (status, switched) = post_json(
        calls,
        "/workflow",
        json!({"gitUrl": flow, "branch": "main"}),
    )
    .await;
    assert_eq!(status, 200, "{switched}");
    assert_eq!(switched["message"], "Workflow updated");
    assert_eq!(switched["gitUrl"], json!(flow));
    assert!(workspace.join("workflows/flow/README.md").exists());
    let (status, _) = post_json(calls, "/repos/add", json!({"branch": "main"})).await;
    assert_eq!(status, 400, "a repository without a url");
}

/// A background task as the UI follows it, on a Claude runner against the mock API: a
/// run that starts a subagent in the background (`MOCK_AGENT_SLOW`) says so with a
/// `task:started` event; `/tasks` lists it running; its transcript is read while it
/// runs; it is stopped, and listed so; stopping it again says it already is; a
/// malformed id is refused. Returns the task's id.
///
/// Where the stop's `task:completed` goes is the runner's own: the platform's runner at
/// `0b59fe7de` puts it in a queue its `/events` does not read.
pub async fn check_background_task(calls: &BackendCalls) -> String {
    let (run, _) = relay_lines(
        calls
            .run(&json!({"threadId": SESSION, "runId": "with-a-task",
                         "messages": [{"id": "u-task", "role": "user", "content": "MOCK_AGENT_SLOW please"}]}))
            .await,
    )
    .await;
    assert_run_for_the_backend(&run);
    let started = run
        .iter()
        .find(|event| event["type"] == "CUSTOM" && event["name"] == "task:started")
        .unwrap_or_else(|| panic!("no task:started in {run:?}"));
    let id = started["value"]["task_id"].as_str().unwrap().to_owned();
    assert!(!id.is_empty());
    assert_eq!(started["value"]["status"], "running");
    assert_eq!(started["value"]["description"], "Delegate a long story");

    let listed = calls.get_json("/tasks").await;
    let task = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["task_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} is not listed: {listed}"));
    assert_eq!(task["status"], "running", "{listed}");

    let output = calls.get(&format!("/tasks/{id}/output")).await;
    assert_eq!(output.status(), 200, "{listed} {:?}", output.text().await);
    let output: Value = output.json().await.unwrap();
    assert_eq!(output["task_id"], id.as_str());
    assert!(
        output["output"]
            .to_string()
            .contains("MOCK_SLOW story for the parent"),
        "{output}"
    );

    let (status, stopped) = post_json(calls, &format!("/tasks/{id}/stop"), json!({})).await;
    assert_eq!(
        (status, &stopped),
        (200, &json!({"message": "stop signal sent"}))
    );
    let listed = calls.get_json("/tasks").await;
    assert!(
        listed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|task| task["task_id"] == id.as_str() && task["status"] == "stopped"),
        "{listed}"
    );
    let (status, again) = post_json(calls, &format!("/tasks/{id}/stop"), json!({})).await;
    assert_eq!(
        (status, &again),
        (200, &json!({"message": "Task already stopped"}))
    );
    assert_eq!(calls.get("/tasks/not.an.id/output").await.status(), 400);
    id
}
