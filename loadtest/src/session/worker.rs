//! Receiving workers: each owns a slice of the healthy connections, runs one small task per
//! connection and keeps one [`WorkerStats`] for the slice; slow readers live in [`super::slow`].
//!
//! One task per connection, because tokio schedules a woken task for less than any poller set
//! built on top of it: the `SelectAll` this replaced allocated and freed a task node and cloned
//! wakers for every frame (~15 % of the tester's CPU per delivery). A task reads whatever its
//! socket holds into its [`Client`]'s buffer, then accounts for every complete message under the
//! slice's stats lock, once per read, never across an `.await`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::churn::{self, ChurnCtx};
use super::client::{Client, ClientError};
use super::frame;
use super::wire::Msg;
use crate::measure::exposition::{Shard, Snapshot};
use crate::measure::{Clock, ConnResult, Exposition, Live, WorkerStats};
use crate::measure::{Position, Receipt, Recovery, SeqTracker};

/// Deliveries a worker counts locally before adding them to the live counter.
const LIVE_BATCH: u64 = 512;
/// Bound on the polite close at the end.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on holding finished connections open while other workers still receive.
const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// The publishing phase, as the receivers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Events are still being published.
    Publishing,
    /// Publishing is over: wait for stragglers until this instant.
    Draining(Instant),
}

/// What every receiver shares.
#[derive(Clone)]
pub(crate) struct Shared {
    /// The run clock.
    pub(crate) clock: Clock,
    /// This run's id (frames with another id are foreign).
    pub(crate) run_id: Arc<str>,
    /// Publishing phase.
    pub(crate) phase: watch::Receiver<Phase>,
    /// Hard stop (Ctrl-C, `--duration`).
    pub(crate) stop: CancellationToken,
    /// Live counters.
    pub(crate) live: Arc<Live>,
    /// Length of the run, for the timeline.
    pub(crate) run_len: Duration,
    /// Each worker reports here when it has stopped receiving (capacity: one slot per worker).
    pub(crate) done: tokio::sync::mpsc::Sender<()>,
    /// Cancelled once every worker has reported: only then do connections close, so closing
    /// (server-side teardown) never lands inside the measured delivery window.
    pub(crate) release: CancellationToken,
    /// Churn and token refresh (`None`: every connection just receives).
    pub(crate) churn: Option<Arc<ChurnCtx>>,
    /// `[diagnostics] receive_cost`: CPU each delivery costs (a busy wait; zero in real runs).
    pub(crate) receive_cost: Duration,
    /// `--metrics-listen`'s endpoint: every worker's [`Acc`] is attached to it.
    pub(crate) exposition: Exposition,
}

/// One connection handed to a receiver.
pub(crate) struct Assigned {
    /// Connection index.
    pub(crate) idx: usize,
    /// The position `connection_established` carried.
    pub(crate) head: Option<Position>,
    /// The connection.
    pub(crate) client: Client,
    /// User index.
    pub(crate) user: usize,
    /// Events planned for that user (completion and bitset bound).
    pub(crate) planned: u64,
}

/// One connection's accounting.
pub(crate) struct Slot {
    pub(crate) user: usize,
    pub(crate) planned: u64,
    pub(crate) seq: SeqTracker,
    pub(crate) closed: Option<u16>,
    pub(crate) done: bool,
    /// Churn accounting, for connections of a run with churn or token refresh.
    pub(crate) recovery: Option<Box<Recovery>>,
}

impl Slot {
    pub(crate) fn new(user: usize, planned: u64) -> Self {
        Self {
            user,
            planned,
            seq: SeqTracker::new(planned),
            closed: None,
            done: false,
            recovery: None,
        }
    }

    pub(crate) fn result(self, slow: bool) -> ConnResult {
        ConnResult {
            user: self.user,
            slow,
            seq: self.seq,
            closed: self.closed,
            recovery: self.recovery,
        }
    }
}

/// Busy-waits `cost` on this thread: the `receive_cost` diagnostic, a receiver with work to do
/// per delivery (it holds its runtime thread, as real per-message work would).
fn spin(cost: Duration) {
    if cost.is_zero() {
        return;
    }
    let start = std::time::Instant::now();
    while start.elapsed() < cost {
        std::hint::spin_loop();
    }
}

