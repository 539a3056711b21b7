//! The session's trace, sent to a real OTLP/HTTP receiver that decodes what it gets: the
//! span tree, the GenAI attributes, the trace id the platform is shown, no secret in any
//! exported byte, and a collector that fails or hangs leaving the session as it was.

use ambient_local_backend::SessionSeed;
use ambient_test_support::{
    agui::{Served, run_input, serve_command},
    git_repos::bare_repo,
    harness::Finished,
    otlp::{Behaviour, OtlpReceiver, ReceivedSpan, tree},
};
use serde_json::{Value, json};

use crate::support::{Backend, PROJECT, SESSION, backend};

/// A credential the runner holds; a repository is named with it, so that it reaches a
/// span's attribute and a span's status unless the exporter scrubs them.
const PLANTED: &str = "planted-otel-token-3f9b2c7d";

/// The environment of a traced session with one good repository (in `origins`) and one,
/// named with the secret, that cannot be cloned.
fn traced_session(origins: &tempfile::TempDir, endpoint: &str) -> Vec<(String, String)> {
    let good = bare_repo(origins.path(), "o", "app");
    let repos = json!([
        {"input": {"url": good}},
        {"name": PLANTED, "input": {"url": "file:///no/such.git"}},
    ]);
    [
        ("PROMPT", "hello traced world"),
        ("GITHUB_TOKEN", PLANTED),
        ("REPOS_JSON", repos.to_string().as_str()),
        ("GIT_PROTOCOLS", "https,file"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect()
}

async fn run(env: &Backend, vars: &[(String, String)]) -> Finished {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let child = env.runner(&vars).spawn().unwrap();
    env.finish(child).await
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|span| span.name == name).collect()
}

#[track_caller]
fn assert_no_part_of(secret: &str, bytes: &[u8]) {
    for part in secret.as_bytes().windows(8) {
        assert!(
            !bytes.windows(8).any(|window| window == part),
            "{:?} of the secret was exported",
            String::from_utf8_lossy(part)
        );
    }
}

#[tokio::test]
async fn a_sessions_trace_is_one_tree_with_the_genai_attributes_and_no_secret() {
    let receiver = OtlpReceiver::start(Behaviour::Accept).await;
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let origins = tempfile::tempdir().unwrap();
    let finished = run(&env, &traced_session(&origins, &receiver.endpoint())).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);

    let spans = receiver.spans();
    assert_eq!(
        tree(&spans),
        [
            "session",
            "  status.write",
            "  workspace.prepare",
            "    workspace.repository",
            "    workspace.repository",
            "  turn",
            "    chat echo-1",
            "    execute_tool echo",
            "  status.write",
        ],
        "{spans:#?}"
    );
    let trace_id = &spans[0].trace_id;
    assert!(spans.iter().all(|span| &span.trace_id == trace_id));

    let session = named(&spans, "session")[0];
    assert_eq!(session.text("ambient.session.id"), Some(SESSION));
    assert_eq!(session.text("ambient.project"), Some(PROJECT));
    assert_eq!(session.text("ambient.runner.type"), Some("echo-runner"));
    assert_eq!(session.text("ambient.session.end"), Some("completed"));
    assert_eq!(
        session.resource.get("service.name"),
        Some(&json!("echo-runner"))
    );
    assert_eq!(
        session.resource.get("deployment.environment"),
        Some(&json!("test"))
    );

    let turn = named(&spans, "turn")[0];
    assert_eq!(turn.text("gen_ai.system"), Some("echo"));
    assert_eq!(turn.text("gen_ai.request.model"), Some("echo-1"));
    assert_eq!(turn.int("gen_ai.usage.input_tokens"), Some(3));
    assert_eq!(turn.int("gen_ai.usage.output_tokens"), Some(3));
    let chat = named(&spans, "chat echo-1")[0];
    assert_eq!(chat.text("gen_ai.operation.name"), Some("chat"));
    assert_eq!(chat.int("gen_ai.usage.input_tokens"), Some(3));
    let tool = named(&spans, "execute_tool echo")[0];
    assert_eq!(tool.text("gen_ai.tool.name"), Some("echo"));
    assert_eq!(tool.text("gen_ai.tool.call.id"), Some("toolu_echo_1"));
    assert!(!tool.failed);

    // The repository named with the secret: its span says it failed, scrubbed.
    let repositories = named(&spans, "workspace.repository");
    let failed: Vec<_> = repositories.iter().filter(|span| span.failed).collect();
    assert_eq!(failed.len(), 1, "{repositories:#?}");
    assert_eq!(
        failed[0].text("ambient.repository.name"),
        Some("***REDACTED***")
    );
    assert_no_part_of(PLANTED, &receiver.bytes());

    // The backend was shown where the trace is.
    let persisted = env.persisted().await;
    let shown: Vec<&Value> = persisted
        .iter()
        .filter(|message| message["type"] == "system.trace")
        .collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["payload"]["trace_id"], json!(trace_id));

    // The session's figures, as OTLP metrics: cumulative sums whose last point is the
    // session's total.
    let value = |name: &str, attribute: Option<(&str, &str)>| {
        receiver
            .metric(name, attribute)
            .unwrap_or_else(|| panic!("no {name} {attribute:?}"))
            .value
    };
    assert_eq!(value("ambient.turns", None), 1.0);
    assert_eq!(value("ambient.tool_calls", None), 1.0);
    for kind in ["input", "output"] {
        assert_eq!(
            value(
                "gen_ai.client.token.usage",
                Some(("gen_ai.token.type", kind))
            ),
            3.0
        );
    }
    #[allow(clippy::cast_precision_loss, reason = "a few frames")]
    let frames = persisted.len() as f64;
    assert_eq!(value("ambient.frames_sent", None), frames);
    // Every frame's delivery is timed, from its queueing to the backend's echo.
    let latency = receiver.metric("ambient.relay.latency", None).unwrap();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a few frames"
    )]
    let delivered = frames as u64;
    assert_eq!(latency.count, delivered);
    assert!(latency.value > 0.0);
}

