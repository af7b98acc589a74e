//! Many Redis hosts (channels_redis `hosts = [a, b, c]`), both layers, against the real Python
//! channels_redis and three private redis-servers: courier puts every group on the host
//! channels_redis picks, so Django's `group_send` to a thousand users spread over all hosts reaches
//! each courier client exactly once and in order, courier's publishes reach Django consumers on
//! every host, and a host that is down stops only the groups on it.

mod common;
mod services;

use std::collections::BTreeSet;
use std::time::Duration;

use common::redis_servers::{next_of, seqs, try_next, until_routed, LAYERS};
use common::{connect_user, spawn_server, TestServer, Ws};
use courier::config::{LayerKind, RedisConfig};
use courier::layer::{GroupMessage, GroupName, GroupSender};
use courier::metrics::Reason;
use courier::UserId;
use futures::StreamExt;
use serde_json::{json, Value};
use services::python::{peer, python};
use services::PrivateRedis;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Redis servers in the layer's `hosts`.
const HOSTS: usize = 3;
/// Users (one client each) Django's group_send reaches.
const USERS: u64 = 1000;
/// Events per user.
const PER_USER: usize = 3;
/// Handshakes in flight while connecting the clients.
const CONNECTING: usize = 50;

/// Three private redis-servers (stopped by PID on drop), or `None` to skip.
async fn hosts() -> Option<Vec<PrivateRedis>> {
    let mut all = Vec::new();
    for _ in 0..HOSTS {
        all.push(PrivateRedis::start().await?);
    }
    Some(all)
}

fn urls(hosts: &[PrivateRedis]) -> Vec<String> {
    hosts.iter().map(PrivateRedis::url).collect()
}

fn redis_config(urls: &[String], prefix: &str) -> RedisConfig {
    RedisConfig {
        urls: urls.to_vec(),
        prefix: prefix.into(),
        group_expiry: Duration::from_secs(120),
        ..RedisConfig::default()
    }
}

async fn server(kind: LayerKind, urls: &[String], prefix: &str) -> TestServer {
    let mut config = common::config();
    config.layer = kind;
    config.redis = redis_config(urls, prefix);
    spawn_server(config).await
}

fn group(user: u64) -> GroupName {
    GroupName::new(&format!("user_{user}")).expect("valid group")
}

/// Waits (bounded) until every group has a listener on its host, as a Django sender sees it.
async fn until_listening(sender: &GroupSender, groups: &[GroupName]) {
    for _ in 0..200 {
        if sender.listening(groups).await.unwrap_or(0) == groups.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not every group got a listener in Redis");
}

/// How many keys (core) or channels (pub/sub) of this prefix's groups each host holds.
async fn groups_per_host(kind: LayerKind, urls: &[String], prefix: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for url in urls {
        let client = redis::Client::open(url.as_str()).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let mut cmd = if kind == LayerKind::RedisCore {
            redis::cmd("KEYS")
        } else {
            let mut c = redis::cmd("PUBSUB");
            c.arg("CHANNELS");
            c
        };
        let pattern = if kind == LayerKind::RedisCore {
            format!("{prefix}:group:*")
        } else {
            format!("{prefix}__group__*")
        };
        let names: Vec<String> = cmd.arg(pattern).query_async(&mut conn).await.expect("list");
        out.push(names.len());
    }
    out
}

async fn django_to_courier(kind: LayerKind) {
    let Some(redis) = hosts().await else { return };
    let Some(python) = python() else { return };
    let urls = urls(&redis);
    let prefix = services::unique_prefix();
    let s = server(kind, &urls, &prefix).await;
    let clients: Vec<Ws> = futures::stream::iter(1..=USERS)
        .map(|u| connect_user(s.addr, json!(u)))
        .buffered(CONNECTING)
        .collect()
        .await;
    let sender = GroupSender::new(kind, &redis_config(&urls, &prefix)).expect("sender");
    let groups: Vec<GroupName> = (1..=USERS).map(group).collect();
    until_listening(&sender, &groups).await;

    // Every host holds exactly the groups channels_redis's hash gives it, and none is empty.
    let mut expected = vec![0; HOSTS];
    for g in &groups {
        expected[sender.host_of(g)] += 1;
    }
    assert!(expected.iter().all(|&n| n > 0), "{kind:?}: {expected:?}");
    assert_eq!(
        groups_per_host(kind, &urls, &prefix).await,
        expected,
        "{kind:?}"
    );

    let out = peer(&python, "send-seq", kind, &urls, &prefix)
        .args([
            "--users",
            &format!("1-{USERS}"),
            "--per-user",
            &PER_USER.to_string(),
        ])
        .output()
        .await
        .expect("run channels_peer.py");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim() == format!("SENT {}", USERS as usize * PER_USER),
        "{kind:?}: python group_send failed: {said}"
    );

    let want: Vec<i64> = (0..PER_USER as i64).collect();
    let got = futures::future::join_all(
        clients
            .into_iter()
            .map(|mut ws| async move { seqs(&mut ws, "seq_event", PER_USER).await }),
    )
    .await;
    let wrong: Vec<(usize, &Vec<i64>)> = got
        .iter()
        .enumerate()
        .filter(|(_, seqs)| **seqs != want)
        .collect();
    assert!(
        wrong.is_empty(),
        "{kind:?}: {} of {USERS} users did not get {want:?} exactly once in order, e.g. {:?}",
        wrong.len(),
        wrong.first()
    );
    s.stop().await;
}