/// Accounts for up to `limit` buffered messages of `client`, received at `now_ns`; returns
/// (deliveries, messages handled). A protocol error is counted and ends the connection.
pub(crate) fn take(
    client: &mut Client,
    slot: &mut Slot,
    stats: &mut WorkerStats,
    shared: &Shared,
    now_ns: u64,
    limit: u64,
) -> (u64, u64) {
    let (mut delivered, mut handled) = (0, 0);
    while handled < limit && !slot.done {
        let msg = match client.next_msg() {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                failed(stats, slot, &e.into());
                break;
            }
        };
        handled += 1;
        match msg {
            Msg::Text(text) => match frame::event(text) {
                Some(d) if d.run == shared.run_id.as_bytes() => {
                    let max_before = slot.seq.max();
                    let receipt = slot.seq.record(d.seq);
                    stats.receipt(receipt, max_before, d.seq);
                    let fresh = matches!(receipt, Receipt::InOrder | Receipt::Reordered);
                    if fresh {
                        stats.delivery(&shared.clock, now_ns, d.ts);
                        delivered += 1;
                        spin(shared.receive_cost);
                    }
                    if let Some(r) = slot.recovery.as_deref_mut() {
                        r.event(d.seq, fresh, frame::position(text), now_ns, text.len());
                    }
                    slot.done = slot.seq.complete(slot.planned);
                }
                _ => other(text, slot, stats),
            },
            Msg::Binary(_) => {}
            Msg::Close(code) => {
                stats.ended += 1;
                slot.closed = Some(code);
                slot.done = true;
            }
        }
    }
    (delivered, handled)
}

/// A text frame that is not this run's event: a `resync` (counted; with churn, its range is
/// signalled), a `refreshed` answer, or foreign.
fn other(text: &[u8], slot: &mut Slot, stats: &mut WorkerStats) {
    match (frame::kind(text), slot.recovery.as_deref_mut()) {
        (Some(frame::RESYNC), r) => {
            stats.resyncs += 1;
            if let Some(r) = r {
                let head = frame::resync_head(text);
                r.resync(
                    head.reason.as_deref(),
                    head.offset,
                    head.epoch.as_deref(),
                    slot.seq.max(),
                );
            }
        }
        (Some(frame::REFRESHED), Some(r)) => r.refreshed += 1,
        _ => stats.foreign += 1,
    }
}

/// Counts a read error against the connection and ends it.
pub(crate) fn failed(stats: &mut WorkerStats, slot: &mut Slot, e: &ClientError) {
    *stats.errors.entry(format!("receive: {e}")).or_default() += 1;
    stats.ended += u64::from(!slot.done);
    slot.done = true;
}

/// A worker's stats and the deliveries not yet added to the live counter.
pub(super) struct Acc {
    pub(super) stats: WorkerStats,
    unreported: u64,
}

/// The endpoint reads a worker's stats under the lock the worker takes once per socket read.
impl Shard for Mutex<Acc> {
    fn add_to(&self, into: &mut Snapshot) {
        let a = self.lock().unwrap_or_else(PoisonError::into_inner);
        into.add_worker(&a.stats);
    }
}

/// One connection being received (`client` is `None` while a churning one is away, or after it
/// gave up reconnecting).
pub(super) struct Conn {
    pub(super) idx: usize,
    pub(super) client: Option<Client>,
    pub(super) slot: Slot,
}

/// Accounts for what one read of `client` returned, under the worker's lock (taken once per
/// read, never across an `.await`).
pub(super) fn absorb(
    acc: &Mutex<Acc>,
    client: &mut Client,
    slot: &mut Slot,
    shared: &Shared,
    read: Result<(), ClientError>,
) {
    let mut a = acc.lock().unwrap_or_else(PoisonError::into_inner);
    match read {
        Ok(()) => {
            // One clock read per socket read: the messages it returned were all there at this
            // instant (a few µs of handling at most separate the first and the last).
            let now_ns = shared.clock.now_ns();
            let (delivered, _) = take(client, slot, &mut a.stats, shared, now_ns, u64::MAX);
            a.unreported += delivered;
            if a.unreported >= LIVE_BATCH {
                let n = std::mem::take(&mut a.unreported);
                shared.live.received.fetch_add(n, Ordering::Relaxed);
            }
        }
        Err(e) => failed(&mut a.stats, slot, &e),
    }
}

