//! Slow readers: one task each, reading a few frames, then stalling on purpose until publishing
//! is over, so the server's backpressure policy (drop or close 4008) is exercised.

use std::time::Duration;

use super::worker::{failed, take, Assigned, Phase, Shared, Slot, CLOSE_TIMEOUT};
use crate::measure::{ConnResult, WorkerStats};

/// A slow reader: reads `read_first` frames, stops reading until publishing is over, then reads
/// what is left (and the close frame, if the server closed it as slow) until the drain deadline.
pub(crate) async fn run_slow(a: Assigned, read_first: u64, shared: Shared) -> ConnResult {
    let mut slot = Slot::new(a.user, a.planned);
    // Slow readers are late by design: their latencies and errors are not the healthy clients'.
    let mut stats = WorkerStats::new(Duration::ZERO);
    let mut client = a.client;
    let mut phase_rx = shared.phase.clone();
    // Phase 1: read a few frames (bounded by the stop). A read may buffer more than
    // `read_first` frames; those stay in the client's buffer until phase 3.
    let mut read = 0u64;
    while read < read_first && !slot.done {
        let now = shared.clock.now_ns();
        read += take(
            &mut client,
            &mut slot,
            &mut stats,
            &shared,
            now,
            read_first - read,
        )
        .1;
        if read >= read_first || slot.done {
            break;
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return slot.result(true),
            r = client.fill() => if let Err(e) = r { failed(&mut stats, &mut slot, &e) },
        }
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
        loop {
            let now = shared.clock.now_ns();
            take(&mut client, &mut slot, &mut stats, &shared, now, u64::MAX);
            if slot.done {
                break;
            }
            tokio::select! {
                _ = shared.stop.cancelled() => break,
                _ = tokio::time::sleep_until(deadline) => break,
                r = client.fill() => if let Err(e) = r { failed(&mut stats, &mut slot, &e) },
            }
        }
    }
    let server_closed = slot.closed.is_some();
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.close(server_closed)).await;
    slot.result(true)
}
