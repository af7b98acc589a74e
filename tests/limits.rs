//! PROTOCOL.md §4: slow consumers (4008), oversize frames (1009), ping timeout (4002) and the
//! connection limit (1013), each with small configured limits so the suite stays fast.

mod common;

use std::time::Duration;

use common::*;
use courier::config::SlowPolicy;
use courier::UserId;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Enough payload per event that a reader that never reads fills the kernel's socket buffers
/// (a few MB on loopback) within a few hundred events.
const PAYLOAD: usize = 32 * 1024;
/// Safety cap: far more than socket buffers plus the queue can ever hold.
const MAX_EVENTS: usize = 5_000;

fn event_text(i: usize, pad: &str) -> String {
    format!(r#"{{"type":"tick","data":{{"seq":{i},"pad":"{pad}"}}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_closed_4008_while_others_receive_everything() {
    let mut cfg = config();
    cfg.queue_messages = 16;
    cfg.queue_bytes = 8 * PAYLOAD;
    let srv = spawn_server(cfg).await;
    let hub = srv.state.hub().clone();
    // Same user: one slow member must not block or fail the send to the others.
    let mut slow = connect_user(srv.addr, json!(7)).await;
    let mut fast = connect_user(srv.addr, json!(7)).await;
    let pad = "x".repeat(PAYLOAD);
    let user = UserId::Int(7);

    let mut sent = 0;
    // Lockstep with the fast reader, so only the slow one can fall behind.
    while hub.group_size("user_7") == 2 {
        assert!(sent < MAX_EVENTS, "the slow reader was never closed");
        hub.notify_user(&user, "tick", json!({"seq": sent, "pad": pad}))
            .await
            .expect("notify");
        assert_eq!(
            next_text(&mut fast).await,
            event_text(sent, &pad),
            "fast reader, event {sent}"
        );
        sent += 1;
    }
    // The fast reader still gets everything after the slow one is gone.
    for _ in 0..20 {
        hub.notify_user(&user, "tick", json!({"seq": sent, "pad": pad}))
            .await
            .expect("notify");
        assert_eq!(next_text(&mut fast).await, event_text(sent, &pad));
        sent += 1;
    }

    // The slow reader sees an in-order prefix of the events, then 4008; it never sees a gap.
    let mut got = 0;
    loop {
        match next_message(&mut slow).await {
            Message::Text(t) => {
                assert_eq!(
                    t.as_str(),
                    event_text(got, &pad),
                    "slow reader, event {got}"
                );
                got += 1;
            }
            Message::Close(Some(f)) => {
                assert_eq!(
                    (u16::from(f.code), f.reason.as_str()),
                    (4008, "slow consumer")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        got < sent,
        "the slow reader cannot have received everything ({got} of {sent})"
    );

    let m = metrics(srv.addr).await;
    assert_metric(&m, r#"courier_closes_total{code="4008"}"#, 1.0);
    assert!(
        metric(&m, r#"courier_drops_total{reason="slow_close"}"#).is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert!(
        metric(&m, "courier_queue_full_total").is_some_and(|n| n >= 1.0),
        "{m}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_policy_keeps_the_slow_reader_and_counts_drops() {
    let mut cfg = config();
    cfg.queue_messages = 4;
    cfg.queue_bytes = 4 * PAYLOAD;
    cfg.slow_policy = SlowPolicy::DropNewest;
    let srv = spawn_server(cfg).await;
    let hub = srv.state.hub().clone();
    let mut slow = connect_user(srv.addr, json!(8)).await;
    let pad = "x".repeat(PAYLOAD);
    let drops = |m: &str| metric(m, r#"courier_drops_total{reason="queue_full"}"#).unwrap_or(0.0);
    let mut sent = 0;
    while drops(&srv.state.metrics().render()) == 0.0 {
        assert!(sent < MAX_EVENTS, "nothing was ever dropped");
        hub.notify_user(&UserId::Int(8), "tick", json!({"seq": sent, "pad": pad}))
            .await
            .expect("notify");
        sent += 1;
        tokio::task::yield_now().await;
    }
    // Still connected and a member: it reads what was kept, in order, with gaps but no repeats.
    assert_eq!(hub.group_size("user_8"), 1);
    let mut last: Option<u64> = None;
    let mut got = 0;
    // Drain until idle; only then is the queue surely empty.
    while let Ok(msg) = tokio::time::timeout(Duration::from_millis(500), slow.next()).await {
        let Some(Ok(Message::Text(t))) = msg else {
            panic!("unexpected {msg:?}")
        };
        let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
        let seq = v["data"]["seq"].as_u64().expect("seq");
        assert!(
            last.is_none_or(|l| seq > l),
            "out of order or repeated: {seq} after {last:?}"
        );
        last = Some(seq);
        got += 1;
    }
    assert!(got > 0 && got < sent, "kept {got} of {sent}");
    hub.notify_user(&UserId::Int(8), "marker", json!(null))
        .await
        .expect("notify");
    assert_eq!(
        next_text(&mut slow).await,
        r#"{"type":"marker","data":null}"#
    );
    srv.stop().await;
}

#[tokio::test]
async fn oversize_frame_closes_1009() {
    let mut cfg = config();
    cfg.max_frame_bytes = 1024;
    let srv = spawn_server(cfg).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    // At the limit is fine.
    let fits = format!("\"{}\"", "a".repeat(1022));
    send_text(&mut ws, &fits).await;
    assert_eq!(
        next_text(&mut ws).await,
        format!(r#"{{"type":"echo","data":{fits}}}"#)
    );
    // One byte over closes the connection with 1009; no echo, no error frame.
    let over = format!("\"{}\"", "a".repeat(1023));
    send_text(&mut ws, &over).await;
    expect_close(&mut ws, 1009, "message too big").await;
    eventually("membership released", || {
        srv.state.hub().group_size("user_1") == 0
    })
    .await;
    let m = metrics(srv.addr).await;
    assert_metric(&m, r#"courier_closes_total{code="1009"}"#, 1.0);
    srv.stop().await;
}

#[tokio::test]
async fn oversize_binary_frame_closes_1009() {
    let mut cfg = config();
    cfg.max_frame_bytes = 1024;
    let srv = spawn_server(cfg).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    ws.send(Message::binary(vec![0u8; 4096]))
        .await
        .expect("send");
    expect_close(&mut ws, 1009, "message too big").await;
    srv.stop().await;
}

#[tokio::test]
async fn ping_timeout_closes_4002() {
    let mut cfg = config();
    cfg.ping_interval = Duration::from_millis(200);
    cfg.pong_timeout = Duration::from_millis(200);
    let srv = spawn_server(cfg).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    // tungstenite answers a ping only while the stream is read, so not reading = never answering.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let read_all = async {
        let mut pinged = false;
        loop {
            match ws
                .next()
                .await
                .expect("stream ended before the close")
                .expect("socket error")
            {
                Message::Ping(_) => pinged = true,
                Message::Close(Some(f)) => {
                    return (pinged, u16::from(f.code), f.reason.as_str().to_owned())
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let (pinged, code, reason) = tokio::time::timeout(WAIT, read_all)
        .await
        .expect("no close");
    assert!(pinged, "the server never pinged");
    assert_eq!((code, reason.as_str()), (4002, "ping timeout"));
    eventually("membership released", || {
        srv.state.hub().group_size("user_1") == 0
    })
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_open() {
    let mut cfg = config();
    cfg.ping_interval = Duration::from_millis(100);
    cfg.pong_timeout = Duration::from_millis(100);
    let srv = spawn_server(cfg).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    // Keep reading (tungstenite answers each ping) through many ping intervals.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(800);
    while let Ok(msg) = tokio::time::timeout_at(until, ws.next()).await {
        match msg.expect("stream ended").expect("socket error") {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 3, "expected several pings, got {pings}");
    send_text(&mut ws, "1").await;
    assert_eq!(next_text(&mut ws).await, r#"{"type":"echo","data":1}"#);
    srv.stop().await;
}

#[tokio::test]
async fn over_the_connection_limit_closes_1013() {
    let mut cfg = config();
    cfg.max_connections = 2;
    let srv = spawn_server(cfg).await;
    let a = connect_user(srv.addr, json!(1)).await;
    let _b = connect_user(srv.addr, json!(2)).await;
    let mut c = ws_connect(srv.addr, &token_for(json!(3))).await;
    expect_close(&mut c, 1013, "try again later").await;
    assert_eq!(srv.state.hub().group_size("user_3"), 0);
    // A freed slot admits the next client.
    drop(a);
    eventually("slot freed", || srv.state.open_connections() == 1).await;
    let _d = connect_user(srv.addr, json!(4)).await;
    let m = metrics(srv.addr).await;
    assert_metric(&m, r#"courier_handshakes_total{result="over_limit"}"#, 1.0);
    assert_metric(&m, r#"courier_closes_total{code="1013"}"#, 1.0);
    srv.stop().await;
}
