//! The transport against the local backend on loopback.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use std::time::Duration;

use ambient_local_backend::{LocalBackend, SessionSeed};
use ambient_protocol::{Inbound, Outbound, Secret};
use ambient_transport::{Error, Received, TokenSource, Transport, TransportConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-token";
const BOUND: Duration = Duration::from_secs(20);

async fn backend() -> LocalBackend {
    LocalBackend::builder()
        .token(TOKEN)
        .session(SessionSeed::new("p", "s"))
        .start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

fn config(backend: &LocalBackend, token: &str) -> TransportConfig {
    let mut config = TransportConfig::new(
        backend.ws_url("p", "s"),
        TokenSource::Static(Secret::new(token)),
        "s",
    );
    config.give_up_after = Duration::from_secs(2);
    config
}

fn log(n: usize) -> Outbound {
    Outbound::Log {
        message: format!("line {n}"),
    }
}

#[tokio::test]
async fn every_frame_reaches_the_backend_in_order_and_flush_waits_for_the_echoes() {
    let backend = backend().await;
    let mut watch = backend.watch("s");
    let (transport, _inbound) =
        Transport::connect(config(&backend, TOKEN), CancellationToken::new())
            .await
            .unwrap();
    for n in 0..500 {
        transport.send(log(n)).await.unwrap();
    }
    tokio::time::timeout(BOUND, transport.flush())
        .await
        .unwrap()
        .unwrap();
    for n in 0..500 {
        let message = watch.recv().await.unwrap();
        assert_eq!(message.payload["message"], json!(format!("line {n}")));
    }
    let stats = transport.close().await.unwrap();
    assert_eq!(stats.frames, 500);
    assert_eq!(stats.reconnects, 0);
}

#[tokio::test]
async fn a_wrong_token_is_refused_at_once_and_says_so() {
    let backend = backend().await;
    let error = Transport::connect(config(&backend, "wrong"), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::HandshakeRejected { status: 401 }),
        "{error:?}"
    );
    assert!(error.is_auth());
    assert_eq!(
        error.to_string(),
        "the backend refused the WebSocket handshake with HTTP 401 (the bot token is missing, invalid or expired)"
    );
}

#[tokio::test]
async fn user_messages_arrive_and_other_sessions_are_ignored() {
    let backend = LocalBackend::builder()
        .token(TOKEN)
        .session(SessionSeed::new("p", "s"))
        .start(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (transport, mut inbound) =
        Transport::connect(config(&backend, TOKEN), CancellationToken::new())
            .await
            .unwrap();
    backend.wait_for_connections("s", 1).await.unwrap();
    backend
        .post_message("p", "other", json!({"content": "not for us"}))
        .await
        .unwrap();
    backend
        .post_message("p", "s", json!({"content": "hello"}))
        .await
        .unwrap();
    backend
        .post_message("p", "s", json!({"type": "interrupt"}))
        .await
        .unwrap();
    for expect in [
        Inbound::UserMessage {
            content: String::from("hello"),
        },
        Inbound::Interrupt,
    ] {
        match tokio::time::timeout(BOUND, inbound.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Received::Message {
                inbound, message, ..
            } => {
                assert_eq!(inbound, expect);
                assert_eq!(message.session_id, "s");
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }
    // Our own frames come back as echoes and are consumed, not delivered.
    transport.send(log(1)).await.unwrap();
    transport.flush().await.unwrap();
    assert!(inbound.try_recv().is_err());
    transport.close().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_backend_is_given_up_on_within_the_deadline() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = TransportConfig::new(
        format!("ws://127.0.0.1:{port}/api/projects/p/sessions/s/ws"),
        TokenSource::None,
        "s",
    );
    config.give_up_after = Duration::from_millis(300);
    config.backoff.initial = Duration::from_millis(10);
    let error = Transport::connect(config, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::GaveUp { attempts, .. } if attempts > 1),
        "{error:?}"
    );
}

mod faults {
    //! The transport through the fault proxy.

    use std::time::{Duration, Instant};

    use ambient_test_support::FaultProxy;

    use super::*;

    /// Short keepalive and backoff, so that faults are found and healed quickly.
    fn through(proxy: &FaultProxy, backend: &LocalBackend, token: TokenSource) -> TransportConfig {
        let mut config = TransportConfig::new(proxy.route(&backend.ws_url("p", "s")), token, "s");
        config.keepalive = ambient_transport::Keepalive {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(300),
        };
        config.backoff.initial = Duration::from_millis(20);
        config.backoff.max = Duration::from_millis(200);
        config.give_up_after = Duration::from_secs(30);
        config
    }

    async fn next_reconnect(inbound: &mut tokio::sync::mpsc::UnboundedReceiver<Received>) {
        loop {
            match tokio::time::timeout(BOUND, inbound.recv())
                .await
                .unwrap()
                .unwrap()
            {
                Received::Reconnected { .. } => return,
                _ => continue,
            }
        }
    }

    #[tokio::test]
    async fn a_stalled_or_half_open_peer_is_detected_within_the_keepalive_bound() {
        let backend = backend().await;
        let proxy = FaultProxy::start(backend.addr()).await.unwrap();
        let config = through(&proxy, &backend, TokenSource::Static(Secret::new(TOKEN)));
        // Detection takes at most one interval to the next ping plus the timeout.
        let bound = config.keepalive.interval + config.keepalive.timeout;
        let (transport, mut inbound) = Transport::connect(config, CancellationToken::new())
            .await
            .unwrap();
        for fault in [FaultProxy::stall, FaultProxy::half_open] {
            let faulted = Instant::now();
            fault(&proxy);
            next_reconnect(&mut inbound).await;
            let detected = faulted.elapsed();
            // The reconnect itself adds a backoff step and a handshake.
            assert!(
                detected < bound + Duration::from_secs(1),
                "detected after {detected:?}"
            );
        }
        transport.send(log(1)).await.unwrap();
        tokio::time::timeout(BOUND, transport.flush())
            .await
            .unwrap()
            .unwrap();
        transport.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_rotated_token_file_is_read_again_before_reconnecting() {
        let backend = backend().await;
        let proxy = FaultProxy::start(backend.addr()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "expired-token\n").unwrap();
        let config = through(&proxy, &backend, TokenSource::File(file.clone()));
        let connecting = tokio::spawn(Transport::connect(config, CancellationToken::new()));
        // The backend refuses the old token at least once, then the platform rotates it.
        proxy.wait_for_accepted(1).await;
        std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
        let (transport, _inbound) = tokio::time::timeout(BOUND, connecting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        transport.send(log(1)).await.unwrap();
        tokio::time::timeout(BOUND, transport.flush())
            .await
            .unwrap()
            .unwrap();
        transport.close().await.unwrap();
    }

    #[tokio::test]
    async fn frames_sent_while_the_backend_is_down_are_delivered_after_it_returns() {
        let backend = backend().await;
        let proxy = FaultProxy::start(backend.addr()).await.unwrap();
        let config = through(&proxy, &backend, TokenSource::Static(Secret::new(TOKEN)));
        let (transport, _inbound) = Transport::connect(config, CancellationToken::new())
            .await
            .unwrap();
        transport.send(log(0)).await.unwrap();
        transport.flush().await.unwrap();
        proxy.set_down(true);
        for n in 1..50 {
            transport.send(log(n)).await.unwrap();
        }
        let before = proxy.accepted();
        // Let the transport fail to reconnect a few times before the backend returns.
        proxy.wait_for_accepted(before + 3).await;
        proxy.set_down(false);
        tokio::time::timeout(BOUND, transport.flush())
            .await
            .unwrap()
            .unwrap();
        let lines: Vec<_> = backend
            .history("s")
            .await
            .into_iter()
            .map(|m| m.payload["message"].as_str().unwrap_or_default().to_owned())
            .collect();
        let mut unique = lines.clone();
        unique.dedup();
        let expected: Vec<String> = (0..50).map(|n| format!("line {n}")).collect();
        assert_eq!(unique, expected);
        transport.close().await.unwrap();
    }
}

mod limits {
    //! Backpressure and the frame cap.

    use std::time::Duration;

    use ambient_protocol::MessageType;
    use ambient_test_support::FaultProxy;
    use ambient_transport::OutboxLimits;

    use super::*;

    #[tokio::test]
    async fn a_full_outbox_makes_sending_wait_and_nothing_is_dropped() {
        let backend = backend().await;
        let proxy = FaultProxy::start(backend.addr()).await.unwrap();
        let mut config = config(&backend, TOKEN);
        config.url = proxy.route(&config.url);
        config.outbox = OutboxLimits {
            frames: 10,
            ..OutboxLimits::default()
        };
        config.backoff.initial = Duration::from_millis(10);
        config.backoff.max = Duration::from_millis(50);
        config.give_up_after = Duration::from_secs(30);
        let (transport, _inbound) = Transport::connect(config, CancellationToken::new())
            .await
            .unwrap();
        proxy.set_down(true);
        // With nothing echoed, the outbox (10) and the command channel in front of it
        // fill, and then a send waits.
        let mut accepted = 0;
        loop {
            let send = transport.send(log(accepted));
            match tokio::time::timeout(Duration::from_millis(200), send).await {
                Ok(sent) => sent.unwrap(),
                Err(_) => break,
            }
            accepted += 1;
            assert!(accepted < 1000, "sending never waited");
        }
        assert!(
            accepted <= 10 + 64 + 1,
            "{accepted} frames taken without an echo"
        );
        proxy.set_down(false);
        for n in accepted..accepted + 100 {
            tokio::time::timeout(BOUND, transport.send(log(n)))
                .await
                .unwrap()
                .unwrap();
        }
        tokio::time::timeout(BOUND, transport.flush())
            .await
            .unwrap()
            .unwrap();
        let mut lines: Vec<String> = backend
            .history("s")
            .await
            .into_iter()
            .filter_map(|m| m.payload["message"].as_str().map(str::to_owned))
            .collect();
        lines.dedup();
        let expected: Vec<String> = (0..accepted + 100).map(|n| format!("line {n}")).collect();
        // The frame whose send timed out was never taken, and is sent again first.
        assert_eq!(lines, expected);
        transport.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_huge_text_arrives_as_partials_that_reassemble() {
        let backend = backend().await;
        let (transport, _inbound) =
            Transport::connect(config(&backend, TOKEN), CancellationToken::new())
                .await
                .unwrap();
        let text: String = (0..5_000_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        transport
            .send(Outbound::TextBlock { text: text.clone() })
            .await
            .unwrap();
        tokio::time::timeout(BOUND, transport.flush())
            .await
            .unwrap()
            .unwrap();
        let mut parts = Vec::new();
        for message in backend.history("s").await {
            assert_eq!(message.kind, MessageType::AgentMessage.as_str());
            // A partial's whole envelope is the stored payload.
            let partial = &message.payload["partial"];
            parts.push((
                partial["index"].as_u64().unwrap(),
                partial["data"].as_str().unwrap().to_owned(),
            ));
            assert_eq!(
                partial["total"].as_u64().unwrap() as usize,
                parts.len().max(partial["total"].as_u64().unwrap() as usize)
            );
        }
        assert!(parts.len() > 1);
        parts.sort();
        let joined: String = parts.into_iter().map(|(_, data)| data).collect();
        assert_eq!(joined.len(), text.len());
        assert!(joined == text, "the reassembled text differs");
        transport.close().await.unwrap();
    }
}

mod bad_input {
    //! A server that sends what the real backend never should.

    use axum::{
        Router,
        extract::ws::{Message, WebSocketUpgrade},
        routing::get,
    };

    use super::*;

    #[tokio::test]
    async fn binary_garbage_and_malformed_messages_are_skipped_without_a_disconnect() {
        let app = Router::new().route(
            "/api/projects/p/sessions/s/ws",
            get(|upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(|mut socket| async move {
                    let sends = [
                        Message::Binary(vec![0_u8, 159, 146, 150].into()),
                        Message::Text("not json at all".into()),
                        Message::Text("[1, 2, 3]".into()),
                        Message::Text(r#"{"type":"user_message"}"#.into()),
                        Message::Text(
                            r#"{"sessionId":"s","type":"user_message","timestamp":"t","payload":{"content":7}}"#.into(),
                        ),
                        Message::Text(
                            r#"{"sessionId":"s","type":"user_message","timestamp":"t","payload":{"content":"fine"}}"#.into(),
                        ),
                    ];
                    for message in sends {
                        if socket.send(message).await.is_err() {
                            return;
                        }
                    }
                    // Stay until the client goes.
                    while let Some(Ok(_)) = socket.recv().await {}
                })
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = TransportConfig::new(
            format!("ws://{addr}/api/projects/p/sessions/s/ws"),
            TokenSource::None,
            "s",
        );
        let (transport, mut inbound) = Transport::connect(config, CancellationToken::new())
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            got.push(
                tokio::time::timeout(BOUND, inbound.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert!(
            matches!(&got[0], Received::Malformed { error, .. } if error.to_string() == "payload of a `user_message` message has the wrong shape"),
            "{got:?}"
        );
        assert!(
            matches!(&got[1], Received::Message { inbound: Inbound::UserMessage { content }, .. } if content == "fine"),
            "{got:?}"
        );
        drop(transport);
    }
}
