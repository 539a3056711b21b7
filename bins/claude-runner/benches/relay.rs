//! The cost of relaying one Claude Code CLI line: from a stdout line of the CLI to its
//! frame at the backend.
//!
//! `fake-claude` plays the CLI, so that the source costs next to nothing: after
//! `initialize` and the user's message it prints one turn of `N` lines shaped like the
//! recorded ones (`fixtures/claude/v2.1.332/interrupt.jsonl`): for each message a
//! `message_start`, eight text deltas, the whole `assistant` text, and the block and
//! message stop events, then one `result`. The real CLI cannot be the source: its model
//! is the mock API, and the figure would be the mock's pace.
//!
//! The runner is the release `claude-runner` binary with a local backend in this process.
//! Its cost per line is the time from the turn's first frame to its result at the
//! backend, over the lines between. The baseline, in the same run and measured the same
//! way, is a bare relay: the same fake and script, each stdout line sent to the same
//! backend as one frame through tokio-tungstenite, with no parsing.
//!
//! Rounds alternate and medians are reported. Run with
//! `cargo bench -p claude-runner --bench relay`; `-- --lines N` and `-- --rounds N` change
//! the defaults (20,000 and 5). `docs/performance.md` records the figures.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and fails loudly"
)]

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Instant,
};

use ambient_local_backend::LocalBackend;
use ambient_protocol::{Frame, FrameId, Outbound, SessionMessage, runner_timestamp};
use ambient_test_support::bench;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    sync::mpsc,
};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-token";
const PROJECT: &str = "bench";
const SESSION_ID: &str = "8eea054c-4ed8-4234-9b00-5da7a325b8fd";

/// A script of `lines` CLI lines for one turn; returns it and how many lines it prints.
fn script(lines: usize) -> (String, usize) {
    let mut records = vec![
        json!({"dir": "in", "msg": {"type": "control_request", "request_id": "r1"}}),
        json!({"dir": "out", "msg": {"type": "control_response", "response": {"subtype": "success", "request_id": "r1", "response": {}}}}),
        json!({"dir": "in", "msg": {"type": "user"}}),
        json!({"dir": "out", "msg": {"type": "system", "subtype": "init", "session_id": SESSION_ID, "cwd": "/workspace", "tools": ["Task", "Bash", "Edit", "Read"], "model": "claude-opus-5-5"}}),
    ];
    let wrapper = |event: Value| json!({"type": "stream_event", "event": event, "session_id": SESSION_ID, "parent_tool_use_id": null, "uuid": "8c6a3d4e-2f1b-4b5c-9d7e-0a1b2c3d4e5f"});
    let mut printed = 0;
    let mut message = 0;
    while printed + 14 <= lines {
        message += 1;
        let id = format!("msg_mock_{message:06}");
        records.push(json!({"dir": "out", "msg": wrapper(json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": "claude-opus-5-5", "content": [], "stop_reason": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}))}));
        records.push(json!({"dir": "out", "msg": wrapper(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))}));
        let mut whole = String::new();
        for word in 0..8 {
            let text = format!("[{word}] This reply is streamed slowly so it can be interrupted. ");
            whole.push_str(&text);
            records.push(json!({"dir": "out", "msg": wrapper(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}))}));
        }
        records.push(json!({"dir": "out", "msg": {"type": "assistant", "message": {"id": id, "type": "message", "role": "assistant", "model": "claude-opus-5-5", "content": [{"type": "text", "text": whole}], "stop_reason": null, "usage": {"input_tokens": 12, "output_tokens": 96}}, "parent_tool_use_id": null, "session_id": SESSION_ID, "uuid": "0d4f7a2e-9b1c-4e3d-8a6f-5c2b1a0e9d8c"}}));
        records.push(json!({"dir": "out", "msg": wrapper(json!({"type": "content_block_stop", "index": 0}))}));
        records.push(json!({"dir": "out", "msg": wrapper(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 96}}))}));
        records.push(json!({"dir": "out", "msg": wrapper(json!({"type": "message_stop"}))}));
        printed += 14;
    }
    records.push(json!({"dir": "out", "msg": {"type": "result", "subtype": "success", "is_error": false, "duration_ms": 1000, "duration_api_ms": 900, "num_turns": 1, "result": "done", "session_id": SESSION_ID, "total_cost_usd": 0.01, "usage": {"input_tokens": 12, "output_tokens": 96}}}));
    printed += 1;
    records.push(json!({"dir": "exit", "rc": 0, "stderr": ""}));
    let text: Vec<String> = records.iter().map(Value::to_string).collect();
    (text.join("\n"), printed)
}

/// Reads broadcasts until `count` frames of the turn have arrived, or its result; returns
/// when the first and the last arrived.
async fn turn_span(
    watch: &mut mpsc::UnboundedReceiver<SessionMessage>,
    relayed: impl Fn(&SessionMessage) -> bool,
    mut last: impl FnMut(&SessionMessage) -> bool,
) -> (Instant, Instant) {
    let mut first = None;
    loop {
        let message = bench::next_broadcast(watch).await;
        if relayed(&message) {
            first.get_or_insert_with(Instant::now);
        }
        if last(&message) {
            let end = Instant::now();
            return (first.unwrap_or(end), end);
        }
    }
}

