//! Hostile clients (issue 9): what each one gets back — a close code, an HTTP status, a dropped
//! socket — while a healthy client of the same server keeps receiving. Small limits keep it fast.

mod common;

use std::time::Duration;

use common::*;
use futures::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_flood_without_reading_is_bounded_and_closed_4008() {
    let mut cfg = config();
    cfg.client_message_rate = 0.0;
    cfg.queue_bytes = 256 * 1024;
    let srv = spawn_server(cfg).await;
    let mut healthy = connect_user(srv.addr, json!(1)).await;
    let mut flood = connect_small_rcvbuf(srv.addr, 2).await;
    // 60 KB JSON values, echoed back; the client never reads while sending. Before the byte bound
    // covered echo replies, 10 such clients grew the server by ~600 MB.
    let frame = Message::text(format!("\"{}\"", "x".repeat(60_000)));
    let send = async {
        for i in 0..400 {
            if let Err(e) = flood.send(frame.clone()).await {
                eprintln!("send {i} failed: {e}");
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), send).await;
    assert_eq!(close_code_within(&mut flood, WAIT).await, Some(4008));
    assert_metric(
        &metrics(srv.addr).await,
        "courier_closes_total{code=\"4008\"}",
        1.0,
    );
    healthy_still_receives(&srv, &mut healthy, 1).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_that_resumes_within_the_linger_receives_4008() {
    let srv = spawn_server(stalled_reader_config()).await;
    let mut healthy = connect_user(srv.addr, json!(1)).await;
    let mut stalled = connect_small_rcvbuf(srv.addr, 2).await;
    flood_until_closed(&srv, 2).await;
    // Longer than the old 1 s write timeout for close frames, well within the linger.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(close_code_within(&mut stalled, WAIT).await, Some(4008));
    healthy_still_receives(&srv, &mut healthy, 1).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_silent_sockets_are_dropped_at_the_handshake_deadline() {
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_millis(300);
    let srv = spawn_server(cfg).await;
    let mut half = TcpStream::connect(srv.addr).await.expect("connect");
    half.write_all(b"GET /ws/notifications/?token=x HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write");
    let mut silent = TcpStream::connect(srv.addr).await.expect("connect");
    for s in [&mut half, &mut silent] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "socket still open after the deadline");
    }
    let m = metrics(srv.addr).await;
    assert!(
        metric(
            &m,
            "courier_handshake_timeouts_total{reason=\"no_request\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_on_the_admin_listener_while_half_open_sockets_fill_the_main_one() {
    let mut cfg = config();
    cfg.max_pending_handshakes = 4;
    cfg.handshake_timeout = Duration::from_millis(800);
    let (srv, admin) = spawn_with_admin(cfg).await;
    let _idle: Vec<TcpStream> = futures::future::join_all(
        (0..8).map(|_| async { TcpStream::connect(srv.addr).await.expect("connect") }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The main listener waits for a free handshake slot…
    let main = tokio::time::timeout(
        Duration::from_millis(300),
        http(srv.addr, "GET", "/healthz", &[], b""),
    )
    .await;
    assert!(
        main.is_err(),
        "the main listener accepted past --max-pending-handshakes"
    );
    // …while the admin listener answers at once…
    let r = http(admin, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert_eq!(http(admin, "GET", "/metrics", &[], b"").await.status, 200);
    // …and the main one recovers once the deadline has dropped the idle sockets.
    let r = http(srv.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_past_the_per_user_limit_is_refused_4003() {
    let mut cfg = config();
    cfg.max_connections_per_user = 2;
    let srv = spawn_server(cfg).await;
    let mut a = connect_user(srv.addr, json!(1)).await;
    let mut b = connect_user(srv.addr, json!(1)).await;
    let mut c = ws_connect(srv.addr, &token_for(json!(1))).await;
    expect_close(&mut c, 4003, "too many connections").await;
    healthy_still_receives(&srv, &mut a, 1).await;
    assert_eq!(next_json(&mut b).await["data"]["n"], 1);
    let m = metrics(srv.addr).await;
    assert_metric(&m, "courier_handshakes_total{result=\"user_limit\"}", 1.0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_from_other_origins_get_403() {
    let mut cfg = config();
    cfg.allowed_origins = vec!["https://app.example".into()];
    let srv = spawn_server(cfg).await;
    let path = format!("/ws/notifications/?token={}", token_for(json!(1)));
    let upgrade = |origin: Option<&'static str>| {
        let mut h = vec![
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        if let Some(o) = origin {
            h.push(("Origin", o));
        }
        h
    };
    let evil = tokio::time::timeout(
        WAIT,
        http(
            srv.addr,
            "GET",
            &path,
            &upgrade(Some("https://evil.example")),
            b"",
        ),
    )
    .await
    .expect("answered");
    assert_eq!(evil.status, 403);
    for origin in [Some("https://app.example"), None] {
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: a\r\n");
        for (k, v) in upgrade(origin) {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        s.write_all(format!("{req}\r\n").as_bytes())
            .await
            .expect("write");
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.expect("status line");
        assert_eq!(&buf, b"HTTP/1.1 101", "origin {origin:?}");
    }
    let m = metrics(srv.addr).await;
    assert_metric(
        &m,
        "courier_handshake_refusals_total{reason=\"origin\"}",
        1.0,
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_their_close_codes_while_others_receive() {
    let mut cfg = config();
    cfg.max_frame_bytes = 1024;
    cfg.max_fragments = 8;
    cfg.client_message_rate = 20.0;
    cfg.client_message_burst = 40;
    let srv = spawn_server(cfg).await;
    let mut healthy = connect_user(srv.addr, json!(1)).await;
    let ping = |n: usize| {
        (0..n)
            .flat_map(|_| client_frame(0x9, true, b"p"))
            .collect::<Vec<u8>>()
    };
    let mut fragments = client_frame(0x1, false, b"[");
    for _ in 0..20 {
        fragments.extend(client_frame(0x0, false, b""));
    }
    let mut unmasked = client_frame(0x1, true, b"{}");
    unmasked[1] &= 0x7f;
    unmasked.drain(2..6);
    let small_flood: Vec<u8> = (0..100)
        .flat_map(|_| client_frame(0x1, true, b"1"))
        .collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "invalid UTF-8 text",
            client_frame(0x1, true, &[0xc3, 0x28]),
            1007,
        ),
        (
            "frame over the limit",
            client_frame(0x1, true, &[b' '; 2000]),
            1009,
        ),
        ("continuation flood", fragments, 1009),
        ("unmasked frame", unmasked, 1002),
        ("reserved opcode", client_frame(0x3, true, b""), 1002),
        ("stray continuation", client_frame(0x0, true, b"x"), 1002),
        ("fragmented ping", client_frame(0x9, false, b""), 1002),
        ("ping flood", ping(100), 4029),
        ("small-frame flood", small_flood, 4029),
    ];
    for (i, (name, bytes, code)) in cases.into_iter().enumerate() {
        let mut ws = connect_user(srv.addr, json!(100 + i)).await;
        send_raw(&mut ws, &bytes).await;
        assert_eq!(close_code_within(&mut ws, WAIT).await, Some(code), "{name}");
        healthy_still_receives(&srv, &mut healthy, i as u64).await;
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_oversized_requests_are_refused_without_harm() {
    let srv = spawn_server(config()).await;
    let mut healthy = connect_user(srv.addr, json!(1)).await;
    let forged = mint_token("another-secret", json!({}));
    let expired = mint_token(SECRET, json!({"exp": now() - 10}));
    let refresh = mint_token(SECRET, json!({"token_type": "refresh"}));
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(&serde_json::to_vec(&access_claims()).unwrap())
    );
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(3000),
        "b".repeat(3000),
        "c".repeat(2200)
    );
    for (i, token) in ["garbage", &forged, &expired, &refresh, &none, &huge]
        .iter()
        .enumerate()
    {
        let mut ws = ws_connect(srv.addr, token).await;
        expect_close(&mut ws, 4001, "unauthenticated").await;
        healthy_still_receives(&srv, &mut healthy, i as u64).await;
    }
    // A request head past --max-header-bytes: 431, never a crash.
    let long = format!("/ws/notifications/?token={}", "t".repeat(40_000));
    assert_eq!(http(srv.addr, "GET", &long, &[], b"").await.status, 431);
    let big_header = "h".repeat(40_000);
    let r = http(srv.addr, "GET", "/healthz", &[("X-Big", &big_header)], b"").await;
    assert_eq!(r.status, 431);
    healthy_still_receives(&srv, &mut healthy, 99).await;
    srv.stop().await;
}
