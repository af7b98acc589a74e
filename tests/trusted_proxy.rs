//! `--trusted-proxy`: behind a trusted peer the per-IP handshake limit counts the client that
//! `X-Forwarded-For` names; from any other peer the header is ignored and the peer is counted.
//! (The header's parsing is unit-tested in `src/server/forwarded.rs`; nginx in `tests/nginx.rs`.)

mod common;

use std::net::SocketAddr;

use common::{assert_metric, config, metrics, spawn_server, token_for, Ws};
use courier::Config;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::MaybeTlsStream;

/// A handshake from source address `from` with `X-Forwarded-For: xff` (when given): the socket,
/// or the HTTP status it was refused with.
async fn handshake(addr: SocketAddr, from: [u8; 4], xff: Option<&str>) -> Result<Ws, u16> {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback source");
    let tcp = sock.connect(addr).await.expect("connect");
    let url = format!(
        "ws://{addr}/ws/notifications/?token={}",
        token_for(json!(7))
    );
    let mut req = url.into_client_request().expect("request");
    if let Some(xff) = xff {
        req.headers_mut()
            .insert("x-forwarded-for", xff.parse().expect("header value"));
    }
    let shake = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp));
    match tokio::time::timeout(common::WAIT, shake).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(Error::Http(r))) => Err(r.status().as_u16()),
        Ok(Err(e)) => panic!("handshake: {e}"),
        Err(_) => panic!("handshake timed out"),
    }
}

/// Two handshakes a client, hardly any refill; 127.0.0.1 is the trusted proxy.
fn limited() -> Config {
    let mut cfg = config();
    cfg.handshake_rate_per_ip = 0.01;
    cfg.handshake_burst_per_ip = 2;
    cfg.trusted_proxies = vec!["127.0.0.1".parse().expect("cidr")];
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let srv = spawn_server(limited()).await;
    let proxy = [127, 0, 0, 1];
    let mut open = Vec::new();
    // The client wrote its own (spoofed) entry; the proxy appended the address it saw.
    let a = "198.51.100.99, 203.0.113.1";
    for _ in 0..2 {
        open.push(
            handshake(srv.addr, proxy, Some(a))
                .await
                .expect("within a's burst"),
        );
    }
    assert_eq!(handshake(srv.addr, proxy, Some(a)).await.err(), Some(429));
    // Another forwarded client, and a's spoofed address, each have their own budget (two
    // addresses share one of 16k slots 1 time in 16k).
    open.push(
        handshake(srv.addr, proxy, Some("203.0.113.2"))
            .await
            .expect("b is not a"),
    );
    open.push(
        handshake(srv.addr, proxy, Some("198.51.100.99"))
            .await
            .expect("nor is this"),
    );
    // The proxy's own budget (its health checks, no header) is untouched by its clients'.
    open.push(
        handshake(srv.addr, proxy, None)
            .await
            .expect("the proxy itself"),
    );
    let m = metrics(srv.addr).await;
    assert_metric(
        &m,
        "courier_handshake_refusals_total{reason=\"ip_rate\"}",
        1.0,
    );
    assert_metric(&m, "courier_forwarded_invalid_total", 0.0);
    drop(open);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_is_limited_as_itself_whatever_it_forwards() {
    let srv = spawn_server(limited()).await;
    let peer = [127, 0, 0, 2];
    let mut open = Vec::new();
    for xff in ["203.0.113.1", "203.0.113.2"] {
        open.push(
            handshake(srv.addr, peer, Some(xff))
                .await
                .expect("the peer's burst"),
        );
    }
    assert_eq!(
        handshake(srv.addr, peer, Some("203.0.113.3")).await.err(),
        Some(429),
        "a new X-Forwarded-For does not buy an untrusted peer a new budget"
    );
    // With nothing trusted (the default), even 127.0.0.1 is just a peer.
    let mut plain = limited();
    plain.trusted_proxies.clear();
    let other = spawn_server(plain).await;
    for xff in ["203.0.113.1", "203.0.113.2"] {
        open.push(
            handshake(other.addr, [127, 0, 0, 1], Some(xff))
                .await
                .expect("burst"),
        );
    }
    let refused = handshake(other.addr, [127, 0, 0, 1], Some("203.0.113.3")).await;
    assert_eq!(refused.err(), Some(429));
    drop(open);
    srv.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_header_from_the_proxy_counts_and_falls_back_to_the_proxy() {
    let srv = spawn_server(limited()).await;
    let proxy = [127, 0, 0, 1];
    let mut open = Vec::new();
    for xff in ["unknown", "203.0.113.1, ,"] {
        open.push(
            handshake(srv.addr, proxy, Some(xff))
                .await
                .expect("the proxy's burst"),
        );
    }
    // Both were counted against the proxy's own address: it is out of budget now.
    assert_eq!(handshake(srv.addr, proxy, None).await.err(), Some(429));
    let m = metrics(srv.addr).await;
    assert_metric(&m, "courier_forwarded_invalid_total", 2.0);
    // The server is fine: a well-formed client still gets in.
    open.push(
        handshake(srv.addr, proxy, Some("203.0.113.1"))
            .await
            .expect("a real client"),
    );
    drop(open);
    srv.stop().await;
}
