//! `loadtest ab`: starts two server commands (A and B) itself, runs one discarded warm-up against
//! each, then interleaved rounds (A B, B A, A B, …) of the same scenario, and judges B against A
//! per metric with the median B/A ratio and its bootstrap interval (see
//! [`crate::measure::significance`]).
//!
//! Only the processes it started are stopped: each command runs in a process group of its own,
//! which gets SIGTERM, then SIGKILL after a grace period.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::run::run_plan;
use crate::cli::{AbOpts, Opts};
use crate::error::{Error, Result, EXIT_FAIL, EXIT_PASS};
use crate::measure::significance::{compare_rounds, median, RatioSummary, Verdict};
use crate::measure::Exposition;
use crate::plan::Plan;
use crate::report::render::num;
use crate::schema::{better, metric_name, Report};
use crate::session::StopReason;

/// Metrics judged when no `--metric` is given: throughput, tail latency and the server's CPU per
/// delivery (the figure that stays meaningful on a busy machine).
pub(crate) const DEFAULT_METRICS: &[&str] =
    &["deliveries_per_sec", "p99_ms", "server_ns_per_delivery"];
/// Grace period between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A server command this process started.
struct Server {
    label: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// Starts `cmd` (with `{port}` replaced) and waits until its port accepts connections.
    async fn start(
        label: &'static str,
        cmd: &str,
        dir: &std::path::Path,
        wait: Duration,
    ) -> Result<Self> {
        let port = free_port()?;
        let log = dir.join(format!("server-{label}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {}", cmd.replace("{port}", &port.to_string())))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Setup(format!("starting {label}: {e}")))?;
        let mut s = Self {
            label,
            child,
            port,
            log,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + wait;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(s);
            }
            let exited = s.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let tail = std::fs::read_to_string(&s.log).unwrap_or_default();
                let tail: String = tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(Error::Setup(format!(
                    "server {label} ({cmd}) {} on port {port}; its log: {tail}",
                    match exited {
                        Some(st) => format!("exited ({st}) before listening"),
                        None => "did not listen in time".into(),
                    }
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws/notifications/", self.port)
    }

    /// SIGTERM to its process group, SIGKILL after the grace period.
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The result of `loadtest ab`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AbResult {
    /// Command A.
    pub(crate) a: String,
    /// Command B.
    pub(crate) b: String,
    /// Measured rounds.
    pub(crate) rounds: usize,
    /// The order each round ran in (`AB` or `BA`).
    pub(crate) order: Vec<String>,
    /// Threshold (fraction of A).
    pub(crate) threshold: f64,
    /// Interval confidence.
    pub(crate) confidence: f64,
    /// One comparison per metric.
    pub(crate) metrics: Vec<RatioSummary>,
    /// Metrics with a zero in every round on one side (no ratio to judge).
    pub(crate) not_compared: Vec<String>,
    /// Regression if any metric regressed, else improvement if any improved.
    pub(crate) verdict: Verdict,
}

/// Runs the scenario once against `server`.
async fn one_run(o: &AbOpts, server: &Server, stop: &CancellationToken) -> Result<Report> {
    let url = server.url();
    let pid = server.child.id().to_string();
    let mut argv: Vec<String> = ["loadtest", "--no-progress", "--target", &url]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend([
        "--jwt-secret".into(),
        o.jwt_secret.clone(),
        "--server-pid".into(),
        pid,
    ]);
    if let Some(k) = &o.api_key {
        argv.extend(["--api-key".into(), k.clone()]);
    }
    if let Some(s) = &o.scenario {
        argv.extend(["--scenario".into(), s.display().to_string()]);
    }
    argv.extend(o.run_args.iter().cloned());
    let opts = Opts::try_parse_from(&argv)
        .map_err(|e| Error::Usage(format!("run flags after --: {e}")))?;
    let plan = Plan::from_opts(&opts)?;
    if plan.metrics_listen.is_some() {
        // Each round is a run of its own on a fresh plan: one endpoint would have to outlive them.
        return Err(Error::Usage(
            "--metrics-listen is not served by `loadtest ab` (watch the servers' /metrics)".into(),
        ));
    }
    let reason: StopReason = Arc::new(OnceLock::new());
    run_plan(&plan, &stop.child_token(), &reason, &Exposition::off()).await
}

/// Runs the A/B comparison and returns its result (servers stopped on return, error or not).
pub(crate) async fn compare(o: &AbOpts, stop: &CancellationToken) -> Result<AbResult> {
    if o.rounds < 2 {
        return Err(Error::Usage("--rounds must be at least 2".into()));
    }
    if !((0.0..1.0).contains(&o.threshold) && o.confidence > 0.0 && o.confidence < 1.0) {
        return Err(Error::Usage(
            "--threshold must be in [0, 1) and --confidence in (0, 1)".into(),
        ));
    }
    let names: Vec<&str> = if o.metrics.is_empty() {
        DEFAULT_METRICS.to_vec()
    } else {
        o.metrics
            .iter()
            .map(|m| metric_name(m).map_err(Error::Usage))
            .collect::<Result<_>>()?
    };
    let wait = humantime::parse_duration(&o.start_timeout)
        .map_err(|e| Error::Usage(format!("--start-timeout: {e}")))?;
    let dir = tempfile_dir()?;
    let a = Server::start("A", &o.a, &dir, wait).await?;
    let b = Server::start("B", &o.b, &dir, wait).await?;
    for s in [&a, &b] {
        eprintln!("ab: warm-up against {} (discarded)", s.label);
        one_run(o, s, stop).await?;
    }
    let (mut va, mut vb): (Vec<Vec<f64>>, Vec<Vec<f64>>) =
        (vec![Vec::new(); names.len()], vec![Vec::new(); names.len()]);
    let mut order = Vec::new();
    for round in 0..o.rounds {
        let pair: [&Server; 2] = if round % 2 == 0 { [&a, &b] } else { [&b, &a] };
        order.push(format!("{}{}", pair[0].label, pair[1].label));
        for s in pair {
            if stop.is_cancelled() {
                return Err(Error::Setup("interrupted".into()));
            }
            let r = one_run(o, s, stop).await?;
            let into = if s.label == "A" { &mut va } else { &mut vb };
            for (i, m) in names.iter().enumerate() {
                let v = r.metric(m).ok_or_else(|| {
                    Error::Usage(format!("metric {m} was not measured against {}", s.label))
                })?;
                into[i].push(v);
            }
            eprintln!(
                "ab: round {}/{} {}  {}",
                round + 1,
                o.rounds,
                s.label,
                names
                    .iter()
                    .map(|m| format!("{m} {}", num(r.metric(m))))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
    let mut metrics = Vec::new();
    let mut not_compared = Vec::new();
    for (i, m) in names.iter().enumerate() {
        match compare_rounds(m, better(m), &va[i], &vb[i], o.threshold, o.confidence) {
            Some(r) => metrics.push(r),
            None => not_compared.push((*m).to_owned()),
        }
    }
    let verdict = if metrics.iter().any(|m| m.verdict == Verdict::Regression) {
        Verdict::Regression
    } else if metrics.iter().any(|m| m.verdict == Verdict::Improvement) {
        Verdict::Improvement
    } else {
        Verdict::NoSignificantChange
    };
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(AbResult {
        a: o.a.clone(),
        b: o.b.clone(),
        rounds: o.rounds,
        order,
        threshold: o.threshold,
        confidence: o.confidence,
        metrics,
        not_compared,
        verdict,
    })
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("loadtest-ab-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Regression => "regression",
        Verdict::Improvement => "improvement",
        Verdict::NoSignificantChange => "no significant change",
    }
}

/// The text table.
pub(crate) fn render(r: &AbResult) -> String {
    let n = |v: f64| num(Some(v));
    let mut s = format!(
        "ab: A = {}\n    B = {}\n    {} rounds ({}) after one discarded warm-up each\n",
        r.a,
        r.b,
        r.rounds,
        r.order.join(" ")
    );
    let _ = writeln!(
        s,
        "  {:<24} {:>12} {:>12}   {:>7} {:>15}   {:>15} {:>7}   verdict",
        "metric",
        "A median",
        "B median",
        "B/A",
        "min..max",
        format!("{:.0}% CI", r.confidence * 100.0),
        "p"
    );
    for m in &r.metrics {
        let med = |v: &[f64]| median(v).unwrap_or(f64::NAN);
        let _ = writeln!(
            s,
            "  {:<24} {:>12} {:>12}   {:>7.3} {:>15}   {:>15} {:>7.3}   {}",
            m.metric,
            n(med(&m.a)),
            n(med(&m.b)),
            m.ratio.median,
            format!("{:.3}..{:.3}", m.ratio.min, m.ratio.max),
            format!("{:.3}..{:.3}", m.ci.0, m.ci.1),
            m.p_value,
            verdict_text(m.verdict)
        );
    }
    if !r.not_compared.is_empty() {
        let _ = writeln!(
            s,
            "  not compared (a zero in every round, e.g. CPU below the 10 ms clock tick): {}",
            r.not_compared.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "Verdict         {} (threshold {:.0}%; median of per-round B/A ratios, percentile-bootstrap interval, exact sign test)",
        verdict_text(r.verdict),
        r.threshold * 100.0
    );
    s
}

/// Runs `loadtest ab`; exit 1 on a regression, 0 otherwise.
pub(crate) async fn run(o: &AbOpts) -> anyhow::Result<u8> {
    let stop = CancellationToken::new();
    let ctrl_c = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        })
    };
    let r = compare(o, &stop).await;
    ctrl_c.abort();
    let r = r?;
    print!("{}", render(&r));
    if let Some(p) = &o.json {
        std::fs::write(p, serde_json::to_string_pretty(&r)?)
            .map_err(|e| Error::Setup(format!("writing {}: {e}", p.display())))?;
    }
    Ok(if r.verdict == Verdict::Regression {
        EXIT_FAIL
    } else {
        EXIT_PASS
    })
}
