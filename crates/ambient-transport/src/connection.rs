//! Making one connection, and retrying until one is made.

use std::time::Duration;

use http::{HeaderValue, header::AUTHORIZATION};
use tokio::{net::TcpStream, time::Instant};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, client::IntoClientRequest, protocol::WebSocketConfig},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

pub(crate) use ambient_protocol::error_chain;

use ambient_backoff::Backoff;

use crate::{Error, Result, TokenSource, TransportConfig};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What one read from the socket takes at most. tungstenite zero-fills this much before
/// every read, including the many that find nothing (the socket task polls for echoes
/// on every turn of its loop): at its default of 128 KiB that fill was 86 % of the
/// runner's instructions. Echoes are a few hundred bytes; a large message takes more
/// reads.
const READ_BUFFER_BYTES: usize = 4 << 10;
/// How long one handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection attempt.
async fn connect_once(config: &TransportConfig) -> Result<Socket> {
    let mut request = config
        .url
        .as_str()
        .into_client_request()
        .map_err(|_| Error::BadUrl {
            url: config.url.clone(),
        })?;
    if let Some(token) = read_token(&config.token)? {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|source| {
                Error::ConnectFailed {
                    source: Box::new(source),
                }
            })?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    // The backend's echo of a frame is as large as the frame.
    let max_message = config
        .max_message_bytes
        .max(4 * config.outbox.max_frame_bytes);
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let attempt = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => Err(Error::HandshakeRejected {
            status: response.status().as_u16(),
        }),
        Ok(Err(tungstenite::Error::Url(_))) => Err(Error::BadUrl {
            url: config.url.clone(),
        }),
        Ok(Err(source)) => Err(Error::ConnectFailed {
            source: Box::new(source),
        }),
        Err(elapsed) => Err(Error::ConnectFailed {
            source: Box::new(elapsed),
        }),
    }
}

fn read_token(source: &TokenSource) -> Result<Option<String>> {
    Ok(match source {
        TokenSource::None => None,
        TokenSource::Static(secret) => Some(secret.expose().to_owned()),
        TokenSource::File(path) => {
            Some(
                std::fs::read_to_string(path).map_err(|source| Error::TokenFile {
                    path: path.clone(),
                    source,
                })?,
            )
        }
    })
}

/// Connects, retrying with backoff until `config.give_up_after` has passed. A fatal
/// failure (see [`Error::is_fatal`]) ends the attempts at once.
pub(crate) async fn connect_with_retry(
    config: &TransportConfig,
    cancel: &CancellationToken,
    backoff: Option<&mut Backoff>,
) -> Result<Socket> {
    let mut own = Backoff::new(config.backoff);
    let backoff = backoff.unwrap_or(&mut own);
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let error = tokio::select! {
            () = cancel.cancelled() => return Err(Error::Closed),
            result = connect_once(config) => match result {
                Ok(socket) => return Ok(socket),
                Err(error) => error,
            },
        };
        // A 401 can only heal when the token can change, that is when it is read from a
        // mounted file that the platform rotates.
        let token_can_rotate = matches!(config.token, TokenSource::File(_));
        if error.is_fatal() || (error.is_auth() && !token_can_rotate) {
            return Err(error);
        }
        let elapsed = started.elapsed();
        let delay = backoff.next_delay();
        if elapsed + delay > config.give_up_after {
            return Err(Error::GaveUp {
                attempts,
                elapsed,
                last: Box::new(error),
            });
        }
        if attempts == 1 {
            warn!(error = %error_chain(&error), ?delay, "backend unreachable, retrying");
        } else {
            debug!(attempts, error = %error_chain(&error), ?delay, "backend still unreachable");
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(Error::Closed),
            () = tokio::time::sleep(delay) => {}
        }
    }
}
