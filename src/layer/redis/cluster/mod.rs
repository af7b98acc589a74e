//! `RedisClusterLayer`: Redis Cluster in native mode, sharded pub/sub over hash-tag partitions.
//!
//! Groups are spread over `cluster_partitions` partitions (`wire::sharded` has the rule and the
//! frame format); partition `K` is the shard channel `{<prefix>:courier:p<K>}`, which lives on one
//! slot and so on one shard. Each courier `SSUBSCRIBE`s the partitions that have a local member,
//! through one cluster connection (redis-rs `cluster_async`, RESP3 pushes) that holds one socket
//! per node however many groups it carries; a publish is one `SPUBLISH` per partition touched,
//! carrying every message of the call for that partition, each with its group, and receivers
//! route locally. A partition's traffic reaches every courier with a member in it, so receivers
//! skip (undecoded) the entries of groups they do not have.
//!
//! This is courier's own format: channels_redis cannot use Redis Cluster, so Django publishes
//! through courier (`POST /api/notify`) or the Rust API, not through `channel_layer.group_send`.
//!
//! # Failures and topology changes
//! - A failover or a slot moved: the node that lost the slot sends `sunsubscribe`; the layer
//!   subscribes the partition again (redis-rs follows the slot to its new owner) and sends its
//!   groups a `resync`, since messages published in between went to nobody.
//! - A node connection drops, masters stop answering PING, or a partition cannot be subscribed
//!   for a while: the cluster connection is rebuilt from the seed nodes through the shared
//!   reconnect loop (counted in `layer_hosts_down`, `layer_errors{disconnect}`,
//!   `layer_reconnects`), everything is resubscribed and every local group gets a `resync`, as
//!   the pub/sub layer does after a reconnect.
//! - A publish that Redis refused (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, READONLY) is retried a few
//!   times, which is safe because a refused frame was not published; any other error fails the
//!   publish (`layer_errors{publish}`), never retried blind, so nothing arrives twice. "Refused"
//!   can be trusted because publishes have a connection of their own that never subscribes: on
//!   the subscribing one, a slot leaving a node shifts replies between commands (`task`).

mod history;
mod table;
mod task;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use redis::cluster_async::ClusterConnection;
use redis::RetryMethod;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::conn::{broken, CHUNK, CONNECT_TIMEOUT};
use super::health::LayerMetrics;
use super::wire::codec::Codec;
use super::wire::sharded::{new_frame, push_entry, Partitions};
use crate::config::{HistoryConfig, RedisConfig};
use crate::error::{Error, Result};
use crate::history::Position;
use crate::layer::{ChannelLayer, GroupMessage, GroupName, Inbound, StreamHistory};
use crate::metrics::Metrics;
use history::Frame;
use table::Table;

/// How many times a publish Redis refused is sent again.
pub(super) const PUBLISH_RETRIES: u32 = 3;
/// Pause before the n-th retry: n times this, while redis-rs refreshes its slot map.
pub(super) const RETRY_STEP: Duration = Duration::from_millis(100);
/// Bound on one frame's `SPUBLISH`, retries included. While a master is down, redis-rs may hold
/// requests behind its slot refreshes (each waiting on a connect to the dead node); the caller
/// (an HTTP publish) gets its 503 within this instead. A frame that timed out may or may not have
/// been published, and is not sent again.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// Scope: every courier on the same cluster (any seed nodes of it) with the same prefix and
/// partition count. At-most-once: sharded pub/sub keeps nothing for a subscriber that is away.
pub struct RedisClusterLayer {
    shared: Arc<Shared>,
    /// Stops the connection task when the layer is dropped.
    _stop: DropGuard,
}

/// A note frame's positions — `(entry index, position)` — with the connection it came on.
type Notes = (u64, Vec<(usize, Position)>);

struct Shared {
    /// Seed nodes.
    urls: Vec<String>,
    partitions: Partitions,
    codec: Codec,
    table: Table,
    inbound: OnceLock<Inbound>,
    metrics: LayerMetrics,
    /// The current session's command connection (publishes, stream reads): never subscribed,
    /// so no unasked push shifts its replies (`task`'s doc); `None` while being (re)built.
    publisher: watch::Sender<Option<ClusterConnection>>,
    /// User-stream history, when kept.
    history: Option<history::ClusterHistory>,
    /// Per partition, the positions a note frame gave for the next frame's entries, with the
    /// connection (session) it came on: a note from a connection that dropped before its frame
    /// must not label a frame of the next one.
    notes: std::sync::Mutex<HashMap<usize, Notes>>,
}

