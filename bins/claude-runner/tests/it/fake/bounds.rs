//! A hostile CLI, played by the fake: output too large or never ending, and processes
//! that outlive it. The runner's memory stays under the ceiling, the session ends as it
//! should, and nothing the CLI started survives it.

use std::time::{Duration, Instant};

use ambient_process::tree;
use ambient_test_support::harness::{
    STOP_BOUND, WAIT, assert_under_ceiling, peak_memory, peak_memory_wrapper, terminate,
};

use super::*;

/// A turn's end, as the CLI prints it.
fn result(text: &str) -> Value {
    json!({"dir": "out", "msg": {"type": "result", "subtype": "success", "is_error": false,
        "num_turns": 1, "result": text, "session_id": "s"}})
}

/// The runner's environment for a fake that starts programs by name.
const PATH: (&str, &str) = ("PATH", "/usr/local/bin:/usr/bin:/bin");

/// Runs a batch session under the memory wrapper; its end and its peak memory.
async fn run_measured(env: &Fake) -> (Finished, u64) {
    let report = env.env.workspace.path().join("peak-memory");
    let wrapper = peak_memory_wrapper(&report);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let child = env
        .runner_via(&wrapper, &[("PROMPT", "go"), PATH])
        .spawn()
        .unwrap();
    let finished = env.env.finish(child).await;
    (finished, peak_memory(&report))
}

#[tokio::test]
async fn stderr_of_25_lines_of_17_mib_is_cut_and_the_failure_is_still_written() {
    let mut script = initialized();
    script.extend(turn_start("Working"));
    script.push(json!({"dir": "flood", "to": "stderr", "lines": 25, "bytes": 17 << 20}));
    script.push(json!({"dir": "crash", "rc": 1, "stderr": "the last words"}));
    let env = fake(&script).await;
    let (finished, peak) = run_measured(&env).await;
    // A failed session, its status written: not 4 (status not written).
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let message = env.message();
    assert!(message.contains("the last words"), "{message}");
    assert!(message.contains("more bytes cut"), "{message}");
    assert!(
        message.chars().count() < 4_200,
        "{} chars",
        message.chars().count()
    );
    // The log holds no line of the flood whole.
    assert!(
        finished.stderr.lines().all(|line| line.len() < 64 << 10),
        "a log line of {} bytes",
        finished.stderr.lines().map(str::len).max().unwrap_or(0)
    );
    assert_under_ceiling("claude-runner, 25 stderr lines of 17 MiB", peak);
}

#[tokio::test]
async fn an_endless_stdout_line_fails_the_session_naming_the_cap() {
    let mut script = initialized();
    script.extend(turn_start("Working"));
    script.push(json!({"dir": "endless"}));
    let env = fake(&script).await;
    let (finished, peak) = run_measured(&env).await;
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let message = env.message();
    assert!(message.contains("longer than 8388608 bytes"), "{message}");
    assert!(
        env.transcript()
            .await
            .contains(&String::from("agent: Working"))
    );
    assert_under_ceiling("claude-runner, an endless stdout line", peak);
}

#[tokio::test]
async fn large_lines_read_slowly_are_held_within_the_budget() {
    let mut script = initialized();
    script.extend(turn_start("Here come large lines"));
    // 20 lines of 6 MiB, under the line cap: 120 MiB through the runner.
    script.push(json!({"dir": "flood", "to": "stdout", "lines": 20, "bytes": 6 << 20}));
    script.push(result("done"));
    script.push(json!({"dir": "exit", "rc": 0}));
    let env = fake(&script).await;
    let (finished, peak) = run_measured(&env).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_eq!(
        env.env.backend.status(PROJECT, SESSION).unwrap()["phase"],
        json!("Completed")
    );
    assert_under_ceiling("claude-runner, 20 stdout lines of 6 MiB", peak);
}

/// Replaces the fake's script (one that names files in the workspace, known only once
/// the fake is made).
fn write_script(env: &Fake, script: &[Value]) {
    let text: Vec<String> = script.iter().map(Value::to_string).collect();
    std::fs::write(&env.script, text.join("\n")).unwrap();
}

