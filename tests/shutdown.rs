//! Graceful shutdown (issue 3 item 6, PROTOCOL.md §4): stop accepting, drain every queue within a
//! bound, close every client with 1001 `going away`, and return from `run`.

mod common;

use std::time::Duration;

use common::*;
use courier::layer::GroupName;
use courier::UserId;
use futures::StreamExt;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// `server::run`'s own slack on top of `shutdown_timeout` (connection teardown).
const SLACK: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_queued_frames_then_1001() {
    let mut cfg = config();
    cfg.shutdown_timeout = Duration::from_secs(2);
    let srv = spawn_server(cfg).await;
    let mut clients = Vec::new();
    for user in [1, 1, 2, 3] {
        clients.push((user, connect_user(srv.addr, json!(user)).await));
    }
    // Queued right before the signal: shutdown must deliver it before saying goodbye.
    for user in [1, 2] {
        srv.state
            .hub()
            .notify_user(&UserId::Int(user), "last_words", json!(user))
            .await
            .expect("notify");
    }
    let started = Instant::now();
    srv.shutdown.cancel();
    for (user, ws) in &mut clients {
        if *user != 3 {
            assert_eq!(
                next_text(ws).await,
                format!(r#"{{"type":"last_words","data":{user}}}"#)
            );
        }
        expect_close(ws, 1001, "going away").await;
    }
    let bound = Duration::from_secs(2) + SLACK;
    let res = tokio::time::timeout(bound, srv.handle)
        .await
        .expect("run() did not return within its bound");
    res.expect("server task panicked").expect("run() failed");
    assert!(started.elapsed() < bound);
    assert_eq!(srv.state.open_connections(), 0);
    assert_eq!(srv.state.hub().group_count(), 0);
    assert_eq!(
        metric(
            &srv.state.metrics().render(),
            r#"courier_closes_total{code="1001"}"#
        ),
        Some(4.0)
    );

    // Stopped accepting: the port no longer takes connections.
    assert!(
        tokio::net::TcpStream::connect(srv.addr).await.is_err(),
        "still accepting after shutdown"
    );
}

// Current-thread runtime: between the pushes and the cancel no other task runs, so every frame is
// still queued when shutdown starts and only the drain can deliver it.
#[tokio::test]
async fn queued_frames_are_drained_before_1001() {
    let srv = spawn_server(config()).await;
    let mut a = connect_user(srv.addr, json!(1)).await;
    let mut b = connect_user(srv.addr, json!(1)).await;
    let group = GroupName::new("user_1").expect("group");
    for seq in 0..100 {
        let msg = json!({"type": "queued", "data": seq});
        let msg = msg.as_object().expect("object");
        assert_eq!(srv.state.hub().deliver_local(&group, msg), 2);
    }
    // The state's token is the server-wide signal too: `run` watches it.
    srv.state.shutdown_token().cancel();
    for ws in [&mut a, &mut b] {
        for seq in 0..100 {
            assert_eq!(
                next_text(ws).await,
                format!(r#"{{"type":"queued","data":{seq}}}"#)
            );
        }
        expect_close(ws, 1001, "going away").await;
    }
    let res = tokio::time::timeout(WAIT, srv.handle)
        .await
        .expect("run() did not return");
    res.expect("server task panicked").expect("run() failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_hold_shutdown_past_the_bound() {
    let mut cfg = config();
    cfg.shutdown_timeout = Duration::from_millis(300);
    cfg.queue_messages = 100_000;
    cfg.queue_bytes = 1 << 30;
    let srv = spawn_server(cfg).await;
    let mut stuck = connect_user(srv.addr, json!(1)).await;
    let mut fine = connect_user(srv.addr, json!(2)).await;
    // Far more than the socket buffers hold, so the drain cannot finish.
    let pad = "x".repeat(64 * 1024);
    for seq in 0..300 {
        srv.state
            .hub()
            .notify_user(&UserId::Int(1), "bulk", json!({"seq": seq, "pad": pad}))
            .await
            .expect("notify");
    }
    let started = Instant::now();
    srv.shutdown.cancel();
    expect_close(&mut fine, 1001, "going away").await;
    let bound = Duration::from_millis(300) + SLACK;
    let res = tokio::time::timeout(bound + Duration::from_millis(500), srv.handle)
        .await
        .expect("run() did not return within its bound");
    res.expect("server task panicked").expect("run() failed");
    assert!(
        started.elapsed() < bound + Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );
    // The stuck client gets an in-order prefix and then the connection ends (close frame or not).
    let mut seq = 0;
    let drain = async {
        while let Some(Ok(msg)) = stuck.next().await {
            match msg {
                Message::Text(t) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
                    assert_eq!(v["data"]["seq"], seq);
                    seq += 1;
                }
                Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1001),
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, drain)
        .await
        .expect("stuck client never ended");
    assert!(
        seq < 300,
        "the stuck client cannot have received everything"
    );
}

#[tokio::test]
async fn handshake_during_shutdown_is_refused() {
    let srv = spawn_server(config()).await;
    // The state token alone (without the listener stopping yet) makes new sockets close 1001.
    let _ws = connect_user(srv.addr, json!(1)).await;
    srv.state.shutdown_token().cancel();
    match tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("{}?token={}", srv.ws_url(), token_for(json!(2)))),
    )
    .await
    {
        Err(_) => panic!("connect hung during shutdown"),
        // Refused at TCP level, or accepted and closed 1001: both are fine, never admitted.
        Ok(Err(_)) => {}
        Ok(Ok((mut ws, _))) => expect_close(&mut ws, 1001, "going away").await,
    }
    assert_eq!(srv.state.hub().group_size("user_2"), 0);
    let res = tokio::time::timeout(WAIT, srv.handle)
        .await
        .expect("run() did not return");
    res.expect("server task panicked").expect("run() failed");
}

/// A publish once the stop has begun is refused on the memory layer (503, `Retry-After`): its
/// clients are being closed 1001 and the next process starts a new epoch, so an event accepted
/// now would reach nobody. The publisher retries against the restarted (or another) process.
#[tokio::test]
async fn publishes_during_shutdown_are_refused_on_the_memory_layer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = spawn_server(config()).await;
    let event = json!({"user_id": 1, "type": "n", "data": {}});
    assert_eq!(post_json(srv.addr, "/api/notify", &event).await.status, 202);
    // A request in flight when the stop begins (the listener takes no new ones then): headers
    // and half the body before, the rest after.
    let body = serde_json::to_vec(&event).expect("json");
    let mut s = tokio::net::TcpStream::connect(srv.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/notify HTTP/1.1\r\nHost: {}\r\nX-API-Key: {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        srv.addr,
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&body[..4]).await.expect("half");
    tokio::time::sleep(Duration::from_millis(50)).await;
    srv.state.shutdown_token().cancel();
    s.write_all(&body[4..]).await.expect("rest");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 503"), "{text}");
    assert!(text.contains("retry-after: 1"), "{text}");
    assert!(text.contains("shutting down"), "{text}");
}