#[tokio::test]
async fn django_group_send_over_three_hosts_reaches_courier_once_in_order_pubsub() {
    django_to_courier(LayerKind::RedisPubsub).await;
}

#[tokio::test]
async fn django_group_send_over_three_hosts_reaches_courier_once_in_order_core() {
    django_to_courier(LayerKind::RedisCore).await;
}

/// `per_host` users whose group lives on each host, in host order.
fn users_by_host(sender: &GroupSender, per_host: usize) -> Vec<Vec<u64>> {
    let mut by_host = vec![Vec::new(); HOSTS];
    for u in 1..1000 {
        let host = sender.host_of(&group(u));
        if by_host[host].len() < per_host {
            by_host[host].push(u);
        }
    }
    assert!(by_host.iter().all(|h| h.len() == per_host));
    by_host
}

async fn courier_to_django(kind: LayerKind) {
    let Some(redis) = hosts().await else { return };
    let Some(python) = python() else { return };
    let urls = urls(&redis);
    let prefix = services::unique_prefix();
    let s = server(kind, &urls, &prefix).await;
    let sender = GroupSender::new(kind, &redis_config(&urls, &prefix)).expect("sender");
    let users: Vec<u64> = users_by_host(&sender, 2).concat();

    let mut cmd = peer(&python, "receive", kind, &urls, &prefix);
    for u in &users {
        cmd.args(["--group", &format!("user_{u}")]);
    }
    let mut child = cmd.spawn().expect("spawn channels_peer.py");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("peer ready in time");
    assert_eq!(ready.expect("read").as_deref(), Some("READY"));

    // One batch through the publish path POST /api/notify uses: one pipeline per host.
    let items: Vec<(GroupName, GroupMessage)> = users
        .iter()
        .map(|&u| {
            let m = json!({"type": "seq_event", "data": {"user": u}});
            (group(u), m.as_object().cloned().unwrap_or_default())
        })
        .collect();
    s.state
        .hub()
        .group_send_many(&items)
        .await
        .expect("publish");

    let mut received = BTreeSet::new();
    for _ in &users {
        let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
            .await
            .expect("peer answered")
            .expect("read")
            .unwrap_or_default();
        let message: Value = serde_json::from_str(
            line.strip_prefix("MESSAGE ")
                .unwrap_or_else(|| panic!("{kind:?}: peer said {line:?}")),
        )
        .expect("json");
        assert_eq!(message["type"], "seq_event", "{kind:?}");
        received.insert(message["data"]["user"].as_u64().expect("user"));
    }
    let sent: BTreeSet<u64> = users.iter().copied().collect();
    assert_eq!(
        received, sent,
        "{kind:?}: one message per group, every host"
    );
    services::python::exits_ok(child).await;
    s.stop().await;
}

#[tokio::test]
async fn courier_publish_over_three_hosts_reaches_django_consumers() {
    for kind in LAYERS {
        courier_to_django(kind).await;
    }
}

/// Three hosts, a server over them, and `per_host` users on each host, each with one routed client.
struct Routed {
    redis: Vec<PrivateRedis>,
    s: TestServer,
    /// In host order: `users[i * per_host..]` live on host `i`.
    users: Vec<u64>,
    clients: Vec<Ws>,
}

