//! What the cluster tests share: couriers on a private cluster, bounded publish/read helpers, and
//! the `Shard` fixture that publishes through a topology change and checks what arrived.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use courier::config::{LayerKind, RedisConfig};
use courier::layer::{GroupName, RedisClusterLayer};
use courier::metrics::Reason;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::common::redis_servers::try_next;
use crate::common::{self, connect_user, post_json, spawn_server, TestServer, Ws};
use crate::services::{self, cluster::PrivateCluster};

/// Handshakes in flight while connecting clients.
pub(crate) const CONNECTING: usize = 50;

pub(crate) fn redis_config(urls: &[String], prefix: &str) -> RedisConfig {
    RedisConfig {
        urls: urls.to_vec(),
        prefix: prefix.into(),
        ..RedisConfig::default()
    }
}

/// A courier on the cluster; `history`: with user-stream history (the script publish path).
pub(crate) async fn server(urls: &[String], prefix: &str, history: bool) -> TestServer {
    let mut config = common::config();
    config.layer = LayerKind::RedisCluster;
    config.redis = redis_config(urls, prefix);
    config.redis.cluster_history = history;
    spawn_server(config).await
}

pub(crate) fn group(user: i64) -> GroupName {
    GroupName::for_user(&courier::UserId::Int(user)).expect("valid group")
}

/// `POST /api/notify` of one event of `kind` with `seq` to every user in `users`.
pub(crate) async fn notify_all(addr: SocketAddr, users: &[i64], kind: &str, seq: i64) -> u16 {
    let batch: Vec<Value> = users
        .iter()
        .map(|u| json!({"user_id": u, "type": kind, "data": {"seq": seq}}))
        .collect();
    post_json(addr, "/api/notify", &Value::Array(batch))
        .await
        .status
}

/// Every frame a client receives until it has been quiet for `quiet`.
pub(crate) async fn drain(ws: &mut Ws, quiet: Duration) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Some(v) = try_next(ws, quiet).await {
        frames.push(v);
    }
    frames
}

/// Publishes probes through `via` until every client saw one, then drains what is left.
pub(crate) async fn until_routed(via: &TestServer, users: &[i64], clients: &mut [Ws]) {
    let mut seen = vec![false; clients.len()];
    for round in 0..60 {
        notify_all(via.addr, users, "probe", round).await;
        let frames = futures::future::join_all(
            clients
                .iter_mut()
                .map(|ws| drain(ws, Duration::from_millis(150))),
        )
        .await;
        for (seen, frames) in seen.iter_mut().zip(frames) {
            *seen |= frames.iter().any(|v| v["type"] == "probe");
        }
        if seen.iter().all(|s| *s) {
            futures::future::join_all(
                clients
                    .iter_mut()
                    .map(|ws| drain(ws, Duration::from_millis(300))),
            )
            .await;
            return;
        }
    }
    let missing = seen.iter().filter(|s| !**s).count();
    panic!("{missing} clients were never reached through the cluster");
}

/// The master port serving each user's partition.
pub(crate) async fn masters_of(
    cluster: &PrivateCluster,
    config: &RedisConfig,
    users: &[i64],
) -> Vec<u16> {
    let mut by_channel: BTreeMap<String, u16> = BTreeMap::new();
    let mut out = Vec::new();
    for &u in users {
        let channel = RedisClusterLayer::channel_of(config, &group(u));
        if !by_channel.contains_key(&channel) {
            let slot = cluster.keyslot(&channel).await;
            by_channel.insert(channel.clone(), cluster.shard_of(slot).await.0);
        }
        out.push(by_channel[&channel]);
    }
    out
}

pub(crate) fn errors(s: &TestServer, reason: &'static str) -> u64 {
    let m = s.state.metrics();
    m.layer_errors.get_or_create(&Reason { reason }).get()
}

