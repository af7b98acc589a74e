//! Configuration: the `courier` command line (clap, with env fallbacks) and the plain [`Config`].
//!
//! Every default is a documented `DEFAULT_*` const, shown by `--help` and in the README.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use jsonwebtoken::Algorithm;

use crate::error::{Error, Result};
use crate::layer::codec::WireFormat;

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
/// an inbox holding `capacity` (100) messages, so more inboxes absorb bigger bursts.
pub const DEFAULT_REDIS_CORE_INBOXES: usize = 8;
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
    /// `redis://[:password@]host:port[/db]`, as in channels_redis `hosts` (one host).
    pub url: String,
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
            url: DEFAULT_REDIS_URL.into(),
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
            .field("url", &self.url)
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

/// `courier`: WebSocket notification server, drop-in for a Django Channels notification socket tier.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "COURIER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// HS* signing key: Django's SECRET_KEY (or SIMPLE_JWT["SIGNING_KEY"]). Required for HS*.
    #[arg(long, env = "COURIER_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// JWT algorithm accepted (exactly one), e.g. HS256, RS256, ES256.
    #[arg(long, env = "COURIER_JWT_ALGORITHM", default_value = "HS256", value_parser = parse_alg)]
    pub jwt_algorithm: Algorithm,
    /// Path to a PEM public key, for RS*/ES*/EdDSA.
    #[arg(long, env = "COURIER_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<std::path::PathBuf>,
    /// Required `aud` claim (unchecked when unset, like simplejwt).
    #[arg(long, env = "COURIER_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Required `iss` claim (unchecked when unset).
    #[arg(long, env = "COURIER_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Key for POST /api/*, sent as X-API-Key. Unset: the publish API answers 403.
    #[arg(long, env = "COURIER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Channel layer.
    #[arg(long, env = "COURIER_LAYER", value_enum, default_value_t = LayerKind::Memory)]
    pub layer: LayerKind,
    /// Redis URL for the Redis layers.
    #[arg(long, env = "COURIER_REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    pub redis_url: String,
    /// Key and channel prefix: channels_redis `prefix` (keep Django's).
    #[arg(long, env = "COURIER_REDIS_PREFIX", default_value = DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,
    /// channels_redis `symmetric_encryption_keys` entry; repeat for several (first encrypts).
    #[arg(
        long = "redis-symmetric-key",
        env = "COURIER_REDIS_SYMMETRIC_KEY",
        hide_env_values = true
    )]
    pub redis_symmetric_keys: Vec<String>,
    /// channels_redis `serializer_format` courier writes (msgpack or json); reading accepts both.
    #[arg(long, env = "COURIER_REDIS_FORMAT", value_enum, default_value_t = WireFormat::Msgpack)]
    pub redis_format: WireFormat,
    /// redis-core: inbox ZSETs (client prefixes) to spread groups over.
    #[arg(long, env = "COURIER_REDIS_CORE_INBOXES", default_value_t = DEFAULT_REDIS_CORE_INBOXES)]
    pub redis_core_inboxes: usize,
    /// redis-core: channels_redis `capacity` used when courier publishes.
    #[arg(long, env = "COURIER_REDIS_CORE_CAPACITY", default_value_t = DEFAULT_REDIS_CORE_CAPACITY)]
    pub redis_core_capacity: usize,
    /// redis-core: channels_redis `group_expiry`.
    #[arg(long, env = "COURIER_REDIS_GROUP_EXPIRY", default_value = "1day", value_parser = humantime::parse_duration)]
    pub redis_group_expiry: Duration,
    /// redis-core: channels_redis `expiry` of inbox messages.
    #[arg(long, env = "COURIER_REDIS_EXPIRY", default_value = "60s", value_parser = humantime::parse_duration)]
    pub redis_expiry: Duration,
    /// Django database holding `auth_user`: postgres://… or sqlite:///abs/path/db.sqlite3 (read-only); unknown or inactive users get 4001.
    #[arg(long, env = "COURIER_USER_DB", hide_env_values = true)]
    pub user_db: Option<String>,
    /// The user table --user-db reads (a custom user model's table, if any).
    #[arg(long, env = "COURIER_USER_TABLE", default_value = DEFAULT_USER_TABLE)]
    pub user_table: String,
    /// How long a user looked up in --user-db is cached.
    #[arg(long, env = "COURIER_USER_CACHE_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub user_cache_ttl: Duration,
    /// Most users kept in the --user-db cache.
    #[arg(long, env = "COURIER_USER_CACHE_SIZE", default_value_t = DEFAULT_USER_CACHE_SIZE)]
    pub user_cache_size: usize,
    /// Connection limit; above it handshakes close with 1013.
    #[arg(long, env = "COURIER_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Outbound queue limit per connection, frames.
    #[arg(long, env = "COURIER_QUEUE_MESSAGES", default_value_t = DEFAULT_QUEUE_MESSAGES)]
    pub queue_messages: usize,
    /// Outbound queue limit per connection, bytes.
    #[arg(long, env = "COURIER_QUEUE_BYTES", default_value_t = DEFAULT_QUEUE_BYTES)]
    pub queue_bytes: usize,
    /// What to do when a queue is full: close (4008) or drop-newest.
    #[arg(long, env = "COURIER_SLOW_POLICY", value_enum, default_value_t = SlowPolicy::Close)]
    pub slow_policy: SlowPolicy,
    /// Largest client frame in bytes; larger closes with 1009.
    #[arg(long, env = "COURIER_MAX_FRAME_BYTES", default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// Interval between pings.
    #[arg(long, env = "COURIER_PING_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,
    /// Pong deadline after a ping; missed closes with 4002.
    #[arg(long, env = "COURIER_PONG_TIMEOUT", default_value = "8s", value_parser = humantime::parse_duration)]
    pub pong_timeout: Duration,
    /// Bound on graceful shutdown (drain queues, close 1001).
    #[arg(long, env = "COURIER_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Largest HTTP publish body in bytes; larger answers 413.
    #[arg(long, env = "COURIER_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
}