impl Routed {
    async fn start(kind: LayerKind, per_host: usize) -> Option<Self> {
        let redis = hosts().await?;
        let urls = urls(&redis);
        let prefix = services::unique_prefix();
        let s = server(kind, &urls, &prefix).await;
        let sender = GroupSender::new(kind, &redis_config(&urls, &prefix)).expect("sender");
        let users: Vec<u64> = users_by_host(&sender, per_host).concat();
        let mut clients = Vec::new();
        for &u in &users {
            let mut ws = connect_user(s.addr, json!(u)).await;
            until_routed(&s, u as i64, &mut [&mut ws]).await;
            clients.push(ws);
        }
        Some(Self {
            redis,
            s,
            users,
            clients,
        })
    }
}

async fn notify(s: &TestServer, user: u64, seq: u64) -> courier::Result<()> {
    s.state
        .hub()
        .notify_user(
            &UserId::Int(user as i64),
            "new_message",
            json!({"seq": seq}),
        )
        .await
}

#[tokio::test]
async fn a_host_down_stops_only_its_groups_and_resyncs_only_them() {
    for kind in LAYERS {
        let Some(Routed {
            mut redis,
            s,
            users,
            mut clients,
        }) = Routed::start(kind, 1).await
        else {
            return;
        };

        let m = s.state.metrics();
        assert_eq!(m.layer_hosts_down.get(), 0, "{kind:?}: all hosts up");
        redis[0].kill();
        common::eventually("the dead host counted down", || {
            m.layer_hosts_down.get() == 1
        })
        .await;
        assert!(
            notify(&s, users[0], 1).await.is_err(),
            "{kind:?}: a group on the dead host reports the layer error"
        );
        for (i, ws) in clients.iter_mut().enumerate().skip(1) {
            notify(&s, users[i], 1).await.expect("other hosts publish");
            let v = next_of(ws, "new_message", Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("{kind:?}: host {i}'s group still delivers"));
            assert_eq!(v["data"]["seq"], 1);
        }

        redis[0].restart().await;
        let resync = next_of(&mut clients[0], "resync", Duration::from_secs(20))
            .await
            .expect("resync for the recovered host's group");
        assert_eq!(resync["data"]["reason"], "broker_reconnected", "{kind:?}");
        for ws in clients.iter_mut().skip(1) {
            assert_eq!(
                try_next(ws, Duration::from_millis(500)).await,
                None,
                "{kind:?}: groups on healthy hosts get no resync"
            );
        }
        until_routed(&s, users[0] as i64, &mut [&mut clients[0]]).await;
        common::eventually("the host counted up again", || {
            m.layer_hosts_down.get() == 0
        })
        .await;
        let errors = |reason| m.layer_errors.get_or_create(&Reason { reason }).get();
        assert!(
            errors("disconnect") >= 1,
            "{kind:?}: the host's loss is counted"
        );
        assert!(
            errors("publish") >= 1,
            "{kind:?}: the failed publish is counted"
        );
        s.stop().await;
    }
}

/// `POST /api/notify` with a batch over users on every host: one layer call (pipelined per host),
/// and every user still gets its events exactly once, in batch order.
#[tokio::test]
async fn api_notify_batch_over_three_hosts_keeps_each_users_order() {
    const EVENTS: u64 = 5;
    for kind in LAYERS {
        // `_redis` keeps the hosts alive to the end of the round (`..` would drop them here).
        let Some(Routed {
            redis: _redis,
            s,
            users,
            mut clients,
        }) = Routed::start(kind, 2).await
        else {
            return;
        };
        let batch: Vec<Value> = (0..EVENTS)
            .flat_map(|seq| {
                users.iter().map(
                    move |u| json!({"user_id": u, "type": "new_message", "data": {"seq": seq}}),
                )
            })
            .collect();
        let r = common::post_json(s.addr, "/api/notify", &Value::Array(batch)).await;
        assert_eq!(r.status, 202, "{kind:?}: {r:?}");
        let want: Vec<i64> = (0..EVENTS as i64).collect();
        for ws in &mut clients {
            assert_eq!(
                seqs(ws, "new_message", EVENTS as usize).await,
                want,
                "{kind:?}"
            );
        }
        s.stop().await;
    }
}
