//! The registrar task: mirrors the hub's groups into channels_redis group ZSETs and refreshes them.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::layer::redis_support::{self as support, Backoff, CHUNK};
use crate::layer::GroupName;

/// Longest gap between membership refreshes. Senders prune members older than `group_expiry`,
/// and a refresh also re-creates memberships a Redis restart without persistence lost.
const MAX_REFRESH: Duration = Duration::from_secs(3600);
/// Bound on the best-effort ZREM of every membership when the layer stops.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Connect, register everything wanted, then follow the hub's changes; reconnect with backoff.
pub(super) async fn run(shared: Arc<Shared>, client: redis::Client, stop: CancellationToken) {
    let mut backoff = Backoff::new();
    // What we believe Redis holds; updated only after a command succeeded.
    let mut registered: HashSet<GroupName> = HashSet::new();
    let mut was_connected = false;
    loop {
        let attempt = tokio::select! {
            _ = stop.cancelled() => return,
            r = support::connect(&client, support::RESPONSE_TIMEOUT) => r,
        };
        match attempt {
            Ok(mut conn) => {
                let result = session(
                    &shared,
                    &mut conn,
                    &mut registered,
                    &stop,
                    &mut was_connected,
                    &mut backoff,
                )
                .await;
                match result {
                    Ok(()) => {
                        let all: Vec<GroupName> = registered.into_iter().collect();
                        let _ =
                            tokio::time::timeout(CLEANUP_TIMEOUT, remove(&shared, &mut conn, &all))
                                .await;
                        return;
                    }
                    Err(e) => {
                        shared.metrics.error("disconnect");
                        tracing::warn!(error = %e, "redis-core registrar: connection lost; reconnecting");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "redis-core registrar: cannot connect; retrying"),
        }
        if !backoff.wait(&stop).await {
            return;
        }
    }
}

/// One connection's life: `Ok` when stopped, `Err` when the connection broke.
async fn session(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    registered: &mut HashSet<GroupName>,
    stop: &CancellationToken,
    was_connected: &mut bool,
    backoff: &mut Backoff,
) -> redis::RedisResult<()> {
    let resync = *was_connected | shared.resync_wanted.swap(false, Ordering::AcqRel);
    full_sync(shared, conn, registered).await?;
    if *was_connected {
        shared.metrics.reconnect();
    }
    if resync {
        tracing::info!(
            groups = registered.len(),
            "redis-core: re-registered after reconnect; sending resync"
        );
        support::send_resync(shared.inbound.get(), registered.iter());
    }
    *was_connected = true;
    backoff.reset();
    let period = Duration::from_secs(shared.group_expiry_secs / 4)
        .clamp(Duration::from_secs(1), MAX_REFRESH);
    let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = shared.wishes.changed() => apply_changes(shared, conn, registered).await?,
            _ = shared.resync_notify.notified() => {
                if shared.resync_wanted.swap(false, Ordering::AcqRel) {
                    full_sync(shared, conn, registered).await?;
                    tracing::info!(groups = registered.len(), "redis-core: inbox reader reconnected; sending resync");
                    support::send_resync(shared.inbound.get(), registered.iter());
                }
            }
            _ = refresh.tick() => full_sync(shared, conn, registered).await?,
        }
    }
}

/// Registers every wanted group with a fresh score and drops memberships no longer wanted.
async fn full_sync(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    registered: &mut HashSet<GroupName>,
) -> redis::RedisResult<()> {
    let wanted = shared.wishes.snapshot();
    let stale: Vec<GroupName> = registered.difference(&wanted).cloned().collect();
    remove(shared, conn, &stale).await?;
    for g in &stale {
        registered.remove(g);
    }
    let wanted: Vec<GroupName> = wanted.into_iter().collect();
    add(shared, conn, &wanted).await?;
    registered.extend(wanted);
    Ok(())
}

/// Applies the groups whose wish changed since the last look.
async fn apply_changes(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    registered: &mut HashSet<GroupName>,
) -> redis::RedisResult<()> {
    let (on, off): (Vec<_>, Vec<_>) = shared
        .wishes
        .take_changes()
        .into_iter()
        .partition(|(_, wanted)| *wanted);
    let on: Vec<GroupName> = on.into_iter().map(|(g, _)| g).collect();
    let off: Vec<GroupName> = off
        .into_iter()
        .map(|(g, _)| g)
        .filter(|g| registered.contains(g))
        .collect();
    add(shared, conn, &on).await?;
    registered.extend(on);
    remove(shared, conn, &off).await?;
    for g in &off {
        registered.remove(g);
    }
    Ok(())
}

/// channels_redis `group_add`: `ZADD {prefix}:group:{g} now channel` + `EXPIRE group_expiry`.
async fn add(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    groups: &[GroupName],
) -> redis::RedisResult<()> {
    for chunk in groups.chunks(CHUNK) {
        let now = support::now_secs();
        let mut pipe = redis::pipe();
        for g in chunk {
            let key = shared.group_key(g.as_str());
            pipe.zadd(&key, shared.channel_of(g), now).ignore();
            pipe.expire(&key, shared.group_expiry_secs as i64).ignore();
        }
        let () = pipe.query_async(conn).await?;
    }
    Ok(())
}

/// channels_redis `group_discard`: `ZREM {prefix}:group:{g} channel`.
async fn remove(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    groups: &[GroupName],
) -> redis::RedisResult<()> {
    for chunk in groups.chunks(CHUNK) {
        let mut pipe = redis::pipe();
        for g in chunk {
            pipe.zrem(shared.group_key(g.as_str()), shared.channel_of(g))
                .ignore();
        }
        let () = pipe.query_async(conn).await?;
    }
    Ok(())
}