/// The pid a fake wrote to `path`.
fn pid_in(path: &std::path::Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Waits until no process of `pids` runs (zombies count as gone); false after
/// [`WAIT`]. They are not this process's children: `/proc` is all there is to watch.
async fn all_gone(pids: &[tree::Known]) -> bool {
    let deadline = Instant::now() + WAIT;
    while pids.iter().any(|known| tree::alive(*known)) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test]
async fn a_cli_killed_while_a_grandchild_holds_its_stdout_is_noticed_within_five_seconds() {
    let env = fake(&[]).await;
    let cli_pid = env.env.workspace.path().join("cli.pid");
    let sleeper_pid = env.env.workspace.path().join("sleeper.pid");
    let mut script = initialized();
    script.push(
        json!({"dir": "spawn", "argv": ["sleep", "600"], "output": "inherit",
        "pids": sleeper_pid}),
    );
    script.push(json!({"dir": "pid", "to": cli_pid}));
    script.extend(turn_start("Working"));
    script.push(json!({"dir": "hang"}));
    write_script(&env, &script);
    let mut watch = env.env.backend.watch(SESSION);
    let child = env.runner(&[("PROMPT", "go"), PATH]).spawn().unwrap();
    until(&mut watch, |m| m.payload.to_string().contains("Working")).await;
    let sleeper = tree::stat(pid_in(&sleeper_pid)).unwrap().known();
    let cli = pid_in(&cli_pid);
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(cli),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let finished = env.env.finish(child).await;
    let noticed = killed.elapsed();
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    assert!(
        noticed < Duration::from_secs(5),
        "noticed after {noticed:?}"
    );
    let message = env.message();
    assert!(message.contains("turn still open"), "{message}");
    assert!(
        all_gone(&[sleeper]).await,
        "the grandchild outlived the CLI"
    );
}

#[tokio::test]
async fn a_grandchild_in_a_session_of_its_own_is_gone_after_the_runners_stop() {
    let env = fake(&[]).await;
    let sleeper_pid = env.env.workspace.path().join("sleeper.pid");
    let mut script = initialized();
    script.push(json!({"dir": "spawn", "argv": ["setsid", "sleep", "600"],
        "pids": sleeper_pid}));
    script.extend(turn_start("Ready"));
    script.push(json!({"dir": "hang"}));
    write_script(&env, &script);
    let mut watch = env.env.backend.watch(SESSION);
    let child = env
        .runner(&[("PROMPT", "go"), ("INTERACTIVE", "true"), PATH])
        .spawn()
        .unwrap();
    until(&mut watch, |m| m.payload.to_string().contains("Ready")).await;
    let sleeper = tree::stat(pid_in(&sleeper_pid)).unwrap();
    let signalled = Instant::now();
    terminate(&child);
    let finished = env.env.finish(child).await;
    assert!(signalled.elapsed() < STOP_BOUND);
    assert_eq!(finished.code, Some(143), "stderr:\n{}", finished.stderr);
    assert!(
        all_gone(&[sleeper.known()]).await,
        "the setsid grandchild survived the stop"
    );
}

/// As PID 1 of its container (a PID namespace of its own, as root): what the agent
/// orphans is reaped, and what is left when the runner ends is stopped.
mod as_pid_1 {
    use super::*;

    fn is_root() -> bool {
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0
    }

    /// The processes of the namespace `unshare` (pid `unshare`) made, by name.
    fn in_namespace(unshare: u32, name: &str) -> Vec<tree::ProcessEntry> {
        let table = tree::process_table();
        tree::descendants_in(&table, i32::try_from(unshare).unwrap())
            .into_iter()
            .filter(|entry| entry.name == name)
            .cloned()
            .collect()
    }

    #[tokio::test]
    async fn orphans_are_reaped_and_what_is_left_at_the_end_is_stopped() {
        assert!(
            is_root(),
            "this test makes a PID namespace, which needs root (CI runs as root)"
        );
        let mut script = initialized();
        // Twenty sleepers whose parent exits at once: orphans, handed to PID 1.
        script.push(json!({"dir": "spawn", "wait": true, "argv": ["sh", "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 600 & done"]}));
        // And one in a session of its own, orphaned too: left to the end.
        script.push(json!({"dir": "spawn", "wait": true, "argv": ["sh", "-c",
            "setsid sleep 601 &"]}));
        script.extend(turn_start("Spawned"));
        script.push(result("Spawned"));
        script.push(json!({"dir": "exit", "rc": 0}));
        let env = fake(&script).await;
        let mut watch = env.env.backend.watch(SESSION);
        let child = env
            .runner_via(
                &["unshare", "--pid", "--fork", "--mount-proc"],
                &[("PROMPT", "go"), ("INTERACTIVE", "true"), PATH],
            )
            .spawn()
            .unwrap();
        let unshare = child.id().unwrap();
        until(&mut watch, |m| m.kind == "agent.waiting").await;
        // Each was forked before the turn ended, but may not have run `sleep` yet.
        let deadline = Instant::now() + WAIT;
        let mut orphans = in_namespace(unshare, "sleep");
        while orphans.len() < 21 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            orphans = in_namespace(unshare, "sleep");
        }
        assert_eq!(orphans.len(), 21, "{orphans:#?}");
        let (short, long): (Vec<_>, Vec<_>) = orphans.iter().partition(|entry| {
            std::fs::read_to_string(format!("/proc/{}/cmdline", entry.pid))
                .unwrap_or_default()
                .contains("600")
        });
        // The twenty end: as zombies they would stay in the table, unreaped.
        for orphan in &short {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(orphan.pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let zombies: Vec<_> = tree::process_table()
                .into_iter()
                .filter(|entry| short.iter().any(|orphan| orphan.pid == entry.pid))
                .collect();
            if zombies.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "never reaped: {zombies:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        env.env.post(json!({"type": "end_session"})).await;
        let finished = env.env.finish(child).await;
        assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
        let left: Vec<tree::Known> = long.iter().map(|entry| entry.known()).collect();
        assert!(
            all_gone(&left).await,
            "the setsid orphan outlived the runner"
        );
    }
}
