//! The mapping, on transcripts recorded from the real CLI.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use ambient_adapter::{Event, ModelCall};
use serde_json::Value;

use crate::{CliMapper, Signal};

/// The stdout lines of a recorded driver transcript (or of raw stdout).
fn stdout_of(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter_map(|record| match record.get("dir").and_then(Value::as_str) {
            Some("out") => record.get("msg").cloned(),
            Some(_) => None,
            None => Some(record),
        })
        .collect()
}

/// Every event and signal of a transcript, one line each, for a snapshot.
fn mapped(name: &str) -> Vec<String> {
    let mut mapper = CliMapper::new();
    let mut out = Vec::new();
    for line in stdout_of(name) {
        let (events, signal) = mapper.map(&line);
        for event in events {
            out.push(match event {
                Event::TextDelta { data, .. } => format!("delta {data:?}"),
                other => format!("{other:?}"),
            });
        }
        match signal {
            Signal::None => {}
            Signal::TurnEnded {
                result,
                error,
                aborted,
            } => out.push(format!(
                "turn ended: subtype={:?} is_error={:?} turns={:?} result={:?} error={error:?} aborted={aborted}",
                result.subtype, result.is_error, result.num_turns, result.result
            )),
            Signal::TurnStarted { .. } => out.push(String::from("turn started")),
            other => out.push(format!("{other:?}")),
        }
    }
    out
}

#[test]
fn a_multi_turn_conversation_maps_to_texts_and_results() {
    insta::assert_debug_snapshot!(mapped("03_multiturn.jsonl"));
}

#[test]
fn a_tool_turn_maps_to_tool_use_and_result_with_matching_ids() {
    let lines = mapped("05_tool_bash_bypass.jsonl");
    insta::assert_debug_snapshot!(lines);
}

#[test]
fn partial_messages_stream_as_deltas_of_one_block_then_the_whole_text() {
    let mut mapper = CliMapper::new();
    let mut deltas = String::new();
    let mut streams = std::collections::HashSet::new();
    let mut texts = Vec::new();
    for line in stdout_of("v2.1.332_interrupt.jsonl") {
        for event in mapper.map(&line).0 {
            match event {
                Event::TextDelta { stream, data } => {
                    streams.insert(stream);
                    deltas.push_str(&data);
                }
                Event::Text(text) => texts.push(text),
                _ => {}
            }
        }
    }
    // The interrupted turn and the one after it: each streamed, then whole.
    assert_eq!(streams.len(), 2, "{streams:?}");
    assert_eq!(deltas, texts.concat());
}

#[test]
fn an_interrupt_an_api_error_and_max_turns_end_their_turns_as_they_should() {
    insta::assert_debug_snapshot!("interrupt", mapped("10_interrupt.jsonl"));
    insta::assert_debug_snapshot!("err500", mapped("13_err500.jsonl"));
    insta::assert_debug_snapshot!("max_turns", mapped("11_max_turns.jsonl"));
}

#[test]
fn background_subagents_are_tracked_until_they_finish() {
    let mut mapper = CliMapper::new();
    let mut was_running = false;
    for line in stdout_of("v2.1.332_subagent.jsonl") {
        mapper.map(&line);
        was_running |= mapper.tasks_running();
    }
    assert!(was_running, "the subagent was never seen running");
    assert!(
        !mapper.tasks_running(),
        "the subagent was never seen finishing"
    );
}

#[test]
fn unknown_kinds_and_subtypes_are_ignored() {
    let mut mapper = CliMapper::new();
    for line in [
        serde_json::json!({"type": "rate_limit_event"}),
        serde_json::json!({"type": "system", "subtype": "brand_new"}),
        serde_json::json!({"no_type": true}),
    ] {
        assert_eq!(mapper.map(&line), (Vec::new(), Signal::None));
    }
}