fn parse_alg(s: &str) -> std::result::Result<Algorithm, String> {
    s.parse::<Algorithm>()
        .map_err(|_| format!("unknown JWT algorithm {s:?}"))
}

impl Cli {
    /// Turns parsed flags into a validated [`Config`].
    pub fn into_config(self) -> Result<Config> {
        let public_key_pem = match &self.jwt_public_key {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| Error::Config(format!("--jwt-public-key {}: {e}", p.display())))?,
            ),
            None => None,
        };
        let config = Config {
            jwt: JwtConfig {
                algorithm: self.jwt_algorithm,
                secret: self.jwt_secret,
                public_key_pem,
                audience: self.jwt_audience,
                issuer: self.jwt_issuer,
            },
            api_key: self.api_key,
            layer: self.layer,
            redis: RedisConfig {
                url: self.redis_url,
                prefix: self.redis_prefix,
                symmetric_keys: self.redis_symmetric_keys,
                format: self.redis_format,
                core_inboxes: self.redis_core_inboxes,
                capacity: self.redis_core_capacity,
                group_expiry: self.redis_group_expiry,
                expiry: self.redis_expiry,
            },
            user_db: self.user_db.map(|url| UserDbConfig {
                url,
                table: self.user_table,
                cache_ttl: self.user_cache_ttl,
                cache_size: self.user_cache_size,
            }),
            max_connections: self.max_connections,
            queue_messages: self.queue_messages,
            queue_bytes: self.queue_bytes,
            slow_policy: self.slow_policy,
            max_frame_bytes: self.max_frame_bytes,
            ping_interval: self.ping_interval,
            pong_timeout: self.pong_timeout,
            shutdown_timeout: self.shutdown_timeout,
            max_body_bytes: self.max_body_bytes,
        };
        config.validate()?;
        Ok(config)
    }
}
