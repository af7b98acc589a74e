//! A Redis outage seen by one courier process while another goes on publishing: its `recover=1`
//! clients stay connected and are caught up in place from the stream (PROTOCOL.md §7), while
//! plain clients are told `resync`.

mod common;
mod services;

use std::time::Duration;

use common::redis_servers::{server, try_next, LAYERS};
use common::*;
use courier::config::LayerKind;
use courier::metrics::Reason;
use serde_json::json;

async fn redis_cmd(conn: &mut redis::aio::MultiplexedConnection, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query_async(conn).await.expect("redis command");
}

/// The `(data.n, offset)` of every frame until `wait` passes without one; a non-event frame is
/// returned as `(0, 0)` so an unexpected `resync` shows in the comparison.
async fn drain(ws: &mut Ws, wait: Duration) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    while let Some(f) = try_next(ws, wait).await {
        got.push((
            f["data"]["n"].as_u64().unwrap_or(0),
            f["offset"].as_u64().unwrap_or(0),
        ));
    }
    got
}

#[tokio::test]
async fn positioned_clients_are_caught_up_in_place_after_an_outage() {
    for kind in LAYERS {
        let Some(redis) = services::PrivateRedis::start().await else {
            return;
        };
        outage_while_another_process_publishes(kind, &redis).await;
    }
}

async fn outage_while_another_process_publishes(kind: LayerKind, redis: &services::PrivateRedis) {
    let client = redis::Client::open(redis.url()).expect("client");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    // Process A reaches Redis as user `a`, which the test can lock out (the broker "goes away"
    // for A alone while B keeps publishing into the stream).
    redis_cmd(
        &mut admin,
        &["ACL", "SETUSER", "a", "on", "nopass", "~*", "&*", "+@all"],
    )
    .await;
    let a_url = format!("redis://a:x@127.0.0.1:{}", redis.port);
    let a = server(kind, &a_url, "outage").await;
    let b = server(kind, &redis.url(), "outage").await;
    let url = |q: &str| format!("{}?token={}{q}", a.ws_url(), token_for(json!(5)));
    let mut positioned = ws_connect_url(&url("&recover=1")).await;
    let mut plain = ws_connect_url(&url("")).await;
    for ws in [&mut positioned, &mut plain] {
        assert_eq!(next_json(ws).await["type"], "connection_established");
    }
    notify_range(b.addr, 5, 1..=3).await;
    assert_eq!(
        drain(&mut positioned, Duration::from_millis(500)).await,
        [(1, 1), (2, 2), (3, 3)],
        "{kind:?}"
    );
    assert_eq!(drain(&mut plain, Duration::from_millis(200)).await.len(), 3);

    redis_cmd(&mut admin, &["ACL", "SETUSER", "a", "off"]).await;
    redis_cmd(&mut admin, &["CLIENT", "KILL", "USER", "a"]).await;
    // Published while A cannot reach Redis: kept in the stream, never delivered to A.
    notify_range(b.addr, 5, 4..=6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis_cmd(&mut admin, &["ACL", "SETUSER", "a", "on"]).await;

    let caught_up = a
        .state
        .metrics()
        .catch_ups
        .get_or_create(&Reason {
            reason: "broker_resync",
        })
        .clone();
    common::eventually("A caught its group up", || caught_up.get() >= 1).await;
    notify_range(b.addr, 5, 7..=7).await;
    assert_eq!(
        drain(&mut positioned, Duration::from_millis(1000)).await,
        [(4, 4), (5, 5), (6, 6), (7, 7)],
        "{kind:?}: every missed event once, in order, no resync, still connected"
    );
    let told = drain(&mut plain, Duration::from_millis(300)).await;
    assert!(
        told.contains(&(0, 0)),
        "{kind:?}: the plain client is told: {told:?}"
    );
    assert_eq!(told.last(), Some(&(7, 0)), "{kind:?}: {told:?}");
    a.stop().await;
    b.stop().await;
}
