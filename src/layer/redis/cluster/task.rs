//! The connection task and the push callback: subscribe the wanted partitions, deliver frames,
//! and rebuild the cluster connection when a node is lost.
//!
//! The cluster connection (redis-rs `cluster_async`, RESP3) keeps one multiplexed connection per
//! node and routes `SSUBSCRIBE`/`SPUBLISH` by slot. Its pushes arrive in one callback, in stream
//! order, so the callback marks confirmations, drops and resyncs in the [`Table`] while this task
//! only turns the table's [`Plan`](super::table::Plan) into commands. A session ends, and the
//! shared reconnect loop builds a new connection (resubscribing everything, resyncing every
//! wanted partition), when:
//! - a node connection drops (the `Disconnection` push): what that node carried is unknown, and
//!   redis-rs's own per-node resubscribe cannot be observed, so the whole connection is rebuilt;
//! - PING to every master fails or times out (a silently dead socket);
//! - a wanted partition stays unsubscribed past a limit (no redirect ever fixed the slot map; a
//!   new connection reads the topology afresh). The limit doubles per such rebuild so a long
//!   outage does not resync everyone every few seconds.
//!
//! # Two connections per session
//! When a slot leaves a node (a reshard, a failover), Redis pushes `sunsubscribe` for its shard
//! channels unasked, and RESP3 gives a client no way to tell that push from the confirmation of
//! a `SUNSUBSCRIBE` it sent (valkey-io/valkey#1066). redis-rs 1.8 takes it for the reply to the
//! oldest command in flight on that node and hands every later reply to the command after its
//! own until the node's queue drains. A publish that ran then got another command's `MOVED`,
//! counted as refused, and ran again — a duplicate (`tests/redis_cluster/replies.rs`); one
//! that did not run got another's `OK` and was lost silently. So publishes and stream reads
//! go over a second cluster connection that never subscribes, and so is never pushed anything;
//! the subscribing one carries only `SSUBSCRIBE`/`SUNSUBSCRIBE` (whose replies nothing trusts:
//! the pushes decide), the `ROLE` probe (judged by its shape) and `PING` (any reply is life).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{ErrorKind, PushInfo, PushKind, Value};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::super::conn::{broken, RESPONSE_TIMEOUT};
use super::super::reconnect::Reconnect;
use super::super::resync::send_resync;
use super::super::wire::sharded::{entries, notes};
use super::Shared;

/// How often an idle session pings every master.
const PING_INTERVAL: Duration = Duration::from_secs(10);
/// How often the task compares the table with the server (and retries what failed).
const TICK: Duration = Duration::from_millis(200);
/// How long a wanted partition may stay unsubscribed before the connection is rebuilt, at first.
/// Long enough for a failover: while a dead master's replica is being promoted, the retried
/// SSUBSCRIBEs draw MOVED replies that refresh redis-rs's slot map, and the first one after the
/// promotion lands on the new master without any rebuild (which would resync everyone).
const STALE_MIN: Duration = Duration::from_secs(10);
/// The most that limit grows to over consecutive rebuilds for the same reason.
const STALE_MAX: Duration = Duration::from_secs(60);
/// TCP connect + handshake bound per node: half the shared `conn::CONNECT_TIMEOUT`, which bounds the
/// whole build (seeds, then `CLUSTER SLOTS`, then every other node, each step concurrent).
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// (Un)subscribe commands in flight at once: one per partition, since each has its own slot.
const IN_FLIGHT: usize = 32;

/// A cluster client for `urls`; with `on_push`, the subscribing one (its pushes go there).
/// `retries(0)`: redis-rs would otherwise resend a command after a dropped connection, and a
/// `SPUBLISH` that Redis already ran would then arrive twice; the layer retries only what Redis
/// refused (see `publish`).
pub(super) fn client(
    urls: &[String],
    on_push: Option<impl Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static>,
) -> redis::RedisResult<redis::cluster::ClusterClient> {
    let builder = ClusterClientBuilder::new(urls.to_vec())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .retries(0)
        .connection_timeout(NODE_CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT);
    match on_push {
        Some(on_push) => builder.push_sender(on_push).build(),
        None => builder.build(),
    }
}

/// A session's two cluster connections (module doc, "Two connections per session").
struct Links {
    /// Subscriptions, their probes and PINGs; its pushes count as the session's epoch.
    subs: ClusterConnection,
    /// Publishes and stream reads: never subscribed, so its replies pair with their commands.
    commands: ClusterConnection,
}

