//! Every frame kind: its wire form as a snapshot, and a round trip through JSON.

use serde_json::{Value, json};
use time::macros::datetime;

use crate::{
    Event, EventMapper, Frame, FrameId, Inbound, Lifecycle, MessageType, Outbound, Partial,
    ResultPayload, SessionMessage, ToolResult, backend_timestamp, runner_timestamp,
    status::{AnnotationPatch, Phase, StatusUpdate},
};

/// Sends `body` as frame 7 and checks its wire form against the snapshot `name`, then
/// reads it back and checks that nothing changed.
#[track_caller]
fn check(name: &str, body: Outbound) {
    let frame = Frame {
        seq: 7,
        id: FrameId::new("run", 7),
        timestamp: String::from("2025-10-31T20:02:41.120004"),
        body,
    };
    let wire: Value = serde_json::from_str(&frame.to_json()).unwrap();
    assert!(
        wire.get("partial").is_some(),
        "`partial` must always be present"
    );
    insta::assert_json_snapshot!(name, wire);
    let back: Frame = serde_json::from_value(wire).unwrap();
    assert_eq!(back, frame);
}

#[test]
fn lifecycle_frames() {
    check(
        "lifecycle_started",
        Outbound::Lifecycle(Lifecycle::SessionStarted),
    );
    check(
        "lifecycle_completed",
        Outbound::Lifecycle(Lifecycle::SessionCompleted),
    );
    check(
        "lifecycle_failed",
        Outbound::Lifecycle(Lifecycle::SessionFailed),
    );
}

#[test]
fn log_frame() {
    check(
        "log",
        Outbound::Log {
            message: String::from("📥 Cloning repo-a..."),
        },
    );
}

#[test]
fn user_message_frame() {
    check(
        "user_message",
        Outbound::UserMessage {
            content: String::from("Fix the failing test in foo.py"),
        },
    );
}

#[test]
fn running_and_waiting_frames() {
    check("running", Outbound::Running);
    check("waiting", Outbound::Waiting);
}

#[test]
fn text_block_frame() {
    check(
        "text_block",
        Outbound::TextBlock {
            text: String::from("I'll look at foo.py first."),
        },
    );
}

#[test]
fn a_subagents_frames_name_the_call_that_started_it() {
    check(
        "subagent_text",
        Outbound::Subagent {
            parent_tool_use_id: String::from("toolu_agent"),
            body: Box::new(Outbound::TextBlock {
                text: String::from("Hello from the subagent."),
            }),
        },
    );
    check(
        "subagent_tool_use",
        Outbound::Subagent {
            parent_tool_use_id: String::from("toolu_agent"),
            body: Box::new(Outbound::ToolUse {
                tool: String::from("Read"),
                input: json!({"file_path": "a.txt"}),
                id: Some(String::from("toolu_inner")),
            }),
        },
    );
}

#[test]
fn tool_use_frames() {
    check(
        "tool_use",
        Outbound::ToolUse {
            tool: String::from("Bash"),
            input: json!({"command": "pytest -q", "description": "Run tests"}),
            id: Some(String::from("toolu_01AbC")),
        },
    );
    check(
        "tool_use_without_id",
        Outbound::ToolUse {
            tool: String::from("unknown"),
            input: json!({}),
            id: None,
        },
    );
}

#[test]
fn tool_result_frames() {
    check(
        "tool_result",
        Outbound::ToolResult(ToolResult {
            tool_use_id: Some(String::from("toolu_01AbC")),
            content: json!("3 passed in 0.41s"),
            is_error: Some(false),
        }),
    );
    check(
        "tool_result_content_array",
        Outbound::ToolResult(ToolResult {
            tool_use_id: Some(String::from("toolu_02")),
            content: json!([{"type": "text", "text": "no such file"}]),
            is_error: Some(true),
        }),
    );
}

#[test]
fn result_frames() {
    check(
        "result",
        Outbound::Result(ResultPayload {
            subtype: Some(String::from("success")),
            duration_ms: Some(48211),
            duration_api_ms: Some(40233),
            is_error: Some(false),
            num_turns: Some(7),
            session_id: Some(String::from("0b0f7c1e-3a6e-4c2b-9f2a-1d2e3f4a5b6c")),
            total_cost_usd: Some(0.1834),
            usage: Some(json!({"input_tokens": 1234, "output_tokens": 2345})),
            result: Some(String::from("All tests pass now.")),
        }),
    );
    check("result_empty", Outbound::Result(ResultPayload::default()));
}

