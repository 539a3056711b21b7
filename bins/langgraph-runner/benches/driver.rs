//! The in-pod driver: its start-up time, and the cost of relaying one event from a graph
//! running in the pod to a frame at the backend.
//!
//! Start-up: the time from spawning the driver to its `ready` (Python started, LangGraph
//! imported, the graph loaded and given its checkpointer), against the baseline of a
//! bare `python -c "import langgraph.graph"` in the same run. Ten of each, medians.
//!
//! Per event: a graph whose one node writes `N` custom events. The runner is the release
//! `langgraph-runner` binary in pod mode against a local backend in this process; its cost
//! per event is the time from the first event's frame to the run's result at the backend,
//! over `N`. The baseline, in the same run, is the same graph streamed by LangGraph itself
//! in plain Python (`astream`, the same stream modes, events counted and dropped): what
//! any in-pod execution pays before relaying anything. Five alternating rounds, medians.
//!
//! A long thread (`-- --turns N`, instead of the above): one interactive session in the
//! pod on a chat graph, `N` user messages on one thread one after the other; each turn's
//! cost is the time from posting the message to the turn's result at the backend. The
//! median of the first ten turns and of the last ten are reported, and their ratio: the
//! checkpointer must not make a run's cost grow with the thread.
//!
//! Needs the venv `./scripts/test` installs. Run with
//! `cargo bench -p langgraph-runner --bench driver`; `-- --events N` and `-- --rounds N`
//! change the defaults (20,000 and 5). `docs/performance.md` records the figures.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and fails loudly"
)]

use std::{
    path::Path,
    time::{Duration, Instant},
};

use ambient_adapter_langgraph::{DriverSettings, GraphDriver};
use ambient_local_backend::{LocalBackend, SessionSeed};
use ambient_test_support::{bench, langgraph::venv};
use serde_json::json;

const TOKEN: &str = "bench-token";
const PROJECT: &str = "bench";

const BURST_GRAPH: &str = r#"
from typing import TypedDict
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

class State(TypedDict, total=False):
    request: str

class Size(TypedDict, total=False):
    events: int

def burst(state: State, runtime: Runtime[Size]):
    write = get_stream_writer()
    for i in range(int((runtime.context or {}).get("events", 1000))):
        write({"event": i, "text": "a custom event of about the size a progress report has"})
    return {}

graph = StateGraph(State, context_schema=Size).add_node("burst", burst).add_edge(START, "burst").add_edge("burst", END).compile()
"#;

const CHAT_GRAPH: &str = r#"
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph

def reply(state: MessagesState):
    said = state["messages"][-1].content
    return {"messages": [AIMessage(content=f"turn {len(state['messages'])}: you said {said}")]}

graph = StateGraph(MessagesState).add_node("reply", reply).add_edge(START, "reply").add_edge("reply", END).compile()
"#;

/// The same turns with LangGraph alone: the graph of `chat.py` with the SQLite
/// checkpointer the driver uses, each turn streamed and its state read, as the driver does;
/// prints each turn's ms.
const PLAIN_LONG_THREAD: &str = r#"
import asyncio, os, sys, time
sys.path.insert(0, sys.argv[1])
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
import chat

async def main():
    async with AsyncSqliteSaver.from_conn_string(os.path.join(sys.argv[1], "plain.sqlite")) as saver:
        graph = chat.graph.copy(update={"checkpointer": saver})
        config = {"configurable": {"thread_id": "t"}}
        for turn in range(int(sys.argv[2])):
            started = time.perf_counter()
            async for _ in graph.astream({"messages": [{"role": "user", "content": f"message {turn}"}]}, config, stream_mode=["updates", "messages", "custom"], version="v2"):
                pass
            await graph.aget_state(config)
            print((time.perf_counter() - started) * 1000, flush=True)

asyncio.run(main())
"#;

const PLAIN_STREAM: &str = r#"
import asyncio, sys, time
sys.path.insert(0, sys.argv[1])
from burst import graph

