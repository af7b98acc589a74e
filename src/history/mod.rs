//! Positions and bounded history of user streams (PROTOCOL.md §7): what a reconnecting client is
//! replayed from.
//!
//! A stream is one group's numbered sequence of events. `offset` grows by one per event, in the
//! order the hub fans events out (the hub assigns it in the same critical section as the push, so
//! every member sees offsets in order); `epoch` names one continuous history and changes whenever
//! that history was lost (the process restarted, the stream was evicted). A position
//! `(offset, epoch)` is therefore either found again, or known to be lost — never silently wrong.
//!
//! History keeps each event's *plain* frame (the bytes every member already shares), so recording
//! costs a refcount bump and a queue slot per event; the positioned frame a `recover=1` client
//! needs is derived from it ([`protocol::positioned`]) only when such a client is there, once per
//! event for all of them, or per replayed event on a resume.
//!
//! Bounds, per stream: events, bytes and age ([`HistoryConfig`]); per process: the hub's byte cap,
//! enforced per shard at append time (the oldest member-less streams are evicted first, and their
//! epochs are gone with them).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::config::HistoryConfig;
use crate::layer::StreamHistory;
use crate::protocol::{self, ResyncReason};

/// Bytes counted per history entry beyond its frame's length, so the count is what the process
/// really holds: the entry and its queue slot with the queue's growth slack, the frame's shared
/// buffer header, and the allocator's size classes and metadata. Measured (2026-12-07, release,
/// jemalloc): 10k users × 100 events of a 96-byte frame grew RSS by 304 bytes per event over the
/// same run with `--history-size 0`.
pub(crate) const ENTRY_OVERHEAD: usize = 208;
/// Bytes counted per stream beyond its entries (map slot, name, epoch, counters).
pub(crate) const STREAM_OVERHEAD: usize = 160;

/// Where a client stands in a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The offset of the last event the client has (0: none).
    pub offset: u64,
    /// The history the offset belongs to.
    pub epoch: Arc<str>,
}

/// What a connection asked for in its query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Recover {
    /// Frames as the reference sends them: no positions.
    #[default]
    No,
    /// `recover=1`: positions on every event, starting at the stream head.
    Fresh,
    /// `since=<offset>&epoch=<epoch>`: replay what came after this position, then go on live.
    Since(Position),
    /// `since`/`epoch` present but unusable (not a number, one without the other): the client
    /// is told its position is unknown, as for a lost epoch.
    Unusable,
}

impl Recover {
    /// Reads `recover`, `since` and `epoch` from a query string (percent-decoding is not needed:
    /// offsets are digits and epochs are made of URL-safe characters).
    pub fn from_query(query: Option<&str>) -> Self {
        let (mut recover, mut since, mut epoch) = (false, None, None);
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("recover", v) => recover |= v == "1" || v == "true",
                ("since", v) if since.is_none() => since = Some(v),
                ("epoch", v) if epoch.is_none() => epoch = Some(v),
                _ => {}
            }
        }
        match (since, epoch) {
            (None, None) if recover => Self::Fresh,
            (None, None) => Self::No,
            (Some(s), Some(e)) => match s.parse::<u64>() {
                Ok(offset) if !e.is_empty() && e.len() <= 64 => Self::Since(Position {
                    offset,
                    epoch: e.into(),
                }),
                _ => Self::Unusable,
            },
            _ => Self::Unusable,
        }
    }

    /// Whether the connection gets positions.
    pub fn positioned(&self) -> bool {
        !matches!(self, Self::No)
    }
}

/// A new epoch: this process's random tag and a counter, so no two streams — in this process or
/// any earlier one — share an epoch.
pub(crate) fn new_epoch() -> Arc<str> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    static TAG: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    format!("{}{:x}", *TAG, NEXT.fetch_add(1, Ordering::Relaxed)).into()
}

struct Entry {
    /// Seconds on the hub's clock when the event was recorded.
    at: u32,
    /// The plain frame, shared with every member that got it live.
    frame: Bytes,
}

/// One stream: its position and the events kept.
pub(crate) struct Stream {
    epoch: Arc<str>,
    /// Offset of the newest event (0: none yet).
    head: u64,
    /// Events `head - len + 1 ..= head`, oldest first (contiguous: trimming only takes the front).
    entries: VecDeque<Entry>,
    /// Counted bytes of `entries` (frames plus [`ENTRY_OVERHEAD`] each).
    bytes: usize,
    /// Hub-clock seconds of the last event or member change: eviction takes the stalest first.
    pub(crate) touched: u32,
}

