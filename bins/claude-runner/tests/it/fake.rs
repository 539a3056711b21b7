//! The process plumbing, against `fake-claude` playing scripts: a recorded conversation
//! replayed both ways, the argv, and the ways a CLI can fail (crash, a line that is not
//! JSON, a hang, a start that fails), each a clear error with nothing relayed lost.

mod bounds;

use ambient_local_backend::SessionSeed;
use ambient_test_support::harness::{Backend, Finished, PROJECT, SESSION, until};
use serde_json::{Value, json};

/// A local backend and a script for the fake CLI.
struct Fake {
    env: Backend,
    script: std::path::PathBuf,
    argv: std::path::PathBuf,
}

/// A recorded CLI transcript from the adapter's fixtures.
fn recorded(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/../../crates/ambient-adapter-claude/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn fake(records: &[Value]) -> Fake {
    let env = Backend::start(
        env!("CARGO_BIN_EXE_claude-runner"),
        SessionSeed::new(PROJECT, SESSION),
    )
    .await;
    let script = env.workspace.path().join("fake-script.jsonl");
    let text: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(&script, text.join("\n")).unwrap();
    let argv = env.workspace.path().join("fake-argv.txt");
    Fake { env, script, argv }
}

/// The start every CLI makes: `initialize` answered.
fn initialized() -> Vec<Value> {
    vec![
        json!({"dir": "in", "msg": {"type": "control_request", "request_id": "r1", "request": {"subtype": "initialize"}}}),
        json!({"dir": "out", "msg": {"type": "control_response", "response": {"subtype": "success", "request_id": "r1", "response": {}}}}),
    ]
}

fn turn_start(text: &str) -> Vec<Value> {
    vec![
        json!({"dir": "in", "msg": {"type": "user"}}),
        json!({"dir": "out", "msg": {"type": "system", "subtype": "init", "session_id": "s"}}),
        json!({"dir": "out", "msg": {"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": text}]}}}),
    ]
}

impl Fake {
    fn runner(&self, extra: &[(&str, &str)]) -> tokio::process::Command {
        self.runner_via(&[], extra)
    }

    /// [`Fake::runner`], started through `wrapper` (`setpriv`, say).
    fn runner_via(&self, wrapper: &[&str], extra: &[(&str, &str)]) -> tokio::process::Command {
        let mut command = self.env.runner_via(wrapper, extra);
        command
            .env("CLAUDE_BIN", env!("CARGO_BIN_EXE_fake-claude"))
            .env("CLAUDE_FAKE_SCRIPT", &self.script)
            .env("CLAUDE_FAKE_ARGV", &self.argv);
        for (key, value) in extra {
            command.env(key, value);
        }
        command
    }

    async fn run(&self, extra: &[(&str, &str)]) -> Finished {
        let child = self.runner(extra).spawn().unwrap();
        self.env.finish(child).await
    }

    fn message(&self) -> String {
        let status = self.env.backend.status(PROJECT, SESSION).unwrap();
        assert_eq!(status["phase"], json!("Failed"), "{status:?}");
        status["message"].as_str().unwrap().to_owned()
    }

    async fn transcript(&self) -> Vec<String> {
        ambient_test_support::harness::transcript(&self.env.backend).await
    }
}

