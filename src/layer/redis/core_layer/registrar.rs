//! The registrar task: mirrors the hub's groups on one host into channels_redis group ZSETs and refreshes them.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::layer::redis::conn::{self, CHUNK};
use crate::layer::redis::reconnect::Reconnect;
use crate::layer::redis::resync::send_resync;
use crate::layer::redis::wire::now_secs;
use crate::layer::redis::wishes::Wishes;
use crate::layer::GroupName;

/// Longest gap between membership refreshes. Senders prune members older than `group_expiry`,
/// and a refresh also re-creates memberships a Redis restart without persistence lost.
const MAX_REFRESH: Duration = Duration::from_secs(3600);
/// Bound on the best-effort ZREM of every membership when the layer stops.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Host `host`'s registrar: connect, register every wanted group of that host, then follow the
/// hub's changes; reconnect with backoff. On stop, removes this process's memberships (bounded).
pub(super) async fn run(
    shared: Arc<Shared>,
    host: usize,
    client: redis::Client,
    stop: CancellationToken,
) {
    // What we believe Redis holds; updated only after a command succeeded.
    let mut registered: HashSet<GroupName> = HashSet::new();
    let mut link = Reconnect::new("redis-core registrar", host, &shared.metrics, &stop);
    let connect = || conn::connect(&client, conn::RESPONSE_TIMEOUT);
    while let Some((mut conn, resumed)) = link.next(connect).await {
        let session = session(&shared, host, &mut conn, &mut registered, &stop, resumed).await;
        shared.hosts[host].wishes.clear_live();
        match session {
            Ok(()) => {
                let all: Vec<GroupName> = registered.into_iter().collect();
                let _ =
                    tokio::time::timeout(CLEANUP_TIMEOUT, remove(&shared, &mut conn, &all)).await;
                return;
            }
            Err(e) => link.lost(&e),
        }
    }
}

/// One connection's life: `Ok` when stopped, `Err` when the connection broke.
async fn session(
    shared: &Shared,
    host: usize,
    conn: &mut MultiplexedConnection,
    registered: &mut HashSet<GroupName>,
    stop: &CancellationToken,
    resumed: bool,
) -> redis::RedisResult<()> {
    let state = &shared.hosts[host];
    let resync = resumed | state.resync_wanted.swap(false, Ordering::AcqRel);
    full_sync(shared, &state.wishes, conn, registered).await?;
    if resync {
        tracing::info!(
            host,
            groups = registered.len(),
            "redis-core: re-registered after reconnect; sending resync"
        );
        send_resync(shared.inbound.get(), registered.iter());
    }
    let period = Duration::from_secs(shared.group_expiry_secs / 4)
        .clamp(Duration::from_secs(1), MAX_REFRESH);
    let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = state.wishes.changed() => apply_changes(shared, &state.wishes, conn, registered).await?,
            _ = state.resync_notify.notified() => {
                if state.resync_wanted.swap(false, Ordering::AcqRel) {
                    full_sync(shared, &state.wishes, conn, registered).await?;
                    tracing::info!(host, groups = registered.len(), "redis-core: inbox reader reconnected; sending resync");
                    send_resync(shared.inbound.get(), registered.iter());
                }
            }
            _ = refresh.tick() => full_sync(shared, &state.wishes, conn, registered).await?,
        }
    }
}

/// Registers every wanted group with a fresh score and drops memberships no longer wanted.
async fn full_sync(
    shared: &Shared,
    wishes: &Wishes,
    conn: &mut MultiplexedConnection,
    registered: &mut HashSet<GroupName>,
) -> redis::RedisResult<()> {
    let wanted = wishes.snapshot();
    let stale: Vec<GroupName> = registered.difference(&wanted).cloned().collect();
    remove(shared, conn, &stale).await?;
    for g in &stale {
        registered.remove(g);
    }
    let wanted: Vec<GroupName> = wanted.into_iter().collect();
    add(shared, conn, &wanted).await?;
    wishes.mark_live(&wanted, true);
    registered.extend(wanted);
    Ok(())
}

/// Applies the groups whose wish changed since the last look.
async fn apply_changes(
    shared: &Shared,
    wishes: &Wishes,
    conn: &mut MultiplexedConnection,
    registered: &mut HashSet<GroupName>,
) -> redis::RedisResult<()> {
    let (on, off): (Vec<_>, Vec<_>) = wishes
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
    wishes.mark_live(&on, true);
    registered.extend(on);
    wishes.mark_live(&off, false);
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
        let now = now_secs();
        let mut pipe = redis::pipe();
        for g in chunk {
            let key = shared.group_key(g);
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
            pipe.zrem(shared.group_key(g), shared.channel_of(g))
                .ignore();
        }
        let () = pipe.query_async(conn).await?;
    }
    Ok(())
}
