//! The mapping's order, on the sequences the runner's adapters produce.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use ambient_protocol::{Event, ResultPayload};
use serde_json::json;

use crate::{AguiEvent, AguiMapper, RunEnd, check_order};

/// A turn with everything: a log line, streamed text closed by its whole text, a tool
/// call and its result, a whole text, and the result.
pub(crate) fn full_turn() -> Vec<AguiEvent> {
    let mut mapper = AguiMapper::new("thread-1", "run-1");
    let mut events = vec![mapper.start()];
    for event in [
        Event::TurnStarted,
        Event::Log(String::from("prepare: {\"note\":\"ready\"}")),
        Event::TextDelta {
            stream: String::from("m1"),
            data: String::from("Hello "),
        },
        Event::TextDelta {
            stream: String::from("m1"),
            data: String::from("there."),
        },
        Event::Text(String::from("Hello there.")),
        Event::ToolUse {
            name: String::from("weather"),
            input: json!({"city": "Paris"}),
            id: Some(String::from("call_1")),
        },
        Event::ToolResult {
            tool_use_id: Some(String::from("call_1")),
            content: json!("sunny"),
            is_error: Some(false),
        },
        Event::Text(String::from("It is sunny.")),
    ] {
        events.extend(mapper.map(event));
    }
    let result = ResultPayload {
        subtype: Some(String::from("success")),
        result: Some(String::from("It is sunny.")),
        num_turns: Some(1),
        ..ResultPayload::default()
    };
    events.extend(mapper.map(Event::turn_ended(result.clone())));
    events.extend(mapper.finish(Some(&result), RunEnd::Completed));
    events
}

#[test]
fn a_turn_maps_to_events_in_the_protocols_order() {
    let events = full_turn();
    check_order(&events).unwrap();
    let kinds: Vec<&str> = events.iter().map(AguiEvent::kind).collect();
    assert_eq!(
        kinds,
        [
            "RUN_STARTED",
            "CUSTOM",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "TOOL_CALL_RESULT",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "RUN_FINISHED",
        ]
    );
    assert_eq!(
        serde_json::to_value(&events[7]).unwrap(),
        json!({"type": "TOOL_CALL_ARGS", "toolCallId": "call_1", "delta": "{\"city\":\"Paris\"}"})
    );
}

#[test]
fn a_question_ends_the_run_with_the_interrupt_outcome_and_a_failure_with_run_error() {
    let mut mapper = AguiMapper::new("t", "r");
    let mut events = vec![mapper.start()];
    events.extend(mapper.map(Event::Question(String::from("Approve?"))));
    let result = ResultPayload {
        result: Some(String::from("Approve?")),
        ..ResultPayload::default()
    };
    events.extend(mapper.finish(Some(&result), RunEnd::Completed));
    check_order(&events).unwrap();
    let AguiEvent::RunFinished {
        outcome: Some(outcome),
        ..
    } = events.last().unwrap()
    else {
        panic!("no outcome");
    };
    assert_eq!(outcome["type"], json!("interrupt"));
    assert_eq!(outcome["interrupts"][0]["message"], json!("Approve?"));

    let mut mapper = AguiMapper::new("t", "r");
    let mut events = vec![mapper.start()];
    events.extend(mapper.map(Event::TextDelta {
        stream: String::from("m"),
        data: String::from("half"),
    }));
    events.extend(mapper.finish(None, RunEnd::Failed("ValueError: boom")));
    check_order(&events).unwrap();
    assert_eq!(events.last().unwrap().kind(), "RUN_ERROR");
}

#[test]
fn the_order_check_names_what_breaks_a_rule() {
    let start = AguiEvent::RunStarted {
        thread_id: String::from("t"),
        run_id: String::from("r"),
    };
    let finish = AguiEvent::RunFinished {
        thread_id: String::from("t"),
        run_id: String::from("r"),
        result: None,
        outcome: None,
    };
    let content = AguiEvent::TextMessageContent {
        message_id: String::from("m"),
        delta: String::from("x"),
    };
    let error = check_order(&[start.clone(), content, finish.clone()]).unwrap_err();
    assert!(error.contains("not open"), "{error}");
    let result = |call: &str| AguiEvent::ToolCallResult {
        message_id: String::from("x"),
        tool_call_id: String::from(call),
        content: String::new(),
        role: crate::Role::Tool,
    };
    let open = AguiEvent::ToolCallStart {
        tool_call_id: String::from("c1"),
        tool_call_name: String::from("Bash"),
    };
    let end = AguiEvent::ToolCallEnd {
        tool_call_id: String::from("c1"),
    };
    let error = check_order(&[start.clone(), open, result("c1"), end, finish.clone()]).unwrap_err();
    assert!(error.contains("has not ended"), "{error}");
    // The result of a call an earlier run ended.
    assert!(check_order(&[start.clone(), result("earlier"), finish.clone()]).is_ok());
    assert!(check_order(&[finish, start]).is_err());
}
