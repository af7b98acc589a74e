//! `RedisPubSubLayer`: wire-compatible with channels_redis's `RedisPubSubChannelLayer`.
//!
//! A group is the Redis pub/sub channel `{prefix}__group__{group}` and a message is the serialized
//! Channels message, nothing else (PROTOCOL.md §5): Django's `group_send` is one `PUBLISH`, and so
//! is courier's. Membership stays in process memory; this layer SUBSCRIBEs a group while the hub
//! has a local member of it, over one pub/sub connection owned by one task.
//!
//! # Failures
//! The task reconnects with backoff. While Redis is away the hub keeps serving its local clients
//! (local publishes fail with [`Error::Layer`]); after a reconnect it resubscribes everything and
//! sends each subscribed group a `resync` message, since Redis pub/sub kept nothing for us.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::AsyncCommands;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::codec::Codec;
use super::redis_support::{self as support, Backoff, LayerMetrics, Wishes, CHUNK};
use super::{ChannelLayer, GroupMessage, GroupName, Inbound};
use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// How often an idle subscriber pings, so a silently dead connection is noticed.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// Scope: every process (courier or Django with channels_redis's pub/sub layer) on one Redis with
/// the same prefix. At-most-once: Redis pub/sub drops what is published while we are disconnected.
pub struct RedisPubSubLayer {
    shared: Arc<Shared>,
    publisher: redis::aio::ConnectionManager,
    /// Stops the subscriber task when the layer is dropped.
    _stop: DropGuard,
}

struct Shared {
    /// `{prefix}__group__`: what channel names start with.
    channel_prefix: String,
    codec: Codec,
    inbound: OnceLock<Inbound>,
    metrics: LayerMetrics,
    wishes: Wishes,
}

impl RedisPubSubLayer {
    /// Starts the subscriber task. Does not wait for Redis: an unreachable broker is retried with
    /// backoff and logged, so the server still starts and serves local clients.
    pub fn start(config: &RedisConfig) -> Result<Self> {
        let client = support::client(&config.url)?;
        let publisher = support::publisher(&client)?;
        let shared = Arc::new(Shared {
            channel_prefix: format!("{}__group__", config.prefix),
            codec: Codec::new(config.format, &config.symmetric_keys, 0),
            inbound: OnceLock::new(),
            metrics: LayerMetrics::default(),
            wishes: Wishes::default(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(run(shared.clone(), client, stop.clone()));
        Ok(Self {
            shared,
            publisher,
            _stop: stop.drop_guard(),
        })
    }
}

impl ChannelLayer for RedisPubSubLayer {
    fn name(&self) -> &'static str {
        "redis-pubsub"
    }

    fn attach(&self, inbound: Inbound) {
        let _ = self.shared.inbound.set(inbound);
    }

    fn attach_metrics(&self, metrics: Arc<Metrics>) {
        self.shared.metrics.attach(metrics);
    }

    fn subscribe(&self, group: &GroupName) {
        self.shared.wishes.set(group, true);
    }

    fn unsubscribe(&self, group: &GroupName) {
        self.shared.wishes.set(group, false);
    }

    fn publish<'a>(
        &'a self,
        group: &'a GroupName,
        message: &'a GroupMessage,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let payload = self
                .shared
                .codec
                .encode(message)
                .map_err(|e| Error::Layer(e.to_string()))?;
            let channel = format!("{}{group}", self.shared.channel_prefix);
            let mut conn = self.publisher.clone();
            let sent: redis::RedisResult<i64> = conn.publish(channel, payload).await;
            sent.map(drop).map_err(|e| {
                self.shared.metrics.error("publish");
                Error::Layer(e.to_string())
            })
        })
    }
}

