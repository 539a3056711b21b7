//! The mapping, on transcripts recorded from the real CLI.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use ambient_adapter::{Event, ModelCall};
use serde_json::Value;

use crate::{CliMapper, Signal, TaskFolders};

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
    let mut mapper = CliMapper::with_task_folders(probe_folders());
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
            "/tmp/cli-probe/home/.claude/projects",
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

/// The CLI's task folders where the background task fixture was recorded.
fn probe_folders() -> TaskFolders {
    let home = std::path::Path::new("/tmp/cli-probe/home");
    TaskFolders {
        config_dir: Some(home.join(".claude")),
        output_roots: vec![home.join(".claude/projects"), home.join("claude-0")],
    }
}

/// The `tasks` report among `events`.
fn tasks_report(events: &[Event]) -> Option<Value> {
    events.iter().find_map(|event| match event {
        Event::Report { name, value } if name == "tasks" => Some(value.clone()),
        _ => None,
    })
}

/// The agent can write lines into the CLI's stdout: a task's output file is kept only
/// inside the CLI's own output folders, named plainly, whatever the line says.
#[test]
fn a_tasks_output_file_outside_the_clis_folders_is_not_kept() {
    let mut mapper = CliMapper::with_task_folders(probe_folders());
    for (id, output_file) in [
        ("t1", "/var/run/secrets/kubernetes.io/serviceaccount/token"),
        ("t2", "/tmp/cli-probe/home/claude-0/../../../etc/shadow"),
        ("t3", "/tmp/cli-probe/home/claude-9/p/s/tasks/t3.output"),
        ("t4", "/tmp/cli-probe/home/.claude/.credentials.json"),
        ("t5", "tasks/t5.output"),
        ("t6", "/tmp/cli-probe/home/claude-0"),
    ] {
        let line = serde_json::json!({"type": "system", "subtype": "task_notification",
            "task_id": id, "status": "completed", "output_file": output_file});
        let report = tasks_report(&mapper.map(&line).0).unwrap();
        let task = report["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|task| task["task_id"] == id)
            .unwrap();
        assert!(task.get("output_file").is_none(), "{output_file} was kept");
    }
    let kept = "/tmp/cli-probe/home/claude-0/-ws/s/tasks/t7.output";
    let line = serde_json::json!({"type": "system", "subtype": "task_notification",
        "task_id": "t7", "status": "completed", "output_file": kept});
    let report = tasks_report(&mapper.map(&line).0).unwrap();
    assert_eq!(report["tasks"][6]["output_file"], kept);
}

/// A flood of tasks with long fields: what is listed stays within its budget, the
/// strings are cut, a usage keeps only its counts, and an id that is not a plain name is
/// ignored.
#[test]
fn a_flood_of_tasks_is_held_within_its_budget() {
    let mut mapper = CliMapper::with_task_folders(probe_folders());
    // Half control characters, each six bytes in the report's JSON.
    let long = "x\u{1}".repeat(1 << 19);
    let mut last_report = Value::Null;
    for i in 0..2_000 {
        let line = serde_json::json!({"type": "system", "subtype": "task_started",
            "task_id": format!("t{i}"), "description": long, "task_type": long});
        let started = tasks_report(&mapper.map(&line).0).unwrap();
        assert!(started.to_string().len() < 192 << 10);
        let progress = serde_json::json!({"type": "system", "subtype": "task_progress",
            "task_id": format!("t{i}"), "description": long, "last_tool_name": long,
            "usage": {"total_tokens": 5, "note": long, "nested": {"deep": long}}});
        last_report = tasks_report(&mapper.map(&progress).0).unwrap();
    }
    let bytes = last_report.to_string().len();
    assert!(bytes < 192 << 10, "the tasks report holds {bytes} bytes");
    let tasks = last_report["tasks"].as_array().unwrap();
    assert!(tasks.len() <= 100, "{} tasks listed", tasks.len());
    let newest = tasks.last().unwrap();
    assert_eq!(newest["task_id"], "t1999");
    assert_eq!(newest["description"].as_str().unwrap().len(), 1 << 10);
    assert_eq!(newest["usage"], serde_json::json!({"total_tokens": 5}));
    assert!(newest["last_tool_name"].as_str().unwrap().len() <= 128);
    assert!(mapper.tasks_running());

    for id in ["../../etc", "", "a b", &"y".repeat(200)] {
        let line = serde_json::json!({"type": "system", "subtype": "task_started",
            "task_id": id, "description": "d"});
        assert!(mapper.map(&line).0.is_empty(), "task id {id:?} was taken");
    }
}

/// `.mcp.json` is in a checkout the agent controls: a link is not followed, a FIFO not
/// waited on, a file too large not read.
#[test]
fn an_mcp_config_that_is_a_link_a_fifo_or_too_large_is_refused() {
    use crate::adapter::read_mcp_config;
    let folder = tempfile::tempdir().unwrap();
    let config = folder.path().join(".mcp.json");
    std::fs::write(&config, r#"{"mcpServers": {}}"#).unwrap();
    assert_eq!(read_mcp_config(&config).unwrap(), r#"{"mcpServers": {}}"#);

    let linked = folder.path().join("linked.json");
    std::os::unix::fs::symlink(&config, &linked).unwrap();
    let refused = read_mcp_config(&linked).unwrap_err().to_string();
    assert!(refused.contains("symbolic link"), "{refused}");

    let fifo = folder.path().join("fifo.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert!(read_mcp_config(&fifo).is_err());

    let large = folder.path().join("large.json");
    std::fs::File::create(&large)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    assert!(read_mcp_config(&large).is_err());
}
