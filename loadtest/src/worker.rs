//! Receiving workers: each owns a slice of the healthy connections (polled together through one
//! `SelectAll`) and its own stats; slow readers get a small task each that stalls on purpose.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{SelectAll, Stream, StreamExt};
use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use crate::connect::Ws;
use crate::frame;
use crate::seq::{Arrival, SeqTracker};
use crate::stats::{Clock, ConnResult, Live, WorkerStats};

/// Deliveries a worker counts locally before adding them to the live counter.
const LIVE_BATCH: u64 = 512;
/// Ready frames handled per wake-up before yielding back to `select!`.
const DRAIN_BATCH: usize = 64;
/// Bound on the polite close at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The publishing phase, as the receivers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Events are still being published.
    Publishing,
    /// Publishing is over: wait for stragglers until this instant.
    Draining(Instant),
}

/// Bound on holding finished connections open while other workers still receive.
const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// What every receiver shares.
#[derive(Clone)]
pub struct Shared {
    /// The run clock.
    pub clock: Clock,
    /// This run's id (frames with another id are foreign).
    pub run_id: Arc<str>,
    /// Publishing phase.
    pub phase: watch::Receiver<Phase>,
    /// Hard stop (Ctrl-C, `--duration`).
    pub stop: CancellationToken,
    /// Live counters.
    pub live: Arc<Live>,
    /// Length of the run, for the timeline.
    pub run_len: Duration,
    /// Each worker reports here when it has stopped receiving (capacity: one slot per worker).
    pub done: tokio::sync::mpsc::Sender<()>,
    /// Cancelled once every worker has reported: only then do connections close, so closing
    /// (server-side teardown) never lands inside the measured delivery window.
    pub release: CancellationToken,
}

/// One connection handed to a receiver.
pub struct Assigned {
    /// The socket.
    pub ws: Ws,
    /// User index.
    pub user: usize,
    /// Events planned for that user (completion and bitset bound).
    pub planned: u64,
}

enum Item {
    Msg(Result<Message, WsError>),
    End,
}

/// A socket tagged with its slot, yielding a final `End` so the worker sees every stream finish.
struct Tagged {
    slot: usize,
    ws: Option<Ws>,
}

impl Stream for Tagged {
    type Item = (usize, Item);
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let slot = self.slot;
        let Some(ws) = self.ws.as_mut() else {
            return Poll::Ready(None);
        };
        match ws.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(m)) => Poll::Ready(Some((slot, Item::Msg(m)))),
            Poll::Ready(None) => {
                self.ws = None;
                Poll::Ready(Some((slot, Item::End)))
            }
        }
    }
}

struct Slot {
    user: usize,
    planned: u64,
    seq: SeqTracker,
    closed: Option<u16>,
    done: bool,
}

/// Handles one message for a slot, received at `now_ns`; returns (delivered, the slot just finished).
fn handle(
    stats: &mut WorkerStats,
    shared: &Shared,
    slot: &mut Slot,
    item: Item,
    now_ns: u64,
) -> (bool, bool) {
    let mut delivered = false;
    let finished_before = slot.done;
    match item {
        Item::Msg(Ok(Message::Text(text))) => match frame::event(&text) {
            Some(d) if d.run == &*shared.run_id => {
                if matches!(
                    slot.seq.record(d.seq),
                    Arrival::InOrder | Arrival::Reordered
                ) {
                    stats.delivery(&shared.clock, now_ns, d.ts);
                    delivered = true;
                }
                if slot.seq.complete(slot.planned) {
                    slot.done = true;
                }
            }
            _ => stats.foreign += 1,
        },
        Item::Msg(Ok(Message::Close(f))) => {
            slot.closed = Some(f.map_or(1005, |f| f.code.into()));
            slot.done = true;
        }
        Item::Msg(Ok(_)) => {}
        Item::Msg(Err(e)) => {
            *stats.errors.entry(format!("receive: {e}")).or_default() += 1;
            slot.done = true;
        }
        Item::End => slot.done = true,
    }
    (delivered, slot.done && !finished_before)
}