async def main():
    started = time.perf_counter()
    count = 0
    async for part in graph.astream({"request": "bench"}, context={"events": int(sys.argv[2])}, stream_mode=["updates", "messages", "custom"], subgraphs=True, version="v2"):
        count += 1
    print((time.perf_counter() - started) * 1e6 / int(sys.argv[2]))

asyncio.run(main())
"#;

fn python() -> std::path::PathBuf {
    let python = venv().join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test first",
        python.display()
    );
    python
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

async fn startup(folder: &Path, rounds: usize) {
    let settings = DriverSettings {
        python: python(),
        env: vec![(
            std::ffi::OsString::from("PATH"),
            std::ffi::OsString::from("/usr/bin:/bin"),
        )],
        ..DriverSettings::default()
    };
    let (mut bare, mut driver) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let started = Instant::now();
        let status = tokio::process::Command::new(python())
            .args(["-c", "import langgraph.graph"])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        bare.push(ms(started.elapsed()));
        let started = Instant::now();
        let mut running = GraphDriver::start(
            &settings,
            "burst.py:graph",
            folder,
            &folder.join(format!("checkpoints-{round}.pkl")),
        )
        .await
        .unwrap();
        driver.push(ms(started.elapsed()));
        running.finish(Duration::from_secs(5)).await;
    }
    println!(
        "start-up, median of {rounds}: python importing langgraph {:.0} ms, driver ready {:.0} ms",
        bench::median(&mut bare),
        bench::median(&mut driver)
    );
}

async fn plain_python(folder: &Path, events: usize) -> f64 {
    let output = tokio::process::Command::new(python())
        .args(["-c", PLAIN_STREAM])
        .arg(folder)
        .arg(events.to_string())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

/// The release runner for `session`, running `workflow` in the pod from `folder`.
fn pod_runner(
    backend: &LocalBackend,
    session: &str,
    folder: &Path,
    workflow: &str,
) -> tokio::process::Command {
    let binary = Path::new(env!("CARGO_BIN_EXE_langgraph-runner"));
    let mut command = bench::runner(binary, backend, PROJECT, session, TOKEN);
    command
        .env("WORKSPACE_PATH", folder)
        .env("WORKFLOW_ID", workflow)
        .env("LANGGRAPH_PYTHON", python())
        .env("PATH", "/usr/bin:/bin");
    command
}

async fn runner(backend: &LocalBackend, session: &str, folder: &Path, events: usize) -> f64 {
    let mut watch = backend.watch(session);
    let config = json!({"prompt_field": "request", "context": {"events": events}}).to_string();
    let mut child = pod_runner(backend, session, folder, "burst.py:graph")
        .env("PROMPT", "bench")
        .env("WORKFLOW_CONFIG", config)
        .spawn()
        .unwrap();
    let mut first = None;
    let last = loop {
        let message = tokio::time::timeout(Duration::from_secs(300), watch.recv())
            .await
            .expect("frames keep arriving")
            .expect("the backend is up");
        if message.kind == "system.message" && message.payload.to_string().contains("\\\"event\\\"")
        {
            first.get_or_insert_with(Instant::now);
        }
        if message.payload["type"] == json!("result.message") {
            break Instant::now();
        }
    };
    let status = child.wait().await.unwrap();
    assert!(status.success(), "the runner exited with {status}");
    last.duration_since(first.unwrap_or(last)).as_secs_f64() * 1e6 / events as f64
}

/// `turns` messages on one thread of a chat graph in the pod; each turn's time in ms.
async fn long_thread(turns: usize) {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("chat.py"), CHAT_GRAPH).unwrap();
    let session = "long-thread";
    let backend = LocalBackend::builder()
        .token(TOKEN)
        .ping_interval(Duration::ZERO)
        .session(SessionSeed::new(PROJECT, session))
        .start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let mut watch = backend.watch(session);
    let mut child = pod_runner(&backend, session, folder.path(), "chat.py:graph")
        .env("INTERACTIVE", "true")
        .spawn()
        .unwrap();
    backend.wait_for_connections(session, 1).await.unwrap();
    let mut costs = Vec::with_capacity(turns);
    for turn in 0..turns {
        let posted = Instant::now();
        backend
            .post_message(
                PROJECT,
                session,
                json!({"content": format!("message {turn}")}),
            )
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(120), watch.recv())
                .await
                .expect("the turn ends")
                .expect("the backend is up");
            if message.payload["type"] == json!("result.message") {
                break;
            }
        }
        costs.push(ms(posted.elapsed()));
    }
    backend
        .post_message(PROJECT, session, json!({"type": "end_session"}))
        .await
        .unwrap();
    let status = child.wait().await.unwrap();
    assert!(status.success(), "the runner exited with {status}");
    let database = folder.path().join(".langgraph-runner/checkpoints.sqlite");
    let size = std::fs::metadata(&database).map_or(0, |m| m.len());
    let output = tokio::process::Command::new(python())
        .args(["-c", PLAIN_LONG_THREAD])
        .arg(folder.path())
        .arg(turns.to_string())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plain: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().parse().unwrap())
        .collect();
    let window = 10.min(turns);
    let ends = |costs: &[f64]| {
        let mut first = costs[..window].to_vec();
        let mut last = costs[costs.len() - window..].to_vec();
        (bench::median(&mut first), bench::median(&mut last))
    };
    let (first, last) = ends(&costs);
    let (plain_first, plain_last) = ends(&plain);
    println!(
        "{turns} turns on one thread of a chat graph in the pod (medians of the first and last {window})"
    );
    println!(
        "LangGraph alone (SQLite checkpointer): first {plain_first:>6.2} ms, last {plain_last:>6.2} ms, last ÷ first {:.2}",
        plain_last / plain_first
    );
    println!(
        "langgraph-runner in the pod:           first {first:>6.2} ms, last {last:>6.2} ms, last ÷ first {:.2}",
        last / first
    );
    println!(
        "the runner over LangGraph alone:       first {:>6.2} ms, last {:>6.2} ms",
        first - plain_first,
        last - plain_last
    );
    println!(
        "checkpoint database after the last turn: {:.2} MB",
        size as f64 / 1e6
    );
    backend.shutdown().await;
}

