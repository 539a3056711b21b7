//! Whole sessions of the real binary driving the real Claude Code CLI (the pinned version,
//! installed by `./scripts/test` into `node_modules`) against the project's mock of the
//! Anthropic API, with the local backend: each test asserts what the backend persisted
//! and the final status.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

mod fake;
mod manifest;
mod serve;
mod tracing;

use std::path::{Path, PathBuf};

use ambient_adapter_claude::SESSION_ANNOTATION;
use ambient_local_backend::SessionSeed;
use ambient_protocol::SessionMessage;
use ambient_test_support::{
    anthropic::MockAnthropic,
    harness::{Backend, Finished, PROJECT, SESSION, TOKEN, transcript, until},
};
use serde_json::{Value, json};

use ambient_test_support::anthropic::API_KEY;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The CLI the test command installs, and the version `package.json` pins.
fn pinned_cli() -> (PathBuf, String) {
    let binary = root().join("node_modules/@anthropic-ai/claude-code-linux-x64/claude");
    assert!(
        binary.exists(),
        "{} is missing: run ./scripts/test, which installs the pinned Claude Code CLI",
        binary.display()
    );
    let package: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("package.json")).unwrap())
            .unwrap();
    let version = package["dependencies"]["@anthropic-ai/claude-code"]
        .as_str()
        .unwrap()
        .to_owned();
    (binary, version)
}

/// The mock API, a local backend, and the CLI's home.
struct Env {
    mock: MockAnthropic,
    env: Backend,
    home: tempfile::TempDir,
}

async fn start_with(seeds: impl IntoIterator<Item = SessionSeed>) -> Env {
    Env {
        mock: MockAnthropic::start().await,
        env: Backend::start_with(env!("CARGO_BIN_EXE_claude-runner"), seeds).await,
        home: tempfile::tempdir().unwrap(),
    }
}

async fn start() -> Env {
    start_with([SessionSeed::new(PROJECT, SESSION)]).await
}

impl Env {
    fn runner(&self, extra: &[(&str, &str)]) -> tokio::process::Command {
        let (binary, version) = pinned_cli();
        let mut command = self.env.runner(extra);
        command
            .env("CLAUDE_BIN", binary)
            .env("CLAUDE_CLI_VERSION", version)
            .envs(self.mock.cli_environment(self.home.path()));
        for (key, value) in extra {
            command.env(key, value);
        }
        command
    }

    async fn run(&self, extra: &[(&str, &str)]) -> Finished {
        let child = self.runner(extra).spawn().unwrap();
        self.env.finish(child).await
    }

    async fn transcript(&self) -> Vec<String> {
        transcript(&self.env.backend).await
    }

    fn status(&self) -> serde_json::Map<String, Value> {
        self.env.backend.status(PROJECT, SESSION).unwrap()
    }

    fn cli_session(&self, session: &str) -> String {
        let kept = self.env.backend.session(PROJECT, session).unwrap();
        kept.metadata.annotations[SESSION_ANNOTATION].clone()
    }
}

fn is(kind: &'static str) -> impl Fn(&SessionMessage) -> bool {
    move |m| m.kind == kind
}

/// The transcript without the cost, which the CLI computes from its own price table.
fn without_cost(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|line| match line.split_once(", $") {
            Some((head, _)) if line.starts_with("result:") => head.to_owned(),
            _ => line,
        })
        .collect()
}

#[tokio::test]
async fn a_one_shot_prompt_streams_its_answer_and_completes_with_the_cli_session() {
    let env = start().await;
    // The operator always sets a temperature; the CLI has none, and the conversation
    // still opens with the user's prompt.
    let finished = env
        .run(&[("PROMPT", "hello"), ("LLM_TEMPERATURE", "0.7")])
        .await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_eq!(
        without_cost(env.transcript().await),
        [
            "· session.started",
            "you: hello",
            "agent: Hello from mock (turn 1).",
            "result: success, 1 turns",
            "· session.completed",
        ]
    );
    let streamed: String = env
        .env
        .persisted()
        .await
        .iter()
        .filter_map(|m| m["payload"]["partial"]["data"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(streamed, "Hello from mock (turn 1).");
    let status = env.status();
    assert_eq!(status["phase"], json!("Completed"));
    assert_eq!(status["result"], json!("Hello from mock (turn 1)."));
    assert_eq!(status["session_id"], json!(env.cli_session(SESSION)));
    assert!(status["total_cost_usd"].as_f64().unwrap() > 0.0);
    let (_, version) = pinned_cli();
    assert!(
        finished.stderr.contains(&format!("version={version}")),
        "the version in use is not logged:\n{}",
        finished.stderr
    );
}

#[tokio::test]
async fn a_conversation_runs_turn_after_turn_in_one_process() {
    let env = start().await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(&[("PROMPT", "first"), ("INTERACTIVE", "true")])
        .spawn()
        .unwrap();
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"content": "second"})).await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_eq!(
        without_cost(env.transcript().await)[1..],
        [
            "you: first",
            "agent: Hello from mock (turn 1).",
            "result: success, 1 turns",
            "(waiting for you)",
            "you: second",
            "agent: Hello from mock (turn 2).",
            "result: success, 1 turns",
            "(waiting for you)",
            "· session.completed",
        ]
    );
    // One process: the second request carries the first turn.
    let requests = env.mock.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1]["messages"].as_array().unwrap().len() >= 3);
}

