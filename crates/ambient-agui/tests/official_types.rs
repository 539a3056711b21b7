//! Every event the mapper makes, checked against the official AG-UI types (the
//! `ag-ui-protocol` package, installed by `./scripts/test` into `.venv`): valid, with no
//! field the protocol does not define, and read back as itself.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use ambient_agui::{AguiMapper, RunEnd, check_order};
use ambient_protocol::{Event, ResultPayload};
use ambient_test_support::agui::validate_with_official_types;
use serde_json::json;

#[test]
fn every_event_is_valid_for_the_official_types() {
    let mut mapper = AguiMapper::new("thread-1", "run-1");
    let mut events = vec![mapper.start()];
    for event in [
        Event::Log(String::from("a log line")),
        Event::TextDelta {
            stream: String::from("m1"),
            data: String::from("Hello "),
        },
        Event::Text(String::from("Hello")),
        Event::ToolUse {
            name: String::from("Bash"),
            input: json!({"command": "echo hi"}),
            id: Some(String::from("toolu_1")),
        },
        Event::ToolResult {
            tool_use_id: Some(String::from("toolu_1")),
            content: json!([{"type": "text", "text": "hi"}]),
            is_error: Some(false),
        },
        Event::State(json!({"messages": [{"type": "human", "content": "hi"}], "step/name": "a"})),
        Event::State(
            json!({"messages": [{"type": "human", "content": "hi"}, {"type": "ai", "content": "hello"}], "step/name": "b"}),
        ),
        Event::Question(String::from("Approve the deploy?")),
    ] {
        events.extend(mapper.map(event));
    }
    let result = ResultPayload {
        subtype: Some(String::from("awaiting_input")),
        result: Some(String::from("Approve the deploy?")),
        total_cost_usd: Some(0.01),
        ..ResultPayload::default()
    };
    events.extend(mapper.finish(Some(&result), RunEnd::Completed));
    check_order(&events).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    assert!(kinds.contains(&"STATE_SNAPSHOT") && kinds.contains(&"STATE_DELTA"));
    let mut failed = AguiMapper::new("thread-1", "run-2");
    events.push(failed.start());
    events.extend(failed.finish(None, RunEnd::Failed("the graph failed")));
    let mut cancelled = AguiMapper::new("thread-1", "run-3");
    events.push(cancelled.start());
    events.extend(cancelled.finish(None, RunEnd::Cancelled));

    let values: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    validate_with_official_types("events", &values);
}
