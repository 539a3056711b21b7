//! Whole sessions through the fault proxy: cuts, outages, and input posted while the
//! runner is away.

use std::{collections::HashSet, time::Duration};

use ambient_adapter_echo::{EchoAdapter, EchoConfig};
use ambient_host::RunnerExit;
use ambient_local_backend::LocalBackend;
use ambient_protocol::SessionMessage;
use ambient_status::Endpoints;
use ambient_test_support::FaultProxy;
use ambient_websocket::{RunnerConfig, run_session};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{PROJECT, SESSION, WAIT, backend, config, until};

/// How long the backend stays away in the outage tests.
const OUTAGE: Duration = Duration::from_secs(30);

/// A session whose WebSocket and HTTP calls go through `proxy`, with quick reconnects.
fn through(proxy: &FaultProxy, backend: &LocalBackend, interactive: bool) -> RunnerConfig {
    let mut config = config(backend, interactive, None);
    config.websocket.url = proxy.route(&config.websocket.url);
    config.websocket.endpoints =
        Endpoints::new(&proxy.route(&backend.api_url()), PROJECT, SESSION).unwrap();
    config.websocket.backoff.initial = Duration::from_millis(10);
    config.websocket.backoff.max = Duration::from_millis(100);
    config
}

/// The sequence numbers of our frames in the order the backend stored them, duplicates
/// included, and how many frames carried an id.
fn stored_seqs(history: &[SessionMessage]) -> Vec<u64> {
    history
        .iter()
        .filter_map(|m| m.frame_id())
        .map(|id| id.as_str().rsplit('-').next().unwrap().parse().unwrap())
        .collect()
}

/// Checks that every frame `1..=last` is stored, first copies in order, and that every
/// extra copy is a resend of a frame already stored (in flight at a cut).
#[track_caller]
fn assert_complete_and_ordered(seqs: &[u64]) -> usize {
    let mut seen = HashSet::new();
    let mut firsts = Vec::new();
    for &seq in seqs {
        if seen.insert(seq) {
            firsts.push(seq);
        }
    }
    let last = firsts.iter().copied().max().unwrap_or(0);
    let expected: Vec<u64> = (1..=last).collect();
    assert_eq!(firsts, expected, "frames missing or out of order");
    seqs.len() - firsts.len()
}

#[tokio::test]
async fn a_hundred_cuts_during_ten_thousand_frames_lose_nothing() {
    const FRAMES: u64 = 10_000;
    const CUTS: usize = 100;
    let backend = backend().await;
    let proxy = FaultProxy::start(backend.addr()).await.unwrap();
    let mut watch = backend.watch(SESSION);
    let adapter = EchoAdapter::new(EchoConfig {
        burst_events: FRAMES,
        burst_bytes: 200,
        stamp_bursts: false,
    });
    let session = tokio::spawn(run_session(
        through(&proxy, &backend, false),
        adapter,
        CancellationToken::new(),
    ));
    // Cut after every 50 stored frames while frames are flowing, each time once the
    // runner is connected again, so that every cut cuts a live connection.
    let mut stored = 0_usize;
    let mut cuts = 0;
    while cuts < CUTS {
        tokio::time::timeout(WAIT, watch.recv())
            .await
            .unwrap()
            .unwrap();
        stored += 1;
        if stored.is_multiple_of(50) {
            let accepted = proxy.accepted();
            proxy.cut();
            cuts += 1;
            tokio::time::timeout(WAIT, proxy.wait_for_accepted(accepted + 1))
                .await
                .unwrap();
        }
    }
    let report = tokio::time::timeout(WAIT * 4, session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.exit(), RunnerExit::Completed, "{report:?}");
    let history = backend.history(SESSION).await;
    let seqs = stored_seqs(&history);
    let duplicates = assert_complete_and_ordered(&seqs);
    // started, prompt, running, text, the burst, tool use, tool result, result, completed.
    let distinct = seqs.len() - duplicates;
    assert_eq!(distinct as u64, FRAMES + 8, "distinct frames stored");
    assert_eq!(
        backend.status(PROJECT, SESSION).unwrap()["phase"],
        json!("Completed")
    );
    assert!(
        proxy.accepted() > CUTS as u64,
        "the proxy saw {} connections",
        proxy.accepted()
    );
}