async fn runner(backend: &LocalBackend, session: &str, script: &Path, lines: usize) -> f64 {
    let mut watch = backend.watch(session);
    let binary = Path::new(env!("CARGO_BIN_EXE_claude-runner"));
    let mut child = bench::runner(binary, backend, PROJECT, session, TOKEN)
        .env("PROMPT", "bench")
        .env("CLAUDE_BIN", env!("CARGO_BIN_EXE_fake-claude"))
        .env("CLAUDE_FAKE_SCRIPT", script)
        .spawn()
        .unwrap();
    let (first, last) = turn_span(
        &mut watch,
        |m| m.payload["partial"].is_object(),
        |m| m.payload["type"] == json!("result.message"),
    )
    .await;
    let status = child.wait().await.unwrap();
    assert!(status.success(), "the runner exited with {status}");
    last.duration_since(first).as_secs_f64() * 1e6 / (lines - 1) as f64
}

/// The bare relay: the fake's stdout, one frame per line, no parsing.
async fn bare_relay(backend: &LocalBackend, session: &str, script: &Path, lines: usize) -> f64 {
    let mut watch = backend.watch(session);
    // Measured while the relay runs, as the runner's frames are.
    let measuring = tokio::spawn(async move {
        let mut seen = 0;
        turn_span(
            &mut watch,
            |m| m.kind == "system.message",
            |m| {
                if m.kind == "system.message" {
                    seen += 1;
                }
                seen == lines
            },
        )
        .await
    });
    let socket = bench::bare_client(backend, PROJECT, session, TOKEN).await;
    let (mut sink, mut echoes) = socket.split();
    tokio::spawn(async move { while let Some(Ok(_)) = echoes.next().await {} });
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fake-claude"))
        .env("CLAUDE_FAKE_SCRIPT", script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"{\"type\":\"control_request\",\"request_id\":\"r1\"}\n{\"type\":\"user\"}\n")
        .await
        .unwrap();
    // Its input is all written: the fake prints the turn, then exits at the end of input.
    drop(stdin);
    let mut output = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seq = 0;
    // The first line answers `initialize`, the second starts the turn.
    let mut skip = 2;
    while let Some(line) = output.next_line().await.unwrap() {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        seq += 1;
        let frame = Frame {
            seq,
            id: FrameId::new("bare", seq),
            timestamp: runner_timestamp(time::OffsetDateTime::now_utc()),
            body: Outbound::Log { message: line },
        };
        sink.feed(Message::Text(frame.to_json().into()))
            .await
            .unwrap();
    }
    sink.flush().await.unwrap();
    assert_eq!(
        seq as usize, lines,
        "the fake printed another turn than the script's"
    );
    let (first, last) = measuring.await.unwrap();
    let _exited = child.wait().await;
    last.duration_since(first).as_secs_f64() * 1e6 / (lines - 1) as f64
}

/// The runner's instructions per CLI line, counted by callgrind at two turn lengths (the
/// fake CLI is another process, not counted).
async fn instructions() {
    let backend = bench::paired_backend(TOKEN, PROJECT, 2)
        .start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (folder, _scratch) = bench::callgrind_folder();
    let binary = Path::new(env!("CARGO_BIN_EXE_claude-runner"));
    let mut counts = Vec::new();
    for (run, lines) in [2_000, 12_000].into_iter().enumerate() {
        let (text, printed) = script(lines);
        let script = folder.join(format!("script-{run}.jsonl"));
        std::fs::write(&script, &text).unwrap();
        let mut command = bench::runner(binary, &backend, PROJECT, &format!("runner-{run}"), TOKEN);
        command
            .env("PROMPT", "bench")
            .env("CLAUDE_BIN", env!("CARGO_BIN_EXE_fake-claude"))
            .env("CLAUDE_FAKE_SCRIPT", &script);
        let count = bench::callgrind(command, &folder.join(format!("{run}.out"))).await;
        println!("claude-runner, {printed:>6} lines: {count:>14} instructions");
        counts.push((printed, count));
    }
    let (per_line, fixed) = bench::per_unit(counts[0], counts[1]);
    println!(
        "claude-runner: {per_line:.0} instructions per CLI line, {:.1} million fixed",
        fixed / 1e6
    );
    backend.shutdown().await;
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--instructions") {
        instructions().await;
        return;
    }
    let lines = bench::number_flag("--lines", 20_000);
    let rounds = bench::number_flag("--rounds", 5);
    let (text, printed) = script(lines);
    let folder = tempfile::tempdir().unwrap();
    let script: PathBuf = folder.path().join("script.jsonl");
    std::fs::write(&script, &text).unwrap();
    let backend = bench::paired_backend(TOKEN, PROJECT, rounds)
        .start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    println!(
        "{printed} CLI lines in one turn ({:.1} MB), local backend on loopback, {rounds} rounds",
        text.len() as f64 / 1e6
    );
    let mut paired = bench::Paired::default();
    for round in 0..rounds {
        let b = bare_relay(&backend, &format!("bare-{round}"), &script, printed).await;
        let r = runner(&backend, &format!("runner-{round}"), &script, printed).await;
        println!("round {round}: bare relay {b:>6.2} µs/line   claude-runner {r:>6.2} µs/line");
        paired.push(b, r);
    }
    paired.report(
        "bare relay:",
        "claude-runner:",
        "µs/line",
        2,
        " (target: under 50)",
    );
    backend.shutdown().await;
}