/// Receives on one connection until it is complete, fails, or `cut` (stop or drain deadline).
async fn receive(
    mut c: Conn,
    acc: Arc<Mutex<Acc>>,
    shared: Shared,
    cut: CancellationToken,
) -> Conn {
    // Built once: a cancellation future registers itself on its first poll.
    let cancelled = cut.cancelled();
    tokio::pin!(cancelled);
    let Some(client) = c.client.as_mut() else {
        return c;
    };
    while !c.slot.done {
        let read = tokio::select! {
            biased;
            _ = &mut cancelled => break,
            r = client.fill() => r,
        };
        absorb(&acc, client, &mut c.slot, &shared, read);
    }
    c
}

/// Runs a receiving worker over `conns` until all are complete, the drain deadline, or the stop.
pub(crate) async fn run_worker(conns: Vec<Assigned>, shared: Shared) -> WorkerStats {
    let acc = Arc::new(Mutex::new(Acc {
        stats: WorkerStats::new(shared.run_len),
        unreported: 0,
    }));
    shared.exposition.attach(acc.clone());
    let cut = shared.stop.child_token();
    let mut tasks = JoinSet::new();
    for a in conns {
        let mut c = Conn {
            idx: a.idx,
            client: Some(a.client),
            slot: Slot::new(a.user, a.planned),
        };
        match shared.churn.clone() {
            Some(ctx) => {
                let mut r = Recovery::new(a.idx);
                r.connected(a.head);
                c.slot.recovery = Some(Box::new(r));
                tasks.spawn(churn::run(c, acc.clone(), shared.clone(), cut.clone(), ctx));
            }
            None => {
                tasks.spawn(receive(c, acc.clone(), shared.clone(), cut.clone()));
            }
        }
    }
    let mut finished = Vec::with_capacity(tasks.len());
    let mut lost_tasks = Vec::new();
    let mut phase_rx = shared.phase.clone();
    let mut phase_open = true;
    let mut deadline: Option<Instant> = None;
    loop {
        let far = Instant::now() + shared.run_len;
        tokio::select! {
            biased;
            _ = shared.stop.cancelled(), if !cut.is_cancelled() => cut.cancel(),
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)),
                if deadline.is_some() && !cut.is_cancelled() => cut.cancel(),
            changed = phase_rx.changed(), if phase_open => match changed {
                Err(_) => phase_open = false,
                Ok(()) => if let Phase::Draining(at) = *phase_rx.borrow() { deadline = Some(at) },
            },
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(c)) => finished.push(c),
                Some(Err(e)) => lost_tasks.push(format!("receiver task: {e}")),
            },
        }
    }
    let (mut stats, unreported) = {
        let mut a = acc.lock().unwrap_or_else(PoisonError::into_inner);
        let unreported = std::mem::take(&mut a.unreported);
        // A watched worker keeps its figures until the report settles the endpoint, so the
        // counters served never go back.
        let stats = if shared.exposition.is_on() {
            a.stats.clone()
        } else {
            std::mem::replace(&mut a.stats, WorkerStats::new(Duration::ZERO))
        };
        (stats, unreported)
    };
    shared
        .live
        .received
        .fetch_add(unreported, Ordering::Relaxed);
    for e in lost_tasks {
        *stats.errors.entry(e).or_default() += 1;
    }
    let _ = shared.done.try_send(());
    tokio::select! {
        _ = shared.release.cancelled() => {}
        _ = shared.stop.cancelled() => {}
        _ = tokio::time::sleep(RELEASE_WAIT) => {}
    }
    // Close politely so the server sees a normal closure, not a reset; bounded.
    let closes = finished.iter_mut().filter_map(|c| {
        let server_closed = c.slot.closed.is_some();
        c.client.as_mut().map(|client| client.close(server_closed))
    });
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, futures::future::join_all(closes)).await;
    stats.conns = finished.into_iter().map(|c| c.slot.result(false)).collect();
    stats
}
