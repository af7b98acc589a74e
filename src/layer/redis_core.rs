//! `RedisCoreLayer`: wire-compatible with channels_redis's `RedisChannelLayer` (Django's default).
//!
//! channels_redis 4.3 keeps groups in Redis (PROTOCOL.md §5): ZSET `{prefix}:group:{group}` holds
//! channel names scored by join time; `group_send` runs a Lua script that ZADDs one message per
//! *inbox* (`{prefix}specific.{client_prefix}!`) listing that inbox's channels in
//! `__asgi_channel__`, unless the inbox already holds `capacity` messages (then it drops silently).
//!
//! courier registers one channel per *local group* (the hub owns connections), named
//! `specific.{client_prefix}!{group}` so routing needs no table, and spreads groups over
//! `core_inboxes` client prefixes: Django's capacity of 100 then applies per inbox, not per process.
//!
//! Two tasks: the registrar ([`registrar`]) mirrors the hub's wishes into the group ZSETs and
//! refreshes them; the drainer ([`drainer`]) pops every inbox with BZPOPMIN plus batched ZPOPMIN on
//! its own connection. A popped message is never cancelled mid-flight: the blocking pop lives alone
//! in its task. When the drainer comes back after a failure (Redis restarted and lost our
//! memberships, perhaps), the registrar re-registers everything and sends each group a `resync`.

mod drainer;
mod registrar;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use redis::Script;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::codec::Codec;
use super::redis_support::{self as support, LayerMetrics, Wishes};
use super::{ChannelLayer, GroupMessage, GroupName, Inbound};
use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// channels_redis's `random_prefix_length`: keeps equal messages distinct ZSET members.
pub(super) const RANDOM_PREFIX: usize = 12;

