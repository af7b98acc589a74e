//! One conformance suite for every channel layer (STYLE.md §12): memory always, the Redis layers
//! whenever Redis answers at `REDIS_URL` (each run under its own key prefix), the Redis Cluster
//! layer on a private cluster whenever `redis-server` and `redis-cli` are installed.

mod services;

use std::sync::Arc;
use std::time::Duration;

use courier::config::{LayerKind, RedisConfig};
use courier::history::Position;
use courier::layer::{
    ChannelLayer, GroupMessage, GroupName, MemoryLayer, RedisClusterLayer, RedisCoreLayer,
    RedisPubSubLayer,
};
use serde_json::{json, Value};
use services::cluster::PrivateCluster;
use tokio::sync::mpsc;

type Received = mpsc::Receiver<(String, Value)>;

/// Attaches a recording inbound handler (bounded; the suite never has 1000 messages in flight).
fn record(layer: &dyn ChannelLayer) -> Received {
    let (tx, rx) = mpsc::channel(1000);
    layer.attach(Arc::new(
        move |group: &GroupName, message: &GroupMessage, _at: Option<&Position>| {
            let _ = tx.try_send((group.to_string(), Value::Object(message.clone())));
        },
    ));
    rx
}

fn group(name: &str) -> GroupName {
    GroupName::new(name).expect("valid group")
}

fn event(kind: &str, data: Value) -> GroupMessage {
    json!({"type": kind, "data": data})
        .as_object()
        .cloned()
        .expect("object")
}

/// Publishes probes until one comes back: the subscription has reached the broker.
async fn until_subscribed(layer: &dyn ChannelLayer, rx: &mut Received, g: &GroupName) {
    for _ in 0..100 {
        layer
            .publish(g, &event("probe", Value::Null))
            .await
            .expect("probe publish");
        if let Ok(Some((got, _))) =
            tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
        {
            if got == g.as_str() {
                // Drain the other probes still in flight.
                while tokio::time::timeout(Duration::from_millis(150), rx.recv())
                    .await
                    .is_ok()
                {}
                return;
            }
        }
    }
    panic!("subscription to {g} never took effect");
}

/// The next non-probe message, or `None` after `wait`.
async fn next(rx: &mut Received, wait: Duration) -> Option<(String, Value)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let m = tokio::time::timeout_at(deadline, rx.recv()).await.ok()??;
        if m.1["type"] != "probe" {
            return Some(m);
        }
    }
}