#[tokio::test]
async fn a_tool_call_and_its_result_are_relayed_and_the_tools_never_see_the_runners_token() {
    let env = start().await;
    let finished = env.run(&[("PROMPT", "MOCK_TOOL_BASH please")]).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_eq!(
        without_cost(env.transcript().await)[1..],
        [
            "you: MOCK_TOOL_BASH please",
            "agent: Let me run that.",
            r#"  ⚙ Bash {"command":"echo hi","description":"Run a command"}"#,
            "  ↳ hi",
            "agent: The tool said: hi.",
            "result: success, 2 turns",
            "· session.completed",
        ]
    );

    let env = start().await;
    let finished = env.run(&[("PROMPT", "MOCK_TOOL_ENV please")]).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    // What the agent's shell saw, as the API received it.
    let seen = env.mock.requests().last().unwrap().to_string();
    assert!(seen.contains("ANTHROPIC_BASE_URL"), "no env output: {seen}");
    assert!(
        !seen.contains(TOKEN),
        "the bot token reached the agent's tools"
    );
    assert!(
        !seen.contains("BOT_TOKEN"),
        "BOT_TOKEN reached the agent's tools"
    );
    let persisted = serde_json::to_string(&env.env.persisted().await).unwrap();
    for (place, text) in [
        ("frames", &persisted),
        ("stderr", &finished.stderr),
        ("stdout", &finished.stdout),
    ] {
        assert!(!text.contains(API_KEY), "the API key reached the {place}");
    }
}

#[tokio::test]
async fn an_interrupt_stops_the_turn_at_once_and_the_next_message_still_works() {
    let env = start().await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(&[("PROMPT", "MOCK_SLOW story"), ("INTERACTIVE", "true")])
        .spawn()
        .unwrap();
    until(&mut watch, |m| m.payload["partial"].is_object()).await;
    env.env.post(json!({"type": "interrupt"})).await;
    until(&mut watch, is("agent.waiting")).await;
    env.env
        .post(json!({"content": "after the interrupt"}))
        .await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = without_cost(env.transcript().await);
    let interrupted = lines
        .iter()
        .position(|l| l.starts_with("result: interrupted"))
        .unwrap_or_else(|| panic!("no interrupted result in {lines:#?}"));
    let story = lines
        .iter()
        .find(|l| l.starts_with("agent: word1 "))
        .unwrap();
    assert!(!story.contains("word100"), "the story ran to its end");
    assert_eq!(
        lines[interrupted + 1..],
        [
            "(waiting for you)",
            "you: after the interrupt",
            "agent: Hello from mock (turn 2).",
            "result: success, 1 turns",
            "(waiting for you)",
            "· session.completed",
        ]
    );
    assert_eq!(env.status()["phase"], json!("Completed"));
}

/// An interrupt posted `after` the runner says `agent.running` (and, when `twice`, again
/// at once): the turn ends interrupted within 5 s, well before the 10 s story's end, and
/// the session goes on.
async fn interrupt_after(after: std::time::Duration, twice: bool) {
    let env = start().await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(&[("PROMPT", "MOCK_SLOW story"), ("INTERACTIVE", "true")])
        .spawn()
        .unwrap();
    until(&mut watch, is("agent.running")).await;
    // The delay is the scenario (how soon the user interrupts), not a wait for an event.
    tokio::time::sleep(after).await;
    let posted = std::time::Instant::now();
    env.env.post(json!({"type": "interrupt"})).await;
    if twice {
        env.env.post(json!({"type": "interrupt"})).await;
    }
    until(&mut watch, is("agent.waiting")).await;
    let took = posted.elapsed();
    env.env
        .post(json!({"content": "after the interrupt"}))
        .await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = without_cost(env.transcript().await);
    assert!(
        took < std::time::Duration::from_secs(5),
        "{after:?}: the turn ended {took:?} after the interrupt: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("word100")),
        "{after:?}: the story ran to its end: {lines:#?}"
    );
    let results: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("result:"))
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(
        results,
        ["result: interrupted", "result: success"],
        "{after:?}: {lines:#?}"
    );
    assert_eq!(env.status()["phase"], json!("Completed"));
}

