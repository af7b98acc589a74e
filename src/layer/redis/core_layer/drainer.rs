//! The drainer task: pops this process's inboxes on one host (BZPOPMIN, then batched ZPOPMIN) and routes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::layer::redis::conn;
use crate::layer::redis::reconnect::Reconnect;
use crate::layer::redis::wire::history::split_member;
use crate::layer::redis::wire::RANDOM_PREFIX;

/// BZPOPMIN's block time. The connection's response deadline is this plus
/// [`RESPONSE_TIMEOUT`](conn::RESPONSE_TIMEOUT), so a dead Redis is noticed within seconds.
const BLOCK: Duration = Duration::from_secs(2);
/// Messages popped per inbox per round trip once an inbox is known to be non-empty.
const BATCH: isize = 256;
/// Batch rounds before going back to BZPOPMIN (keeps the loop bounded under a flood).
const MAX_ROUNDS: usize = 64;

/// Pops and routes host `host`'s inboxes until the layer stops; reconnects with backoff and, after
/// a reconnect, asks the host's registrar for a re-registration and a resync.
pub(super) async fn run(
    shared: Arc<Shared>,
    host: usize,
    client: redis::Client,
    stop: CancellationToken,
) {
    let keys = shared.inbox_keys(host);
    let state = &shared.hosts[host];
    let mut link = Reconnect::new("redis-core inbox reader", host, &shared.metrics, &stop);
    let connect = || conn::connect(&client, BLOCK + conn::RESPONSE_TIMEOUT);
    while let Some((mut conn, resumed)) = link.next(connect).await {
        if resumed {
            state.resync_wanted.store(true, Ordering::Release);
            state.resync_notify.notify_one();
        }
        // Cancelling a pop in flight could lose the popped message, but only at shutdown,
        // when undelivered messages are lost anyway.
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = pop_forever(&shared, &mut conn, &keys) => r,
        };
        if let Err(e) = result {
            link.lost(&e);
        }
    }
}

/// Returns only with the error that broke the connection.
async fn pop_forever(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    keys: &[String],
) -> redis::RedisResult<()> {
    loop {
        let popped: Option<(String, Vec<u8>, f64)> = redis::cmd("BZPOPMIN")
            .arg(keys)
            .arg(BLOCK.as_secs())
            .query_async(conn)
            .await?;
        let Some((_, member, _)) = popped else {
            continue;
        };
        route(shared, &member);
        drain(shared, conn, keys).await?;
    }
}

/// After a wake-up, empties the inboxes in batches (one pipeline per round), boundedly.
async fn drain(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    keys: &[String],
) -> redis::RedisResult<()> {
    for _ in 0..MAX_ROUNDS {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.zpopmin(key, BATCH);
        }
        let batches: Vec<Vec<(Vec<u8>, f64)>> = pipe.query_async(conn).await?;
        let mut full = false;
        for batch in &batches {
            full |= batch.len() as isize >= BATCH;
            for (member, _) in batch {
                route(shared, member);
            }
        }
        if !full {
            break;
        }
    }
    Ok(())
}

/// Strips the random prefix, decodes, and hands the message to each local group it names in
/// `__asgi_channel__` (a list for group sends, a string for a direct `send`).
fn route(shared: &Shared, member: &[u8]) {
    // Courier's own publishes put the event's position after the random prefix.
    let (position, member) = match split_member(member, RANDOM_PREFIX) {
        Ok(split) => split,
        Err(e) => {
            shared.metrics.error("decode");
            tracing::warn!(
                error = e,
                "redis-core: dropping a member with a bad position"
            );
            return;
        }
    };
    let mut message = match shared.sender.codec().decode(&member) {
        Ok(m) => m,
        Err(e) => {
            shared.metrics.error("decode");
            tracing::warn!(error = %e, "redis-core: dropping an inbox message that does not decode");
            return;
        }
    };
    let channels = match message.shift_remove("__asgi_channel__") {
        Some(Value::Array(list)) => list,
        Some(one @ Value::String(_)) => vec![one],
        _ => {
            shared.metrics.error("decode");
            tracing::warn!("redis-core: dropping an inbox message without __asgi_channel__");
            return;
        }
    };
    let Some(inbound) = shared.inbound.get() else {
        return;
    };
    for channel in &channels {
        match channel.as_str().and_then(|c| shared.group_of_channel(c)) {
            Some(group) => inbound(&group, &message, position.as_ref()),
            None => tracing::debug!(
                ?channel,
                "redis-core: message for a channel that is not ours"
            ),
        }
    }
}
