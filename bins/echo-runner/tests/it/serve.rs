//! The AG-UI serve mode end to end: the real binary on a loopback port, its runs read as
//! SSE, every event checked against the official AG-UI types and the ordering rules.

use ambient_agui::{AguiEvent, check_order};
use ambient_test_support::agui::{
    SERVE_TOKEN, Served, Sse, check_run, read_sse, run_input, serve_command,
    validate_with_official_types,
};
use serde_json::{Value, json};

/// A secret the runner holds; an echo of it must come back scrubbed.
const PLANTED: &str = "ghp_plantedsecretplantedsecretplanted1234";

fn echo(workspace: &std::path::Path, extra: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = serve_command(env!("CARGO_BIN_EXE_echo-runner"), workspace);
    command.env("GITHUB_TOKEN", PLANTED);
    for (key, value) in extra {
        command.env(key, value);
    }
    command
}

/// The echo runner, served from `workspace`.
async fn serve_echo(workspace: &std::path::Path, extra: &[(&str, &str)]) -> Served {
    Served::start(echo(workspace, extra), workspace).await
}

/// Checks one whole run (see [`check_run`]) and returns its event types.
fn kinds(events: &[Sse]) -> Vec<&'static str> {
    check_run(events).iter().map(AguiEvent::kind).collect()
}

