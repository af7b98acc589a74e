//! `--metrics-listen`: the tester's own Prometheus endpoint, so a long run can be watched in
//! Grafana beside courier's `/metrics`.
//!
//! One source of truth. While a run goes, a scrape adds up the counters the run already keeps —
//! the [`Live`] counters the progress bar reads and every receiving worker's [`WorkerStats`] (its
//! latency histogram included), each read under the lock its worker already takes once per
//! socket read — so the receive path pays nothing per delivery for being watched. When the run's
//! report is built, the endpoint is *settled* from that report (its figures and its raw latency
//! histogram), so the last values served are the report's exactly; they stay served until the
//! process exits (`--metrics-linger` holds the exit so a scraper gets them). A scrape costs a
//! brief lock per worker; results are reused for [`REUSE`], so many scrapers cost one.
//!
//! Each run of `--repeat` or `--find-max` starts the counters again from zero (Prometheus reads
//! that as a counter reset; `rate()` handles it) and `loadtest_runs_started_total` counts the runs.

mod serve;
mod snapshot;
mod text;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub(crate) use serve::serve;
pub(crate) use snapshot::Snapshot;

use super::{Live, WorkerStats};
use crate::schema::Report;

/// How long a scrape's result is served again before the counters are read anew: what the
/// progress bar's refresh costs, whatever the number of scrapers.
const REUSE: Duration = Duration::from_millis(100);

/// One receiving worker's counters, as the endpoint reads them: implemented by the session for
/// its worker state, so this layer never names the session's types.
pub(crate) trait Shard: Send + Sync {
    /// Adds this worker's counters so far into `into` (under the worker's own lock, briefly).
    fn add_to(&self, into: &mut Snapshot);
}

impl Snapshot {
    /// Adds one worker's stats: its deliveries, latencies, duplicates, gaps and ended
    /// connections.
    pub(crate) fn add_worker(&mut self, s: &WorkerStats) {
        let _ = self.latency_us.add(&s.latency_us);
        self.deliveries += s.latency_us.len();
        self.duplicates += s.duplicated;
        self.lost += s.gaps;
        self.resyncs += s.resyncs;
        self.ended += s.ended;
    }
}

/// A cheap-clone handle on the endpoint's state; [`Exposition::off`] (no `--metrics-listen`)
/// makes every call a no-op.
#[derive(Clone, Default)]
pub(crate) struct Exposition(Option<Arc<Board>>);

/// What the endpoint serves from. Its lock is held only to swap sources or copy the list of
/// workers, never while a worker's lock is taken or across an `.await`.
struct Board {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Runs begun (`loadtest_runs_started_total`).
    runs: u64,
    /// The running session's counters (`None` before the first run and once settled).
    live: Option<Arc<Live>>,
    /// Its receiving workers.
    shards: Vec<Arc<dyn Shard>>,
    /// The last report's figures: served from the moment the run's report is built.
    settled: Option<Arc<Snapshot>>,
    /// Bumped whenever the sources change, so a page rendered from the old ones is not kept.
    version: u64,
    /// The last rendered page, when it was rendered, and from which sources.
    page: Option<(Instant, u64, Bytes)>,
}

impl Exposition {
    /// No endpoint: every call does nothing.
    pub(crate) fn off() -> Self {
        Self(None)
    }

    /// An endpoint's state (the listener is [`serve`]'s).
    pub(crate) fn on() -> Self {
        Self(Some(Arc::new(Board {
            state: Mutex::new(State::default()),
        })))
    }

    /// Whether an endpoint is served (callers skip building what only it would read).
    pub(crate) fn is_on(&self) -> bool {
        self.0.is_some()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        let board = self.0.as_ref()?;
        let mut state = board.state.lock().unwrap_or_else(PoisonError::into_inner);
        Some(f(&mut state))
    }

    /// A run begins: its live counters replace the previous run's figures.
    pub(crate) fn begin(&self, live: Arc<Live>) {
        self.with(|s| {
            s.runs += 1;
            s.live = Some(live);
            s.shards.clear();
            s.settled = None;
            s.version += 1;
            s.page = None;
        });
    }

    /// A receiving worker of the running session.
    pub(crate) fn attach(&self, shard: Arc<dyn Shard>) {
        self.with(|s| s.shards.push(shard));
    }

    /// The run's report is built: from now on the endpoint serves its figures (the workers'
    /// state is let go).
    pub(crate) fn settle(&self, report: &Report) {
        if !self.is_on() {
            return;
        }
        let settled = Arc::new(Snapshot::of_report(report));
        self.with(|s| {
            s.live = None;
            s.shards.clear();
            s.settled = Some(settled);
            s.version += 1;
            s.page = None;
        });
    }

    /// The figures now: the settled report's, or the running session's added up.
    pub(crate) fn snapshot(&self) -> Option<Snapshot> {
        let (runs, live, shards, settled) =
            self.with(|s| (s.runs, s.live.clone(), s.shards.clone(), s.settled.clone()))?;
        let mut snap = match (settled, live) {
            (Some(done), _) => Snapshot::clone(&done),
            (None, Some(live)) => {
                let mut snap = Snapshot::of_live(&live);
                for shard in &shards {
                    shard.add_to(&mut snap);
                }
                snap.open = snap.established.saturating_sub(snap.ended);
                snap
            }
            (None, None) => Snapshot::default(),
        };
        snap.runs = runs;
        Some(snap)
    }

    /// The Prometheus text page, rendered at most once per [`REUSE`].
    pub(crate) fn page(&self) -> Bytes {
        let Some((version, cached)) = self.with(|s| (s.version, s.page.clone())) else {
            return Bytes::new();
        };
        if let Some((at, v, page)) = cached {
            if v == version && at.elapsed() < REUSE {
                return page;
            }
        }
        let page = Bytes::from(
            self.snapshot()
                .map(|s| text::render(&s))
                .unwrap_or_default(),
        );
        self.with(|s| {
            // Sources swapped while rendering: the next scrape renders from the new ones.
            if s.version == version {
                s.page = Some((Instant::now(), version, page.clone()));
            }
        });
        page
    }
}

/// A listening endpoint: where it is bound, and its task (ended when dropped).
pub(crate) struct Listening {
    /// The bound address (port 0 resolved).
    pub(crate) addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}
