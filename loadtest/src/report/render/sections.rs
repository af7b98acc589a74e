//! Every table of a report, built once from the report's data: the text, Markdown and HTML
//! renderings lay these out and add nothing to them.

use super::table::{Cell, Column, Fit, Mark, Table};
use super::{change, num};
use crate::schema::{
    Churn, Comparison, Outcome, ProcessFigures, Repeated, Report, SearchOver, SearchSummary,
    ServerMetrics,
};

/// `loadtest merge`: one row per merged report, `-` where it did not measure the figure.
pub(crate) fn per_process(rows: &[ProcessFigures]) -> Table {
    // The segment is left-aligned and the target, last, is not padded.
    const COLUMNS: [Column; 10] = [
        Column::new("segment", "  ", Fit::Left(8)),
        Column::new("deliveries", " ", Fit::Right(11)),
        Column::new("lost", " ", Fit::Right(6)),
        Column::new("deliveries/s", " ", Fit::Right(13)),
        Column::new("p99 ms", " ", Fit::Right(9)),
        Column::new("tester ns/dlv", " ", Fit::Right(14)),
        Column::new("server ns/dlv", " ", Fit::Right(14)),
        Column::new("server RSS", " ", Fit::Right(11)),
        Column::new("metrics", " ", Fit::Right(8)),
        Column::new("target", "  ", Fit::Free),
    ];
    let ns = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    let rows = rows
        .iter()
        .map(|p| {
            [
                p.segment.clone(),
                p.deliveries.to_string(),
                p.lost.to_string(),
                format!("{:.0}", p.deliveries_per_sec),
                format!("{:.2}", p.p99_ms),
                ns(p.tester_ns_per_delivery),
                ns(p.server_ns_per_delivery),
                p.server_rss_bytes.map_or("-".into(), |b| {
                    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
                }),
                match p.server_metrics_agree {
                    Some(true) => "agree",
                    Some(false) => "DIFF",
                    None => "-",
                }
                .into(),
                p.target.clone(),
            ]
            .into_iter()
            .map(Cell::Text)
            .collect()
        })
        .collect();
    Table {
        title: "Per process".into(),
        columns: COLUMNS.to_vec(),
        rows,
        notes: Vec::new(),
    }
}

/// Every metric beside the baseline's; `current` names this side's column (`this run`, `new`).
pub(crate) fn baseline(c: &Comparison, current: &'static str) -> Table {
    Table {
        title: "Against baseline".into(),
        columns: vec![
            Column::new("metric", "  ", Fit::Left(26)),
            Column::new("baseline", " ", Fit::Right(14)),
            Column::new(current, " ", Fit::Right(14)),
            Column::new("change", "   ", Fit::Free),
        ],
        rows: c
            .figures
            .iter()
            .map(|f| {
                vec![
                    f.metric.clone().into(),
                    num(f.baseline).into(),
                    num(f.current).into(),
                    change(f).into(),
                ]
            })
            .collect(),
        notes: Vec::new(),
    }
}

/// `--repeat`: every metric's median and range over the runs.
pub(crate) fn repeat(rep: &Repeated) -> Table {
    Table {
        title: format!("Over {} runs", rep.runs),
        columns: vec![
            Column::new("metric", "  ", Fit::Left(26)),
            Column::new("median", " ", Fit::Right(14)),
            Column::new("min..max", "   ", Fit::Free),
        ],
        rows: rep
            .figures
            .iter()
            .map(|f| {
                let n = |v| num(Some(v));
                vec![
                    f.metric.clone().into(),
                    n(f.spread.median).into(),
                    Cell::Range(n(f.spread.min), n(f.spread.max)),
                ]
            })
            .collect(),
        notes: Vec::new(),
    }
}

/// `--server-metrics`: each figure seen by the tester and by the server.
pub(crate) fn server_metrics(m: &ServerMetrics) -> Table {
    Table {
        title: "Server metrics".into(),
        columns: vec![
            Column::new("", "  ", Fit::Left(4)),
            Column::new("figure", "  ", Fit::Left(66)),
            Column::new("tester", " tester ", Fit::Right(10)),
            Column::new("server", "   server ", Fit::Right(10)),
            Column {
                markdown: false,
                ..Column::new("note", "", Fit::Aside)
            },
        ],
        rows: m
            .checks
            .iter()
            .map(|c| {
                vec![
                    Cell::Mark(Mark::agrees(c.agrees)),
                    c.what.clone().into(),
                    num(Some(c.tester)).into(),
                    num(Some(c.server)).into(),
                    c.note.clone().into(),
                ]
            })
            .collect(),
        notes: Vec::new(),
    }
}

/// The thresholds' outcomes. The text lays each row out as a sentence (`ok  p99_ms<5  actual
/// 1.234`), since a bound against a baseline reads better said than tabulated.
pub(crate) fn thresholds(outcomes: &[Outcome]) -> Table {
    Table {
        title: "Thresholds".into(),
        columns: vec![
            Column::new("", "  ", Fit::Left(4)),
            Column::new("threshold", "  ", Fit::Left(34)),
            Column::new("actual", " actual ", Fit::Free),
            Column::new("bound", "", Fit::Free),
        ],
        rows: outcomes
            .iter()
            .map(|t| {
                vec![
                    Cell::Mark(Mark::passed(t.passed)),
                    Cell::Code(t.expr.clone()),
                    Cell::Measured(t.actual),
                    Cell::Bound {
                        bound: t.bound,
                        baseline: t.baseline,
                    },
                ]
            })
            .collect(),
        notes: Vec::new(),
    }
}

