//! `loadtest capacity`: sizes a deployment (cores, memory, processes) from a JSON report's measured
//! server CPU per delivery and memory per connection, with every assumption printed beside it.

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::cli::CapacityOpts;
use crate::error::EXIT_PASS;

/// File descriptors a courier process keeps for itself (listener, Redis, Postgres, logs, slack).
pub(crate) const FD_RESERVE: u64 = 1024;
/// courier's own `--max-connections` default, which a larger per-process share must raise.
const COURIER_MAX_CONNECTIONS: u64 = courier::config::DEFAULT_MAX_CONNECTIONS as u64;

/// The costs measured in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Measured {
    /// The report's scenario, model and target, for the reader.
    pub(crate) source: String,
    /// Server CPU seconds spent delivering (first send to end of drain, or the whole run).
    pub(crate) server_cpu_seconds: f64,
    /// Deliveries received (healthy and slow clients).
    pub(crate) deliveries: u64,
    /// Connections established.
    pub(crate) connections: u64,
    /// Server RSS under load, bytes.
    pub(crate) rss_bytes: u64,
    /// Connections per user in the measured run (its fan-out).
    pub(crate) fanout: f64,
    /// `true` when RSS is the embedded process's growth (clients included: an upper bound).
    pub(crate) rss_includes_clients: bool,
    /// `--find-max rate` report: the highest event rate one process sustained with every
    /// threshold held, at the report's connections and fan-out.
    pub(crate) max_rate: Option<f64>,
    /// The report is marked tester limited (or its search was capped by the tester): its rate is
    /// the tester's reach, a lower bound of the server's.
    pub(crate) tester_limited: bool,
}

impl Measured {
    /// Server CPU per delivery, ns.
    pub(crate) fn cpu_ns_per_delivery(&self) -> f64 {
        self.server_cpu_seconds * 1e9 / self.deliveries.max(1) as f64
    }

    /// Server memory per connection, bytes.
    pub(crate) fn bytes_per_connection(&self) -> f64 {
        self.rss_bytes as f64 / self.connections.max(1) as f64
    }

    /// Reads the figures from a report's JSON. Names what is missing and how to get it.
    pub(crate) fn from_report(v: &Value) -> anyhow::Result<Self> {
        let num = |p: &str| v.pointer(p).and_then(Value::as_f64);
        let server_cpu_seconds = num("/server/delivery_cpu_seconds")
            .or_else(|| num("/server/cpu_seconds"))
            .context("the report has no server CPU (server.delivery_cpu_seconds): run the embedded server or pass --server-pid")?;
        let rss_bytes = num("/server/rss_bytes")
            .context("the report has no server RSS (server.rss_bytes): run the embedded server or pass --server-pid")?;
        let deliveries = num("/deliveries/received").unwrap_or(0.0)
            + num("/slow_clients/received").unwrap_or(0.0);
        let connections = num("/connections/established").unwrap_or(0.0);
        if deliveries < 1.0 || connections < 1.0 {
            anyhow::bail!("the report has no deliveries or no established connections");
        }
        let users = num("/users").unwrap_or(connections).max(1.0);
        let text = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("?");
        let max_rate = (text("/find_max/over") == "rate")
            .then(|| num("/find_max/highest_passing"))
            .flatten();
        let target = text("/target");
        let tester_limited = v.pointer("/tester_limit/limited") == Some(&Value::Bool(true))
            || num("/find_max/tester_limited_at").is_some();
        Ok(Self {
            source: format!(
                "scenario {}, {}, {} publisher, target {target}",
                text("/scenario"),
                text("/model"),
                text("/publisher")
            ),
            server_cpu_seconds,
            deliveries: deliveries as u64,
            connections: connections as u64,
            rss_bytes: rss_bytes as u64,
            fanout: connections / users,
            rss_includes_clients: target == "embedded",
            max_rate,
            tester_limited,
        })
    }
}

