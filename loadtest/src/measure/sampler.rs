//! Resources over time: every [`SAMPLE_EVERY`] the connections established so far, and the
//! server's CPU and RSS (embedded threads, `--server-pid`) and open connections
//! (`--server-metrics`' `courier_connections_open`), for the report's over-time charts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::server_metrics::MetricsAt;
use super::stats::Live;
use super::sysinfo;
use crate::schema::Sample;

/// Time between samples.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Most samples kept (a 60 s run takes 600): the loop is bounded even if nobody stops it.
const MAX_SAMPLES: usize = 10_000;

/// Where the server's figures come from.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    /// The server is embedded: its threads' CPU, this process's RSS.
    pub(crate) embedded: bool,
    /// `--server-pid`.
    pub(crate) pid: Option<u32>,
    /// `--server-metrics`, for the open-connections gauge.
    pub(crate) metrics: Option<MetricsAt>,
}

/// A running sampler.
pub(crate) struct Sampler {
    done: CancellationToken,
    task: JoinHandle<Vec<Sample>>,
}

/// The server's CPU reading: the embedded threads' sample, or the PID's cumulative CPU.
enum CpuReading {
    Embedded(sysinfo::CpuSample),
    Process(Duration),
}

fn server_cpu(s: &Sources) -> Option<CpuReading> {
    if s.embedded {
        Some(CpuReading::Embedded(sysinfo::cpu_sample()))
    } else {
        s.pid
            .and_then(sysinfo::process_cpu)
            .map(CpuReading::Process)
    }
}

/// CPU used between two readings.
fn used(now: &CpuReading, before: &CpuReading) -> Duration {
    match (now, before) {
        (CpuReading::Embedded(a), CpuReading::Embedded(b)) => a.since(b).server,
        (CpuReading::Process(a), CpuReading::Process(b)) => a.saturating_sub(*b),
        _ => Duration::ZERO,
    }
}

impl Sampler {
    /// Starts sampling.
    pub(crate) fn start(clock: Clock, live: Arc<Live>, sources: Sources) -> Self {
        let done = CancellationToken::new();
        let stop = done.clone();
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            let mut last: Option<(u64, CpuReading)> = None;
            while out.len() < MAX_SAMPLES {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let now = clock.now_ns();
                let cpu = server_cpu(&sources);
                let cpu_percent = match (&cpu, &last) {
                    (Some(c), Some((t0, c0))) if now > *t0 => {
                        Some(used(c, c0).as_secs_f64() / ((now - t0) as f64 / 1e9) * 100.0)
                    }
                    _ => None,
                };
                if let Some(c) = cpu {
                    last = Some((now, c));
                }
                let server_open = match &sources.metrics {
                    Some(ep) => super::server_metrics::scrape(ep)
                        .await
                        .ok()
                        .and_then(|m| m.get("courier_connections_open").copied()),
                    None => None,
                };
                out.push(Sample {
                    t_secs: now.saturating_sub(clock.start_ns()) as f64 / 1e9,
                    established: live.connected.load(Ordering::Relaxed),
                    server_open,
                    server_cpu_percent: cpu_percent,
                    server_rss_bytes: if sources.embedded {
                        sysinfo::rss_bytes(None)
                    } else {
                        sources.pid.and_then(|p| sysinfo::rss_bytes(Some(p)))
                    },
                });
            }
            out
        });
        Self { done, task }
    }

    /// Stops sampling and returns the samples.
    pub(crate) async fn finish(self) -> Vec<Sample> {
        self.done.cancel();
        self.task.await.unwrap_or_default()
    }
}
