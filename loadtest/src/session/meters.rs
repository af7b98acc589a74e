//! One session's meters: CPU and RSS read at its phase boundaries (the tester's threads, the
//! embedded server's threads or `--server-pid`), the resource [`Sampler`] and `--server-metrics`'
//! scrapes before and after — everything the report's cost and cross-check sections come from.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::measure::probe::LagProbe;
use crate::measure::sampler::{self, Sampler};
use crate::measure::server_metrics::{scrape, MetricsAt, Samples};
use crate::measure::sysinfo::{self, CpuSample};
use crate::measure::{Clock, Live};
use crate::plan::Plan;
use crate::schema::Sample;

/// CPU at one instant: this process's threads (tester and embedded server apart), and the
/// `--server-pid`'s total.
struct Reading {
    threads: CpuSample,
    pid: Option<Duration>,
}

impl Reading {
    fn now(pid: Option<u32>) -> Self {
        Self {
            threads: sysinfo::cpu_sample(),
            pid: pid.and_then(sysinfo::process_cpu),
        }
    }
}

/// Taken before the server starts: what the run's figures are differences from.
pub(crate) struct Before {
    cpu: Reading,
    /// This process's RSS (an embedded server's memory is the process's growth).
    rss: Option<u64>,
}

/// Readings before anything starts.
pub(crate) fn before(plan: &Plan) -> Before {
    Before {
        rss: sysinfo::rss_bytes(None),
        cpu: Reading::now(plan.server_pid),
    }
}

/// What a session measured about costs ([`crate::session::RunData::costs`]).
pub(crate) struct Costs {
    /// CPU of the tester's threads.
    pub(crate) tester_cpu: Duration,
    /// CPU of the tester's threads over the delivery window (the same window as
    /// `server_cpu_delivering`; embedded server threads excluded).
    pub(crate) tester_cpu_delivering: Duration,
    /// CPU of the server (embedded threads, or `--server-pid`).
    pub(crate) server_cpu: Option<Duration>,
    /// CPU of the server from the first intended send to the end of the drain (no handshakes).
    pub(crate) server_cpu_delivering: Option<Duration>,
    /// Peak server RSS seen (embedded: the process's growth over the run).
    pub(crate) server_rss: Option<u64>,
    /// External server (`--server-pid`): RSS growth over the connect phase ÷ connections established.
    pub(crate) server_rss_per_conn: Option<f64>,
    /// `--server-metrics`: the URL scraped, and the scrapes before the connect phase and after
    /// the drain.
    pub(crate) server_metrics: Option<(String, Samples, Samples)>,
    /// Resources over time.
    pub(crate) samples: Vec<Sample>,
    /// Receive lag over the delivery window, µs (`None` when publishing never started).
    pub(crate) receive_lag_us: Option<hdrhistogram::Histogram<u64>>,
}

/// The meters of a running session; each phase method is called once, in order.
pub(crate) struct Meters {
    embedded: bool,
    pid: Option<u32>,
    before: Before,
    metrics: Option<(MetricsAt, Samples)>,
    sampler: Sampler,
    /// `--server-pid`'s RSS before the connect phase.
    rss_idle: Option<u64>,
    rss_per_conn: Option<f64>,
    publishing: Option<Reading>,
    rss_loaded: Option<u64>,
    delivered: Option<Reading>,
    /// The receive-lag probe, over the delivery window.
    probe: Option<LagProbe>,
}

impl Meters {
    /// Scrapes `--server-metrics` once (the embedded server's own when `embedded` is its
    /// address) and starts the sampler.
    pub(crate) async fn start(
        before: Before,
        plan: &Plan,
        embedded: Option<SocketAddr>,
        clock: Clock,
        live: Arc<Live>,
    ) -> Result<Self> {
        let at = match &plan.server_metrics {
            Some(m) => m.endpoint(embedded)?,
            None => None,
        };
        let metrics = match at {
            Some(ep) => {
                let ep = MetricsAt::new(&ep, plan.tls.as_ref());
                let first = scrape(&ep).await?;
                Some((ep, first))
            }
            None => None,
        };
        let sources = sampler::Sources {
            embedded: embedded.is_some(),
            pid: plan.server_pid,
            metrics: metrics.as_ref().map(|(ep, _)| ep.clone()),
        };
        Ok(Self {
            embedded: embedded.is_some(),
            pid: plan.server_pid,
            before,
            metrics,
            sampler: Sampler::start(clock, live, sources),
            rss_idle: None,
            rss_per_conn: None,
            publishing: None,
            rss_loaded: None,
            delivered: None,
            probe: None,
        })
    }

