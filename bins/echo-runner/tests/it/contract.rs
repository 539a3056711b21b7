//! The echo runner dropped in for the platform's own runner: started by the operator's
//! environment alone, driven by calls made the way the platform's backend makes them
//! (`docs/platform-contract.md`).

use ambient_agui::AguiEvent;
use ambient_test_support::{
    agui::{Served, check_run, read_sse, stock_client, stock_event_types},
    platform::{
        BOT_TOKEN, Backend, BackendCalls, PROJECT, SESSION, assert_platform_capabilities,
        check_file_api, check_repository_routes, free_port, operator_command, post_json,
        relay_lines,
    },
};
use serde_json::{Value, json};

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect()
}

fn texts(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter(|event| event["type"] == "TEXT_MESSAGE_CONTENT")
        .map(|event| event["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_operators_environment_the_backends_calls_and_the_initial_prompt() {
    let workspace = tempfile::tempdir().unwrap();
    // The backend is not ready for the first post: the runner tries again.
    let mut backend = Backend::start(1).await;
    let port = free_port();
    let command = operator_command(
        env!("CARGO_BIN_EXE_echo-runner"),
        workspace.path(),
        port,
        &backend,
        Some("Summarise the repository"),
    );
    let calls = BackendCalls::new(format!("http://127.0.0.1:{port}"));

    // The run proxy's first POST goes while the pod starts, tried again while the
    // connection is refused; it is answered 200, and its run follows once the session
    // takes runs. Its body is in snake case, which the platform's runner also takes.
    let first_body = json!({
        "thread_id": SESSION,
        "run_id": "run-first",
        "messages": [{"role": "user", "content": "hello from the backend"}],
    });
    let (served, first) = tokio::join!(
        Served::start(command, workspace.path()),
        calls.run(&first_body)
    );
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "text/event-stream");
    let (first, _) = relay_lines(first).await;
    assert_eq!(first[0]["type"], "RUN_STARTED");
    assert_eq!(first[0]["runId"], "run-first");
    assert_eq!(texts(&first), ["hello from the backend"]);
    // The backend keeps a finished run as its snapshot, and a run without one as corrupt.
    let kinds_of_first = kinds(&first);
    assert_eq!(
        kinds_of_first[kinds_of_first.len() - 2..],
        ["MESSAGES_SNAPSHOT", "RUN_FINISHED"]
    );
    let snapshot = &first[first.len() - 2]["messages"];
    assert_eq!(snapshot[0]["role"], "user");
    assert_eq!(snapshot[0]["content"], "hello from the backend");
    assert!(
        snapshot[0]["id"].as_str().unwrap().starts_with("unnamed-"),
        "a message without an id is given one"
    );
    let usage = &first.last().unwrap()["usage"];
    assert_eq!(usage[0]["inputTokens"], 4, "{usage}");

    // The initial prompt: posted to the backend, with the bot token, as a hidden user
    // message of the session; tried again after the backend's 503.
    let refused = backend.next_post().await;
    let taken = backend.next_post().await;
    for posted in [&refused, &taken] {
        assert_eq!(
            posted.path,
            format!("/api/projects/{PROJECT}/agentic-sessions/{SESSION}/agui/run")
        );
        assert_eq!(
            posted.authorization.as_deref(),
            Some(format!("Bearer {BOT_TOKEN}").as_str())
        );
        assert_eq!(posted.body["threadId"], SESSION);
        let message = &posted.body["messages"][0];
        assert_eq!(message["role"], "user");
        assert_eq!(message["content"], "Summarise the repository");
        assert_eq!(
            message["metadata"],
            json!({"hidden": true, "autoSent": true, "source": "runner_initial_prompt"})
        );
    }
    assert_ne!(
        refused.body["runId"], taken.body["runId"],
        "each try is a new run"
    );
    // The backend runs it by posting it back, as any run.
    let (initial, _) = relay_lines(calls.run(&taken.body).await).await;
    assert_eq!(texts(&initial), ["Summarise the repository"]);

    // Capabilities in the shape the backend and the UI read.
    let capabilities: Value = calls.get_json("/capabilities").await;
    assert_platform_capabilities(&capabilities);
    assert_eq!(capabilities["framework"], "echo");
    assert_eq!(
        capabilities["platform_features"],
        json!(["feedback", "mcp_diagnostics", "repos", "workflows"])
    );
    // The echo agent takes no MCP servers and runs no background task.
    let mcp: Value = calls.get_json("/mcp/status").await;
    assert_eq!(mcp, json!({"servers": [], "totalCount": 0}));
    let tasks: Value = calls.get_json("/tasks").await;
    assert_eq!(tasks, json!({"tasks": []}));
    let health: Value = reqwest::get(format!("{}/health", calls.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["session_id"], SESSION);

    // The between-run listener stays open across runs and carries what the agent says
    // between them, as a run of its own without a snapshot, then ends (the backend
    // connects again at once). What came on a run's own stream never comes on it.
    let listener = calls.listen(SESSION).await;
    assert_eq!(listener.status(), 200);
    let (later, _) = relay_lines(
        calls
            .run(&json!({
                "threadId": SESSION, "runId": "run-later",
                "messages": [{"id": "u-later", "role": "user", "content": "later 0.2 the report is ready"}],
            }))
            .await,
    )
    .await;
    assert_eq!(texts(&later), ["later 0.2 the report is ready"]);
    let (between, heartbeats) = relay_lines(listener).await;
    assert_eq!(heartbeats, 0);
    assert_eq!(texts(&between), ["the report is ready"]);
    assert_eq!(between[0]["type"], "RUN_STARTED");
    assert_eq!(between.last().unwrap()["type"], "RUN_FINISHED");
    assert!(
        !kinds(&between).contains(&"MESSAGES_SNAPSHOT"),
        "the listener leaves the snapshot out"
    );
    let parsed: Vec<AguiEvent> = between
        .iter()
        .map(|event| serde_json::from_value(event.clone()).unwrap())
        .collect();
    ambient_agui::check_order(&parsed).unwrap();
    // Listening on a thread this runner does not serve is refused.
    assert_eq!(calls.listen("another-session").await.status(), 404);

    // A POST during a run is answered 200 at once and its events follow when the earlier
    // turn ends; the interrupt is answered 200.
    let long = calls
        .run(&json!({
            "threadId": SESSION, "runId": "run-long",
            "messages": [{"id": "u-long", "role": "user", "content": "sleep 600"}],
        }))
        .await;
    assert_eq!(long.status(), 200);
    // Its headers come once it is open; its reader stays (a reader that leaves stops it).
    let long = tokio::spawn(relay_lines(long));
    let second_user = calls
        .run(&json!({
            "threadId": SESSION, "runId": "run-second-user",
            "messages": [{"id": "u-second", "role": "user", "content": "I was second"}],
        }))
        .await;
    assert_eq!(second_user.status(), 200);
    let interrupted = calls.interrupt().await;
    assert_eq!(interrupted.status(), 200);
    assert_eq!(
        interrupted.json::<Value>().await.unwrap(),
        json!({"interrupted": "run-long"})
    );
    let (long, _) = long.await.unwrap();
    assert_eq!(long[0]["runId"], "run-long");
    assert_eq!(
        long.last().unwrap()["outcome"],
        json!({"type": "cancelled"})
    );
    let second_user = read_sse(second_user, None).await;
    check_run(&second_user);
    assert_eq!(second_user[0].data["runId"], "run-second-user");
    assert_eq!(
        second_user
            .iter()
            .filter(|e| e.kind() == "TEXT_MESSAGE_CONTENT")
            .map(|e| e.data["delta"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["I was second"]
    );

    // The file API as the platform has it; ours also names the path it refuses.
    for (path, refusal) in check_file_api(&calls, workspace.path()).await {
        assert!(
            refusal["error"]
                .as_str()
                .unwrap()
                .contains(path.trim_start_matches('/')),
            "{refusal}"
        );
    }

    // A model the runner does not own is refused with the reason, never pretended.
    let model = calls
        .request(reqwest::Method::POST, "/model")
        .json(&json!({"model": "claude-opus-4-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(model.status(), 400);
    let why: Value = model.json().await.unwrap();
    assert!(
        why["error"]
            .as_str()
            .unwrap()
            .contains("cannot switch the model"),
        "{why}"
    );
    // Feedback comes back as the RAW event the backend stores.
    let feedback = |meta_type: &str| {
        calls
            .request(reqwest::Method::POST, "/feedback")
            .json(&json!({"type": "META", "metaType": meta_type, "payload": {"messageId": "m1", "comment": "good"}, "threadId": SESSION}))
            .send()
    };
    let stored: Value = feedback("thumbs_up").await.unwrap().json().await.unwrap();
    assert_eq!(
        stored,
        json!({"type": "RAW", "event": {"name": "ambient:feedback", "metaType": "thumbs_up", "payload": {"messageId": "m1", "comment": "good"}, "recorded": false}})
    );
    assert_eq!(feedback("meh").await.unwrap().status(), 400);

    let finished = served.stop().await;
    assert_eq!(finished.code, Some(143), "{}", finished.stderr);
    for secret in [BOT_TOKEN, "caller-token-of-the-user"] {
        assert!(
            !finished.stderr.contains(secret),
            "{secret} reached the log"
        );
    }
}

#[tokio::test]
async fn a_run_whose_caller_leaves_stops_as_the_platforms_runner_stops_it() {
    let workspace = tempfile::tempdir().unwrap();
    let backend = Backend::start(0).await;
    let command = operator_command(
        env!("CARGO_BIN_EXE_echo-runner"),
        workspace.path(),
        free_port(),
        &backend,
        None,
    );
    let served = Served::start(command, workspace.path()).await;
    let calls = BackendCalls::new(&served.url);
    let body = |run: &str, id: &str, text: &str| json!({"threadId": SESSION, "runId": run, "messages": [{"id": id, "role": "user", "content": text}]});
    let long = calls.run(&body("run-long", "u1", "sleep 600")).await;
    let early = read_sse(long, Some(2)).await;
    assert_eq!(early[0].data["runId"], "run-long");
    // The caller left: the turn is stopped, and the run ends cancelled, as a follower sees.
    let rest = read_sse(served.events_after("run-long", 0).await, None).await;
    assert_eq!(
        rest.last().unwrap().data["outcome"],
        json!({"type": "cancelled"})
    );
    // A run whose caller left while it waited never holds the session: it does not open
    // (or, if the runner opens it before it sees the caller gone, it stops at once).
    let open = calls.run(&body("run-open", "u2", "sleep 600")).await;
    let open = tokio::spawn(relay_lines(open));
    let waiting = calls.run(&body("run-gone", "u3", "sleep 600")).await;
    assert_eq!(waiting.status(), 200);
    drop(waiting);
    assert_eq!(calls.interrupt().await.status(), 200);
    let (open, _) = open.await.unwrap();
    assert_eq!(
        open.last().unwrap()["outcome"],
        json!({"type": "cancelled"})
    );
    let (after, _) = relay_lines(calls.run(&body("run-after", "u4", "after")).await).await;
    assert_eq!(texts(&after), ["after"]);
    let gone = served.get("/runs/run-gone/events").await;
    if gone.status() != 404 {
        let gone = read_sse(gone, None).await;
        assert_eq!(
            gone.last().unwrap().data["outcome"],
            json!({"type": "cancelled"})
        );
    }
    assert_eq!(served.stop().await.code, Some(143));
}

#[tokio::test]
async fn a_resumed_pod_does_not_send_the_initial_prompt_again() {
    let workspace = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(0).await;
    let port = free_port();
    let mut command = operator_command(
        env!("CARGO_BIN_EXE_echo-runner"),
        workspace.path(),
        port,
        &backend,
        Some("Summarise the repository"),
    );
    command.env("IS_RESUME", "true");
    let served = Served::start(command, workspace.path()).await;
    let calls = BackendCalls::new(&served.url);
    // A run taken, answered and finished: the session is well under way, and the backend
    // has had nothing from the runner.
    let (run, _) = relay_lines(
        calls
            .run(&json!({
                "threadId": SESSION, "runId": "run-1",
                "messages": [{"id": "u1", "role": "user", "content": "hi"}],
            }))
            .await,
    )
    .await;
    assert_eq!(texts(&run), ["hi"]);
    assert!(
        backend.try_next_post().is_none(),
        "a resumed pod posted its prompt"
    );
    let finished = served.stop().await;
    assert!(
        finished
            .stderr
            .contains("resuming the session: the initial prompt was sent by the first pod"),
        "{}",
        finished.stderr
    );
}

/// The stock AG-UI client, verifier on: a run; a cut stream taken up again with
/// `Last-Event-ID` (the resumed stream opens with the run's `RUN_STARTED` again, which its
/// verifier requires); `abortRun()` stopping the run; a browser's preflight from a
/// configured origin.
#[tokio::test]
async fn the_stock_ag_ui_client_runs_resumes_aborts_and_passes_its_preflight() {
    let workspace = tempfile::tempdir().unwrap();
    let mut command = ambient_test_support::agui::serve_command(
        env!("CARGO_BIN_EXE_echo-runner"),
        workspace.path(),
    );
    command
        .env("AGUI_CORS_ORIGINS", "http://localhost:3000")
        .env("ECHO_BURST_EVENTS", "20");
    let served = Served::start(command, workspace.path()).await;
    let client = |args: &'static [&'static str]| stock_client(&served.url, args);

    let ran = client(&["run", "t", "run-1", "hello"]).await;
    let events = stock_event_types(&ran);
    assert_eq!(events.first().map(String::as_str), Some("RUN_STARTED"));
    assert_eq!(events.last().map(String::as_str), Some("RUN_FINISHED"));
    assert!(
        events.iter().any(|e| e == "MESSAGES_SNAPSHOT"),
        "{events:?}"
    );
    assert_eq!(ran["texts"][0], "hello");

    // abortRun() drops the connection; the run stops as the platform's runner stops it.
    let aborted = client(&["abort", "t", "run-3", "sleep 600"]).await;
    assert!(
        aborted["events"].as_array().unwrap().len() >= 2,
        "{aborted}"
    );
    let rest = read_sse(served.get("/runs/run-3/events").await, None).await;
    assert_eq!(
        rest.last().unwrap().data["outcome"],
        json!({"type": "cancelled"})
    );

    let resume_workspace = tempfile::tempdir().unwrap();
    let mut command = ambient_test_support::agui::serve_command(
        env!("CARGO_BIN_EXE_echo-runner"),
        resume_workspace.path(),
    );
    command
        .env("AGUI_ABORT_ON_DISCONNECT", "false")
        .env("ECHO_BURST_EVENTS", "20");
    let resumable = Served::start(command, resume_workspace.path()).await;
    // A stream cut after three events, taken up by the stock client with Last-Event-ID, on
    // a runner told to let a run go on when its client leaves.
    let cut_body = json!({
        "threadId": "t", "runId": "run-2",
        "messages": [{"id": "run-2-user", "role": "user", "content": "again"}],
    });
    let first_part = read_sse(resumable.post_run(&cut_body).await, Some(3)).await;
    let resumed = stock_client(&resumable.url, &["run", "t", "run-2", "again", "3"]).await;
    let events = stock_event_types(&resumed);
    assert_eq!(events.first().map(String::as_str), Some("RUN_STARTED"));
    assert_eq!(events.last().map(String::as_str), Some("RUN_FINISHED"));
    let whole = read_sse(resumable.get("/runs/run-2/events").await, None).await;
    // The cut fell inside the answer's text message: the resumed stream takes it up from
    // its start, after the run's RUN_STARTED again.
    assert_eq!(first_part[1].kind(), "TEXT_MESSAGE_START");
    let whole_kinds: Vec<&str> = whole.iter().map(|e| e.kind()).collect();
    assert_eq!(events[1..], whole_kinds[1..]);
    assert_eq!(resumed["texts"][0], "again");

    assert_eq!(resumable.stop().await.code, Some(143));

    let preflight = client(&["preflight", "http://localhost:3000"]).await;
    assert_eq!(preflight["status"], 204);
    assert_eq!(preflight["allowOrigin"], "http://localhost:3000");
    let refused = client(&["preflight", "http://elsewhere.example"]).await;
    assert_eq!(refused["status"], 403);
    assert_eq!(served.stop().await.code, Some(143));
}

/// The echo runner in the operator's environment with `extra` variables, with no first
/// prompt, and the backend's calls to it.
async fn serve_with(workspace: &std::path::Path, extra: &[(&str, &str)]) -> (Served, BackendCalls) {
    let backend = Backend::start(0).await;
    let mut command = operator_command(
        env!("CARGO_BIN_EXE_echo-runner"),
        workspace,
        free_port(),
        &backend,
        None,
    );
    command.envs(extra.iter().copied());
    let served = Served::start(command, workspace).await;
    let calls = BackendCalls::new(&served.url);
    (served, calls)
}

/// `/repos/add`, `/repos/status`, `/repos/remove` and `/workflow` as the UI calls them,
/// against local git repositories, through the host's workspace code; then what ours does
/// beyond the platform's runner: a checkout the agent planted to read the runner's
/// secrets through `/repos/status`, checkouts rigged to run a program, a credential in a
/// remote URL, a failed clone's reason, and a removal that keeps local changes.
#[tokio::test]
async fn the_repository_and_workflow_routes_change_the_workspace_through_the_hosts_git() {
    use ambient_test_support::git_repos::git;
    let origins = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    // The local origins are file:// URLs, which the runner's git takes only when told.
    let (served, calls) = serve_with(workspace.path(), &[("GIT_PROTOCOLS", "https,file")]).await;
    check_repository_routes(&calls, workspace.path(), origins.path()).await;

    let extra = format!("file://{}/o/extra.git", origins.path().display());
    let flow = format!("file://{}/o/flow.git", origins.path().display());
    let (status, added) = post_json(&calls, "/repos/add", json!({"url": extra})).await;
    assert_eq!(status, 200, "{added}");
    let repos = workspace.path().join("repos");

    // A folder the agent made to look like a checkout whose HEAD is the runner's
    // environment: status reads no file outside the workspace, and runs no git.
    let evil = repos.join("evil/.git");
    std::fs::create_dir_all(&evil).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", evil.join("HEAD")).unwrap();
    let status: Value = calls.get_json("/repos/status").await;
    let names: Vec<&str> = status["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["extra"], "{status}");
    let text = status.to_string();
    assert!(
        !text.contains("AGUI_TOKEN") && !text.contains(ambient_test_support::agui::SERVE_TOKEN)
    );

    // The git views count what changed.
    std::fs::write(repos.join("extra/README.md"), "changed\nmore\n").unwrap();
    std::fs::write(repos.join("extra/new.txt"), "new\n").unwrap();
    let git_status: Value = calls
        .get_json("/content/git-status?path=/repos/extra")
        .await;
    assert_eq!(git_status["remoteUrl"], json!(extra));
    assert_eq!(git_status["uncommittedFiles"], 2, "{git_status}");
    assert_eq!(git_status["totalAdded"], 2, "{git_status}");
    let absent: Value = calls.get_json("/content/git-status?path=nowhere").await;
    assert_eq!(absent, json!({"initialized": false, "hasChanges": false}));

    // A checkout of the agent's rigged to run a program.
    let rigged = workspace.path().join("rigged");
    git(workspace.path(), &["init", "-q", "rigged"]);
    let marker = workspace.path().join("fsmonitor-ran");
    let program = workspace.path().join("monitor.sh");
    std::fs::write(&program, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    git(
        &rigged,
        &["config", "core.fsmonitor", &program.to_string_lossy()],
    );
    // A folder of the agent's made a checkout of a remote the UI names, and fetched.
    std::fs::create_dir_all(workspace.path().join("notes")).unwrap();
    let (status, configured) = post_json(
        &calls,
        "/content/git-configure-remote",
        json!({"path": "notes", "remoteUrl": flow, "branch": "main"}),
    )
    .await;
    assert_eq!(status, 200, "{configured}");
    assert_eq!(configured["fetched"], true, "{configured}");
    let notes: Value = calls
        .get_json("/content/git-list-branches?path=notes")
        .await;
    assert_eq!(notes, json!({"branches": ["main"]}));
    let (status, refused_url) = post_json(
        &calls,
        "/content/git-configure-remote",
        json!({"path": "notes", "remoteUrl": "ext::sh -c touch% /tmp/pwned"}),
    )
    .await;
    assert_eq!(status, 400, "{refused_url}");
    // A folder laid out as a bare repository, with an empty `.git` beside it to pass for
    // a checkout: git never takes the folder for a repository, so its program never runs.
    let bare_trick = workspace.path().join("bare-trick");
    git(workspace.path(), &["init", "-q", "--bare", "bare-trick"]);
    git(
        &bare_trick,
        &["config", "core.fsmonitor", &program.to_string_lossy()],
    );
    git(&bare_trick, &["config", "core.bare", "false"]);
    git(
        &bare_trick,
        &["config", "core.worktree", &bare_trick.to_string_lossy()],
    );
    std::fs::create_dir(bare_trick.join(".git")).unwrap();
    let tricked = calls.get("/content/git-status?path=bare-trick").await;
    assert_eq!(tricked.status(), 400, "{:?}", tricked.text().await);
    assert!(
        !marker.exists(),
        "the agent's program ran through a bare repository"
    );
    // A remote URL with a credential in it is not written where the agent reads it.
    let (status, with_token) = post_json(
        &calls,
        "/content/git-configure-remote",
        json!({"path": "notes", "remoteUrl": "https://user:ghp_secret@example.com/o/r.git"}),
    )
    .await;
    assert_eq!(status, 400, "{with_token}");
    assert!(!with_token.to_string().contains("ghp_secret"));
    let refused = calls.get("/content/git-status?path=rigged").await;
    assert_eq!(refused.status(), 400);
    let why: Value = refused.json().await.unwrap();
    assert!(
        why["error"].as_str().unwrap().contains("core.fsmonitor"),
        "{why}"
    );
    assert!(!marker.exists(), "the agent's program ran");

    let (status, failed) = post_json(
        &calls,
        "/repos/add",
        json!({"url": format!("file://{}/nowhere.git", origins.path().display())}),
    )
    .await;
    assert_eq!(status, 500, "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("nowhere"),
        "{failed}"
    );

    // Removed from the session; its local changes are kept on disk, and the caller told.
    let (status, removed) = post_json(&calls, "/repos/remove", json!({"name": "extra"})).await;
    assert_eq!(
        (status, &removed["message"]),
        (200, &json!("Repository removed"))
    );
    assert!(
        removed["detail"]
            .as_str()
            .unwrap()
            .contains("local changes"),
        "{removed}"
    );
    assert!(repos.join("extra/new.txt").exists());
    let (status, refused) = post_json(&calls, "/repos/remove", json!({"name": "extra"})).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("no such repository"),
        "{refused}"
    );
    assert_eq!(served.stop().await.code, Some(143));
}

/// The user's own GitHub token, which the backend sends with a repository or workflow
/// change (`X-GitHub-Token`): it clones what the runner's credentials could not, goes to
/// its host only, and is in no answer, log line or file of the workspace.
#[tokio::test]
async fn the_users_own_token_clones_a_private_repository_and_is_kept_nowhere() {
    use ambient_test_support::GitHttpServer;
    const USERS_TOKEN: &str = "ghu_theUsersOwnToken0123456789abcdef";
    let origins = tempfile::tempdir().unwrap();
    ambient_test_support::git_repos::bare_repo(origins.path(), "o", "private");
    ambient_test_support::git_repos::bare_repo(origins.path(), "o", "flow");
    let server = GitHttpServer::start_tls(origins.path(), "x-access-token", USERS_TOKEN)
        .await
        .unwrap();
    let workspace = tempfile::tempdir().unwrap();
    // The runner has no token of its own; the server's host is a GitHub host.
    let certificate = server.certificate().unwrap().to_string_lossy().into_owned();
    let (served, calls) = serve_with(
        workspace.path(),
        &[
            ("GITHUB_HOSTS", &server.host()),
            ("GIT_SSL_CAINFO", &certificate),
        ],
    )
    .await;
    let add = |token: Option<&'static str>| {
        let mut request = calls
            .request(reqwest::Method::POST, "/repos/add")
            .json(&json!({"url": server.url("o/private.git"), "branch": "main"}));
        if let Some(token) = token {
            request = request.header("x-github-token", token);
        }
        request.send()
    };

    let refused = add(None).await.unwrap();
    assert_eq!(refused.status(), 500);
    assert_eq!(server.authorized_requests(), 0);
    let added = add(Some(USERS_TOKEN)).await.unwrap();
    let status = added.status();
    let added = added.text().await.unwrap();
    assert_eq!(status, 200, "{added}");
    assert!(added.contains("Repository added"), "{added}");
    assert!(
        server.authorized_requests() > 0,
        "the token never reached its host"
    );
    assert!(workspace.path().join("repos/private/README.md").exists());

    let switched = calls
        .request(reqwest::Method::POST, "/workflow")
        .header("x-github-token", USERS_TOKEN)
        .json(&json!({"gitUrl": server.url("o/flow.git"), "branch": "main"}))
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), 200);
    let switched = switched.text().await.unwrap();
    assert!(workspace.path().join("workflows/flow/README.md").exists());

    // A folder of the user's given the private remote: fetched only with the user's token.
    std::fs::create_dir(workspace.path().join("mine")).unwrap();
    let configure = |token: Option<&'static str>| {
        let mut request = calls
            .request(reqwest::Method::POST, "/content/git-configure-remote")
            .json(&json!({"path": "mine", "remoteUrl": server.url("o/private.git"), "branch": "main"}));
        if let Some(token) = token {
            request = request.header("x-github-token", token);
        }
        request.send()
    };
    let without: serde_json::Value = configure(None).await.unwrap().json().await.unwrap();
    assert_eq!(without["fetched"], false, "{without}");
    let with = configure(Some(USERS_TOKEN)).await.unwrap();
    assert_eq!(with.status(), 200);
    let with = with.text().await.unwrap();
    assert!(with.contains(r#""fetched":true"#), "{with}");

    let finished = served.stop().await;
    for (what, text) in [
        ("the answer", added),
        ("the answer", switched),
        ("the answer", with),
        ("the log", finished.stderr),
    ] {
        assert!(!text.contains(USERS_TOKEN), "the token is in {what}");
    }
    let mut files = vec![workspace.path().to_owned()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(USERS_TOKEN),
                "the token is in {}",
                path.display()
            );
        }
    }
}

/// A caller's token header that holds no token is refused, naming the header and never
/// its value; a caller who brings token after token is refused past the session's
/// bound; none reaches the log.
#[tokio::test]
async fn tokens_a_caller_brings_are_checked_and_bounded() {
    let workspace = tempfile::tempdir().unwrap();
    let (served, calls) = serve_with(workspace.path(), &[]).await;
    // A URL refused before any clone: the token is learned all the same.
    let add = |token: String| {
        calls
            .request(reqwest::Method::POST, "/repos/add")
            .header("x-gitlab-token", token)
            .json(&json!({"url": "http://example.invalid/o/r.git"}))
            .send()
    };
    let not_a_token = format!("glpat-{} and more", "s3cr3t".repeat(4));
    let refused = add(not_a_token.clone()).await.unwrap();
    assert_eq!(refused.status(), 400);
    let said = refused.text().await.unwrap();
    assert!(said.contains("x-gitlab-token is not a token"), "{said}");
    assert!(!said.contains("s3cr3t"), "{said}");
    let refused = add(format!("glpat-{}", "a".repeat(600))).await.unwrap();
    assert_eq!(refused.status(), 400);

    let token = |i: usize| format!("glpat-caller{i:04}token");
    let mut statuses = Vec::new();
    for i in 0..65 {
        statuses.push(add(token(i)).await.unwrap().status().as_u16());
    }
    assert!(statuses[..64].iter().all(|s| *s != 429), "{statuses:?}");
    assert_eq!(statuses[64], 429, "{statuses:?}");
    // A token already taken is taken again.
    assert_ne!(add(token(3)).await.unwrap().status(), 429);
    let finished = served.stop().await;
    assert!(
        !finished.stderr.contains(&token(7)),
        "a caller's token is in the log"
    );
}

/// With the agent as its own user, what `/content/git-configure-remote`'s git makes in a
/// folder of the user's (`.git`, the fetched objects) is the agent's, so that its own git
/// can write there. Only root can run the agent as another user: elsewhere the runner
/// refuses to start, which other tests show.
#[tokio::test]
async fn a_configured_remote_is_the_agents_when_it_runs_as_its_own_user() {
    use std::os::unix::fs::MetadataExt as _;
    const NOBODY: u32 = 65534;
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let origins = tempfile::tempdir().unwrap();
    let origin = ambient_test_support::git_repos::bare_repo(origins.path(), "o", "remote");
    let workspace = tempfile::tempdir().unwrap();
    let (served, calls) = serve_with(
        workspace.path(),
        &[("AGENT_UID", "65534"), ("GIT_PROTOCOLS", "https,file")],
    )
    .await;
    std::fs::create_dir(workspace.path().join("mine")).unwrap();
    let configured = calls
        .request(reqwest::Method::POST, "/content/git-configure-remote")
        .json(&json!({"path": "mine", "remoteUrl": origin, "branch": "main"}))
        .send()
        .await
        .unwrap();
    let configured: serde_json::Value = configured.json().await.unwrap();
    assert_eq!(configured["fetched"], true, "{configured}");
    for made in [".git", ".git/config", ".git/objects"] {
        let owner = std::fs::metadata(workspace.path().join("mine").join(made))
            .unwrap()
            .uid();
        assert_eq!(owner, NOBODY, "{made} is not the agent's");
    }
    assert_eq!(served.stop().await.code, Some(143));
}
