//! Pieces both Redis layers share: the desired-subscription set, connections, the one
//! reconnect-with-backoff loop, metrics, the resync message.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::layer::{GroupMessage, GroupName, Inbound};
use crate::metrics::Metrics;

/// How long to wait for a TCP connect + handshake to Redis before trying again.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a non-blocking command may take before the connection counts as broken.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Channels/keys per SUBSCRIBE or pipeline, so one command never carries 100k arguments.
pub(crate) const CHUNK: usize = 512;

/// What the hub wants subscribed, written under the hub's lock (so: never blocks, never awaits)
/// and reconciled by the layer's task. `dirty` holds the groups whose wish changed since the task
/// last looked, so a reconcile costs O(changes), not O(groups).
#[derive(Default)]
pub(crate) struct Wishes {
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
    pub(crate) fn set(&self, group: &GroupName, wanted: bool) {
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
    pub(crate) fn snapshot(&self) -> HashSet<GroupName> {
        let mut sets = self.lock();
        sets.dirty.clear();
        sets.wanted.clone()
    }

    /// The groups whose wish changed since the last call, each with whether it is wanted now.
    pub(crate) fn take_changes(&self) -> Vec<(GroupName, bool)> {
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
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// The layer's view of the server metrics, attached after construction (see
/// [`ChannelLayer::attach_metrics`](crate::layer::ChannelLayer::attach_metrics)), and which hosts
/// are down.
pub(crate) struct LayerMetrics {
    registry: OnceLock<Arc<Metrics>>,
    /// Per host: how many of its tasks are failing now (a host is down while any is).
    failing: Vec<AtomicUsize>,
}

impl LayerMetrics {
    /// Metrics for a layer over `hosts` hosts.
    pub(crate) fn new(hosts: usize) -> Self {
        Self {
            registry: OnceLock::new(),
            failing: (0..hosts).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Sets the registry to count into (first call wins), with the hosts already down.
    pub(crate) fn attach(&self, metrics: Arc<Metrics>) {
        let _ = self.registry.set(metrics);
        self.publish_hosts_down();
    }

    /// One of `host`'s tasks lost (or could not get) its connection.
    fn task_down(&self, host: usize) {
        if let Some(n) = self.failing.get(host) {
            n.fetch_add(1, Ordering::AcqRel);
            self.publish_hosts_down();
        }
    }

    /// That task is connected again.
    fn task_up(&self, host: usize) {
        if let Some(n) = self.failing.get(host) {
            n.fetch_sub(1, Ordering::AcqRel);
            self.publish_hosts_down();
        }
    }

    /// Sets the gauge from the per-host counts (set, not inc/dec, so it is right whenever the
    /// registry arrives and however tasks interleave).
    fn publish_hosts_down(&self) {
        if let Some(m) = self.registry.get() {
            let down = self
                .failing
                .iter()
                .filter(|n| n.load(Ordering::Acquire) > 0)
                .count();
            m.layer_hosts_down.set(down as i64);
        }
    }
    /// Counts a layer error by reason (`disconnect`, `decode`, `publish`).
    pub(crate) fn error(&self, reason: &'static str) {
        if let Some(m) = self.registry.get() {
            Metrics::inc(&m.layer_errors, reason);
        }
    }
    /// Counts a successful reconnect.
    pub(crate) fn reconnect(&self) {
        if let Some(m) = self.registry.get() {
            m.layer_reconnects.inc();
        }
    }
}

/// Exponential backoff with jitter between reconnect attempts: 100 ms doubling to 1 s. Every
/// second away from the broker is a second of lost notifications, and an attempt against a host
/// that is down costs it a refused SYN: the cap was 5 s, which kept courier away for 3.8 s after a
/// 3 s outage (scripts/broker-failover.sh); at 1 s a fleet of even a thousand processes asks a
/// recovering Redis for 1000 connections a second, well within what it takes.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(1);

    /// Starts at the minimum.
    pub(crate) fn new() -> Self {
        Self { next: Self::MIN }
    }
    /// After a success: the next failure retries quickly again.
    pub(crate) fn reset(&mut self) {
        self.next = Self::MIN;
    }
    /// Sleeps for the current delay (±25 % jitter, so a fleet does not reconnect in lockstep), then
    /// doubles it. Returns `false` if `cancel` fired first.
    pub(crate) async fn wait(&mut self, cancel: &CancellationToken) -> bool {
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
pub(crate) fn send_resync<'a>(
    inbound: Option<&Inbound>,
    groups: impl IntoIterator<Item = &'a GroupName>,
) {
    let Some(inbound) = inbound else { return };
    let message = resync_message();
    for group in groups {
        inbound(group, &message);
    }
}

/// Now as float seconds since the epoch, like Python's `time.time()` (channels_redis scores).
pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Opens a client for `url`, mapping the error into the crate's. The URL is not echoed: it may
/// carry a password.
pub(crate) fn client(url: &str) -> crate::Result<redis::Client> {
    redis::Client::open(url).map_err(|e| crate::Error::Config(format!("--redis-url: {e}")))
}

/// One client per host, in `hosts` order.
pub(crate) fn clients(urls: &[String]) -> crate::Result<Vec<redis::Client>> {
    urls.iter().map(|u| client(u)).collect()
}

/// A multiplexed connection with bounded connect and response times. `response` must exceed any
/// blocking command's own timeout sent on it.
pub(crate) async fn connect(
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
pub(crate) fn publisher(client: &redis::Client) -> crate::Result<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    client
        .get_connection_manager_lazy(config)
        .map_err(crate::Error::layer)
}

/// The one reconnect-with-backoff loop of every Redis task, as an iterator of connections:
///
/// ```text
/// let mut link = Reconnect::new("task", host, &metrics, &stop);
/// while let Some((conn, resumed)) = link.next(|| connect()).await {
///     match session(conn, resumed).await { Ok(()) => return, Err(e) => link.lost(&e) }
/// }
/// ```
///
/// [`next`](Self::next) connects (bounded by [`CONNECT_TIMEOUT`]), backing off between attempts,
/// and yields `None` once `stop` fires. `resumed` is `true` for every connection after the first
/// attempt: messages may have been lost and Redis may have forgotten us, the cue to re-register
/// and resync. The loop body stays in the caller, so its session can borrow the task's state.
pub(crate) struct Reconnect<'a> {
    task: &'static str,
    host: usize,
    metrics: &'a LayerMetrics,
    stop: &'a CancellationToken,
    backoff: Backoff,
    tried: bool,
    /// This task counts its host as down (see [`LayerMetrics`]).
    failing: bool,
}

impl<'a> Reconnect<'a> {
    /// The loop of `task` (for logs) on host number `host`, counting into `metrics`.
    pub(crate) fn new(
        task: &'static str,
        host: usize,
        metrics: &'a LayerMetrics,
        stop: &'a CancellationToken,
    ) -> Self {
        Self {
            task,
            host,
            metrics,
            stop,
            backoff: Backoff::new(),
            tried: false,
            failing: false,
        }
    }

    /// The next connection and whether it is resumed; `None` when the layer stops.
    pub(crate) async fn next<C, Connecting>(
        &mut self,
        mut connect: impl FnMut() -> Connecting,
    ) -> Option<(C, bool)>
    where
        Connecting: Future<Output = redis::RedisResult<C>>,
    {
        let (task, host) = (self.task, self.host);
        loop {
            let resumed = self.tried;
            if resumed && !self.backoff.wait(self.stop).await {
                return None;
            }
            self.tried = true;
            let attempt = tokio::select! {
                _ = self.stop.cancelled() => return None,
                r = tokio::time::timeout(CONNECT_TIMEOUT, connect()) => r,
            };
            match attempt {
                Ok(Ok(conn)) => {
                    if resumed {
                        self.metrics.reconnect();
                    }
                    self.set_failing(false);
                    self.backoff.reset();
                    return Some((conn, resumed));
                }
                Ok(Err(e)) => tracing::warn!(host, error = %e, "{task}: cannot connect; retrying"),
                Err(_) => tracing::warn!(host, "{task}: connect timed out; retrying"),
            }
            self.set_failing(true);
        }
    }

    fn set_failing(&mut self, failing: bool) {
        if failing != self.failing {
            self.failing = failing;
            if failing {
                self.metrics.task_down(self.host);
            } else {
                self.metrics.task_up(self.host);
            }
        }
    }

    /// The session on the last connection broke with `e`: counted and logged.
    pub(crate) fn lost(&mut self, e: &redis::RedisError) {
        self.set_failing(true);
        self.metrics.error("disconnect");
        let (task, host) = (self.task, self.host);
        tracing::warn!(host, error = %e, "{task}: connection lost; reconnecting");
    }
}

/// An I/O-kind Redis error for a connection we gave up on (a deadline passed, the stream ended).
pub(crate) fn broken(what: &'static str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::BrokenPipe, what))
}