#[test]
fn partial_frame() {
    check(
        "partial",
        Outbound::Partial(Partial {
            id: String::from("msg_1"),
            index: 2,
            total: 0,
            data: String::from("Hel"),
        }),
    );
}

#[test]
fn the_backend_copy_of_every_frame_carries_its_id_in_the_payload() {
    // The backend keeps an object payload as it is, and nests the whole envelope when the
    // payload is anything else; both ways the id is at `payload.frame_id`.
    for body in [
        Outbound::Lifecycle(Lifecycle::SessionStarted),
        Outbound::Running,
        Outbound::Partial(Partial {
            id: String::from("s"),
            index: 0,
            total: 0,
            data: String::from("x"),
        }),
        Outbound::TextBlock {
            text: String::from("hi"),
        },
    ] {
        let frame = Frame {
            seq: 3,
            id: FrameId::new("abc", 3),
            timestamp: String::from("t"),
            body,
        };
        let wire: Value = serde_json::from_str(&frame.to_json()).unwrap();
        let stored_payload = match &wire["payload"] {
            Value::Object(_) => wire["payload"].clone(),
            _ => wire.clone(),
        };
        let copy = SessionMessage {
            session_id: String::from("s"),
            kind: wire["type"].as_str().unwrap().to_owned(),
            timestamp: String::from("t"),
            payload: stored_payload,
            partial: None,
        };
        assert_eq!(copy.frame_id(), Some(FrameId::new("abc", 3)));
        let text = serde_json::to_string(&copy).unwrap();
        assert_eq!(
            crate::echo_frame_id(&text, "s"),
            Some(FrameId::new("abc", 3))
        );
        assert_eq!(crate::echo_frame_id(&text, "another session"), None);
        assert!(matches!(copy.classify().unwrap(), Inbound::Echo { .. }));
    }
}

#[test]
fn only_runner_frames_with_an_id_are_echoes() {
    let cases = [
        (
            r#"{"sessionId":"s","type":"user_message","timestamp":"t","payload":{"content":"x","frame_id":"a-1"}}"#,
            None,
        ),
        (
            r#"{"sessionId":"s","type":"agent.message","timestamp":"t","payload":{"tool":"x"}}"#,
            None,
        ),
        (
            r#"{"sessionId":"s","type":"agent.waiting","timestamp":"t","payload":{"frame_id":"a-2"}}"#,
            Some("a-2"),
        ),
        (
            r#"{"sessionId":"s","type":"agent.waiting","timestamp":"t","payload":"text"}"#,
            None,
        ),
        // Another order of the fields than the backend's: read by the parser.
        (
            r#"{"type":"agent.waiting","payload":{"frame_id":"a-3"},"sessionId":"s","timestamp":"t"}"#,
            Some("a-3"),
        ),
        // Another session's, in the usual order and in another.
        (
            r#"{"sessionId":"t","type":"agent.waiting","timestamp":"t","payload":{"frame_id":"a-4"}}"#,
            None,
        ),
        (
            r#"{"type":"agent.waiting","payload":{"frame_id":"a-5"},"sessionId":"ss","timestamp":"t"}"#,
            None,
        ),
        ("not json", None),
    ];
    for (text, expect) in cases {
        assert_eq!(
            crate::echo_frame_id(text, "s"),
            expect.map(FrameId::from_wire),
            "{text}"
        );
    }
}

#[test]
fn timestamps_have_the_forms_of_the_python_runner_and_the_go_backend() {
    let with_micros = datetime!(2025-10-31 20:02:41.123456 UTC);
    let whole = datetime!(2025-10-31 20:02:41 UTC);
    assert_eq!(runner_timestamp(with_micros), "2025-10-31T20:02:41.123456");
    assert_eq!(runner_timestamp(whole), "2025-10-31T20:02:41");
    assert_eq!(
        runner_timestamp(datetime!(2025-01-02 03:04:05.000007 UTC)),
        "2025-01-02T03:04:05.000007"
    );
    assert_eq!(backend_timestamp(with_micros), "2025-10-31T20:02:41Z");
    // The clock a stream of frames uses writes the same, across seconds, days and zones.
    let mut clock = crate::RunnerClock::default();
    for at in [
        with_micros,
        whole,
        datetime!(2025-10-31 20:02:41.000001 UTC),
        datetime!(2025-10-31 20:02:42.5 UTC),
        datetime!(2025-10-31 23:59:59.999999 UTC),
        datetime!(2025-11-01 00:00:00.25 UTC),
        datetime!(2025-11-01 02:00:00.25 +02:00),
    ] {
        assert_eq!(clock.at(at), runner_timestamp(at), "{at}");
    }
}