#[tokio::test]
async fn an_interrupt_posted_as_the_turn_starts_still_stops_it() {
    interrupt_after(std::time::Duration::ZERO, false).await;
}

#[tokio::test]
async fn an_interrupt_posted_50_ms_into_the_turn_stops_it() {
    interrupt_after(std::time::Duration::from_millis(50), false).await;
}

#[tokio::test]
async fn an_interrupt_posted_2_s_into_the_turn_stops_it() {
    interrupt_after(std::time::Duration::from_secs(2), false).await;
}

#[tokio::test]
async fn two_interrupts_in_one_turn_end_it_once() {
    interrupt_after(std::time::Duration::from_millis(50), true).await;
}

#[tokio::test]
async fn the_models_thinking_is_shown_as_its_own_line_before_the_answer() {
    let env = start().await;
    let finished = env.run(&[("PROMPT", "MOCK_THINK please")]).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = without_cost(env.transcript().await);
    assert_eq!(
        lines[2..4],
        [
            format!("· Thinking: {}", ambient_test_support::anthropic::THOUGHT),
            String::from("agent: Thought it through."),
        ],
        "{lines:#?}"
    );
}

/// The files the mock's `touch` commands made in `folder`.
fn touched(folder: &Path) -> usize {
    std::fs::read_dir(folder)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("mock_"))
        .count()
}

#[tokio::test]
async fn a_tool_call_is_allowed_once_then_denied_with_a_reason_when_approvals_are_on() {
    let env = start().await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(&[
            ("PROMPT", "MOCK_TOOL_TOUCH first"),
            ("INTERACTIVE", "true"),
            ("CLAUDE_PERMISSION_PROMPTS", "true"),
            ("CLAUDE_PERMISSION_MODE", "default"),
            ("CLAUDE_ALLOWED_TOOLS", "Read"),
        ])
        .spawn()
        .unwrap();
    let workspace = env.env.workspace.path().to_owned();
    until(&mut watch, is("agent.waiting")).await;
    assert_eq!(touched(&workspace), 0, "the tool ran before it was allowed");
    env.env.post(json!({"content": "allow"})).await;
    until(&mut watch, is("agent.waiting")).await;
    assert_eq!(touched(&workspace), 1, "the allowed call did not run");
    env.env
        .post(json!({"content": "MOCK_TOOL_TOUCH second"}))
        .await;
    until(&mut watch, is("agent.waiting")).await;
    env.env
        .post(json!({"content": "deny: not in this folder"}))
        .await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_eq!(touched(&workspace), 1, "the denied call ran");
    let lines = without_cost(env.transcript().await);
    let questions: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("agent: Bash asks to run with"))
        .collect();
    assert_eq!(questions.len(), 2, "{lines:#?}");
    assert!(questions[0].contains("touch mock_"), "{lines:#?}");
    for expected in [
        "· Bash allowed once",
        "agent: The tool said: created.",
        "· Bash denied",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected}: {lines:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the user denied it: not in this folder")),
        "the agent was not told why: {lines:#?}"
    );
}

#[tokio::test]
async fn an_approval_nobody_can_give_is_denied_in_a_batch_session_and_after_the_timeout() {
    let approvals = [
        ("CLAUDE_PERMISSION_PROMPTS", "true"),
        ("CLAUDE_PERMISSION_MODE", "default"),
        ("CLAUDE_ALLOWED_TOOLS", "Read"),
    ];
    // A batch session: there is no one to ask.
    let env = start().await;
    let mut extra = vec![("PROMPT", "MOCK_TOOL_TOUCH now")];
    extra.extend(approvals);
    let finished = env.run(&extra).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_eq!(touched(env.env.workspace.path()), 0);
    let lines = env.transcript().await;
    assert!(
        lines.contains(&String::from(
            "· Bash was denied: a batch session has no one to ask"
        )),
        "{lines:#?}"
    );
    // An interactive one whose user does not answer within the timeout.
    let env = start().await;
    let mut watch = env.env.backend.watch(SESSION);
    let mut extra = vec![
        ("PROMPT", "MOCK_TOOL_TOUCH now"),
        ("INTERACTIVE", "true"),
        ("CLAUDE_APPROVAL_TIMEOUT", "1"),
    ];
    extra.extend(approvals);
    let child = env.runner(&extra).spawn().unwrap();
    until(&mut watch, |m| {
        m.payload["message"] == "Bash was denied: nobody answered within 1 s"
    })
    .await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_eq!(touched(env.env.workspace.path()), 0);
}

