//! A publishing lane: turns the arrival model into a schedule of events, stamps each with its
//! intended send time (so latency is coordinated-omission-free), and feeds the lanes' publishers.
//!
//! Users are partitioned over lanes (`user % lanes`), so one user's events always go through one
//! lane, in order: reordering seen by a client is the server's, never the tester's. The lane count
//! is fixed before the run (`plan::lanes_for` sizes it from the rate).
//!
//! A replay walks the trace in time order: each event goes to its trace user's run user
//! (`plan::Trace::run_user`), intended at `start + offset ÷ speed`, with the next sequence number
//! of that run user, so a run user's sequence follows the merged order of its trace users.
//!
//! Each lane also records how far behind its schedule it sent ([`Published::lag_us`]): for the
//! rate and replay models, every event's send start − its intended time; for the burst model,
//! each burst's first send − the burst's time (a burst is meant to go out as fast as the lanes can
//! send it, so only a late start is the schedule slipping). A lagging rate or replay publisher
//! offers less load than planned: the report marks the run "tester limited" rather than charge the
//! shortfall to the server (`report::pace`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Event, Publisher};
use crate::measure::{new_histogram, Clock, Live};
use crate::plan::{ArrivalModel, Trace};

/// What one lane (or all lanes, merged) published.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// Highest sequence number published per user index (= events published for that user).
    pub(crate) per_user: Vec<u64>,
    /// Events published (attempted; failed batches included).
    pub(crate) events: u64,
    /// Failed publish calls, by message.
    pub(crate) errors: BTreeMap<String, u64>,
    /// With churn: per user index, the seqs whose publish the server refused (never accepted,
    /// see [`PublishError::refused`]); bounded by the plan's events.
    pub(crate) refused: BTreeMap<usize, Vec<u64>>,
    /// From the first intended send to the last publish call's return.
    pub(crate) elapsed: Duration,
    /// Publish lag, µs: how long after its intended time each event's send started (see the
    /// module docs; a zero lag is recorded as the histogram's floor, 1 µs).
    pub(crate) lag_us: Histogram<u64>,
    /// Lanes that published (set on the session's total; a lane's own result leaves it 0).
    pub(crate) lanes: usize,
}

impl Default for Published {
    fn default() -> Self {
        Self {
            per_user: Vec::new(),
            events: 0,
            errors: BTreeMap::new(),
            refused: BTreeMap::new(),
            elapsed: Duration::ZERO,
            lag_us: new_histogram(),
            lanes: 0,
        }
    }
}

impl Published {
    /// Adds another lane's result.
    pub(crate) fn merge(&mut self, other: Published) {
        if self.per_user.len() < other.per_user.len() {
            self.per_user.resize(other.per_user.len(), 0);
        }
        for (a, b) in self.per_user.iter_mut().zip(other.per_user) {
            *a = (*a).max(b);
        }
        self.events += other.events;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (u, seqs) in other.refused {
            self.refused.entry(u).or_default().extend(seqs);
        }
        self.elapsed = self.elapsed.max(other.elapsed);
        // Both histograms have the same bounds: adding cannot fail.
        let _ = self.lag_us.add(&other.lag_us);
    }

    /// Records that a send scheduled for `intended_ns` started at `now_ns` (unix ns, run clock).
    fn lag(&mut self, intended_ns: u64, now_ns: u64) {
        self.lag_us
            .saturating_record((now_ns.saturating_sub(intended_ns) / 1000).max(1));
    }
}

/// One lane's job.
pub(crate) struct Lane {
    /// This lane's number.
    pub(crate) lane: usize,
    /// Lanes in all.
    pub(crate) lanes: usize,
    /// Every user's id, by user index.
    pub(crate) user_ids: Arc<Vec<u64>>,
    /// ArrivalModel model.
    pub(crate) arrival: ArrivalModel,
    /// Events per publish call.
    pub(crate) batch: usize,
    /// Run clock.
    pub(crate) clock: Clock,
    /// When the schedule starts.
    pub(crate) start: Instant,
    /// Hard stop.
    pub(crate) stop: CancellationToken,
    /// Live counters.
    pub(crate) live: Arc<Live>,
    /// With churn: per user index, the highest seq whose publish call returned (a reconnecting
    /// client's replay watermark).
    pub(crate) sent: Option<Arc<Vec<AtomicU64>>>,
    /// `[diagnostics] publish_delay`: added to every publish call (zero in real runs).
    pub(crate) publish_delay: Duration,
}

struct Sink<'a> {
    publisher: &'a mut dyn Publisher,
    buf: Vec<Event>,
    /// The user index and seq of each event in `buf`, kept only when `sent` is.
    users: Vec<(usize, u64)>,
    sent: Option<&'a [AtomicU64]>,
    out: Published,
    live: &'a Live,
    clock: Clock,
    /// Rate model: record every event's lag at its send (the burst model records per burst).
    lag_per_event: bool,
    delay: Duration,
}