#[tokio::test]
async fn a_served_run_names_the_trace_it_belongs_to() {
    let receiver = OtlpReceiver::start(Behaviour::Accept).await;
    let workspace = tempfile::tempdir().unwrap();
    let mut command = serve_command(env!("CARGO_BIN_EXE_echo-runner"), workspace.path());
    command.env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
    let served = Served::start(command, workspace.path()).await;
    let events: Vec<Value> = served
        .run(&run_input("thread-1", "run-1", &[("m1", "user", "hello")]))
        .await
        .into_iter()
        .map(|event| event.data)
        .collect();
    let named: Vec<&Value> = events
        .iter()
        .filter(|event| event["type"] == "CUSTOM" && event["name"] == "ambient:trace_id")
        .collect();
    assert_eq!(named.len(), 1, "{events:#?}");
    assert_eq!(
        events[1]["name"], "ambient:trace_id",
        "first after RUN_STARTED"
    );
    let trace_id = named[0]["value"]["traceId"].as_str().unwrap().to_owned();
    served.stop().await;
    receiver
        .wait_until(|spans, _| spans.iter().any(|span| span.name == "session"))
        .await;
    assert!(
        receiver
            .spans()
            .iter()
            .all(|span| span.trace_id == trace_id)
    );
}

/// What a session left at the backend, without the times and ids that differ from run
/// to run, and without the trace frame (there is none when nothing is traced).
async fn figures(env: &Backend) -> (Vec<Value>, serde_json::Map<String, Value>) {
    let frames: Vec<Value> = env
        .persisted()
        .await
        .into_iter()
        .filter(|message| message["type"] != "system.trace")
        .map(|mut message| {
            let kind = message["type"].clone();
            let payload = &mut message["payload"];
            for key in ["frame_id", "timestamp", "seq"] {
                if let Some(object) = payload.as_object_mut() {
                    object.remove(key);
                }
            }
            if let Some(result) = payload.pointer_mut("/payload/duration_ms") {
                *result = json!("[ms]");
            }
            json!({"type": kind, "payload": payload})
        })
        .collect();
    let workspace = env.workspace.path().display().to_string();
    let frames = serde_json::from_str(
        &serde_json::to_string(&frames)
            .unwrap()
            .replace(&workspace, "[workspace]"),
    )
    .unwrap();
    let mut status = env.backend.status(PROJECT, SESSION).unwrap();
    for key in ["completionTime", "duration_ms"] {
        status.remove(key);
    }
    (frames, status)
}

