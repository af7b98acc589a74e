//! Configuration: the plain [`Config`] the server runs on, its parts, and their defaults.
//!
//! Every default is a documented `DEFAULT_*` const, shown by `--help` and in the README. How the
//! command line becomes a `Config` is [`crate::cli`]; tests and embedders build one directly.

use std::time::Duration;

use clap::ValueEnum;
use jsonwebtoken::Algorithm;

use crate::error::{Error, Result};

/// Listen address: loopback, the port Django's `runserver`/Daphne use.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// Connection limit per process; above it handshakes close with 1013. Keep it under `ulimit -n`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
/// Frames a connection may have queued before it counts as slow.
pub const DEFAULT_QUEUE_MESSAGES: usize = 1024;
/// Bytes of frames a connection may have queued before it counts as slow.
pub const DEFAULT_QUEUE_BYTES: usize = 1024 * 1024;
/// Largest client frame/message accepted; larger closes with 1009.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
/// Interval between server pings.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(25);
/// How long a client may take to answer a ping before close 4002.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(8);
/// How long shutdown waits for queues to drain before closing anyway.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest HTTP publish request body; larger answers 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Redis for the Redis layers: the local default instance.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// channels_redis's default `prefix`.
pub const DEFAULT_REDIS_PREFIX: &str = "asgi";
/// redis-core: inbox ZSETs (client prefixes) to spread groups over. Django drops a group_send to
/// an inbox holding `capacity` (100) messages, so more inboxes absorb bigger bursts. Measured
/// (BENCHMARKS.md): 5000 events/s over 100 groups lost ~3.5 % with 8 inboxes and nothing with 64;
/// all inboxes are drained by one pipeline per round, so more inboxes cost no extra round trips.
pub const DEFAULT_REDIS_CORE_INBOXES: usize = 64;
/// redis-core: channels_redis's `capacity`, used when courier itself publishes.
pub const DEFAULT_REDIS_CORE_CAPACITY: usize = 100;
/// redis-core: channels_redis's `group_expiry` (seconds); memberships are refreshed well within it.
pub const DEFAULT_REDIS_GROUP_EXPIRY: Duration = Duration::from_secs(86_400);
/// redis-core: channels_redis's `expiry` (seconds) for inbox messages.
pub const DEFAULT_REDIS_EXPIRY: Duration = Duration::from_secs(60);
/// Django user directory: Django's default user table.
pub const DEFAULT_USER_TABLE: &str = "auth_user";
/// Django user directory: how long a looked-up user is trusted before asking the database again.
pub const DEFAULT_USER_CACHE_TTL: Duration = Duration::from_secs(30);
/// Django user directory: most users kept in the cache.
pub const DEFAULT_USER_CACHE_SIZE: usize = 10_000;
/// The WebSocket read buffer. tungstenite's 128 KiB default is zero-filled and resident
/// (≈137 KB per idle connection, PERFORMANCE.md); 4 KiB costs ≈9 KB.
pub const READ_BUFFER_BYTES: usize = 4096;

/// How courier writes channels_redis payloads; Django's `serializer_format` must match (reading
/// sniffs both). Here, in the leaf, so the layer's codec imports config and not the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum WireFormat {
    /// channels_redis's default (`msgpack.packb`).
    #[default]
    Msgpack,
    /// `serializer_format="json"`.
    Json,
}

/// What the hub does when a connection's outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum SlowPolicy {
    /// Close the connection with 4008 `slow consumer`; it reconnects knowing it missed messages.
    #[default]
    Close,
    /// Drop the new frame and keep the connection (the Channels spec's "silently drop"), counted.
    DropNewest,
}

/// Which channel layer moves group messages between processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LayerKind {
    /// One process; no broker.
    #[default]
    Memory,
    /// channels_redis `RedisPubSubChannelLayer` wire format (Redis pub/sub).
    RedisPubsub,
    /// channels_redis `RedisChannelLayer` wire format (group ZSETs + inbox ZSETs), Django's default.
    RedisCore,
}

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
            .field("group_expiry", &self.group_expiry)
            .field("expiry", &self.expiry)
            .finish()
    }
}

/// The Django user directory (`--user-db`).
#[derive(Clone)]
pub struct UserDbConfig {
    /// `postgres://user@host/db` (libpq key=value strings work too) or `sqlite:///path/db.sqlite3`.
    pub url: String,
    /// The user table: `auth_user`, or a custom user model's (`accounts_user`, `schema.table`).
    pub table: String,
    /// Cache lifetime of a lookup.
    pub cache_ttl: Duration,
    /// Cache capacity, users.
    pub cache_size: usize,
}

