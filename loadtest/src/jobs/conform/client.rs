//! A plain WebSocket client for the conformance checks: connect with a token, and see the next
//! thing the server does (a frame, a close with its code, silence) in words a report can show.

use std::fmt;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::net::{Peer, Stream};

/// What the server did next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seen {
    /// A text frame holding JSON.
    Json(Value),
    /// A text frame that is not JSON.
    Text(String),
    /// A binary frame.
    Binary(usize),
    /// A close frame (code, reason), or the connection ended without one (`None`).
    Closed(Option<u16>, String),
    /// Nothing within the wait.
    Silence(Duration),
    /// A transport error.
    Error(String),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Json(v) => write!(f, "frame {v}"),
            Seen::Text(t) => write!(f, "non-JSON text frame {:?}", truncate(t)),
            Seen::Binary(n) => write!(f, "binary frame of {n} bytes"),
            Seen::Closed(Some(code), reason) => write!(f, "close {code} {reason:?}"),
            Seen::Closed(None, _) => write!(f, "connection ended without a close frame"),
            Seen::Silence(d) => write!(f, "nothing within {}", humantime::format_duration(*d)),
            Seen::Error(e) => write!(f, "error: {e}"),
        }
    }
}

fn truncate(t: &str) -> String {
    t.chars().take(200).collect()
}

/// Why a handshake did not complete.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refused {
    /// The server answered the upgrade with this HTTP status (Daphne's 403 for a rejected token).
    Http(u16),
    /// Connect or handshake failed otherwise.
    Failed(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Http(s) => write!(f, "handshake refused with HTTP {s}"),
            Refused::Failed(e) => write!(f, "handshake failed: {e}"),
        }
    }
}

/// An open connection.
pub(crate) struct Client {
    ws: WebSocketStream<Stream>,
}

/// The server under test: its `ws[s]://` URL and where that is (address, `Host`, TLS).
pub(crate) struct Dial {
    /// `ws://…/ws/notifications/` or `wss://…`, with no query.
    pub(crate) url: String,
    /// The address, `Host` and TLS settings.
    pub(crate) peer: Peer,
}

/// Connects to `dial` with `token` in the query string (none: no query), bounded by `wait`.
pub(crate) async fn connect(
    dial: &Dial,
    token: Option<&str>,
    wait: Duration,
) -> Result<Client, Refused> {
    connect_with(dial, token, "", wait).await
}

/// TCP, TLS for `wss://`, then the WebSocket upgrade of `url`.
async fn open(
    peer: &Peer,
    url: String,
) -> Result<WebSocketStream<Stream>, Result<tungstenite::Error, String>> {
    let stream = peer.open().await.map_err(Err)?;
    tokio_tungstenite::client_async(url, stream)
        .await
        .map(|(ws, _)| ws)
        .map_err(Ok)
}

/// [`connect`] with `query` after the token (`&recover=1`, `&since=…&epoch=…`).
pub(crate) async fn connect_with(
    dial: &Dial,
    token: Option<&str>,
    query: &str,
    wait: Duration,
) -> Result<Client, Refused> {
    let url = &dial.url;
    let full = match token {
        Some(t) => format!("{url}?token={t}{query}"),
        None => url.to_owned(),
    };
    match tokio::time::timeout(wait, open(&dial.peer, full)).await {
        Err(_) => Err(Refused::Failed(format!(
            "no handshake within {}",
            humantime::format_duration(wait)
        ))),
        Ok(Ok(ws)) => Ok(Client { ws }),
        Ok(Err(Ok(tungstenite::Error::Http(response)))) => {
            Err(Refused::Http(response.status().as_u16()))
        }
        Ok(Err(Ok(e))) => Err(Refused::Failed(e.to_string())),
        Ok(Err(Err(e))) => Err(Refused::Failed(e)),
    }
}

impl Client {
    /// The next frame or close within `wait` (pings and pongs skipped).
    pub(crate) async fn next(&mut self, wait: Duration) -> Seen {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Seen::Silence(wait),
                Ok(None) => return Seen::Closed(None, String::new()),
                Ok(Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                ))) => return Seen::Closed(None, String::new()),
                Ok(Some(Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                )))) => return Seen::Closed(None, String::new()),
                Ok(Some(Err(e))) => return Seen::Error(e.to_string()),
                Ok(Some(Ok(Message::Text(t)))) => {
                    return match serde_json::from_str(t.as_str()) {
                        Ok(v) => Seen::Json(v),
                        Err(_) => Seen::Text(t.as_str().to_owned()),
                    }
                }
                Ok(Some(Ok(Message::Binary(b)))) => return Seen::Binary(b.len()),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return match frame {
                        Some(f) => Seen::Closed(Some(f.code.into()), f.reason.as_str().to_owned()),
                        None => Seen::Closed(None, String::new()),
                    }
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Sends a text frame; a send error is returned as what was seen.
    pub(crate) async fn text(&mut self, text: &str) -> Result<(), Seen> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| Seen::Error(format!("send: {e}")))
    }

    /// Sends a binary frame.
    pub(crate) async fn binary(&mut self, bytes: Vec<u8>) -> Result<(), Seen> {
        self.ws
            .send(Message::binary(bytes))
            .await
            .map_err(|e| Seen::Error(format!("send: {e}")))
    }

    /// Closes politely (errors ignored: the check is over).
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}