/// The channels_redis 4.3 `group_send` script, verbatim, so capacity is checked atomically.
pub(super) const GROUP_SEND_LUA: &str = r"
    local over_capacity = 0
    local current_time = ARGV[#ARGV - 1]
    local expiry = ARGV[#ARGV]
    for i=1,#KEYS do
        if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
            redis.call('ZADD', KEYS[i], current_time, ARGV[i])
            redis.call('EXPIRE', KEYS[i], expiry)
        else
            over_capacity = over_capacity + 1
        end
    end
    return over_capacity
";

/// Scope: every process (courier or Django with channels_redis's core layer) on one Redis with the
/// same prefix. At-most-once: a full inbox drops, and so does a message whose inbox expired.
pub struct RedisCoreLayer {
    shared: Arc<Shared>,
    publisher: redis::aio::ConnectionManager,
    script: Script,
    /// The registrar, awaited by [`close`](ChannelLayer::close) while it removes memberships.
    registrar: Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

struct Shared {
    prefix: String,
    /// One uuid4 hex per inbox, like channels_redis's `client_prefix`.
    client_prefixes: Vec<String>,
    codec: Codec,
    capacity: usize,
    group_expiry_secs: u64,
    expiry_secs: u64,
    inbound: OnceLock<Inbound>,
    metrics: LayerMetrics,
    wishes: Wishes,
    /// Set by the drainer after it reconnected: memberships may be gone, clients may have missed
    /// messages. The registrar re-registers and resyncs, then clears it.
    resync_wanted: AtomicBool,
    resync_notify: Notify,
}

impl Shared {
    /// `{prefix}:group:{group}`.
    fn group_key(&self, group: &str) -> String {
        format!("{}:group:{group}", self.prefix)
    }

    /// The inbox a group's channel lives in: a stable (FNV-1a) hash, so ZADD and ZREM agree.
    fn inbox_of(&self, group: &GroupName) -> usize {
        let hash = group
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        (hash % self.client_prefixes.len() as u64) as usize
    }

    /// `specific.{client_prefix}!{group}`: this process's channel for `group`.
    fn channel_of(&self, group: &GroupName) -> String {
        format!(
            "specific.{}!{group}",
            self.client_prefixes[self.inbox_of(group)]
        )
    }

    /// `{prefix}specific.{client_prefix}!` for every inbox.
    fn inbox_keys(&self) -> Vec<String> {
        self.client_prefixes
            .iter()
            .map(|cp| format!("{}specific.{cp}!", self.prefix))
            .collect()
    }

    /// The local group a channel name addresses, if it is one of ours.
    fn group_of_channel(&self, channel: &str) -> Option<GroupName> {
        let rest = channel.strip_prefix("specific.")?;
        let (client_prefix, group) = rest.split_once('!')?;
        self.client_prefixes
            .iter()
            .any(|cp| cp == client_prefix)
            .then_some(())?;
        GroupName::new(group)
    }
}

impl RedisCoreLayer {
    /// Starts the registrar and drainer tasks. Does not wait for Redis (retried with backoff).
    pub fn start(config: &RedisConfig) -> Result<Self> {
        let client = support::client(&config.url)?;
        let publisher = support::publisher(&client)?;
        let shared = Arc::new(Shared {
            prefix: config.prefix.clone(),
            client_prefixes: (0..config.core_inboxes.max(1))
                .map(|_| uuid::Uuid::new_v4().simple().to_string())
                .collect(),
            codec: Codec::new(config.format, &config.symmetric_keys, RANDOM_PREFIX),
            capacity: config.capacity,
            group_expiry_secs: config.group_expiry.as_secs().max(2),
            expiry_secs: config.expiry.as_secs().max(1),
            inbound: OnceLock::new(),
            metrics: LayerMetrics::default(),
            wishes: Wishes::default(),
            resync_wanted: AtomicBool::new(false),
            resync_notify: Notify::new(),
        });
        let stop = CancellationToken::new();
        let registrar = tokio::spawn(registrar::run(shared.clone(), client.clone(), stop.clone()));
        tokio::spawn(drainer::run(shared.clone(), client, stop.clone()));
        Ok(Self {
            shared,
            publisher,
            script: Script::new(GROUP_SEND_LUA),
            registrar: Mutex::new(Some(registrar)),
            stop: stop.clone(),
            _stop_on_drop: stop.drop_guard(),
        })
    }

    /// channels_redis `group_send`: prune stale members, read the group, one message per inbox.
    async fn group_send(
        &self,
        group: &GroupName,
        message: &GroupMessage,
    ) -> redis::RedisResult<()> {
        let s = &self.shared;
        let key = s.group_key(group.as_str());
        let now = support::now_secs();
        let mut conn = self.publisher.clone();
        let (channels,): (Vec<String>,) = redis::pipe()
            .zrembyscore(&key, 0, now as i64 - s.group_expiry_secs as i64)
            .ignore()
            .zrange(&key, 0, -1)
            .query_async(&mut conn)
            .await?;
        if channels.is_empty() {
            return Ok(());
        }
        let inboxes = inboxes_of(&s.prefix, channels);
        let mut prune = redis::pipe();
        let mut invocation = self.script.prepare_invoke();
        let mut payloads = Vec::with_capacity(inboxes.len());
        for (inbox, list) in &inboxes {
            prune
                .zrembyscore(inbox, 0, now as i64 - s.expiry_secs as i64)
                .ignore();
            let mut with_channel = message.clone();
            with_channel.insert("__asgi_channel__".into(), list.clone().into());
            let payload = s.codec.encode(&with_channel).map_err(|e| {
                redis::RedisError::from((redis::ErrorKind::Client, "encode", e.to_string()))
            })?;
            payloads.push(payload);
            invocation.key(inbox);
        }
        let () = prune.query_async(&mut conn).await?;
        for payload in &payloads {
            invocation.arg(payload.as_slice());
        }
        for _ in &inboxes {
            invocation.arg(s.capacity);
        }
        invocation.arg(now).arg(s.expiry_secs);
        let over: i64 = invocation.invoke_async(&mut conn).await?;
        if over > 0 {
            tracing::info!(%group, over, inboxes = inboxes.len(), "redis-core: inboxes over capacity; dropped");
        }
        Ok(())
    }
}

/// Inbox key → the channels it serves, in ZRANGE order (like `_map_channel_keys_to_connection`).
pub(super) fn inboxes_of(prefix: &str, channels: Vec<String>) -> Vec<(String, Vec<String>)> {
    let mut inboxes: Vec<(String, Vec<String>)> = Vec::new();
    for channel in channels {
        let non_local = match channel.find('!') {
            Some(i) => &channel[..=i],
            None => channel.as_str(),
        };
        let inbox = format!("{prefix}{non_local}");
        match inboxes.iter_mut().find(|(k, _)| *k == inbox) {
            Some((_, list)) => list.push(channel),
            None => inboxes.push((inbox, vec![channel])),
        }
    }
    inboxes
}

impl ChannelLayer for RedisCoreLayer {
    fn name(&self) -> &'static str {
        "redis-core"
    }

    fn attach(&self, inbound: Inbound) {
        let _ = self.shared.inbound.set(inbound);
    }

    fn attach_metrics(&self, metrics: Arc<Metrics>) {
        self.shared.metrics.attach(metrics);
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop.cancel();
            let handle = self
                .registrar
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(handle) = handle {
                // The registrar bounds its own cleanup; this only guards against a stuck task.
                let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
            }
        })
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
            self.group_send(group, message).await.map_err(|e| {
                self.shared.metrics.error("publish");
                Error::Layer(e.to_string())
            })
        })
    }
}
