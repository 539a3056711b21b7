//! The mapping's order, on the sequences the runner's adapters produce.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use ambient_protocol::{Event, ResultPayload};
use serde_json::json;

use crate::{AguiEvent, AguiMapper, RunEnd, check_order};

/// A turn with everything: a log line, streamed text closed by its whole text, a tool
/// call and its result, a whole text, and the result.
pub(crate) fn full_turn() -> Vec<AguiEvent> {
    full_turn_with(AguiMapper::new("thread-1", "run-1"))
}

/// [`full_turn`] through `mapper`.
fn full_turn_with(mut mapper: AguiMapper) -> Vec<AguiEvent> {
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
        usage: Some(json!({
            "input_tokens": 10, "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 5, "output_tokens": 7,
        })),
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
            "MESSAGES_SNAPSHOT",
            "RUN_FINISHED",
        ]
    );
    assert_eq!(
        serde_json::to_value(&events[7]).unwrap(),
        json!({"type": "TOOL_CALL_ARGS", "toolCallId": "call_1", "delta": "{\"city\":\"Paris\"}"})
    );
}

#[test]
fn the_snapshot_before_the_runs_end_holds_its_input_and_all_the_agent_said_and_did() {
    let events = full_turn_with(AguiMapper::new("thread-1", "run-1").with_input_messages(&[
        json!({"id": "u1", "role": "user", "content": "Weather in Paris?"}),
    ]));
    check_order(&events).unwrap();
    let AguiEvent::MessagesSnapshot { messages } = &events[events.len() - 2] else {
        panic!("no snapshot before the end: {events:?}");
    };
    let messages = messages.to_values();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "assistant", "tool", "assistant"]
    );
    assert_eq!(messages[1]["content"], "Hello there.");
    assert_eq!(
        messages[2]["toolCalls"][0],
        json!({"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}})
    );
    assert_eq!(messages[3]["toolCallId"], "call_1");
    assert_eq!(messages[3]["content"], "sunny");
    assert_eq!(messages[4]["content"], "It is sunny.");
    // The ids are the ids of the streamed events.
    let AguiEvent::TextMessageStart { message_id, .. } = &events[2] else {
        panic!("{events:?}");
    };
    assert_eq!(messages[1]["id"], json!(message_id));
    let AguiEvent::RunFinished { usage, .. } = events.last().unwrap() else {
        panic!("{events:?}");
    };
    // Cache reads and writes are parts of the input, in AG-UI's accounting.
    assert_eq!(
        usage.as_deref().unwrap(),
        [
            json!({"inputTokens": 115, "outputTokens": 7, "totalTokens": 122, "cachedInputTokens": 100, "cacheWriteInputTokens": 5})
        ]
    );
}

#[test]
fn a_runs_snapshot_is_bounded_and_says_what_it_left_out() {
    let mut mapper = AguiMapper::new("t", "r");
    // Long texts, then many short ones.
    let piece = "é".repeat(100 << 10);
    for _ in 0..4 {
        mapper.map(Event::Text(piece.clone()));
    }
    for n in 0..20_000 {
        mapper.map(Event::Text(format!("line {n}")));
    }
    let events = mapper.finish(None, RunEnd::Completed);
    let AguiEvent::MessagesSnapshot { messages } = &events[0] else {
        panic!("{events:?}");
    };
    let messages = messages.to_values();
    let size = serde_json::to_string(&messages).unwrap().len();
    assert!(size <= 512 << 10, "{size} bytes kept");
    assert!(messages[1]["content"].as_str().unwrap().ends_with('é'));
    assert!(
        messages[2]["content"]
            .as_str()
            .unwrap()
            .ends_with("[… cut short]")
    );
    // What room the cut text leaves takes a few short lines; the rest are left out.
    assert!(messages.len() < 200, "{} messages kept", messages.len());
    let note = messages.last().unwrap()["content"].as_str().unwrap();
    assert!(
        note.contains("more messages of this run are left out"),
        "{note}"
    );
}

#[test]
fn a_run_that_stops_to_ask_sends_the_whole_state_before_its_end() {
    let mut mapper = AguiMapper::new("t", "r");
    let mut events = vec![mapper.start()];
    events.extend(mapper.map(Event::State(json!({"step": 1, "plan": ["a"]}))));
    events.extend(mapper.map(Event::State(json!({"step": 2, "plan": ["a"]}))));
    events.extend(mapper.map(Event::Question(String::from("Go on?"))));
    events.extend(mapper.finish(None, RunEnd::Completed));
    check_order(&events).unwrap();
    let kinds: Vec<&str> = events.iter().map(AguiEvent::kind).collect();
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["STATE_SNAPSHOT", "MESSAGES_SNAPSHOT", "RUN_FINISHED"]
    );
    assert_eq!(
        events[events.len() - 3],
        AguiEvent::StateSnapshot {
            snapshot: json!({"step": 2, "plan": ["a"]})
        }
    );
}

#[test]
fn steps_start_and_finish_and_a_run_finishes_the_ones_left_open() {
    let step = |name: &str, finished| Event::Step {
        name: name.to_owned(),
        finished,
    };
    let mut mapper = AguiMapper::new("t", "r");
    let mut events = vec![mapper.start()];
    for event in [
        step("plan", false),
        Event::Text(String::from("planned")),
        step("plan", true),
        // A step that ends but did not start here is not said to end.
        step("earlier", true),
        step("act", false),
    ] {
        events.extend(mapper.map(event));
    }
    events.extend(mapper.finish(None, RunEnd::Completed));
    check_order(&events).unwrap();
    let kinds: Vec<&str> = events.iter().map(AguiEvent::kind).collect();
    assert_eq!(
        kinds,
        [
            "RUN_STARTED",
            "STEP_STARTED",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "STEP_FINISHED",
            "STEP_STARTED",
            "STEP_FINISHED",
            "MESSAGES_SNAPSHOT",
            "RUN_FINISHED"
        ]
    );
    assert_eq!(
        events[7],
        AguiEvent::StepFinished {
            step_name: String::from("act")
        }
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
        usage: None,
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
