//! The HTTP/1.1 upgrade to WebSocket (RFC 6455 §4.2), ending with the raw TCP socket in hand.
//!
//! axum's own `WebSocketUpgrade` hands out a stream wrapped in tungstenite; courier writes
//! pre-encoded frames itself, so it takes the upgraded connection back as the `TcpStream` that
//! [`server::run`](crate::server::run) served it on (plus any bytes read past the request) —
//! over TLS, as that socket and its rustls session, which the connection task drives itself.

use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::connection::Transport;

/// Why a request is not a WebSocket upgrade (answered with HTTP status, no upgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UpgradeError {
    /// Not `GET`.
    #[error("websocket upgrade must be GET")]
    Method,
    /// Missing `Connection: upgrade`, `Upgrade: websocket` or `Sec-WebSocket-Key`.
    #[error("not a websocket upgrade request")]
    NotUpgrade,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("unsupported websocket version")]
    Version,
    /// The connection cannot be upgraded (not served by `server::run`'s HTTP/1 connections).
    #[error("connection not upgradable")]
    NotUpgradable,
}

impl IntoResponse for UpgradeError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Method => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotUpgrade => StatusCode::BAD_REQUEST,
            // RFC 6455 §4.4: answer 426 with the version we speak.
            Self::Version => {
                return (
                    StatusCode::UPGRADE_REQUIRED,
                    [(header::SEC_WEBSOCKET_VERSION, "13")],
                    self.to_string(),
                )
                    .into_response()
            }
            Self::NotUpgradable => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.to_string()).into_response()
    }
}

/// A checked upgrade request, not yet answered.
pub(crate) struct Upgrade {
    accept: String,
    on_upgrade: OnUpgrade,
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl Upgrade {
    /// Checks `parts` as RFC 6455 §4.2.1 asks and takes the pending upgrade out of it.
    pub(crate) fn from_parts(parts: &mut Parts) -> Result<Self, UpgradeError> {
        if parts.method != Method::GET {
            return Err(UpgradeError::Method);
        }
        let h = &parts.headers;
        if !has_token(h, header::CONNECTION, "upgrade")
            || !has_token(h, header::UPGRADE, "websocket")
        {
            return Err(UpgradeError::NotUpgrade);
        }
        if h.get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(UpgradeError::Version);
        }
        let key = h
            .get(header::SEC_WEBSOCKET_KEY)
            .filter(|k| !k.is_empty())
            .ok_or(UpgradeError::NotUpgrade)?;
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeError::NotUpgradable)?;
        Ok(Self { accept, on_upgrade })
    }

    /// The `101 Switching Protocols` answer (selecting `protocol` if given), and the future that
    /// yields the raw socket once hyper has sent it.
    pub(crate) fn accept(
        self,
        protocol: Option<&'static str>,
    ) -> (
        Response,
        impl std::future::Future<Output = Option<(Transport, Bytes)>>,
    ) {
        let mut res = Response::new(axum::body::Body::empty());
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = res.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&self.accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(p) = protocol {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
        }
        let on_upgrade = self.on_upgrade;
        let socket = async move {
            let upgraded = on_upgrade.await.ok()?;
            let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => {
                    return Some((Transport::Plain(parts.io.into_inner()), parts.read_buf))
                }
                Err(other) => other,
            };
            match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
                Ok(parts) => {
                    let (sock, session) = parts.io.into_inner().into_inner();
                    Some((Transport::tls(sock, session), parts.read_buf))
                }
                Err(_) => {
                    tracing::error!("upgraded connection is not a TCP or TLS stream: serve courier with server::run");
                    None
                }
            }
        };
        (res, socket)
    }
}
