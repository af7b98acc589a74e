//! The receive-lag probe: a task on the tester's runtime that asks to wake every
//! [`PROBE_PERIOD`] and records how late it ran. The receivers are tasks on the same runtime, so
//! when they cannot keep up — too much to read for the cores they have, or their threads starved
//! of CPU — every due task waits, the probe among them, and its lag says so. Received timestamps
//! are late by as much, which is the tester's delay, not the server's.

use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::new_histogram;

/// How often the probe asks to run: often enough for a p99 over a short run, cheap at any load.
pub(crate) const PROBE_PERIOD: Duration = Duration::from_millis(10);

/// A running probe; [`LagProbe::finish`] stops it and returns the lags, µs.
pub(crate) struct LagProbe {
    stop: CancellationToken,
    task: JoinHandle<Histogram<u64>>,
}

impl LagProbe {
    /// Starts the probe on the current runtime.
    pub(crate) fn start() -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(probe(stop.clone()));
        Self { stop, task }
    }

    /// Stops recording now (the window closes); the lags are collected by [`Self::finish`].
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Stops the probe and returns its lags, µs (empty if its task failed).
    pub(crate) async fn finish(self) -> Histogram<u64> {
        self.stop.cancel();
        self.task.await.unwrap_or_else(|_| new_histogram())
    }
}

async fn probe(stop: CancellationToken) -> Histogram<u64> {
    let mut lags = new_histogram();
    loop {
        let due = Instant::now() + PROBE_PERIOD;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        // 0 is below the histogram's floor (1 µs).
        lags.saturating_record((due.elapsed().as_micros() as u64).max(1));
    }
    lags
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime thread held busy delays the probe by about as long.
    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_runtime_shows_as_lag() {
        let probe = LagProbe::start();
        tokio::time::sleep(PROBE_PERIOD * 3).await;
        let busy = std::time::Instant::now();
        while busy.elapsed() < Duration::from_millis(150) {
            std::hint::spin_loop();
        }
        tokio::time::sleep(PROBE_PERIOD * 2).await;
        let lags = probe.finish().await;
        assert!(lags.len() >= 3, "{} samples", lags.len());
        assert!(lags.max() >= 100_000, "max lag {} µs", lags.max());
    }
}
