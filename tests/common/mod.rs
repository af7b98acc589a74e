//! Shared helpers for the integration tests: a real server on port 0, real WebSocket clients,
//! simplejwt-shaped tokens and bounded reads. Every wait here has a timeout so a broken server
//! fails a test instead of hanging the suite.

#![allow(dead_code)] // Each test binary uses a different subset.

pub mod hostile;
pub mod http;
pub mod loadtest;
pub mod nginx;
pub mod redis_servers;
pub mod tls;
pub mod userdb;

// Each test binary uses a different subset of these too.
#[allow(unused_imports)]
pub use hostile::{
    client_frame, close_code_within, flood_until_closed, healthy_still_receives, send_raw,
    stalled_reader_config,
};
#[allow(unused_imports)]
pub use http::{
    assert_metric, http, http_on, metric, metrics, notify_range, post_json, HttpResponse,
};

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use courier::{AppState, Config};
use futures::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// The HS256 key every test server verifies with (Django's `SECRET_KEY`).
pub const SECRET: &str = "django-insecure-test-secret-key-for-courier";
/// The publish API key of [`config`].
pub const API_KEY: &str = "test-api-key";
/// Upper bound for any single expected event; generous for slow CI machines.
pub const WAIT: Duration = Duration::from_secs(5);

/// A client socket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running server. Dropping it does not stop it; call [`TestServer::stop`] or cancel `shutdown`.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state: hub, metrics, shutdown token.
    pub state: AppState,
    /// Cancelling this is the server's shutdown signal (what Ctrl-C is for the binary).
    pub shutdown: CancellationToken,
    /// `server::run`'s task.
    pub handle: JoinHandle<courier::Result<()>>,
}

impl TestServer {
    /// Cancels the server and waits (bounded) for `run` to return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let res = tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("server::run did not return after shutdown");
        res.expect("server task panicked")
            .expect("server::run failed");
    }

    /// The `ws://` URL of the notifications endpoint, without a token.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/notifications/", self.addr)
    }
}

/// Defaults, HS256 with [`SECRET`], publish API enabled with [`API_KEY`].
pub fn config() -> Config {
    let mut c = Config::new(SECRET);
    c.api_key = Some(API_KEY.into());
    c
}

/// Binds 127.0.0.1:0 and runs the server in a task.
pub async fn spawn_server(config: Config) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let state = AppState::new(config).expect("valid test config");
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    let handle = tokio::spawn(courier::server::run(listener, state.clone(), async move {
        signal.cancelled().await;
    }));
    TestServer {
        addr,
        state,
        shutdown,
        handle,
    }
}

