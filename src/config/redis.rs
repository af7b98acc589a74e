//! Settings of the Redis layers.

use std::time::Duration;

use super::{
    WireFormat, DEFAULT_REDIS_CLUSTER_HISTORY, DEFAULT_REDIS_CLUSTER_PARTITIONS,
    DEFAULT_REDIS_CORE_CAPACITY, DEFAULT_REDIS_CORE_INBOXES, DEFAULT_REDIS_EXPIRY,
    DEFAULT_REDIS_GROUP_EXPIRY, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL,
};

/// Settings of the Redis layers, named after channels_redis's `CONFIG` keys.
#[derive(Clone)]
pub struct RedisConfig {
    /// channels_redis `hosts`, in Django's order: `redis://[:password@]host:port[/db]` each. Groups
    /// and channels are spread over them by channels_redis's consistent hash, so the order matters.
    pub urls: Vec<String>,
    /// channels_redis `prefix`.
    pub prefix: String,
    /// channels_redis `symmetric_encryption_keys` (first encrypts, all decrypt); empty: none.
    pub symmetric_keys: Vec<String>,
    /// channels_redis `serializer_format` for what courier writes (reading sniffs both).
    pub format: WireFormat,
    /// redis-core: inbox ZSETs (client prefixes) this process spreads its groups over.
    pub core_inboxes: usize,
    /// redis-core: channels_redis `capacity`, applied when courier publishes.
    pub capacity: usize,
    /// redis-cluster: partitions groups are spread over (the same in every process).
    pub cluster_partitions: usize,
    /// redis-cluster: keep user-stream history (resume); [`DEFAULT_REDIS_CLUSTER_HISTORY`].
    pub cluster_history: bool,
    /// redis-core: channels_redis `group_expiry`.
    pub group_expiry: Duration,
    /// redis-core: channels_redis `expiry`.
    pub expiry: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            urls: vec![DEFAULT_REDIS_URL.into()],
            prefix: DEFAULT_REDIS_PREFIX.into(),
            symmetric_keys: Vec::new(),
            format: WireFormat::Msgpack,
            core_inboxes: DEFAULT_REDIS_CORE_INBOXES,
            capacity: DEFAULT_REDIS_CORE_CAPACITY,
            cluster_partitions: DEFAULT_REDIS_CLUSTER_PARTITIONS,
            cluster_history: DEFAULT_REDIS_CLUSTER_HISTORY,
            group_expiry: DEFAULT_REDIS_GROUP_EXPIRY,
            expiry: DEFAULT_REDIS_EXPIRY,
        }
    }
}

// Hand-written so the encryption keys never reach a log line.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("urls", &self.urls)
            .field("prefix", &self.prefix)
            .field(
                "symmetric_keys",
                &format_args!("<{} redacted>", self.symmetric_keys.len()),
            )
            .field("format", &self.format)
            .field("core_inboxes", &self.core_inboxes)
            .field("capacity", &self.capacity)
            .field("cluster_partitions", &self.cluster_partitions)
            .field("cluster_history", &self.cluster_history)
            .field("group_expiry", &self.group_expiry)
            .field("expiry", &self.expiry)
            .finish()
    }
}
