//! The `courier` command line: clap flags with env fallbacks, turned into a [`Config`].
//!
//! Checking the values is the config's own job ([`Config::validate`]), done once, where the server
//! state is built from it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use jsonwebtoken::Algorithm;

use crate::config::{
    Config, HistoryConfig, JwtConfig, LayerKind, RedisConfig, SlowPolicy, TlsConfig, TokenExpiry,
    TraceConfig, UserDbConfig, WireFormat, DEFAULT_CLIENT_MESSAGE_BURST,
    DEFAULT_CLIENT_MESSAGE_RATE, DEFAULT_HANDSHAKE_BURST_PER_IP, DEFAULT_HANDSHAKE_RATE_PER_IP,
    DEFAULT_HISTORY_MAX_BYTES, DEFAULT_HISTORY_SIZE, DEFAULT_HISTORY_STREAM_BYTES, DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_USER,
    DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_PENDING_HANDSHAKES, DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_MESSAGES,
    DEFAULT_REDIS_CLUSTER_HISTORY, DEFAULT_REDIS_CLUSTER_PARTITIONS, DEFAULT_REDIS_CORE_CAPACITY,
    DEFAULT_REDIS_CORE_INBOXES, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL, DEFAULT_SEND_BUFFER_BYTES,
    DEFAULT_TRACE_MAX_BYTES, DEFAULT_USER_CACHE_SIZE, DEFAULT_USER_TABLE,
};
use crate::error::{Error, Result};

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
    /// Redis for the Redis layers: channels_redis `hosts`, in Django's order. Repeat the flag (or
    /// give the env a comma-separated list) for several hosts; courier shards like channels_redis.
    /// redis-cluster: seed nodes of one cluster (any order; the topology is discovered).
    #[arg(
        long = "redis-url",
        env = "COURIER_REDIS_URL",
        default_value = DEFAULT_REDIS_URL,
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub redis_urls: Vec<String>,
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
    /// redis-cluster: hash-tag partitions groups are spread over; the same in every courier.
    #[arg(long, env = "COURIER_REDIS_CLUSTER_PARTITIONS", default_value_t = DEFAULT_REDIS_CLUSTER_PARTITIONS)]
    pub redis_cluster_partitions: usize,
    /// redis-cluster: keep user-stream history for resume; `--redis-cluster-history=false`
    /// publishes with plain SPUBLISH and gives no positions.
    #[arg(
        long,
        env = "COURIER_REDIS_CLUSTER_HISTORY",
        default_value_t = DEFAULT_REDIS_CLUSTER_HISTORY,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub redis_cluster_history: bool,
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
    /// How long a close frame may wait for a client that is not reading before TCP is dropped.
    #[arg(long, env = "COURIER_CLOSE_LINGER", default_value = "10s", value_parser = humantime::parse_duration)]
    pub close_linger: Duration,
    /// Bound on TCP accept → request headers, and on each later request's headers.
    #[arg(long, env = "COURIER_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Connections accepted but not past their first request; above it accepting pauses.
    #[arg(long, env = "COURIER_MAX_PENDING_HANDSHAKES", default_value_t = DEFAULT_MAX_PENDING_HANDSHAKES)]
    pub max_pending_handshakes: usize,
    /// Largest HTTP request head in bytes (request line + headers); larger answers 431.
    #[arg(long, env = "COURIER_MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: usize,
    /// Connections one user may hold (0: no limit); the newest past it closes with 4003.
    #[arg(long, env = "COURIER_MAX_CONNECTIONS_PER_USER", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_USER)]
    pub max_connections_per_user: usize,
    /// Most frames one fragmented client message may take; more closes with 1009.
    #[arg(long, env = "COURIER_MAX_FRAGMENTS", default_value_t = DEFAULT_MAX_FRAGMENTS)]
    pub max_fragments: usize,
    /// Client messages per second per connection, sustained (0: no limit); faster closes with 4029.
    #[arg(long, env = "COURIER_CLIENT_MESSAGE_RATE", default_value_t = DEFAULT_CLIENT_MESSAGE_RATE)]
    pub client_message_rate: f64,
    /// Client messages per connection allowed in a burst above the rate.
    #[arg(long, env = "COURIER_CLIENT_MESSAGE_BURST", default_value_t = DEFAULT_CLIENT_MESSAGE_BURST)]
    pub client_message_burst: usize,
    /// SO_SNDBUF for accepted sockets in bytes (0: the kernel's autotuning); bounds what the kernel
    /// holds for a client that stopped reading, so the queue bound (4008) applies soon after.
    #[arg(long, env = "COURIER_SEND_BUFFER_BYTES", default_value_t = DEFAULT_SEND_BUFFER_BYTES)]
    pub send_buffer_bytes: usize,
    /// WebSocket handshakes per client address per second, sustained (0: no limit); faster
    /// answers 429. Behind a proxy every client has the proxy's address: limit there instead.
    #[arg(long, env = "COURIER_HANDSHAKE_RATE_PER_IP", default_value_t = DEFAULT_HANDSHAKE_RATE_PER_IP)]
    pub handshake_rate_per_ip: f64,
    /// Handshakes per client address in a burst above the rate.
    #[arg(long, env = "COURIER_HANDSHAKE_BURST_PER_IP", default_value_t = DEFAULT_HANDSHAKE_BURST_PER_IP)]
    pub handshake_burst_per_ip: usize,
    /// Browser origin allowed to connect (repeat; env: comma-separated); unset: any origin.
    #[arg(
        long = "allowed-origin",
        env = "COURIER_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Proxy address or CIDR range whose X-Forwarded-For names the client, for the per-IP limit
    /// and logs (repeat; env: comma-separated); unset: the header is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "COURIER_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<crate::config::Cidr>,
    /// Extra listener for /healthz and /metrics only, with descriptors of its own, so health checks
    /// answer even while the main listener is saturated.
    #[arg(long, env = "COURIER_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Serve the main listener over TLS with this PEM certificate chain (with --tls-key); it is
    /// read again on SIGHUP. The admin listener stays plain.
    #[arg(long, env = "COURIER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "COURIER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Set SO_REUSEPORT on the listener so several courier processes share one address.
    #[arg(long, env = "COURIER_REUSE_PORT")]
    pub reuse_port: bool,
    /// Events kept per user for resume (`since=`); 0 keeps none (positions are still given).
    #[arg(long, env = "COURIER_HISTORY_SIZE", default_value_t = DEFAULT_HISTORY_SIZE)]
    pub history_size: usize,
    /// How long an event stays replayable.
    #[arg(long, env = "COURIER_HISTORY_TTL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub history_ttl: Duration,
    /// Bytes of events kept per user.
    #[arg(long, env = "COURIER_HISTORY_STREAM_BYTES", default_value_t = DEFAULT_HISTORY_STREAM_BYTES)]
    pub history_stream_bytes: usize,
    /// Bytes of history this process keeps in all; past it the streams idle longest are evicted.
    #[arg(long, env = "COURIER_HISTORY_MAX_BYTES", default_value_t = DEFAULT_HISTORY_MAX_BYTES)]
    pub history_max_bytes: usize,
    /// How long a user's position outlives its last event.
    #[arg(long, env = "COURIER_HISTORY_META_TTL", default_value = "1day", value_parser = humantime::parse_duration)]
    pub history_meta_ttl: Duration,
    /// `enforce`: close 4001 `token expired` at the token's `exp` plus the grace unless the client
    /// refreshed it; `ignore`: check tokens at the handshake only (the reference's behaviour).
    #[arg(long, env = "COURIER_TOKEN_EXPIRY", value_enum, default_value_t = TokenExpiry::Enforce)]
    pub token_expiry: TokenExpiry,
    /// Time after a token's `exp` before its connection is closed.
    #[arg(long, env = "COURIER_TOKEN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub token_grace: Duration,
    /// Write a publish trace (JSONL: time, group, type, data size; no content) to this file, for
    /// `loadtest --model replay`.
    #[arg(long, env = "COURIER_TRACE_PUBLISHES")]
    pub trace_publishes: Option<std::path::PathBuf>,
    /// Fraction of users traced (by group, so a traced user keeps all its events).
    #[arg(long, env = "COURIER_TRACE_SAMPLE", default_value_t = 1.0)]
    pub trace_sample: f64,
    /// Size at which the trace file is rotated to `<file>.1`.
    #[arg(long, env = "COURIER_TRACE_MAX_BYTES", default_value_t = DEFAULT_TRACE_MAX_BYTES)]
    pub trace_max_bytes: u64,
    /// Log format: `text` for people, `json` (one object per line) for log pipelines.
    #[arg(long, env = "COURIER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_alg(s: &str) -> std::result::Result<Algorithm, String> {
    s.parse::<Algorithm>()
        .map_err(|_| format!("unknown JWT algorithm {s:?}"))
}