pub(crate) fn timeline(frames: &[Value]) -> (Vec<i64>, Vec<usize>) {
    let mut seqs = Vec::new();
    let mut resyncs = Vec::new();
    for v in frames {
        match v["type"].as_str() {
            Some("new_message") => seqs.push(v["data"]["seq"].as_i64().expect("seq")),
            Some("resync") => {
                assert_eq!(v["data"]["reason"], "broker_reconnected");
                resyncs.push(seqs.len());
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    (seqs, resyncs)
}

/// One courier on a 3 × (master + replica) cluster, a routed client per user, and the shard
/// (master, replica) serving user 1's partition with which users it serves.
pub(crate) struct Shard {
    pub(crate) cluster: PrivateCluster,
    pub(crate) s: TestServer,
    /// The courier's Redis settings (for partition names).
    pub(crate) config: RedisConfig,
    pub(crate) users: Vec<i64>,
    pub(crate) clients: Vec<Ws>,
    pub(crate) master: u16,
    pub(crate) replica: Option<u16>,
    /// Per user (in `users` order): whether its partition is on `master`.
    pub(crate) affected: Vec<bool>,
}

impl Shard {
    /// `users` routed clients on a 3 × (master + `replicas`) cluster; the courier publishes
    /// through the history script when `history`.
    pub(crate) async fn start_with(users: i64, replicas: usize, history: bool) -> Option<Self> {
        let cluster = PrivateCluster::start(3, replicas).await?;
        let urls = cluster.urls();
        let prefix = services::unique_prefix();
        let config = redis_config(&urls, &prefix);
        let s = server(&urls, &prefix, history).await;
        let users: Vec<i64> = (1..=users).collect();
        let mut clients: Vec<Ws> = futures::stream::iter(users.iter().copied())
            .map(|u| connect_user(s.addr, json!(u)))
            .buffered(CONNECTING)
            .collect()
            .await;
        until_routed(&s, &users, &mut clients).await;
        let masters = masters_of(&cluster, &config, &users).await;
        let slot = cluster
            .keyslot(&RedisClusterLayer::channel_of(&config, &group(1)))
            .await;
        let (master, replica) = cluster.shard_of(slot).await;
        let affected: Vec<bool> = masters.iter().map(|m| *m == master).collect();
        let n = affected.iter().filter(|a| **a).count();
        assert!(n > 0 && n < users.len(), "{n} users on the shard");
        Some(Self {
            cluster,
            s,
            config,
            users,
            clients,
            master,
            replica,
            affected,
        })
    }
}

impl Shard {
    /// Adds a `recover=1` client for each of the first `n` users whose partition is not affected
    /// (as more entries of `users`/`clients`/`affected`); returns each one's index and the offset
    /// its welcome carried.
    pub(crate) async fn add_positioned(&mut self, n: usize) -> Vec<(usize, u64)> {
        let unaffected: Vec<i64> = self
            .users
            .iter()
            .zip(&self.affected)
            .filter(|(_, a)| !**a)
            .map(|(u, _)| *u)
            .take(n)
            .collect();
        let mut added = Vec::new();
        for user in unaffected {
            let url = format!(
                "{}?token={}&recover=1",
                self.s.ws_url(),
                common::token_for(json!(user))
            );
            let mut ws = common::ws_connect_url(&url).await;
            let hello = common::next_json(&mut ws).await;
            assert_eq!(hello["type"], "connection_established", "{hello}");
            let offset = hello["offset"].as_u64().expect("a position");
            added.push((self.clients.len(), offset));
            self.users.push(user);
            self.clients.push(ws);
            self.affected.push(false);
        }
        added
    }
}

/// A positioned client's events carry the offsets after `from`, each once, in order.
pub(crate) fn assert_consecutive(user: i64, from: u64, frames: &[Value]) {
    let offsets: Vec<u64> = frames
        .iter()
        .map(|v| {
            v["offset"]
                .as_u64()
                .unwrap_or_else(|| panic!("user {user}: {v}"))
        })
        .collect();
    let want: Vec<u64> = (from + 1..).take(offsets.len()).collect();
    assert_eq!(offsets, want, "user {user}: offsets one by one");
}

/// What [`publish_through`] published: sequence numbers `0..sent`, of which the server answered
/// `refused` with an error (its caller was told; some partitions may still have carried them).
pub(crate) struct Published {
    pub(crate) sent: i64,
    pub(crate) refused: Vec<i64>,
}

/// Longest the publisher goes on after `after` waiting for one publish the server accepts.
const ACCEPTED_BOUND: Duration = Duration::from_secs(20);

/// Publishes a sequence to every user every 20 ms through `s` while `change` runs and for
/// `after` more, then until one publish is accepted (bounded): on a busy box the cluster can
/// still be refusing when `after` ends, and "delivery goes on" is about what it accepted.
/// Returns what was published and every client's frames.
pub(crate) async fn publish_through(
    s: &TestServer,
    users: &[i64],
    clients: &mut [Ws],
    change: impl std::future::Future<Output = ()>,
    after: Duration,
) -> (Published, Vec<Vec<Value>>) {
    let stop = tokio_util::sync::CancellationToken::new();
    // Once per user, however many of `clients` are that user's.
    let mut targets = users.to_vec();
    targets.sort_unstable();
    targets.dedup();
    let publisher = tokio::spawn({
        let (stop, addr, users) = (stop.clone(), s.addr, targets);
        async move {
            let (mut seq, mut refused) = (0, Vec::new());
            let mut deadline = None;
            while seq < 2000 {
                let status = notify_all(addr, &users, "new_message", seq).await;
                let accepted = (200..300).contains(&status);
                if !accepted {
                    refused.push(seq);
                }
                seq += 1;
                if stop.is_cancelled() {
                    let until = *deadline.get_or_insert_with(|| Instant::now() + ACCEPTED_BOUND);
                    if accepted || Instant::now() >= until {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Published { sent: seq, refused }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    change.await;
    tokio::time::sleep(after).await;
    stop.cancel();
    let published = publisher.await.expect("publisher");
    let frames = futures::future::join_all(
        clients
            .iter_mut()
            .map(|ws| drain(ws, Duration::from_millis(500))),
    )
    .await;
    (published, frames)
}

/// Every client's events are in order, none twice, and the last one arrived; a client with a
/// resync may miss events only before its last resync, or ones the server refused to publish.
/// Returns (resyncs per client, lost events).
pub(crate) fn check_delivery(
    users: &[i64],
    published: &Published,
    frames: &[Vec<Value>],
) -> (Vec<usize>, usize) {
    let Published { sent, ref refused } = *published;
    assert!(
        refused.last() != Some(&(sent - 1)),
        "no publish was accepted within {ACCEPTED_BOUND:?} after the change"
    );
    let mut lost = 0;
    let mut resyncs_per_user = Vec::new();
    for (user, frames) in users.iter().zip(frames) {
        let (seqs, resyncs) = timeline(frames);
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "user {user}: in order, none twice: {seqs:?}"
        );
        assert_eq!(
            seqs.last(),
            Some(&(sent - 1)),
            "user {user}: delivery goes on"
        );
        let complete_from = resyncs.last().copied().unwrap_or(0);
        let tail = &seqs[complete_from..];
        let first = if resyncs.is_empty() {
            0
        } else {
            tail.first().copied().unwrap_or(sent)
        };
        let accepted = |q: &i64| !refused.contains(q);
        assert_eq!(
            tail.iter().copied().filter(accepted).collect::<Vec<_>>(),
            (first..sent).filter(accepted).collect::<Vec<_>>(),
            "user {user}: nothing lost {}",
            if resyncs.is_empty() {
                "without a resync"
            } else {
                "after the resync"
            }
        );
        lost += sent as usize - seqs.len();
        resyncs_per_user.push(resyncs.len());
    }
    (resyncs_per_user, lost)
}

impl Shard {
    /// After a change that moved only the affected users' partitions: every user's delivery is
    /// whole and ordered, exactly the affected users got one resync, and no rebuild was needed.
    pub(crate) fn check_moved(&self, what: &str, published: &Published, frames: &[Vec<Value>]) {
        let (resyncs, lost) = check_delivery(&self.users, published, frames);
        let sent = published.sent;
        for ((user, affected), n) in self.users.iter().zip(&self.affected).zip(&resyncs) {
            let want = usize::from(*affected);
            assert_eq!(
                *n, want,
                "{what}: user {user}: a resync only for a partition that moved"
            );
        }
        eprintln!(
            "{what}: {} of {} users affected, {lost} events lost, {sent} sent",
            self.affected.iter().filter(|a| **a).count(),
            self.users.len()
        );
        assert!(
            errors(&self.s, "moved") >= 1,
            "{what}: the dropped partitions are counted"
        );
        let m = self.s.state.metrics();
        assert_eq!(
            m.layer_reconnects.get(),
            0,
            "{what}: no connection rebuild needed"
        );
    }
}
