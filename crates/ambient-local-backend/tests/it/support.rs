//! Shared fixtures: a seeded backend, clients, and reads bounded by a timeout.

use std::{net::SocketAddr, sync::Once, time::Duration};

use ambient_local_backend::{Builder, LocalBackend, SessionSeed};
use ambient_protocol::SessionMessage;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest as _, http::HeaderValue},
};

/// The bot token every test backend accepts.
pub(crate) const TOKEN: &str = "bot-token-for-tests";
/// The project of the seeded session.
pub(crate) const PROJECT: &str = "team-a";
/// The seeded session.
pub(crate) const SESSION: &str = "agentic-session-1";
/// The bound on every wait.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A WebSocket client connection.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A builder with the test token and the seeded session.
pub(crate) fn builder() -> Builder {
    LocalBackend::builder()
        .token(TOKEN)
        .session(SessionSeed::new(PROJECT, SESSION))
}

/// Starts `builder` on a free loopback port.
pub(crate) async fn start(builder: Builder) -> LocalBackend {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    within(builder.start(any_port))
        .await
        .expect("backend starts")
}

/// A backend with the test token and the seeded session.
pub(crate) async fn backend() -> LocalBackend {
    start(builder()).await
}

/// Awaits `future`, failing the test after [`WAIT`].
pub(crate) async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("timed out waiting")
}

/// An HTTP client.
pub(crate) fn http() -> reqwest::Client {
    static PROVIDER: Once = Once::new();
    // reqwest is built without a TLS provider; plain HTTP still needs one installed.
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::new()
}

/// `{api_url}{path}`, where `path` starts with `/projects/…`.
pub(crate) fn url(backend: &LocalBackend, path: &str) -> String {
    format!("{}{path}", backend.api_url())
}

/// The status and JSON body of a response.
pub(crate) async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = within(request.send()).await.expect("request is sent");
    let status = response.status().as_u16();
    let body = within(response.json::<Value>()).await.expect("JSON body");
    (status, body)
}

/// Connects to `session` with the token in the query (as the runner reconnects), and
/// waits until the hub has registered the connection.
pub(crate) async fn connect(backend: &LocalBackend, session: &str) -> Ws {
    let url = format!("{}?token={TOKEN}", backend.ws_url(PROJECT, session));
    connect_to(backend, session, &url, None).await
}

/// Connects to `url` (a `session` URL), with an optional `Authorization` header.
pub(crate) async fn connect_to(
    backend: &LocalBackend,
    session: &str,
    url: &str,
    authorization: Option<&str>,
) -> Ws {
    let before = backend.connection_count(session);
    let mut request = url.into_client_request().expect("valid URL");
    if let Some(value) = authorization {
        let value = HeaderValue::from_str(value).expect("valid header");
        request.headers_mut().insert("authorization", value);
    }
    // Boxed: the handshake future is large.
    let (ws, _) = within(Box::pin(connect_async(request)))
        .await
        .expect("handshake");
    within(backend.wait_for_connections(session, before + 1))
        .await
        .expect("backend running");
    ws
}

/// Sends one text frame.
pub(crate) async fn send(ws: &mut Ws, text: impl Into<String>) {
    within(ws.send(Message::text(text.into())))
        .await
        .expect("frame sent");
}

/// The next text frame as JSON, skipping control frames.
pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let frame = within(ws.next())
            .await
            .expect("connection open")
            .expect("frame read");
        match frame {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next broadcast message.
pub(crate) async fn next_message(ws: &mut Ws) -> SessionMessage {
    serde_json::from_value(next_json(ws).await).expect("a SessionMessage")
}

/// The next message a watcher sees.
pub(crate) async fn watched(
    watcher: &mut tokio::sync::mpsc::UnboundedReceiver<SessionMessage>,
) -> SessionMessage {
    within(watcher.recv()).await.expect("watcher open")
}

/// A backend timestamp: RFC 3339 UTC at second precision.
#[track_caller]
pub(crate) fn assert_backend_timestamp(timestamp: &str) {
    assert_eq!(timestamp.len(), 20, "{timestamp}");
    assert!(timestamp.ends_with('Z'), "{timestamp}");
}
