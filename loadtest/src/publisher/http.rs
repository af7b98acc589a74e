//! The HTTP publisher: `POST /api/notify` with a JSON array batch and `X-API-Key`, over one
//! keep-alive HTTP/1.1 connection per lane.

use std::net::SocketAddr;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Event, EventCodec, Publisher, EVENT_KIND};

/// One HTTP/1.1 connection to `addr`, its driver spawned.
async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
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

/// Publishes batches over HTTP.
pub struct HttpPublisher {
    addr: SocketAddr,
    host: String,
    api_key: String,
    codec: EventCodec,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpPublisher {
    /// A publisher to `addr`; connects lazily, and again after a connection error.
    pub fn new(addr: SocketAddr, host: String, api_key: String, codec: EventCodec) -> Self {
        Self {
            addr,
            host,
            api_key,
            codec,
            sender: None,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        connect(self.addr).await
    }

    fn body(&self, batch: &[Event]) -> String {
        let mut body = String::with_capacity(batch.len() * (96 + self.codec.pad.len()) + 2);
        body.push('[');
        for (i, e) in batch.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(r#"{"user_id":"#);
            body.push_str(&e.user_id.to_string());
            body.push_str(r#","type":""#);
            body.push_str(EVENT_KIND);
            body.push_str(r#"","data":"#);
            self.codec.write_data(e, &mut body);
            body.push('}');
        }
        body.push(']');
        body
    }
}

impl Publisher for HttpPublisher {
    fn name(&self) -> &'static str {
        "http"
    }

    fn publish<'a>(&'a mut self, batch: &'a [Event]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut sender = match self.sender.take() {
                Some(s) if !s.is_closed() => s,
                _ => self.connect().await?,
            };
            let request = Request::post("/api/notify")
                .header(header::HOST, &self.host)
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-api-key", &self.api_key)
                .body(Full::new(Bytes::from(self.body(batch))))
                .map_err(|e| format!("request: {e}"))?;
            sender.ready().await.map_err(|e| format!("send: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let status = response.status();
            // Read the body so the connection can carry the next request.
            let _ = response.into_body().collect().await;
            self.sender = Some(sender);
            if status == StatusCode::ACCEPTED {
                Ok(())
            } else {
                Err(format!("http {}", status.as_u16()))
            }
        })
    }
}
