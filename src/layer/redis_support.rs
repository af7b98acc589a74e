//! Pieces both Redis layers share: the desired-subscription set, backoff, metrics, the resync message.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{GroupMessage, GroupName, Inbound};
use crate::metrics::Metrics;

/// How long to wait for a TCP connect + handshake to Redis before trying again.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a non-blocking command may take before the connection counts as broken.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Channels/keys per SUBSCRIBE or pipeline, so one command never carries 100k arguments.
pub const CHUNK: usize = 512;

/// What the hub wants subscribed, written under the hub's lock (so: never blocks, never awaits)
/// and reconciled by the layer's task. `dirty` holds the groups whose wish changed since the task
/// last looked, so a reconcile costs O(changes), not O(groups).
#[derive(Default)]
pub struct Wishes {
    inner: Mutex<WishSets>,
    changed: Notify,
}

#[derive(Default)]
struct WishSets {
    wanted: HashSet<GroupName>,
    dirty: HashSet<GroupName>,
}

impl Wishes {
    fn lock(&self) -> MutexGuard<'_, WishSets> {
        // Each update is a single insert/remove pair: a poisoned lock still holds consistent sets.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `group` should (or should no longer) be received, and wakes the task.
    pub fn set(&self, group: &GroupName, wanted: bool) {
        let mut sets = self.lock();
        if wanted {
            sets.wanted.insert(group.clone());
        } else {
            sets.wanted.remove(group);
        }
        sets.dirty.insert(group.clone());
        drop(sets);
        // notify_one stores a permit when the task is busy, so no change is ever missed.
        self.changed.notify_one();
    }

    /// Everything wanted now; clears the dirty set (a full sync supersedes pending changes).
    pub fn snapshot(&self) -> HashSet<GroupName> {
        let mut sets = self.lock();
        sets.dirty.clear();
        sets.wanted.clone()
    }

    /// The groups whose wish changed since the last call, each with whether it is wanted now.
    pub fn take_changes(&self) -> Vec<(GroupName, bool)> {
        let mut sets = self.lock();
        let dirty = std::mem::take(&mut sets.dirty);
        dirty
            .into_iter()
            .map(|g| {
                let w = sets.wanted.contains(&g);
                (g, w)
            })
            .collect()
    }

    /// Resolves when [`set`](Self::set) was called since the last wake-up.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// The layer's view of the server metrics, attached after construction (see
/// [`ChannelLayer::attach_metrics`](super::ChannelLayer::attach_metrics)).
#[derive(Default)]
pub struct LayerMetrics(OnceLock<Arc<Metrics>>);

impl LayerMetrics {
    /// Sets the registry to count into (first call wins).
    pub fn attach(&self, metrics: Arc<Metrics>) {
        let _ = self.0.set(metrics);
    }
    /// Counts a layer error by reason (`disconnect`, `decode`, `publish`).
    pub fn error(&self, reason: &'static str) {
        if let Some(m) = self.0.get() {
            Metrics::inc(&m.layer_errors, reason);
        }
    }
    /// Counts a successful reconnect.
    pub fn reconnect(&self) {
        if let Some(m) = self.0.get() {
            m.layer_reconnects.inc();
        }
    }
}

/// Exponential backoff with jitter between reconnect attempts: 100 ms doubling to 5 s.
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    /// Starts at the minimum.
    pub fn new() -> Self {
        Self { next: Self::MIN }
    }
    /// After a success: the next failure retries quickly again.
    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }
    /// Sleeps for the current delay (±25 % jitter, so a fleet does not reconnect in lockstep), then
    /// doubles it. Returns `false` if `cancel` fired first.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let jitter = 0.75 + f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 512.0;
        let delay = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(Self::MAX);
        tokio::select! {
            _ = cancel.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// The message the hub turns into `{"type":"resync","data":{"reason":"broker_reconnected"}}`:
/// messages published while the broker was unreachable are gone, so clients should refetch.
pub fn resync_message() -> GroupMessage {
    let v = json!({"type": "resync", "data": {"reason": "broker_reconnected"}});
    v.as_object().cloned().unwrap_or_default()
}

/// Tells every group in `groups` to resync, through the hub's inbound callback.
pub fn send_resync<'a>(inbound: Option<&Inbound>, groups: impl IntoIterator<Item = &'a GroupName>) {
    let Some(inbound) = inbound else { return };
    let message = resync_message();
    for group in groups {
        inbound(group, &message);
    }
}

/// Now as float seconds since the epoch, like Python's `time.time()` (channels_redis scores).
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Opens a client for `url`, mapping the error into the crate's.
pub fn client(url: &str) -> crate::Result<redis::Client> {
    redis::Client::open(url).map_err(|e| crate::Error::Config(format!("--redis-url {url:?}: {e}")))
}

/// A multiplexed connection with bounded connect and response times. `response` must exceed any
/// blocking command's own timeout sent on it.
pub async fn connect(
    client: &redis::Client,
    response: Duration,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// The publishing connection: reconnects by itself in the background after a failed command.
pub fn publisher(client: &redis::Client) -> crate::Result<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    client
        .get_connection_manager_lazy(config)
        .map_err(|e| crate::Error::Layer(e.to_string()))
}