#[tokio::test]
async fn a_recorded_conversation_replays_both_ways_with_the_argv_the_settings_make() {
    let records = recorded("03_multiturn.jsonl");
    let env = fake(&records).await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(&[
            ("PROMPT", "First question: say hello"),
            ("INTERACTIVE", "true"),
            ("LLM_MODEL", "claude-sonnet-4-5"),
            ("LLM_TEMPERATURE", "0.3"),
            ("CLAUDE_DISALLOWED_TOOLS", "WebFetch"),
        ])
        .spawn()
        .unwrap();
    until(&mut watch, |m| m.kind == "agent.waiting").await;
    env.env.post(json!({"content": "Second question"})).await;
    until(&mut watch, |m| m.kind == "agent.waiting").await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    assert!(
        lines.contains(&String::from("agent: Hello from mock (turn 2).")),
        "{lines:#?}"
    );
    // The setting the CLI cannot take is the operator's business: in the log, never in
    // the user's conversation.
    assert!(
        !lines.iter().any(|l| l.contains("LLM_TEMPERATURE")),
        "{lines:#?}"
    );
    assert!(
        finished.stderr.contains("LLM_TEMPERATURE=0.3 is not used"),
        "{}",
        finished.stderr
    );
    let argv = std::fs::read_to_string(&env.argv).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    for expected in [
        "--input-format",
        "--include-partial-messages",
        "--model=claude-sonnet-4-5",
        "--setting-sources=project",
        "--disallowedTools",
        "WebFetch",
    ] {
        assert!(argv.contains(&expected), "{expected} missing from {argv:?}");
    }
    assert!(
        argv.iter().any(|a| a.starts_with("--session-id=")),
        "{argv:?}"
    );
}