/// [`spawn_server`] with an admin listener too (`/healthz`, `/metrics`); returns its address.
pub async fn spawn_with_admin(config: Config) -> (TestServer, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let (addr, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
    let state = AppState::new(config).expect("valid test config");
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    let handle = tokio::spawn(courier::server::run_with_admin(
        listener,
        Some(admin),
        state.clone(),
        async move { signal.cancelled().await },
    ));
    let srv = TestServer {
        addr,
        state,
        shutdown,
        handle,
    };
    (srv, admin_addr)
}

// ---- tokens -------------------------------------------------------------------------------

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// The claims simplejwt 5.5 puts in an access token for `user_id` 42 (a string since 5.5.1).
pub fn access_claims() -> Map<String, Value> {
    let now = now();
    let claims = json!({
        "token_type": "access",
        "exp": now + 300,
        "iat": now,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "user_id": "42",
    });
    claims.as_object().cloned().expect("object")
}

/// An HS256 access token signed with `secret`; `overrides` replace claims, and a `null` override
/// removes the claim (to build tokens without `jti`, `exp`, …).
pub fn mint_token(secret: &str, overrides: Value) -> String {
    mint_with(Algorithm::HS256, secret, overrides)
}

/// Like [`mint_token`] with another HMAC algorithm.
pub fn mint_with(alg: Algorithm, secret: &str, overrides: Value) -> String {
    let header = Header::new(alg);
    encode_claims(&header, secret, overrides)
}

/// Like [`mint_token`] with a caller-built header (e.g. with a `kid`).
pub fn encode_claims(header: &Header, secret: &str, overrides: Value) -> String {
    let mut claims = access_claims();
    if let Value::Object(o) = overrides {
        for (k, v) in o {
            if v.is_null() {
                claims.remove(&k);
            } else {
                claims.insert(k, v);
            }
        }
    }
    jsonwebtoken::encode(
        header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

/// A valid access token for `user_id` (a JSON string or number).
pub fn token_for(user_id: Value) -> String {
    mint_token(SECRET, json!({ "user_id": user_id }))
}

/// base64url without padding, for hand-built tokens (`alg: none`).
pub fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

// ---- clients ------------------------------------------------------------------------------

/// Connects to `/ws/notifications/?token=<token>` (no query when `token` is empty).
pub async fn ws_connect(addr: SocketAddr, token: &str) -> Ws {
    let url = if token.is_empty() {
        format!("ws://{addr}/ws/notifications/")
    } else {
        format!("ws://{addr}/ws/notifications/?token={token}")
    };
    ws_connect_url(&url).await
}

/// Connects to any URL; the handshake must succeed.
pub async fn ws_connect_url(url: &str) -> Ws {
    let req = url.into_client_request().expect("request");
    ws_connect_request(req).await.0
}

/// Connects with a caller-built request (headers, subprotocols); returns the handshake response.
pub async fn ws_connect_request(req: Request) -> (Ws, Response) {
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("handshake timed out")
        .expect("handshake failed")
}

/// Connects user `user` with a small, fixed receive buffer (4 KiB: no autotuning), like a phone
/// on a bad network: a client that stops reading backs up into the server — its queue and send
/// buffer — instead of into megabytes of loopback buffers.
pub async fn connect_small_rcvbuf(addr: SocketAddr, user: u64) -> Ws {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = sock.connect(addr).await.expect("connect");
    let url = format!(
        "ws://{addr}/ws/notifications/?token={}",
        token_for(json!(user))
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
        .await
        .expect("handshake");
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    ws
}

/// Connects as a valid user and consumes the `connection_established` frame.
pub async fn connect_user(addr: SocketAddr, user_id: Value) -> Ws {
    let mut ws = ws_connect(addr, &token_for(user_id)).await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    ws
}

/// The next frame that is not a ping/pong, within [`WAIT`] (on any socket: plain or TLS).
pub async fn next_message<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> Message {
    let fut = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return m,
                Some(Err(e)) => panic!("socket error while waiting for a frame: {e}"),
                None => panic!("socket ended while waiting for a frame"),
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("no frame within the timeout")
}

/// The next text frame, as sent; panics on any other frame.
pub async fn next_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> String {
    match next_message(ws).await {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next text frame parsed as JSON.
pub async fn next_json<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Value {
    let text = next_text(ws).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}"))
}

/// Sends a text frame.
pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

/// The next frame must be a close frame with `code` and `reason` (no text frame before it),
/// and the connection must end after it.
pub async fn expect_close(ws: &mut Ws, code: u16, reason: &str) {
    match next_message(ws).await {
        Message::Close(Some(f)) => {
            assert_eq!(
                u16::from(f.code),
                code,
                "close code (reason {:?})",
                f.reason.as_str()
            );
            assert_eq!(f.reason.as_str(), reason, "close reason");
        }
        other => panic!("expected close {code} {reason:?}, got {other:?}"),
    }
    // Reading on sends tungstenite's close reply, as a real client would; the server must then
    // end the connection.
    let ended = async { while let Some(Ok(_)) = ws.next().await {} };
    tokio::time::timeout(WAIT, ended)
        .await
        .expect("server kept the connection open after its close");
}

/// Polls `cond` until it holds, failing after [`WAIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
