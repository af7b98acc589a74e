//! Exact per-connection sequence accounting: received, duplicated, reordered, and lost at the end.
//!
//! A bitset of seen sequence numbers (bounded by the planned count per user) tells a late arrival
//! that fills a gap (reordered) from a second copy (duplicated). Loss is decided only at the end,
//! against what was actually published: gaps and a missing tail both count.

/// How one sequence number was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receipt {
    /// The next one, or a jump ahead over a gap.
    InOrder,
    /// Below the highest seen and not seen before: it overtook nothing, something overtook it.
    Reordered,
    /// Already seen.
    Duplicate,
    /// 0 or above the planned count: not an event this run published.
    Invalid,
}

/// One connection's view of its user's sequence.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeqTracker {
    seen: Vec<u64>,
    limit: u64,
    max: u64,
    /// Distinct sequence numbers received.
    pub(crate) unique: u64,
    /// Copies of already-seen numbers.
    pub(crate) duplicated: u64,
    /// Arrivals below the highest number seen.
    pub(crate) reordered: u64,
    /// Arrivals outside `1..=limit`.
    pub(crate) invalid: u64,
}

impl SeqTracker {
    /// A tracker for sequence numbers `1..=limit`.
    pub(crate) fn new(limit: u64) -> Self {
        let words = limit.div_ceil(64) as usize;
        Self {
            seen: vec![0; words],
            limit,
            ..Self::default()
        }
    }

    /// Records one arrival.
    pub(crate) fn record(&mut self, seq: u64) -> Receipt {
        if seq == 0 || seq > self.limit {
            self.invalid += 1;
            return Receipt::Invalid;
        }
        let (word, bit) = (((seq - 1) / 64) as usize, 1u64 << ((seq - 1) % 64));
        if self.seen[word] & bit != 0 {
            self.duplicated += 1;
            return Receipt::Duplicate;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        if seq < self.max {
            self.reordered += 1;
            Receipt::Reordered
        } else {
            self.max = seq;
            Receipt::InOrder
        }
    }

    /// Whether all of `1..=expected` arrived.
    pub(crate) fn complete(&self, expected: u64) -> bool {
        self.unique >= expected
    }

    /// The highest sequence number received (0: none).
    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// Numbers in `lo..=hi` (clamped to `1..=limit`) not received.
    pub(crate) fn missing_in(&self, lo: u64, hi: u64) -> u64 {
        let (lo, hi) = (lo.max(1), hi.min(self.limit));
        if lo > hi {
            return 0;
        }
        let seen = |n: u64| self.seen[((n - 1) / 64) as usize] & (1u64 << ((n - 1) % 64)) != 0;
        (lo..=hi).filter(|&n| !seen(n)).count() as u64
    }

    /// Lost out of `published` (numbers `1..=published`): gaps plus the missing tail.
    pub(crate) fn lost(&self, published: u64) -> u64 {
        let published = published.min(self.limit);
        let full = (published / 64) as usize;
        let mut got: u64 = self.seen[..full]
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let rest = published % 64;
        if rest > 0 {
            got += u64::from((self.seen[full] & ((1u64 << rest) - 1)).count_ones());
        }
        published - got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_loses_nothing() {
        let mut t = SeqTracker::new(100);
        for s in 1..=100 {
            assert_eq!(t.record(s), Receipt::InOrder);
        }
        assert!(t.complete(100));
        assert_eq!((t.lost(100), t.duplicated, t.reordered), (0, 0, 0));
    }

    #[test]
    fn gaps_and_missing_tail_are_lost() {
        let mut t = SeqTracker::new(10);
        for s in [1, 2, 5, 6] {
            t.record(s);
        }
        // 3, 4 are a gap; 7..=10 the missing tail.
        assert_eq!(t.lost(10), 6);
        // Against what was actually published (6), only the gap counts.
        assert_eq!(t.lost(6), 2);
        assert!(!t.complete(10));
    }

    #[test]
    fn duplicates_are_counted_once() {
        let mut t = SeqTracker::new(5);
        assert_eq!(t.record(1), Receipt::InOrder);
        assert_eq!(t.record(2), Receipt::InOrder);
        assert_eq!(t.record(2), Receipt::Duplicate);
        assert_eq!(t.record(1), Receipt::Duplicate);
        assert_eq!((t.unique, t.duplicated, t.reordered), (2, 2, 0));
        assert_eq!(t.lost(5), 3);
    }

    #[test]
    fn late_arrivals_are_reordered_not_lost() {
        let mut t = SeqTracker::new(5);
        for s in [1, 3, 2, 5, 4] {
            t.record(s);
        }
        assert_eq!((t.unique, t.reordered, t.duplicated), (5, 2, 0));
        assert_eq!(t.lost(5), 0);
    }

    #[test]
    fn out_of_range_is_invalid_and_bounded() {
        let mut t = SeqTracker::new(64);
        assert_eq!(t.record(0), Receipt::Invalid);
        assert_eq!(t.record(65), Receipt::Invalid);
        assert_eq!(t.record(64), Receipt::InOrder);
        assert_eq!(t.invalid, 2);
        assert_eq!(t.lost(64), 63);
        assert_eq!(t.lost(1000), 63, "published beyond the limit is clamped");
    }
}
