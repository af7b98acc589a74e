//! `--layer redis-cluster` on private Redis Clusters (real redis-server processes, 3 masters):
//! two couriers deliver every HTTP-API publish to 300 users exactly once and in order, over all
//! shards; a manual failover or a slot moved to another master resyncs only the partitions that
//! moved while delivery goes on, in order and without duplicates; a killed master is survived.

mod broker;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use broker::cluster::PrivateCluster;
use common::redis_servers::{seqs, try_next};
use common::{connect_user, post_json, spawn_server, TestServer, Ws};
use courier::config::{LayerKind, RedisConfig};
use courier::layer::{GroupName, RedisClusterLayer};
use courier::metrics::Reason;
use futures::StreamExt;
use serde_json::{json, Value};

/// Handshakes in flight while connecting clients.
const CONNECTING: usize = 50;

fn redis_config(urls: &[String], prefix: &str) -> RedisConfig {
    RedisConfig {
        urls: urls.to_vec(),
        prefix: prefix.into(),
        ..RedisConfig::default()
    }
}

async fn server(urls: &[String], prefix: &str) -> TestServer {
    let mut config = common::config();
    config.layer = LayerKind::RedisCluster;
    config.redis = redis_config(urls, prefix);
    spawn_server(config).await
}

fn group(user: i64) -> GroupName {
    GroupName::for_user(&courier::UserId::Int(user)).expect("valid group")
}

/// `POST /api/notify` of one event of `kind` with `seq` to every user in `users`.
async fn notify_all(addr: SocketAddr, users: &[i64], kind: &str, seq: i64) -> u16 {
    let batch: Vec<Value> = users
        .iter()
        .map(|u| json!({"user_id": u, "type": kind, "data": {"seq": seq}}))
        .collect();
    post_json(addr, "/api/notify", &Value::Array(batch))
        .await
        .status
}

/// Every frame a client receives until it has been quiet for `quiet`.
async fn drain(ws: &mut Ws, quiet: Duration) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Some(v) = try_next(ws, quiet).await {
        frames.push(v);
    }
    frames
}

/// Publishes probes through `via` until every client saw one, then drains what is left.
async fn until_routed(via: &TestServer, users: &[i64], clients: &mut [Ws]) {
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
async fn masters_of(cluster: &PrivateCluster, config: &RedisConfig, users: &[i64]) -> Vec<u16> {
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

fn errors(s: &TestServer, reason: &'static str) -> u64 {
    let m = s.state.metrics();
    m.layer_errors.get_or_create(&Reason { reason }).get()
}

#[tokio::test]
async fn two_couriers_deliver_api_publishes_to_300_users_once_in_order_over_every_shard() {
    const USERS: i64 = 300;
    const EVENTS: i64 = 6;
    let Some(cluster) = PrivateCluster::start(3, 0).await else {
        return;
    };
    let urls = cluster.urls();
    let prefix = broker::unique_prefix();
    // The second courier gets one seed only: it learns the rest of the topology itself.
    let servers = [
        server(&urls, &prefix).await,
        server(&urls[1..2], &prefix).await,
    ];
    let users: Vec<i64> = (1..=USERS).collect();
    // One client per user, alternating between the couriers; every 25th user on both.
    let mut placement: Vec<(i64, SocketAddr)> = users
        .iter()
        .map(|&u| (u, servers[(u % 2) as usize].addr))
        .collect();
    placement.extend(
        users
            .iter()
            .filter(|u| *u % 25 == 0)
            .map(|&u| (u, servers[((u + 1) % 2) as usize].addr)),
    );
    let mut clients: Vec<Ws> = futures::stream::iter(placement.iter().copied())
        .map(|(u, addr)| connect_user(addr, json!(u)))
        .buffered(CONNECTING)
        .collect()
        .await;
    until_routed(&servers[0], &users, &mut clients).await;

    let masters: BTreeSet<u16> = masters_of(&cluster, &redis_config(&urls, &prefix), &users)
        .await
        .into_iter()
        .collect();
    assert_eq!(masters.len(), 3, "the users' partitions span every master");

    for seq in 0..EVENTS {
        let via = &servers[(seq % 2) as usize];
        assert_eq!(notify_all(via.addr, &users, "new_message", seq).await, 202);
    }
    let want: Vec<i64> = (0..EVENTS).collect();
    let got = futures::future::join_all(
        clients
            .iter_mut()
            .map(|ws| async move { seqs(ws, "new_message", EVENTS as usize).await }),
    )
    .await;
    let wrong: Vec<(i64, &Vec<i64>)> = placement
        .iter()
        .map(|(u, _)| *u)
        .zip(got.iter())
        .filter(|(_, got)| **got != want)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} clients did not get {want:?} exactly once in order, e.g. {:?}",
        wrong.len(),
        placement.len(),
        wrong.first()
    );
    for s in &servers {
        assert_eq!(s.state.metrics().layer_hosts_down.get(), 0);
        assert_eq!(errors(s, "decode"), 0);
        assert_eq!(errors(s, "publish"), 0);
    }
    for s in servers {
        s.stop().await;
    }
}