/// The contract in `layer/mod.rs`, for any layer. `filters`: the layer only hands over groups
/// that have local members (a broker layer must; the memory layer leaves that to the hub).
async fn suite(layer: Arc<dyn ChannelLayer>, filters: bool) {
    let name = layer.name();
    let mut rx = record(&*layer);
    let (a, b, nobody) = (group("user_1"), group("user_2"), group("user_404"));

    // Publishing to a group nobody listens to is not an error.
    layer
        .publish(&nobody, &event("x", json!(1)))
        .await
        .expect("publish to empty group");

    // Subscribed group: each message arrives once, intact, in order.
    layer.subscribe(&a);
    until_subscribed(&*layer, &mut rx, &a).await;
    let data = json!({"request_id": 7, "from_user": {"id": 3, "username": "ann", "first_name": "Ann", "last_name": ""}, "f": 1.5, "n": null, "list": [1, "two", false]});
    for seq in 1..=30 {
        layer
            .publish(
                &a,
                &event("friend_request", json!({"seq": seq, "payload": data})),
            )
            .await
            .expect("publish");
    }
    for seq in 1..=30 {
        let (g, m) = next(&mut rx, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{name}: message {seq} lost"));
        assert_eq!(g, "user_1", "{name}");
        assert_eq!(
            m,
            json!({"type": "friend_request", "data": {"seq": seq, "payload": data}}),
            "{name}: intact, in order"
        );
    }
    assert_eq!(
        next(&mut rx, Duration::from_millis(300)).await,
        None,
        "{name}: nothing twice"
    );

    // A group without local members is not delivered here.
    layer
        .publish(&b, &event("x", json!("not for us")))
        .await
        .expect("publish");
    if filters {
        assert_eq!(
            next(&mut rx, Duration::from_millis(300)).await,
            None,
            "{name}: unsubscribed group delivered"
        );
    } else {
        assert_eq!(
            next(&mut rx, Duration::from_secs(1)).await.map(|m| m.0),
            Some("user_2".into())
        );
    }

    // Unsubscribe stops delivery; the other group keeps flowing.
    layer.subscribe(&b);
    until_subscribed(&*layer, &mut rx, &b).await;
    layer.unsubscribe(&a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    layer
        .publish(&a, &event("x", json!("gone")))
        .await
        .expect("publish");
    layer
        .publish(&b, &event("new_message", json!({"id": 1})))
        .await
        .expect("publish");
    if !filters {
        assert_eq!(
            next(&mut rx, Duration::from_secs(1)).await.map(|m| m.0),
            Some("user_1".into())
        );
    }
    let (g, m) = next(&mut rx, Duration::from_secs(5))
        .await
        .expect("b still delivered");
    assert_eq!(
        (g.as_str(), m["type"].as_str()),
        ("user_2", Some("new_message")),
        "{name}"
    );
    assert_eq!(
        next(&mut rx, Duration::from_millis(300)).await,
        None,
        "{name}: unsubscribed group delivered"
    );

    // Resubscribing works again.
    layer.subscribe(&a);
    until_subscribed(&*layer, &mut rx, &a).await;
    layer
        .publish(&a, &event("back", json!(true)))
        .await
        .expect("publish");
    assert_eq!(
        next(&mut rx, Duration::from_secs(5)).await.map(|m| m.0),
        Some("user_1".into()),
        "{name}"
    );
}

fn redis_config(url: String) -> RedisConfig {
    RedisConfig {
        urls: vec![url],
        prefix: services::unique_prefix(),
        core_inboxes: 3,
        // Short, so the group ZSETs of a test run leave the shared Redis soon.
        group_expiry: Duration::from_secs(120),
        ..RedisConfig::default()
    }
}

#[tokio::test]
async fn memory_layer_conforms() {
    suite(Arc::new(MemoryLayer::new()), false).await;
}

#[tokio::test]
async fn redis_pubsub_layer_conforms() {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    suite(
        Arc::new(RedisPubSubLayer::start(&redis_config(url)).expect("start")),
        true,
    )
    .await;
}

#[tokio::test]
async fn redis_core_layer_conforms() {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    suite(
        Arc::new(RedisCoreLayer::start(&redis_config(url)).expect("start")),
        true,
    )
    .await;
}

#[tokio::test]
async fn redis_layers_conform_with_encryption_and_json() {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    let mut config = redis_config(url);
    config.symmetric_keys = vec!["django-secret".into(), "older-secret".into()];
    config.format = courier::config::WireFormat::Json;
    suite(
        Arc::new(RedisPubSubLayer::start(&config).expect("start")),
        true,
    )
    .await;
    config.prefix = services::unique_prefix();
    suite(
        Arc::new(RedisCoreLayer::start(&config).expect("start")),
        true,
    )
    .await;
}

#[tokio::test]
async fn redis_cluster_layer_conforms_plain_and_with_encryption_and_json() {
    let Some(cluster) = PrivateCluster::start(3, 0).await else {
        return;
    };
    let mut config = RedisConfig {
        urls: cluster.urls(),
        prefix: services::unique_prefix(),
        ..RedisConfig::default()
    };
    suite(
        Arc::new(RedisClusterLayer::start(&config).expect("start")),
        true,
    )
    .await;
    config.prefix = services::unique_prefix();
    config.symmetric_keys = vec!["django-secret".into()];
    config.format = courier::config::WireFormat::Json;
    // One partition: every group shares a channel, so the filter is what keeps user_2 out.
    config.cluster_partitions = 1;
    suite(
        Arc::new(RedisClusterLayer::start(&config).expect("start")),
        true,
    )
    .await;
}

#[tokio::test]
async fn build_picks_the_configured_layer() {
    let mut config = courier::Config::new("k");
    assert_eq!(
        courier::layer::build(&config).expect("memory").name(),
        "memory"
    );
    config.layer = LayerKind::RedisPubsub;
    assert_eq!(
        courier::layer::build(&config).expect("pubsub").name(),
        "redis-pubsub"
    );
    config.layer = LayerKind::RedisCore;
    assert_eq!(
        courier::layer::build(&config).expect("core").name(),
        "redis-core"
    );
    config.layer = LayerKind::RedisCluster;
    let cluster = courier::layer::build(&config).expect("cluster");
    assert_eq!(cluster.name(), "redis-cluster");
    assert!(cluster.keeps_history(), "cluster history is on by default");
    config.redis.cluster_history = false;
    assert!(!courier::layer::build(&config)
        .expect("cluster")
        .keeps_history());
    config.redis.urls = vec!["unix:///tmp/no-cluster.sock".into()];
    assert!(
        courier::layer::build(&config).is_err(),
        "a seed URL the cluster client cannot use is a startup error"
    );
}

#[tokio::test]
async fn redis_core_close_removes_this_process_from_its_groups() {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    let config = redis_config(url.clone());
    let layer = RedisCoreLayer::start(&config).expect("start");
    let key = format!("{}:group:user_5", config.prefix);
    let mut conn = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    layer.subscribe(&group("user_5"));
    let mut members = 0;
    for _ in 0..100 {
        members = redis::cmd("ZCARD")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("zcard");
        if members == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(members, 1, "registered one channel for the group");
    layer.close().await;
    let after: i64 = redis::cmd("ZCARD")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("zcard");
    assert_eq!(after, 0, "close removed the membership");
}
