//! `Opts` + scenario → a typed, validated [`Plan`], before any I/O (no socket is opened here).
//!
//! Precedence: a flag beats the scenario file, which beats the built-in defaults below.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::arrival::ArrivalModel;
use crate::error::{Error, Result};
pub use crate::opts::SearchOver;
use crate::opts::{Opts, PublisherKind};
use crate::scenario::Scenario;
pub use crate::target::{is_slow_index, parse_target, Auth, Endpoint, Target};
use crate::threshold::Threshold;

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
/// Default HTTP requests in flight (users are partitioned over lanes so each user's order holds).
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

pub use crate::search::FindMax;

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Where to connect.
    pub target: Target,
    /// Token source (`None` only for the embedded target, which mints with its own secret).
    pub auth: Option<Auth>,
    /// `X-API-Key` for the HTTP publisher.
    pub api_key: Option<String>,
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
    /// HTTP lanes.
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
    pub broker: crate::broker::Broker,
    /// `--server-metrics`: where to scrape courier's counters.
    pub server_metrics: Option<crate::server_metrics::MetricsSource>,
    /// `--repeat`: runs of the plan (1: a plain run).
    pub repeat: usize,
    /// `--baseline`: the report this run is compared with (relative thresholds resolve against it).
    pub baseline: Option<std::sync::Arc<crate::baseline::Baseline>>,
    /// `--segment K/N`: this process runs that slice ([`crate::segment`]); `None`: everything.
    pub segment: Option<crate::segment::Segment>,
    /// Index of this plan's first user in the whole scenario (0 unless a segment).
    pub first_user: usize,
    /// `--start-at`: the first intended send, unix ms, shared by every segment.
    pub start_at_ms: Option<u64>,
    /// `--barrier`: agents that meet in Redis and start publishing together.
    pub barrier: Option<crate::barrier::BarrierSpec>,
}

/// A usage error saying `msg`.
pub(crate) fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

/// The flag's duration, else the scenario file's, else `default`; `name` labels a parse error.
pub(crate) fn duration(
    flag: Option<&str>,
    file: Option<&str>,
    name: &str,
    default: Duration,
) -> Result<Duration> {
    match flag.or(file) {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s).map_err(|e| usage(format!("{name} {s:?}: {e}"))),
    }
}

impl Plan {
    /// Builds and validates the plan from flags and the scenario they name (or the default one).
    pub fn from_opts(opts: &Opts) -> Result<Self> {
        let scenario = match &opts.scenario {
            Some(path) => Scenario::load(path)?,
            None => Scenario::builtin_default()?,
        };
        Self::build(opts, &scenario)
    }

