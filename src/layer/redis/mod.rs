//! The channels_redis-compatible layers over one or many Redis hosts, and what they share.
//!
//! # Layout
//! - `wire`: the format — key names, host selection, the Lua script, the codec, pipelined sends,
//!   and the sharded (cluster) layer's partitions and frames.
//! - `conn`: clients per host, bounded connects and responses; `reconnect`: the one
//!   reconnect-with-backoff loop; `health`: errors, reconnects and hosts down in the metrics;
//!   `wishes`: what the hub wants subscribed; [`resync`]: the frame after an outage.
//! - [`pubsub`]: [`RedisPubSubLayer`] (channels_redis `RedisPubSubChannelLayer`).
//! - [`core_layer`]: [`RedisCoreLayer`] (channels_redis `RedisChannelLayer`, Django's default).
//! - [`sender`]: [`GroupSender`], batched `group_send` for publishers outside a server.
//! - [`cluster`]: [`RedisClusterLayer`], Redis Cluster sharded pub/sub in courier's own format
//!   (channels_redis has no Cluster support, so only courier publishes to it).
//!
//! # Many hosts
//! `RedisConfig::urls` is channels_redis's `hosts` list, in Django's order. Every group lives on the
//! host channels_redis would pick (`wire` has the rule), and every host has its own tasks and
//! connections, so a host that is down stops only the groups on it: their publishes fail (counted
//! as `publish` errors), the host's task counts a `disconnect`, and on recovery only its groups get
//! a `resync`.

pub mod cluster;
pub(crate) mod conn;
pub mod core_layer;
pub(crate) mod health;
pub mod pubsub;
pub(crate) mod reconnect;
pub mod resync;
pub mod sender;
pub(crate) mod wire;
pub(crate) mod wishes;

pub use cluster::RedisClusterLayer;
pub use core_layer::RedisCoreLayer;
pub use pubsub::RedisPubSubLayer;
pub use resync::resync_message;
pub use sender::GroupSender;
