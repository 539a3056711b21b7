//! The AG-UI serve mode with real LangGraph: the project's test graphs run in the pod (the
//! Python driver) and on a `langgraph dev`; every event is checked against the official
//! AG-UI types and the ordering rules.

use ambient_agui::AguiEvent;
use ambient_test_support::{
    agui::{
        Served, Sse, apply_patch, check_run, message_texts, read_sse, run_input, serve_command,
        validate_with_official_types,
    },
    langgraph::{LangGraphDev, venv},
};
use serde_json::{Value, json};

use crate::test_graphs;

/// A runner serving `graph`, in the pod or on `server`.
async fn serve(
    workspace: &std::path::Path,
    server: Option<&LangGraphDev>,
    graph: &str,
    extra: &[(&str, &str)],
) -> Served {
    let mut command = serve_command(env!("CARGO_BIN_EXE_langgraph-runner"), workspace);
    with_the_graph(&mut command, workspace, server, graph);
    for (key, value) in extra {
        command.env(key, value);
    }
    Served::start(command, workspace).await
}

/// `graph`, in the pod (from `workspace`) or on `server`.
fn with_the_graph(
    command: &mut tokio::process::Command,
    workspace: &std::path::Path,
    server: Option<&LangGraphDev>,
    graph: &str,
) {
    command.env("WORKFLOW_ID", graph);
    match server {
        Some(server) => {
            command.env("LANGGRAPH_URL", server.url());
        }
        None => {
            for file in ["langgraph.json", "graphs.py"] {
                std::fs::copy(test_graphs().join(file), workspace.join(file)).unwrap();
            }
            command
                .env("LANGGRAPH_PYTHON", venv().join("bin/python"))
                .env("PATH", "/usr/local/bin:/usr/bin:/bin");
        }
    }
}

/// The graph's state at the end of a run: its snapshot, patched by every delta after it.
fn final_state(events: &[AguiEvent]) -> Value {
    let mut state = None;
    for event in events {
        match event {
            AguiEvent::StateSnapshot { snapshot } => state = Some(snapshot.clone()),
            AguiEvent::StateDelta { delta } => {
                let state = state.as_mut().expect("a delta before the snapshot");
                apply_patch(state, delta);
            }
            _ => {}
        }
    }
    state.expect("the run carried no state")
}

