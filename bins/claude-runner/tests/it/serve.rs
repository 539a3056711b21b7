//! The AG-UI serve mode with the real Claude Code CLI against the mock Anthropic API: one
//! long-lived CLI serves run after run; every event is checked against the official
//! AG-UI types and the ordering rules.

use ambient_adapter_claude::SESSION_ANNOTATION;
use ambient_agui::AguiEvent;
use ambient_test_support::{
    agui::{
        SERVE_TOKEN, Served, Sse, check_run, message_texts, read_sse, run_input, serve_command,
        validate_with_official_types,
    },
    anthropic::{MockAnthropic, SUBAGENT_REPLY, THOUGHT, slow_answer},
};
use serde_json::{Value, json};

use crate::{API_KEY, pinned_cli, touched};

async fn serve(
    mock: &MockAnthropic,
    workspace: &std::path::Path,
    home: &std::path::Path,
    extra: &[(&str, &str)],
) -> Served {
    let mut command = serve_command(env!("CARGO_BIN_EXE_claude-runner"), workspace);
    with_the_cli(&mut command, mock, home);
    command.envs(extra.iter().copied());
    Served::start(command, workspace).await
}

/// The pinned CLI against `mock`, with `home` as its home.
fn with_the_cli(
    command: &mut tokio::process::Command,
    mock: &MockAnthropic,
    home: &std::path::Path,
) {
    let (binary, version) = pinned_cli();
    command
        .env("CLAUDE_BIN", binary)
        .env("CLAUDE_CLI_VERSION", version)
        .envs(mock.cli_environment(home));
}

/// The run's `RUN_FINISHED` result and outcome.
fn finished(events: &[AguiEvent]) -> (Value, Value) {
    match events.last() {
        Some(AguiEvent::RunFinished {
            result: Some(result),
            outcome: Some(outcome),
            ..
        }) => (result.clone(), outcome.clone()),
        other => panic!("the run did not finish: {other:?}"),
    }
}

/// The conversation so far plus a new user message, as a client sends it.
fn say(conversation: &mut Vec<(String, String, String)>, run: &str, text: &str) -> Value {
    conversation.push((format!("u-{run}"), String::from("user"), text.to_owned()));
    let messages: Vec<(&str, &str, &str)> = conversation
        .iter()
        .map(|(id, role, content)| (id.as_str(), role.as_str(), content.as_str()))
        .collect();
    let body = run_input("thread-1", run, &messages);
    conversation.push((
        format!("a-{run}"),
        String::from("assistant"),
        String::from("…"),
    ));
    body
}