/// The task: one session per cluster connection, rebuilt with backoff. Ends when `stop` fires.
pub(super) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut link = Reconnect::new("redis-cluster", 0, &shared.metrics, &stop);
    let mut stale_limit = STALE_MIN;
    while let Some((links, resumed)) = link.next(|| connect(&shared)).await {
        let (Links { mut subs, commands }, epoch) = links;
        shared.table.open(resumed);
        if resumed {
            tracing::info!("redis-cluster: reconnected; resubscribing and sending resync");
        }
        shared.set_publisher(Some(commands));
        let live = session(&shared, &mut subs, epoch, &mut stale_limit, &stop).await;
        shared.set_publisher(None);
        match live {
            Ok(()) => return,
            Err(e) => link.lost(&e),
        }
    }
}

/// Builds a session's connections; the subscribing one's pushes count as a new epoch.
async fn connect(shared: &Arc<Shared>) -> redis::RedisResult<(Links, u64)> {
    let epoch = shared.table.advance();
    let weak = Arc::downgrade(shared);
    let subs = client(
        &shared.urls,
        Some(move |info| {
            match weak.upgrade() {
                Some(shared) => on_push(&shared, epoch, info),
                None => return Err(()),
            }
            Ok(())
        }),
    )?;
    let commands = client(&shared.urls, None::<fn(PushInfo) -> Result<(), ()>>)?;
    let (subs, commands) =
        tokio::try_join!(subs.get_async_connection(), commands.get_async_connection())?;
    Ok((Links { subs, commands }, epoch))
}

/// One connection's life. `Ok` means stopped; `Err` means it must be rebuilt.
async fn session(
    shared: &Shared,
    conn: &mut ClusterConnection,
    epoch: u64,
    stale_limit: &mut Duration,
    stop: &CancellationToken,
) -> redis::RedisResult<()> {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stale_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = shared.table.lost(epoch) => return Err(broken("a cluster node connection dropped")),
            _ = shared.table.changed() => reconcile(shared, conn).await,
            _ = tick.tick() => {
                reconcile(shared, conn).await;
                if shared.table.pending() == 0 {
                    stale_since = None;
                    *stale_limit = STALE_MIN;
                } else if stale_since.get_or_insert_with(Instant::now).elapsed() > *stale_limit {
                    *stale_limit = (*stale_limit * 2).min(STALE_MAX);
                    return Err(broken("wanted partitions stayed unsubscribed"));
                }
            }
            _ = ping.tick() => ping_masters(conn).await?,
        }
    }
}

