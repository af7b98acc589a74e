//! Plain HTTP/1.1 for the integration tests: one request per connection, read to the end, and
//! the metrics read from its answer.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{API_KEY, WAIT};

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Raw header block.
    pub headers: String,
    /// Body text.
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), read to the end. The
/// dev-dependencies have no HTTP client and one request per connection is all the tests need.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let fut = async {
        let s = TcpStream::connect(addr).await.expect("connect");
        http_on(s, addr, method, path, headers, body).await
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("HTTP request timed out")
}

/// [`http`] over a connected stream (plain or TLS) to `addr`.
pub async fn http_on(
    mut s: impl AsyncRead + AsyncWrite + Unpin,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let fut = async {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        s.write_all(req.as_bytes()).await.expect("write head");
        // The server may answer (413) before reading the whole body; keep the response anyway.
        let _ = s.write_all(body).await;
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        raw
    };
    let raw = tokio::time::timeout(WAIT, fut)
        .await
        .expect("HTTP request timed out");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    HttpResponse {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `POST path` with a JSON body and the test API key.
pub async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> HttpResponse {
    let body = serde_json::to_vec(body).expect("json");
    http(
        addr,
        "POST",
        path,
        &[("X-API-Key", API_KEY), ("Content-Type", "application/json")],
        &body,
    )
    .await
}

/// Publishes `new_message` events `{"n": i}` for each `i` of `range` to `user`, in order, in
/// one `/api/notify` batch; asserts it was accepted.
pub async fn notify_range(addr: SocketAddr, user: u64, range: std::ops::RangeInclusive<u64>) {
    let batch: Vec<Value> = range
        .map(|i| serde_json::json!({"user_id": user, "type": "new_message", "data": {"n": i}}))
        .collect();
    let res = post_json(addr, "/api/notify", &Value::Array(batch)).await;
    assert_eq!(res.status, 202, "{}", res.body);
}

/// `GET /metrics` body.
pub async fn metrics(addr: SocketAddr) -> String {
    let r = http(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    r.body
}

/// Asserts that metric `series` (as for [`metric`]) is exactly `value` in `text`.
pub fn assert_metric(text: &str, series: &str, value: f64) {
    assert_eq!(metric(text, series), Some(value), "{series} in\n{text}");
}

/// The value of one metric line (`name{labels}` exactly as rendered), or `None`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}