/// The subscriber task: connect, subscribe what is wanted, forward messages; on failure back off
/// and start over. Ends only when the layer is dropped.
async fn run(shared: Arc<Shared>, client: redis::Client, stop: CancellationToken) {
    let mut backoff = Backoff::new();
    let mut was_connected = false;
    loop {
        let connecting = tokio::time::timeout(support::CONNECT_TIMEOUT, client.get_async_pubsub());
        let attempt = tokio::select! {
            _ = stop.cancelled() => return,
            r = connecting => r,
        };
        let (mut sink, mut stream) = match attempt {
            Ok(Ok(pubsub)) => pubsub.split(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "redis-pubsub: cannot connect; retrying");
                if !backoff.wait(&stop).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                tracing::warn!("redis-pubsub: connect timed out; retrying");
                if !backoff.wait(&stop).await {
                    return;
                }
                continue;
            }
        };
        let wanted = shared.wishes.snapshot();
        let outcome = match change(&shared, &mut sink, &wanted, true).await {
            Ok(()) => {
                let mut subscribed = wanted;
                if was_connected {
                    shared.metrics.reconnect();
                    tracing::info!(
                        groups = subscribed.len(),
                        "redis-pubsub: reconnected; sending resync"
                    );
                    support::send_resync(shared.inbound.get(), &subscribed);
                }
                was_connected = true;
                backoff.reset();
                session(&shared, &mut sink, &mut stream, &mut subscribed, &stop).await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => return,
            Err(e) => {
                shared.metrics.error("disconnect");
                tracing::warn!(error = %e, "redis-pubsub: connection lost; reconnecting");
            }
        }
        if !backoff.wait(&stop).await {
            return;
        }
    }
}

/// One connection's life. `Ok` means stopped; `Err` means the connection broke.
async fn session(
    shared: &Shared,
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    subscribed: &mut HashSet<GroupName>,
    stop: &CancellationToken,
) -> redis::RedisResult<()> {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            // Cancel-safe: the stream is a channel receiver; nothing is lost if another arm wins.
            msg = stream.next() => match msg {
                Some(msg) => deliver(shared, &msg),
                None => return Err(broken("subscriber connection closed")),
            },
            _ = shared.wishes.changed() => reconcile(shared, sink, subscribed).await?,
            _ = ping.tick() => {
                let pong = tokio::time::timeout(support::RESPONSE_TIMEOUT, sink.ping::<redis::Value>()).await;
                pong.map_err(|_| broken("ping timed out"))??;
            }
        }
    }
}

/// Applies the hub's changed wishes: SUBSCRIBE the newly wanted, UNSUBSCRIBE the abandoned.
async fn reconcile(
    shared: &Shared,
    sink: &mut PubSubSink,
    subscribed: &mut HashSet<GroupName>,
) -> redis::RedisResult<()> {
    let mut add = HashSet::new();
    let mut remove = HashSet::new();
    for (group, wanted) in shared.wishes.take_changes() {
        match (wanted, subscribed.contains(&group)) {
            (true, false) => drop(add.insert(group)),
            (false, true) => drop(remove.insert(group)),
            _ => {}
        }
    }
    if !add.is_empty() {
        change(shared, sink, &add, true).await?;
        subscribed.extend(add);
    }
    if !remove.is_empty() {
        change(shared, sink, &remove, false).await?;
        subscribed.retain(|g| !remove.contains(g));
    }
    Ok(())
}

/// SUBSCRIBEs (or UNSUBSCRIBEs) `groups` in chunks, each with a response deadline.
async fn change(
    shared: &Shared,
    sink: &mut PubSubSink,
    groups: &HashSet<GroupName>,
    on: bool,
) -> redis::RedisResult<()> {
    let names: Vec<String> = groups
        .iter()
        .map(|g| format!("{}{g}", shared.channel_prefix))
        .collect();
    for chunk in names.chunks(CHUNK) {
        let call = async {
            if on {
                sink.subscribe(chunk).await
            } else {
                sink.unsubscribe(chunk).await
            }
        };
        tokio::time::timeout(support::RESPONSE_TIMEOUT, call)
            .await
            .map_err(|_| broken("(un)subscribe timed out"))??;
    }
    Ok(())
}

/// Decodes one published payload and hands it to the hub. Bad payloads are counted, not fatal.
fn deliver(shared: &Shared, msg: &redis::Msg) {
    let Some(name) = msg
        .get_channel_name()
        .strip_prefix(shared.channel_prefix.as_str())
    else {
        return;
    };
    let Some(group) = GroupName::new(name) else {
        return;
    };
    match shared.codec.decode(msg.get_payload_bytes()) {
        Ok(message) => {
            if let Some(inbound) = shared.inbound.get() {
                inbound(&group, &message);
            }
        }
        Err(e) => {
            shared.metrics.error("decode");
            tracing::warn!(%group, error = %e, "redis-pubsub: dropping a payload that does not decode");
        }
    }
}

fn broken(what: &'static str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::BrokenPipe, what))
}