fn logs(events: &[AguiEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            AguiEvent::Custom { name, value } if name == "log" => value.as_str().map(str::to_owned),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_chat_reply_streams_as_one_text_message_per_run() {
    let workspace = tempfile::tempdir().unwrap();
    let served = serve(workspace.path(), None, "chat", &[]).await;
    let capabilities: Value = served.get("/capabilities").await.json().await.unwrap();
    assert_eq!(capabilities["ag_ui"]["identity"]["type"], "langgraph");
    assert_eq!(capabilities["ag_ui"]["humanInTheLoop"]["interrupts"], true);
    validate_with_official_types("capabilities", &[capabilities["ag_ui"].clone()]);
    let first = check_run(
        &served
            .run(&run_input("t", "r1", &[("u1", "user", "hello")]))
            .await,
    );
    assert_eq!(
        message_texts(&first),
        ["You said hello, streamed word by word."]
    );
    // The graph's node is a step, around everything it said, as the platform's UI shows it.
    let steps: Vec<(&str, usize)> = first
        .iter()
        .enumerate()
        .filter_map(|(at, e)| match e {
            AguiEvent::StepStarted { step_name } => {
                Some(("started", at)).filter(|_| step_name == "chatbot")
            }
            AguiEvent::StepFinished { step_name } => {
                Some(("finished", at)).filter(|_| step_name == "chatbot")
            }
            _ => None,
        })
        .collect();
    assert_eq!(steps.len(), 2, "{first:?}");
    let said = first
        .iter()
        .position(|e| matches!(e, AguiEvent::TextMessageStart { .. }))
        .unwrap();
    assert!(steps[0].1 < said && said < steps[1].1, "{first:?}");
    let deltas = first
        .iter()
        .filter(|e| matches!(e, AguiEvent::TextMessageContent { .. }))
        .count();
    assert!(deltas > 3, "the reply was not streamed: {first:?}");
    let state = final_state(&first);
    assert_eq!(
        state["messages"].as_array().unwrap().last().unwrap()["content"],
        "You said hello, streamed word by word."
    );
    let AguiEvent::RunFinished {
        result, outcome, ..
    } = first.last().unwrap()
    else {
        panic!("{first:?}");
    };
    assert_eq!(outcome, &Some(json!({"type": "success"})));
    let thread = result.as_ref().unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The next run continues the same LangGraph thread.
    let second = check_run(
        &served
            .run(&run_input(
                "t",
                "r2",
                &[
                    ("u1", "user", "hello"),
                    ("a1", "assistant", "You said hello, streamed word by word."),
                    ("u2", "user", "again"),
                ],
            ))
            .await,
    );
    assert_eq!(
        message_texts(&second),
        ["You said again, streamed word by word."]
    );
    let AguiEvent::RunFinished { result, .. } = second.last().unwrap() else {
        panic!("{second:?}");
    };
    assert_eq!(result.as_ref().unwrap()["session_id"], json!(thread));
    assert_eq!(result.as_ref().unwrap()["num_turns"], json!(2));
    // The thread's state carries both exchanges.
    assert_eq!(
        final_state(&second)["messages"].as_array().unwrap().len(),
        4
    );
    // The thread is kept on the workspace, for a pod that restarts.
    let kept = std::fs::read_to_string(workspace.path().join(".ambient-runner/continuation.json"))
        .unwrap();
    assert!(kept.contains(&thread), "{kept}");
    assert_eq!(served.stop().await.code, Some(143));
}

#[tokio::test]
async fn a_tool_call_and_its_result_share_their_id() {
    let workspace = tempfile::tempdir().unwrap();
    let served = serve(workspace.path(), None, "tools", &[]).await;
    let events = check_run(
        &served
            .run(&run_input("t", "r1", &[("u1", "user", "Paris")]))
            .await,
    );
    let kinds: Vec<&str> = events
        .iter()
        .map(AguiEvent::kind)
        .filter(|k| k.starts_with("TOOL_CALL"))
        .collect();
    assert_eq!(
        kinds,
        [
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "TOOL_CALL_RESULT"
        ]
    );
    assert!(events.contains(&AguiEvent::ToolCallArgs {
        tool_call_id: String::from("call_weather_1"),
        delta: String::from(r#"{"city":"Paris"}"#),
    }));
    assert!(events.iter().any(|e| matches!(e,
        AguiEvent::ToolCallResult { tool_call_id, content, .. }
            if tool_call_id == "call_weather_1" && content == "sunny in Paris")));
    assert_eq!(
        message_texts(&events).last().unwrap(),
        "The weather tool says: sunny in Paris."
    );
    assert_eq!(served.stop().await.code, Some(143));
}

/// A question ends the run with the interrupt outcome; the next run answers it with a
/// resume entry and the graph goes on.
async fn a_question_is_an_interrupt_outcome_and_the_answer_resumes(
    workspace: &std::path::Path,
    server: Option<&LangGraphDev>,
) {
    let served = serve(
        workspace,
        server,
        "hitl",
        &[("WORKFLOW_CONFIG", r#"{"prompt_field": "request"}"#)],
    )
    .await;
    let asked = check_run(
        &served
            .run(&run_input("t", "r1", &[("u1", "user", "deploy v2")]))
            .await,
    );
    assert_eq!(logs(&asked), [r#"prepare: {"note":"prepared deploy v2"}"#]);
    let question = "Approve this request?\n{\"request\":\"deploy v2\"}";
    assert_eq!(message_texts(&asked), [question]);
    assert_eq!(
        final_state(&asked),
        json!({"request": "deploy v2", "note": "prepared deploy v2"})
    );
    let AguiEvent::RunFinished {
        outcome: Some(outcome),
        ..
    } = asked.last().unwrap()
    else {
        panic!("{asked:?}");
    };
    assert_eq!(outcome["type"], "interrupt");
    assert_eq!(outcome["interrupts"][0]["message"], question);
    let interrupt_id = outcome["interrupts"][0]["id"].clone();
    let mut answer = run_input("t", "r2", &[("u1", "user", "deploy v2")]);
    answer["resume"] =
        json!([{"interruptId": interrupt_id, "status": "resolved", "payload": "yes, ship it"}]);
    let resumed = check_run(&served.run(&answer).await);
    assert_eq!(
        logs(&resumed),
        [r#"ask_human: {"approved":"yes, ship it"}"#]
    );
    let AguiEvent::RunFinished { outcome, .. } = resumed.last().unwrap() else {
        panic!("{resumed:?}");
    };
    assert_eq!(outcome, &Some(json!({"type": "success"})));
    assert_eq!(served.stop().await.code, Some(143));
}

#[tokio::test]
async fn a_question_is_an_interrupt_outcome_and_the_answer_resumes_in_the_pod() {
    let workspace = tempfile::tempdir().unwrap();
    a_question_is_an_interrupt_outcome_and_the_answer_resumes(workspace.path(), None).await;
}

#[tokio::test]
async fn a_question_is_an_interrupt_outcome_and_the_answer_resumes_on_a_langgraph_server() {
    let workspace = tempfile::tempdir().unwrap();
    let server = LangGraphDev::start(&test_graphs()).await;
    a_question_is_an_interrupt_outcome_and_the_answer_resumes(workspace.path(), Some(&server))
        .await;
}

#[tokio::test]
async fn a_failing_node_is_a_run_error_and_an_interrupt_a_cancelled_run() {
    let workspace = tempfile::tempdir().unwrap();
    let served = serve(workspace.path(), None, "failing", &[]).await;
    let failed = check_run(
        &served
            .run(&run_input("t", "r1", &[("u1", "user", "go")]))
            .await,
    );
    assert_eq!(
        failed.last().unwrap(),
        &AguiEvent::RunError {
            message: String::from("ValueError: boom: deliberate failure in node 'boom'")
        }
    );
    assert_eq!(served.stop().await.code, Some(143));

    let workspace = tempfile::tempdir().unwrap();
    let served = serve(
        workspace.path(),
        None,
        "slow",
        &[
            (
                "WORKFLOW_CONFIG",
                r#"{"context": {"ticks": 600, "delay": 0.05}}"#,
            ),
            // The stream is read in cuts: a cut alone does not stop the run here.
            ("AGUI_ABORT_ON_DISCONNECT", "false"),
        ],
    )
    .await;
    let response = served
        .post_run(&run_input("t", "r1", &[("u1", "user", "tick")]))
        .await;
    // Read until the second tick, then interrupt.
    let mut events = Vec::new();
    let mut response = Some(response);
    while !events
        .iter()
        .any(|e: &Sse| e.data.to_string().contains(r#"{\"tick\":2}"#))
    {
        let more = read_sse(response.take().unwrap(), Some(1)).await;
        events.extend(more);
        let last = events.last().unwrap().id;
        response = Some(served.events_after("r1", last).await);
    }
    assert_eq!(served.interrupt().await.status(), 200);
    events.extend(read_sse(response.take().unwrap(), None).await);
    let events = check_run(&events);
    let AguiEvent::RunFinished {
        outcome, result, ..
    } = events.last().unwrap()
    else {
        panic!("{events:?}");
    };
    assert_eq!(outcome, &Some(json!({"type": "cancelled"})));
    assert_eq!(result.as_ref().unwrap()["subtype"], "interrupted");
    let ticks = logs(&events).iter().filter(|l| l.contains("tick")).count();
    assert!(ticks < 600, "the run went on to the end");
    assert_eq!(served.stop().await.code, Some(143));
}

/// The interrupt the run ended with.
fn interrupt_of(events: &[AguiEvent]) -> Value {
    let Some(AguiEvent::RunFinished {
        outcome: Some(outcome),
        ..
    }) = events.last()
    else {
        panic!("the run did not finish: {events:?}");
    };
    assert_eq!(outcome["type"], "interrupt", "{outcome}");
    outcome["interrupts"][0].clone()
}

#[tokio::test]
async fn two_questions_are_asked_and_answered_one_run_at_a_time() {
    let workspace = tempfile::tempdir().unwrap();
    let served = serve(workspace.path(), None, "multi", &[]).await;
    let answer = |run_id: &str, interrupt: &Value, payload: Value| {
        let mut body = run_input("t", run_id, &[("u1", "user", "pair")]);
        body["resume"] =
            json!([{"interruptId": interrupt["id"], "status": "resolved", "payload": payload}]);
        body
    };
    let first = check_run(
        &served
            .run(&run_input("t", "r1", &[("u1", "user", "pair")]))
            .await,
    );
    let asked = interrupt_of(&first);
    assert!(
        asked["message"].as_str().unwrap().starts_with("Value for"),
        "{asked}"
    );
    let second = check_run(
        &served
            .run(&answer("r2", &asked, json!("first answer")))
            .await,
    );
    let asked_again = interrupt_of(&second);
    assert!(
        asked_again["message"]
            .as_str()
            .unwrap()
            .starts_with("Value for"),
        "{asked_again}"
    );
    assert_ne!(asked_again["id"], asked["id"]);
    let third = check_run(
        &served
            .run(&answer("r3", &asked_again, json!({"n": 2})))
            .await,
    );
    let AguiEvent::RunFinished { outcome, .. } = third.last().unwrap() else {
        panic!("{third:?}");
    };
    assert_eq!(outcome, &Some(json!({"type": "success"})));
    let answers = logs(&third).join("\n");
    assert!(
        answers.contains("first answer") && answers.contains(r#"{"n":2}"#),
        "{answers}"
    );
    assert_eq!(served.stop().await.code, Some(143));
}

/// The platform's contract, as its operator, backend and UI drive a runner
/// (`ambient_test_support::platform::drive_contract`), on a LangGraph graph in the pod.
#[tokio::test]
async fn the_platforms_operator_backend_and_ui_drive_the_langgraph_runner() {
    use ambient_test_support::platform::{
        Backend, BackendCalls, ContractPrompts, check_file_api, check_repository_routes,
        drive_contract, free_port, operator_command,
    };
    let workspace = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(1).await;
    let prompts = ContractPrompts {
        initial: String::from("hello from the operator"),
        messages: [
            String::from("first"),
            String::from("second"),
            String::from("third"),
        ],
        // The chat graph answers at once: nothing to interrupt.
        long: None,
    };
    let mut command = operator_command(
        env!("CARGO_BIN_EXE_langgraph-runner"),
        workspace.path(),
        free_port(),
        &backend,
        Some(&prompts.initial),
    );
    with_the_graph(&mut command, workspace.path(), None, "chat");
    // The local origins are file:// URLs, which the runner's git takes only when told.
    command.env("GIT_PROTOCOLS", "https,file");
    let (served, runs) = drive_contract(command, workspace.path(), &mut backend, &prompts).await;
    // Our runner sends nothing the protocol does not define, a stricter check than the
    // backend's.
    for run in &runs {
        validate_with_official_types("events", run);
    }
    let capabilities: Value = served.get("/capabilities").await.json().await.unwrap();
    assert_eq!(capabilities["framework"], "langgraph");
    let calls = BackendCalls::new(&served.url);
    check_file_api(&calls, workspace.path()).await;
    let origins = tempfile::tempdir().unwrap();
    check_repository_routes(&calls, workspace.path(), origins.path()).await;
    assert_eq!(served.stop().await.code, Some(143));
}

/// The stock AG-UI client (`HttpAgent`, its verifier on) runs a graph with a tool call,
/// its steps and its state; its `abortRun()` stops a graph that is still working.
#[tokio::test]
async fn the_stock_ag_ui_client_runs_a_graph_and_its_abort_stops_one() {
    use ambient_test_support::agui::{stock_client, stock_event_types};
    let workspace = tempfile::tempdir().unwrap();
    let served = serve(workspace.path(), None, "tools", &[]).await;
    let ran = stock_client(&served.url, &["run", "t", "run-1", "Paris"]).await;
    let events = stock_event_types(&ran);
    assert_eq!(events.first().map(String::as_str), Some("RUN_STARTED"));
    assert_eq!(events.last().map(String::as_str), Some("RUN_FINISHED"));
    for expected in [
        "STEP_STARTED",
        "TOOL_CALL_START",
        "TOOL_CALL_RESULT",
        "STATE_SNAPSHOT",
        "MESSAGES_SNAPSHOT",
    ] {
        assert!(
            events.iter().any(|e| e == expected),
            "no {expected}: {events:?}"
        );
    }
    assert!(
        ran["texts"].as_array().unwrap().iter().any(|text| text
            .as_str()
            .is_some_and(|t| t.starts_with("The weather tool says"))),
        "{ran}"
    );
    assert_eq!(served.stop().await.code, Some(143));

    let workspace = tempfile::tempdir().unwrap();
    let served = serve(
        workspace.path(),
        None,
        "slow",
        &[(
            "WORKFLOW_CONFIG",
            r#"{"context": {"ticks": 600, "delay": 0.05}}"#,
        )],
    )
    .await;
    // The graph only reports progress: the user aborts on its first report.
    let aborted = stock_client(&served.url, &["abort", "t", "run-2", "tick", "CUSTOM"]).await;
    assert!(
        stock_event_types(&aborted).iter().any(|e| e == "CUSTOM"),
        "{aborted}"
    );
    let rest = check_run(&read_sse(served.get("/runs/run-2/events").await, None).await);
    let AguiEvent::RunFinished { outcome, .. } = rest.last().unwrap() else {
        panic!("{rest:?}");
    };
    assert_eq!(outcome, &Some(json!({"type": "cancelled"})));
    let ticks = logs(&rest).iter().filter(|l| l.contains("tick")).count();
    assert!(ticks < 600, "the run went on to the end");
    assert_eq!(served.stop().await.code, Some(143));
}
