//! courier: a WebSocket notification server that is a drop-in for the socket tier of a Django
//! Channels notifications app — same URL, tokens, frames and close codes — built for fan-out speed.
//!
//! Clients connect to `/ws/notifications/?token=<JWT>`, are authenticated with simplejwt's rules and
//! join the group `user_{id}`; backend code calls [`Hub::notify_user`] (or `POST /api/notify`) and
//! every connection of that user receives `{"type":…,"data":…}`. The reference behaviour is
//! `shared/PROTOCOL.md`.
//!
//! # Layout
//! - [`config`]: the plain [`Config`] and its parts; every default a documented `DEFAULT_*` const.
//! - [`cli`]: the command line (clap + env) → a validated [`Config`].
//! - [`error`]: the crate's [`Error`] and [`Result`].
//! - [`server`]: routes, the upgrade handler, [`server::run`] with graceful shutdown.
//! - [`shutdown`]: the Ctrl-C / SIGTERM signal.
//! - [`state`]: [`AppState`], the cheap-clone handle shared by every task.
//! - [`auth`]: token extraction and simplejwt-compatible verification.
//! - [`directory`]: who a token belongs to (pluggable user directory).
//! - [`userdb`]: the Django `auth_user` directory (PostgreSQL or SQLite behind one TTL cache).
//! - [`protocol`]: close-code table and frame encoding (encode once, share the bytes).
//! - `ws`: RFC 6455 mechanics — the upgrade, server frames encoded once, the client-frame reader.
//! - `connection`: one socket, one task — batched vectored writes, reads, pings, closes, linger;
//!   its transport is plain TCP or TLS driven through rustls's sans-I/O API.
//! - `tls`: the main listener's TLS (`--tls-cert`): rustls config, SIGHUP certificate reload, the
//!   TLS handshake under the handshake deadline.
//! - [`outbox`]: a connection's socket, bounded queue (frames and bytes) and close state.
//! - `rate`: token buckets — the client-message limit and the bounded per-IP handshake table.
//! - [`hub`]: local membership and fan-out (`group_add`, `group_discard`, `group_send`), sharded;
//!   each user stream's offsets assigned in the same critical section as its pushes.
//! - [`history`]: positions `(offset, epoch)` and bounded per-user history for resume (§7).
//! - [`layer`]: [`ChannelLayer`](layer::ChannelLayer), moving group messages between processes:
//!   memory, and under [`layer::redis`] the channels_redis-compatible pub/sub and core layers over
//!   one or many Redis hosts, with their one wire module, and the Redis Cluster sharded pub/sub
//!   layer ([`layer::redis::cluster`]).
//! - [`notify`]: `notify_user` and the reference's three helpers.
//! - [`api`]: the HTTP publish API.
//! - [`metrics`]: Prometheus metrics.
//! - `trace`: the publish trace (`--trace-publishes`), JSONL of what was published, for replay.
//! - `fuzzing` (only under `--cfg fuzzing`, which cargo-fuzz sets): thin wrappers through which
//!   the targets in `fuzz/` reach the internal parsers of untrusted input.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub(crate) mod connection;
pub mod directory;
pub mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod hub;
pub mod layer;
pub mod metrics;
pub mod notify;
pub mod outbox;
#[cfg(test)]
mod prop_support;
pub mod protocol;
pub(crate) mod rate;
pub mod server;
pub mod shutdown;
pub mod state;
pub(crate) mod tls;
pub(crate) mod trace;
pub mod userdb;
pub(crate) mod ws;

pub use auth::UserId;
pub use config::Config;
pub use error::{Error, Result};
pub use hub::Hub;
pub use state::AppState;
pub use tls::provider as tls_provider;
