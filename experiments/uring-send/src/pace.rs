//! The send schedule every variant follows: how many sends are due, and to which socket.

use std::time::{Duration, Instant};

use crate::Run;

/// Picks the socket of each send: xorshift64*, so every variant with the same seed sends to the
/// same sockets in the same order.
#[derive(Clone, Debug)]
pub struct Picker {
    state: u64,
    n: u64,
}

impl Picker {
    /// A picker over `n` sockets.
    pub fn new(seed: u64, n: usize) -> Picker {
        Picker {
            // xorshift must not start at zero.
            state: seed | 1,
            n: n.max(1) as u64,
        }
    }

    /// The next socket index, in `0..n`.
    pub fn next_index(&mut self) -> usize {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // The modulo bias over 10k sockets is ~1e-15: irrelevant here.
        (r % self.n) as usize
    }
}

/// Paced (`rate > 0`: every tick, the sends due since the start) or as fast as possible
/// (`rate == 0`: `batch` per round until the time is up).
#[derive(Clone, Debug)]
pub struct Schedule {
    rate: u64,
    batch: usize,
    tick: Duration,
    secs: f64,
    start: Instant,
    deadline: Instant,
    /// Sends handed out so far.
    pub issued: u64,
    /// Sends a paced run makes in all (`rate × secs`); unbounded at `rate == 0`.
    total: u64,
}

/// Longest run allowed, whatever `--secs` says (the box is shared).
pub const MAX_SECS: f64 = 60.0;

impl Schedule {
    /// A schedule starting now.
    pub fn new(args: &Run) -> Schedule {
        let secs = args.secs.clamp(0.1, MAX_SECS);
        let start = Instant::now();
        Schedule {
            rate: args.rate,
            batch: args.batch.max(1),
            tick: Duration::from_micros(args.tick_us.max(50)),
            secs,
            start,
            deadline: start + Duration::from_secs_f64(secs),
            issued: 0,
            total: (args.rate as f64 * secs) as u64,
        }
    }

    /// Sends due now (0 when none), or `None` when the run is over.
    pub fn due(&mut self) -> Option<usize> {
        let now = Instant::now();
        let target = if self.rate == 0 {
            if now >= self.deadline {
                return None;
            }
            self.issued + self.batch as u64
        } else {
            if self.issued >= self.total {
                return None;
            }
            let elapsed = now.duration_since(self.start).as_secs_f64().min(self.secs);
            ((self.rate as f64 * elapsed) as u64).min(self.total)
        };
        let n = target.saturating_sub(self.issued);
        self.issued += n;
        Some(n as usize)
    }

    /// When the next paced tick falls (at `rate == 0`: now, no waiting).
    pub fn next_tick(&self) -> Instant {
        let now = Instant::now();
        if self.rate == 0 {
            return now;
        }
        let since = now.duration_since(self.start);
        let ticks = since.as_nanos() / self.tick.as_nanos() + 1;
        let at =
            Duration::from_nanos(u64::try_from(ticks * self.tick.as_nanos()).unwrap_or(u64::MAX));
        self.start + at
    }

    /// Sleeps the calling thread until the next tick (no-op when unpaced).
    pub fn wait_tick(&self) {
        let at = self.next_tick();
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picker_is_deterministic_and_in_range() {
        let mut a = Picker::new(7, 10_000);
        let mut b = Picker::new(7, 10_000);
        for _ in 0..10_000 {
            let i = a.next_index();
            assert_eq!(i, b.next_index());
            assert!(i < 10_000);
        }
    }

    #[test]
    fn picker_spreads_over_sockets() {
        let mut p = Picker::new(19, 100);
        let mut seen = [0u32; 100];
        for _ in 0..100_000 {
            seen[p.next_index()] += 1;
        }
        // Each of 100 sockets expects 1000; a bad generator would leave some near zero.
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }
}
