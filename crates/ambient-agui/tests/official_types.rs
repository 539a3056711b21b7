//! Every event the mapper makes, checked against the official AG-UI types (the
//! `ag-ui-protocol` package, installed by `./scripts/test` into `.venv`).
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use ambient_agui::{AguiMapper, check_order};
use ambient_protocol::{Event, ResultPayload};
use ambient_test_support::langgraph::venv;
use serde_json::json;

const VALIDATE: &str = r#"
import json, sys
from pydantic import TypeAdapter
from ag_ui.core import Event
adapter = TypeAdapter(Event)
for number, line in enumerate(open(sys.argv[1]), 1):
    event = adapter.validate_python(json.loads(line))
    # Round trip: what the official types write back has the same type.
    assert event.model_dump(by_alias=True, exclude_none=True)["type"] == json.loads(line)["type"], number
print("ok")
"#;

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
        Event::Text(String::from("Approve the deploy?")),
        Event::AwaitingInput,
    ] {
        events.extend(mapper.map(event));
    }
    let result = ResultPayload {
        subtype: Some(String::from("awaiting_input")),
        result: Some(String::from("Approve the deploy?")),
        total_cost_usd: Some(0.01),
        ..ResultPayload::default()
    };
    events.extend(mapper.finish(Some(&result), None));
    check_order(&events).unwrap();
    let mut failed = AguiMapper::new("thread-1", "run-2");
    events.push(failed.start());
    events.extend(failed.finish(None, Some("the graph failed")));

    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("events.jsonl");
    let lines: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let python = venv().join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test",
        python.display()
    );
    let output = std::process::Command::new(python)
        .args(["-c", VALIDATE])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the official AG-UI types refused an event:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
