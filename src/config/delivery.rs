//! Reliable-delivery settings: per-user history for resume, and token lifetimes (PROTOCOL.md §7).

use std::time::Duration;

use clap::ValueEnum;

/// Events kept per user stream for resume (0: none kept; positions are still given).
pub const DEFAULT_HISTORY_SIZE: usize = 100;
/// How long an event stays replayable (peers keep 2–5 minutes: a phone's lock, a network switch,
/// a redeploy).
pub const DEFAULT_HISTORY_TTL: Duration = Duration::from_secs(300);
/// Bytes of events kept per user stream; a replay this large always fits an empty outbound queue
/// (checked at start against `--queue-bytes`).
pub const DEFAULT_HISTORY_STREAM_BYTES: usize = 64 * 1024;
/// Bytes of history one process keeps in all (the memory layer): past it the streams idle longest
/// are evicted, and their clients are told `epoch_changed`.
pub const DEFAULT_HISTORY_MAX_BYTES: usize = 256 * 1024 * 1024;
/// How long a stream's position (offset and epoch) outlives its last event: a client away for
/// less than this that missed nothing resumes without a `resync`.
pub const DEFAULT_HISTORY_META_TTL: Duration = Duration::from_secs(24 * 3600);
/// Time after a token's `exp` before its connection closes 4001 `token expired` (a refresh in
/// flight, clock skew between Django and courier).
pub const DEFAULT_TOKEN_GRACE: Duration = Duration::from_secs(30);

/// History kept per user stream, and in all.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Events kept per stream.
    pub size: usize,
    /// Age past which an event is no longer replayed.
    pub ttl: Duration,
    /// Bytes kept per stream.
    pub stream_bytes: usize,
    /// Bytes kept by the process (per-stream bookkeeping included).
    pub max_bytes: usize,
    /// How long an idle stream's position is remembered.
    pub meta_ttl: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            size: DEFAULT_HISTORY_SIZE,
            ttl: DEFAULT_HISTORY_TTL,
            stream_bytes: DEFAULT_HISTORY_STREAM_BYTES,
            max_bytes: DEFAULT_HISTORY_MAX_BYTES,
            meta_ttl: DEFAULT_HISTORY_META_TTL,
        }
    }
}

impl HistoryConfig {
    /// The age bound in whole seconds (the hub's clock resolution).
    pub fn ttl_secs(&self) -> u32 {
        u32::try_from(self.ttl.as_secs()).unwrap_or(u32::MAX)
    }

    /// The idle bound of a position in whole seconds.
    pub fn meta_ttl_secs(&self) -> u32 {
        u32::try_from(self.meta_ttl.as_secs()).unwrap_or(u32::MAX)
    }

    /// These bounds, lowered where needed so that a full replay fits an empty outbound queue of
    /// `queue_messages` frames and `queue_bytes` bytes: a replay goes into the queue whole, and
    /// must never make its client look slow. Room is kept for `connection_established` and a
    /// `resync`, and every event is counted positioned (`,"offset":…,"epoch":"…"` is under 64
    /// bytes).
    pub fn fitted(&self, queue_messages: usize, queue_bytes: usize) -> Self {
        let size = self.size.min(queue_messages.saturating_sub(2));
        let room = queue_bytes.saturating_sub(4096 + size * 64);
        Self {
            size,
            stream_bytes: self.stream_bytes.min(room),
            ..self.clone()
        }
    }
}

/// What happens when a connection's token passes its `exp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum TokenExpiry {
    /// Close 4001 `token expired` at `exp` plus the grace, unless the client sent a `refresh`
    /// (ours; RFC 9700: an access token bounds what it grants in time).
    #[default]
    Enforce,
    /// The reference's behaviour: a token is checked at the handshake only.
    Ignore,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_fitted_to_the_outbound_queue() {
        let asked = HistoryConfig::default();
        let same = asked.fitted(1024, 1 << 20);
        assert_eq!(
            (same.size, same.stream_bytes),
            (asked.size, asked.stream_bytes)
        );
        let small = asked.fitted(10, 16 * 1024);
        assert_eq!(small.size, 8);
        assert_eq!(small.stream_bytes, 16 * 1024 - 4096 - 8 * 64);
        // The worst replay of the fitted bounds fits the queue.
        assert!(small.size + 2 <= 10);
        assert!(small.stream_bytes + small.size * 64 + 4096 <= 16 * 1024);
        assert_eq!(asked.fitted(1, 100).size, 0);
    }
}
