//! The channel layer: moves group messages between processes (the Broker, in centrifuge's terms).
//!
//! Membership is *not* the layer's business: the local [`Hub`](crate::hub::Hub) owns it, like
//! channels_redis's PubSub layer keeps it in process memory (PROTOCOL.md §5). The hub tells the
//! layer which groups have local members (`subscribe` on the first, `unsubscribe` after the last);
//! the layer hands every message published to such a group — by this process or any other — to the
//! [`Inbound`] callback, which fans it out locally.
//!
//! # Contract
//! - At-most-once: a message may be lost (broker down, inbox full) but never delivered twice.
//! - A layer that keeps history numbers each user-stream event once, in publish order (one
//!   sequencer per stream), and hands positions to the inbound callback; a resume waits for the
//!   subscription to be live, then reads the stream, so every event is either read or arrives
//!   live (both, at worst: the hub removes duplicates by offset).
//! - `publish` to a group nobody listens to is not an error.
//! - One slow member never blocks or fails a publish (the hub uses `try_send` per member).
//! - `subscribe`/`unsubscribe` are called with the hub's lock held, so they must not block; layers
//!   record the wish and act on it in their own task.

pub mod memory;
pub mod redis;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::config::{Config, LayerKind};
use crate::error::Result;
use crate::history::Position;
use crate::metrics::Metrics;

pub(crate) use self::redis::resync::is_outage_signal;
pub use self::redis::{
    resync_message, GroupSender, RedisClusterLayer, RedisCoreLayer, RedisPubSubLayer,
};
pub use memory::MemoryLayer;

/// A Channels group message: a JSON/msgpack map with at least a string `type`.
pub type GroupMessage = Map<String, Value>;

/// Where a layer delivers group messages for groups that have local members, with the event's
/// stream position when the layer [keeps history](ChannelLayer::keeps_history) and the publisher
/// wrote one.
pub type Inbound = Arc<dyn Fn(&GroupName, &GroupMessage, Option<&Position>) + Send + Sync>;

/// A user stream as the layer's history holds it: the head, and the events after a position.
#[derive(Debug)]
pub struct StreamHistory {
    /// The stream head now.
    pub head: Position,
    /// `(offset, message)` after the position asked for, oldest first; what the bounds dropped is
    /// missing (the caller compares offsets).
    pub events: Vec<(u64, GroupMessage)>,
}

/// Moves group messages between the processes that have members of a group.
pub trait ChannelLayer: Send + Sync + 'static {
    /// A short name for logs and metrics (`memory`, `redis-pubsub`, …).
    fn name(&self) -> &'static str;
    /// Sets the callback for inbound messages. Called once, by the hub, before anything else.
    fn attach(&self, inbound: Inbound);
    /// Lets the layer count into the server's metrics (`layer_errors`, `layer_reconnects`).
    /// Called once, by [`AppState`](crate::AppState), before [`attach`](Self::attach).
    fn attach_metrics(&self, _metrics: Arc<Metrics>) {}
    /// Orderly stop after the server has drained: leave broker-side state tidy (the core layer
    /// removes this process's group memberships so senders stop filling its inboxes). Bounded.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
    /// Whether every publish goes to this process's hub and nowhere else (the memory layer). The
    /// hub may then deliver a pre-encoded frame itself instead of building a message to publish.
    fn is_local(&self) -> bool {
        false
    }
    /// Whether the layer keeps user-stream positions and history shared by every process (the
    /// Redis pub/sub layer): then events arrive with their position, and a resume reads
    /// [`read_stream`](Self::read_stream) after [`subscription_live`](Self::subscription_live).
    fn keeps_history(&self) -> bool {
        false
    }
    /// The head of `group`'s stream and, with `after`, its events after that offset.
    fn read_stream<'a>(
        &'a self,
        _group: &'a GroupName,
        _after: Option<u64>,
    ) -> BoxFuture<'a, Result<StreamHistory>> {
        Box::pin(std::future::ready(Err(crate::Error::layer(
            "this layer keeps no history",
        ))))
    }
    /// Resolves once messages published to `group` from now on reach the inbound callback (the
    /// subscription is confirmed). The resume contract: subscribe → this → read the stream → merge
    /// what arrived meanwhile by offset.
    fn subscription_live<'a>(&'a self, _group: &'a GroupName) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
    /// The first local member of `group` joined: start receiving its messages. Must not block.
    fn subscribe(&self, group: &GroupName);
    /// The last local member of `group` left: stop receiving its messages. Must not block.
    fn unsubscribe(&self, group: &GroupName);
    /// Sends `message` to every member of `group` in every process (at-most-once).
    fn publish<'a>(
        &'a self,
        group: &'a GroupName,
        message: &'a GroupMessage,
    ) -> BoxFuture<'a, Result<()>>;
    /// [`publish`](Self::publish) for each item, in order. The default is that loop; the Redis
    /// layers pipeline the whole batch into one round trip per host (core: two). On an error some
    /// items may have been sent (at-most-once, as for a loop that stopped half-way).
    fn publish_many<'a>(
        &'a self,
        items: &'a [(GroupName, GroupMessage)],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for (group, message) in items {
                self.publish(group, message).await?;
            }
            Ok(())
        })
    }
}

/// Builds the layer `config.layer` names. Redis layers spawn their tasks here, so this must run
/// inside a Tokio runtime; an unreachable Redis is not an error (the tasks retry with backoff).
pub fn build(config: &Config) -> Result<Arc<dyn ChannelLayer>> {
    Ok(match config.layer {
        LayerKind::Memory => Arc::new(MemoryLayer::new()),
        LayerKind::RedisPubsub => Arc::new(RedisPubSubLayer::start_with_history(
            &config.redis,
            Some(&config.fitted_history()),
        )?),
        LayerKind::RedisCore => Arc::new(RedisCoreLayer::start_with_history(
            &config.redis,
            Some(&config.fitted_history()),
        )?),
        LayerKind::RedisCluster => Arc::new(RedisClusterLayer::start_with_history(
            &config.redis,
            Some(config.fitted_history())
                .filter(|_| config.redis.cluster_history)
                .as_ref(),
        )?),
    })
}

/// A group name valid under Channels' rule: `^[a-zA-Z0-9\-_.]+$`, shorter than 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(Box<str>);

/// Channels' `MAX_NAME_LENGTH`.
pub const MAX_GROUP_NAME_LEN: usize = 100;

impl GroupName {
    /// Validates `name`; `None` if Channels would reject it.
    pub fn new(name: &str) -> Option<Self> {
        let ok = !name.is_empty()
            && name.len() < MAX_GROUP_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        ok.then(|| Self(name.into()))
    }

    /// The per-user group of the reference consumer: `user_{id}`.
    pub fn for_user(user_id: &crate::auth::UserId) -> Option<Self> {
        Self::new(&format!("user_{user_id}"))
    }

    /// Whether this is a per-user group (`user_…`), whose events make a user stream with
    /// positions and history (PROTOCOL.md §7).
    pub fn is_user_stream(&self) -> bool {
        self.0.starts_with("user_")
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for GroupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for GroupName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_follow_channels_rule() {
        assert!(GroupName::new("user_42").is_some());
        assert!(GroupName::new("a-b.c_D9").is_some());
        assert!(GroupName::new("").is_none());
        assert!(GroupName::new("has space").is_none());
        assert!(GroupName::new("ünï").is_none());
        assert!(GroupName::new(&"x".repeat(99)).is_some());
        assert!(GroupName::new(&"x".repeat(100)).is_none());
    }
}
