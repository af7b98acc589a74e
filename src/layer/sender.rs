//! [`GroupSender`]: channels_redis `group_send` for many messages at once, outside a server.
//!
//! It writes exactly what Django's `channel_layer.group_send` writes (PROTOCOL.md §5), with the
//! layers' own codec, script and inbox mapping, but pipelines a whole batch into a fixed number of
//! round trips (pub/sub: one; core: two) so a publisher of millions of events (the loadtest's
//! Redis publishers) is not bound by Redis latency. It starts no task and joins no group.

use std::collections::{HashMap, HashSet};

use redis::Script;

use super::codec::Codec;
use super::redis_core::{inboxes_of, GROUP_SEND_LUA, RANDOM_PREFIX};
use super::redis_support as support;
use super::{GroupMessage, GroupName};
use crate::config::{LayerKind, RedisConfig};
use crate::error::{Error, Result};

/// Groups per `listening` round trip.
const LISTEN_CHUNK: usize = 1000;
/// Smallest score step between two messages of one batch, so a batch keeps its order in an inbox
/// (an f64 of unix seconds resolves ~0.24 µs; equal scores would order by the random prefix).
const SCORE_STEP: f64 = 1e-6;

/// Which channels_redis layer's wire format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    PubSub,
    Core,
}

/// Sends group messages the way channels_redis does, batched.
pub struct GroupSender {
    wire: Wire,
    conn: redis::aio::ConnectionManager,
    prefix: String,
    codec: Codec,
    capacity: usize,
    group_expiry_secs: u64,
    expiry_secs: u64,
    script: Script,
}

impl GroupSender {
    /// A sender in `layer`'s format (`redis-pubsub` or `redis-core`) to `config`'s Redis and prefix.
    /// Connects lazily. Must run inside a Tokio runtime.
    pub fn new(layer: LayerKind, config: &RedisConfig) -> Result<Self> {
        let wire = match layer {
            LayerKind::RedisPubsub => Wire::PubSub,
            LayerKind::RedisCore => Wire::Core,
            LayerKind::Memory => {
                return Err(Error::Config("the memory layer has no wire format".into()))
            }
        };
        let client = support::client(&config.url)?;
        let random_prefix = if wire == Wire::Core { RANDOM_PREFIX } else { 0 };
        Ok(Self {
            wire,
            conn: support::publisher(&client)?,
            prefix: config.prefix.clone(),
            codec: Codec::new(config.format, &config.symmetric_keys, random_prefix),
            capacity: config.capacity,
            group_expiry_secs: config.group_expiry.as_secs().max(2),
            expiry_secs: config.expiry.as_secs().max(1),
            script: Script::new(GROUP_SEND_LUA),
        })
    }

    /// `group_send(group, message)` for every item, in order. Returns how many messages the core
    /// layer's script dropped because an inbox was at `capacity` (as Django would, silently).
    pub async fn send_many(&self, items: &[(GroupName, GroupMessage)]) -> Result<u64> {
        let sent = match self.wire {
            Wire::PubSub => self.publish_many(items).await.map(|()| 0),
            Wire::Core => self.core_send_many(items).await,
        };
        sent.map_err(|e| Error::Layer(e.to_string()))
    }

    /// How many of `groups` have at least one listener: a subscriber (pub/sub) or a member (core).
    /// Lets a publisher wait until a server has registered its groups before it starts.
    pub async fn listening(&self, groups: &[GroupName]) -> Result<usize> {
        let mut conn = self.conn.clone();
        let mut n = 0;
        for chunk in groups.chunks(LISTEN_CHUNK) {
            let counts: Vec<i64> = match self.wire {
                Wire::PubSub => {
                    let mut cmd = redis::cmd("PUBSUB");
                    cmd.arg("NUMSUB");
                    for g in chunk {
                        cmd.arg(self.channel(g));
                    }
                    let pairs: Vec<(String, i64)> =
                        cmd.query_async(&mut conn).await.map_err(layer)?;
                    pairs.into_iter().map(|(_, c)| c).collect()
                }
                Wire::Core => {
                    let mut pipe = redis::pipe();
                    for g in chunk {
                        pipe.zcard(self.group_key(g));
                    }
                    pipe.query_async(&mut conn).await.map_err(layer)?
                }
            };
            n += counts.iter().filter(|c| **c > 0).count();
        }
        Ok(n)
    }

    /// `{prefix}__group__{group}` (pub/sub).
    fn channel(&self, group: &GroupName) -> String {
        format!("{}__group__{group}", self.prefix)
    }

    /// `{prefix}:group:{group}` (core).
    fn group_key(&self, group: &GroupName) -> String {
        format!("{}:group:{group}", self.prefix)
    }

    /// One PUBLISH per message, all in one pipeline.
    async fn publish_many(&self, items: &[(GroupName, GroupMessage)]) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for (group, message) in items {
            pipe.publish(
                self.channel(group),
                self.codec.encode(message).map_err(encode)?,
            )
            .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await
    }

    /// channels_redis `group_send` per item: round trip 1 prunes and reads every distinct group;
    /// round trip 2 prunes every inbox and runs the script once per item, in item order.
    async fn core_send_many(&self, items: &[(GroupName, GroupMessage)]) -> redis::RedisResult<u64> {
        let mut conn = self.conn.clone();
        let now = support::now_secs();
        let mut distinct: HashMap<&GroupName, usize> = HashMap::new();
        let mut read = redis::pipe();
        for (group, _) in items {
            if !distinct.contains_key(group) {
                distinct.insert(group, distinct.len());
                let key = self.group_key(group);
                read.zrembyscore(&key, 0, now as i64 - self.group_expiry_secs as i64)
                    .ignore()
                    .zrange(&key, 0, -1);
            }
        }
        let members: Vec<Vec<String>> = read.query_async(&mut conn).await?;
        let inboxes: Vec<Vec<(String, Vec<String>)>> = members
            .into_iter()
            .map(|channels| inboxes_of(&self.prefix, channels))
            .collect();

        let mut send = redis::pipe();
        send.load_script(&self.script).ignore();
        let mut pruned = HashSet::new();
        for (inbox, _) in inboxes.iter().flatten() {
            if pruned.insert(inbox.as_str()) {
                send.zrembyscore(inbox, 0, now as i64 - self.expiry_secs as i64)
                    .ignore();
            }
        }
        let mut score = now;
        let mut scripts = 0;
        for (group, message) in items {
            let targets = distinct.get(group).and_then(|&i| inboxes.get(i));
            let Some(targets) = targets.filter(|t| !t.is_empty()) else {
                continue; // nobody listens: not an error, like Django
            };
            score = support::now_secs().max(score + SCORE_STEP);
            let mut invocation = self.script.prepare_invoke();
            for (inbox, _) in targets {
                invocation.key(inbox);
            }
            for (_, channels) in targets {
                let mut with_channel = message.clone();
                with_channel.insert("__asgi_channel__".into(), channels.clone().into());
                invocation.arg(self.codec.encode(&with_channel).map_err(encode)?);
            }
            for _ in targets {
                invocation.arg(self.capacity);
            }
            invocation.arg(score).arg(self.expiry_secs);
            send.invoke_script(&invocation);
            scripts += 1;
        }
        if scripts == 0 {
            return Ok(0);
        }
        let over: Vec<i64> = send.query_async(&mut conn).await?;
        Ok(over.iter().map(|n| (*n).max(0) as u64).sum())
    }
}

fn layer(e: redis::RedisError) -> Error {
    Error::Layer(e.to_string())
}

fn encode(e: super::codec::CodecError) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "encode", e.to_string()))
}