#[tokio::main]
async fn main() {
    let turns = bench::number_flag("--turns", 0);
    if turns > 0 {
        long_thread(turns).await;
        return;
    }
    let events = bench::number_flag("--events", 20_000);
    let rounds = bench::number_flag("--rounds", 5);
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("burst.py"), BURST_GRAPH).unwrap();
    startup(folder.path(), 10).await;
    let mut builder = LocalBackend::builder()
        .token(TOKEN)
        .ping_interval(Duration::ZERO);
    for round in 0..rounds {
        builder = builder.session(SessionSeed::new(PROJECT, format!("runner-{round}")));
    }
    let backend = builder.start(([127, 0, 0, 1], 0).into()).await.unwrap();
    println!("{events} custom events from one node, local backend on loopback, {rounds} rounds");
    let (mut plain, mut ours, mut overhead) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let p = plain_python(folder.path(), events).await;
        let r = runner(&backend, &format!("runner-{round}"), folder.path(), events).await;
        println!(
            "round {round}: LangGraph alone {p:>6.2} µs/event   langgraph-runner in the pod {r:>6.2} µs/event"
        );
        plain.push(p);
        ours.push(r);
        overhead.push(r - p);
    }
    println!(
        "median LangGraph alone:   {:.2} µs/event",
        bench::median(&mut plain)
    );
    println!(
        "median runner in the pod: {:.2} µs/event",
        bench::median(&mut ours)
    );
    println!(
        "median cost of the driver and the relay over LangGraph alone: {:.2} µs/event",
        bench::median(&mut overhead)
    );
    backend.shutdown().await;
}