/// What the deployment must serve, and the assumptions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Demand {
    /// Concurrent connections.
    pub(crate) connections: u64,
    /// Events per second.
    pub(crate) events_per_sec: f64,
    /// Connections per event.
    pub(crate) fanout: f64,
    /// Target utilisation.
    pub(crate) utilisation: f64,
    /// Connections one process may hold (fd limit − reserve).
    pub(crate) max_connections_per_process: u64,
    /// Idle process RSS, bytes.
    pub(crate) process_base_bytes: u64,
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Sizing {
    /// events/s × fan-out.
    pub(crate) deliveries_per_sec: f64,
    /// Cores kept busy at 100 %.
    pub(crate) busy_cores: f64,
    /// Cores to provision (busy ÷ utilisation, rounded up, at least 1).
    pub(crate) cores: u64,
    /// Processes: the larger of the fd bound and (with a measured maximum rate) the rate bound.
    pub(crate) processes: u64,
    /// Processes needed for the deliveries/s at the measured maximum rate ÷ utilisation, when
    /// the report is a `--find-max rate` search.
    pub(crate) processes_by_rate: Option<u64>,
    /// Connections per process.
    pub(crate) connections_per_process: u64,
    /// Memory to provision, bytes ((connections × per-connection + processes × base) ÷ utilisation).
    pub(crate) memory_bytes: u64,
}

/// The arithmetic, kept apart from I/O so it is unit-tested.
pub(crate) fn size(m: &Measured, d: &Demand) -> Sizing {
    let deliveries_per_sec = d.events_per_sec * d.fanout;
    let busy_cores = deliveries_per_sec * m.cpu_ns_per_delivery() / 1e9;
    let cores = ((busy_cores / d.utilisation).ceil() as u64).max(1);
    let per_process = d.max_connections_per_process.max(1);
    // One process sustained max_rate × its fan-out deliveries/s with every threshold held.
    let processes_by_rate = m
        .max_rate
        .filter(|r| *r > 0.0)
        .map(|r| ((deliveries_per_sec / (r * m.fanout * d.utilisation)).ceil() as u64).max(1));
    let processes = d
        .connections
        .div_ceil(per_process)
        .max(processes_by_rate.unwrap_or(1))
        .max(1);
    let memory = (d.connections as f64 * m.bytes_per_connection()
        + processes as f64 * d.process_base_bytes as f64)
        / d.utilisation;
    Sizing {
        deliveries_per_sec,
        busy_cores,
        cores,
        processes,
        processes_by_rate,
        connections_per_process: d.connections.div_ceil(processes),
        memory_bytes: memory.ceil() as u64,
    }
}

/// Runs the subcommand: reads the report, sizes, prints text or JSON.
pub(crate) async fn run(o: &CapacityOpts) -> anyhow::Result<u8> {
    if !(o.utilisation > 0.0 && o.utilisation <= 1.0) {
        anyhow::bail!("--utilisation must be in (0, 1]");
    }
    if !(o.events_per_sec.is_finite() && o.events_per_sec >= 0.0) || o.connections == 0 {
        anyhow::bail!("--connections must be ≥ 1 and --events-per-sec ≥ 0");
    }
    let text = std::fs::read_to_string(&o.from)
        .with_context(|| format!("reading {}", o.from.display()))?;
    let report: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON report", o.from.display()))?;
    let m = Measured::from_report(&report)?;
    let fd_limit = match o.fd_limit {
        Some(n) => n,
        None => rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(_, hard)| hard)?,
    };
    let fanout = o.fanout.unwrap_or(m.fanout);
    if !(fanout.is_finite() && fanout > 0.0) {
        anyhow::bail!("--fanout must be positive");
    }
    let d = Demand {
        connections: o.connections,
        events_per_sec: o.events_per_sec,
        fanout,
        utilisation: o.utilisation,
        max_connections_per_process: fd_limit.saturating_sub(FD_RESERVE).max(1),
        process_base_bytes: (o.process_base_mib * 1024.0 * 1024.0) as u64,
    };
    let s = size(&m, &d);
    if o.json {
        let out =
            serde_json::json!({ "measured": m, "demand": d, "fd_limit": fd_limit, "sizing": s });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!(
            "{}",
            render(&m, &d, &s, fd_limit, &o.from.display().to_string())
        );
    }
    Ok(EXIT_PASS)
}

