//! Courier servers on a Redis layer and the bounded reads their tests share: probes until a user
//! is routed everywhere, the next frame of a kind, and the sequence numbers of a run of events.

use std::time::Duration;

use courier::config::LayerKind;
use courier::UserId;
use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::{spawn_server, TestServer, Ws};

/// Both Redis layers, which the whole-server Redis tests run against.
pub const LAYERS: [LayerKind; 2] = [LayerKind::RedisPubsub, LayerKind::RedisCore];

/// A server on layer `kind` at Redis `url` under key `prefix`.
pub async fn server(kind: LayerKind, url: &str, prefix: &str) -> TestServer {
    let mut config = super::config();
    config.layer = kind;
    config.redis.urls = vec![url.into()];
    config.redis.prefix = prefix.into();
    config.redis.core_inboxes = 4;
    config.redis.group_expiry = Duration::from_secs(120);
    spawn_server(config).await
}

/// The next JSON text frame within `wait`, or `None`.
pub async fn try_next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Message::Close(f)) => panic!("server closed the socket: {f:?}"),
            Ok(_) => continue,
            Err(e) => panic!("socket error: {e}"),
        }
    }
}

/// The next frame of `kind` within `wait`, skipping every other frame.
pub async fn next_of(ws: &mut Ws, kind: &str, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = try_next(ws, left).await?;
        if v["type"] == kind {
            return Some(v);
        }
    }
}

/// Publishes probes through `from` until every client of `user` saw one, then drains the rest.
pub async fn until_routed(from: &TestServer, user: i64, clients: &mut [&mut Ws]) {
    let mut seen = vec![false; clients.len()];
    for _ in 0..100 {
        // Errors are expected while the broker is (re)connecting.
        let _ = from
            .state
            .hub()
            .notify_user(&UserId::Int(user), "probe", Value::Null)
            .await;
        for (i, ws) in clients.iter_mut().enumerate() {
            while let Some(v) = try_next(ws, Duration::from_millis(30)).await {
                seen[i] |= v["type"] == "probe";
            }
        }
        if seen.iter().all(|s| *s) {
            for ws in clients.iter_mut() {
                while try_next(ws, Duration::from_millis(200)).await.is_some() {}
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("user_{user} was never reachable on every client: {seen:?}");
}

/// Collects `n` events of `kind` and returns their `data.seq`, then checks nothing else follows.
pub async fn seqs(ws: &mut Ws, kind: &str, n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    while out.len() < n {
        let Some(v) = next_of(ws, kind, Duration::from_secs(5)).await else {
            break;
        };
        out.push(v["data"]["seq"].as_i64().expect("seq"));
    }
    let extra = try_next(ws, Duration::from_millis(300)).await;
    assert_eq!(extra, None, "unexpected frame after the last event");
    out
}
