//! The in-pod driver's failures, each a clear error with the driver's stderr, and nothing
//! already relayed lost.

use ambient_adapter_langgraph::THREAD_ANNOTATION;
use ambient_local_backend::SessionSeed;
use ambient_test_support::{
    harness::{PROJECT, SESSION, until},
    langgraph::venv,
};
use serde_json::json;

use crate::{Mode, is, start, start_with};

/// Writes `files` into the session's workspace, runs `graph` there, and returns the final
/// status message (the session must have failed).
async fn failing(
    graph: &str,
    files: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> (String, Vec<String>) {
    let env = start(Mode::Driver).await;
    for (name, text) in files {
        std::fs::write(env.env.workspace.path().join(name), text).unwrap();
    }
    let mut settings = vec![("PROMPT", "go")];
    settings.extend_from_slice(extra);
    let finished = env.run(graph, &settings).await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let status = env.status();
    assert_eq!(status["phase"], json!("Failed"), "{status:?}");
    let message = status["message"].as_str().unwrap().to_owned();
    (message, env.transcript().await)
}

#[tokio::test]
async fn a_graph_that_does_not_import_is_named_with_the_python_error() {
    let (message, _) = failing(
        "broken.py:graph",
        &[("broken.py", "import a_module_that_is_not_there\n")],
        &[],
    )
    .await;
    assert!(
        message.contains("`broken.py:graph` could not be loaded")
            && message.contains("ModuleNotFoundError")
            && message.contains("a_module_that_is_not_there"),
        "{message}"
    );
}

#[tokio::test]
async fn a_graph_that_is_not_in_langgraph_json_is_named_with_the_ones_that_are() {
    let (message, _) = failing("nope", &[], &[]).await;
    assert!(
        message.contains("no graph `nope`") && message.contains("hitl"),
        "{message}"
    );
}

#[tokio::test]
async fn a_driver_that_dies_mid_run_fails_the_session_and_keeps_what_was_relayed() {
    let crashing = r#"
import os, sys
from typing import TypedDict
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

class State(TypedDict, total=False):
    request: str

def work(state: State):
    get_stream_writer()({"before": "the crash"})
    return {}

def crash(state: State):
    print("about to fall over", file=sys.stderr, flush=True)
    os._exit(7)

graph = StateGraph(State).add_node("work", work).add_node("crash", crash).add_edge(START, "work").add_edge("work", "crash").add_edge("crash", END).compile()
"#;
    let config = r#"{"prompt_field": "request"}"#;
    let (message, lines) = failing(
        "crashing.py:graph",
        &[("crashing.py", crashing)],
        &[("WORKFLOW_CONFIG", config)],
    )
    .await;
    assert!(
        message.contains("exited in the middle of a run")
            && message.contains("7")
            && message.contains("about to fall over"),
        "{message}"
    );
    assert!(
        lines.contains(&String::from(r#"· {"before":"the crash"}"#)),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_driver_line_that_is_not_json_fails_the_session_and_names_it() {
    let bad_driver = r#"
import json, sys
print('{"event": "ready", "data": {}}', flush=True)
for line in sys.stdin:
    if json.loads(line).get("op") == "state":
        print('{"event": "state", "data": {"values": {}, "next": [], "interrupts": []}}', flush=True)
        continue
    print('{"event": "updates", "data": {"step": 1}, "ns": []}', flush=True)
    print('{"event": "updates", oops', flush=True)
"#;
    let env = start(Mode::Driver).await;
    let driver = env.env.workspace.path().join("bad_driver.py");
    std::fs::write(&driver, bad_driver).unwrap();
    let finished = env
        .run(
            "chat",
            &[
                ("PROMPT", "go"),
                ("LANGGRAPH_DRIVER", driver.to_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let message = env.status()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("not JSON") && message.contains("oops"),
        "{message}"
    );
    assert!(
        env.transcript()
            .await
            .contains(&String::from(r#"· step: 1"#)),
        "the event before the bad line was lost"
    );
}

#[tokio::test]
async fn a_graph_that_hangs_while_loading_fails_within_the_bound() {
    let (message, _) = failing(
        "slow_import.py:graph",
        &[("slow_import.py", "import time\ntime.sleep(600)\n")],
        &[("LANGGRAPH_DRIVER_START_TIMEOUT", "2")],
    )
    .await;
    assert!(
        message.contains("did not load the graph within 2 s"),
        "{message}"
    );
}

#[tokio::test]
async fn a_driver_whose_stderr_is_not_utf8_is_still_heard_to_the_end() {
    let crashing = r#"
import os, sys
from typing import TypedDict
from langgraph.graph import END, START, StateGraph

class State(TypedDict, total=False):
    request: str

def crash(state: State):
    sys.stderr.buffer.write(b"\xff\xfe not text\n")
    print("the words after the bad bytes", file=sys.stderr, flush=True)
    os._exit(5)

graph = StateGraph(State).add_node("crash", crash).add_edge(START, "crash").add_edge("crash", END).compile()
"#;
    let config = r#"{"prompt_field": "request"}"#;
    let (message, _) = failing(
        "crashing.py:graph",
        &[("crashing.py", crashing)],
        &[("WORKFLOW_CONFIG", config)],
    )
    .await;
    assert!(
        message.contains("the words after the bad bytes"),
        "{message}"
    );
}

#[tokio::test]
async fn numbers_json_cannot_carry_arrive_as_null() {
    let graph = r#"
from typing import TypedDict
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

class State(TypedDict, total=False):
    request: str

def measure(state: State):
    get_stream_writer()({"ratio": float("nan"), "limit": float("inf"), "fine": 1.5})
    return {}

graph = StateGraph(State).add_node("measure", measure).add_edge(START, "measure").add_edge("measure", END).compile()
"#;
    let env = start(Mode::Driver).await;
    std::fs::write(env.env.workspace.path().join("odd.py"), graph).unwrap();
    let finished = env
        .run(
            "odd.py:graph",
            &[
                ("PROMPT", "go"),
                ("WORKFLOW_CONFIG", r#"{"prompt_field": "request"}"#),
            ],
        )
        .await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    assert!(
        lines.contains(&String::from(r#"· {"fine":1.5,"limit":null,"ratio":null}"#)),
        "{lines:#?}"
    );
}

/// Writes checkpoints in the driver's earlier format (a pickled in-memory saver) for a
/// thread of `hitl` stopped at its question, where the pod keeps them.
fn old_format_checkpoints(workspace: &std::path::Path, thread: &str) -> std::path::PathBuf {
    let folder = workspace.join(".langgraph-runner");
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join("checkpoints.pkl");
    let script = format!(
        r#"
import asyncio, pickle, sys
sys.path.insert(0, {workspace:?})
from langgraph.checkpoint.memory import InMemorySaver
import graphs
saver = InMemorySaver()
graph = graphs.hitl.copy(update={{"checkpointer": saver}})
asyncio.run(graph.ainvoke({{"request": "deploy v4"}}, {{"configurable": {{"thread_id": {thread:?}}}}}))
storage = {{t: {{ns: dict(c) for ns, c in n.items()}} for t, n in saver.storage.items()}}
writes = {{k: dict(w) for k, w in saver.writes.items()}}
with open({file:?}, "wb") as out:
    pickle.dump((storage, writes, dict(saver.blobs)), out)
"#,
        workspace = workspace.to_str().unwrap(),
        file = file.to_str().unwrap(),
    );
    let python = venv().join("bin/python");
    let status = std::process::Command::new(python)
        .args(["-c", &script])
        .current_dir(workspace)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the old-format checkpoints were not written"
    );
    file
}

#[tokio::test]
async fn checkpoints_of_the_earlier_format_are_carried_over_and_the_thread_goes_on() {
    let parent = "agentic-session-parent";
    let thread = "thread-before-the-upgrade";
    let env = start_with(
        Mode::Driver,
        [
            SessionSeed::new(PROJECT, parent).annotation(THREAD_ANNOTATION, thread),
            SessionSeed::new(PROJECT, SESSION),
        ],
    )
    .await;
    let old = old_format_checkpoints(env.env.workspace.path(), thread);
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(
            "hitl",
            &[("INTERACTIVE", "true"), ("PARENT_SESSION_ID", parent)],
        )
        .spawn()
        .unwrap();
    // The thread's question, read from the carried-over checkpoint, is asked again.
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"content": "approved"})).await;
    until(&mut watch, is("agent.waiting")).await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    assert!(
        lines.contains(&String::from(
            "agent: Approve this request?\n{\"request\":\"deploy v4\"}"
        )),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&String::from(r#"· ask_human: {"approved":"approved"}"#)),
        "{lines:#?}"
    );
    assert!(!old.exists(), "the old file was read again next time");
    assert!(old.with_extension("pkl.migrated").exists());
    assert!(old.with_extension("sqlite").exists());
}