#[test]
fn frame_ids_are_the_instance_and_the_sequence() {
    for (seq, expect) in [(0, "abc-0"), (7, "abc-7"), (1_234_567, "abc-1234567")] {
        assert_eq!(FrameId::new("abc", seq).as_str(), expect);
    }
    assert_eq!(
        FrameId::new("x", u64::MAX).as_str(),
        format!("x-{}", u64::MAX)
    );
}

/// Reads a backend message and checks what a runner makes of it.
#[track_caller]
fn check_inbound(message: Value, expect: &str) {
    let message: SessionMessage = serde_json::from_value(message).unwrap();
    let got = match message.classify() {
        Ok(inbound) => format!("{inbound:?}"),
        Err(error) => format!("error: {error}"),
    };
    assert_eq!(got, expect);
}

#[test]
fn inbound_messages() {
    let at = "2025-10-31T20:05:00Z";
    check_inbound(
        json!({"sessionId":"s","type":"user_message","timestamp":at,"payload":{"content":"Now add a test"}}),
        r#"UserMessage { content: "Now add a test" }"#,
    );
    check_inbound(
        json!({"sessionId":"s","type":"user.message","timestamp":at,"payload":{"text":"dotted"}}),
        r#"UserMessage { content: "dotted" }"#,
    );
    check_inbound(
        json!({"sessionId":"s","type":"user_message","timestamp":at,"payload":{}}),
        "error: `user_message` message has neither `content` nor `text`",
    );
    check_inbound(
        json!({"sessionId":"s","type":"user_message","timestamp":at,"payload":{"content":5}}),
        "error: payload of a `user_message` message has the wrong shape",
    );
    check_inbound(
        json!({"sessionId":"s","type":"interrupt","timestamp":at,"payload":{}}),
        "Interrupt",
    );
    check_inbound(
        json!({"sessionId":"s","type":"end_session","timestamp":at,"payload":{}}),
        "EndSession",
    );
    check_inbound(
        json!({"sessionId":"s","type":"terminate","timestamp":at,"payload":{}}),
        "Terminate",
    );
    check_inbound(
        json!({"sessionId":"s","type":"stop","timestamp":at}),
        "Stop",
    );
    check_inbound(
        json!({"sessionId":"s","type":"workflow_change","timestamp":at,"payload":{"gitUrl":"https://example.com/w.git","branch":"dev","path":"flows/a"}}),
        r#"WorkflowChange(WorkflowChange { git_url: "https://example.com/w.git", branch: Some("dev"), path: Some("flows/a") })"#,
    );
    check_inbound(
        json!({"sessionId":"s","type":"repo_added","timestamp":at,"payload":{"name":"r","url":"https://example.com/r.git"}}),
        r#"RepoAdded(RepoAdded { name: "r", url: "https://example.com/r.git", branch: None })"#,
    );
    check_inbound(
        json!({"sessionId":"s","type":"repo_removed","timestamp":at,"payload":{"name":"r"}}),
        r#"RepoRemoved { name: "r" }"#,
    );
    check_inbound(
        json!({"sessionId":"s","type":"repo_removed","timestamp":at,"payload":{}}),
        "error: payload of a `repo_removed` message has the wrong shape",
    );
    check_inbound(
        json!({"sessionId":"s","type":"pong","timestamp":at}),
        "Pong",
    );
    check_inbound(
        json!({"sessionId":"s","type":"agent.message","timestamp":at,"payload":{"tool":"x","input":{}}}),
        "RunnerFrame { kind: AgentMessage }",
    );
    check_inbound(
        json!({"sessionId":"s","type":"agent.message","timestamp":at,"payload":{"frame_id":"r-1"}}),
        r#"Echo { kind: AgentMessage, frame_id: FrameId("r-1") }"#,
    );
    check_inbound(
        json!({"sessionId":"s","type":"user_message","timestamp":at,"payload":{"content":"hi","frame_id":"r-1"}}),
        r#"UserMessage { content: "hi" }"#,
    );
    check_inbound(
        json!({"sessionId":"s","type":"brand_new_type","timestamp":at,"payload":[1,2]}),
        r#"Unknown { kind: "brand_new_type" }"#,
    );
}

