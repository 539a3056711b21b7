//! A hostile backend (or peer): more messages than the agent can take, and a message
//! larger than the runner reads. The runner's memory stays under the ceiling, the user is
//! told what was dropped, and the session still ends as it was asked to.

use std::time::{Duration, Instant};

use ambient_local_backend::SessionSeed;
use ambient_test_support::harness::{
    assert_under_ceiling, peak_memory, peak_memory_wrapper, transcript, until,
};
use serde_json::json;

use crate::support::{Backend, PROJECT, SESSION, backend};

#[allow(clippy::print_stderr, reason = "the figure is the test's report")]
fn report_figure(text: &str) {
    eprintln!("{text}");
}

/// An interactive runner under the memory wrapper, waiting for its first message.
async fn interactive(env: &Backend) -> (tokio::process::Child, std::path::PathBuf) {
    let report = env.workspace.path().join("peak-memory");
    let wrapper = peak_memory_wrapper(&report);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut watch = env.backend.watch(SESSION);
    let child = env
        .runner_via(&wrapper, &[("PROMPT", "hello"), ("INTERACTIVE", "true")])
        .spawn()
        .unwrap();
    until(&mut watch, |m| m.kind == "agent.waiting").await;
    (child, report)
}

#[tokio::test]
async fn a_flood_of_100000_messages_is_bounded_and_the_end_is_honoured_within_10_s() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let (child, report) = interactive(&env).await;
    let post = env.backend.post_handle();
    let body = json!({ "content": "x".repeat(1000) });
    for _ in 0..100_000 {
        post.post(PROJECT, SESSION, body.clone()).await.unwrap();
    }
    let ended = Instant::now();
    post.post(PROJECT, SESSION, json!({"type": "end_session"}))
        .await
        .unwrap();
    let finished = env.finish(child).await;
    let took = ended.elapsed();
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    report_figure(&format!(
        "echo-runner, end_session after the flood: exited in {took:?}"
    ));
    assert!(took < Duration::from_secs(10), "the end took {took:?}");
    let status = env.backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Completed"));
    let lines = transcript(&env.backend).await;
    let told = lines
        .iter()
        .find(|line| line.contains("were dropped"))
        .unwrap_or_else(|| panic!("the user was not told: {:#?}", &lines[lines.len() - 20..]));
    assert!(told.contains("RUNNER_INPUT_BUDGET_BYTES"), "{told}");
    let answered = lines
        .iter()
        .filter(|line| line.starts_with("agent: xxxx"))
        .count();
    assert!(answered > 0, "no message of the flood was answered");
    assert_under_ceiling(
        "echo-runner, 100,000 messages of 1 KB",
        peak_memory(&report),
    );
}

#[tokio::test]
async fn a_60_mb_message_is_refused_and_named_and_the_session_goes_on() {
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let (child, report) = interactive(&env).await;
    let mut watch = env.backend.watch(SESSION);
    env.post(json!({ "content": "y".repeat(60 << 20) })).await;
    until(&mut watch, |m| {
        let text = m.payload.to_string();
        text.contains("was refused") && text.contains("up to 8388608 bytes")
    })
    .await;
    env.post(json!({ "content": "still here" })).await;
    until(&mut watch, |m| m.payload.to_string().contains("still here")).await;
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let lines = transcript(&env.backend).await;
    assert!(
        lines.contains(&String::from("agent: still here")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|line| line.starts_with("agent: yyyy")),
        "the large message was answered"
    );
    assert_under_ceiling("echo-runner, a 60 MB message", peak_memory(&report));
}

/// The serve port against callers that hold connections: half-open ones, and followers
/// of a run that never read.
mod served {
    use std::time::{Duration, Instant};

    use ambient_test_support::{
        agui::{SERVE_TOKEN, Served, read_sse, run_input, serve_command_via},
        harness::{assert_under_ceiling, peak_memory_of},
    };
    use tokio::{io::AsyncWriteExt, net::TcpStream};

    /// The echo runner served with a modest file limit, as a pod may have.
    async fn serve(workspace: &std::path::Path, extra: &[(&str, &str)]) -> Served {
        let mut command = serve_command_via(
            &["prlimit", "--nofile=512:512"],
            env!("CARGO_BIN_EXE_echo-runner"),
            workspace,
        );
        for (key, value) in extra {
            command.env(key, value);
        }
        Served::start(command, workspace).await
    }