/// `--find-max`: every step, and why the search ended.
pub(crate) fn capacity_search(fm: &SearchSummary) -> Table {
    let free = |head| Column::new(head, " ", Fit::Free);
    // A speed search steps a replay's speed; the others show the rate (if any).
    let speed = fm.over == SearchOver::Speed;
    let paced = if speed { "speed" } else { "rate" };
    Table {
        title: "Capacity search".into(),
        columns: ["connections", paced, "p99 ms", "deliveries/s", "verdict"]
            .map(free)
            .to_vec(),
        rows: fm
            .steps
            .iter()
            .map(|st| {
                vec![
                    st.parameters.connections.to_string().into(),
                    num(if speed {
                        st.parameters.speed
                    } else {
                        st.parameters.rate
                    })
                    .into(),
                    num(st.figures.get("p99_ms").copied()).into(),
                    num(st.figures.get("deliveries_per_sec").copied()).into(),
                    match (&st.inconclusive, st.passed) {
                        (Some(why), _) => format!("INCONCLUSIVE (tester limited: {why})"),
                        (None, true) => "pass".to_owned(),
                        (None, false) => format!("FAIL {}", st.failed.join(", ")),
                    }
                    .into(),
                ]
            })
            .collect(),
        notes: vec![fm.ended_by.clone()],
    }
}

/// The burst model: one row per burst.
pub(crate) fn bursts(r: &Report) -> Table {
    let free = |head| Column::new(head, " ", Fit::Free);
    Table {
        title: "Per burst".into(),
        columns: [
            "burst",
            "scheduled at",
            "deliveries",
            "p50 ms",
            "p99 ms",
            "max ms",
        ]
        .map(free)
        .to_vec(),
        rows: r
            .bursts
            .iter()
            .map(|b| {
                vec![
                    b.burst.to_string().into(),
                    format!("{:.2} s", b.start_secs).into(),
                    b.deliveries.to_string().into(),
                    num(b.p50_ms).into(),
                    num(b.p99_ms).into(),
                    num(b.max_ms).into(),
                ]
            })
            .collect(),
        notes: Vec::new(),
    }
}

/// `key n, key n` (`0` when empty).
fn counts(m: &std::collections::BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "0".into();
    }
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
    parts.join(", ")
}

/// Churn and token refresh: the run's figures (what each means is in the README's accounting
/// rule), then the connections worth a look, if any.
pub(crate) fn churn(c: &Churn) -> Vec<Table> {
    let how = match c.mode.as_str() {
        "" => "no churn".to_owned(),
        mode => format!("{mode}, resume {}", if c.resume { "on" } else { "off" }),
    };
    let q = &c.recovery_ms;
    let figures: Vec<(&str, String)> = vec![
        ("churn", how),
        (
            "drops",
            format!("{} by {} connections", c.drops, c.churning),
        ),
        (
            "reconnects",
            format!(
                "{} ({} attempts failed)",
                c.reconnects, c.reconnect_failures
            ),
        ),
        ("server closes", counts(&c.server_closes)),
        ("resyncs", counts(&c.resyncs)),
        (
            "recovered",
            format!("{} events ({} bytes replayed)", c.recovered, c.replay_bytes),
        ),
        (
            "never accepted",
            format!("{} events (publish refused)", c.never_accepted),
        ),
        ("lost_silent", c.lost_silent.to_string()),
        (
            "unrecoverable",
            format!("{} (announced by a resync)", c.unrecoverable),
        ),
        (
            "caught up",
            format!(
                "{} reconnects: p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
                c.recoveries, q.p50, q.p99, q.max
            ),
        ),
        (
            "token refresh",
            format!("{} sent, {} refreshed", c.refreshes, c.refreshed),
        ),
    ];
    let mut tables = vec![Table {
        title: "Churn".into(),
        columns: vec![
            Column::new("figure", "  ", Fit::Left(14)),
            Column::new("value", "", Fit::Free),
        ],
        rows: figures
            .into_iter()
            .map(|(k, v)| vec![Cell::Text(k.into()), v.into()])
            .collect(),
        notes: Vec::new(),
    }];
    if !c.connections.is_empty() {
        const COLUMNS: [Column; 9] = [
            Column::new("connection", "  ", Fit::Right(10)),
            Column::new("user", " ", Fit::Right(8)),
            Column::new("drops", " ", Fit::Right(6)),
            Column::new("reconnects", " ", Fit::Right(10)),
            Column::new("recovered", " ", Fit::Right(9)),
            Column::new("unrecoverable", " ", Fit::Right(13)),
            Column::new("lost_silent", " ", Fit::Right(11)),
            Column::new("duplicated", " ", Fit::Right(10)),
            Column::new("reordered", " ", Fit::Right(9)),
        ];
        let mut notes = Vec::new();
        if c.connections_omitted > 0 {
            notes.push(format!("{} more not listed", c.connections_omitted));
        }
        tables.push(Table {
            title: "Churn: connections with a gap, a duplicate or a reordering".into(),
            columns: COLUMNS.to_vec(),
            rows: c
                .connections
                .iter()
                .map(|r| {
                    [
                        r.connection,
                        r.user,
                        r.drops,
                        r.reconnects,
                        r.recovered,
                        r.unrecoverable,
                        r.lost_silent,
                        r.duplicated,
                        r.reordered,
                    ]
                    .iter()
                    .map(|n| Cell::Text(n.to_string()))
                    .collect()
                })
                .collect(),
            notes,
        });
    }
    tables
}
