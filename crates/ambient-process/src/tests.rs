#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use std::{ffi::OsString, path::PathBuf};

use super::*;

/// The bound on every wait here: far longer than any of them needs, so that a test
/// fails by this only when what it waits for never happens.
const WAIT: Duration = Duration::from_secs(30);

fn shell(script: &str, limits: OutputLimits) -> JsonLinesProcess {
    let argv = [OsString::from("-c"), OsString::from(script)];
    let env = [(
        OsString::from("PATH"),
        OsString::from("/usr/local/bin:/usr/bin:/bin"),
    )];
    JsonLinesProcess::spawn(Launch {
        binary: &PathBuf::from("sh"),
        argv: &argv,
        cwd: &std::env::temp_dir(),
        env: &env,
        run_as: None,
        limits,
    })
    .unwrap()
}

async fn next(process: &mut JsonLinesProcess) -> Option<Result<Value, ProcessError>> {
    tokio::time::timeout(WAIT, process.next_line())
        .await
        .expect("the output goes on or ends in time")
}

#[tokio::test]
async fn lines_are_read_in_order_and_banners_are_skipped() {
    let mut process = shell(
        r#"echo 'a banner'; echo '{"n":1}'; echo; echo '  {"n":2}'"#,
        OutputLimits::default(),
    );
    assert_eq!(next(&mut process).await.unwrap().unwrap()["n"], 1);
    assert_eq!(next(&mut process).await.unwrap().unwrap()["n"], 2);
    assert!(next(&mut process).await.is_none());
    assert!(process.finish(WAIT).await.unwrap().success());
}

#[tokio::test]
async fn a_line_past_the_cap_is_an_error_that_names_the_cap() {
    let limits = OutputLimits {
        max_line_bytes: 1000,
        queued_bytes: 4000,
    };
    // A line of 2,000 bytes, then one that would be fine.
    let mut process = shell(
        r#"printf '{"x":"'; head -c 2000 /dev/zero | tr '\0' x; echo '"}'; echo '{"n":1}'"#,
        limits,
    );
    let error = next(&mut process).await.unwrap().unwrap_err();
    assert!(
        matches!(error, ProcessError::LineTooLong { limit: 1000 }),
        "{error:?}"
    );
    assert!(error.to_string().contains("1000 bytes"), "{error}");
    process.finish(Duration::ZERO).await;
}

#[tokio::test]
async fn a_line_that_is_not_json_is_named() {
    let mut process = shell(r"echo '{not json'", OutputLimits::default());
    let error = next(&mut process).await.unwrap().unwrap_err();
    assert!(error.to_string().contains("{not json"), "{error}");
    process.finish(Duration::ZERO).await;
}

#[tokio::test]
async fn stderr_keeps_a_bounded_tail_and_says_what_it_cut() {
    // 100 lines of 200 bytes, then one of 100,000, then a last short one.
    let mut process = shell(
        r"i=0; while [ $i -lt 100 ]; do head -c 200 /dev/zero | tr '\0' a >&2; echo >&2; i=$((i+1)); done;
          head -c 100000 /dev/zero | tr '\0' b >&2; echo >&2; echo the-end >&2",
        OutputLimits::default(),
    );
    assert!(next(&mut process).await.is_none());
    process.finish(WAIT).await;
    let tail = process.stderr_tail();
    assert!(tail.len() <= STDERR_TAIL_BYTES, "{} bytes", tail.len());
    assert!(tail.ends_with("the-end"), "{tail}");
    let long = tail
        .lines()
        .find(|line| line.starts_with('b'))
        .expect("the long line is kept, cut");
    assert!(
        long.ends_with(&format!(
            " … [{} more bytes cut]",
            100_000 - STDERR_LINE_BYTES
        )),
        "{long}"
    );
    // The oldest short lines went to make room.
    assert!(tail.lines().filter(|line| line.starts_with('a')).count() < 100);
}

#[tokio::test]
async fn a_child_that_exits_while_a_descendant_holds_its_output_is_noticed_and_the_descendant_stopped()
 {
    // The sleeper inherits stdout: end of file never comes while it runs.
    let mut process = shell(
        r#"sleep 600 & echo "{\"sleeper\":$!}"; exit 3"#,
        OutputLimits::default(),
    );
    let sleeper = next(&mut process).await.unwrap().unwrap()["sleeper"]
        .as_i64()
        .unwrap();
    assert!(next(&mut process).await.is_none());
    let status = process.finish(Duration::ZERO).await.unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(gone(sleeper).await, "the sleeper still runs");
}

/// Whether the process `pid` is gone (or a zombie) within [`WAIT`]: it is not ours, so
/// `/proc` is all there is to watch.
async fn gone(pid: i64) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z") {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn finish_stops_a_descendant_that_left_the_process_group() {
    let mut process = shell(
        r#"setsid sleep 600 & echo "{\"sleeper\":$!}"; wait"#,
        OutputLimits::default(),
    );
    let sleeper = next(&mut process).await.unwrap().unwrap()["sleeper"]
        .as_i64()
        .unwrap();
    let sleeper = i32::try_from(sleeper).unwrap();
    let before = tree::descendants(i32::try_from(process.id().unwrap()).unwrap());
    let known = before
        .iter()
        .copied()
        .find(|known| known.pid == sleeper)
        .expect("the sleeper is a descendant");
    process.finish(Duration::ZERO).await;
    tree::wait_gone(&[known], Instant::now() + WAIT).await;
    assert!(!tree::alive(known), "the setsid sleeper survived the stop");
}

#[tokio::test]
async fn a_reader_that_does_not_keep_up_holds_no_more_than_the_budget() {
    let limits = OutputLimits {
        max_line_bytes: 64 << 10,
        queued_bytes: 256 << 10,
    };
    // 64 lines of 32 KiB: 2 MiB, eight times the budget.
    let mut process = shell(
        r#"i=0; while [ $i -lt 64 ]; do printf '{"x":"'; head -c 32768 /dev/zero | tr '\0' x; echo '"}'; i=$((i+1)); done; echo done >&2"#,
        limits,
    );
    // The first line is read: the reader runs. Waiting on the child's exit here would
    // never end, since it blocks on a full pipe.
    next(&mut process).await.unwrap().unwrap();
    let exited = tokio::time::timeout(Duration::from_millis(500), process.child.wait()).await;
    assert!(
        exited.is_err(),
        "the child wrote 2 MiB with a reader 256 KiB ahead"
    );
    let mut read = 1;
    while let Some(line) = next(&mut process).await {
        line.unwrap();
        read += 1;
    }
    assert_eq!(read, 64);
    process.finish(WAIT).await;
    assert!(process.stderr_tail().contains("done"));
}