#[test]
fn session_message_round_trips() {
    let wire = json!({"sessionId":"agentic-session-1730404961","type":"user_message","timestamp":"2025-10-31T20:05:00Z","payload":{"content":"x"}});
    let message: SessionMessage = serde_json::from_value(wire.clone()).unwrap();
    insta::assert_json_snapshot!("session_message", message);
    assert_eq!(serde_json::to_value(&message).unwrap(), wire);
}

#[test]
fn frames_with_a_wrong_payload_name_what_is_wrong() {
    let cases = [
        (
            json!({"seq":1,"type":"agent.message","timestamp":"t","payload":{"frame_id":"a-1","what":1},"partial":null}),
            "payload of a `agent.message` frame has the wrong shape",
        ),
        (
            json!({"seq":1,"type":"system.message","timestamp":"t","payload":"session.exploded","partial":null,"frame_id":"a-1"}),
            "payload of a `system.message` frame has the wrong shape",
        ),
        (
            json!({"seq":1,"type":"agent.running","timestamp":"t","payload":{},"partial":null}),
            "frame has no `frame_id`",
        ),
    ];
    for (wire, expect) in cases {
        let error = serde_json::from_value::<Frame>(wire).unwrap_err();
        assert!(
            error.to_string().contains(expect),
            "{error} should say {expect}"
        );
    }
}

#[test]
fn status_bodies() {
    let running = StatusUpdate {
        phase: Some(Phase::Running),
        message: Some(String::from("Runner started")),
        ..StatusUpdate::default()
    };
    insta::assert_json_snapshot!("status_running", running);
    let completed = StatusUpdate {
        phase: Some(Phase::Completed),
        message: Some(String::from("Runner completed")),
        completion_time: Some(String::from("2025-10-31T20:10:03.512331+00:00")),
        subtype: Some(String::from("success")),
        duration_ms: Some(1200),
        duration_api_ms: Some(900),
        is_error: Some(false),
        num_turns: Some(3),
        session_id: Some(String::from("agentic-session-1")),
        total_cost_usd: Some(0.25),
        usage: Some(json!({"input_tokens": 10})),
        result: Some(String::from("done")),
    };
    insta::assert_json_snapshot!("status_completed", completed);
    for body in [running, completed] {
        let back: StatusUpdate =
            serde_json::from_value(serde_json::to_value(&body).unwrap()).unwrap();
        assert_eq!(back, body);
    }
    let patch = AnnotationPatch::single(crate::status::SDK_SESSION_ID_ANNOTATION, "0b0f7c1e");
    insta::assert_json_snapshot!("annotation_patch", patch);
    let back: AnnotationPatch =
        serde_json::from_value(serde_json::to_value(&patch).unwrap()).unwrap();
    assert_eq!(back, patch);
}

#[test]
fn the_agents_state_has_no_frame() {
    let mut mapper = EventMapper::new();
    assert_eq!(mapper.map(Event::State(json!({"step": 1}))), None);
}

#[test]
fn events_map_to_frames() {
    let mut mapper = EventMapper::new();
    let delta = |data: &str| Event::TextDelta {
        stream: String::from("m1"),
        data: data.to_owned(),
    };
    assert_eq!(mapper.map(Event::TurnStarted).unwrap(), Outbound::Running);
    let first = mapper.map(delta("He")).unwrap();
    let second = mapper.map(delta("llo")).unwrap();
    assert!(matches!(first, Outbound::Partial(Partial { index: 0, .. })));
    assert!(
        matches!(second, Outbound::Partial(Partial { index: 1, ref data, .. }) if data == "llo")
    );
    assert_eq!(
        mapper.map(Event::Text(String::from("Hello"))).unwrap(),
        Outbound::TextBlock {
            text: String::from("Hello")
        }
    );
    assert_eq!(
        mapper
            .map(Event::Question(String::from("Approve?")))
            .unwrap(),
        Outbound::TextBlock {
            text: String::from("Approve?")
        }
    );
    assert_eq!(
        mapper
            .map(Event::Log(String::from("x")))
            .unwrap()
            .message_type(),
        MessageType::SystemMessage
    );
    // A new turn numbers its fragments from 0 again.
    mapper
        .map(Event::turn_ended(ResultPayload::default()))
        .unwrap();
    assert!(matches!(
        mapper.map(delta("x")).unwrap(),
        Outbound::Partial(Partial { index: 0, .. })
    ));
}
