//! Client sockets, plain or TLS ([`Stream`], [`TlsClient`]), and HTTP/1.1 client helpers (hyper):
//! one keep-alive connection, or one request on a connection of its own — for the HTTP publisher,
//! `--server-metrics` scrapes and `loadtest conform`.

mod stream;
mod tls;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

pub use stream::Stream;
pub use tls::{classify as classify_tls, describe as describe_tls, server_name, TlsClient};

/// TLS to one server: the run's client settings and the name its certificate must carry.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The run's settings.
    pub client: TlsClient,
    /// SNI and the name checked (an IP address: no SNI, checked against IP SANs).
    pub name: ServerName<'static>,
}

impl Tls {
    /// The TLS handshake over `tcp`.
    pub async fn handshake(&self, tcp: TcpStream) -> std::io::Result<Stream> {
        self.client.handshake(tcp, &self.name).await
    }
}

/// Where an HTTP request goes: the address, the `Host` header, and TLS for `https://`.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The address connected to.
    pub addr: SocketAddr,
    /// `Host` header (`host:port` from the URL).
    pub host: String,
    /// `Some` for `https://`.
    pub tls: Option<Tls>,
}

impl Peer {
    /// A plain-HTTP peer (the embedded server).
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            tls: None,
        }
    }

    /// A TCP connection, and the TLS handshake on it for `https://`; the error in words
    /// (`connect: ConnectionRefused`, `tls: invalid peer certificate: UnknownIssuer (…)`).
    pub async fn open(&self) -> Result<Stream, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {}", e.kind()))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(tls) => tls
                .handshake(tcp)
                .await
                .map_err(|e| describe_tls(&e).unwrap_or_else(|| format!("tls: {e}"))),
        }
    }
}

/// One HTTP/1.1 connection to `peer`, its driver spawned.
pub(crate) async fn connect(peer: &Peer) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = peer.open().await?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Largest response body read by [`request_once`] (a `/metrics` page is a few KiB).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Sends one request on a connection of its own: the status code and the body.
async fn request_once(peer: &Peer, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
    let mut sender = connect(peer).await?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status().as_u16();
    let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// `POST path` with a JSON `body` and `X-API-Key`, on a connection of its own: the status code.
pub(crate) async fn post_json(
    peer: &Peer,
    path: &str,
    api_key: &str,
    body: String,
) -> Result<u16, String> {
    let request = Request::post(path)
        .header(header::HOST, &peer.host)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", api_key)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    request_once(peer, request).await.map(|(status, _)| status)
}

/// `GET path` on a connection of its own: the status code and the body as text.
pub(crate) async fn get_text(peer: &Peer, path: &str) -> Result<(u16, String), String> {
    let request = Request::get(path)
        .header(header::HOST, &peer.host)
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("request: {e}"))?;
    let (status, body) = request_once(peer, request).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