#[test]
fn a_subagents_messages_are_marked_with_the_call_that_started_it() {
    let mut mapper = CliMapper::new();
    let mut marked = Vec::new();
    let mut main_texts = Vec::new();
    for line in stdout_of("v2.1.332_subagent.jsonl") {
        for event in mapper.map(&line).0 {
            match event {
                Event::Subagent {
                    parent_tool_use_id,
                    event,
                } => marked.push((parent_tool_use_id, *event)),
                Event::Text(text) => main_texts.push(text),
                _ => {}
            }
        }
    }
    let parent = String::from("toolu_mock_0007");
    assert_eq!(
        marked,
        [
            (
                parent.clone(),
                Event::ModelCall(ModelCall {
                    system: String::from("anthropic"),
                    model: Some(String::from("claude-opus-5-5")),
                    input_tokens: Some(120),
                    output_tokens: Some(1),
                })
            ),
            (
                parent,
                Event::Text(String::from("Hello from mock (turn 1)."))
            )
        ]
    );
    assert!(
        !main_texts.iter().any(|t| t == "Hello from mock (turn 1)."),
        "{main_texts:?}"
    );
}

/// A subagent in the background, recorded from the pinned CLI (with the mock API's
/// `MOCK_AGENT_SLOW`, `HOME` and `TMPDIR` in `/tmp/cli-probe/home`): the UI's notices, the
/// `tasks` report with the transcript's place (where the CLI did write it), and the
/// folders its output may be read in.
#[test]
fn a_background_task_is_told_as_the_platforms_ui_follows_it() {
    let home = std::path::Path::new("/tmp/cli-probe/home");
    let mut mapper =
        CliMapper::with_task_folders(Some(home.join(".claude")), Some(home.to_owned()));
    let mut notices = Vec::new();
    let mut reports = std::collections::BTreeMap::new();
    for line in stdout_of("v2.1.332_background_task.jsonl") {
        for event in mapper.map(&line).0 {
            match event {
                Event::Notice { name, value } => notices.push((name, value)),
                Event::Report { name, value } => {
                    if name == "tasks" {
                        // While it runs, the transcript is where the CLI writes it.
                        let task = &value["tasks"][0];
                        if task["status"] == "running" {
                            assert_eq!(
                                task["output_file"],
                                "/tmp/cli-probe/home/.claude/projects/-tmp-cli-probe-ws/\
                                 6fa93fa1-8005-4d1c-8ec9-2fa2f43874a2/subagents/\
                                 agent-af7602dc12027918d.jsonl"
                            );
                        }
                    }
                    reports.insert(name, value);
                }
                _ => {}
            }
        }
    }
    let names: Vec<&str> = notices.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["task:started", "task:completed"]);
    assert_eq!(
        notices[0].1,
        serde_json::json!({"task_id": "af7602dc12027918d", "description": "Delegate a long story",
                           "task_type": "local_agent", "status": "running"})
    );
    let completed = &notices[1].1;
    assert_eq!(completed["status"], "completed");
    assert_eq!(
        completed["usage"],
        serde_json::json!({"total_tokens": 24, "tool_uses": 0, "duration_ms": 10194})
    );
    let output_file = completed["output_file"].as_str().unwrap();
    assert!(
        output_file.starts_with("/tmp/cli-probe/home/claude-0/"),
        "{output_file}"
    );
    let task = &reports["tasks"]["tasks"][0];
    assert_eq!(task["status"], "completed");
    assert_eq!(task["output_file"], output_file);
    assert_eq!(
        reports["task_output_roots"],
        serde_json::json!([
            "/tmp/cli-probe/home/.claude",
            "/tmp/cli-probe/home/claude-0"
        ])
    );
    assert!(!mapper.tasks_running());
}

#[test]
fn a_stopped_task_is_told_once_and_a_finished_one_not_at_all() {
    let mut mapper = CliMapper::new();
    let started = serde_json::json!({"type": "system", "subtype": "task_started",
        "task_id": "t1", "description": "d", "task_type": "local_agent"});
    mapper.map(&started);
    assert!(mapper.tasks_running());
    let stopped = mapper.task_stopped("t1");
    assert!(stopped.contains(&Event::Notice {
        name: String::from("task:completed"),
        value: serde_json::json!({"task_id": "t1", "status": "stopped", "summary": "Task stopped by user"}),
    }));
    assert!(!mapper.tasks_running());
    assert!(mapper.task_stopped("t1").is_empty());
    assert!(mapper.task_stopped("never-started").is_empty());
}
