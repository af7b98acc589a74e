//! `Opts` + scenario → a typed, validated [`Plan`], before any I/O (no socket is opened here). The
//! settings of `--find-max`, `--segment`, `--barrier`, `--baseline`, `--server-metrics` and
//! `--metrics-listen` live here too, so a job reads them from the plan and the plan imports no job.
//!
//! Precedence: a flag beats the scenario file, which beats the built-in defaults below.

mod arrival;
mod barrier;
mod baseline;
mod build;
mod churn;
mod exposition;
mod find_max;
mod layer;
pub mod limits;
mod pace;
mod replay;
mod scenario;
mod segment;
mod target;
mod threshold;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use arrival::ArrivalModel;
pub use barrier::{BarrierSpec, DEFAULT_BARRIER_TIMEOUT, KEY_MARGIN};
pub use baseline::Baseline;
pub use churn::{Churn, TokenPlan, DEFAULT_TOKEN_LIFETIME};
pub use exposition::{MetricsListen, DEFAULT_METRICS_LINGER};
pub use find_max::{FindMax, DEFAULT_MAX_SPEED, DEFAULT_MAX_STEPS, DEFAULT_PRECISION};
pub(crate) use layer::publisher_layer;
pub use layer::Layer;
pub use pace::{lanes_for, Diagnostics, LANE_BATCHES_PER_SEC, MAX_LANES};
pub use replay::{
    Trace, TraceEvent, DEFAULT_REPLAY_SPEED, MAX_EVENT_BYTES, MAX_TRACE_BYTES, MAX_TRACE_EVENTS,
    MIN_REPLAY_SPEED,
};
pub use scenario::{
    ChurnSection, ClientsSection, DiagnosticsSection, PublishSection, RunSection, Scenario,
    ServerSection, DEFAULT_SCENARIO,
};
pub use segment::{check_start_at, publish_start, Segment};
pub use target::{
    is_slow_index, parse_endpoint, parse_target, tls_client, Auth, Endpoint, MetricsSource, Target,
};
pub use threshold::{Bound, Op, Threshold};

use crate::cli::{OutputArgs, PublisherKind};

/// Default handshakes in flight.
pub const DEFAULT_CONCURRENCY: usize = 256;
/// Default connect + handshake + first frame bound.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default hard bound on a run.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(60);
/// Default wait for missing events after the last publish.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default notifications per HTTP request.
pub const DEFAULT_BATCH: usize = 500;
/// Fewest publishing lanes (requests in flight; users are partitioned over lanes so each user's
/// order holds); a rate plan may get more ([`lanes_for`]).
pub const DEFAULT_LANES: usize = 2;
/// Source addresses per IPv4 loopback target: 127.0.0.1 … 127.0.0.N, ~28k ports each.
pub const DEFAULT_SOURCE_ADDRS: u8 = 4;

/// Extra outputs.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// JSON report path.
    pub json: Option<PathBuf>,
    /// JUnit XML path.
    pub junit: Option<PathBuf>,
    /// HTML report path.
    pub html: Option<PathBuf>,
    /// Markdown summary path.
    pub markdown: Option<PathBuf>,
    /// JSON to stdout instead of text.
    pub print_json: bool,
    /// Live progress (a TTY and not `--no-progress`).
    pub progress: bool,
}