/// A turn that starts with `relayed`, then goes wrong as `failure` says: the session
/// fails with a message holding every one of `words`, and `relayed` is kept.
async fn fails_mid_turn(relayed: &str, failure: &[Value], words: &[&str]) {
    let mut script = initialized();
    script.extend(turn_start(relayed));
    script.extend_from_slice(failure);
    let env = fake(&script).await;
    let finished = env.run(&[("PROMPT", "go")]).await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let message = env.message();
    assert!(words.iter().all(|w| message.contains(w)), "{message}");
    assert!(!message.trim_end().ends_with(':'), "{message}");
    let lines = env.transcript().await;
    assert!(lines.contains(&format!("agent: {relayed}")), "{lines:#?}");
    // The reason is in the conversation too, just before the end.
    let end = lines.len() - 1;
    assert_eq!(lines[end], "· session.failed", "{lines:#?}");
    assert!(
        lines[end - 1].starts_with("· ") && words.iter().all(|w| lines[end - 1].contains(w)),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_crash_mid_turn_fails_the_session_with_its_stderr_and_keeps_what_was_relayed() {
    fails_mid_turn(
        "Half an answer",
        &[json!({"dir": "crash", "rc": 3, "stderr": "fatal: the fake fell over"})],
        &["turn still open", "the fake fell over"],
    )
    .await;
}

#[tokio::test]
async fn a_silent_crash_says_it_left_nothing_on_stderr() {
    fails_mid_turn(
        "Half an answer",
        &[json!({"dir": "crash", "rc": 3})],
        &["turn still open", "nothing on stderr"],
    )
    .await;
}

#[tokio::test]
async fn a_line_that_is_not_json_fails_the_session_and_names_it() {
    fails_mid_turn(
        "Before the garbage",
        &[
            json!({"dir": "raw", "line": "{\"type\": \"assistant\", oops"}),
            json!({"dir": "hang"}),
        ],
        &["not JSON", "oops"],
    )
    .await;
}

#[tokio::test]
async fn a_cli_that_stops_answering_fails_the_session_once_an_interrupt_goes_unanswered() {
    let mut script = initialized();
    script.extend(turn_start("Working"));
    script.push(json!({"dir": "hang"}));
    let env = fake(&script).await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(&[
            ("PROMPT", "go"),
            ("INTERACTIVE", "true"),
            ("CLAUDE_CONTROL_TIMEOUT", "1"),
        ])
        .spawn()
        .unwrap();
    until(&mut watch, |m| m.payload.to_string().contains("Working")).await;
    env.env.post(json!({"type": "interrupt"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let message = env.message();
    assert!(message.contains("did not answer an interrupt"), "{message}");
}

#[tokio::test]
async fn a_cli_that_cannot_start_fails_before_the_first_turn_with_its_stderr() {
    let script =
        [json!({"dir": "crash", "rc": 1, "stderr": "error: unknown option '--bogus-flag'"})];
    let env = fake(&script).await;
    let finished = env.run(&[("PROMPT", "go")]).await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let message = env.message();
    assert!(
        message.contains("exited before it was ready") && message.contains("--bogus-flag"),
        "{message}"
    );
    assert!(
        !env.transcript()
            .await
            .iter()
            .any(|l| l.starts_with("agent:")),
        "a turn ran"
    );
}

#[tokio::test]
async fn an_interrupt_goes_to_the_cli_at_once_and_its_answer_is_matched_to_the_request() {
    let records = recorded("10_interrupt.jsonl");
    let env = fake(&records).await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(&[("PROMPT", "MOCK_SLOW story"), ("INTERACTIVE", "true")])
        .spawn()
        .unwrap();
    // The recording interrupted after three deltas; the fake waits for the request there.
    until(&mut watch, |m| m.payload["partial"].is_object()).await;
    env.env.post(json!({"type": "interrupt"})).await;
    until(&mut watch, |m| m.kind == "agent.waiting").await;
    env.env
        .post(json!({"content": "After the interrupt"}))
        .await;
    until(&mut watch, |m| m.kind == "agent.waiting").await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = env.transcript().await;
    let interrupted = lines
        .iter()
        .position(|l| l.starts_with("result: interrupted"))
        .unwrap_or_else(|| panic!("no interrupted result in {lines:#?}"));
    assert!(
        lines[interrupted..].contains(&String::from("agent: Hello from mock (turn 2).")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_turn_that_outlasts_the_end_of_the_session_is_stopped_within_the_bound() {
    let mut script = initialized();
    script.extend(turn_start("Still thinking"));
    script.push(json!({"dir": "hang"}));
    let env = fake(&script).await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(&[
            ("PROMPT", "go"),
            ("INTERACTIVE", "true"),
            ("CLAUDE_END_TIMEOUT", "1"),
        ])
        .spawn()
        .unwrap();
    until(&mut watch, |m| {
        m.payload.to_string().contains("Still thinking")
    })
    .await;
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert!(
        finished.stderr.contains("outlasted the end of the session"),
        "{}",
        finished.stderr
    );
}

/// SIGTERM while the CLI starts (it never answers `initialize`), on both fronts: the
/// runner exits within the bound with the stop's code.
mod stop_while_the_cli_starts {
    use std::time::Instant;

    use ambient_test_support::{
        agui::{Served, serve_command},
        harness::{STOP_BOUND, terminate},
    };
    use tokio::net::TcpListener;

    use super::*;

    /// A CLI that tells the test it started, then never answers; and the listener the
    /// test hears that on.
    async fn hanging_cli() -> (Fake, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let fake = fake(&[json!({"dir": "tell", "addr": addr}), json!({"dir": "hang"})]).await;
        (fake, listener)
    }

    async fn started(listener: &TcpListener) {
        tokio::time::timeout(ambient_test_support::harness::WAIT, listener.accept())
            .await
            .expect("the CLI starts in time")
            .unwrap();
    }

    #[tokio::test]
    async fn over_the_websocket() {
        let (env, listener) = hanging_cli().await;
        let child = env.runner(&[("PROMPT", "hello")]).spawn().unwrap();
        started(&listener).await;
        let signalled = Instant::now();
        terminate(&child);
        let finished = env.env.finish(child).await;
        assert!(
            signalled.elapsed() < STOP_BOUND,
            "{:?}",
            signalled.elapsed()
        );
        assert_eq!(finished.code, Some(143), "stderr:\n{}", finished.stderr);
        let status = env.env.backend.status(PROJECT, SESSION).unwrap();
        assert_eq!(
            status["message"],
            json!("Runner stopped before the session ended")
        );
    }

    #[tokio::test]
    async fn served() {
        let (env, listener) = hanging_cli().await;
        let workspace = env.env.workspace.path();
        let mut command = serve_command(env!("CARGO_BIN_EXE_claude-runner"), workspace);
        command
            .env("CLAUDE_BIN", env!("CARGO_BIN_EXE_fake-claude"))
            .env("CLAUDE_FAKE_SCRIPT", &env.script)
            .env("CLAUDE_FAKE_ARGV", &env.argv);
        let served = Served::start(command, workspace).await;
        started(&listener).await;
        let signalled = Instant::now();
        let finished = served.stop().await;
        assert!(
            signalled.elapsed() < STOP_BOUND,
            "{:?}",
            signalled.elapsed()
        );
        assert_eq!(finished.code, Some(143), "stderr:\n{}", finished.stderr);
    }
}

/// The agent the runner hosts is an attacker: what it can read of the runner's, played by
/// the fake CLI (the agent's own process) reading its parent's environment and a token
/// file, then telling the test it is done.
mod the_agent_reads_nothing_of_the_runners {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    use ambient_test_support::harness::{TOKEN, terminate};
    use tokio::net::TcpListener;

    use super::*;

    /// The user the runner (or the agent) is run as when the test runs as root.
    const NOBODY: &str = "65534";

    fn is_root() -> bool {
        std::fs::metadata("/proc/self").unwrap().uid() == 0
    }

    fn open_to_all(path: &std::path::Path) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    }

    /// A fake CLI that steals `files` into `loot`, then says so and hangs.
    async fn thief(files: &[&str], loot: &std::path::Path) -> (Fake, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let fake = fake(&[
            json!({"dir": "steal", "files": files, "to": loot}),
            json!({"dir": "tell", "addr": addr}),
            json!({"dir": "hang"}),
        ])
        .await;
        (fake, listener)
    }

    async fn stolen(
        env: &Fake,
        listener: &TcpListener,
        child: tokio::process::Child,
        loot: &std::path::Path,
    ) -> String {
        tokio::time::timeout(ambient_test_support::harness::WAIT, listener.accept())
            .await
            .expect("the fake CLI got to steal")
            .unwrap();
        terminate(&child);
        let finished = env.env.finish(child).await;
        assert_eq!(finished.code, Some(143), "stderr:\n{}", finished.stderr);
        std::fs::read_to_string(loot).unwrap()
    }

    #[tokio::test]
    async fn a_child_of_the_runners_own_user_cannot_read_its_environment() {
        let loot_dir = tempfile::tempdir().unwrap();
        open_to_all(loot_dir.path());
        let loot = loot_dir.path().join("loot.txt");
        let (env, listener) = thief(&["/proc/self/environ"], &loot).await;
        // As root the test drops the runner to another user: the point is a child of the
        // same user as the runner, as in the images.
        let wrapper: Vec<String> = if is_root() {
            open_to_all(env.env.workspace.path());
            [
                "setpriv",
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "--",
            ]
            .map(str::to_owned)
            .to_vec()
        } else {
            Vec::new()
        };
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        let child = env
            .runner_via(&wrapper, &[("PROMPT", "hi")])
            .spawn()
            .unwrap();
        let loot = stolen(&env, &listener, child, &loot).await;
        assert!(
            !loot.contains(TOKEN),
            "the agent read the bot token:\n{loot}"
        );
        assert!(
            loot.lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("refused: ")),
            "the runner's environment was readable:\n{loot}"
        );
        // Its own environment is the allowlist's: no token of the runner's either.
        assert!(loot.contains("== /proc/self/environ\nCLAUDE_"), "{loot}");
    }

    #[tokio::test]
    async fn an_agent_of_its_own_user_reads_neither_the_runner_nor_its_token_file() {
        let token_dir = tempfile::tempdir().unwrap();
        let token_file = token_dir.path().join("token");
        std::fs::write(&token_file, TOKEN).unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let token_path = token_file.to_string_lossy().into_owned();
        // The agent writes its loot where it works: the workspace, handed over to it.
        let (env, listener) = thief(&[token_path.as_str()], std::path::Path::new("loot.txt")).await;
        let mut command = env.runner(&[
            ("PROMPT", "hi"),
            ("AGENT_UID", NOBODY),
            ("BOT_TOKEN_FILE", token_path.as_str()),
        ]);
        if !is_root() {
            // Only root (or CAP_SETUID) can run the agent as another user: without it the
            // session fails, saying why, and the agent never starts.
            let finished = env.env.finish(command.spawn().unwrap()).await;
            assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
            return;
        }
        let child = command.spawn().unwrap();
        let loot_path = env.env.workspace.path().join("loot.txt");
        let loot = stolen(&env, &listener, child, &loot_path).await;
        assert!(!loot.contains(TOKEN), "the agent read a token:\n{loot}");
        assert_eq!(
            loot.matches("refused: Permission denied").count(),
            2,
            "the runner's environment or its token file was readable:\n{loot}"
        );
        assert_eq!(
            std::fs::metadata(&loot_path).unwrap().uid().to_string(),
            NOBODY,
            "the agent did not run as its own user"
        );
    }
}

/// The CLI asking about `tool` with request id `id`.
fn asks(id: &str, tool: &str) -> Value {
    json!({"dir": "out", "msg": {"type": "control_request", "request_id": id, "request": {"subtype": "can_use_tool", "tool_name": tool, "input": {"n": id}, "tool_use_id": format!("toolu_{id}")}}})
}

/// The runner answering request `id` with `behavior`.
fn answered(id: &str, behavior: &str) -> Value {
    json!({"dir": "in", "msg": {"type": "control_response", "response": {"request_id": id, "response": {"behavior": behavior}}}})
}

const APPROVALS: [(&str, &str); 3] = [
    ("PROMPT", "go"),
    ("INTERACTIVE", "true"),
    ("CLAUDE_PERMISSION_PROMPTS", "true"),
];

#[tokio::test]
async fn approvals_asked_at_once_are_asked_one_by_one_and_each_gets_its_answer() {
    let mut script = initialized();
    script.extend(turn_start("Two tools"));
    script.extend([
        asks("perm-1", "Bash"),
        asks("perm-2", "Write"),
        answered("perm-1", "allow"),
        answered("perm-2", "deny"),
    ]);
    script.push(json!({"dir": "out", "msg": {"type": "result", "subtype": "success", "is_error": false, "num_turns": 1, "result": "done"}}));
    script.push(json!({"dir": "exit", "rc": 0}));
    let env = fake(&script).await;
    let mut watch = env.env.backend.watch(SESSION);
    let child = env.runner(&APPROVALS).spawn().unwrap();
    let question = |m: &ambient_protocol::SessionMessage| {
        m.payload["content"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("asks to run"))
    };
    let first = until(&mut watch, question).await;
    assert!(first.payload.to_string().contains("Bash"), "{first:?}");
    env.env.post(json!({"content": "allow"})).await;
    let second = until(&mut watch, question).await;
    assert!(second.payload.to_string().contains("Write"), "{second:?}");
    env.env.post(json!({"content": "deny: not now"})).await;
    until(&mut watch, |m| m.payload["type"] == "result.message").await;
    env.env.post(json!({"type": "end_session"})).await;
    // The fake fails unless each answer named its own request, in order.
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
}

#[tokio::test]
async fn a_cli_flooding_approval_requests_has_the_excess_denied_at_once_and_the_rest_at_the_end() {
    let mut script = initialized();
    script.extend(turn_start("Many tools"));
    let ids: Vec<String> = (1..=20).map(|n| format!("perm-{n}")).collect();
    script.extend(ids.iter().map(|id| asks(id, "Bash")));
    // Past the bound of 16 waiting, each is answered no at once, in order.
    script.extend(ids[16..].iter().map(|id| answered(id, "deny")));
    script.push(json!({"dir": "tell", "addr": "ADDR"}));
    // The session's end answers the 16 that waited, no, in order.
    script.extend(ids[..16].iter().map(|id| answered(id, "deny")));
    script.push(json!({"dir": "out", "msg": {"type": "result", "subtype": "success", "is_error": false, "num_turns": 1, "result": "done"}}));
    script.push(json!({"dir": "exit", "rc": 0}));
    let signal = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = signal.local_addr().unwrap().to_string();
    for record in &mut script {
        if record["addr"] == "ADDR" {
            record["addr"] = json!(addr);
        }
    }
    let env = fake(&script).await;
    let child = env.runner(&APPROVALS).spawn().unwrap();
    // The fake got the four refusals.
    let _told = signal.accept().await.unwrap();
    env.env.post(json!({"type": "end_session"})).await;
    let finished = env.env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
}