fn mib(b: f64) -> String {
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

/// The text rendering.
pub(crate) fn render(m: &Measured, d: &Demand, s: &Sizing, fd_limit: u64, from: &str) -> String {
    use std::fmt::Write;
    let pct = d.utilisation * 100.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Capacity for {} connections, {} events/s × fan-out {:.1} = {:.0} deliveries/s",
        d.connections, d.events_per_sec, d.fanout, s.deliveries_per_sec
    );
    let _ = writeln!(o, "  from {from} ({})", m.source);
    let _ = writeln!(
        o,
        "  measured: {:.0} ns server CPU per delivery ({:.3} s over {} deliveries, fan-out {:.1}); {:.1} KiB per connection ({} over {} connections{})",
        m.cpu_ns_per_delivery(), m.server_cpu_seconds, m.deliveries, m.fanout,
        m.bytes_per_connection() / 1024.0, mib(m.rss_bytes as f64), m.connections,
        if m.rss_includes_clients { ", embedded: clients included, an upper bound" } else { "" }
    );
    let _ = writeln!(
        o,
        "  cores:     {:>6}   ({:.2} busy ÷ {pct:.0}% target utilisation)",
        s.cores, s.busy_cores
    );
    let _ = writeln!(
        o,
        "  memory:    {:>6}   (({} × {:.1} KiB + {} × {} base) ÷ {pct:.0}%)",
        mib(s.memory_bytes as f64),
        d.connections,
        m.bytes_per_connection() / 1024.0,
        s.processes,
        mib(d.process_base_bytes as f64)
    );
    let _ = writeln!(
        o,
        "  processes: {:>6}   ({} connections each; at most {} per process = fd limit {fd_limit} − {FD_RESERVE} reserved)",
        s.processes, s.connections_per_process, d.max_connections_per_process
    );
    if let (Some(r), Some(p)) = (m.max_rate, s.processes_by_rate) {
        let _ = writeln!(
            o,
            "  by rate:   {p:>6}   ({:.0} deliveries/s ÷ ({r:.0} events/s × fan-out {:.1} found by --find-max rate at {} connections × {pct:.0}%))",
            s.deliveries_per_sec, m.fanout, m.connections
        );
    }
    let _ = writeln!(o, "Assumptions:");
    if m.tester_limited {
        let _ = writeln!(o, "  - The report is TESTER LIMITED: the tester, not the server, set its pace, so its rate is a lower bound of what one process sustains and this sizing may ask for more than the server needs. Measure again with more publisher lanes or tester processes.");
    }
    let _ = writeln!(o, "  - CPU grows linearly with deliveries/s at the measured cost per delivery; it was measured at fan-out {:.1} with the report's arrival model: a lower fan-out or a paced rate costs more per delivery, so measure a scenario like yours.", m.fanout);
    let _ = writeln!(o, "  - {pct:.0}% target utilisation leaves headroom for bursts, reconnect storms and losing a process; memory was sampled under load (queues filled).");
    let bound = if s.processes_by_rate.is_some() {
        "by open files and by the rate one process sustained"
    } else {
        "by open files only"
    };
    let _ = writeln!(o, "  - Processes are bound {bound}: raise courier --max-connections (default {COURIER_MAX_CONNECTIONS}) to at least {} and keep the fd limit ≥ {} per process.", s.connections_per_process, s.connections_per_process + FD_RESERVE);
    let _ = writeln!(
        o,
        "  - Redis or Postgres, TLS termination and the publisher's own CPU are not included."
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured() -> Measured {
        Measured {
            source: "t".into(),
            server_cpu_seconds: 1.0,
            deliveries: 4_000_000, // 250 ns per delivery
            connections: 10_000,
            rss_bytes: 80_000_000, // 8000 B per connection
            fanout: 10.0,
            rss_includes_clients: false,
            max_rate: None,
            tester_limited: false,
        }
    }

    fn demand() -> Demand {
        Demand {
            connections: 250_000,
            events_per_sec: 100_000.0,
            fanout: 20.0,
            utilisation: 0.5,
            max_connections_per_process: 100_000,
            process_base_bytes: 1_000_000,
        }
    }

    #[test]
    fn arithmetic() {
        let m = measured();
        assert_eq!(m.cpu_ns_per_delivery(), 250.0);
        assert_eq!(m.bytes_per_connection(), 8000.0);
        let s = size(&m, &demand());
        assert_eq!(s.deliveries_per_sec, 2_000_000.0);
        assert!(
            (s.busy_cores - 0.5).abs() < 1e-9,
            "2M/s × 250 ns = 0.5 core"
        );
        assert_eq!(s.cores, 1);
        assert_eq!(s.processes, 3, "250k over 100k per process");
        assert_eq!(s.connections_per_process, 83_334);
        // (250k × 8000 + 3 × 1 MB) ÷ 0.5
        assert_eq!(s.memory_bytes, 4_006_000_000);
    }

    #[test]
    fn rounds_up_and_never_below_one() {
        let m = measured();
        let d = Demand {
            connections: 1,
            events_per_sec: 0.0,
            ..demand()
        };
        let s = size(&m, &d);
        assert_eq!((s.cores, s.processes), (1, 1));
        let d = Demand {
            events_per_sec: 1_000_000.0,
            ..demand()
        };
        // 20M/s × 250 ns = 5 busy cores ÷ 0.5 = 10
        assert_eq!(size(&m, &d).cores, 10);
    }

    #[test]
    fn a_found_rate_bounds_the_processes() {
        // 1000 events/s × fan-out 10 = 10k deliveries/s per process with every threshold held.
        let m = Measured {
            max_rate: Some(1000.0),
            ..measured()
        };
        let s = size(&m, &demand());
        // 2M deliveries/s ÷ (10k × 0.5) = 400 processes, more than the fd bound's 3.
        assert_eq!(s.processes_by_rate, Some(400));
        assert_eq!(s.processes, 400);
        assert_eq!(size(&measured(), &demand()).processes_by_rate, None);
        let v = serde_json::json!({
            "users": 10, "connections": {"established": 100}, "deliveries": {"received": 10},
            "server": {"rss_bytes": 1, "cpu_seconds": 1.0},
            "find_max": {"over": "rate", "highest_passing": 3875.0}
        });
        let m = Measured::from_report(&v).expect("m");
        assert_eq!(m.max_rate, Some(3875.0));
        assert!(!m.tester_limited);
        // A search the tester capped found the tester's reach: the sizing says so.
        let mut v = v;
        v["find_max"]["tester_limited_at"] = serde_json::json!(4000.0);
        let m = Measured::from_report(&v).expect("m");
        assert!(m.tester_limited);
        let text = render(&m, &demand(), &size(&m, &demand()), 65536, "r.json");
        assert!(text.contains("TESTER LIMITED"), "{text}");
    }

    #[test]
    fn reads_a_report_and_says_what_is_missing() {
        let v = serde_json::json!({
            "scenario": "s", "model": "burst", "publisher": "embedded", "target": "embedded", "users": 100,
            "connections": {"established": 1000},
            "deliveries": {"received": 9000}, "slow_clients": {"received": 1000},
            "server": {"rss_bytes": 8_000_000, "cpu_seconds": 9.0, "delivery_cpu_seconds": 0.003}
        });
        let m = Measured::from_report(&v).expect("measured");
        assert_eq!(m.deliveries, 10_000);
        assert!((m.cpu_ns_per_delivery() - 300.0).abs() < 1e-6);
        assert_eq!(m.fanout, 10.0);
        assert!(m.rss_includes_clients);
        let e = Measured::from_report(&serde_json::json!({"server": {}})).expect_err("no cpu");
        assert!(e.to_string().contains("--server-pid"), "{e}");
    }
}