/// PINGs every master the connection knows; a connection failure or a timeout breaks the
/// session. A server's error reply is a live server: on this connection it may be another
/// command's reply, shifted onto the PING by an unasked `sunsubscribe` (module doc).
async fn ping_masters(conn: &mut ClusterConnection) -> redis::RedisResult<()> {
    let routing = RoutingInfo::MultiNode((
        MultipleNodeRoutingInfo::AllMasters,
        Some(ResponsePolicy::AllSucceeded),
    ));
    let pong = conn.route_command(redis::cmd("PING"), routing);
    match tokio::time::timeout(RESPONSE_TIMEOUT, pong).await {
        Err(_) => Err(broken("ping timed out")),
        Ok(Err(e)) if !answered(&e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// Whether `e` is a server's reply (the node is up), not a failure to reach it.
fn answered(e: &redis::RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

/// SSUBSCRIBEs the wanted partitions that are not live and SUNSUBSCRIBEs the abandoned ones.
/// Failures are retried on the next tick; the push callback, not the reply, marks what is live.
async fn reconcile(shared: &Shared, conn: &ClusterConnection) {
    let history = shared.history.is_some();
    let plan = shared.table.plan();
    // Collected, not chained lazily: a borrowing iterator inside the spawned future trips the
    // compiler's higher-ranked lifetime check.
    let mut commands: Vec<(usize, bool)> = Vec::new();
    commands.extend(plan.subscribe.into_iter().map(|k| (k, true)));
    commands.extend(plan.unsubscribe.into_iter().map(|k| (k, false)));
    let failures = futures::stream::iter(commands)
        .map(|(k, on)| {
            let mut conn = conn.clone();
            let channel = shared.partitions.channel(k);
            async move {
                let call = async {
                    // With history every publish is a script, which runs on the master only;
                    // plain `SPUBLISH`es follow redis-rs's slot map like the `SSUBSCRIBE`, so
                    // there the subscription stays where the map sends it (probing then moved it
                    // away from where a stale map still published, and lost events).
                    if on && history {
                        on_master(&mut conn, &channel).await?;
                    }
                    if on {
                        conn.ssubscribe(&channel).await
                    } else {
                        conn.sunsubscribe(&channel).await
                    }
                };
                match tokio::time::timeout(RESPONSE_TIMEOUT, call).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some("timed out".to_owned()),
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(std::future::ready)
        .collect::<Vec<String>>()
        .await;
    if let Some(first) = failures.first() {
        shared.metrics.error("subscribe");
        tracing::debug!(failed = failures.len(), error = %first, "redis-cluster: (un)subscribe failed; retrying");
    }
}

/// Makes redis-rs route `channel`'s slot to its master: when the node its slot map names answers
/// `ROLE` as a replica (a failover demoted it), a keyed probe draws that replica's `MOVED`, which
/// refreshes the map. Without it the `SSUBSCRIBE` would land on the demoted node — Redis 7 serves
/// shard channels on replicas — which is not yet in the new master's shard right after the
/// failover and misses what a history script publishes there (`tests/redis_cluster`
/// `a_manual_failover…`). A slot being migrated stays on its (master) source: no probe, so the
/// migration's `ASK` dance is not disturbed. Only a reply that reads as a master's `ROLE` spares
/// the probe: anything else may be another command's reply shifted onto this one (module doc),
/// and probing a master costs one `EXISTS` (or, mid-migration, one retry next tick).
async fn on_master(conn: &mut ClusterConnection, channel: &str) -> redis::RedisResult<()> {
    let master = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
        channel,
        SlotAddr::Master,
    )));
    let role = conn.route_command(redis::cmd("ROLE"), master).await?;
    let is_master = matches!(&role, Value::Array(r)
        if matches!(r.first(), Some(Value::BulkString(b)) if b.as_slice() == b"master"));
    if !is_master {
        redis::cmd("EXISTS")
            .arg(channel)
            .query_async::<i64>(conn)
            .await?;
    }
    Ok(())
}

/// The connection's push callback (redis-rs calls it from its own task, in stream order).
fn on_push(shared: &Shared, epoch: u64, info: PushInfo) {
    let channel = match info.data.first() {
        Some(Value::BulkString(c)) => shared.partitions.parse(c),
        _ => None,
    };
    match (info.kind, channel) {
        (PushKind::SMessage, Some(k)) => {
            if let Some(Value::BulkString(frame)) = info.data.get(1) {
                deliver(shared, epoch, k, frame);
            }
        }
        (PushKind::SSubscribe, Some(k)) => {
            let groups = shared.table.confirmed(epoch, k);
            if !groups.is_empty() {
                send_resync(shared.inbound.get(), &groups);
            }
        }
        (PushKind::SUnsubscribe, Some(k)) => unsubscribed(shared, epoch, k),
        (PushKind::Disconnection, _) => shared.table.disconnected(epoch),
        _ => {}
    }
}

/// An `sunsubscribe` push: ours, or the server's when the slot left the node (counted `moved`).
fn unsubscribed(shared: &Shared, epoch: u64, k: usize) {
    if shared.table.dropped(epoch, k) {
        shared.metrics.error("moved");
        tracing::info!(
            partition = k,
            "redis-cluster: the server dropped a wanted partition (slot moved or failover); resubscribing"
        );
    }
}

/// Hands the frame's entries for local groups to the hub, in order. Entries for other groups of
/// the partition are skipped undecoded; a bad frame or body is counted, not fatal.
fn deliver(shared: &Shared, epoch: u64, k: usize, frame: &[u8]) {
    let mut notes_of = shared.notes.lock().unwrap_or_else(|p| p.into_inner());
    match notes(frame) {
        Some(Ok(positions)) => {
            notes_of.insert(k, (epoch, positions));
            return;
        }
        Some(Err(e)) => {
            shared.metrics.error("decode");
            tracing::warn!(partition = k, error = %e, "redis-cluster: dropping a bad note frame");
            notes_of.remove(&k);
            return;
        }
        None => {}
    }
    // The positions the note just before gave this frame's entries, if any.
    let mut positions = match notes_of.remove(&k) {
        Some((from, positions)) if from == epoch => positions,
        _ => Vec::new(),
    };
    drop(notes_of);
    let mut names = Vec::new();
    for (idx, entry) in entries(frame).enumerate() {
        match entry {
            Ok((name, body)) => names.push((name, (idx, body))),
            Err(e) => {
                shared.metrics.error("decode");
                tracing::warn!(partition = k, error = %e, "redis-cluster: dropping the rest of a frame");
                break;
            }
        }
    }
    let Some(inbound) = shared.inbound.get() else {
        return;
    };
    for (group, (idx, body)) in shared.table.filter(epoch, k, names.into_iter()) {
        let at = positions
            .iter()
            .position(|(i, _)| *i == idx)
            .map(|i| positions.swap_remove(i).1);
        match shared.codec.decode(body) {
            Ok(message) => inbound(&group, &message, at.as_ref()),
            Err(e) => {
                shared.metrics.error("decode");
                tracing::warn!(%group, error = %e, "redis-cluster: dropping a message that does not decode");
            }
        }
    }
}
