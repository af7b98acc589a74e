//! `--layer redis-cluster` on private Redis Clusters (real redis-server processes, 3 masters):
//! two couriers deliver every HTTP-API publish to 300 users exactly once and in order, over all
//! shards; a manual failover or a slot moved to another master resyncs only the partitions that
//! moved while delivery goes on, in order and without duplicates; a killed master is survived.

#[path = "../common/mod.rs"]
mod common;
mod replies;
#[path = "../services/mod.rs"]
mod services;
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::connect_user;
use common::redis_servers::seqs;
use common::Ws;
use courier::layer::RedisClusterLayer;
use futures::StreamExt;
use serde_json::json;
use services::cluster::PrivateCluster;
use support::*;

#[tokio::test]
async fn two_couriers_deliver_api_publishes_to_300_users_once_in_order_over_every_shard() {
    const USERS: i64 = 300;
    const EVENTS: i64 = 6;
    let Some(cluster) = PrivateCluster::start(3, 0).await else {
        return;
    };
    let urls = cluster.urls();
    let prefix = services::unique_prefix();
    // The second courier gets one seed only: it learns the rest of the topology itself. Both
    // keep history (the default): every event goes through the script.
    let servers = [
        server(&urls, &prefix, true).await,
        server(&urls[1..2], &prefix, true).await,
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

#[tokio::test]
async fn a_manual_failover_resyncs_only_its_partitions_and_delivery_goes_on_in_order() {
    manual_failover(false).await;
}

/// The same with history: the script publishes on the new master, so courier must subscribe
/// there, not on the demoted node (which redis-rs's stale slot map still names).
#[tokio::test]
async fn a_manual_failover_with_history_delivers_on_in_order() {
    manual_failover(true).await;
}

async fn manual_failover(history: bool) {
    let Some(mut shard) = Shard::start_with(60, 1, history).await else {
        return;
    };
    let (cluster, replica) = (&shard.cluster, shard.replica.expect("a replica"));
    let failover = async move {
        assert_eq!(cluster.cmd(replica, &["CLUSTER", "FAILOVER"]).await, "OK");
        assert!(cluster.until_master(replica).await, "the replica took over");
    };
    let (published, frames) = publish_through(
        &shard.s,
        &shard.users,
        &mut shard.clients,
        failover,
        Duration::from_millis(1500),
    )
    .await;
    shard.check_moved("manual failover", &published, &frames);
    shard.s.stop().await;
}

#[tokio::test]
async fn a_slot_moved_to_another_master_resyncs_only_its_partition_and_delivery_goes_on() {
    slot_moved(false).await;
}

/// The same with history: the script publishes, and the slot's keys (streams) move with it.
#[tokio::test]
async fn a_slot_moved_with_history_resyncs_only_its_partition_and_delivery_goes_on() {
    slot_moved(true).await;
}

async fn slot_moved(history: bool) {
    let Some(mut shard) = Shard::start_with(60, 0, history).await else {
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
    // With history, `recover=1` clients of users whose partition stays: their offsets go on one
    // by one, nothing twice (a duplicate publish would take an offset of its own).
    let positioned = if history {
        shard.add_positioned(3).await
    } else {
        Vec::new()
    };
    let cluster = &shard.cluster;
    let reshard = async move { cluster.move_slot(slot, to).await };
    let (published, frames) = publish_through(
        &shard.s,
        &shard.users,
        &mut shard.clients,
        reshard,
        Duration::from_millis(1500),
    )
    .await;
    shard.check_moved("slot moved", &published, &frames);
    for (i, from) in positioned {
        assert_consecutive(shard.users[i], from, &frames[i]);
    }
    assert_eq!(shard.cluster.shard_of(slot).await.0, to, "the slot moved");
    shard.s.stop().await;
}

#[tokio::test]
async fn a_killed_master_is_survived_by_rebuilding_the_connection_and_resyncing_everyone() {
    killed_master(false).await;
}

/// The same with history (the promoted replica numbers its partitions' streams anew).
#[tokio::test]
async fn a_killed_master_with_history_is_survived_and_everyone_resyncs() {
    killed_master(true).await;
}

async fn killed_master(history: bool) {
    let Some(mut shard) = Shard::start_with(30, 1, history).await else {
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
    let (published, frames) = publish_through(
        &shard.s,
        &shard.users,
        &mut shard.clients,
        crash,
        Duration::from_secs(3),
    )
    .await;
    let (resyncs, lost) = check_delivery(&shard.users, &published, &frames);
    let sent = published.sent;
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

/// Resume on the cluster layer: a client back on the *other* courier gets what it missed, once,
/// in order, from the stream in its partition's slot, then live events.
#[tokio::test]
async fn a_client_resumes_on_the_other_courier_from_the_cluster_stream() {
    let Some(cluster) = PrivateCluster::start(3, 0).await else {
        return;
    };
    let urls = cluster.urls();
    let prefix = services::unique_prefix();
    let with_history = || {
        let mut config = common::config();
        config.layer = courier::config::LayerKind::RedisCluster;
        config.redis = redis_config(&urls, &prefix);
        config.redis.cluster_history = true;
        common::spawn_server(config)
    };
    let (a, b) = (with_history().await, with_history().await);
    let query = |srv: &common::TestServer, q: &str| {
        format!(
            "{}?token={}&{q}",
            srv.ws_url(),
            common::token_for(json!(12))
        )
    };
    let mut ws = common::ws_connect_url(&query(&a, "recover=1")).await;
    let hello = common::next_json(&mut ws).await;
    let epoch = hello["epoch"].as_str().expect("epoch").to_owned();
    let publish = |addr, n| async move { assert_eq!(notify_all(addr, &[12], "n", n).await, 202) };
    for n in 1..=3 {
        publish(a.addr, n).await;
    }
    for n in 1..=3u64 {
        assert_eq!(common::next_json(&mut ws).await["offset"].as_u64(), Some(n));
    }
    drop(ws);
    for n in 4..=8 {
        publish(b.addr, n).await;
    }
    let mut back = common::ws_connect_url(&query(&b, &format!("since=3&epoch={epoch}"))).await;
    assert_eq!(
        common::next_json(&mut back).await["offset"],
        3,
        "welcome at the position sent"
    );
    publish(a.addr, 9).await;
    for n in 4..=9u64 {
        let f = common::next_json(&mut back).await;
        assert_eq!(f["offset"].as_u64(), Some(n), "{f}");
    }
    a.stop().await;
    b.stop().await;
}
