//! Live progress on a terminal (indicatif): connections, deliveries/s, errors. Silent otherwise.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::measure::Live;

/// Refresh interval of the bar.
const TICK: Duration = Duration::from_millis(250);

/// A running progress display (or nothing, off a TTY).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts the display when `enabled`.
    pub(crate) fn start(enabled: bool, connections: usize, events: u64, live: Arc<Live>) -> Self {
        if !enabled {
            return Self {
                bar: None,
                task: None,
            };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let mut last = 0u64;
            let mut tick = tokio::time::interval(TICK);
            loop {
                tick.tick().await;
                let rx = live.received.load(Ordering::Relaxed);
                let rate = (rx - last.min(rx)) as f64 / TICK.as_secs_f64();
                last = rx;
                shown.set_message(format!(
                    "connected {}/{connections}  failed {}  published {}/{events}  received {rx}  {:.0} deliveries/s",
                    live.connected.load(Ordering::Relaxed),
                    live.failed.load(Ordering::Relaxed),
                    live.published.load(Ordering::Relaxed),
                    rate
                ));
                shown.tick();
            }
        });
        Self {
            bar: Some(bar),
            task: Some(task),
        }
    }

    /// Marks the end of the connect phase.
    pub(crate) fn connected(&self) {
        if let Some(b) = &self.bar {
            b.println("connect phase done");
        }
    }

    /// Stops and clears the display.
    pub(crate) fn finish(&self) {
        if let Some(t) = &self.task {
            t.abort();
        }
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
