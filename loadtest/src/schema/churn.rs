//! The `churn` section of a report (schema 3): clients that dropped and came back, what their
//! replays recovered, what the server said was gone, and what went missing silently.
//! `measure::recovery` holds the accounting rule this data is the result of.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Quantiles;

/// Connections listed one by one at most (those with something to look at first).
pub const MAX_LISTED: usize = 100;

/// Churn and token refresh over a run (healthy clients; each counted once per logical client,
/// its reconnects included).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Churn {
    /// `close`, `reset` or `stall` (empty when the run only refreshed tokens).
    pub mode: String,
    /// Whether clients reconnected with their position.
    pub resume: bool,
    /// Connections that churned.
    pub churning: u64,
    /// Drops made.
    pub drops: u64,
    /// Reconnects that got `connection_established`.
    pub reconnects: u64,
    /// Reconnect attempts that failed.
    pub reconnect_failures: u64,
    /// Connections the server ended (a courier restart, a broker outage), by close code, or
    /// `eof`/`io` when the stream ended without a close frame; with resume on, each reconnected
    /// with its position like a churned drop.
    pub server_closes: BTreeMap<String, u64>,
    /// `resync` frames received on these connections, by reason.
    pub resyncs: BTreeMap<String, u64>,
    /// Events whose publish the server refused (connection refused, an HTTP error status):
    /// never accepted, so counted neither lost nor signalled.
    pub never_accepted: u64,
    /// Events published before a resumed reconnect began and received after it (the replay).
    pub recovered: u64,
    /// Missing events inside a range a `resync` announced (signalled unrecoverable).
    pub unrecoverable: u64,
    /// Missing events no `resync` covered: must be 0 with resume on.
    pub lost_silent: u64,
    /// Time from a resumed reconnect's start to caught up (every event published before it
    /// received), ms.
    pub recovery_ms: Quantiles,
    /// Resumed reconnects that caught up (the histogram's count).
    pub recoveries: u64,
    /// Bytes of the recovered events' frames.
    pub replay_bytes: u64,
    /// In-place token refreshes sent.
    pub refreshes: u64,
    /// `refreshed` answers received.
    pub refreshed: u64,
    /// Recovery times, µs: HdrHistogram V2 + DEFLATE, base64 (for `loadtest merge`).
    pub recovery_us: String,
    /// Connections with a loss, a signalled gap, a duplicate or a reordering (at most
    /// [`MAX_LISTED`]).
    pub connections: Vec<ChurnConnection>,
    /// Such connections not listed.
    pub connections_omitted: u64,
}

/// One logical client's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChurnConnection {
    /// Connection index (its segment's own, in a merged report).
    pub connection: u64,
    /// User id.
    pub user: u64,
    /// Drops made.
    pub drops: u64,
    /// Reconnects.
    pub reconnects: u64,
    /// Events recovered.
    pub recovered: u64,
    /// Missing events a `resync` announced.
    pub unrecoverable: u64,
    /// Missing events nothing announced.
    pub lost_silent: u64,
    /// Copies of events already received.
    pub duplicated: u64,
    /// Events received after a later one.
    pub reordered: u64,
}
