//! [`GroupSender`]: channels_redis `group_send` for many messages at once, outside a server.
//!
//! It writes exactly what Django's `channel_layer.group_send` writes (PROTOCOL.md §5), on the host
//! channels_redis would pick, through the layers' own `wire` module, but pipelines a
//! whole batch into a fixed number of round trips (pub/sub: one; core: two), each host at once, so
//! a publisher of millions of events (the loadtest's Redis publishers) is not bound by Redis
//! latency. It starts no task and joins no group.

use super::wire::send::{Flavor, Sender};
use crate::config::{LayerKind, RedisConfig};
use crate::error::{Error, Result};
use crate::layer::{GroupMessage, GroupName};

/// Sends group messages the way channels_redis does, batched, over one or many hosts.
pub struct GroupSender(Sender);

impl GroupSender {
    /// A sender in `layer`'s format (`redis-pubsub` or `redis-core`) to `config`'s hosts and
    /// prefix. Connects lazily. Must run inside a Tokio runtime.
    pub fn new(layer: LayerKind, config: &RedisConfig) -> Result<Self> {
        let flavor = Flavor::of(layer).ok_or_else(|| {
            Error::Config(format!(
                "the {layer:?} layer has no channels_redis wire format"
            ))
        })?;
        Sender::new(flavor, config).map(Self)
    }

    /// `group_send(group, message)` for every item, in order. Returns how many messages the core
    /// layer's script dropped because an inbox was at `capacity` (as Django would, silently).
    pub async fn send_many(&self, items: &[(GroupName, GroupMessage)]) -> Result<u64> {
        self.0.send_many(items).await
    }

    /// How many of `groups` have at least one listener: a subscriber (pub/sub) or a member (core).
    /// Lets a publisher wait until a server has registered its groups before it starts.
    pub async fn listening(&self, groups: &[GroupName]) -> Result<usize> {
        self.0.listening(groups).await
    }

    /// Which of the configured hosts (0-based, in `hosts` order) a group's messages go to first:
    /// its pub/sub channel's host, or its core group ZSET's host.
    pub fn host_of(&self, group: &GroupName) -> usize {
        self.0.host_of(group)
    }
}