#[tokio::test]
async fn a_subagents_text_is_marked_with_the_tool_call_that_started_it() {
    let env = start().await;
    let finished = env.run(&[("PROMPT", "MOCK_AGENT please delegate")]).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let persisted = env.env.persisted().await;
    let call = persisted
        .iter()
        .find(|m| m["payload"]["tool"] == "Agent")
        .unwrap_or_else(|| panic!("no Agent call in {persisted:#?}"));
    let call_id = call["payload"]["id"].as_str().unwrap();
    let reply = persisted
        .iter()
        .find(|m| {
            m["payload"]["content"]["text"] == ambient_test_support::anthropic::SUBAGENT_REPLY
        })
        .unwrap_or_else(|| panic!("no subagent text in {persisted:#?}"));
    assert_eq!(reply["payload"]["parent_tool_use_id"], json!(call_id));
    // The main agent's own texts carry no parent.
    assert!(
        persisted
            .iter()
            .filter(|m| m["payload"]["content"]["text"].is_string())
            .filter(|m| m["payload"]["content"]["text"] != reply["payload"]["content"]["text"])
            .all(|m| m["payload"].get("parent_tool_use_id").is_none()),
        "{persisted:#?}"
    );
    let lines = env.transcript().await;
    assert!(
        lines.contains(&format!(
            "    [{call_id}] agent: {}",
            ambient_test_support::anthropic::SUBAGENT_REPLY
        )),
        "{lines:#?}"
    );
}

/// The pids of `pid`'s children.
fn children_of(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[tokio::test]
async fn a_cli_killed_mid_turn_fails_the_session_and_the_conversation_says_why() {
    let env = start().await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(&[("PROMPT", "MOCK_SLOW story")])
        .spawn()
        .unwrap();
    let runner = child.id().unwrap();
    until(&mut watch, |m| m.payload["partial"].is_object()).await;
    let cli = children_of(runner);
    assert_eq!(cli.len(), 1, "the runner's children: {cli:?}");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &cli[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let lines = without_cost(env.transcript().await);
    let end = lines.len() - 1;
    assert_eq!(lines[end], "· session.failed", "{lines:#?}");
    assert!(
        lines[end - 1].starts_with("· the Claude Code CLI exited with a turn still open"),
        "{lines:#?}"
    );
    assert!(!lines[end - 1].trim_end().ends_with(':'), "{lines:#?}");
    let status = env.status();
    assert_eq!(status["phase"], json!("Failed"));
}

#[tokio::test]
async fn api_errors_fail_the_session_with_the_clis_words() {
    for (trigger, words) in [
        ("MOCK_ERR500", "API Error: 500"),
        ("MOCK_ERR401", "Invalid API key"),
    ] {
        let env = start().await;
        let finished = env.run(&[("PROMPT", trigger)]).await;
        assert_eq!(finished.code, Some(1), "{trigger}:\n{}", finished.stderr);
        let status = env.status();
        assert_eq!(status["phase"], json!("Failed"), "{trigger}");
        // The CLI says `success` with `is_error`; the status does not.
        assert_eq!(status["subtype"], json!("error_api"), "{trigger}");
        let message = status["message"].as_str().unwrap();
        assert!(message.contains(words), "{trigger}: {message}");
        assert!(!message.contains(API_KEY));
    }
}

#[tokio::test]
async fn an_unreachable_api_fails_a_batch_session_within_a_minute_after_a_few_retries() {
    let env = start().await;
    // Every call's connection is closed unanswered. (A port freed for the test could be
    // taken by another test's server meanwhile, which answers.)
    let closing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closing.local_addr().unwrap());
    let _closer = tokio::spawn(async move {
        while let Ok((connection, _)) = closing.accept().await {
            drop(connection);
        }
    });
    let started = std::time::Instant::now();
    let mut command = env.runner(&[("PROMPT", "hello"), ("ANTHROPIC_BASE_URL", &url)]);
    // The runner's default, not the tests' zero.
    command.env_remove("CLAUDE_CODE_MAX_RETRIES");
    let finished = env.env.finish(command.spawn().unwrap()).await;
    let took = started.elapsed();
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
    let status = env.status();
    assert_eq!(status["phase"], json!("Failed"));
    let lines = env.transcript().await;
    let retries: Vec<&String> = lines.iter().filter(|l| l.contains(", retry ")).collect();
    assert_eq!(retries.len(), 3, "{lines:#?}");
    assert!(retries.iter().all(|l| l.contains("/3 in ")), "{lines:#?}");
    assert!(
        retries[0].starts_with("· API call failed, retry 1/3"),
        "{lines:#?}"
    );
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("Connection dropped"), "{message}");
}