// Hand-written: the URL may carry a password.
impl std::fmt::Debug for UserDbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDbConfig")
            .field("url", &"<redacted>")
            .field("table", &self.table)
            .field("cache_ttl", &self.cache_ttl)
            .field("cache_size", &self.cache_size)
            .finish()
    }
}

/// JWT verification settings.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The only algorithm accepted.
    pub algorithm: Algorithm,
    /// HS* key (Django's `SECRET_KEY` unless `SIMPLE_JWT["SIGNING_KEY"]` is set).
    pub secret: Option<String>,
    /// RS*/ES*/EdDSA public key, PEM text.
    pub public_key_pem: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
}

impl JwtConfig {
    /// HS256 with `secret`, no `aud`/`iss` checks: simplejwt's defaults.
    pub fn hs256(secret: impl Into<String>) -> Self {
        Self {
            algorithm: Algorithm::HS256,
            secret: Some(secret.into()),
            public_key_pem: None,
            audience: None,
            issuer: None,
        }
    }
}

/// Everything the server needs, independent of how it was parsed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Token verification.
    pub jwt: JwtConfig,
    /// Key for the HTTP publish API; `None` disables it (403).
    pub api_key: Option<String>,
    /// Channel layer.
    pub layer: LayerKind,
    /// Redis settings (used by the Redis layers).
    pub redis: RedisConfig,
    /// Django `auth_user` directory; `None`: trust tokens.
    pub user_db: Option<UserDbConfig>,
    /// Connection limit (1013 above it).
    pub max_connections: usize,
    /// Outbound queue limit, frames.
    pub queue_messages: usize,
    /// Outbound queue limit, bytes.
    pub queue_bytes: usize,
    /// Slow-consumer policy.
    pub slow_policy: SlowPolicy,
    /// Largest client frame (1009 above it).
    pub max_frame_bytes: usize,
    /// Ping interval.
    pub ping_interval: Duration,
    /// Pong timeout (4002).
    pub pong_timeout: Duration,
    /// Bound on graceful shutdown.
    pub shutdown_timeout: Duration,
    /// HTTP body limit (413).
    pub max_body_bytes: usize,
}

impl Config {
    /// Defaults everywhere, HS256 with `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            jwt: JwtConfig::hs256(secret),
            api_key: None,
            layer: LayerKind::Memory,
            redis: RedisConfig::default(),
            user_db: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            queue_messages: DEFAULT_QUEUE_MESSAGES,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            slow_policy: SlowPolicy::Close,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            ping_interval: DEFAULT_PING_INTERVAL,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Rejects settings that cannot work, with a message naming the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.into()));
        if self.api_key.as_deref() == Some("") {
            return bad("--api-key must not be empty (omit it to disable the publish API)");
        }
        if self.max_connections == 0 {
            return bad("--max-connections must be at least 1");
        }
        if self.queue_messages == 0 || self.queue_bytes == 0 {
            return bad("--queue-messages and --queue-bytes must be at least 1");
        }
        if self.ping_interval.is_zero() || self.pong_timeout.is_zero() {
            return bad("--ping-interval and --pong-timeout must be positive");
        }
        if self.max_frame_bytes < 16 {
            return bad("--max-frame-bytes must be at least 16");
        }
        if self.layer != LayerKind::Memory {
            if self.redis.urls.is_empty() || self.redis.urls.iter().any(|u| u.trim().is_empty()) {
                return bad("--redis-url must name at least one Redis, and none empty");
            }
            if self.redis.prefix.is_empty() {
                return bad("--redis-prefix must not be empty");
            }
            if self.redis.core_inboxes == 0 || self.redis.core_inboxes > 1024 {
                return bad("--redis-core-inboxes must be between 1 and 1024");
            }
            if self.redis.capacity == 0 {
                return bad("--redis-core-capacity must be at least 1");
            }
            if self.redis.group_expiry.as_secs() < 2 || self.redis.expiry.as_secs() < 1 {
                return bad(
                    "--redis-group-expiry must be at least 2s and --redis-expiry at least 1s",
                );
            }
            if self.redis.symmetric_keys.iter().any(String::is_empty) {
                return bad("--redis-symmetric-key must not be empty");
            }
        }
        if let Some(db) = &self.user_db {
            if db.cache_size == 0 {
                return bad("--user-cache-size must be at least 1");
            }
        }
        crate::auth::Verifier::new(&self.jwt).map(|_| ())
    }
}
