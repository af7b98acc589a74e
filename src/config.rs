//! Configuration: the `courier` command line (clap, with env fallbacks) and the plain [`Config`].
//!
//! Every default is a documented `DEFAULT_*` const, shown by `--help` and in the README.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
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
        Self { algorithm: Algorithm::HS256, secret: Some(secret.into()), public_key_pem: None, audience: None, issuer: None }
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
    s.parse::<Algorithm>().map_err(|_| format!("unknown JWT algorithm {s:?}"))
}

impl Cli {
    /// Turns parsed flags into a validated [`Config`].
    pub fn into_config(self) -> Result<Config> {
        let public_key_pem = match &self.jwt_public_key {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| Error::Config(format!("--jwt-public-key {}: {e}", p.display())))?),
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