impl Outputs {
    /// The outputs `args` ask for; `progress`: whether a live bar is shown meanwhile.
    pub fn new(args: &OutputArgs, progress: bool) -> Self {
        Self {
            json: args.json.clone(),
            junit: args.junit.clone(),
            html: args.html.clone(),
            markdown: args.markdown.clone(),
            print_json: args.print_json,
            progress,
        }
    }
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Where to connect.
    pub target: Target,
    /// TLS settings, built once when a URL is `wss://`/`https://` and shared by every connection.
    pub tls: Option<crate::net::TlsClient>,
    /// Token source (`None` only for the embedded target, which mints with its own secret).
    pub auth: Option<Auth>,
    /// `X-API-Key` for the HTTP publisher.
    pub api_key: Option<String>,
    /// The HTTP publisher's server when it is not the target (`--publish-url`).
    pub publish_to: Option<Endpoint>,
    /// Connections.
    pub connections: usize,
    /// Users; connection `i` belongs to user index `i % users`.
    pub users: usize,
    /// Connections per second (`None`: unpaced).
    pub ramp_rate: Option<f64>,
    /// Handshakes in flight.
    pub concurrency: usize,
    /// Connect bound.
    pub connect_timeout: Duration,
    /// Client source addresses (empty: let the OS choose).
    pub sources: Vec<Ipv4Addr>,
    /// Fraction of slow (non-reading) connections.
    pub slow_fraction: f64,
    /// Frames a slow connection reads before it stalls.
    pub slow_after: u64,
    /// Publisher.
    pub publisher: PublisherKind,
    /// Arrival model.
    pub arrival: ArrivalModel,
    /// HTTP batch size.
    pub batch: usize,
    /// Publishing lanes: the scenario's `lanes`, else [`lanes_for`] the rate.
    pub lanes: usize,
    /// Padding bytes per event.
    pub payload_bytes: usize,
    /// Hard bound on the run.
    pub duration: Duration,
    /// Drain wait.
    pub drain_timeout: Duration,
    /// Checks deciding the verdict.
    pub thresholds: Vec<Threshold>,
    /// Outputs.
    pub outputs: Outputs,
    /// Capacity search, when asked for.
    pub find_max: Option<FindMax>,
    /// External server PID for RSS/CPU.
    pub server_pid: Option<u32>,
    /// Redis publishers and the embedded server's channel layer.
    pub layer: Layer,
    /// `--server-metrics`: where to scrape courier's counters.
    pub server_metrics: Option<MetricsSource>,
    /// `--metrics-listen`: where the tester serves its own live Prometheus endpoint.
    pub metrics_listen: Option<MetricsListen>,
    /// `--repeat`: runs of the plan (1: a plain run).
    pub repeat: usize,
    /// `--baseline`: the report this run is compared with (relative thresholds resolve against it).
    pub baseline: Option<Arc<Baseline>>,
    /// `--segment K/N`: this process runs that slice ([`Segment`]); `None`: everything.
    pub segment: Option<Segment>,
    /// Index of this plan's first user in the whole scenario (0 unless a segment).
    pub first_user: usize,
    /// `--start-at`: the first intended send, unix ms, shared by every segment.
    pub start_at_ms: Option<u64>,
    /// `--barrier`: agents that meet in Redis and start publishing together.
    pub barrier: Option<BarrierSpec>,
    /// `--churn-*`: connections that drop and come back (`None`: none do).
    pub churn: Option<Churn>,
    /// Token lifetime and in-place refresh.
    pub tokens: TokenPlan,
    /// `[diagnostics]`: throttles that slow the tester on purpose (zero in real runs).
    pub diagnostics: Diagnostics,
}

impl Plan {
    /// Events the plan publishes for user index `u`.
    pub fn events_for_user(&self, u: usize) -> u64 {
        match self.arrival {
            ArrivalModel::Burst {
                bursts, per_user, ..
            } => bursts * per_user,
            ArrivalModel::Rate { .. } => {
                let total = self.total_events();
                let users = self.users as u64;
                total / users + u64::from((u as u64) < total % users)
            }
            ArrivalModel::Replay { ref trace, .. } => trace.events_for(u, self.users),
        }
    }

    /// Events the plan publishes in all.
    pub fn total_events(&self) -> u64 {
        match self.arrival {
            ArrivalModel::Burst {
                bursts, per_user, ..
            } => bursts * per_user * self.users as u64,
            ArrivalModel::Rate { per_sec, length } => {
                (per_sec * length.as_secs_f64()).floor() as u64
            }
            ArrivalModel::Replay { ref trace, .. } => trace.events.len() as u64,
        }
    }

    /// Whether connection `i` is one of the slow readers (spread evenly over the range).
    pub fn is_slow(&self, i: usize) -> bool {
        is_slow_index(i, self.slow_fraction)
    }

    /// A short description of the target for reports.
    pub fn target_text(&self) -> String {
        match &self.target {
            Target::Embedded { .. } => "embedded".into(),
            Target::External(e) => e.url.clone(),
        }
    }
}
