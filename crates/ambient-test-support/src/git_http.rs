//! A git smart-HTTP server on loopback that requires a token, for testing the credential
//! path: git's own `git http-backend`, run as a CGI program behind a check of the
//! `Authorization` header. Over plain HTTP, or over HTTPS with a certificate for
//! `127.0.0.1` made at start ([`GitHttpServer::start_tls`]), since the runner sends
//! tokens over https only.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use tokio::{io::AsyncWriteExt, process::Command};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Served {
    root: PathBuf,
    expected: String,
    /// Every `Authorization` header received, for tests that check what git sent.
    seen: Mutex<Vec<String>>,
    /// Every request.
    requests: std::sync::atomic::AtomicUsize,
}

fn app(root: &Path, user: &str, token: &str) -> (Arc<Served>, Router) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
    let served = Arc::new(Served {
        root: root.to_owned(),
        expected: format!("Basic {basic}"),
        seen: Mutex::new(Vec::new()),
        requests: std::sync::atomic::AtomicUsize::new(0),
    });
    let app = Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&served));
    (served, app)
}

/// A name no other server's file has.
fn fastrand_name() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

/// Connections, each once its TLS handshake is done.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that fails its handshake (git refusing the certificate) is dropped.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct GitHttpServer {
    addr: SocketAddr,
    served: Arc<Served>,
    stop: CancellationToken,
    /// Over TLS: the certificate's PEM file (the CA git must trust).
    certificate: Option<PathBuf>,
}

impl GitHttpServer {
    /// Serves the bare repositories under `root`, to clients that authenticate as `user`
    /// with `token` (HTTP Basic, as git sends it).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped start leaves nothing running.
    pub async fn start(root: &Path, user: &str, token: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (served, app) = app(root, user, token);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _served = axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        Ok(Self {
            addr,
            served,
            stop,
            certificate: None,
        })
    }

    /// The same over HTTPS, with a self-signed certificate for `127.0.0.1` whose PEM file
    /// ([`GitHttpServer::certificate`]) git must be told to trust (`GIT_SSL_CAINFO`).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped start leaves nothing running.
    pub async fn start_tls(root: &Path, user: &str, token: &str) -> std::io::Result<Self> {
        crate::crypto();
        let made = rcgen::generate_simple_self_signed(vec![String::from("127.0.0.1")])
            .map_err(std::io::Error::other)?;
        let certificate = root.join(format!("git-server-{}.pem", fastrand_name()));
        std::fs::write(&certificate, made.cert.pem())?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .map_err(std::io::Error::other)?;
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = tcp.local_addr()?;
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        let (served, app) = app(root, user, token);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _served = axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        Ok(Self {
            addr,
            served,
            stop,
            certificate: Some(certificate),
        })
    }

    /// The certificate git must trust, for a server started with TLS.
    pub fn certificate(&self) -> Option<&Path> {
        self.certificate.as_deref()
    }

    /// `host:port` of the server, as a token's host list names it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The clone URL of the repository `path` (relative to the root, e.g. `o/r.git`).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.certificate.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/{path}", self.addr)
    }

    /// How many requests came, with or without credentials.
    pub fn requests(&self) -> usize {
        self.served
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every `Authorization` header received.
    pub fn credentials_seen(&self) -> Vec<String> {
        self.served
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many requests carried the right credentials.
    pub fn authorized_requests(&self) -> usize {
        let seen = self
            .served
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.iter().filter(|h| **h == self.served.expected).count()
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn handle(State(served): State<Arc<Served>>, request: Request) -> Response {
    served
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(given) = &authorization {
        served
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(given.clone());
    }
    if authorization.as_deref() != Some(served.expected.as_str()) {
        let mut response = (StatusCode::UNAUTHORIZED, "token required").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"git\""),
        );
        return response;
    }
    match cgi(&served.root, request).await {
        Ok(response) => response,
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// Runs `git http-backend` for one request.
async fn cgi(root: &Path, request: Request) -> std::io::Result<Response> {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let header_text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", "/usr/bin:/bin:/usr/local/bin")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header_text(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header_text(header::CONTENT_ENCODING),
        )
        .env(
            "GIT_PROTOCOL",
            parts
                .headers
                .get("git-protocol")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        )
        .env("REMOTE_USER", "git")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&body).await?;
    }
    let output = child.wait_with_output().await?;
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .ok_or_else(|| std::io::Error::other("git http-backend wrote no headers"))?;
    let head = String::from_utf8_lossy(&raw[..split.0]).into_owned();
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(name.trim()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    let mut response = Response::new(Body::from(raw[split.0 + split.1..].to_vec()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}
