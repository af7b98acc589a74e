//! [`Sender`]: channels_redis `group_send` for a batch, pipelined per host.
//!
//! pub/sub: one `PUBLISH` per message on its channel's host, one pipeline per host, all hosts at
//! once (one round trip). core: round trip 1 prunes and reads every distinct group ZSET on its host;
//! round trip 2 prunes every inbox and runs the script once per message and inbox host, in batch
//! order, so a batch keeps its order in every inbox (the scores increase). Hosts run concurrently.

use std::collections::{HashMap, HashSet};

use futures::future::try_join_all;
use redis::aio::ConnectionManager;
use redis::Script;

mod history;

use super::codec::Codec;
use super::{Inbox, Names, GROUP_SEND_LUA, RANDOM_PREFIX};
use crate::config::{LayerKind, RedisConfig};
use crate::error::{Error, Result};
use crate::layer::redis::conn;
use crate::layer::{GroupMessage, GroupName};

/// Groups per `listening` round trip.
const LISTEN_CHUNK: usize = 1000;
/// Smallest score step between two messages of one batch, so a batch keeps its order in an inbox
/// (an f64 of unix seconds resolves ~0.24 µs; equal scores would order by the random prefix).
const SCORE_STEP: f64 = 1e-6;

/// One message of a batch, borrowed.
type Item<'a> = (&'a GroupName, &'a GroupMessage);

/// Which channels_redis layer's format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `RedisPubSubChannelLayer`.
    PubSub,
    /// `RedisChannelLayer`.
    Core,
}

impl Flavor {
    /// The flavor of a channels_redis-compatible layer; `None` for memory and redis-cluster.
    pub(crate) fn of(layer: LayerKind) -> Option<Self> {
        match layer {
            LayerKind::RedisPubsub => Some(Self::PubSub),
            LayerKind::RedisCore => Some(Self::Core),
            LayerKind::Memory | LayerKind::RedisCluster => None,
        }
    }
}

/// Writes group messages the way channels_redis does, over every host of `hosts`.
pub(crate) struct Sender {
    flavor: Flavor,
    names: Names,
    /// One publishing connection per host, in `hosts` order; each reconnects by itself.
    conns: Vec<ConnectionManager>,
    codec: Codec,
    capacity: usize,
    group_expiry_secs: u64,
    expiry_secs: u64,
    script: Script,
    /// User-stream history, written by the layer's own publishes (never set for the tester's
    /// Django emulation, which writes what channels_redis writes and nothing else).
    history: Option<Box<history::HistoryWriter>>,
}

impl Sender {
    /// A sender in `flavor`'s format to `config`'s hosts and prefix. Connects lazily; must run
    /// inside a Tokio runtime.
    pub(crate) fn new(flavor: Flavor, config: &RedisConfig) -> Result<Self> {
        let conns = config
            .urls
            .iter()
            .map(|url| conn::publisher(&conn::client(url)?))
            .collect::<Result<Vec<_>>>()?;
        let random_prefix = if flavor == Flavor::Core {
            RANDOM_PREFIX
        } else {
            0
        };
        Ok(Self {
            flavor,
            names: Names::new(&config.prefix, conns.len()),
            conns,
            codec: Codec::new(config.format, &config.symmetric_keys, random_prefix),
            capacity: config.capacity,
            group_expiry_secs: config.group_expiry.as_secs().max(2),
            expiry_secs: config.expiry.as_secs().max(1),
            script: Script::new(GROUP_SEND_LUA),
            history: None,
        })
    }

    /// The names (and host selection) this sender writes with.
    pub(crate) fn names(&self) -> &Names {
        &self.names
    }

    /// The payload codec.
    pub(crate) fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The host a group's messages are written to first: its channel (pub/sub) or ZSET (core).
    pub(crate) fn host_of(&self, group: &GroupName) -> usize {
        match self.flavor {
            Flavor::PubSub => self.names.pubsub_host(group),
            Flavor::Core => self.names.group_host(group),
        }
    }

    /// `group_send(group, message)` for every item, in order. Returns how many messages the core
    /// layer's script dropped because an inbox was at `capacity` (as Django would, silently).
    pub(crate) async fn send_many(&self, items: &[(GroupName, GroupMessage)]) -> Result<u64> {
        let items: Vec<Item<'_>> = items.iter().map(|(g, m)| (g, m)).collect();
        self.send(&items).await
    }