#[tokio::test]
async fn one_cli_serves_streamed_text_tool_calls_an_interrupt_and_a_failure_run_after_run() {
    let mock = MockAnthropic::start().await;
    let workspace = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    // The stream of the story is cut and the run then interrupted by name: a cut alone
    // does not stop it here.
    let served = serve(
        &mock,
        workspace.path(),
        home.path(),
        &[("AGUI_ABORT_ON_DISCONNECT", "false")],
    )
    .await;
    let capabilities: Value = served.get("/capabilities").await.json().await.unwrap();
    assert_eq!(
        capabilities["ag_ui"]["identity"]["type"],
        "claude-agent-sdk"
    );
    assert_eq!(capabilities["framework"], "claude-agent-sdk");
    assert_eq!(capabilities["file_system"], true);
    validate_with_official_types("capabilities", &[capabilities["ag_ui"].clone()]);
    let mut conversation = Vec::new();

    let hello = served.run(&say(&mut conversation, "r1", "hello")).await;
    let hello = check_run(&hello);
    assert_eq!(message_texts(&hello), ["Hello from mock (turn 1)."]);
    let deltas = hello
        .iter()
        .filter(|e| matches!(e, AguiEvent::TextMessageContent { .. }))
        .count();
    assert!(deltas > 1, "the answer was not streamed: {hello:?}");
    let (result, outcome) = finished(&hello);
    assert_eq!(outcome, json!({"type": "success"}));
    let cli_session = result["session_id"].as_str().unwrap().to_owned();

    let tool = check_run(
        &served
            .run(&say(&mut conversation, "r2", "MOCK_TOOL_BASH please"))
            .await,
    );
    let calls: Vec<&AguiEvent> = tool
        .iter()
        .filter(|e| e.kind().starts_with("TOOL_CALL"))
        .collect();
    assert_eq!(calls.len(), 4, "{tool:?}");
    let AguiEvent::ToolCallStart {
        tool_call_id,
        tool_call_name,
    } = calls[0]
    else {
        panic!("{calls:?}");
    };
    assert_eq!(tool_call_name, "Bash");
    let AguiEvent::ToolCallResult {
        tool_call_id: answered,
        content,
        ..
    } = calls[3]
    else {
        panic!("{calls:?}");
    };
    assert_eq!((answered, content.trim()), (tool_call_id, "hi"));
    assert_eq!(message_texts(&tool).last().unwrap(), "The tool said: hi.");

    // An interrupt in the middle of a long answer: the run ends cancelled, at once.
    let response = served
        .post_run(&say(&mut conversation, "r3", "MOCK_SLOW story"))
        .await;
    let mut story: Vec<Sse> = read_sse(response, Some(3)).await;
    assert_eq!(story[2].kind(), "TEXT_MESSAGE_CONTENT", "{story:?}");
    assert_eq!(served.interrupt().await.status(), 200);
    story.extend(read_sse(served.events_after("r3", story[2].id).await, None).await);
    let story = check_run(&story);
    let (result, outcome) = finished(&story);
    assert_eq!(outcome, json!({"type": "cancelled"}));
    assert_eq!(result["subtype"], "interrupted");
    assert!(
        !message_texts(&story).concat().contains("word100"),
        "the story ran to its end"
    );

    let after = check_run(
        &served
            .run(&say(&mut conversation, "r4", "after the interrupt"))
            .await,
    );
    assert_eq!(finished(&after).1, json!({"type": "success"}));
    assert!(
        message_texts(&after)
            .concat()
            .starts_with("Hello from mock"),
        "{after:?}"
    );

    // The model's reasoning is a reasoning message of its own, before the answer.
    let thought = check_run(
        &served
            .run(&say(&mut conversation, "r6", "MOCK_THINK please"))
            .await,
    );
    let kinds: Vec<&str> = thought
        .iter()
        .map(AguiEvent::kind)
        .filter(|k| k.starts_with("REASONING"))
        .collect();
    assert_eq!(
        kinds,
        [
            "REASONING_START",
            "REASONING_MESSAGE_START",
            "REASONING_MESSAGE_CONTENT",
            "REASONING_MESSAGE_END",
            "REASONING_END"
        ],
        "{thought:?}"
    );
    let reasoning: String = thought
        .iter()
        .filter_map(|e| match e {
            AguiEvent::ReasoningMessageContent { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasoning, THOUGHT);
    assert_eq!(message_texts(&thought), ["Thought it through."]);

    let failed = check_run(
        &served
            .run(&say(&mut conversation, "r5", "MOCK_ERR500"))
            .await,
    );
    let Some(AguiEvent::RunError { message }) = failed.last() else {
        panic!("{failed:?}");
    };
    assert!(message.contains("API Error: 500"), "{message}");

    // The CLI's session is kept on the workspace, for a pod that restarts.
    let kept: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace.path().join(".ambient-runner/continuation.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(kept[SESSION_ANNOTATION], json!(cli_session));
    let stopped = served.stop().await;
    assert_eq!(stopped.code, Some(143), "{}", stopped.stderr);
    for secret in [API_KEY, SERVE_TOKEN] {
        assert!(!stopped.stderr.contains(secret), "a secret reached the log");
    }
}

/// The run's one interrupt, which must ask to approve a tool call.
fn approval_asked(events: &[AguiEvent]) -> Value {
    let Some(AguiEvent::RunFinished {
        outcome: Some(outcome),
        ..
    }) = events.last()
    else {
        panic!("the run did not finish: {events:?}");
    };
    assert_eq!(outcome["type"], "interrupt", "{outcome}");
    let interrupt = outcome["interrupts"][0].clone();
    assert_eq!(interrupt["reason"], "tool_call", "{interrupt}");
    assert_eq!(interrupt["metadata"]["tool"], "Bash", "{interrupt}");
    assert!(interrupt["toolCallId"].is_string(), "{interrupt}");
    assert_eq!(
        interrupt["responseSchema"]["required"],
        json!(["approved"]),
        "{interrupt}"
    );
    interrupt
}

#[tokio::test]
async fn a_tool_approval_is_an_interrupt_answered_by_resume_allowed_once_then_denied() {
    let mock = MockAnthropic::start().await;
    let workspace = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let served = serve(
        &mock,
        workspace.path(),
        home.path(),
        &[
            ("CLAUDE_PERMISSION_PROMPTS", "true"),
            ("CLAUDE_PERMISSION_MODE", "default"),
            ("CLAUDE_ALLOWED_TOOLS", "Read"),
        ],
    )
    .await;
    let mut conversation = Vec::new();
    for (run, answer) in [
        ("r1", json!({"approved": true})),
        (
            "r2",
            json!({"approved": false, "reason": "not in this folder"}),
        ),
    ] {
        let before = touched(workspace.path());
        let asked = check_run(
            &served
                .run(&say(&mut conversation, run, "MOCK_TOOL_TOUCH now"))
                .await,
        );
        let interrupt = approval_asked(&asked);
        assert_eq!(
            touched(workspace.path()),
            before,
            "the tool ran before the answer"
        );
        let mut body = run_input("thread-1", &format!("{run}-answer"), &[]);
        body["resume"] = json!([{
            "interruptId": interrupt["id"],
            "status": "resolved",
            "payload": answer,
        }]);
        let answered = check_run(&served.run(&body).await);
        assert_eq!(
            finished(&answered).1,
            json!({"type": "success"}),
            "{answered:?}"
        );
        let said = message_texts(&answered).concat();
        if run == "r1" {
            assert_eq!(touched(workspace.path()), 1, "the allowed call did not run");
            assert!(said.contains("The tool said: created."), "{answered:?}");
        } else {
            assert_eq!(touched(workspace.path()), 1, "the denied call ran");
            assert!(said.contains("not in this folder"), "{answered:?}");
        }
    }
    let stopped = served.stop().await;
    assert_eq!(stopped.code, Some(143), "{}", stopped.stderr);
}

#[tokio::test]
async fn a_subagents_message_is_linked_to_the_tool_call_that_started_it() {
    let mock = MockAnthropic::start().await;
    let workspace = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let served = serve(&mock, workspace.path(), home.path(), &[]).await;
    let mut conversation = Vec::new();
    // The subagent runs in the background: what it says comes in this run or the next.
    let mut events = check_run(
        &served
            .run(&say(&mut conversation, "r1", "MOCK_AGENT please delegate"))
            .await,
    );
    let call_id = events
        .iter()
        .find_map(|e| match e {
            AguiEvent::ToolCallStart {
                tool_call_id,
                tool_call_name,
                ..
            } if tool_call_name == "Agent" => Some(tool_call_id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Agent call in {events:?}"));
    events.extend(check_run(
        &served.run(&say(&mut conversation, "r2", "hello")).await,
    ));
    let subagent = events
        .iter()
        .find_map(|e| match e {
            AguiEvent::SubagentStarted {
                subagent_run_id,
                parent_tool_call_id,
                ..
            } if *parent_tool_call_id == call_id => Some(subagent_run_id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no subagent started by {call_id} in {events:?}"));
    let message = events
        .iter()
        .find_map(|e| match e {
            AguiEvent::TextMessageStart {
                message_id,
                subagent_run_id: Some(run),
                ..
            } if *run == subagent => Some(message_id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no message of {subagent} in {events:?}"));
    let said: String = events
        .iter()
        .filter_map(|e| match e {
            AguiEvent::TextMessageContent { message_id, delta } if *message_id == message => {
                Some(delta.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(said, SUBAGENT_REPLY);
    assert!(
        events.iter().any(
            |e| matches!(e, AguiEvent::SubagentFinished { subagent_run_id } if *subagent_run_id == subagent)
        ),
        "{events:?}"
    );
    let stopped = served.stop().await;
    assert_eq!(stopped.code, Some(143), "{}", stopped.stderr);
}

/// The stock AG-UI client (`HttpAgent`, its verifier on) runs the CLI's reasoning, a tool
/// call and its answer; its `abortRun()` stops the CLI's turn.
#[tokio::test]
async fn the_stock_ag_ui_client_runs_the_cli_and_its_abort_stops_the_turn() {
    use ambient_test_support::agui::{stock_client, stock_event_types};
    let mock = MockAnthropic::start().await;
    let workspace = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let served = serve(&mock, workspace.path(), home.path(), &[]).await;
    let client = |args: &'static [&'static str]| stock_client(&served.url, args);

    let thought = client(&["run", "t", "run-1", "MOCK_THINK please"]).await;
    let events = stock_event_types(&thought);
    assert_eq!(events.first().map(String::as_str), Some("RUN_STARTED"));
    assert_eq!(events.last().map(String::as_str), Some("RUN_FINISHED"));
    assert!(
        events.iter().any(|e| e.starts_with("REASONING")),
        "{events:?}"
    );
    assert_eq!(thought["texts"][0], "Thought it through.");

    let tool = client(&["run", "t", "run-2", "MOCK_TOOL_BASH please"]).await;
    let events = stock_event_types(&tool);
    for expected in ["TOOL_CALL_START", "TOOL_CALL_RESULT", "MESSAGES_SNAPSHOT"] {
        assert!(
            events.iter().any(|e| e == expected),
            "no {expected}: {events:?}"
        );
    }
    assert!(
        tool["texts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|text| text == "The tool said: hi."),
        "{tool}"
    );

    let aborted = client(&["abort", "t", "run-3", "MOCK_SLOW story"]).await;
    assert!(
        stock_event_types(&aborted)
            .iter()
            .any(|e| e == "TEXT_MESSAGE_CONTENT"),
        "{aborted}"
    );
    let rest = check_run(&read_sse(served.get("/runs/run-3/events").await, None).await);
    let (_, outcome) = finished(&rest);
    assert_eq!(outcome, json!({"type": "cancelled"}));
    let said: String = rest
        .iter()
        .filter_map(|e| match e {
            AguiEvent::TextMessageContent { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        said.len() < slow_answer().concat().len(),
        "the story was told to its end: {said}"
    );
    let stopped = served.stop().await;
    assert_eq!(stopped.code, Some(143), "{}", stopped.stderr);
}

/// The platform's contract, as its operator, backend and UI drive a runner
/// (`ambient_test_support::platform::drive_contract`), on the Claude runner.
#[tokio::test]
async fn the_platforms_operator_backend_and_ui_drive_the_claude_runner() {
    use ambient_test_support::{
        anthropic::contract_prompts,
        platform::{
            Backend, BackendCalls, SESSION, check_background_task, check_file_api,
            check_model_switch, check_repository_routes, drive_contract, free_port,
            operator_command, relay_as_it_comes,
        },
    };
    let mock = MockAnthropic::start().await;
    let workspace = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(1).await;
    let prompts = contract_prompts();
    let mut command = operator_command(
        env!("CARGO_BIN_EXE_claude-runner"),
        workspace.path(),
        free_port(),
        &backend,
        Some(&prompts.initial),
    );
    with_the_cli(&mut command, &mock, home.path());
    // The local origins are file:// URLs, which the runner's git takes only when told.
    command
        .env("GIT_PROTOCOLS", "https,file")
        .env("LLM_MODEL", "claude-sonnet-4-5");
    let (served, runs) = drive_contract(command, workspace.path(), &mut backend, &prompts).await;
    // Our runner sends nothing the protocol does not define, a stricter check than the
    // backend's.
    for run in &runs {
        validate_with_official_types("events", run);
    }
    // The interrupted run says it was cancelled (AG-UI's `outcome`), which the
    // platform's runner does not.
    assert_eq!(
        runs.last().unwrap().last().unwrap()["outcome"],
        json!({"type": "cancelled"})
    );
    let capabilities: Value = served.get("/capabilities").await.json().await.unwrap();
    assert_eq!(capabilities["framework"], "claude-agent-sdk");
    assert_eq!(capabilities["model"], "claude-sonnet-4-5");
    let asked: Vec<Value> = mock
        .requests()
        .iter()
        .filter(|request| request["messages"].to_string().contains("first question"))
        .map(|request| request["model"].clone())
        .collect();
    assert!(!asked.is_empty());
    assert!(
        asked.iter().all(|model| model == "claude-sonnet-4-5"),
        "{asked:?}"
    );
    let calls = BackendCalls::new(&served.url);
    let (refused, after_the_switch) = check_model_switch(&calls, &mock).await;
    // The UI shows the switch from this event, which comes with the next run.
    assert!(
        after_the_switch.iter().any(|event| event["type"] == "CUSTOM"
            && event["name"] == "ambient:model_switched"
            && event["value"]
                == json!({"previousModel": "claude-sonnet-4-5", "newModel": "claude-opus-4-1"})),
        "{after_the_switch:?}"
    );
    // Ours says why.
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("while the agent is answering"),
        "{refused}"
    );
    let capabilities = calls.get_json("/capabilities").await;
    assert_eq!(capabilities["model"], "claude-opus-4-1");
    // Ours sends the stop's `task:completed` to the between-run listener.
    let listener = calls.listen(SESSION).await;
    let mut between = relay_as_it_comes(listener);
    let task = check_background_task(&calls).await;
    loop {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), between.recv())
            .await
            .expect("the listener hears of the stop in time")
            .expect("the listener hears of the stop before it ends");
        if event["type"] == "CUSTOM"
            && event["name"] == "task:completed"
            && event["value"]["task_id"] == task.as_str()
        {
            assert_eq!(
                event["value"],
                json!({"task_id": task, "status": "stopped", "summary": "Task stopped by user"})
            );
            break;
        }
    }
    // What the agent writes into its transcript is scrubbed when the UI reads it.
    let listed = calls.get_json("/tasks").await;
    let output_file = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|listed| listed["task_id"] == task.as_str())
        .and_then(|listed| listed["output_file"].as_str())
        .unwrap_or_else(|| panic!("{task} has no output file: {listed}"))
        .to_owned();
    let mut transcript = std::fs::OpenOptions::new()
        .append(true)
        .open(&output_file)
        .unwrap();
    std::io::Write::write_all(
        &mut transcript,
        format!("{{\"leaked\": \"{SERVE_TOKEN}\"}}\n").as_bytes(),
    )
    .unwrap();
    let output = calls.get_json(&format!("/tasks/{task}/output")).await;
    let said = output["output"].to_string();
    assert!(!said.contains(SERVE_TOKEN), "{said}");
    assert!(said.contains("leaked"), "{said}");
    check_file_api(&calls, workspace.path()).await;
    let origins = tempfile::tempdir().unwrap();
    check_repository_routes(&calls, workspace.path(), origins.path()).await;
    assert_eq!(served.stop().await.code, Some(143));
}

/// `/mcp/status` and `/tasks`, from what the CLI reports: a server that fails to start,
/// and a subagent's background task.
#[tokio::test]
async fn the_mcp_servers_and_background_tasks_are_reported_as_the_cli_tells_them() {
    let mock = MockAnthropic::start().await;
    let workspace = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        workspace.path().join(".mcp.json"),
        r#"{"mcpServers": {"broken": {"command": "/bin/false"}}}"#,
    )
    .unwrap();
    let served = serve(&mock, workspace.path(), home.path(), &[]).await;
    let mut conversation = Vec::new();
    check_run(
        &served
            .run(&say(&mut conversation, "r1", "MOCK_AGENT please delegate"))
            .await,
    );
    check_run(&served.run(&say(&mut conversation, "r2", "hello")).await);
    let status: Value = served.get("/mcp/status").await.json().await.unwrap();
    assert_eq!(status["totalCount"], 1, "{status}");
    assert_eq!(
        status["servers"][0],
        json!({"name": "broken", "status": "failed"})
    );
    let tasks: Value = served.get("/tasks").await.json().await.unwrap();
    let listed = tasks["tasks"].as_array().unwrap();
    assert!(!listed.is_empty(), "{tasks}");
    assert!(
        listed[0]["task_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{tasks}"
    );
    assert!(listed[0]["status"].as_str().is_some(), "{tasks}");
    let capabilities: Value = served.get("/capabilities").await.json().await.unwrap();
    assert!(
        capabilities["platform_features"]
            .as_array()
            .unwrap()
            .contains(&json!("mcp_diagnostics"))
    );
    assert_eq!(served.stop().await.code, Some(143));
}
