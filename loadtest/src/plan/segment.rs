//! `--segment K/N` and `--start-at`: one run split over N load-tester processes (k6's execution
//! segments); the raw histograms that let `loadtest merge` add them up are schema data
//! ([`crate::schema::Raw`]).
//!
//! A segment is a contiguous slice of the users: segment K of N takes user indexes
//! `[U·(K−1)/N, U·K/N)`, their connections and their events, so every user's connections, sequence
//! numbers and publish clock live in exactly one process and its loss/duplicate/reorder accounting
//! stays exact. Token user ids follow the global index (segment 2/2 of 10 users mints ids 6..=10).
//! The rate model's events/s is split in proportion to the users; bursts are per user already.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ArrivalModel, Plan};
use crate::error::{Error, Result};

/// How far from now `--start-at` may be: catches seconds given for milliseconds.
const MAX_START_SKEW: Duration = Duration::from_secs(3600);

/// The K-th (1-based) of N slices of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// K, 1-based.
    pub index: usize,
    /// N.
    pub count: usize,
}

impl Segment {
    /// Parses `K/N` with `1 <= K <= N`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::Usage(format!("--segment {text:?}: expected K/N with 1 <= K <= N"));
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }

    /// The user indexes of this segment among `users`.
    pub fn users(&self, users: usize) -> std::ops::Range<usize> {
        let at = |k: usize| (users as u128 * k as u128 / self.count as u128) as usize;
        at(self.index - 1)..at(self.index)
    }

    /// Narrows a whole-scenario plan to this segment: its users (and their first index), their
    /// connections (connection `i` belongs to user `i % users`, as in an unsegmented run) and
    /// their share of a paced rate.
    pub fn apply(&self, plan: &mut Plan) -> Result<()> {
        if plan.find_max.is_some() {
            return Err(Error::Usage(
                "--segment and --find-max do not mix: search with one process".into(),
            ));
        }
        if matches!(plan.arrival, ArrivalModel::Replay { .. }) {
            // The trace's users map onto the whole run's users (`user % users`): a slice would
            // need the whole count and its offset in the mapping. One process replays.
            return Err(Error::Usage(
                "--segment and --model replay do not mix: replay with one process".into(),
            ));
        }
        let (users, conns) = (plan.users, plan.connections);
        let mine = self.users(users);
        if mine.is_empty() {
            return Err(Error::Usage(format!(
                "--segment {self}: {users} users cannot fill {} segments",
                self.count
            )));
        }
        let connections: usize = mine
            .clone()
            .map(|u| conns / users + usize::from(u < conns % users))
            .sum();
        if let ArrivalModel::Rate { per_sec, length } = plan.arrival {
            plan.arrival = ArrivalModel::Rate {
                per_sec: per_sec * mine.len() as f64 / users as f64,
                length,
            };
        }
        plan.first_user = mine.start;
        plan.users = mine.len();
        plan.connections = connections;
        plan.segment = Some(*self);
        Ok(())
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Checks `--start-at` (unix ms) is a plausible instant: within an hour of now.
pub fn check_start_at(unix_ms: u64) -> Result<()> {
    let now = unix_ms_now();
    if now.abs_diff(unix_ms) > MAX_START_SKEW.as_millis() as u64 {
        return Err(Error::Usage(format!(
            "--start-at {unix_ms}: more than an hour from now ({now}); it is unix milliseconds"
        )));
    }
    Ok(())
}

/// When publishing starts: `start_at_ms` (unix ms, this machine's clock) if given and still
/// ahead, else `lead` from now. Every segment given the same `--start-at` stamps the same intended
/// send times.
pub fn publish_start(start_at_ms: Option<u64>, lead: Duration) -> tokio::time::Instant {
    let soon = tokio::time::Instant::now() + lead;
    let Some(at) = start_at_ms else { return soon };
    let now = unix_ms_now();
    if at <= now {
        eprintln!(
            "warning: the agreed start {at} passed {} ms ago (connecting took longer); publishing now",
            now - at
        );
        return soon;
    }
    tokio::time::Instant::now() + Duration::from_millis(at - now)
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n() {
        assert_eq!(
            Segment::parse("2/3").expect("ok"),
            Segment { index: 2, count: 3 }
        );
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            assert!(Segment::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_partition_the_users_exactly() {
        for (users, n) in [(10, 3), (7, 7), (1000, 4), (5, 2)] {
            let mut next = 0;
            for k in 1..=n {
                let r = Segment { index: k, count: n }.users(users);
                assert_eq!(r.start, next, "contiguous");
                next = r.end;
            }
            assert_eq!(next, users, "covers every user once");
        }
    }

    #[test]
    fn segment_plans_add_up_to_the_whole_plan() {
        use clap::Parser;
        let whole = |extra: &[&str]| {
            let mut argv = vec!["loadtest", "-c", "10", "-u", "4", "--model", "rate"];
            argv.extend_from_slice(&["--rate", "100", "--rate-duration", "1s"]);
            argv.extend_from_slice(extra);
            Plan::from_opts(&crate::cli::Opts::parse_from(argv)).expect("valid plan")
        };
        let all = whole(&[]);
        let (mut conns, mut users, mut rate, mut events) = (0, 0, 0.0, 0);
        for k in 1..=3 {
            let seg = format!("{k}/3");
            let p = whole(&["--segment", &seg]);
            assert_eq!(p.first_user, users, "contiguous user slices");
            assert_eq!(p.segment, Some(Segment { index: k, count: 3 }));
            conns += p.connections;
            users += p.users;
            events += p.total_events();
            if let ArrivalModel::Rate { per_sec, .. } = p.arrival {
                rate += per_sec;
            }
        }
        assert_eq!((conns, users), (all.connections, all.users));
        assert!((rate - 100.0).abs() < 1e-9, "{rate}");
        assert!(events.abs_diff(all.total_events()) <= 3, "rounding only");
    }
}