    /// Before the connect phase: the external server's idle RSS.
    pub(crate) fn connecting(&mut self) {
        self.rss_idle = self.pid.and_then(|p| sysinfo::rss_bytes(Some(p)));
    }

    /// After the connect phase: the external server's RSS growth per connection.
    pub(crate) fn connected(&mut self, conns: usize) {
        self.rss_per_conn = self
            .pid
            .and_then(|p| sysinfo::rss_bytes(Some(p)))
            .zip(self.rss_idle)
            .filter(|_| conns > 0)
            .map(|(after, before)| after.saturating_sub(before) as f64 / conns as f64);
    }

    /// At the first intended send: the delivery window opens.
    pub(crate) fn publishing(&mut self) {
        self.publishing = Some(Reading::now(self.pid));
        self.probe = Some(LagProbe::start());
    }

    /// After the last publish, every connection still open and queues just filled: memory.
    pub(crate) fn loaded(&mut self) {
        self.rss_loaded = match (self.embedded, self.pid) {
            (true, _) => sysinfo::rss_bytes(None)
                .zip(self.before.rss)
                .map(|(a, b)| a.saturating_sub(b)),
            (false, Some(pid)) => sysinfo::rss_bytes(Some(pid)),
            (false, None) => None,
        };
    }

    /// Every worker stopped receiving: the delivery window closes.
    pub(crate) fn delivered(&mut self) {
        self.delivered = Some(Reading::now(self.pid));
        if let Some(p) = &self.probe {
            p.stop();
        }
    }

    /// Stops the sampler, reads the totals and scrapes `--server-metrics` again (call before
    /// the server stops).
    pub(crate) async fn finish(self) -> Result<Costs> {
        let samples = self.sampler.finish().await;
        let receive_lag_us = match self.probe {
            Some(p) => Some(p.finish().await),
            None => None,
        };
        let after = Reading::now(self.pid);
        let before = &self.before.cpu;
        // A phase skipped (the run stopped early) leaves its window empty.
        let publishing = self.publishing.unwrap_or_else(|| Reading::now(self.pid));
        let delivered = self.delivered.unwrap_or_else(|| Reading::now(self.pid));
        let pid_cpu = |a: &Reading, b: &Reading| a.pid.zip(b.pid).map(|(a, b)| a.saturating_sub(b));
        // Threads of other runtimes in this process (tests share one) may exit after the
        // delivery window: the whole run is summed over the phases so it still holds the window.
        let window = delivered.threads.since(&publishing.threads);
        let whole = CpuSample::across(&[
            &before.threads,
            &publishing.threads,
            &delivered.threads,
            &after.threads,
        ]);
        let (server_cpu, server_cpu_delivering, server_rss) = match (self.embedded, self.pid) {
            (true, _) => (Some(whole.server), Some(window.server), self.rss_loaded),
            (false, Some(_)) => (
                pid_cpu(&after, before),
                pid_cpu(&delivered, &publishing),
                self.rss_loaded,
            ),
            (false, None) => (None, None, None),
        };
        let server_metrics = match self.metrics {
            Some((ep, first)) => Some((ep.url.clone(), first, scrape(&ep).await?)),
            None => None,
        };
        Ok(Costs {
            tester_cpu: whole.tester,
            tester_cpu_delivering: window.tester,
            server_cpu,
            server_cpu_delivering,
            server_rss,
            server_rss_per_conn: self.rss_per_conn,
            server_metrics,
            samples,
            receive_lag_us,
        })
    }
}