/// What a client got: the `seq` of each event, and where (after how many events) resyncs came.
fn timeline(frames: &[Value]) -> (Vec<i64>, Vec<usize>) {
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
struct Shard {
    cluster: PrivateCluster,
    s: TestServer,
    /// The courier's Redis settings (for partition names).
    config: RedisConfig,
    users: Vec<i64>,
    clients: Vec<Ws>,
    master: u16,
    replica: Option<u16>,
    /// Per user (in `users` order): whether its partition is on `master`.
    affected: Vec<bool>,
}

impl Shard {
    async fn start(users: i64, replicas: usize) -> Option<Self> {
        let cluster = PrivateCluster::start(3, replicas).await?;
        let urls = cluster.urls();
        let prefix = broker::unique_prefix();
        let config = redis_config(&urls, &prefix);
        let s = server(&urls, &prefix).await;
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

/// Publishes a sequence to every user every 20 ms through `s` while `change` runs and for
/// `after` more; returns how many were sent and every client's frames.
async fn publish_through(
    s: &TestServer,
    users: &[i64],
    clients: &mut [Ws],
    change: impl std::future::Future<Output = ()>,
    after: Duration,
) -> (i64, Vec<Vec<Value>>) {
    let stop = tokio_util::sync::CancellationToken::new();
    let publisher = tokio::spawn({
        let (stop, addr, users) = (stop.clone(), s.addr, users.to_vec());
        async move {
            let mut seq = 0;
            while !stop.is_cancelled() && seq < 2000 {
                notify_all(addr, &users, "new_message", seq).await;
                seq += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seq
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    change.await;
    tokio::time::sleep(after).await;
    stop.cancel();
    let sent = publisher.await.expect("publisher");
    let frames = futures::future::join_all(
        clients
            .iter_mut()
            .map(|ws| drain(ws, Duration::from_millis(500))),
    )
    .await;
    (sent, frames)
}

/// Every client's events are in order, none twice, and the last one arrived; a client with a
/// resync may miss events only before its last resync. Returns (resyncs per client, lost events).
fn check_delivery(users: &[i64], sent: i64, frames: &[Vec<Value>]) -> (Vec<usize>, usize) {
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
        assert_eq!(
            tail,
            (first..sent).collect::<Vec<_>>(),
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

#[tokio::test]
async fn a_manual_failover_resyncs_only_its_partitions_and_delivery_goes_on_in_order() {
    let Some(mut shard) = Shard::start(60, 1).await else {
        return;
    };
    let (cluster, replica) = (&shard.cluster, shard.replica.expect("a replica"));
    let failover = async move {
        assert_eq!(cluster.cmd(replica, &["CLUSTER", "FAILOVER"]).await, "OK");
        assert!(cluster.until_master(replica).await, "the replica took over");
    };
    let (sent, frames) = publish_through(
        &shard.s,
        &shard.users,
        &mut shard.clients,
        failover,
        Duration::from_millis(1500),
    )
    .await;
    shard.check_moved("manual failover", sent, &frames);
    shard.s.stop().await;
}

impl Shard {
    /// After a change that moved only the affected users' partitions: every user's delivery is
    /// whole and ordered, exactly the affected users got one resync, and no rebuild was needed.
    fn check_moved(&self, what: &str, sent: i64, frames: &[Vec<Value>]) {
        let (resyncs, lost) = check_delivery(&self.users, sent, frames);
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

#[tokio::test]
async fn a_slot_moved_to_another_master_resyncs_only_its_partition_and_delivery_goes_on() {
    let Some(mut shard) = Shard::start(60, 0).await else {
        return;
    };
    // Only user 1's partition's slot moves: the users of that partition are the affected ones.
    let channel_of = |u: i64| RedisClusterLayer::channel_of(&shard.config, &group(u));
    let moving = channel_of(1);
    shard.affected = shard
        .users
        .iter()
        .map(|&u| channel_of(u) == moving)
        .collect();
    let slot = shard.cluster.keyslot(&moving).await;
    let to = shard
        .cluster
        .masters()
        .await
        .into_iter()
        .find(|&m| m != shard.master)
        .expect("another master");
    let cluster = &shard.cluster;
    let reshard = async move { cluster.move_slot(slot, to).await };
    let (sent, frames) = publish_through(
        &shard.s,
        &shard.users,
        &mut shard.clients,
        reshard,
        Duration::from_millis(1500),
    )
    .await;
    shard.check_moved("slot moved", sent, &frames);
    assert_eq!(shard.cluster.shard_of(slot).await.0, to, "the slot moved");
    shard.s.stop().await;
}

#[tokio::test]
async fn a_killed_master_is_survived_by_rebuilding_the_connection_and_resyncing_everyone() {
    let Some(mut shard) = Shard::start(30, 1).await else {
        return;
    };
    let replica = shard.replica.expect("a replica");
    let (cluster, master) = (&mut shard.cluster, shard.master);
    let crash = async move {
        cluster.kill(master);
        assert!(
            cluster.until_master(replica).await,
            "the replica was promoted"
        );
    };
    let (sent, frames) = publish_through(
        &shard.s,
        &shard.users,
        &mut shard.clients,
        crash,
        Duration::from_secs(3),
    )
    .await;
    let (resyncs, lost) = check_delivery(&shard.users, sent, &frames);
    for (user, n) in shard.users.iter().zip(&resyncs) {
        assert!(
            *n >= 1,
            "user {user}: a rebuilt connection resyncs every group"
        );
    }
    eprintln!(
        "killed master: {lost} events lost over {} users, {sent} sent",
        shard.users.len()
    );
    let s = &shard.s;
    let m = s.state.metrics();
    assert!(errors(s, "disconnect") >= 1, "the lost node is counted");
    assert!(m.layer_reconnects.get() >= 1, "the connection was rebuilt");
    assert_eq!(m.layer_hosts_down.get(), 0, "and is up again");
    shard.s.stop().await;
}