#[tokio::test]
async fn a_continuation_resumes_the_cli_conversation_of_its_parent() {
    let parent = "agentic-session-parent";
    let first = start_with([SessionSeed::new(PROJECT, parent)]).await;
    let child = first
        .runner(&[("PROMPT", "hello")])
        .env("SESSION_ID", parent)
        .env("WEBSOCKET_URL", first.env.backend.ws_url(PROJECT, parent))
        .spawn()
        .unwrap();
    let finished = first.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let conversation = first.cli_session(parent);

    // A new process for the next session: same workspace, same CLI home.
    let second = Env {
        mock: first.mock,
        env: Backend::start_with(
            env!("CARGO_BIN_EXE_claude-runner"),
            [
                SessionSeed::new(PROJECT, parent)
                    .annotation(SESSION_ANNOTATION, conversation.clone()),
                SessionSeed::new(PROJECT, SESSION),
            ],
        )
        .await,
        home: first.home,
    };
    let workspace: &Path = first.env.workspace.path();
    let mut watch = second.env.backend.watch(SESSION);
    let child = second
        .runner(&[("INTERACTIVE", "true"), ("PARENT_SESSION_ID", parent)])
        .env("WORKSPACE_PATH", workspace)
        .spawn()
        .unwrap();
    second
        .env
        .backend
        .wait_for_connections(SESSION, 1)
        .await
        .unwrap();
    second.env.post(json!({"content": "and again"})).await;
    until(&mut watch, is("agent.waiting")).await;
    second.env.post(json!({"type": "end_session"})).await;
    let finished = second.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    // The mock counts the user turns it was sent: the first session's came along.
    let lines = second.transcript().await;
    assert!(
        lines.contains(&String::from("agent: Hello from mock (turn 2).")),
        "{lines:#?}"
    );
    assert_eq!(second.cli_session(SESSION), conversation);
    assert_eq!(second.status()["session_id"], json!(conversation));
}

#[tokio::test]
async fn a_conversation_that_cannot_be_resumed_is_replaced_by_a_new_one_and_the_user_is_told() {
    let parent = "agentic-session-parent";
    let lost = "0b5c1f0e-6f0a-4d7e-9c1b-2a3d4e5f6a7b";
    let env = start_with([
        SessionSeed::new(PROJECT, parent).annotation(SESSION_ANNOTATION, lost),
        SessionSeed::new(PROJECT, SESSION),
    ])
    .await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(&[("INTERACTIVE", "true"), ("PARENT_SESSION_ID", parent)])
        .spawn()
        .unwrap();
    env.env
        .backend
        .wait_for_connections(SESSION, 1)
        .await
        .unwrap();
    env.env.post(json!({"content": "are you there"})).await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = without_cost(env.transcript().await);
    assert!(
        lines.iter().any(|l| l.contains("could not be resumed")),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&String::from("agent: Hello from mock (turn 1).")),
        "{lines:#?}"
    );
    let kept = env.cli_session(SESSION);
    assert_ne!(kept, lost, "the lost conversation is still the one kept");
    assert_eq!(env.status()["session_id"], json!(kept));
}

#[test]
fn every_option_of_the_help_names_its_environment_variable() {
    ambient_test_support::harness::help_names_every_variable(env!("CARGO_BIN_EXE_claude-runner"));
}

#[tokio::test]
async fn a_continuation_runs_a_new_prompt_never_its_parents_and_never_does_nothing() {
    use ambient_test_support::continuation::{CASES, seeds};
    for case in CASES {
        let env = start_with(seeds()).await;
        let (finished, lines) = case
            .follow(&env.env, || env.runner(&case.vars()).spawn().unwrap())
            .await;
        case.check(&finished, &lines);
    }
}
