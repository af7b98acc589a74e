//! Whole servers on Redis: several courier processes sharing one Redis, where every event reaches
//! every connection exactly once, and a burst to one user arrives whole and in order. Both Redis
//! layers. Django-format payloads and a Redis restart are in `redis_resilience.rs`.

mod common;
mod services;

use common::connect_user;
use common::redis_servers::{seqs, server, until_routed, LAYERS};
use courier::config::LayerKind;
use courier::UserId;
use serde_json::json;

#[tokio::test]
async fn three_servers_one_redis_every_event_reaches_every_connection_once() {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    for kind in LAYERS {
        let prefix = services::unique_prefix();
        let servers = [
            server(kind, &url, &prefix).await,
            server(kind, &url, &prefix).await,
            server(kind, &url, &prefix).await,
        ];
        let (mut a1, mut a2) = (
            connect_user(servers[0].addr, json!(9)).await,
            connect_user(servers[0].addr, json!(9)).await,
        );
        let mut b = connect_user(servers[1].addr, json!("9")).await;
        let mut c = connect_user(servers[2].addr, json!(9)).await;
        let mut other = connect_user(servers[2].addr, json!(10)).await;
        until_routed(&servers[0], 9, &mut [&mut a1, &mut a2, &mut b, &mut c]).await;
        until_routed(&servers[1], 10, &mut [&mut other]).await;

        const N: i64 = 60;
        for seq in 1..=N {
            let from = &servers[(seq % 3) as usize];
            from.state
                .hub()
                .notify_user(&UserId::Int(9), "new_message", json!({"seq": seq}))
                .await
                .expect("publish");
            if seq % 6 == 0 {
                from.state
                    .hub()
                    .notify_user(&UserId::Int(10), "friend_accepted", json!({"seq": seq}))
                    .await
                    .expect("publish");
            }
        }
        for (name, ws) in [
            ("a1", &mut a1),
            ("a2", &mut a2),
            ("b", &mut b),
            ("c", &mut c),
        ] {
            let mut got = seqs(ws, "new_message", N as usize).await;
            got.sort_unstable();
            assert_eq!(
                got,
                (1..=N).collect::<Vec<_>>(),
                "{kind:?} {name}: every event exactly once"
            );
        }
        let got = seqs(&mut other, "friend_accepted", 10).await;
        assert_eq!(
            got,
            (1..=10).map(|i| i * 6).collect::<Vec<_>>(),
            "{kind:?}: user 10 gets only its own"
        );
        for s in servers {
            s.stop().await;
        }
    }
}

#[tokio::test]
async fn core_layer_burst_of_300_to_one_user_loses_nothing() {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    let prefix = services::unique_prefix();
    let s = server(LayerKind::RedisCore, &url, &prefix).await;
    let publisher = server(LayerKind::RedisCore, &url, &prefix).await;
    let mut ws = connect_user(s.addr, json!(77)).await;
    until_routed(&publisher, 77, &mut [&mut ws]).await;
    let started = std::time::Instant::now();
    for seq in 1..=300 {
        publisher
            .state
            .hub()
            .notify_user(&UserId::Int(77), "new_message", json!({"seq": seq}))
            .await
            .expect("publish");
    }
    let got = seqs(&mut ws, "new_message", 300).await;
    eprintln!(
        "redis-core: 300 sequential group_sends to one user delivered {} in {:?}",
        got.len(),
        started.elapsed()
    );
    assert_eq!(got, (1..=300).collect::<Vec<_>>(), "all 300, in order");
    s.stop().await;
    publisher.stop().await;
}
