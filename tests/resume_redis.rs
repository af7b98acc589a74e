//! Resume on the Redis layers (PROTOCOL.md §7): history lives in Redis, numbered by one
//! sequencer per user, so a client that reconnects to *another* courier process gets exactly
//! what it missed; a Redis restarted empty or restored from an older snapshot is an epoch change.

mod common;
mod services;

use common::redis_servers::{server, LAYERS};
use common::*;
use courier::config::LayerKind;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn connect(srv: &TestServer, user: u64, query: &str) -> (Ws, Value) {
    let url = format!("{}?token={}&{query}", srv.ws_url(), token_for(json!(user)));
    let mut ws = ws_connect_url(&url).await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    (ws, hello)
}

/// The next `n` events' `(data.n, offset)`.
async fn events(ws: &mut Ws, n: usize) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let f = next_json(ws).await;
        got.push((
            f["data"]["n"].as_u64().unwrap_or(0),
            f["offset"].as_u64().unwrap_or(0),
        ));
    }
    got
}

#[tokio::test]
async fn a_client_resumes_on_another_process_exactly_once_in_order() {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    for kind in LAYERS {
        resume_across_processes(kind, &url).await;
    }
}

async fn resume_across_processes(kind: LayerKind, url: &str) {
    let prefix = services::unique_prefix();
    let (s1, s2) = (
        server(kind, url, &prefix).await,
        server(kind, url, &prefix).await,
    );
    let (mut ws, hello) = connect(&s1, 7, "recover=1").await;
    assert_eq!(hello["offset"], 0);
    let epoch = hello["epoch"].as_str().expect("epoch").to_owned();
    notify_range(s1.addr, 7, 1..=10).await;
    let want: Vec<(u64, u64)> = (1..=10).map(|i| (i, i)).collect();
    assert_eq!(events(&mut ws, 10).await, want);
    drop(ws);
    // Away while the other process publishes 11..=30.
    notify_range(s2.addr, 7, 11..=30).await;
    let (mut back, hello) = connect(&s2, 7, &format!("since=10&epoch={epoch}")).await;
    assert_eq!(
        (hello["offset"].as_u64(), hello["epoch"].as_str()),
        (Some(10), Some(&*epoch))
    );
    notify_range(s1.addr, 7, 31..=31).await;
    let want: Vec<(u64, u64)> = (11..=31).map(|i| (i, i)).collect();
    assert_eq!(
        events(&mut back, 21).await,
        want,
        "replayed, then live, once each"
    );
    // A client that did not ask sees the reference's frames.
    let mut plain = connect_user(s2.addr, json!(7)).await;
    let (mut probe, _) = connect(&s2, 7, "recover=1").await;
    notify_range(s1.addr, 7, 32..=32).await;
    assert_eq!(
        next_json(&mut plain).await,
        json!({"type":"new_message","data":{"n":32}})
    );
    assert_eq!(events(&mut probe, 1).await, [(32, 32)]);
    assert_eq!(events(&mut back, 1).await, [(32, 32)]);
    s1.stop().await;
    s2.stop().await;
}

#[tokio::test]
async fn positions_redis_cannot_serve_get_one_resync() {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    let prefix = services::unique_prefix();
    let mut config = config();
    config.layer = LayerKind::RedisPubsub;
    config.redis.urls = vec![url];
    config.redis.prefix = prefix;
    config.history.size = 5;
    let srv = spawn_server(config).await;
    let (_ws, hello) = connect(&srv, 8, "recover=1").await;
    let epoch = hello["epoch"].as_str().expect("epoch").to_owned();
    notify_range(srv.addr, 8, 1..=20).await;
    for (query, reason) in [
        (format!("since=2&epoch={epoch}"), "position_expired"),
        ("since=2&epoch=other".to_owned(), "epoch_changed"),
        (format!("since=99&epoch={epoch}"), "epoch_changed"),
    ] {
        let (mut ws, _) = connect(&srv, 8, &query).await;
        assert_eq!(
            next_json(&mut ws).await,
            json!({"type":"resync","data":{"reason":reason,"offset":20,"epoch":epoch}}),
            "{query}"
        );
    }
    let (mut ws, _) = connect(&srv, 8, &format!("since=16&epoch={epoch}")).await;
    assert_eq!(
        events(&mut ws, 4).await,
        [(17, 17), (18, 18), (19, 19), (20, 20)]
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_redis_restored_from_an_older_snapshot_is_an_epoch_change() {
    let Some(mut redis) = services::PrivateRedis::start_with_snapshots().await else {
        return;
    };
    let srv = server(LayerKind::RedisPubsub, &redis.url(), "snap").await;
    let (mut ws, hello) = connect(&srv, 3, "recover=1").await;
    let epoch = hello["epoch"].as_str().expect("epoch").to_owned();
    notify_range(srv.addr, 3, 1..=3).await;
    assert_eq!(events(&mut ws, 3).await.len(), 3);
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let _: () = redis::cmd("SAVE")
        .query_async(&mut conn)
        .await
        .expect("SAVE");
    notify_range(srv.addr, 3, 4..=6).await;
    assert_eq!(events(&mut ws, 3).await.last(), Some(&(6, 6)));
    drop(ws);
    // The snapshot holds offset 3 under the same epoch: offsets 4.. would be reused.
    redis.restart().await;
    // A resume held while the layer reconnects is closed 4008 by the layer's own outage signal
    // (it may have missed what the outage swallowed); the client comes back once more.
    let resync = {
        let mut answer = None;
        'resume: for _ in 0..3 {
            let url = format!(
                "{}?token={}&since=3&epoch={epoch}",
                srv.ws_url(),
                token_for(json!(3))
            );
            let mut back = ws_connect_url(&url).await;
            // The welcome, then the answer; or a 4008 before either.
            for _ in 0..2 {
                match next_message(&mut back).await {
                    Message::Text(t) => {
                        let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                        if v["type"] != "connection_established" {
                            answer = Some(v);
                            break 'resume;
                        }
                    }
                    Message::Close(Some(f)) => {
                        assert_eq!(u16::from(f.code), 4008, "{f:?}");
                        continue 'resume;
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        answer.expect("a resync within three resumes")
    };
    assert_eq!(resync["type"], "resync", "{resync}");
    assert_eq!(resync["data"]["reason"], "epoch_changed");
    assert_ne!(resync["data"]["epoch"], epoch.as_str());
    srv.stop().await;
}
