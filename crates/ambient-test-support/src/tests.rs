//! The proxy against a loopback echo server.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::FaultProxy;

const WAIT: Duration = Duration::from_secs(10);

/// A TCP server that echoes every byte back.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0_u8; 1024];
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 || socket.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(socket: &mut TcpStream, text: &[u8]) -> Option<Vec<u8>> {
    socket.write_all(text).await.ok()?;
    let mut answer = vec![0_u8; text.len()];
    match tokio::time::timeout(Duration::from_millis(300), socket.read_exact(&mut answer)).await {
        Ok(Ok(_)) => Some(answer),
        _ => None,
    }
}

#[tokio::test]
async fn forwards_then_cuts_stalls_half_opens_and_refuses() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut socket, b"ping").await.as_deref(),
        Some(&b"ping"[..])
    );

    proxy.stall();
    assert_eq!(
        round_trip(&mut socket, b"held").await,
        None,
        "a stalled connection answered"
    );
    // A new connection is healthy while the old one is stalled.
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut fresh, b"new").await.as_deref(),
        Some(&b"new"[..])
    );
    proxy.heal();
    let mut held = [0_u8; 4];
    tokio::time::timeout(WAIT, socket.read_exact(&mut held))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&held, b"held", "the stalled bytes arrive once healed");

    proxy.half_open();
    assert_eq!(
        round_trip(&mut fresh, b"lost").await,
        None,
        "a half-open connection answered"
    );

    proxy.cut();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, socket.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(
        read.is_ok_and(|n| n == 0) || rest.is_empty(),
        "a cut connection stays open"
    );

    proxy.set_down(true);
    let before = proxy.accepted();
    let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.wait_for_accepted(before + 1).await;
    let mut byte = [0_u8; 1];
    let closed = tokio::time::timeout(WAIT, refused.read(&mut byte))
        .await
        .unwrap();
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "a connection to a down proxy stays open"
    );
    proxy.set_down(false);
    let mut back = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut back, b"up").await.as_deref(),
        Some(&b"up"[..])
    );
}
