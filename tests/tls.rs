//! courier over TLS (issue 18, item 2): `wss://` clients get what plain ones get; the hardening
//! table holds over TLS, the handshake deadline and budget included; a plain client on the TLS
//! port is refused cleanly; SIGHUP reloads the certificate; bad files fail at start.

mod common;

use std::time::{Duration, Instant};

use common::tls::{peer_cert, spawn_tls_server, Pki};
use common::*;
use courier::config::TlsConfig;
use courier::UserId;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite;

/// The start of a ClientHello record that claims 200 bytes and sends 2 of them.
const PARTIAL_CLIENT_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00];

/// Waits until `series` on `admin`'s `/metrics` is `value`.
async fn metric_reaches(admin: std::net::SocketAddr, series: &str, value: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let m = metrics(admin).await;
        if metric(&m, series) == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {value}:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads until the server ends the connection; panics if it is still open after `within`.
async fn ended_within(s: &mut (impl AsyncReadExt + Unpin), within: Duration, what: &str) {
    let mut buf = Vec::new();
    // EOF or an error (a TLS stream cut without close_notify) both mean the server let go.
    let read = tokio::time::timeout(within, s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "{what}: still open after {within:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_clients_get_notifications_refreshes_and_close_codes() {
    let pki = Pki::new();
    let mut cfg = config();
    cfg.max_connections_per_user = 2;
    let (srv, admin) = spawn_tls_server(cfg, &pki).await;
    let mut ws = pki.connect_user(srv.addr, json!(42)).await;
    let r = pki
        .post_json(
            srv.addr,
            "/api/notify",
            &json!({"user_id": 42, "type": "friend-request", "data": {"request_id": 7}}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"friend_request","data":{"request_id":7}}"#
    );
    // A burst: writer batches go through rustls many frames at a time, in order.
    let hub = srv.state.hub().clone();
    for n in 0..300 {
        hub.notify_user(&UserId::Int(42), "tick", json!({"n": n}))
            .await
            .expect("notify");
    }
    for n in 0..300 {
        assert_eq!(next_json(&mut ws).await["data"]["n"], n);
    }
    send_text(&mut ws, "[1]").await;
    assert_eq!(next_json(&mut ws).await, json!({"type":"echo","data":[1]}));
    let refresh = json!({"type": "refresh", "token": token_for(json!(42))});
    send_text(&mut ws, &refresh.to_string()).await;
    assert_eq!(next_json(&mut ws).await["type"], "refreshed");
    let mut second = pki.connect_user(srv.addr, json!(42)).await;
    let mut third = pki.wss(srv.addr, &token_for(json!(42))).await;
    expect_close(&mut third, 4003, "too many connections").await;
    let stolen = json!({"type": "refresh", "token": token_for(json!(10))});
    send_text(&mut ws, &stolen.to_string()).await;
    expect_close(&mut ws, 4001, "unauthenticated").await;
    let mut bad = pki.wss(srv.addr, "garbage").await;
    expect_close(&mut bad, 4001, "unauthenticated").await;
    // The admin listener stays plain; nothing above failed a TLS handshake.
    let m = metrics(admin).await;
    assert_metric(&m, r#"courier_handshakes_total{result="accepted"}"#, 2.0);
    assert_eq!(metric(&m, "courier_tls_handshake_failures_total"), None);
    // Shutdown closes 1001 over TLS too.
    srv.shutdown.cancel();
    assert_eq!(close_code_within(&mut second, WAIT).await, Some(1001));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_before_or_after_the_tls_handshake_are_cut_at_the_handshake_deadline() {
    let pki = Pki::new();
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_millis(400);
    let (srv, admin) = spawn_tls_server(cfg, &pki).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(srv.addr).await.expect("connect");
    let mut partial = TcpStream::connect(srv.addr).await.expect("connect");
    partial
        .write_all(PARTIAL_CLIENT_HELLO)
        .await
        .expect("write");
    // Past TLS: no request at all, and half a request.
    let mut no_request = pki.connect(srv.addr).await;
    let mut half = pki.connect(srv.addr).await;
    half.write_all(b"GET /ws/notifications/?token=x HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write");
    half.flush().await.expect("flush");
    let within = Duration::from_secs(3);
    ended_within(&mut silent, within, "silent TCP").await;
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "cut before the deadline: {:?}",
        started.elapsed()
    );
    ended_within(&mut partial, within, "half a ClientHello").await;
    ended_within(&mut no_request, within, "TLS without a request").await;
    ended_within(&mut half, within, "TLS with half a request").await;
    let m = metrics(admin).await;
    assert_metric(
        &m,
        r#"courier_tls_handshake_failures_total{reason="timeout"}"#,
        2.0,
    );
    assert_metric(
        &m,
        r#"courier_handshake_timeouts_total{reason="no_request"}"#,
        2.0,
    );
    // The listener still serves.
    pki.connect_user(srv.addr, json!(1)).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_stalls_hold_the_pending_handshake_budget_while_the_admin_listener_answers() {
    let pki = Pki::new();
    let mut cfg = config();
    cfg.max_pending_handshakes = 4;
    cfg.handshake_timeout = Duration::from_millis(800);
    let (srv, admin) = spawn_tls_server(cfg, &pki).await;
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        s.write_all(PARTIAL_CLIENT_HELLO).await.expect("write");
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let main = tokio::time::timeout(
        Duration::from_millis(300),
        pki.https(srv.addr, "GET", "/healthz", &[], b""),
    )
    .await;
    assert!(
        main.is_err(),
        "the TLS listener accepted past --max-pending-handshakes"
    );
    let r = http(admin, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    // Once the deadline has cut the stalled handshakes, the main listener serves again.
    let r = pki.https(srv.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_reader_that_resumes_within_the_linger_receives_4008() {
    let pki = Pki::new();
    let (srv, _admin) = spawn_tls_server(stalled_reader_config(), &pki).await;
    let mut healthy = pki.connect_user(srv.addr, json!(1)).await;
    let mut stalled = pki.connect_small_rcvbuf(srv.addr, 2).await;
    flood_until_closed(&srv, 2).await;
    // The close frame waits behind the records the socket did not take; written on where it
    // stopped, the client decrypts every record and reads the close frame.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(close_code_within(&mut stalled, WAIT).await, Some(4008));
    healthy_still_receives(&srv, &mut healthy, 1).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_pauses_reading_gets_every_frame_once_it_reads_again() {
    let pki = Pki::new();
    let (srv, _admin) = spawn_tls_server(config(), &pki).await;
    let mut paused = pki.connect_small_rcvbuf(srv.addr, 2).await;
    let hub = srv.state.hub().clone();
    // ~640 KB: within the queue bound, far past what the socket buffers hold, so the writer stops
    // on a full socket with records left in rustls, and the last of them are due when nothing
    // more is queued: only the writer's flush while parked sends them.
    let pad = "p".repeat(16 * 1024);
    for n in 0..40 {
        hub.notify_user(&UserId::Int(2), "tick", json!({"n": n, "pad": pad}))
            .await
            .expect("notify");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..40 {
        assert_eq!(next_json(&mut paused).await["data"]["n"], n);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_over_tls_get_their_close_codes_while_others_receive() {
    let pki = Pki::new();
    let mut cfg = config();
    cfg.max_frame_bytes = 1024;
    cfg.client_message_rate = 20.0;
    cfg.client_message_burst = 40;
    let (srv, _admin) = spawn_tls_server(cfg, &pki).await;
    let mut healthy = pki.connect_user(srv.addr, json!(1)).await;
    let ping_flood: Vec<u8> = (0..100)
        .flat_map(|_| client_frame(0x9, true, b"p"))
        .collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "frame over the limit",
            client_frame(0x1, true, &[b' '; 2000]),
            1009,
        ),
        (
            "invalid UTF-8 text",
            client_frame(0x1, true, &[0xc3, 0x28]),
            1007,
        ),
        ("reserved opcode", client_frame(0x3, true, b""), 1002),
        ("ping flood", ping_flood, 4029),
    ];
    for (i, (name, bytes, code)) in cases.into_iter().enumerate() {
        let mut ws = pki.connect_user(srv.addr, json!(100 + i)).await;
        send_raw(&mut ws, &bytes).await;
        assert_eq!(close_code_within(&mut ws, WAIT).await, Some(code), "{name}");
        healthy_still_receives(&srv, &mut healthy, i as u64).await;
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_clients_on_the_tls_port_are_refused_cleanly() {
    let pki = Pki::new();
    let (srv, admin) = spawn_tls_server(config(), &pki).await;
    let r = http(srv.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("TLS"), "{r:?}");
    let url = format!(
        "ws://{}/ws/notifications/?token={}",
        srv.addr,
        token_for(json!(1))
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("a ws:// client must be refused with 400, got {other:?}"),
    }
    // Bytes that are neither TLS nor HTTP: dropped.
    let mut junk = TcpStream::connect(srv.addr).await.expect("connect");
    junk.write_all(b"\x00\x01garbage").await.expect("write");
    ended_within(&mut junk, WAIT, "junk").await;
    let m = metrics(admin).await;
    assert_metric(
        &m,
        r#"courier_tls_handshake_failures_total{reason="not_tls"}"#,
        3.0,
    );
    // wss:// still works beside them.
    pki.connect_user(srv.addr, json!(1)).await;
    srv.stop().await;
}

/// Sends SIGHUP to this test process (every TLS server in it reloads).
fn hangup() {
    let pid = std::process::id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_a_new_certificate_to_new_connections_and_keeps_old_ones() {
    let pki = Pki::new();
    let (srv, admin) = spawn_tls_server(config(), &pki).await;
    let mut old = pki.connect_user(srv.addr, json!(1)).await;
    let first = peer_cert(&old);
    let second = pki.issue("second");
    assert_ne!(first, second);
    hangup();
    metric_reaches(admin, r#"courier_tls_reloads_total{result="ok"}"#, 1.0).await;
    let new = pki.connect_user(srv.addr, json!(2)).await;
    assert_eq!(
        peer_cert(&new),
        second,
        "a new connection gets the new certificate"
    );
    healthy_still_receives(&srv, &mut old, 1).await;
    // A broken file: the reload fails, is counted, and the second certificate stays.
    std::fs::write(&pki.files.cert, "not a certificate").expect("write");
    hangup();
    metric_reaches(admin, r#"courier_tls_reloads_total{result="error"}"#, 1.0).await;
    let newer = pki.connect_user(srv.addr, json!(3)).await;
    assert_eq!(peer_cert(&newer), second);
    healthy_still_receives(&srv, &mut old, 2).await;
    srv.stop().await;
}

#[tokio::test]
async fn unreadable_or_mismatched_files_fail_at_start_naming_the_flag() {
    let pki = Pki::new();
    let other = Pki::new();
    let garbage = pki.files.cert.with_file_name("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN PRIVATE KEY-----\nnot base64\n").expect("write");
    let missing = pki.files.cert.with_file_name("missing.pem");
    let cases = [
        (missing.clone(), pki.files.key.clone(), "--tls-cert"),
        (pki.files.cert.clone(), garbage, "--tls-key"),
        (
            pki.files.cert.clone(),
            other.files.key.clone(),
            "with --tls-key",
        ),
    ];
    for (cert, key, flag) in cases {
        let mut cfg = config();
        cfg.tls = Some(TlsConfig { cert, key });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let state = courier::AppState::new(cfg).expect("config");
        let run = courier::server::run(listener, state, std::future::pending());
        let err = tokio::time::timeout(WAIT, run)
            .await
            .expect("run returned")
            .expect_err("bad TLS files must fail");
        assert!(err.to_string().contains(flag), "{flag}: {err}");
    }
    // The binary says so and exits non-zero.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["--jwt-secret", "s", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&missing)
        .arg("--tls-key")
        .arg(&pki.files.key)
        .output()
        .expect("run courier");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}
