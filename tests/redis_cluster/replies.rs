//! A slot leaving a node while publishes to that node are in flight: the `sunsubscribe` Redis
//! pushes unasked must not be taken for a reply (a publish that ran would be sent again).

use std::time::Duration;

use courier::layer::RedisClusterLayer;
use serde_json::json;

use crate::common::{connect_user, Ws};
use crate::services::{self, cluster::PrivateCluster};
use crate::support::*;

/// How long the node holds its clients' commands: the in-flight publishes wait that long, well
/// under the layer's 2 s publish bound.
const PAUSE_MS: u64 = 1200;

/// With history, user A's and user B's partitions on one master S; S's clients paused with three
/// publishes in flight on the layer's connection to it (B, then A, then B again); A's slot given
/// to another master meanwhile, so S pushes `sunsubscribe` for A's partition unasked. When S
/// resumes, A's publish draws `MOVED` (S no longer has the slot) and B's two run. A client that
/// takes the push for the oldest reply hands every later reply to the request after its own:
/// B's second publish, which ran, gets A's `MOVED`, counts as refused and runs again (B sees
/// event 2 twice; before the fix, every run). B's partition never moved: B sees 1 and 2 once
/// each and no `resync`.
#[tokio::test]
async fn a_slot_leaving_a_node_with_publishes_in_flight_duplicates_nothing() {
    slot_leaves_under_publishes(true).await;
}

/// The same with plain `SPUBLISH` (history off): a refused-looking publish is retried there too.
#[tokio::test]
async fn a_slot_leaving_a_node_with_plain_publishes_in_flight_duplicates_nothing() {
    slot_leaves_under_publishes(false).await;
}

async fn slot_leaves_under_publishes(history: bool) {
    let Some(cluster) = PrivateCluster::start(3, 0).await else {
        return;
    };
    let urls = cluster.urls();
    let prefix = services::unique_prefix();
    let config = redis_config(&urls, &prefix);
    let s = server(&urls, &prefix, history).await;
    let (a, b, node) = two_users_on_one_master(&cluster, &config).await;
    let mut clients: Vec<Ws> = vec![
        connect_user(s.addr, json!(a)).await,
        connect_user(s.addr, json!(b)).await,
    ];
    until_routed(&s, &[a, b], &mut clients).await;
    let slot_a = cluster
        .keyslot(&RedisClusterLayer::channel_of(&config, &group(a)))
        .await;
    let to = cluster
        .masters()
        .await
        .into_iter()
        .find(|&m| m != node)
        .expect("another master");

    let node_id = cluster.node_id(node).await;
    let pause = PAUSE_MS.to_string();
    assert_eq!(
        cluster.cmd(node, &["CLIENT", "PAUSE", &pause, "ALL"]).await,
        "OK"
    );
    let mut publishes = Vec::new();
    for (user, seq) in [(b, 1), (a, 1), (b, 2)] {
        let addr = s.addr;
        publishes.push(tokio::spawn(async move {
            notify_all(addr, &[user], "new_message", seq).await
        }));
        // In this order on the layer's connection to the node.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.claim_slot(slot_a, &node_id, to).await;
    let mut statuses = Vec::new();
    for p in publishes {
        statuses.push(p.await.expect("publish task"));
    }
    let frames = futures::future::join_all(
        clients
            .iter_mut()
            .map(|ws| drain(ws, Duration::from_millis(800))),
    )
    .await;
    let (seqs_a, resyncs_a) = timeline(&frames[0]);
    let (seqs_b, resyncs_b) = timeline(&frames[1]);
    eprintln!(
        "history {history}: publishes answered {statuses:?}; user {a} (slot moved): {seqs_a:?}, \
         resyncs at {resyncs_a:?}; user {b}: {seqs_b:?}"
    );
    assert_eq!(seqs_b, [1, 2], "user {b}: each event once, in order");
    assert!(resyncs_b.is_empty(), "user {b}: its partition did not move");
    assert!(
        seqs_a.len() <= 1 && resyncs_a.len() <= 1,
        "user {a}: {:?}",
        frames[0]
    );
    assert_eq!(cluster.shard_of(slot_a).await.0, to, "the slot moved");
    s.stop().await;
}

/// Two users in different partitions whose slots are on the same master, and that master.
async fn two_users_on_one_master(
    cluster: &PrivateCluster,
    config: &courier::config::RedisConfig,
) -> (i64, i64, u16) {
    let users: Vec<i64> = (1..=40).collect();
    let masters = masters_of(cluster, config, &users).await;
    let channel = |u: i64| RedisClusterLayer::channel_of(config, &group(u));
    for (i, &a) in users.iter().enumerate() {
        for (j, &b) in users.iter().enumerate().skip(i + 1) {
            if masters[i] == masters[j] && channel(a) != channel(b) {
                return (a, b, masters[i]);
            }
        }
    }
    panic!("no two users' partitions share a master");
}