/// Runs a receiving worker over `conns` until all are complete, the drain deadline, or the stop.
pub async fn run_worker(conns: Vec<Assigned>, shared: Shared) -> WorkerStats {
    let mut stats = WorkerStats::new(shared.run_len);
    let mut slots = Vec::with_capacity(conns.len());
    let mut streams = SelectAll::new();
    for (i, a) in conns.into_iter().enumerate() {
        slots.push(Slot {
            user: a.user,
            planned: a.planned,
            seq: SeqTracker::new(a.planned),
            closed: None,
            done: false,
        });
        streams.push(Tagged {
            slot: i,
            ws: Some(a.ws),
        });
    }
    let mut remaining = slots.len();
    let mut phase_rx = shared.phase.clone();
    let mut deadline: Option<Instant> = None;
    let mut pending_live = 0u64;
    while remaining > 0 {
        let far = Instant::now() + shared.run_len;
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => break,
            changed = phase_rx.changed() => {
                if changed.is_err() { break; }
                if let Phase::Draining(at) = *phase_rx.borrow() { deadline = Some(at); }
            }
            next = streams.next() => {
                let Some((i, item)) = next else { break };
                // One clock read per wake-up, not per frame: the frames taken below were all ready
                // at this instant, so each latency is early by at most the time spent handling
                // the frames before it in this batch (≤ DRAIN_BATCH frames, a few µs).
                let now_ns = shared.clock.now_ns();
                let (delivered, finished) = handle(&mut stats, &shared, &mut slots[i], item, now_ns);
                pending_live += u64::from(delivered);
                remaining -= usize::from(finished);
                // Take what else is ready without another trip through select!: frames come in bursts.
                for _ in 0..DRAIN_BATCH {
                    let Some(Some((i, item))) = streams.next().now_or_never() else { break };
                    let (delivered, finished) = handle(&mut stats, &shared, &mut slots[i], item, now_ns);
                    pending_live += u64::from(delivered);
                    remaining -= usize::from(finished);
                }
                if pending_live >= LIVE_BATCH {
                    shared.live.received.fetch_add(pending_live, Ordering::Relaxed);
                    pending_live = 0;
                }
            }
        }
    }
    shared
        .live
        .received
        .fetch_add(pending_live, Ordering::Relaxed);
    let _ = shared.done.try_send(());
    tokio::select! {
        _ = shared.release.cancelled() => {}
        _ = shared.stop.cancelled() => {}
        _ = tokio::time::sleep(RELEASE_WAIT) => {}
    }
    // Close politely so the server sees a normal closure, not a reset; bounded.
    let closes = streams
        .iter_mut()
        .filter_map(|t| t.ws.as_mut())
        .map(|ws| ws.close(None));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, futures::future::join_all(closes)).await;
    stats.conns = slots
        .into_iter()
        .map(|s| ConnResult {
            user: s.user,
            slow: false,
            seq: s.seq,
            closed: s.closed,
        })
        .collect();
    stats
}

/// A slow reader: reads `read_first` frames, stops reading until publishing is over, then reads
/// what is left (and the close frame, if the server closed it as slow) until the drain deadline.
pub async fn run_slow(a: Assigned, read_first: u64, shared: Shared) -> ConnResult {
    let mut slot = Slot {
        user: a.user,
        planned: a.planned,
        seq: SeqTracker::new(a.planned),
        closed: None,
        done: false,
    };
    let mut stats = WorkerStats::new(Duration::ZERO);
    let mut ws = a.ws;
    let mut phase_rx = shared.phase.clone();
    let mut read = 0u64;
    // Phase 1: read a few frames (bounded by the stop).
    while read < read_first && !slot.done {
        let item = tokio::select! {
            _ = shared.stop.cancelled() => return ConnResult { user: slot.user, slow: true, seq: slot.seq, closed: slot.closed },
            m = ws.next() => m.map_or(Item::End, Item::Msg),
        };
        handle(&mut stats, &shared, &mut slot, item, shared.clock.now_ns());
        read += 1;
    }
    // Phase 2: stall until publishing is over.
    let deadline = loop {
        if let Phase::Draining(at) = *phase_rx.borrow_and_update() {
            break Some(at);
        }
        tokio::select! {
            _ = shared.stop.cancelled() => break None,
            r = phase_rx.changed() => if r.is_err() { break None },
        }
    };
    // Phase 3: read the rest until done or the deadline.
    if let Some(deadline) = deadline {
        while !slot.done {
            let item = tokio::select! {
                _ = shared.stop.cancelled() => break,
                _ = tokio::time::sleep_until(deadline) => break,
                m = ws.next() => m.map_or(Item::End, Item::Msg),
            };
            handle(&mut stats, &shared, &mut slot, item, shared.clock.now_ns());
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
    ConnResult {
        user: slot.user,
        slow: true,
        seq: slot.seq,
        closed: slot.closed,
    }
}