    /// Builds the plan from flags over an already-parsed scenario.
    pub fn build(opts: &Opts, s: &Scenario) -> Result<Self> {
        let (c, p) = (&s.clients, &s.publish);
        let t = &opts.target;
        let target_text = t
            .url
            .as_deref()
            .or(s.run.target.as_deref())
            .unwrap_or("embedded");
        let target = if target_text == "embedded" {
            Target::Embedded {
                queue_messages: s.server.queue_messages,
                queue_bytes: s.server.queue_bytes,
            }
        } else {
            Target::External(parse_target(target_text, t.allow_remote)?)
        };
        let auth =
            match (&target, &t.jwt_secret, &t.tokens_file) {
                (_, Some(_), Some(_)) => {
                    return Err(usage("give either --jwt-secret or --tokens-file, not both"))
                }
                (Target::Embedded { .. }, None, None) => None,
                (Target::Embedded { .. }, _, _) => return Err(usage(
                    "--jwt-secret/--tokens-file need --target (the embedded server mints its own)",
                )),
                (Target::External(_), Some(secret), None) => Some(Auth::Mint(secret.clone())),
                (Target::External(_), None, Some(path)) => Some(Auth::File(path.clone())),
                (Target::External(_), None, None) => {
                    return Err(usage(
                        "an external --target needs --jwt-secret or --tokens-file",
                    ))
                }
            };
        let connections = opts.connections.or(c.connections).unwrap_or(5000);
        let users = opts.users.or(c.users).unwrap_or(connections.div_ceil(10));
        if connections == 0 || users == 0 {
            return Err(usage("connections and users must be at least 1"));
        }
        if users > connections {
            return Err(usage(format!("users ({users}) must not exceed connections ({connections}): every user needs a connection")));
        }
        let ramp_rate = opts.ramp_rate.or(c.ramp_rate).filter(|r| *r > 0.0);
        if ramp_rate.is_some_and(|r| !r.is_finite()) {
            return Err(usage("ramp_rate must be finite"));
        }
        let concurrency = opts
            .concurrency
            .or(c.concurrency)
            .unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(usage("concurrency must be at least 1"));
        }
        let slow_fraction = opts.slow_fraction.or(c.slow_fraction).unwrap_or(0.0);
        if !(0.0..1.0).contains(&slow_fraction) {
            return Err(usage("slow_fraction must be in [0, 1)"));
        }
        let publisher = match (opts.publisher, p.publisher.as_deref()) {
            (Some(k), _) => k,
            (None, None) => match target {
                Target::Embedded { .. } => PublisherKind::Embedded,
                Target::External(_) => PublisherKind::Http,
            },
            // A scenario written for the embedded server still runs against --target: over HTTP.
            (None, Some("embedded")) if matches!(target, Target::External(_)) => {
                PublisherKind::Http
            }
            (None, Some("embedded")) => PublisherKind::Embedded,
            (None, Some(other)) => clap::ValueEnum::from_str(other, false).map_err(|_| {
                usage(format!("publish.publisher {other:?}: expected \"embedded\", \"http\", \"redis-pubsub\" or \"redis-core\""))
            })?,
        };
        if publisher == PublisherKind::Embedded && matches!(target, Target::External(_)) {
            return Err(usage("the embedded publisher needs the embedded target; use --publisher http with --target"));
        }
        let arrival = ArrivalModel::resolve(opts, p)?;
        let sources_n = opts
            .source_addrs
            .or(c.source_addrs)
            .unwrap_or(DEFAULT_SOURCE_ADDRS)
            .max(1);
        let sources = match &target {
            Target::Embedded { .. } => (1..=sources_n)
                .map(|n| Ipv4Addr::new(127, 0, 0, n))
                .collect(),
            Target::External(e) if e.addr.ip().is_loopback() && e.addr.is_ipv4() => (1..=sources_n)
                .map(|n| Ipv4Addr::new(127, 0, 0, n))
                .collect(),
            Target::External(_) => Vec::new(),
        };
        let thresholds = s
            .thresholds
            .iter()
            .chain(&opts.outputs.thresholds)
            .map(|t| Threshold::parse(t))
            .collect::<Result<Vec<_>>>()?;
        let baseline = opts
            .baseline
            .as_deref()
            .map(crate::baseline::Baseline::load)
            .transpose()?
            .map(std::sync::Arc::new);
        for t in &thresholds {
            // A relative bound without a baseline value is a usage error before any socket opens.
            t.baseline_value(baseline.as_deref().map(|b| &b.report))?;
        }
        let find_max = FindMax::resolve(opts, !thresholds.is_empty(), &arrival, connections)?;
        let broker = crate::broker::Broker::resolve(opts, s, publisher, &target)?;
        if let Some(at) = opts.start_at {
            crate::segment::check_start_at(at)?;
        }
        let mut plan = Plan {
            scenario: s.name.clone().unwrap_or_else(|| "custom".into()),
            description: describe(s, opts),
            target,
            auth,
            api_key: t.api_key.clone(),
            connections,
            users,
            ramp_rate,
            concurrency,
            connect_timeout: duration(
                opts.connect_timeout.as_deref(),
                c.connect_timeout.as_deref(),
                "connect_timeout",
                DEFAULT_CONNECT_TIMEOUT,
            )?,
            sources,
            slow_fraction,
            slow_after: c.slow_after.unwrap_or(5),
            publisher,
            arrival,
            batch: opts.batch.or(p.batch).unwrap_or(DEFAULT_BATCH).max(1),
            lanes: p.lanes.unwrap_or(DEFAULT_LANES).max(1),
            payload_bytes: opts.payload_bytes.or(p.payload_bytes).unwrap_or(64),
            duration: duration(
                opts.duration.as_deref(),
                s.run.duration.as_deref(),
                "duration",
                DEFAULT_DURATION,
            )?,
            drain_timeout: duration(
                opts.drain_timeout.as_deref(),
                s.run.drain_timeout.as_deref(),
                "drain_timeout",
                DEFAULT_DRAIN_TIMEOUT,
            )?,
            thresholds,
            outputs: opts
                .outputs
                .outputs(!opts.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr())),
            find_max,
            server_pid: opts.server_pid,
            broker,
            server_metrics: opts
                .server_metrics
                .as_deref()
                .map(|m| crate::server_metrics::MetricsSource::parse(m, t.allow_remote))
                .transpose()?,
            repeat: opts.repeat.unwrap_or(1),
            baseline,
            segment: None,
            first_user: 0,
            start_at_ms: opts.start_at,
            barrier: None,
        };
        if let Some(text) = &opts.segment {
            crate::segment::Segment::parse(text)?.apply(&mut plan)?;
        }
        plan.barrier = crate::barrier::BarrierSpec::resolve(opts, &plan)?;
        if matches!(
            (&plan.server_metrics, &plan.target),
            (
                Some(crate::server_metrics::MetricsSource::Embedded),
                Target::External(_)
            )
        ) {
            return Err(usage(
                "--server-metrics embedded needs the embedded target; give the server's http://HOST:PORT/metrics",
            ));
        }
        if plan.repeat == 0 {
            return Err(usage("--repeat must be at least 1"));
        }
        if plan.repeat > 1 && plan.find_max.is_some() {
            return Err(usage("--repeat and --find-max do not combine"));
        }
        if plan.publisher == PublisherKind::Http
            && plan.api_key.is_none()
            && matches!(plan.target, Target::External(_))
        {
            return Err(usage(
                "the http publisher needs --api-key (the server's X-API-Key)",
            ));
        }
        if plan.duration.is_zero() {
            return Err(usage("duration must be positive"));
        }
        Ok(plan)
    }

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

/// The scenario's own description, unless flags changed what it describes (the shape of the run:
/// target, connections, users, publisher, arrival model) — then it would say the wrong thing.
fn describe(s: &Scenario, opts: &Opts) -> String {
    let described = s.description.clone().unwrap_or_default();
    let reshaped = opts.target.url.is_some()
        || opts.connections.is_some()
        || opts.users.is_some()
        || opts.publisher.is_some()
        || opts.model.is_some()
        || opts.bursts.is_some()
        || opts.events_per_burst.is_some()
        || opts.rate.is_some();
    if reshaped && !described.is_empty() {
        "flags override the scenario's shape (see the line below)".into()
    } else {
        described
    }
}
