//! Hostile-client helpers shared by the hardening tables, plain and TLS: hand-made frames written
//! under the client's framing, the close code a server ends with, and the healthy-client check.

use std::time::Duration;

use courier::UserId;
use futures::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

use super::{next_json, TestServer, Ws};

/// A masked client frame (all-zero mask: the payload goes out as it is).
pub fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Writes raw bytes under the client's WebSocket framing (over TLS: as application data).
pub async fn send_raw(ws: &mut Ws, bytes: &[u8]) {
    match ws.get_mut() {
        MaybeTlsStream::Plain(tcp) => tcp.write_all(bytes).await.expect("raw write"),
        MaybeTlsStream::Rustls(tls) => {
            tls.write_all(bytes).await.expect("raw write");
            tls.flush().await.expect("raw flush");
        }
        _ => panic!("plain TCP or rustls expected"),
    }
}

/// The close code the server ends with, skipping data frames (bounded by `within`).
pub async fn close_code_within(ws: &mut Ws, within: Duration) -> Option<u16> {
    let fut = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => {
                    eprintln!("stream ended without a close frame: {other:?}");
                    return None;
                }
            }
        }
    };
    tokio::time::timeout(within, fut)
        .await
        .expect("no close frame in time")
}

/// The healthy client (user 1) still gets a notification.
pub async fn healthy_still_receives(srv: &TestServer, healthy: &mut Ws, n: u64) {
    srv.state
        .hub()
        .notify_user(&UserId::Int(1), "check", json!({"n": n}))
        .await
        .expect("notify");
    assert_eq!(
        next_json(healthy).await,
        json!({"type": "check", "data": {"n": n}})
    );
}

/// Small bounds for a stalled-reader test: a 32-frame / 64 KiB queue, a 6 s close linger.
pub fn stalled_reader_config() -> courier::config::Config {
    let mut cfg = super::config();
    cfg.queue_messages = 32;
    cfg.queue_bytes = 64 * 1024;
    cfg.close_linger = Duration::from_secs(6);
    cfg
}

/// Queues 16 KiB events for user `user` through the hub until its one connection (a reader that
/// stalled) is closed as slow; panics past 2,000 events.
pub async fn flood_until_closed(srv: &TestServer, user: i64) {
    let hub = srv.state.hub().clone();
    let group = format!("user_{user}");
    let pad = "p".repeat(16 * 1024);
    let mut sent = 0;
    while hub.group_size(&group) == 1 {
        assert!(sent < 2000, "the stalled reader was never closed as slow");
        hub.notify_user(&UserId::Int(user), "tick", json!({"pad": pad}))
            .await
            .expect("notify");
        sent += 1;
        tokio::task::yield_now().await;
    }
}