/// The outcome of a resume.
pub(crate) enum Resume {
    /// The events after the client's position, positioned (possibly none: it was current).
    Replay(Vec<Bytes>),
    /// The position cannot be served; the client is told why.
    Resync(ResyncReason),
}

impl Stream {
    /// A stream with a fresh epoch and no events.
    pub(crate) fn new(now: u32) -> Self {
        Self {
            epoch: new_epoch(),
            head: 0,
            entries: VecDeque::new(),
            bytes: 0,
            touched: now,
        }
    }

    /// The stream head: where a client that has everything stands.
    pub(crate) fn head(&self) -> Position {
        Position {
            offset: self.head,
            epoch: self.epoch.clone(),
        }
    }

    /// The stream's epoch.
    pub(crate) fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Counted bytes, the stream's own included.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes + STREAM_OVERHEAD
    }

    /// Whether the stream has events kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes the next offset for `frame` and keeps it within the stream's bounds. Returns the
    /// offset and the change in counted bytes.
    pub(crate) fn append(&mut self, frame: &Bytes, now: u32, cfg: &HistoryConfig) -> (u64, isize) {
        self.head += 1;
        self.touched = now;
        let before = self.bytes;
        let size = frame.len() + ENTRY_OVERHEAD;
        if cfg.size > 0 && size <= cfg.stream_bytes {
            self.entries.push_back(Entry {
                at: now,
                frame: frame.clone(),
            });
            self.bytes += size;
        } else {
            // Not kept: what is kept must stay contiguous up to the head.
            self.clear();
        }
        self.trim(now, cfg);
        (self.head, self.bytes as isize - before as isize)
    }

    /// Drops events past the count, byte or age bound, oldest first; returns the bytes freed.
    pub(crate) fn trim(&mut self, now: u32, cfg: &HistoryConfig) -> usize {
        let before = self.bytes;
        let min_at = now.saturating_sub(cfg.ttl_secs());
        while let Some(front) = self.entries.front() {
            let over = self.entries.len() > cfg.size || self.bytes > cfg.stream_bytes;
            if !over && front.at >= min_at {
                break;
            }
            self.bytes -= front.frame.len() + ENTRY_OVERHEAD;
            self.entries.pop_front();
        }
        if self.entries.is_empty() {
            self.entries = VecDeque::new();
        }
        before - self.bytes
    }

    /// Drops every event (the offset numbering goes on); returns the bytes freed.
    pub(crate) fn clear(&mut self) -> usize {
        let freed = self.bytes;
        self.entries = VecDeque::new();
        self.bytes = 0;
        freed
    }

    /// What a client at `from` is owed: every later event, positioned, or why not.
    pub(crate) fn resume(&self, from: &Position, now: u32, cfg: &HistoryConfig) -> Resume {
        // An offset past the head under our epoch means the client saw a history we no longer
        // have (e.g. a store restored from an older snapshot): as lost as an unknown epoch.
        if *from.epoch != *self.epoch || from.offset > self.head {
            return Resume::Resync(ResyncReason::EpochChanged);
        }
        let missed = (self.head - from.offset) as usize;
        let min_at = now.saturating_sub(cfg.ttl_secs());
        let kept = self.entries.iter().rev().take_while(|e| e.at >= min_at);
        if kept.clone().count() < missed {
            return Resume::Resync(ResyncReason::PositionExpired);
        }
        let mut frames: Vec<Bytes> = kept
            .take(missed)
            .zip((from.offset + 1..=self.head).rev())
            .map(|(e, offset)| protocol::positioned(&e.frame, offset, &self.epoch))
            .collect();
        frames.reverse();
        Resume::Replay(frames)
    }
}

/// What a client at `from` is owed from a layer's read of its stream after `from.offset`: the
/// rules of [`Stream::resume`], over what the layer kept.
pub(crate) fn resume_from(read: &StreamHistory, from: &Position) -> Resume {
    let head = &read.head;
    if *from.epoch != *head.epoch || from.offset > head.offset {
        return Resume::Resync(ResyncReason::EpochChanged);
    }
    let mut want = from.offset + 1;
    let mut frames = Vec::with_capacity(read.events.len());
    for (offset, message) in &read.events {
        if *offset < want {
            continue; // read from an earlier position, for another member
        }
        let Ok(plain) = protocol::event_frame(message) else {
            break;
        };
        if *offset != want {
            break;
        }
        frames.push(protocol::positioned(&plain, *offset, &head.epoch));
        want += 1;
    }
    if want != head.offset + 1 {
        // Something between the position and the head was trimmed, aged out or unreadable.
        return Resume::Resync(ResyncReason::PositionExpired);
    }
    Resume::Replay(frames)
}

#[cfg(test)]
mod tests;
