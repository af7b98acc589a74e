//! Exact accounting of a client that drops and comes back (issue 16 §5): what it recovered in a
//! replay, what the server told it was gone (`resync`), and what went missing without a word.
//!
//! # The accounting unit
//! Events are numbered per user stream: the tester's `seq` (1, 2, … per user, in publish order)
//! and the server's `offset` (one per event of `user_{id}`, the same on every connection of the
//! user). The unit is one *logical client*: a connection index, kept across its reconnects, which
//! must see every event of its user's stream published during the run exactly once, in order. A
//! user with several connections is accounted once per connection, each against its own
//! position, since each resumes on its own. For such a client:
//! - **recovered**: events published (their publish call returned) before a resumed reconnect
//!   began and not yet received, received after it: what the replay brought back;
//! - **unrecoverable** (signalled): missing events inside a range a `resync` announced on that
//!   client: from the highest seq received before the `resync` to the head it names;
//! - **lost_silent**: every other missing event, the figure that must be 0 with resume on.
//!
//! A `resync`'s head is an offset; it becomes a seq through `offset − seq`, which is fixed for
//! a user's stream within one epoch when only this run publishes to it (learnt from the position
//! at connect, before anything was published, and from every event). When the epoch changed, or
//! the head is missing (`broker_reconnected`), the range ends at the first event after it
//! (`seq − (offset − head)`, or `seq − 1`); with no event after it, at the end of the stream.

use std::collections::BTreeMap;

use super::seq::SeqTracker;

/// Signalled ranges kept per client.
const MAX_WINDOWS: usize = 1024;

/// A stream position: what `since=`/`epoch=` send back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Position {
    /// The offset of the last event (or the head at connect).
    pub(crate) offset: u64,
    /// The history the offset belongs to.
    pub(crate) epoch: String,
}

/// A `resync` not yet turned into a range of seqs.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Highest seq received before it.
    after: u64,
    /// The head it named.
    head: Option<u64>,
}

/// A resumed reconnect waiting to catch up.
#[derive(Debug, Clone, Copy)]
struct Resume {
    /// When the reconnect began, unix ns.
    started_ns: u64,
    /// The user's highest seq published before then: caught up once it (or a later one) arrives.
    watermark: u64,
}

/// One logical client's churn accounting (bounded: one range per `resync`, one recovery time
/// per reconnect, and reconnects are bounded by the plan's schedule).
#[derive(Debug, Clone, Default)]
pub(crate) struct Recovery {
    /// Connection index.
    pub(crate) idx: usize,
    /// The last position received: sent back as `since=`/`epoch=` on a resume.
    pub(crate) position: Option<Position>,
    /// `offset − seq` in `base_epoch`.
    base: Option<u64>,
    base_epoch: String,
    /// Signalled ranges of seqs, inclusive.
    windows: Vec<(u64, u64)>,
    pending: Option<Pending>,
    resume: Option<Resume>,
    /// Drops made by the tester.
    pub(crate) drops: u64,
    /// Reconnects that got `connection_established`.
    pub(crate) reconnects: u64,
    /// Reconnect attempts that failed.
    pub(crate) reconnect_failures: u64,
    /// Events received in a replay (see the module doc).
    pub(crate) recovered: u64,
    /// Bytes of those frames.
    pub(crate) replay_bytes: u64,
    /// Time from a resumed reconnect's start to caught up, µs, one per reconnect that caught up.
    pub(crate) recovery_us: Vec<u64>,
    /// `refresh` frames sent.
    pub(crate) refreshes: u64,
    /// `refreshed` answers received.
    pub(crate) refreshed: u64,
    /// Connections the server ended (courier restarted, a broker outage), by how: the close
    /// code, or `eof`/`io` for a stream that ended without a close frame.
    pub(crate) server_closes: BTreeMap<String, u64>,
    /// `resync` frames received, by reason (`unknown` when the frame named none).
    pub(crate) resyncs: BTreeMap<String, u64>,
}

impl Recovery {
    /// The tester drops the connection: a `refresh` still unanswered on it was cut by the tester,
    /// not refused by the server, so it is not counted as sent.
    pub(crate) fn dropping(&mut self) {
        self.drops += 1;
        self.stopped_reading();
    }

    /// The server ended the connection (`how`: its close code or `eof`/`io`): counted; a
    /// `refresh` still unanswered on it is not counted as sent (nothing could answer it).
    pub(crate) fn server_closed(&mut self, how: String) {
        *self.server_closes.entry(how).or_default() += 1;
        self.stopped_reading();
    }

    /// The tester stops reading this connection (a drop, or the end of the run): a `refresh`
    /// still unanswered was cut by the tester, not refused by the server, so it is not counted.
    pub(crate) fn stopped_reading(&mut self) {
        self.refreshes = self.refreshes.min(self.refreshed);
    }
}

/// A logical client's final figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Missing events inside signalled ranges.
    pub(crate) unrecoverable: u64,
    /// Missing events outside them.
    pub(crate) lost_silent: u64,
}

impl Recovery {
    /// Accounting for connection `idx`.
    pub(crate) fn new(idx: usize) -> Self {
        Self {
            idx,
            ..Self::default()
        }
    }

    /// The first connection's `connection_established` position (the head): nothing of this run
    /// was published yet, so seq `s` will be offset `head + s`.
    pub(crate) fn connected(&mut self, head: Option<Position>) {
        if let Some(p) = head {
            self.base = Some(p.offset);
            self.base_epoch.clone_from(&p.epoch);
            self.position = Some(p);
        }
    }

