//! Whole sessions of the real binary against a real `langgraph dev` (from the venv that
//! `./scripts/test` installs) serving the project's test graphs, and the local backend:
//! each test asserts what the backend persisted and the final status.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

mod driver;
mod hostile;
mod serve;
mod tracing;

use std::path::PathBuf;

use ambient_adapter_langgraph::{LangGraphClient, RunStatus, THREAD_ANNOTATION};
use ambient_local_backend::SessionSeed;
use ambient_protocol::SessionMessage;
use ambient_test_support::{
    FaultProxy,
    harness::{Backend, Finished, PROJECT, SESSION, TOKEN, transcript, until},
    langgraph::{LangGraphDev, venv},
};
use serde_json::{Value, json};

/// Where the workflow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// On a real `langgraph dev`.
    Server,
    /// In the pod: the runner's Python driver, with the graphs in the workspace.
    Driver,
}

/// Each scenario runs twice: on a server and in the pod, asserting the same frames.
macro_rules! both_ways {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn on_a_langgraph_server() {
                super::$scenario(super::Mode::Server).await;
            }

            #[tokio::test]
            async fn in_the_pod() {
                super::$scenario(super::Mode::Driver).await;
            }
        }
    )*};
}

both_ways!(
    a_chat_reply_streams_as_partials_then_a_text_and_the_session_completes,
    tool_calls_and_tool_messages_become_tool_frames,
    node_updates_custom_events_and_subgraphs_are_logged_with_the_configured_context,
    a_failing_node_fails_the_session_with_the_graphs_error,
    a_question_waits_for_the_user_and_the_answer_resumes_the_run,
    several_questions_are_answered_one_by_one_then_resumed_together,
    several_questions_are_answered_at_once_by_their_shown_ids,
    a_graph_without_messages_answers_with_its_output_in_the_conversation_and_the_status,
    a_graph_whose_input_cannot_take_the_prompt_fails_naming_its_fields,
    an_interrupt_cancels_the_run_and_the_session_goes_on,
    a_continuation_answers_the_question_its_parent_session_left_on_the_thread,
);

fn test_graphs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/ambient-adapter-langgraph/tests/server")
}

/// A test graph server (or the graphs in the workspace) and a local backend for one
/// session.
struct Env {
    server: Option<LangGraphDev>,
    env: Backend,
}

async fn start(mode: Mode) -> Env {
    start_with(mode, [SessionSeed::new(PROJECT, SESSION)]).await
}

async fn start_with(mode: Mode, seeds: impl IntoIterator<Item = SessionSeed>) -> Env {
    let backend = Backend::start_with(env!("CARGO_BIN_EXE_langgraph-runner"), seeds);
    match mode {
        Mode::Server => {
            let graphs = test_graphs();
            let (server, env) = tokio::join!(LangGraphDev::start(&graphs), backend);
            Env {
                server: Some(server),
                env,
            }
        }
        Mode::Driver => {
            let env = backend.await;
            for file in ["langgraph.json", "graphs.py"] {
                std::fs::copy(test_graphs().join(file), env.workspace.path().join(file)).unwrap();
            }
            Env { server: None, env }
        }
    }
}

impl Env {
    /// The runner for `graph` on the test server or in the pod, with `extra` settings.
    fn runner(&self, graph: &str, extra: &[(&str, &str)]) -> tokio::process::Command {
        match &self.server {
            Some(server) => self.runner_on(server.url(), graph, extra),
            None => {
                let python = venv().join("bin/python");
                let mut settings = vec![
                    ("WORKFLOW_ID", graph),
                    ("LANGGRAPH_PYTHON", python.to_str().unwrap()),
                ];
                settings.extend_from_slice(extra);
                let mut command = self.env.runner(&settings);
                // The Python driver needs a PATH to start; nothing else of this process.
                command.env("PATH", "/usr/local/bin:/usr/bin:/bin");
                command
            }
        }
    }

    fn server_url(&self) -> &str {
        self.server.as_ref().map(LangGraphDev::url).unwrap()
    }

    fn runner_on(&self, url: &str, graph: &str, extra: &[(&str, &str)]) -> tokio::process::Command {
        let mut settings = vec![("LANGGRAPH_URL", url), ("WORKFLOW_ID", graph)];
        settings.extend_from_slice(extra);
        self.env.runner(&settings)
    }

    async fn run(&self, graph: &str, extra: &[(&str, &str)]) -> Finished {
        let child = self.runner(graph, extra).spawn().unwrap();
        self.env.finish(child).await
    }

    async fn transcript(&self) -> Vec<String> {
        transcript(&self.env.backend).await
    }

