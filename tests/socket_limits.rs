//! Socket-level limits: the send-buffer cap that makes a stalled reader hit its queue bound, and
//! the per-IP handshake rate.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use courier::{Config, UserId};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::MaybeTlsStream;

/// Bytes published to a reader that never reads before the server closes it as slow.
async fn bytes_until_closed_as_slow(send_buffer_bytes: usize) -> usize {
    let mut cfg = config();
    cfg.queue_messages = 100_000;
    cfg.queue_bytes = 64 * 1024;
    cfg.send_buffer_bytes = send_buffer_bytes;
    // The stalled client never reads its 4008: do not wait the default 10 s for it at stop.
    cfg.close_linger = Duration::from_millis(300);
    let srv = spawn_server(cfg).await;
    let _stalled = connect_small_rcvbuf(srv.addr, 2).await;
    let hub = srv.state.hub().clone();
    let pad = "p".repeat(4096);
    let mut sent = 0;
    while hub.group_size("user_2") == 1 && sent < 64 << 20 {
        hub.notify_user(&UserId::Int(2), "tick", json!({ "pad": pad }))
            .await
            .expect("notify");
        sent += pad.len();
        // Let the connection task write what it can, as a paced publisher would.
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    srv.stop().await;
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_closed_after_its_queue_and_send_buffer_not_megabytes() {
    // Measured: 90 KB with a 16 KiB cap; 2.8 MB with the kernel's autotuning (send_buffer 0),
    // all of it unseen by the 64 KiB queue bound.
    let send_buffer = 16 * 1024;
    let sent = bytes_until_closed_as_slow(send_buffer).await;
    // Queue + the kernel's doubled send buffer + the client's few KB + one frame in flight.
    let bound = 64 * 1024 + 2 * send_buffer + 16 * 1024 + 8 * 1024;
    assert!(
        sent <= bound,
        "{sent} bytes published before the 4008 (bound {bound})"
    );
}

/// A WebSocket handshake from source address `src`: the socket, or the refusal's HTTP status and
/// `Retry-After`.
async fn handshake_from(addr: SocketAddr, src: [u8; 4]) -> Result<Ws, (u16, Option<String>)> {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::from((src, 0))).expect("bind source");
    let tcp = sock.connect(addr).await.expect("connect");
    let url = format!(
        "ws://{addr}/ws/notifications/?token={}",
        token_for(json!(7))
    );
    match tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)).await {
        Ok((ws, _)) => Ok(ws),
        Err(Error::Http(r)) => Err((
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        )),
        Err(e) => panic!("handshake: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_past_the_per_ip_rate_get_429_and_other_addresses_do_not() {
    let mut cfg = config();
    cfg.handshake_rate_per_ip = 0.5;
    cfg.handshake_burst_per_ip = 3;
    let srv = spawn_server(cfg).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            handshake_from(srv.addr, [127, 0, 0, 1])
                .await
                .expect("within the burst"),
        );
    }
    let refused = handshake_from(srv.addr, [127, 0, 0, 1]).await.err();
    assert_eq!(refused, Some((429, Some("1".into()))));
    // Another address has its own budget (127.0.0.2 and .1 sharing one of 16k slots: 1 in 16k).
    open.push(
        handshake_from(srv.addr, [127, 0, 0, 2])
            .await
            .expect("another address"),
    );
    // Connections already open are untouched (each has joined its group once it is greeted).
    for ws in &mut open {
        assert_eq!(next_json(ws).await["type"], "connection_established");
    }
    srv.state
        .hub()
        .notify_user(&UserId::Int(7), "still", json!(1))
        .await
        .expect("notify");
    for ws in &mut open {
        assert_eq!(next_json(ws).await["type"], "still");
    }
    let m = metrics(srv.addr).await;
    assert_metric(
        &m,
        "courier_handshake_refusals_total{reason=\"ip_rate\"}",
        1.0,
    );
    srv.stop().await;
}

#[test]
fn the_per_ip_rate_is_validated() {
    let mut cfg = config();
    cfg.handshake_rate_per_ip = f64::NAN;
    assert!(cfg.validate().is_err());
    cfg.handshake_rate_per_ip = 2.0;
    cfg.handshake_burst_per_ip = 0;
    assert!(cfg.validate().is_err());
    cfg.handshake_burst_per_ip = 1;
    assert!(cfg.validate().is_ok());
    assert_eq!(
        Config::new("s").handshake_rate_per_ip,
        0.0,
        "off by default"
    );
}
