//! HTTP/1.1 client helpers (hyper): one keep-alive connection, or one request on a connection of
//! its own — for the HTTP publisher, `--server-metrics` scrapes and `loadtest conform`.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One HTTP/1.1 connection to `addr`, its driver spawned.
pub(crate) async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(tcp))
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
async fn request_once(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<(u16, Bytes), String> {
    let mut sender = connect(addr).await?;
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
    addr: SocketAddr,
    host: &str,
    path: &str,
    api_key: &str,
    body: String,
) -> Result<u16, String> {
    let request = Request::post(path)
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", api_key)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    request_once(addr, request).await.map(|(status, _)| status)
}

/// `GET path` on a connection of its own: the status code and the body as text.
pub(crate) async fn get_text(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let request = Request::get(path)
        .header(header::HOST, host)
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("request: {e}"))?;
    let (status, body) = request_once(addr, request).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