    /// `group_send(group, message)`: [`send_many`](Self::send_many) of one, without copying it.
    pub(crate) async fn send_one(&self, group: &GroupName, message: &GroupMessage) -> Result<u64> {
        self.send(&[(group, message)]).await
    }

    async fn send(&self, items: &[Item<'_>]) -> Result<u64> {
        match self.flavor {
            Flavor::PubSub => self.publish_many(items).await.map(|()| 0),
            Flavor::Core => self.core_send_many(items).await,
        }
    }

    /// How many of `groups` have at least one listener: a subscriber (pub/sub) or a member (core).
    pub(crate) async fn listening(&self, groups: &[GroupName]) -> Result<usize> {
        let mut by_host: Vec<Vec<&GroupName>> = vec![Vec::new(); self.conns.len()];
        for g in groups {
            by_host[self.host_of(g)].push(g);
        }
        let counts = by_host
            .iter()
            .enumerate()
            .map(|(host, groups)| self.listening_on(host, groups));
        Ok(try_join_all(counts).await?.into_iter().sum())
    }

    async fn listening_on(&self, host: usize, groups: &[&GroupName]) -> Result<usize> {
        let mut conn = self.conns[host].clone();
        let mut n = 0;
        for chunk in groups.chunks(LISTEN_CHUNK) {
            let counts: Vec<i64> = match self.flavor {
                Flavor::PubSub => {
                    let mut cmd = redis::cmd("PUBSUB");
                    cmd.arg("NUMSUB");
                    for g in chunk {
                        cmd.arg(self.names.group_channel(g));
                    }
                    let pairs: Vec<(String, i64)> =
                        cmd.query_async(&mut conn).await.map_err(Error::layer)?;
                    pairs.into_iter().map(|(_, c)| c).collect()
                }
                Flavor::Core => {
                    let mut pipe = redis::pipe();
                    for g in chunk {
                        pipe.zcard(self.names.group_key(g));
                    }
                    pipe.query_async(&mut conn).await.map_err(Error::layer)?
                }
            };
            n += counts.iter().filter(|c| **c > 0).count();
        }
        Ok(n)
    }

    /// One PUBLISH per message on its channel's host; one pipeline per host, hosts concurrently.
    /// With history, a user stream's event is published by the history script instead (offset,
    /// append, trim, `PUBLISH` of its position note and of the event itself, in one step).
    async fn publish_many(&self, items: &[Item<'_>]) -> Result<()> {
        let mut pipes: Vec<Option<redis::Pipeline>> = vec![None; self.conns.len()];
        for (group, message) in items {
            let payload = self.codec.encode(message).map_err(Error::layer)?;
            let channel = self.names.group_channel(group);
            let pipe = pipes[self.names.pubsub_host(group)].get_or_insert_with(|| {
                let mut pipe = redis::pipe();
                if let Some(h) = &self.history {
                    pipe.load_script(&h.publish).ignore();
                }
                pipe
            });
            match &self.history {
                Some(h) if group.is_user_stream() => {
                    let mut call = h.publish.prepare_invoke();
                    call.key(self.names.history_meta_key(group))
                        .key(self.names.history_stream_key(group))
                        .arg(channel)
                        .arg(payload)
                        .arg(h.size)
                        .arg(h.ttl_ms)
                        .arg(h.meta_ttl_ms)
                        .arg(h.stream_bytes)
                        .arg(&*crate::history::new_epoch())
                        .arg(self.names.note_channel(group));
                    pipe.invoke_script(&call).ignore();
                }
                _ => {
                    pipe.publish(channel, payload).ignore();
                }
            }
        }
        self.run_all(pipes).await.map(drop)
    }

    /// channels_redis `group_send` per item, two round trips for the whole batch.
    async fn core_send_many(&self, items: &[Item<'_>]) -> Result<u64> {
        let members = self.read_groups(items).await?;
        let now = super::now_secs();
        let mut pipes: Vec<Option<redis::Pipeline>> = vec![None; self.conns.len()];
        let mut pruned = HashSet::new();
        for inbox in members.values().flatten() {
            if pruned.insert(inbox.key.as_str()) {
                pipe_for(
                    &mut pipes,
                    inbox.host,
                    &self.script,
                    self.history.as_deref(),
                )
                .zrembyscore(&inbox.key, 0, now as i64 - self.expiry_secs as i64)
                .ignore();
            }
        }
        let mut score = now;
        let none = Vec::new();
        for (group, message) in items {
            // A user stream is recorded whether or not anyone listens now.
            let history = self.history.as_deref().filter(|_| group.is_user_stream());
            let targets = members.get(*group).unwrap_or(&none);
            if targets.is_empty() && history.is_none() {
                continue; // nobody listens: not an error, like Django
            }
            score = super::now_secs().max(score + SCORE_STEP);
            // channels_redis runs the script once per inbox host, over that host's inboxes.
            for host in 0..self.conns.len() {
                let on_host: Vec<&Inbox> = targets.iter().filter(|i| i.host == host).collect();
                if let Some(h) = history.filter(|_| host == self.names.group_host(group)) {
                    let call = self.core_numbered(h, group, message, &on_host, score)?;
                    pipe_for(&mut pipes, host, &self.script, Some(h)).invoke_script(&call);
                    continue;
                }
                if on_host.is_empty() {
                    continue;
                }
                let mut invocation = self.script.prepare_invoke();
                for inbox in &on_host {
                    invocation.key(&inbox.key);
                }
                for inbox in &on_host {
                    let mut with_channel = (*message).clone();
                    with_channel.insert("__asgi_channel__".into(), inbox.channels.clone().into());
                    invocation.arg(self.codec.encode(&with_channel).map_err(Error::layer)?);
                }
                for _ in &on_host {
                    invocation.arg(self.capacity);
                }
                invocation.arg(score).arg(self.expiry_secs);
                pipe_for(&mut pipes, host, &self.script, self.history.as_deref())
                    .invoke_script(&invocation);
            }
        }
        let replies = self.run_all(pipes).await?;
        let over = replies.iter().flatten().filter_map(|v| match v {
            redis::Value::Int(n) => Some((*n).max(0) as u64),
            // The numbered script's `{offset, epoch, over}`.
            redis::Value::Array(a) => match a.get(2) {
                Some(redis::Value::Int(n)) => Some((*n).max(0) as u64),
                _ => None,
            },
            _ => None,
        });
        Ok(over.sum())
    }

    /// Round trip 1: prune and read every distinct group of `items` on its host, concurrently.
    async fn read_groups(&self, items: &[Item<'_>]) -> Result<HashMap<GroupName, Vec<Inbox>>> {
        let now = super::now_secs();
        let mut by_host: Vec<Vec<&GroupName>> = vec![Vec::new(); self.conns.len()];
        let mut seen = HashSet::new();
        for &(group, _) in items {
            if seen.insert(group) {
                by_host[self.names.group_host(group)].push(group);
            }
        }
        let reads = by_host.iter().enumerate().map(|(host, groups)| async move {
            if groups.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for g in groups {
                let key = self.names.group_key(g);
                pipe.zrembyscore(&key, 0, now as i64 - self.group_expiry_secs as i64)
                    .ignore()
                    .zrange(&key, 0, -1);
            }
            let mut conn = self.conns[host].clone();
            pipe.query_async::<Vec<Vec<String>>>(&mut conn)
                .await
                .map_err(Error::layer)
        });
        let lists = try_join_all(reads).await?;
        let mut members = HashMap::new();
        for (groups, lists) in by_host.iter().zip(lists) {
            for (g, channels) in groups.iter().zip(lists) {
                members.insert((*g).clone(), self.names.inboxes_of(channels));
            }
        }
        Ok(members)
    }

    /// Runs each host's pipeline (if any) on that host, all at once; every reply, by host.
    async fn run_all(&self, pipes: Vec<Option<redis::Pipeline>>) -> Result<Vec<Vec<redis::Value>>> {
        let runs = pipes
            .into_iter()
            .enumerate()
            .map(|(host, pipe)| async move {
                let Some(pipe) = pipe else {
                    return Ok(Vec::new());
                };
                let mut conn = self.conns[host].clone();
                pipe.query_async::<Vec<redis::Value>>(&mut conn)
                    .await
                    .map_err(Error::layer)
            });
        try_join_all(runs).await
    }
}

/// The host's pipeline, started with `SCRIPT LOAD` so the `EVALSHA`s after it always find it
/// (the numbered script too, when history is kept).
fn pipe_for<'a>(
    pipes: &'a mut [Option<redis::Pipeline>],
    host: usize,
    script: &Script,
    history: Option<&history::HistoryWriter>,
) -> &'a mut redis::Pipeline {
    pipes[host].get_or_insert_with(|| {
        let mut pipe = redis::pipe();
        pipe.load_script(script).ignore();
        if let Some(h) = history {
            pipe.load_script(&h.core_publish).ignore();
        }
        pipe
    })
}