impl Sink<'_> {
    async fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if self.lag_per_event {
            let now_ns = self.clock.now_ns();
            for e in &self.buf {
                self.out.lag(e.ts_ns, now_ns);
            }
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if let Err(e) = self.publisher.publish(&self.buf).await {
            if e.refused {
                // `users` is kept only with churn, the one accounting that reads this.
                for &(u, seq) in &self.users {
                    self.out.refused.entry(u).or_default().push(seq);
                }
            }
            *self.out.errors.entry(e.message).or_default() += 1;
            self.live.publish_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.out.events += self.buf.len() as u64;
        self.live
            .published
            .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        self.buf.clear();
        if let Some(sent) = self.sent {
            for (u, seq) in self.users.drain(..) {
                if let Some(s) = sent.get(u) {
                    s.fetch_max(seq, Ordering::Release);
                }
            }
        }
        // The embedded publisher never waits: let connection writers run between batches.
        tokio::task::yield_now().await;
    }

    /// Queues user index `u`'s event.
    fn push(&mut self, u: usize, e: Event) {
        if self.sent.is_some() {
            self.users.push((u, e.seq));
        }
        self.out.per_user[u] = e.seq;
        self.buf.push(e);
    }
}

/// Runs one lane to the end of its schedule or the stop.
pub(crate) async fn run_lane(lane: Lane, mut publisher: Box<dyn Publisher>) -> Published {
    let users = lane.user_ids.len();
    let mine: Vec<usize> = (0..users).filter(|u| u % lane.lanes == lane.lane).collect();
    let mut sink = Sink {
        publisher: &mut *publisher,
        buf: Vec::with_capacity(lane.batch),
        users: Vec::new(),
        sent: lane.sent.as_deref().map(Vec::as_slice),
        out: Published {
            per_user: vec![0; users],
            ..Published::default()
        },
        live: &lane.live,
        clock: lane.clock,
        lag_per_event: lane.arrival.is_open(),
        delay: lane.publish_delay,
    };
    let started = lane.start;
    match lane.arrival {
        ArrivalModel::Burst {
            bursts,
            per_user,
            interval,
        } => {
            'bursts: for b in 0..bursts {
                let intended = lane.start + interval * b as u32;
                tokio::select! {
                    _ = lane.stop.cancelled() => break 'bursts,
                    _ = tokio::time::sleep_until(intended) => {}
                }
                let ts_ns = lane.clock.at_ns(intended.into_std());
                sink.out.lag(ts_ns, lane.clock.now_ns());
                // A user's events of one burst are consecutive, as when a backend fires a burst at
                // a group: each connection's writer then drains many frames per flush.
                for &u in &mine {
                    for m in 0..per_user {
                        let seq = b * per_user + m + 1;
                        sink.push(u, Event::plain(lane.user_ids[u], seq, ts_ns));
                        if sink.buf.len() >= lane.batch {
                            sink.flush().await;
                            if lane.stop.is_cancelled() {
                                break 'bursts;
                            }
                        }
                    }
                }
                sink.flush().await;
            }
        }
        ArrivalModel::Rate { per_sec, length } => {
            let total = (per_sec * length.as_secs_f64()).floor() as u64;
            for k in 0..total {
                let u = (k % users as u64) as usize;
                if u % lane.lanes != lane.lane {
                    continue;
                }
                let intended = lane.start + Duration::from_secs_f64(k as f64 / per_sec);
                if intended > Instant::now() {
                    sink.flush().await;
                    tokio::select! {
                        _ = lane.stop.cancelled() => break,
                        _ = tokio::time::sleep_until(intended) => {}
                    }
                }
                let seq = k / users as u64 + 1;
                let ts_ns = lane.clock.at_ns(intended.into_std());
                sink.push(u, Event::plain(lane.user_ids[u], seq, ts_ns));
                if sink.buf.len() >= lane.batch {
                    sink.flush().await;
                }
                if lane.stop.is_cancelled() {
                    break;
                }
            }
            sink.flush().await;
        }
        ArrivalModel::Replay { ref trace, speed } => {
            for t in &trace.events {
                let u = Trace::run_user(t.user, users);
                if u % lane.lanes != lane.lane {
                    continue;
                }
                let intended = lane.start + Duration::from_micros(t.at_us).div_f64(speed);
                if intended > Instant::now() {
                    sink.flush().await;
                    tokio::select! {
                        _ = lane.stop.cancelled() => break,
                        _ = tokio::time::sleep_until(intended) => {}
                    }
                }
                let e = Event {
                    kind: t.kind,
                    // 0 would mean the fixed padding; no recorded `data` is empty (`null`: 4).
                    size: t.bytes.max(1),
                    ..Event::plain(
                        lane.user_ids[u],
                        sink.out.per_user[u] + 1,
                        lane.clock.at_ns(intended.into_std()),
                    )
                };
                sink.push(u, e);
                if sink.buf.len() >= lane.batch {
                    sink.flush().await;
                }
                if lane.stop.is_cancelled() {
                    break;
                }
            }
            sink.flush().await;
        }
    }
    sink.out.elapsed = started.elapsed();
    sink.out
}
