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
//! # Many hosts
//! channels_redis puts a group's ZSET on `hash(group)` and an inbox on `hash("specific.{cp}!")`
//! (`wire`). courier draws its client prefixes so that every host holds some of its
//! inboxes, and gives each group an inbox *on the group's own host*: a group then depends on one
//! host only, and a host that is down stops exactly the groups on it.
//!
//! Two tasks per host: the registrar (`registrar`) mirrors the hub's wishes for that host's
//! groups into their ZSETs and refreshes them; the drainer (`drainer`) pops that host's inboxes
//! with BZPOPMIN plus batched ZPOPMIN on its own connection. A popped message is never cancelled
//! mid-flight: the blocking pop lives alone in its task. When a drainer comes back after a failure
//! (Redis restarted and lost our memberships, perhaps), its host's registrar re-registers that
//! host's groups and sends each a `resync`.

mod drainer;
mod registrar;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::conn;
use super::health::LayerMetrics;
use super::wire::send::{Flavor, Sender};
use super::wire::{consistent_hash, Names};
use super::wishes::Wishes;
use crate::config::{HistoryConfig, RedisConfig};
use crate::error::Result;
use crate::layer::{ChannelLayer, GroupMessage, GroupName, Inbound, StreamHistory};
use crate::metrics::Metrics;

/// Bound on drawing client prefixes until every host has its share (each draw lands on a given
/// host with probability 1/hosts, so this is never reached in practice).
const MAX_DRAWS: usize = 1_000_000;

/// Scope: every process (courier or Django with channels_redis's core layer) on the same hosts
/// (same order) with the same prefix. At-most-once: a full inbox drops, and so does a message
/// whose inbox expired.
pub struct RedisCoreLayer {
    shared: Arc<Shared>,
    /// The registrars, awaited by [`close`](ChannelLayer::close) while they remove memberships.
    registrars: Mutex<Vec<JoinHandle<()>>>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

struct Shared {
    names: Names,
    /// One uuid4 hex per inbox, like channels_redis's `client_prefix`.
    client_prefixes: Vec<String>,
    /// Indexes into `client_prefixes` of the inboxes each host holds.
    inboxes_by_host: Vec<Vec<usize>>,
    /// Publishes, and holds the codec the drainers decode with.
    sender: Sender,
    group_expiry_secs: u64,
    inbound: OnceLock<Inbound>,
    metrics: LayerMetrics,
    hosts: Vec<HostState>,
}

/// What one host's registrar and drainer share.
#[derive(Default)]
struct HostState {
    /// What the hub wants registered among this host's groups.
    wishes: Wishes,
    /// Set by the drainer after it reconnected: memberships may be gone, clients may have missed
    /// messages. The registrar re-registers and resyncs, then clears it.
    resync_wanted: AtomicBool,
    resync_notify: Notify,
}

impl Shared {
    /// `{prefix}:group:{group}`.
    fn group_key(&self, group: &GroupName) -> String {
        self.names.group_key(group)
    }

    /// The inbox a group's channel lives in: one on the group's own host, picked by a stable
    /// (FNV-1a) hash, so ZADD and ZREM agree.
    fn inbox_of(&self, group: &GroupName) -> usize {
        let on_host = &self.inboxes_by_host[self.names.group_host(group)];
        let hash = group
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        on_host[(hash % on_host.len() as u64) as usize]
    }

    /// `specific.{client_prefix}!{group}`: this process's channel for `group`.
    fn channel_of(&self, group: &GroupName) -> String {
        format!(
            "specific.{}!{group}",
            self.client_prefixes[self.inbox_of(group)]
        )
    }