    fn status(&self) -> serde_json::Map<String, Value> {
        self.env.backend.status(PROJECT, SESSION).unwrap()
    }

    fn thread(&self) -> String {
        let session = self.env.backend.session(PROJECT, SESSION).unwrap();
        session.metadata.annotations[THREAD_ANNOTATION].clone()
    }

    /// The streamed pieces of text the backend persisted, joined.
    async fn streamed_text(&self) -> String {
        self.env
            .persisted()
            .await
            .iter()
            .filter_map(|m| m["payload"]["partial"]["data"].as_str().map(str::to_owned))
            .collect()
    }
}

fn is(kind: &'static str) -> impl Fn(&SessionMessage) -> bool {
    move |m| m.kind == kind
}

fn logs_with(text: &'static str) -> impl Fn(&SessionMessage) -> bool {
    move |m| m.kind == "system.message" && m.payload.to_string().contains(text)
}

async fn a_chat_reply_streams_as_partials_then_a_text_and_the_session_completes(mode: Mode) {
    let env = start(mode).await;
    let finished = env.run("chat", &[("PROMPT", "hello")]).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let reply = "You said hello, streamed word by word.";
    assert_eq!(
        env.transcript().await,
        [
            "· session.started",
            "you: hello",
            &format!("agent: {reply}"),
            "result: success, 1 turns",
            "· session.completed",
        ]
    );
    assert_eq!(env.streamed_text().await, reply);
    let status = env.status();
    assert_eq!(status["phase"], json!("Completed"));
    assert_eq!(status["result"], json!(reply));
    // The framework's session is the thread, kept for a continuation.
    assert_eq!(status["session_id"], json!(env.thread()));
}

async fn tool_calls_and_tool_messages_become_tool_frames(mode: Mode) {
    let env = start(mode).await;
    let finished = env.run("tools", &[("PROMPT", "Paris")]).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_eq!(
        env.transcript().await[1..],
        [
            "you: Paris",
            r#"  ⚙ weather {"city":"Paris"}"#,
            "  ↳ sunny in Paris",
            "agent: The weather tool says: sunny in Paris.",
            "result: success, 1 turns",
            "· session.completed",
        ]
    );
    let persisted = env.env.persisted().await;
    let tool_use = persisted
        .iter()
        .find(|m| m["payload"]["tool"] == json!("weather"))
        .unwrap();
    let tool_result = persisted
        .iter()
        .find(|m| m["payload"]["tool_result"]["tool_use_id"].is_string())
        .unwrap();
    assert_eq!(tool_use["payload"]["id"], json!("call_weather_1"));
    assert_eq!(
        tool_use["payload"]["id"],
        tool_result["payload"]["tool_result"]["tool_use_id"]
    );
}

async fn node_updates_custom_events_and_subgraphs_are_logged_with_the_configured_context(
    mode: Mode,
) {
    let env = start(mode).await;
    let config = r#"{"prompt_field": "request", "context": {"owner": "ada"}}"#;
    let finished = env
        .run(
            "linear",
            &[("PROMPT", "report"), ("WORKFLOW_CONFIG", config)],
        )
        .await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    for step in ["step1", "step2", "step3"] {
        let line = format!(r#"· {step}: {{"items":["{step} of report for ada"]}}"#);
        assert!(lines.contains(&line), "{line} missing from {lines:#?}");
    }

    let env = start(mode).await;
    let finished = env.run("custom", &[("PROMPT", "go")]).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    let progress: Vec<&String> = lines.iter().filter(|l| l.contains("progress")).collect();
    assert_eq!(
        progress,
        [
            r#"· {"of":3,"progress":1}"#,
            r#"· {"of":3,"progress":2}"#,
            r#"· {"of":3,"progress":3}"#,
            r#"· progress: {"items":["done"]}"#,
        ],
        "{lines:#?}"
    );

    let env = start(mode).await;
    let finished = env.run("parent", &[("PROMPT", "go")]).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    // What the subgraph does is relayed too: its custom event and its node's update.
    for line in [
        r#"· {"inner":"working"}"#,
        r#"· inner_work: {"items":["inner done"]}"#,
    ] {
        assert!(
            lines.contains(&String::from(line)),
            "{line} missing from {lines:#?}"
        );
    }
}

async fn a_failing_node_fails_the_session_with_the_graphs_error(mode: Mode) {
    let env = start(mode).await;
    let finished = env.run("failing", &[("PROMPT", "go")]).await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let reason = "ValueError: boom: deliberate failure in node 'boom'";
    let lines = env.transcript().await;
    assert!(
        lines.contains(&format!("· graph error: {reason}")),
        "{lines:#?}"
    );
    assert!(lines.contains(&String::from("result: error_during_execution, 1 turns")));
    let status = env.status();
    assert_eq!(status["phase"], json!("Failed"));
    assert_eq!(status["message"], json!(reason));
    assert_eq!(status["is_error"], json!(true));
}

async fn a_question_waits_for_the_user_and_the_answer_resumes_the_run(mode: Mode) {
    let env = start(mode).await;
    let mut watch = env.env.backend.watch(SESSION);
    let config = r#"{"prompt_field": "request"}"#;
    let child = env
        .runner(
            "hitl",
            &[
                ("PROMPT", "deploy v2"),
                ("INTERACTIVE", "true"),
                ("WORKFLOW_CONFIG", config),
            ],
        )
        .spawn()
        .unwrap();
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"content": "yes, ship it"})).await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_eq!(
        env.transcript().await[1..],
        [
            "you: deploy v2",
            r#"· prepare: {"note":"prepared deploy v2"}"#,
            "agent: Approve this request?\n{\"request\":\"deploy v2\"}",
            "result: awaiting_input, 1 turns",
            "(waiting for you)",
            "you: yes, ship it",
            r#"· ask_human: {"approved":"yes, ship it"}"#,
            // A graph without messages answers with its state.
            "agent: {\n  \"approved\": \"yes, ship it\",\n  \"note\": \"prepared deploy v2\",\n  \"request\": \"deploy v2\"\n}",
            "result: success, 2 turns",
            "(waiting for you)",
            "· session.completed",
        ]
    );
    assert_eq!(env.status()["phase"], json!("Completed"));
}