#[tokio::test]
async fn the_session_completes_when_the_backend_is_away_at_the_start() {
    let backend = backend().await;
    let proxy = FaultProxy::start(backend.addr()).await.unwrap();
    proxy.set_down(true);
    let session = tokio::spawn(run_session(
        through(&proxy, &backend, false),
        EchoAdapter::default(),
        CancellationToken::new(),
    ));
    proxy.wait_for_accepted(1).await;
    // The outage itself: its length is the fault under test, not a wait for something.
    tokio::time::sleep(OUTAGE).await;
    proxy.set_down(false);
    let report = tokio::time::timeout(WAIT, session).await.unwrap().unwrap();
    assert_eq!(report.exit(), RunnerExit::Completed, "{report:?}");
    assert_complete_and_ordered(&stored_seqs(&backend.history(SESSION).await));
}

#[tokio::test]
async fn the_session_completes_when_the_backend_is_away_mid_run() {
    let backend = backend().await;
    let proxy = FaultProxy::start(backend.addr()).await.unwrap();
    let mut watch = backend.watch(SESSION);
    let adapter = EchoAdapter::new(EchoConfig {
        burst_events: 5_000,
        burst_bytes: 200,
        stamp_bursts: false,
    });
    let session = tokio::spawn(run_session(
        through(&proxy, &backend, false),
        adapter,
        CancellationToken::new(),
    ));
    for _ in 0..500 {
        tokio::time::timeout(WAIT, watch.recv())
            .await
            .unwrap()
            .unwrap();
    }
    proxy.set_down(true);
    tokio::time::sleep(OUTAGE).await;
    proxy.set_down(false);
    let report = tokio::time::timeout(WAIT * 2, session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.exit(), RunnerExit::Completed, "{report:?}");
    let seqs = stored_seqs(&backend.history(SESSION).await);
    assert_complete_and_ordered(&seqs);
    assert!(seqs.len() >= 5_000, "{} frames stored", seqs.len());
}

#[tokio::test]
async fn a_message_posted_during_an_outage_is_answered_once_after_the_reconnect() {
    let backend = backend().await;
    let proxy = FaultProxy::start(backend.addr()).await.unwrap();
    let mut watch = backend.watch(SESSION);
    let session = tokio::spawn(run_session(
        through(&proxy, &backend, true),
        EchoAdapter::default(),
        CancellationToken::new(),
    ));
    // The prompt's turn ends with the first wait.
    until(&mut watch, |m| m.kind == "agent.waiting").await;
    proxy.set_down(true);
    let accepted = proxy.accepted();
    backend
        .post_message(PROJECT, SESSION, json!({"content": "posted while away"}))
        .await
        .unwrap();
    // Let the runner fail to come back at least once before the backend returns.
    proxy.wait_for_accepted(accepted + 1).await;
    proxy.set_down(false);
    // The answer, and a message posted right after the reconnect that must come after it.
    backend
        .post_message(PROJECT, SESSION, json!({"content": "posted on return"}))
        .await
        .unwrap();
    let mut answered = Vec::new();
    while answered.len() < 2 {
        let message = tokio::time::timeout(WAIT, watch.recv())
            .await
            .unwrap()
            .unwrap();
        if let Some(text) = message.payload["content"]["text"].as_str() {
            // The prompt's answer may be resent after the reconnect.
            if text != "hello" && !answered.iter().any(|a| a == text) {
                answered.push(text.to_owned());
            }
        }
    }
    assert_eq!(answered, ["posted while away", "posted on return"]);
    backend
        .post_message(PROJECT, SESSION, json!({"type": "end_session"}))
        .await
        .unwrap();
    let report = tokio::time::timeout(WAIT, session).await.unwrap().unwrap();
    assert_eq!(report.exit(), RunnerExit::Completed, "{report:?}");
    // Resent frames may repeat an answer's frame; a second answer is a new frame id.
    let answers: HashSet<_> = backend
        .history(SESSION)
        .await
        .iter()
        .filter(|m| m.payload["content"]["text"] == json!("posted while away"))
        .filter_map(SessionMessage::frame_id)
        .collect();
    assert_eq!(
        answers.len(),
        1,
        "the message was answered {} times",
        answers.len()
    );
}