impl Shared {
    fn set_publisher(&self, conn: Option<ClusterConnection>) {
        self.publisher.send_replace(conn);
    }

    /// The current connection; while there is none, waits for one up to [`CONNECT_TIMEOUT`], so
    /// a publish right after start (or during a rebuild) is not failed needlessly.
    async fn publisher(&self) -> Result<ClusterConnection> {
        if let Some(conn) = self.publisher.borrow().clone() {
            return Ok(conn);
        }
        let mut rx = self.publisher.subscribe();
        let up = tokio::time::timeout(CONNECT_TIMEOUT, rx.wait_for(Option::is_some)).await;
        match up {
            Ok(Ok(conn)) => conn
                .clone()
                .ok_or_else(|| Error::layer("redis-cluster: not connected")),
            _ => Err(Error::layer("redis-cluster: not connected")),
        }
    }
}

impl RedisClusterLayer {
    /// Starts the connection task. Does not wait for the cluster: an unreachable one is retried
    /// with backoff and logged, so the server still starts and serves local clients.
    pub fn start(config: &RedisConfig) -> Result<Self> {
        Self::start_with_history(config, None)
    }

    /// [`start`](Self::start), keeping user-stream history in the cluster within `history`'s
    /// bounds (each stream in its partition's slot).
    pub fn start_with_history(
        config: &RedisConfig,
        history: Option<&HistoryConfig>,
    ) -> Result<Self> {
        // Checks the seed URLs now, so a typo is a startup error and not a retry loop.
        task::client(&config.urls, Some(|_| Ok(())))
            .map_err(|e| Error::Config(format!("--redis-url (redis-cluster): {e}")))?;
        let partitions = Partitions::new(&config.prefix, config.cluster_partitions);
        let shared = Arc::new(Shared {
            urls: config.urls.clone(),
            table: Table::new(partitions.count()),
            partitions,
            codec: Codec::new(config.format, &config.symmetric_keys, 0),
            inbound: OnceLock::new(),
            metrics: LayerMetrics::new(1),
            publisher: watch::Sender::new(None),
            history: history.map(history::ClusterHistory::new),
            notes: Default::default(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(task::run(shared.clone(), stop.clone()));
        Ok(Self {
            shared,
            _stop: stop.drop_guard(),
        })
    }

    /// The shard channel that carries `group`'s messages under `config`'s prefix and partition
    /// count, `{<prefix>:courier:p<K>}` (`CLUSTER KEYSLOT` of it names the slot).
    pub fn channel_of(config: &RedisConfig, group: &GroupName) -> String {
        let partitions = Partitions::new(&config.prefix, config.cluster_partitions);
        partitions.channel(partitions.of(group))
    }

    async fn send(&self, items: &[(&GroupName, &GroupMessage)]) -> Result<()> {
        let conn = self.shared.publisher().await?;
        let frames = self.frames(items)?;
        let sends = frames.into_iter().map(|(k, frames)| {
            let conn = conn.clone();
            let channel = self.shared.partitions.channel(k);
            async move {
                // One partition's frames in order; partitions at once (no order between groups).
                for frame in frames {
                    let sent = async {
                        match self.shared.history.as_ref() {
                            Some(h) if !frame.numbered.is_empty() => {
                                self.publish_numbered(h, conn.clone(), k, &channel, &frame)
                                    .await
                            }
                            _ => spublish(conn.clone(), &channel, &frame.bytes).await,
                        }
                    };
                    tokio::time::timeout(PUBLISH_TIMEOUT, sent)
                        .await
                        .map_err(|_| broken("SPUBLISH timed out"))??;
                }
                Ok::<(), redis::RedisError>(())
            }
        });
        // join_all, not try_join_all: one partition's failure must not cancel the others' sends
        // half-way (a dropped SPUBLISH may or may not have run); the first error is reported.
        let results = join_all(sends).await;
        results
            .into_iter()
            .find_map(|r| r.err())
            .map_or(Ok(()), |e| Err(Error::layer(e)))
    }

    /// The batch as frames per partition, in batch order, each frame at most [`CHUNK`] entries,
    /// with the user-stream entries to number when history is kept.
    fn frames(&self, items: &[(&GroupName, &GroupMessage)]) -> Result<Vec<(usize, Vec<Frame>)>> {
        // Per partition: its frames, and how many entries the last one holds.
        let mut by_partition: HashMap<usize, (Vec<Frame>, usize)> = HashMap::new();
        for (group, message) in items {
            let (frames, in_last) = by_partition
                .entry(self.shared.partitions.of(group))
                .or_default();
            if frames.is_empty() || *in_last == CHUNK {
                frames.push(Frame {
                    bytes: new_frame(),
                    numbered: Vec::new(),
                });
                *in_last = 0;
            }
            let idx = *in_last;
            *in_last += 1;
            if let Some(frame) = frames.last_mut() {
                let body = push_entry(&mut frame.bytes, &self.shared.codec, group, message)
                    .map_err(Error::layer)?;
                if self.shared.history.is_some() && group.is_user_stream() {
                    frame.numbered.push((idx, (*group).clone(), body));
                }
            }
        }
        Ok(by_partition
            .into_iter()
            .map(|(k, (frames, _))| (k, frames))
            .collect())
    }

    /// Counts a failed publish; the error goes to the caller.
    fn counted(&self, sent: Result<()>) -> Result<()> {
        sent.inspect_err(|_| self.shared.metrics.error("publish"))
    }
}

/// `SPUBLISH channel frame`, sent again only while Redis refuses it (nothing was published).
async fn spublish(
    mut conn: ClusterConnection,
    channel: &str,
    frame: &[u8],
) -> redis::RedisResult<()> {
    let mut retries = 0;
    loop {
        let sent = redis::cmd("SPUBLISH")
            .arg(channel)
            .arg(frame)
            .query_async::<redis::Value>(&mut conn)
            .await;
        match sent {
            Ok(_) => return Ok(()),
            Err(e) if retries < PUBLISH_RETRIES && refused(&e) => {
                retries += 1;
                tokio::time::sleep(RETRY_STEP * retries).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether Redis (or redis-rs, before sending) turned the command down, so it did not run.
pub(super) fn refused(e: &redis::RedisError) -> bool {
    matches!(
        e.retry_method(),
        RetryMethod::MovedRedirect
            | RetryMethod::AskRedirect
            | RetryMethod::WaitAndRetry
            | RetryMethod::RefreshSlotsAndRetry
            | RetryMethod::ReconnectFromInitialConnections
    )
}

impl ChannelLayer for RedisClusterLayer {
    fn name(&self) -> &'static str {
        "redis-cluster"
    }

    fn attach(&self, inbound: Inbound) {
        let _ = self.shared.inbound.set(inbound);
    }

    fn attach_metrics(&self, metrics: Arc<Metrics>) {
        self.shared.metrics.attach(metrics);
    }

    fn keeps_history(&self) -> bool {
        self.shared.history.is_some()
    }

    fn read_stream<'a>(
        &'a self,
        group: &'a GroupName,
        after: Option<u64>,
    ) -> BoxFuture<'a, Result<StreamHistory>> {
        Box::pin(self.read(group, after))
    }

    fn subscription_live<'a>(&'a self, group: &'a GroupName) -> BoxFuture<'a, ()> {
        Box::pin(self.shared.table.live(self.shared.partitions.of(group)))
    }

    fn subscribe(&self, group: &GroupName) {
        let k = self.shared.partitions.of(group);
        self.shared.table.set(k, group, true);
    }

    fn unsubscribe(&self, group: &GroupName) {
        let k = self.shared.partitions.of(group);
        self.shared.table.set(k, group, false);
    }

    fn publish<'a>(
        &'a self,
        group: &'a GroupName,
        message: &'a GroupMessage,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.counted(self.send(&[(group, message)]).await) })
    }

    fn publish_many<'a>(
        &'a self,
        items: &'a [(GroupName, GroupMessage)],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let items: Vec<(&GroupName, &GroupMessage)> =
                items.iter().map(|(g, m)| (g, m)).collect();
            self.counted(self.send(&items).await)
        })
    }
}