    /// `{prefix}specific.{client_prefix}!` for every inbox on `host`.
    fn inbox_keys(&self, host: usize) -> Vec<String> {
        self.inboxes_by_host[host]
            .iter()
            .map(|&i| {
                format!(
                    "{}specific.{}!",
                    self.names.prefix(),
                    self.client_prefixes[i]
                )
            })
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

/// Draws `max(inboxes, hosts)` client prefixes, spread evenly over the hosts by channels_redis's
/// hash of `specific.{cp}!`: returns them and, per host, which of them it holds.
fn draw_client_prefixes(inboxes: usize, hosts: usize) -> (Vec<String>, Vec<Vec<usize>>) {
    let per_host = inboxes.div_ceil(hosts).max(1);
    let mut prefixes = Vec::with_capacity(per_host * hosts);
    let mut by_host = vec![Vec::with_capacity(per_host); hosts];
    for _ in 0..MAX_DRAWS {
        if by_host.iter().all(|h| h.len() >= per_host) {
            break;
        }
        let cp = uuid::Uuid::new_v4().simple().to_string();
        let host = consistent_hash(format!("specific.{cp}!").as_bytes(), hosts);
        if by_host[host].len() < per_host {
            by_host[host].push(prefixes.len());
            prefixes.push(cp);
        }
    }
    (prefixes, by_host)
}

impl RedisCoreLayer {
    /// Starts a registrar and a drainer per host. Does not wait for Redis (retried with backoff).
    pub fn start(config: &RedisConfig) -> Result<Self> {
        Self::start_with_history(config, None)
    }

    /// [`start`](Self::start), keeping user-stream history in Redis within `history`'s bounds:
    /// courier's publishes number each user's events and keep them, and the members written to
    /// courier's own inboxes carry the position (Django's inboxes get channels_redis's bytes).
    pub fn start_with_history(
        config: &RedisConfig,
        history: Option<&HistoryConfig>,
    ) -> Result<Self> {
        let clients = conn::clients(&config.urls)?;
        let mut sender = Sender::new(Flavor::Core, config)?;
        if let Some(bounds) = history {
            sender = sender.with_history(bounds);
        }
        let (client_prefixes, inboxes_by_host) =
            draw_client_prefixes(config.core_inboxes.max(1), clients.len());
        let shared = Arc::new(Shared {
            names: sender.names().clone(),
            client_prefixes,
            inboxes_by_host,
            sender,
            group_expiry_secs: config.group_expiry.as_secs().max(2),
            inbound: OnceLock::new(),
            metrics: LayerMetrics::new(clients.len()),
            hosts: clients.iter().map(|_| HostState::default()).collect(),
        });
        let stop = CancellationToken::new();
        let mut registrars = Vec::with_capacity(clients.len());
        for (host, client) in clients.into_iter().enumerate() {
            let registrar = registrar::run(shared.clone(), host, client.clone(), stop.clone());
            registrars.push(tokio::spawn(registrar));
            tokio::spawn(drainer::run(shared.clone(), host, client, stop.clone()));
        }
        Ok(Self {
            shared,
            registrars: Mutex::new(registrars),
            stop: stop.clone(),
            _stop_on_drop: stop.drop_guard(),
        })
    }

    fn host_state(&self, group: &GroupName) -> &HostState {
        &self.shared.hosts[self.shared.names.group_host(group)]
    }

    /// Counts failed publishes and logs what the script dropped at capacity (Django is silent).
    fn counted(&self, sent: Result<u64>, items: usize) -> Result<()> {
        match sent {
            Ok(0) => Ok(()),
            Ok(over) => {
                tracing::info!(over, items, "redis-core: inboxes over capacity; dropped");
                Ok(())
            }
            Err(e) => {
                self.shared.metrics.error("publish");
                Err(e)
            }
        }
    }
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
            let handles =
                std::mem::take(&mut *self.registrars.lock().unwrap_or_else(|p| p.into_inner()));
            // The registrars bound their own cleanup; this only guards against a stuck task.
            let all = futures::future::join_all(handles);
            let _ = tokio::time::timeout(Duration::from_secs(5), all).await;
        })
    }

    fn keeps_history(&self) -> bool {
        self.shared.sender.keeps_history()
    }

    fn read_stream<'a>(
        &'a self,
        group: &'a GroupName,
        after: Option<u64>,
    ) -> BoxFuture<'a, Result<StreamHistory>> {
        Box::pin(self.shared.sender.read_stream(group, after))
    }

    /// Live once the group's membership is registered: every `group_send` after that writes to
    /// our inbox.
    fn subscription_live<'a>(&'a self, group: &'a GroupName) -> BoxFuture<'a, ()> {
        Box::pin(self.host_state(group).wishes.live(group))
    }

    fn subscribe(&self, group: &GroupName) {
        self.host_state(group).wishes.set(group, true);
    }

    fn unsubscribe(&self, group: &GroupName) {
        self.host_state(group).wishes.set(group, false);
    }

    fn publish<'a>(
        &'a self,
        group: &'a GroupName,
        message: &'a GroupMessage,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.counted(self.shared.sender.send_one(group, message).await, 1) })
    }

    fn publish_many<'a>(
        &'a self,
        items: &'a [(GroupName, GroupMessage)],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(
            async move { self.counted(self.shared.sender.send_many(items).await, items.len()) },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_prefixes_cover_every_host_evenly() {
        for hosts in [1, 2, 3, 5] {
            let (prefixes, by_host) = draw_client_prefixes(8, hosts);
            assert_eq!(by_host.len(), hosts);
            for (host, list) in by_host.iter().enumerate() {
                assert_eq!(list.len(), 8usize.div_ceil(hosts));
                for &i in list {
                    let name = format!("specific.{}!", prefixes[i]);
                    assert_eq!(consistent_hash(name.as_bytes(), hosts), host);
                }
            }
        }
    }
}