    /// A reconnect begins at `now_ns`; `watermark`: the user's highest seq published so far
    /// (`Some` when it resumes).
    pub(crate) fn reconnecting(&mut self, now_ns: u64, watermark: Option<u64>) {
        self.resume = watermark.map(|watermark| Resume {
            started_ns: now_ns,
            watermark,
        });
    }

    /// The reconnect got `connection_established` at `now_ns`; `max_seen`: highest seq received.
    pub(crate) fn reconnected(&mut self, now_ns: u64, max_seen: u64) {
        self.reconnects += 1;
        if let Some(r) = self.resume {
            if r.watermark <= max_seen {
                self.caught_up(now_ns);
            }
        }
    }

    fn caught_up(&mut self, now_ns: u64) {
        if let Some(r) = self.resume.take() {
            self.recovery_us
                .push(now_ns.saturating_sub(r.started_ns) / 1000);
        }
    }

    /// One event of this run: `seq`, whether it was new to this client, its position (offset and
    /// epoch bytes), when, and its frame's size.
    pub(crate) fn event(
        &mut self,
        seq: u64,
        fresh: bool,
        pos: Option<(u64, &[u8])>,
        now_ns: u64,
        bytes: usize,
    ) {
        if let Some((offset, epoch)) = pos {
            if let Some(p) = self.pending.take() {
                let upper = match p.head {
                    Some(h) if offset >= h => seq.saturating_sub(offset - h),
                    _ => seq.saturating_sub(1),
                };
                self.signal(p.after, upper);
            }
            if self.base_epoch.as_bytes() != epoch {
                self.base_epoch = String::from_utf8_lossy(epoch).into_owned();
                self.base = None;
            }
            if self.base.is_none() {
                self.base = offset.checked_sub(seq);
            }
            match &mut self.position {
                Some(p) if p.epoch.as_bytes() == epoch => p.offset = offset,
                _ => {
                    self.position = Some(Position {
                        offset,
                        epoch: self.base_epoch.clone(),
                    })
                }
            }
        } else if let Some(p) = self.pending.take() {
            self.signal(p.after, seq.saturating_sub(1));
        }
        if let Some(r) = self.resume {
            if fresh && seq <= r.watermark {
                self.recovered += 1;
                self.replay_bytes += bytes as u64;
            }
            if seq >= r.watermark {
                self.caught_up(now_ns);
            }
        }
    }

    /// A `resync` for `reason` naming the head `offset`/`epoch` (any may be absent);
    /// `max_seen`: the highest seq received before it. A resumed reconnect that gets one does
    /// not catch up.
    pub(crate) fn resync(
        &mut self,
        reason: Option<&str>,
        offset: Option<u64>,
        epoch: Option<&str>,
        max_seen: u64,
    ) {
        *self
            .resyncs
            .entry(reason.unwrap_or("unknown").to_owned())
            .or_default() += 1;
        self.resume = None;
        if let Some(p) = self.pending.take() {
            self.signal(p.after, max_seen);
        }
        match (offset, epoch, self.base) {
            (Some(head), Some(e), Some(base)) if e == self.base_epoch => {
                self.signal(max_seen, head.saturating_sub(base));
            }
            _ => {
                self.pending = Some(Pending {
                    after: max_seen,
                    head: offset,
                })
            }
        }
        if let (Some(offset), Some(epoch)) = (offset, epoch) {
            self.position = Some(Position {
                offset,
                epoch: epoch.to_owned(),
            });
        }
    }

    /// Records seqs `after + 1 ..= upper` as signalled. Past [`MAX_WINDOWS`] ranges (a server
    /// sending a `resync` per event) the last range grows instead, so memory stays bounded; what
    /// lies between is then counted as signalled, which that server has more or less done.
    fn signal(&mut self, after: u64, upper: u64) {
        if upper <= after {
            return;
        }
        let full = self.windows.len() >= MAX_WINDOWS;
        match self.windows.last_mut() {
            Some(last) if full => last.1 = last.1.max(upper),
            _ => self.windows.push((after + 1, upper)),
        }
    }

    /// Splits what `seq` is missing of `1..=published` into signalled and silent. A `resync`
    /// still open at the end covers the rest of the stream. `refused`: this user's seqs
    /// whose publish the server refused (connection refused, an HTTP error status): never
    /// accepted, so missing them is neither a loss nor a signalled gap.
    pub(crate) fn settle(&self, seq: &SeqTracker, published: u64, refused: &[u64]) -> Settled {
        let mut windows = self.windows.clone();
        if let Some(p) = self.pending {
            windows.push((p.after + 1, published));
        }
        windows.sort_unstable();
        let (mut covered, mut covered_to) = (Vec::with_capacity(windows.len()), 0u64);
        for (lo, hi) in windows {
            let (lo, hi) = (lo.max(covered_to + 1), hi.min(published));
            if lo <= hi {
                covered.push((lo, hi));
                covered_to = hi;
            }
        }
        let mut unrecoverable: u64 = covered.iter().map(|&(lo, hi)| seq.missing_in(lo, hi)).sum();
        let mut lost = seq.lost(published);
        for &s in refused.iter().filter(|&&s| s <= published) {
            if seq.missing_in(s, s) == 0 {
                continue; // refused yet delivered: the server had taken it after all
            }
            lost = lost.saturating_sub(1);
            if covered.iter().any(|&(lo, hi)| (lo..=hi).contains(&s)) {
                unrecoverable = unrecoverable.saturating_sub(1);
            }
        }
        Settled {
            unrecoverable: unrecoverable.min(lost),
            lost_silent: lost - unrecoverable.min(lost),
        }
    }
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
