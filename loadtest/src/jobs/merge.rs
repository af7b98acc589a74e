//! `loadtest merge A.json B.json …`: the reports of one run's segments added up exactly, then
//! judged as one run.
//!
//! Exact where it can be: counters are summed (deliveries, losses, duplicates, reorders, errors,
//! close codes), latency and handshake quantiles come from the segments' raw HDR histograms added
//! together (not averaged), the deliveries/s timeline is summed interval by interval (aligned at
//! each segment's first intended send, which `--start-at` makes one instant). Rates of segments
//! that ran side by side add up; wall times take the longest. Per-process series (latency over
//! time, bursts, samples, server metrics) are left out; each process's headline figures are kept
//! beside the totals ([`ProcessFigures`]), so one slow agent or server stands out. Thresholds are evaluated on the merged
//! report only: `-t` when given, else the expressions the segments ran with (a relative one needs
//! a baseline, which a merge has not: it fails as unmeasured).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::cli::MergeOpts;
use crate::measure::{decode, encode, new_histogram};
use crate::plan::{Outputs, Segment, Threshold};
use crate::report::{curve, exit_code, series, write_outputs};
use crate::schema::{
    Churn, Latency, ProcessFigures, Quantiles, Raw, Report, SlowClients, TesterLimit, Tls,
    MAX_LISTED,
};