impl Cli {
    /// Turns parsed flags into a [`Config`] (reading the key file; values are checked by
    /// [`Config::validate`] when the server state is built).
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
                urls: self.redis_urls,
                prefix: self.redis_prefix,
                symmetric_keys: self.redis_symmetric_keys,
                format: self.redis_format,
                core_inboxes: self.redis_core_inboxes,
                capacity: self.redis_core_capacity,
                cluster_partitions: self.redis_cluster_partitions,
                cluster_history: self.redis_cluster_history,
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
            close_linger: self.close_linger,
            handshake_timeout: self.handshake_timeout,
            max_pending_handshakes: self.max_pending_handshakes,
            max_header_bytes: self.max_header_bytes,
            max_connections_per_user: self.max_connections_per_user,
            max_fragments: self.max_fragments,
            client_message_rate: self.client_message_rate,
            client_message_burst: self.client_message_burst,
            send_buffer_bytes: self.send_buffer_bytes,
            handshake_rate_per_ip: self.handshake_rate_per_ip,
            handshake_burst_per_ip: self.handshake_burst_per_ip,
            allowed_origins: self.allowed_origins,
            trusted_proxies: self.trusted_proxies,
            history: HistoryConfig {
                size: self.history_size,
                ttl: self.history_ttl,
                stream_bytes: self.history_stream_bytes,
                max_bytes: self.history_max_bytes,
                meta_ttl: self.history_meta_ttl,
            },
            token_expiry: self.token_expiry,
            token_grace: self.token_grace,
            trace: self.trace_publishes.map(|path| TraceConfig {
                path,
                sample: self.trace_sample,
                max_bytes: self.trace_max_bytes,
            }),
            tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsConfig { cert, key }),
                (None, None) => None,
                // clap's `requires` refuses this first; kept for `Cli` values built in code.
                _ => return Err(Error::Config("--tls-cert and --tls-key go together".into())),
            },
        };
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