#[tokio::test]
async fn a_collector_that_is_down_fails_or_hangs_leaves_the_session_as_it_was() {
    // The same session with no collector at all: what the others must match.
    let untraced = {
        let origins = tempfile::tempdir().unwrap();
        let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
        let vars: Vec<(String, String)> = traced_session(&origins, "")
            .into_iter()
            .filter(|(key, _)| !key.starts_with("OTEL_"))
            .collect();
        let finished = run(&env, &vars).await;
        assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
        figures(&env).await
    };
    // A port nobody listens on any more.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for (case, behaviour) in [
        ("down", None),
        ("500", Some(Behaviour::Fail)),
        ("hanging", Some(Behaviour::Hold)),
    ] {
        let receiver = match behaviour {
            Some(behaviour) => Some(OtlpReceiver::start(behaviour).await),
            None => None,
        };
        let endpoint = receiver
            .as_ref()
            .map_or_else(|| down.clone(), OtlpReceiver::endpoint);
        let origins = tempfile::tempdir().unwrap();
        let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
        let mut vars = traced_session(&origins, &endpoint);
        if behaviour == Some(Behaviour::Hold) {
            // The default request timeout (10 s): the end's flush budget, not the
            // request's timeout, must bound the exit.
            vars.retain(|(key, _)| key != "OTEL_EXPORTER_OTLP_TIMEOUT");
        }
        let started = std::time::Instant::now();
        let finished = run(&env, &vars).await;
        let took = started.elapsed();
        assert_eq!(
            finished.code,
            Some(0),
            "{case}: stderr:\n{}",
            finished.stderr
        );
        assert_eq!(figures(&env).await, untraced, "{case}");
        assert!(
            took < std::time::Duration::from_secs(8),
            "{case}: the session took {took:?} to end"
        );
        if let Some(receiver) = &receiver {
            assert!(receiver.requests() > 0, "{case}: the exporter never tried");
        }
    }
}

#[tokio::test]
async fn a_lost_connection_is_a_reconnect_span_and_counted() {
    let receiver = OtlpReceiver::start(Behaviour::Accept).await;
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let proxy = ambient_test_support::FaultProxy::start(env.backend.addr())
        .await
        .unwrap();
    let ws = proxy.route(&env.backend.ws_url(PROJECT, SESSION));
    let endpoint = receiver.endpoint();
    let mut watch = env.backend.watch(SESSION);
    let child = env
        .runner(&[
            ("INTERACTIVE", "true"),
            ("WEBSOCKET_URL", ws.as_str()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ])
        .spawn()
        .unwrap();
    // Cut once the session is open: a cut during the first handshake is a connection
    // tried again, not a reconnect.
    ambient_test_support::harness::until(&mut watch, |message| {
        message.payload.get("payload") == Some(&json!("session.started"))
    })
    .await;
    proxy.cut();
    proxy.wait_for_accepted(2).await;
    env.backend.wait_for_connections(SESSION, 1).await.unwrap();
    env.post(json!({"type": "end_session"})).await;
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let spans = receiver.spans();
    let reconnects = named(&spans, "websocket.reconnect");
    assert_eq!(reconnects.len(), 1, "{:?}", tree(&spans));
    let session = named(&spans, "session")[0];
    assert_eq!(reconnects[0].parent_span_id, session.span_id);
    assert_eq!(reconnects[0].int("ambient.reconnects"), Some(1));
    assert!(reconnects[0].end_ns >= reconnects[0].start_ns);
    let counted = receiver.metric("ambient.reconnects", None).unwrap();
    assert_eq!(counted.value, 1.0);
}

#[tokio::test]
async fn the_collectors_key_is_a_secret_the_runner_never_repeats() {
    const KEY: &str = "collector-key-9d81f0c2e7";
    let receiver = OtlpReceiver::start(Behaviour::Accept).await;
    let env = backend(SessionSeed::new(PROJECT, SESSION)).await;
    let endpoint = receiver.endpoint();
    let header = format!("Authorization=Bearer%20{KEY}");
    let prompt = format!("the key is {KEY}");
    let finished = run(
        &env,
        &[
            ("PROMPT".to_owned(), prompt),
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint),
            ("OTEL_EXPORTER_OTLP_HEADERS".to_owned(), header),
        ],
    )
    .await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let persisted = serde_json::to_string(&env.persisted().await).unwrap();
    assert!(!persisted.contains(KEY), "the key reached the backend");
    assert!(
        persisted.contains("the key is ***REDACTED***"),
        "{persisted}"
    );
    assert!(!finished.stderr.contains(KEY), "the key reached the log");
    assert_no_part_of(KEY, &receiver.bytes());
    assert!(
        !receiver.spans().is_empty(),
        "the export went out with the key"
    );
}
