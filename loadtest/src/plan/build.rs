//! Flags over a scenario over the defaults → a validated [`Plan`]: every value checked and every
//! flag combination refused that cannot run, before any socket is opened.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cli::{Opts, PublisherKind};
use crate::error::{usage, Result};

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
        let arrival = ArrivalModel::resolve(opts, p, s.base_dir.as_deref())?;
        let batch = opts.batch.or(p.batch).unwrap_or(DEFAULT_BATCH).max(1);
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
            .map(Baseline::load)
            .transpose()?
            .map(Arc::new);
        for t in &thresholds {
            // A relative bound without a baseline value is a usage error before any socket opens.
            t.baseline_value(baseline.as_deref().map(|b| &b.report))?;
        }
        let find_max = FindMax::resolve(opts, !thresholds.is_empty(), &arrival, connections)?;
        let layer = Layer::resolve(opts, s, publisher, &target)?;
        if let Some(at) = opts.start_at {
            check_start_at(at)?;
        }
        let churn = churn::resolve_churn(&opts.churn, &s.churn, &target, t.allow_remote)?;
        let tokens = churn::resolve_tokens(&opts.churn, c, auth.as_ref())?;
        let server_metrics = opts
            .server_metrics
            .as_deref()
            .map(|m| MetricsSource::parse(m, t.allow_remote))
            .transpose()?;
        let publish_to = t
            .publish_url
            .as_deref()
            .map(|u| parse_endpoint(u, "--publish-url", "http", "/", t.allow_remote))
            .transpose()?;
        let uses_tls = matches!(&target, Target::External(e) if e.is_tls())
            || publish_to.as_ref().is_some_and(Endpoint::is_tls)
            || matches!(&server_metrics, Some(MetricsSource::Url(e)) if e.is_tls())
            || churn
                .iter()
                .flat_map(|c| &c.reconnect_targets)
                .any(|e| e.is_tls());
        let tls = tls_client(t, uses_tls)?;
        let mut plan = Plan {
            scenario: s.name.clone().unwrap_or_else(|| "custom".into()),
            description: describe(s, opts),
            target,
            tls,
            auth,
            api_key: t.api_key.clone(),
            publish_to,
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
            lanes: p.lanes.unwrap_or_else(|| lanes_for(&arrival, batch)).max(1),
            arrival,
            batch,
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
            outputs: Outputs::new(
                &opts.outputs,
                !opts.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ),
            find_max,
            server_pid: opts.server_pid,
            layer,
            server_metrics,
            metrics_listen: MetricsListen::parse(
                opts.metrics_listen.as_deref(),
                opts.metrics_linger.as_deref(),
            )?,
            repeat: opts.repeat.unwrap_or(1),
            baseline,
            segment: None,
            first_user: 0,
            start_at_ms: opts.start_at,
            barrier: None,
            churn,
            tokens,
            diagnostics: Diagnostics::resolve(&s.diagnostics)?,
        };
        if let Some(text) = &opts.segment {
            Segment::parse(text)?.apply(&mut plan)?;
        }
        plan.barrier = BarrierSpec::resolve(opts, &plan)?;
        if matches!(
            (&plan.server_metrics, &plan.target),
            (Some(MetricsSource::Embedded), Target::External(_))
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
        if let ArrivalModel::Replay { trace, speed } = &plan.arrival {
            // A schedule longer than the run bound would be cut short every time (exit 1).
            let schedule = trace.span().div_f64(*speed);
            if schedule >= plan.duration {
                return Err(usage(format!(
                    "the replay takes {} at speed {speed}, not within the run's duration {}: give a longer --duration or a higher --replay-speed",
                    humantime::format_duration(Duration::from_millis(schedule.as_millis() as u64)),
                    humantime::format_duration(plan.duration)
                )));
            }
        }
        Ok(plan)
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
        || opts.rate.is_some()
        || !opts.trace.is_empty();
    if reshaped && !described.is_empty() {
        "flags override the scenario's shape (see the line below)".into()
    } else {
        described
    }
}

/// The flag's duration, else the scenario file's, else `default`; `name` labels a parse error.
pub(super) fn duration(
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
