//! Configuration: the plain [`Config`] the server runs on, its parts, and their defaults.
//!
//! Every default is a documented `DEFAULT_*` const, shown by `--help` and in the README. How the
//! command line becomes a `Config` is [`crate::cli`]; tests and embedders build one directly.

use std::time::Duration;

use clap::ValueEnum;
use jsonwebtoken::Algorithm;

use crate::error::{Error, Result};
pub use crate::trace::TraceConfig;

mod delivery;
mod proxy;
mod redis;
mod tls;

pub use delivery::{
    HistoryConfig, TokenExpiry, DEFAULT_HISTORY_MAX_BYTES, DEFAULT_HISTORY_META_TTL,
    DEFAULT_HISTORY_SIZE, DEFAULT_HISTORY_STREAM_BYTES, DEFAULT_HISTORY_TTL, DEFAULT_TOKEN_GRACE,
};
pub use proxy::Cidr;
pub use redis::RedisConfig;
pub use tls::TlsConfig;

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
/// redis-cluster: hash-tag partitions groups are spread over (shard channel
/// `{prefix:courier:p<K>}`, K = CRC-32 of the group mod this). A courier subscribes one channel
/// per partition that has a local member and receives all of that partition's traffic, so this
/// caps its subscriptions, while more partitions spread them more evenly over the masters (256 at
/// random slots: about ±10 % per master of 3) and spare a courier with few users more traffic.
/// Every process of a deployment must use the same value.
pub const DEFAULT_REDIS_CLUSTER_PARTITIONS: usize = 256;
/// redis-cluster: keep user-stream positions and history in the cluster (resume on any courier),
/// as the other Redis layers always do. Off (`--redis-cluster-history=false`) publishes with
/// plain `SPUBLISH`: one command instead of a script, no positions.
pub const DEFAULT_REDIS_CLUSTER_HISTORY: bool = true;
/// redis-cluster: most partitions, one per hash slot (more could only share slots).
pub const MAX_REDIS_CLUSTER_PARTITIONS: usize = 16_384;
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
/// After a close frame is queued for a client that is not reading, how long courier keeps
/// trying to write it before dropping TCP: a phone that resumes within it still learns why
/// (4008 rather than a bare reset).
pub const DEFAULT_CLOSE_LINGER: Duration = Duration::from_secs(10);
/// Bound on a connection's handshake, from TCP accept to the first request's headers, and on
/// each later request's headers: a client that sends half a request is dropped after it.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted connections that have not finished their HTTP request or upgrade yet; past it the
/// server stops accepting (the kernel backlog holds the rest) until one finishes or times out.
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 2048;
/// Largest HTTP request head (request line + headers); larger answers 431. hyper's floor is 8 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Connections one user may hold at once (0: no limit); the newest past it closes with 4003.
pub const DEFAULT_MAX_CONNECTIONS_PER_USER: usize = 128;
/// Most frames one fragmented client message may arrive in; more closes with 1009 (a flood of
/// empty continuation frames would otherwise never reach the size limit).
pub const DEFAULT_MAX_FRAGMENTS: usize = 64;
/// Client messages per second a connection may send on average (pings included; 0: no limit);
/// faster closes with 4029. A notification client sends almost nothing.
pub const DEFAULT_CLIENT_MESSAGE_RATE: f64 = 50.0;
/// Size at which the publish trace is rotated (`<file>.1` keeps the previous one).
pub const DEFAULT_TRACE_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Client messages a connection may send in a burst above the rate.
pub const DEFAULT_CLIENT_MESSAGE_BURST: usize = 100;
/// `SO_SNDBUF` asked for on every accepted socket (Linux doubles it for its bookkeeping; 0: the
/// kernel's autotuning). Autotuned, loopback and fast links grow it to 4 MiB, where a stalled
/// reader's messages sit unseen by the queue bound; capped, the queue bound (and its 4008) takes
/// effect after at most this much more. 128 KiB still fills a 10 ms, 100 Mbit/s path.
pub const DEFAULT_SEND_BUFFER_BYTES: usize = 128 * 1024;
/// WebSocket handshakes a client address may start per second, sustained (0: no limit; off by
/// default because carrier NAT and proxies put many clients behind one address).
pub const DEFAULT_HANDSHAKE_RATE_PER_IP: f64 = 0.0;
/// Handshakes a client address may start in a burst above the rate.
pub const DEFAULT_HANDSHAKE_BURST_PER_IP: usize = 20;

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
    /// Redis Cluster, sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis >= 7) over hash-tag
    /// partitions; courier's own format, so only courier (HTTP or Rust API) publishes to it.
    RedisCluster,
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
    /// How long a close frame may wait for a stalled client before TCP is dropped.
    pub close_linger: Duration,
    /// Bound on TCP accept → request headers (and on each later request's headers).
    pub handshake_timeout: Duration,
    /// Connections accepted but not yet past their HTTP request; the accept loop waits above it.
    pub max_pending_handshakes: usize,
    /// Largest request head (431 above it).
    pub max_header_bytes: usize,
    /// Per-user connection limit (4003 above it; 0: none).
    pub max_connections_per_user: usize,
    /// Fragments per client message (1009 above it).
    pub max_fragments: usize,
    /// Client messages per second, sustained (4029 above it; 0: none).
    pub client_message_rate: f64,
    /// Client messages in a burst.
    pub client_message_burst: usize,
    /// `SO_SNDBUF` for accepted sockets (0: the kernel's autotuning).
    pub send_buffer_bytes: usize,
    /// WebSocket handshakes per client address per second, sustained (429 above it; 0: none).
    pub handshake_rate_per_ip: f64,
    /// Handshakes per client address in a burst.
    pub handshake_burst_per_ip: usize,
    /// Browser origins allowed to open a WebSocket (`Origin` header); empty: any. A request with
    /// another `Origin` gets 403; one without (not a browser) is let through.
    pub allowed_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` names the client (for the per-IP limit and logs); empty
    /// (the default): the header is ignored and the TCP peer is the client.
    pub trusted_proxies: Vec<Cidr>,
    /// Per-user history for resume (`recover=1`, `since=`).
    pub history: HistoryConfig,
    /// Whether a token's `exp` closes its connection.
    pub token_expiry: TokenExpiry,
    /// Time after `exp` before that close.
    pub token_grace: Duration,
    /// The publish trace (`--trace-publishes`); `None`: off.
    pub trace: Option<TraceConfig>,
    /// TLS on the main listener; `None`: plain TCP. The admin listener is always plain.
    pub tls: Option<TlsConfig>,
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
            close_linger: DEFAULT_CLOSE_LINGER,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_connections_per_user: DEFAULT_MAX_CONNECTIONS_PER_USER,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
            client_message_rate: DEFAULT_CLIENT_MESSAGE_RATE,
            client_message_burst: DEFAULT_CLIENT_MESSAGE_BURST,
            send_buffer_bytes: DEFAULT_SEND_BUFFER_BYTES,
            handshake_rate_per_ip: DEFAULT_HANDSHAKE_RATE_PER_IP,
            handshake_burst_per_ip: DEFAULT_HANDSHAKE_BURST_PER_IP,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            history: HistoryConfig::default(),
            token_expiry: TokenExpiry::Enforce,
            token_grace: DEFAULT_TOKEN_GRACE,
            trace: None,
            tls: None,
        }
    }

    /// The history bounds, lowered where needed so a full replay fits an empty outbound queue
    /// ([`HistoryConfig::fitted`]).
    pub fn fitted_history(&self) -> HistoryConfig {
        self.history.fitted(self.queue_messages, self.queue_bytes)
    }

    /// Rejects settings that cannot work, with a message naming the flag. (The JWT key is checked
    /// where it is built, by [`AppState`](crate::AppState): parsing it here would build it twice.)
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
        if self.handshake_timeout.is_zero() || self.max_pending_handshakes == 0 {
            return bad("--handshake-timeout and --max-pending-handshakes must be positive");
        }
        if self.max_header_bytes < 8192 {
            return bad("--max-header-bytes must be at least 8192");
        }
        if self.max_fragments == 0 {
            return bad("--max-fragments must be at least 1");
        }
        if !(self.client_message_rate >= 0.0 && self.client_message_rate.is_finite()) {
            return bad("--client-message-rate must be a number >= 0");
        }
        if self.client_message_rate > 0.0 && self.client_message_burst == 0 {
            return bad("--client-message-burst must be at least 1 when a rate is set");
        }
        if !(self.handshake_rate_per_ip >= 0.0 && self.handshake_rate_per_ip.is_finite()) {
            return bad("--handshake-rate-per-ip must be a number >= 0");
        }
        if self.handshake_rate_per_ip > 0.0 && self.handshake_burst_per_ip == 0 {
            return bad("--handshake-burst-per-ip must be at least 1 when a rate is set");
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
            if !(1..=MAX_REDIS_CLUSTER_PARTITIONS).contains(&self.redis.cluster_partitions) {
                return bad("--redis-cluster-partitions must be between 1 and 16384");
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
        let h = &self.history;
        if h.ttl.is_zero() || h.meta_ttl < h.ttl {
            return bad("--history-ttl must be positive and --history-meta-ttl at least as long");
        }
        if let Some(t) = &self.trace {
            if !(t.sample > 0.0 && t.sample <= 1.0) || t.max_bytes < 4096 {
                return bad("--trace-sample must be in (0, 1] and --trace-max-bytes at least 4096");
            }
        }
        if let Some(db) = &self.user_db {
            if db.cache_size == 0 {
                return bad("--user-cache-size must be at least 1");
            }
        }
        Ok(())
    }
}