fn texts(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.kind() == "TEXT_MESSAGE_CONTENT")
        .map(|e| e.data["delta"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn each_run_streams_valid_ag_ui_events_and_messages_between_runs_reach_the_agent() {
    let workspace = tempfile::tempdir().unwrap();
    let served = serve_echo(workspace.path(), &[]).await;

    let health = reqwest::get(format!("{}/health", served.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "health needs no token");
    let capabilities = served.get("/capabilities").await;
    assert_eq!(capabilities.status(), 200);
    let capabilities: Value = capabilities.json().await.unwrap();
    assert_eq!(capabilities["ag_ui"]["identity"]["name"], "echo-runner");
    validate_with_official_types("capabilities", &[capabilities["ag_ui"].clone()]);

    let first = served
        .run(&run_input(
            "thread-1",
            "run-1",
            &[("u1", "user", &format!("hello {PLANTED}"))],
        ))
        .await;
    assert_eq!(
        kinds(&first),
        [
            "RUN_STARTED",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "TOOL_CALL_RESULT",
            "MESSAGES_SNAPSHOT",
            "RUN_FINISHED",
        ]
    );
    assert_eq!(texts(&first), ["hello ***REDACTED***"]);
    // The snapshot the platform's backend keeps the run as: the user's message (scrubbed
    // too), the agent's answer, its tool call and the call's result.
    let snapshot = &first[first.len() - 2].data["messages"];
    assert_eq!(
        snapshot[0],
        json!({"id": "u1", "role": "user", "content": "hello ***REDACTED***"})
    );
    assert_eq!(snapshot[1]["content"], "hello ***REDACTED***");
    assert_eq!(
        snapshot[2]["toolCalls"][0]["id"],
        first[5].data["toolCallId"]
    );
    assert_eq!(snapshot[3]["role"], "tool");
    let everything =
        serde_json::to_string(&first.iter().map(|e| &e.data).collect::<Vec<_>>()).unwrap();
    assert!(!everything.contains(PLANTED), "the secret reached an event");
    let finished = &first[first.len() - 1].data;
    assert_eq!(finished["threadId"], "thread-1");
    assert_eq!(finished["outcome"], json!({"type": "success"}));
    assert_eq!(first[5].data["toolCallId"], first[7].data["toolCallId"]);

    // The whole conversation comes with each run; only what is new reaches the agent,
    // and two new messages make one turn.
    let second = served
        .run(&run_input(
            "thread-1",
            "run-2",
            &[
                ("u1", "user", "hello"),
                ("a1", "assistant", "hello"),
                ("u2", "user", "second"),
                ("u3", "user", "third"),
            ],
        ))
        .await;
    check_run(&second);
    assert_eq!(texts(&second), ["second\n\nthird"]);
    assert_eq!(second.last().unwrap().data["result"]["num_turns"], 2);

    let finished = served.stop().await;
    assert_eq!(finished.code, Some(143), "{}", finished.stderr);
    assert!(
        !finished.stderr.contains(PLANTED),
        "the secret reached the log"
    );
    assert!(
        !finished.stderr.contains(SERVE_TOKEN),
        "the serve token reached the log"
    );
}

#[tokio::test]
async fn callers_without_the_token_and_bad_requests_get_clear_refusals() {
    let workspace = tempfile::tempdir().unwrap();
    let served = serve_echo(workspace.path(), &[]).await;
    let client = reqwest::Client::new();
    for token in [None, Some("wrong-token-wrong-token")] {
        let mut request = client.post(format!("{}/run", served.url)).json(&run_input(
            "t",
            "r",
            &[("u", "user", "hi")],
        ));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    // The platform's backend sends the token in its own header; the scheme of the other
    // form is read without regard to case.
    let capabilities = format!("{}/capabilities", served.url);
    for (name, value, status) in [
        ("x-ambient-session-token", SERVE_TOKEN.to_owned(), 200),
        ("authorization", format!("bearer {SERVE_TOKEN}"), 200),
        ("authorization", format!("BEARER  {SERVE_TOKEN}"), 200),
        (
            "x-ambient-session-token",
            String::from("wrong-token-wrong-token"),
            401,
        ),
        ("authorization", format!("Basic {SERVE_TOKEN}"), 401),
    ] {
        let response = client
            .get(&capabilities)
            .header(name, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}: {value}");
    }
    let refusal = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (status, body["error"].as_str().unwrap().to_owned())
    };
    let (status, error) = refusal(
        served
            .request(reqwest::Method::POST, "/run")
            .header("content-type", "application/json")
            .body(r#"{"threadId": "t", "runId": "r"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error.contains("missing field `messages`"), "{error}");
    let (status, error) = refusal(
        served
            .post_run(&run_input("t", "r", &[("a", "assistant", "hi")]))
            .await,
    )
    .await;
    assert_eq!(
        (status, error.contains("no new user message")),
        (400, true),
        "{error}"
    );
    // A body over the limit is refused in JSON, as every other error is. The server
    // answers before reading the body and drops the connection: it goes on a client of its
    // own, so that no later request is sent on that connection.
    let (status, error) = refusal(
        reqwest::Client::new()
            .post(format!("{}/run", served.url))
            .bearer_auth(SERVE_TOKEN)
            .header("connection", "close")
            .header("content-type", "application/json")
            .body(vec![b' '; 20 << 20])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 413, "{error}");
    let (status, error) = refusal(served.interrupt().await).await;
    assert_eq!(
        (status, error.as_str()),
        (409, "no run is open to interrupt")
    );
    let resume = json!({"threadId": "t", "runId": "r", "messages": [], "resume": [{"interruptId": "i9", "status": "resolved", "payload": "yes"}]});
    let (status, error) = refusal(served.post_run(&resume).await).await;
    assert_eq!(
        (status, error.as_str()),
        (
            400,
            "resume answers interrupt i9, but the session waits on no interrupt"
        )
    );
    served
        .run(&run_input("t", "r", &[("u", "user", "hi")]))
        .await;
    let (status, error) = refusal(
        served
            .post_run(&run_input("t", "r", &[("u2", "user", "again")]))
            .await,
    )
    .await;
    assert_eq!(status, 409);
    assert!(error.starts_with("run r already exists"), "{error}");
    let (status, error) = refusal(
        served
            .post_run(&run_input("other", "r2", &[("u2", "user", "hi")]))
            .await,
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (409, "this runner serves thread t, not other")
    );
    // An error that quotes the caller is scrubbed like everything else.
    let (status, error) = refusal(
        served
            .post_run(&run_input(PLANTED, "r3", &[("u3", "user", "hi")]))
            .await,
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (409, "this runner serves thread t, not ***REDACTED***")
    );
    let (status, _) = refusal(served.get("/runs/nope/events").await).await;
    assert_eq!(status, 404);
    // Reconnecting to a run this runner does not know never starts it.
    let (status, error) = refusal(
        served
            .request(reqwest::Method::POST, "/run")
            .header("last-event-id", "4")
            .json(&run_input("t", "unseen", &[("u9", "user", "hi")]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (
            404,
            "run unseen is not known here (only the last few runs are kept)"
        )
    );
    let (status, _) = refusal(
        served
            .request(reqwest::Method::GET, "/runs/r/events")
            .header("last-event-id", "soon")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(served.stop().await.code, Some(143));
}

#[tokio::test]
async fn an_interrupt_stops_the_open_run_which_ends_cancelled_and_the_next_run_works() {
    let workspace = tempfile::tempdir().unwrap();
    // A turn long enough to be interrupted in the middle.
    // A cut alone does not stop a run here: the interrupt does.
    let served = serve_echo(
        workspace.path(),
        &[
            ("ECHO_BURST_EVENTS", "1000000"),
            ("AGUI_ABORT_ON_DISCONNECT", "false"),
        ],
    )
    .await;
    let response = served
        .post_run(&run_input("t", "long", &[("u1", "user", "go")]))
        .await;
    assert_eq!(response.status(), 200);
    // Once the run streams, a second run is answered 200 at once (the platform's backend
    // takes anything else as a failed run), and waits; an interrupt is taken.
    let mut events = read_sse(response, Some(5)).await;
    let waiting = served
        .post_run(&run_input("t", "other", &[("u2", "user", "too soon")]))
        .await;
    assert_eq!(waiting.status(), 200);
    assert_eq!(waiting.headers()["content-type"], "text/event-stream");
    let interrupted = served.interrupt().await;
    assert_eq!(interrupted.status(), 200);
    assert_eq!(
        interrupted.json::<Value>().await.unwrap(),
        json!({"interrupted": "long"})
    );
    let rest = served.events_after("long", events.last().unwrap().id).await;
    events.extend(read_sse(rest, None).await);
    let last = &events.last().unwrap().data;
    assert_eq!(last["type"], "RUN_FINISHED");
    assert_eq!(last["outcome"], json!({"type": "cancelled"}));
    assert_eq!(last["result"]["subtype"], "interrupted");
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=events.len() as u64).collect::<Vec<_>>());
    let parsed: Vec<AguiEvent> = events
        .iter()
        .map(|e| serde_json::from_value(e.data.clone()).unwrap())
        .collect();
    check_order(&parsed).unwrap();
    assert!(
        events.len() < 1_000_000,
        "the turn was stopped, not finished"
    );
    // The waiting run opened when the interrupted one ended: its events follow, whole.
    let waited = read_sse(waiting, Some(3)).await;
    assert_eq!(waited[0].data["type"], "RUN_STARTED");
    assert_eq!(waited[0].data["runId"], "other");
    assert_eq!(texts(&waited), ["too soon"]);
    served.interrupt().await;
    // The session goes on: the next run starts a new turn (itself a long one).
    let next = served
        .post_run(&run_input(
            "t",
            "after",
            &[
                ("u1", "user", "go"),
                ("a1", "assistant", "…"),
                ("u2", "user", "too soon"),
                ("a2", "assistant", "…"),
                ("u3", "user", "next"),
            ],
        ))
        .await;
    assert_eq!(next.status(), 200);
    let next = read_sse(next, Some(3)).await;
    assert_eq!(next[0].data["runId"], "after");
    assert_eq!(texts(&next), ["next"]);
    assert_eq!(served.stop().await.code, Some(143));
}

/// Reads run `run_id` `step` events at a time, hanging up after each step and coming back
/// with `Last-Event-ID` (alternately by `GET /runs/{id}/events` and by posting the run
/// again), until the run's end. Posting again sends a message cut in the middle again
/// from its start, for a client that reads each stream on its own: the events already
/// had are known by their ids and skipped.
async fn read_in_cuts(served: &Served, body: &Value, step: usize) -> Vec<Sse> {
    let run_id = body["runId"].as_str().unwrap();
    let mut events = read_sse(served.post_run(body).await, Some(step)).await;
    let mut reconnects = 0;
    while events
        .last()
        .is_none_or(|e| !matches!(e.kind(), "RUN_FINISHED" | "RUN_ERROR"))
    {
        let last_id = events.last().map_or(0, |e| e.id);
        let last = last_id.to_string();
        let request = if reconnects % 2 == 0 {
            served.request(reqwest::Method::GET, &format!("/runs/{run_id}/events"))
        } else {
            served.request(reqwest::Method::POST, "/run").json(body)
        };
        let response = request.header("last-event-id", last).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let read = read_sse(response, Some(step)).await;
        events.extend(read.into_iter().filter(|e| e.id > last_id));
        reconnects += 1;
    }
    events
}

#[tokio::test]
async fn a_client_cut_at_many_points_gets_every_event_once() {
    let workspace = tempfile::tempdir().unwrap();
    let served = serve_echo(
        workspace.path(),
        &[
            ("ECHO_BURST_EVENTS", "300"),
            ("ECHO_BURST_BYTES", "40"),
            // The client comes back for the rest: its cuts must not stop the run.
            ("AGUI_ABORT_ON_DISCONNECT", "false"),
        ],
    )
    .await;
    let mut conversation = Vec::new();
    for (number, step) in [1_usize, 2, 3, 7, 16, 61, 200].into_iter().enumerate() {
        let id = format!("u{number}");
        let text = format!("message {number}");
        conversation.push((id, text));
        let messages: Vec<(&str, &str, &str)> = conversation
            .iter()
            .map(|(id, text)| (id.as_str(), "user", text.as_str()))
            .collect();
        let body = run_input("t", &format!("run-{number}"), &messages);
        let cut = read_in_cuts(&served, &body, step).await;
        // Read again whole, from the start: the same events, each once, in order.
        let whole = read_sse(
            served.get(&format!("/runs/run-{number}/events")).await,
            None,
        )
        .await;
        assert_eq!(cut, whole, "read {step} at a time");
        // Each filler text is a message of three events; the snapshot comes before the end.
        assert_eq!(whole.len(), 1 + 3 + 300 * 3 + 4 + 1 + 1);
        let parsed: Vec<AguiEvent> = whole
            .iter()
            .map(|e| serde_json::from_value(e.data.clone()).unwrap())
            .collect();
        check_order(&parsed).unwrap();
        assert_eq!(texts(&whole)[0], format!("message {number}"));
    }
    assert_eq!(served.stop().await.code, Some(143));
}

#[tokio::test]
async fn a_client_that_asks_from_an_event_no_longer_kept_is_told_what_is() {
    let workspace = tempfile::tempdir().unwrap();
    // 99 events in the run (30 filler texts of three events each), 80 kept.
    let served = serve_echo(
        workspace.path(),
        &[("ECHO_BURST_EVENTS", "30"), ("AGUI_REPLAY_EVENTS", "80")],
    )
    .await;
    let response = served
        .post_run(&run_input("t", "r", &[("u", "user", "hi")]))
        .await;
    // A client slower than the run loses its place when the buffer moves past it: its
    // stream ends rather than skip events. Either way, what it got has no gap, and the
    // run has made more than 80 events by the time it is over.
    let events = read_sse(response, None).await;
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "no gap in what was sent"
    );
    let gone = served.events_after("r", 0).await;
    assert_eq!(gone.status(), 410);
    let error: Value = gone.json().await.unwrap();
    let error = error["error"].as_str().unwrap();
    let kept = error
        .strip_prefix("run r: event 0 cannot be resumed from: the buffer holds events ")
        .unwrap_or_else(|| panic!("{error}"));
    let (oldest, newest) = kept.split_once(" to ").unwrap();
    let (oldest, newest): (u64, u64) = (oldest.parse().unwrap(), newest.parse().unwrap());
    assert_eq!(newest - oldest + 1, 80, "{error}");
    // From what is kept, the rest of the run comes whole.
    let tail = served.events_after("r", newest).await;
    let tail = read_sse(tail, None).await;
    assert_eq!(
        tail.iter().map(|e| e.id).collect::<Vec<_>>(),
        (newest + 1..=99).collect::<Vec<_>>()
    );
    assert_eq!(served.stop().await.code, Some(143));
}

#[tokio::test]
async fn a_missing_or_short_token_is_a_configuration_error_that_names_its_variable() {
    for (token, says) in [
        (None, "AGUI_TOKEN is not set"),
        (
            Some("short"),
            "AGUI_TOKEN is invalid: shorter than 16 characters",
        ),
    ] {
        let workspace = tempfile::tempdir().unwrap();
        let mut command = serve_command(env!("CARGO_BIN_EXE_echo-runner"), workspace.path());
        command.env_remove("AGUI_TOKEN");
        if let Some(token) = token {
            command.env("AGUI_TOKEN", token);
        }
        let status = command.status().await.unwrap();
        assert_eq!(status.code(), Some(2));
        let log = std::fs::read_to_string(workspace.path().join("runner-stderr.log")).unwrap();
        assert!(log.contains(says), "{log}");
    }
}

#[tokio::test]
async fn the_workspace_is_prepared_before_runs_are_taken_and_its_lines_open_the_first_run() {
    let workspace = tempfile::tempdir().unwrap();
    let origins = tempfile::tempdir().unwrap();
    let good = ambient_test_support::git_repos::bare_repo(origins.path(), "o", "app");
    let repos = json!([{"input": {"url": good}}, {"name": "gone", "input": {"url": "file:///no/such.git"}}]).to_string();
    let mut command = echo(
        workspace.path(),
        &[
            ("REPOS_JSON", repos.as_str()),
            ("GIT_PROTOCOLS", "https,file"),
        ],
    );
    command.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    let served = Served::start(command, workspace.path()).await;
    // Announced once the workspace is ready, with the checkout where the platform's
    // pods keep them.
    assert!(workspace.path().join("repos/app/README.md").exists());
    let first = served
        .run(&run_input("t", "r1", &[("u1", "user", "hi")]))
        .await;
    let events = check_run(&first);
    let logs: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            AguiEvent::Custom { name, value } if name == "log" => value.as_str(),
            _ => None,
        })
        .collect();
    assert!(logs.contains(&"✓ app: cloned"), "{logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.starts_with("✗ gone: git clone failed")),
        "{logs:?}"
    );
    assert_eq!(
        events[1].kind(),
        "CUSTOM",
        "the lines come first: {events:?}"
    );
    assert_eq!(served.stop().await.code, Some(143));
}

#[tokio::test]
async fn the_platform_operators_environment_alone_starts_the_serve_mode_on_agui_port() {
    let workspace = tempfile::tempdir().unwrap();
    // A port free now, as the operator would pick one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = echo(workspace.path(), &[]);
    command
        .env_remove("AGUI_LISTEN")
        .env("USE_AGUI", "true")
        .env("AGUI_HOST", "127.0.0.1")
        .env("AGUI_PORT", port.to_string())
        .env("SESSION_ID", "agentic-session-7");
    let served = Served::start(command, workspace.path()).await;
    assert_eq!(served.url, format!("http://127.0.0.1:{port}"));
    let response = reqwest::Client::new()
        .post(format!("{}/run", served.url))
        .header("X-Ambient-Session-Token", SERVE_TOKEN)
        .json(&json!({"thread_id": "t", "run_id": "r1", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = read_sse(response, None).await;
    assert_eq!(texts(&events), ["hello"], "{events:?}");
    let finished = served.stop().await;
    assert_eq!(finished.code, Some(143), "{}", finished.stderr);
}

#[tokio::test]
async fn a_configured_browser_origin_passes_its_preflight_and_others_do_not() {
    let workspace = tempfile::tempdir().unwrap();
    let app = "https://app.example.com";
    let served = serve_echo(workspace.path(), &[("AGUI_CORS_ORIGINS", app)]).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{}/run", served.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, x-ambient-session-token",
            )
            .send()
    };
    // A browser sends no token with a preflight.
    let allowed = preflight(app).await.unwrap();
    assert_eq!(allowed.status(), 204);
    assert_eq!(allowed.headers()["access-control-allow-origin"], app);
    assert!(
        allowed.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-ambient-session-token")
    );
    let refused = preflight("https://elsewhere.example.com").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // The real request from the allowed origin may be read by the page.
    let response = served
        .request(reqwest::Method::GET, "/capabilities")
        .header("origin", app)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], app);
    let finished = served.stop().await;
    assert_eq!(finished.code, Some(143), "{}", finished.stderr);
}

#[tokio::test]
async fn the_metrics_page_counts_what_the_runs_did_behind_the_token() {
    let workspace = tempfile::tempdir().unwrap();
    let served = serve_echo(workspace.path(), &[]).await;
    for (run, id, text) in [("r1", "u1", "one"), ("r2", "u2", "two")] {
        check_run(
            &served
                .run(&run_input("t", run, &[(id, "user", text)]))
                .await,
        );
    }
    let page = served.get("/metrics").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let page = page.text().await.unwrap();
    let value = |name: &str| -> f64 {
        page.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{page}"))
    };
    assert_eq!(value("ambient_runs_total{outcome=\"success\"}"), 2.0);
    assert_eq!(value("ambient_runs_total{outcome=\"error\"}"), 0.0);
    assert_eq!(value("ambient_run_duration_seconds_count"), 2.0);
    assert_eq!(
        value("ambient_tool_calls_total"),
        2.0,
        "one echo tool call a run"
    );
    assert_eq!(value("ambient_turns_total"), 2.0);
    // Each run: RUN_STARTED, its text (3), the tool call (3) and result, the snapshot
    // and RUN_FINISHED.
    assert_eq!(value("ambient_events_sent_total"), 20.0);
    // Each batch the runs' client took was timed from the hub to it.
    let timed = value("ambient_relay_latency_seconds_count");
    assert!(timed > 0.0, "{page}");
    assert_eq!(
        value("ambient_relay_latency_seconds_bucket{le=\"+Inf\"}"),
        timed
    );
    let anonymous = reqwest::get(format!("{}/metrics", served.url))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(served.stop().await.code, Some(143));
}