/// Reads, merges, judges and writes; the exit code is the merged verdict's.
pub(crate) async fn run(o: &MergeOpts) -> anyhow::Result<u8> {
    let reports = o
        .reports
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str::<Report>(&text)
                .with_context(|| format!("{} is not a loadtest JSON report", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let exprs: Vec<String> = if o.outputs.thresholds.is_empty() {
        let mut seen = BTreeSet::new();
        reports
            .iter()
            .flat_map(|r| r.thresholds.iter().map(|t| t.expr.clone()))
            .filter(|e| seen.insert(e.clone()))
            .collect()
    } else {
        o.outputs.thresholds.clone()
    };
    let thresholds = exprs
        .iter()
        .map(|t| Threshold::parse(t))
        .collect::<crate::error::Result<Vec<_>>>()?;
    let mut merged = merge(reports)?;
    merged.judge(&thresholds, None);
    write_outputs(&Outputs::new(&o.outputs, false), None, &merged)?;
    Ok(exit_code(&merged))
}

/// Adds the reports up (see the module docs). Thresholds are left for [`Report::judge`].
pub(crate) fn merge(reports: Vec<Report>) -> anyhow::Result<Report> {
    let n = reports.len();
    let raws: Vec<&Raw> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.raw.as_ref().with_context(|| {
                format!(
                    "report {} has no raw histograms (written by an older loadtest?)",
                    i + 1
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let missing = check_segments(&raws)?;
    let mut per_process: Vec<ProcessFigures> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| ProcessFigures::of(r, i))
        .collect();
    // Any segment the tester held back holds the whole run back (its reasons name the segment).
    let tester_limit = TesterLimit::any(
        per_process
            .iter()
            .zip(&reports)
            .map(|(p, r)| (format!("segment {}", p.segment), r.tester_limit.as_ref())),
    );
    // Segments in K order (the order given when they are not segments).
    per_process.sort_by_key(|p| Segment::parse(&p.segment).map_or(0, |s| s.index));
    let mut latency = new_histogram();
    let mut handshake = new_histogram();
    for (i, raw) in raws.iter().enumerate() {
        let what = |field: &str| format!("report {}: raw.{field}", i + 1);
        latency
            .add(decode(&raw.latency_us, &what("latency_us"))?)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", what("latency_us")))?;
        handshake
            .add(decode(&raw.handshake_us, &what("handshake_us"))?)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", what("handshake_us")))?;
    }
    let publish_lag = add_optional(&raws, |r| r.publish_lag_us.as_deref(), "publish_lag_us")?;
    let receive_lag = add_optional(&raws, |r| r.receive_lag_us.as_deref(), "receive_lag_us")?;
    let tls_handshake = add_optional(&raws, |r| r.tls_handshake_us.as_deref(), "tls_handshake_us")?;
    let start_at_ms = raws.first().and_then(|r| r.start_at_ms);
    let first_send_ms = raws.iter().filter_map(|r| r.first_send_ms).min();
    let mut it = reports.into_iter();
    let mut m = it.next().context("no reports to merge")?;
    let mut targets: BTreeSet<String> = BTreeSet::from([m.target.clone()]);
    let mut partial: Vec<String> = m.partial.take().into_iter().collect();
    for r in it {
        targets.insert(r.target.clone());
        partial.extend(r.partial);
        m.users += r.users;
        m.duration_secs = m.duration_secs.max(r.duration_secs);
        let (c, rc) = (&mut m.connections, r.connections);
        c.attempted += rc.attempted;
        c.established += rc.established;
        c.failed += rc.failed;
        add_counts(&mut c.closed_by_code, rc.closed_by_code);
        add_counts(&mut c.errors, rc.errors);
        c.connect_secs = c.connect_secs.max(rc.connect_secs);
        m.handshakes_per_sec += r.handshakes_per_sec;
        let (d, rd) = (&mut m.deliveries, r.deliveries);
        d.expected += rd.expected;
        d.received += rd.received;
        d.lost += rd.lost;
        d.duplicated += rd.duplicated;
        d.reordered += rd.reordered;
        d.foreign += rd.foreign;
        d.resyncs = add_opt(d.resyncs, rd.resyncs);
        m.slow_clients = add_slow(m.slow_clients.take(), r.slow_clients);
        m.churn = add_churn(m.churn.take(), r.churn)?;
        m.tls = add_tls(m.tls.take(), r.tls);
        m.events.published += r.events.published;
        add_counts(&mut m.events.errors, r.events.errors);
        m.events.publish_secs = m.events.publish_secs.max(r.events.publish_secs);
        m.events.lanes = add_opt(m.events.lanes, r.events.lanes);
        m.throughput.deliveries_per_sec += r.throughput.deliveries_per_sec;
        m.throughput.events_per_sec += r.throughput.events_per_sec;
        let t = &mut m.timeline.deliveries_per_sec;
        for (i, v) in r.timeline.deliveries_per_sec.into_iter().enumerate() {
            match t.get_mut(i) {
                Some(slot) => *slot += v,
                None => t.push(v),
            }
        }
        m.tester.cpu_percent += r.tester.cpu_percent;
        m.tester.delivery_cpu_seconds =
            add_opt(m.tester.delivery_cpu_seconds, r.tester.delivery_cpu_seconds);
        let (s, rs) = (&mut m.server, r.server);
        s.rss_bytes = add_opt(s.rss_bytes, rs.rss_bytes);
        s.cpu_percent = add_opt(s.cpu_percent, rs.cpu_percent);
        s.cpu_seconds = add_opt(s.cpu_seconds, rs.cpu_seconds);
        s.delivery_cpu_seconds = add_opt(s.delivery_cpu_seconds, rs.delivery_cpu_seconds);
        // Per-connection memory is a per-process figure: keep the largest.
        s.rss_per_connection_bytes = match (s.rss_per_connection_bytes, rs.rss_per_connection_bytes)
        {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    if let Some(missing) = missing {
        partial.push(missing);
    }
    m.partial = (!partial.is_empty()).then(|| partial.join("; "));
    m.target = targets.into_iter().collect::<Vec<_>>().join(", ");
    if n > 1 {
        m.model = format!("{} (merged from {n} reports)", m.model);
    }
    m.throughput.peak_deliveries_per_sec = m
        .timeline
        .deliveries_per_sec
        .iter()
        .copied()
        .fold(0.0, f64::max);
    m.latency_us = Latency::of(&latency);
    m.latency_curve = curve(&latency);
    m.connections.handshake_ms = Quantiles::of_us(&handshake);
    m.events.publish_lag_ms = publish_lag.as_ref().map(Quantiles::of_us);
    m.tester.receive_lag_ms = receive_lag.as_ref().map(Quantiles::of_us);
    m.tester_limit = tester_limit;
    m.handshake_distribution = series::handshake_distribution(&handshake);
    if let (Some(t), Some(h)) = (&mut m.tls, &tls_handshake) {
        t.handshake_ms = Quantiles::of_us(h);
    }
    // Per-process series and comparisons do not add up: left out of the merged report.
    m.latency_over_time = Default::default();
    m.bursts.clear();
    m.samples.clear();
    m.server_metrics = None;
    m.repeat = None;
    m.baseline = None;
    m.find_max = None;
    m.per_process = per_process;
    m.raw = Some(Raw {
        segment: None,
        start_at_ms,
        first_send_ms,
        latency_us: encode(&latency),
        handshake_us: encode(&handshake),
        publish_lag_us: publish_lag.as_ref().map(encode),
        receive_lag_us: receive_lag.as_ref().map(encode),
        tls_handshake_us: tls_handshake.as_ref().map(encode),
    });
    Ok(m)
}

/// Segments must agree on N and not repeat; returns a note when some are missing (the merged
/// run is then partial and fails), or an error for a contradiction.
fn check_segments(raws: &[&Raw]) -> anyhow::Result<Option<String>> {
    let segments: Vec<Segment> = raws
        .iter()
        .filter_map(|r| r.segment.as_deref())
        .map(Segment::parse)
        .collect::<crate::error::Result<_>>()?;
    if segments.is_empty() {
        return Ok(None);
    }
    anyhow::ensure!(
        segments.len() == raws.len(),
        "some reports are segments and some are not: merge the segments of one run"
    );
    let count = segments[0].count;
    anyhow::ensure!(
        segments.iter().all(|s| s.count == count),
        "the reports come from runs split into different numbers of segments"
    );
    let mut seen = BTreeSet::new();
    for s in &segments {
        anyhow::ensure!(seen.insert(s.index), "segment {s} is given twice");
    }
    Ok((seen.len() < count).then(|| {
        let absent: Vec<String> = (1..=count)
            .filter(|k| !seen.contains(k))
            .map(|k| format!("{k}/{count}"))
            .collect();
        format!("segments {} missing from the merge", absent.join(", "))
    }))
}

/// The sum of an optional raw histogram over the segments that measured it (`None` if none did).
fn add_optional(
    raws: &[&Raw],
    field: impl Fn(&Raw) -> Option<&str>,
    name: &str,
) -> anyhow::Result<Option<Histogram<u64>>> {
    let mut sum: Option<Histogram<u64>> = None;
    for (i, raw) in raws.iter().enumerate() {
        let Some(text) = field(raw) else { continue };
        let what = format!("report {}: raw.{name}", i + 1);
        let h = decode(text, &what)?;
        sum.get_or_insert_with(new_histogram)
            .add(h)
            .map_err(|e| anyhow::anyhow!("{what}: {e:?}"))?;
    }
    Ok(sum)
}

/// One `--insecure` segment marks the whole run insecure; differing trust is listed.
fn add_tls(a: Option<Tls>, b: Option<Tls>) -> Option<Tls> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.insecure |= b.insecure;
            if !a.trust.split("; ").any(|t| t == b.trust) {
                a.trust = format!("{}; {}", a.trust, b.trust);
            }
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

fn add_opt<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

fn add_slow(a: Option<SlowClients>, b: Option<SlowClients>) -> Option<SlowClients> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.connections += b.connections;
            a.expected += b.expected;
            a.received += b.received;
            a.lost += b.lost;
            add_counts(&mut a.closed_by_code, b.closed_by_code);
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

/// Sums two churn sections: counters add, the recovery histograms add (the merged p99 is the
/// p99 of every reconnect), the listed connections are concatenated up to [`MAX_LISTED`].
fn add_churn(a: Option<Churn>, b: Option<Churn>) -> anyhow::Result<Option<Churn>> {
    let (mut a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        (a, b) => return Ok(a.or(b)),
    };
    a.churning += b.churning;
    a.drops += b.drops;
    a.reconnects += b.reconnects;
    a.reconnect_failures += b.reconnect_failures;
    for (k, v) in b.server_closes {
        *a.server_closes.entry(k).or_default() += v;
    }
    for (k, v) in b.resyncs {
        *a.resyncs.entry(k).or_default() += v;
    }
    a.never_accepted += b.never_accepted;
    a.recovered += b.recovered;
    a.unrecoverable += b.unrecoverable;
    a.lost_silent += b.lost_silent;
    a.replay_bytes += b.replay_bytes;
    a.refreshes += b.refreshes;
    a.refreshed += b.refreshed;
    let mut hist = decode(&a.recovery_us, "churn.recovery_us")?;
    hist.add(decode(&b.recovery_us, "churn.recovery_us")?)
        .map_err(|e| anyhow::anyhow!("churn.recovery_us: {e:?}"))?;
    a.recoveries = hist.len();
    a.recovery_ms = Quantiles::of_us(&hist);
    a.recovery_us = encode(&hist);
    a.connections_omitted += b.connections_omitted;
    for c in b.connections {
        if a.connections.len() < MAX_LISTED {
            a.connections.push(c);
        } else {
            a.connections_omitted += 1;
        }
    }
    Ok(Some(a))
}