    /// This process may need more sockets than its default file limit.
    fn raise_file_limit() {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }

    /// `GET /health` on a connection of its own answers `200` within a second.
    async fn assert_healthy(served: &Served) {
        let asked = Instant::now();
        let response = tokio::time::timeout(
            Duration::from_secs(30),
            reqwest::get(format!("{}/health", served.url)),
        )
        .await
        .expect("/health answers at all")
        .unwrap();
        let took = asked.elapsed();
        assert_eq!(response.status(), 200);
        assert!(took < Duration::from_secs(1), "/health took {took:?}");
    }

    /// The runner served with a turn that says 20 MB in 20,000 texts, and a run of it
    /// asked for with `message` (its response not read yet).
    async fn burst_run(workspace: &std::path::Path, message: &str) -> (Served, reqwest::Response) {
        let served = serve(
            workspace,
            &[("ECHO_BURST_EVENTS", "20000"), ("ECHO_BURST_BYTES", "1000")],
        )
        .await;
        let response = served
            .post_run(&run_input("t-1", "run-1", &[("u1", "user", message)]))
            .await;
        assert_eq!(response.status(), 200);
        (served, response)
    }

    /// The run's events came whole, to its end.
    fn assert_whole(events: &[ambient_test_support::agui::Sse]) {
        let ids: Vec<u64> = events.iter().map(|event| event.id).collect();
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "a gap");
        assert!(events.len() > 60_000, "{} events", events.len());
        assert_eq!(
            events.last().map(|event| event.kind().to_owned()),
            Some(String::from("RUN_FINISHED"))
        );
    }

    fn address(served: &Served) -> String {
        served.url.trim_start_matches("http://").to_owned()
    }

    #[tokio::test]
    async fn a_thousand_half_open_connections_leave_health_answering_within_a_second() {
        raise_file_limit();
        let workspace = tempfile::tempdir().unwrap();
        let served = serve(workspace.path(), &[]).await;
        let mut half_open = Vec::new();
        for _ in 0..1000 {
            let Ok(mut stream) = TcpStream::connect(address(&served)).await else {
                continue;
            };
            // Half a request's header, and nothing more.
            let _sent = stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                .await;
            half_open.push(stream);
        }
        assert_healthy(&served).await;
        assert_under_ceiling(
            "echo-runner served, 1,000 half-open connections",
            peak_memory_of(served.child.id().unwrap()),
        );
        drop(half_open);
    }

    #[tokio::test]
    async fn three_hundred_followers_that_never_read_leave_the_run_and_the_memory_alone() {
        raise_file_limit();
        let workspace = tempfile::tempdir().unwrap();
        // The turn waits two seconds before it speaks: the followers come meanwhile.
        let (served, response) = burst_run(workspace.path(), "sleep 2").await;
        let initiator = tokio::spawn(read_sse(response, None));
        let request = format!(
            "GET /runs/run-1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SERVE_TOKEN}\r\nLast-Event-ID: 0\r\n\r\n"
        );
        let mut followers = Vec::new();
        for _ in 0..300 {
            let Ok(mut stream) = TcpStream::connect(address(&served)).await else {
                continue;
            };
            if stream.write_all(request.as_bytes()).await.is_ok() {
                followers.push(stream);
            }
        }
        let events = tokio::time::timeout(Duration::from_secs(120), initiator)
            .await
            .expect("the run ends in time")
            .unwrap();
        assert_whole(&events);
        assert_healthy(&served).await;
        assert_under_ceiling(
            "echo-runner served, 300 followers that never read",
            peak_memory_of(served.child.id().unwrap()),
        );
        drop(followers);
    }

    #[tokio::test]
    async fn the_client_that_started_a_run_paces_it_and_misses_nothing() {
        let workspace = tempfile::tempdir().unwrap();
        let (served, response) = burst_run(workspace.path(), "go").await;
        // A slow client: it reads nothing for a while, far more than the run's buffer
        // holds being made meanwhile, then reads on.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_whole(&read_sse(response, None).await);
        assert_under_ceiling(
            "echo-runner served, an initiator that pauses during a 20 MB run",
            peak_memory_of(served.child.id().unwrap()),
        );
    }
}