async fn several_questions_are_answered_one_by_one_then_resumed_together(mode: Mode) {
    let env = start(mode).await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner("multi", &[("PROMPT", "pair"), ("INTERACTIVE", "true")])
        .spawn()
        .unwrap();
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"content": "first answer"})).await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"content": "{\"n\": 2}"})).await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    let questions: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("agent: Value for"))
        .collect();
    // Both questions at once, then the second one again after the first answer.
    assert_eq!(questions.len(), 3, "{lines:#?}");
    let x = lines.iter().find(|l| l.starts_with("· ask_x")).unwrap();
    let y = lines.iter().find(|l| l.starts_with("· ask_y")).unwrap();
    // In order of the questions as the server listed them; either may be first.
    let answers = [x.as_str(), y.as_str()];
    assert!(
        answers.contains(&r#"· ask_x: {"x":"first answer"}"#)
            || answers.contains(&r#"· ask_y: {"y":"first answer"}"#),
        "{lines:#?}"
    );
    assert!(
        answers.contains(&r#"· ask_x: {"x":{"n":2}}"#)
            || answers.contains(&r#"· ask_y: {"y":{"n":2}}"#),
        "{lines:#?}"
    );
}

async fn an_interrupt_cancels_the_run_and_the_session_goes_on(mode: Mode) {
    let env = start(mode).await;
    let mut watch = env.env.backend.watch(SESSION);
    let config = r#"{"context": {"ticks": 600, "delay": 0.05}}"#;
    let child = env
        .runner(
            "slow",
            &[
                ("PROMPT", "tick"),
                ("INTERACTIVE", "true"),
                ("WORKFLOW_CONFIG", config),
            ],
        )
        .spawn()
        .unwrap();
    until(&mut watch, logs_with(r#"{\"tick\":2}"#)).await;
    env.env.post(json!({"type": "interrupt"})).await;
    until(&mut watch, is("agent.waiting")).await;
    // The session is still there: a new message runs again.
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    assert!(
        lines.contains(&String::from("· run interrupted")),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&String::from("result: interrupted, 1 turns")),
        "{lines:#?}"
    );
    let ticks = lines.iter().filter(|l| l.contains("tick")).count();
    assert!(ticks < 600, "the run went on to the end");
    if mode == Mode::Driver {
        return;
    }
    // The server agrees: the run was cancelled, not finished.
    ambient_test_support::crypto();
    let client = LangGraphClient::new(env.server_url(), None).unwrap();
    let thread = env.thread();
    let runs: Vec<Value> =
        reqwest_get(&format!("{}/threads/{thread}/runs", env.server_url())).await;
    let run = runs[0]["run_id"].as_str().unwrap();
    assert_eq!(
        client.run_status(&thread, run).await.unwrap(),
        RunStatus::Interrupted
    );
}

#[tokio::test]
async fn a_dropped_stream_is_rejoined_without_losing_or_repeating_an_event() {
    let env = start(Mode::Server).await;
    let upstream = env
        .server_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let mut watch = env.env.backend.watch(SESSION);
    let config = r#"{"context": {"ticks": 12, "delay": 0.1}}"#;
    let child = env
        .runner_on(
            &proxy.route(env.server_url()),
            "slow",
            &[("PROMPT", "tick"), ("WORKFLOW_CONFIG", config)],
        )
        .spawn()
        .unwrap();
    for tick in [r#"{\"tick\":3}"#, r#"{\"tick\":6}"#, r#"{\"tick\":9}"#] {
        until(&mut watch, logs_with(tick)).await;
        proxy.cut();
    }
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    let ticks: Vec<String> = lines
        .iter()
        .filter(|l| l.contains("\"tick\""))
        .cloned()
        .collect();
    let expected: Vec<String> = (1..=12).map(|i| format!(r#"· {{"tick":{i}}}"#)).collect();
    assert_eq!(ticks, expected);
    assert!(
        finished.stderr.contains("rejoined"),
        "the stream was never rejoined:\n{}",
        finished.stderr
    );
    assert_eq!(env.status()["phase"], json!("Completed"));
}

async fn a_graph_without_messages_answers_with_its_output_in_the_conversation_and_the_status(
    mode: Mode,
) {
    let env = start(mode).await;
    // No prompt_field: the graph's input has one text field, `request`.
    let finished = env.run("planner", &[("PROMPT", "the report")]).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let answer = "{\n  \"plan\": \"1. read the report 2. answer it\",\n  \"result\": \"done: the report\"\n}";
    let lines = env.transcript().await;
    assert!(lines.contains(&format!("agent: {answer}")), "{lines:#?}");
    let status = env.status();
    assert_eq!(status["phase"], json!("Completed"));
    assert_eq!(status["result"], json!(answer));
}

async fn a_graph_whose_input_cannot_take_the_prompt_fails_naming_its_fields(mode: Mode) {
    let env = start(mode).await;
    let finished = env.run("sums", &[("PROMPT", "add them")]).await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let status = env.status();
    assert_eq!(status["phase"], json!("Failed"));
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains(
            "the graph `sums` takes no `messages` and no text field in its input (a, b, total)"
        ) && message.contains("prompt_field"),
        "{message}"
    );
}

async fn several_questions_are_answered_at_once_by_their_shown_ids(mode: Mode) {
    let env = start(mode).await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner("multi", &[("PROMPT", "pair"), ("INTERACTIVE", "true")])
        .spawn()
        .unwrap();
    until(&mut watch, is("agent.waiting")).await;
    // Each question names its id; one object keyed by them answers both.
    let lines = env.transcript().await;
    let mut answers = serde_json::Map::new();
    for line in lines.iter().filter(|l| l.starts_with("agent: Value for")) {
        let (_, id) = line
            .split_once("(interrupt id: ")
            .unwrap_or_else(|| panic!("no id shown: {lines:#?}"));
        let answer = if line.contains("Value for x?") {
            "ex"
        } else {
            "why"
        };
        answers.insert(id.trim_end_matches(')').to_owned(), json!(answer));
    }
    assert_eq!(answers.len(), 2, "{lines:#?}");
    env.env
        .post(json!({"content": Value::Object(answers).to_string()}))
        .await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    for expected in [r#"· ask_x: {"x":"ex"}"#, r#"· ask_y: {"y":"why"}"#] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected}: {lines:#?}"
        );
    }
}

async fn a_continuation_answers_the_question_its_parent_session_left_on_the_thread(mode: Mode) {
    let parent = "agentic-session-parent";
    let env = start_with(mode, [SessionSeed::new(PROJECT, parent)]).await;
    // The first session runs in batch mode and ends at the question.
    let config = r#"{"prompt_field": "request"}"#;
    let child = env
        .runner(
            "hitl",
            &[("PROMPT", "deploy v3"), ("WORKFLOW_CONFIG", config)],
        )
        .env("SESSION_ID", parent)
        .env("WEBSOCKET_URL", env.env.backend.ws_url(PROJECT, parent))
        .spawn()
        .unwrap();
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let kept = env
        .env
        .backend
        .session(PROJECT, parent)
        .unwrap()
        .metadata
        .annotations;
    let thread = kept[THREAD_ANNOTATION].clone();
    assert_eq!(
        env.env.backend.status(PROJECT, parent).unwrap()["subtype"],
        json!("awaiting_input")
    );

    // The continuation, a new process for a new session on the same backend.
    let backend = Backend::start_with(
        env!("CARGO_BIN_EXE_langgraph-runner"),
        [
            SessionSeed::new(PROJECT, parent).annotation(THREAD_ANNOTATION, thread.clone()),
            SessionSeed::new(PROJECT, SESSION),
        ],
    )
    .await;
    let first_workspace = env.env.workspace.path().to_owned();
    let env = Env {
        server: env.server,
        env: backend,
    };
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(
            "hitl",
            &[
                ("INTERACTIVE", "true"),
                ("PARENT_SESSION_ID", parent),
                ("WORKFLOW_CONFIG", config),
            ],
        )
        // The same volume: the pod's checkpoints are kept in the workspace root.
        .env("WORKSPACE_PATH", &first_workspace)
        .spawn()
        .unwrap();
    // The question the thread stopped at is asked again, and waits.
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"content": "approved"})).await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    let asked = lines
        .iter()
        .position(|l| l == "agent: Approve this request?\n{\"request\":\"deploy v3\"}")
        .unwrap_or_else(|| panic!("the question was not asked again: {lines:#?}"));
    assert_eq!(lines[asked + 1], "(waiting for you)", "{lines:#?}");
    assert_eq!(lines[asked + 2], "you: approved", "{lines:#?}");
    assert!(
        lines.contains(&String::from(r#"· ask_human: {"approved":"approved"}"#)),
        "{lines:#?}"
    );
    assert_eq!(env.thread(), thread, "the continuation used another thread");
    if mode == Mode::Driver {
        return;
    }
    let state: Value = reqwest_get(&format!("{}/threads/{thread}/state", env.server_url())).await;
    assert_eq!(state["values"]["request"], json!("deploy v3"));
    assert_eq!(state["values"]["approved"], json!("approved"));
}

#[tokio::test]
async fn bad_settings_and_an_unknown_graph_are_named_and_the_key_never_leaks() {
    let env = start(Mode::Server).await;
    for (settings, named) in [
        (vec![("WORKFLOW_ID", " ")], "WORKFLOW_ID"),
        (
            vec![("WORKFLOW_CONFIG", r#"{"stream_mode": ["everything"]}"#)],
            "WORKFLOW_CONFIG",
        ),
        (
            vec![("WORKFLOW_CONFIG", r#"{"urll": "x"}"#)],
            "unknown field `urll`",
        ),
        (
            vec![("LANGGRAPH_URL", "ftp://example.com")],
            "LANGGRAPH_URL",
        ),
    ] {
        let finished = env.run("chat", &settings).await;
        assert_eq!(finished.code, Some(2), "{settings:?}:\n{}", finished.stderr);
        assert!(
            finished.stderr.contains(named),
            "{settings:?}:\n{}",
            finished.stderr
        );
    }

    let key = "lsv2_sk_planted_key_0123456789abcdef";
    let finished = env
        .run(
            "no-such-graph",
            &[
                ("PROMPT", "go"),
                ("LANGGRAPH_API_KEY", key),
                ("RUST_LOG", "trace"),
            ],
        )
        .await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let message = env.status()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("no assistant or graph `no-such-graph`") && message.contains("hitl"),
        "{message}"
    );
    let persisted = serde_json::to_string(&env.env.persisted().await).unwrap();
    for (place, text) in [
        ("stderr", &finished.stderr),
        ("stdout", &finished.stdout),
        ("frames", &persisted),
        ("status", &message),
    ] {
        assert!(!text.contains(key), "the API key reached the {place}");
        assert!(!text.contains(TOKEN), "the bot token reached the {place}");
    }
}

#[tokio::test]
async fn an_unreachable_server_fails_the_session_naming_it() {
    let env = start(Mode::Server).await;
    // A port that was free a moment ago, so that nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let child = env
        .runner_on(&url, "chat", &[("PROMPT", "go")])
        .spawn()
        .unwrap();
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let message = env.status()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&url) && message.contains("Connection refused"),
        "{message}"
    );
}

/// A GET of the test server's JSON, around the code under test.
async fn reqwest_get<T: serde::de::DeserializeOwned>(url: &str) -> T {
    ambient_test_support::crypto();
    let response = reqwest::get(url).await.unwrap();
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

#[test]
fn every_option_of_the_help_names_its_environment_variable() {
    ambient_test_support::harness::help_names_every_variable(env!(
        "CARGO_BIN_EXE_langgraph-runner"
    ));
}

#[tokio::test]
async fn a_continuation_runs_a_new_prompt_never_its_parents_and_never_does_nothing() {
    use ambient_test_support::continuation::{CASES, seeds};
    for case in CASES {
        let env = start_with(Mode::Driver, seeds()).await;
        let (finished, lines) = case
            .follow(&env.env, || {
                env.runner("chat", &case.vars()).spawn().unwrap()
            })
            .await;
        case.check(&finished, &lines);
    }
}
