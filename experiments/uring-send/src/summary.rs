//! Result lines → one Markdown table: medians with min..max per (pairs, rate, mode), and the ratio
//! of each variant's median CPU per send to a baseline mode's (courier's shape, `tokio`, unless
//! told otherwise).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

/// One `result ...` line as key → value.
type Row = BTreeMap<String, String>;

/// Column order of the modes (the order of `Mode`).
const MODES: [&str; 7] = [
    "tokio",
    "tokio1",
    "direct",
    "uring",
    "uring-fixed",
    "uring-sqpoll",
    "tokio-uring",
];

fn parse(line: &str) -> Option<Row> {
    let rest = line.strip_prefix("result ")?;
    Some(
        rest.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Sender + receiver + ksoftirqd CPU per send: what the box spent on one delivery.
fn total_ns(row: &Row) -> f64 {
    num(row, "tx_ns_per_send") + num(row, "rx_ns_per_send") + num(row, "softirqd_ns_per_send")
}

fn num(row: &Row, key: &str) -> f64 {
    row.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Median, min and max of the values present (a field missing from a line reads as NaN and is
/// left out: older result files lack the switch counts).
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (med, v[0], v[n - 1])
}

fn rate_label(rate: u64) -> String {
    if rate == 0 {
        "max".into()
    } else if rate.is_multiple_of(1000) {
        format!("{}k", rate / 1000)
    } else {
        rate.to_string()
    }
}

/// Prints the table for every result line in `files`.
pub fn run(files: &[PathBuf], baseline: &str) -> Result<(), String> {
    let mut rows = Vec::new();
    for f in files {
        let text = fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        rows.extend(text.lines().filter_map(parse));
    }
    if rows.is_empty() {
        return Err("no result lines".into());
    }
    // (pairs, rate with max last, mode order) → rows
    let mut groups: BTreeMap<(u64, u64, usize), Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        let pairs = num(r, "pairs") as u64;
        let rate = num(r, "rate") as u64;
        let mode = r.get("mode").map(String::as_str).unwrap_or("");
        let order = MODES.iter().position(|m| *m == mode).unwrap_or(MODES.len());
        let rate_key = if rate == 0 { u64::MAX } else { rate };
        groups.entry((pairs, rate_key, order)).or_default().push(r);
    }
    println!(
        "| pairs | rate | mode | rounds | sender CPU ns/send, median (min..max) | vs {baseline} | sender switches/send | \
         receiver CPU ns/send | ksoftirqd ns/send | total ns/send | total vs {baseline} | send syscalls/send | \
         achieved sends/s | bytes all received |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    // (pairs, rate) → the baseline's medians of sender and total CPU per send, found first so
    // the baseline need not come first in mode order.
    let mut base: BTreeMap<(u64, u64), (f64, f64)> = BTreeMap::new();
    for ((pairs, rate_key, _), rs) in &groups {
        if rs[0].get("mode").map(String::as_str) == Some(baseline) {
            let tx = stats(rs.iter().map(|r| num(r, "tx_ns_per_send")).collect()).0;
            let total = stats(rs.iter().copied().map(total_ns).collect()).0;
            base.insert((*pairs, *rate_key), (tx, total));
        }
    }
    for ((pairs, rate_key, _), rs) in &groups {
        let col = |k: &str| stats(rs.iter().map(|r| num(r, k)).collect());
        let (tx, tx_lo, tx_hi) = col("tx_ns_per_send");
        let (rx, rx_lo, rx_hi) = col("rx_ns_per_send");
        let (csw, _, _) = col("tx_csw_per_send");
        let (sirq, _, _) = col("softirqd_ns_per_send");
        let (total, total_lo, total_hi) = stats(
            rs.iter()
                .map(|r| {
                    num(r, "tx_ns_per_send")
                        + num(r, "rx_ns_per_send")
                        + num(r, "softirqd_ns_per_send")
                })
                .collect(),
        );
        let (sc, _, _) = col("syscalls_per_send");
        let (ach, ach_lo, ach_hi) = col("achieved");
        let mode = rs[0].get("mode").cloned().unwrap_or_default();
        let (ratio, total_ratio) = base
            .get(&(*pairs, *rate_key))
            .map(|(b, bt)| (format!("{:.2}x", tx / b), format!("{:.2}x", total / bt)))
            .unwrap_or_else(|| ("-".into(), "-".into()));
        let ok = rs
            .iter()
            .filter(|r| r.get("ok").map(String::as_str) == Some("1"))
            .count();
        let rate = if *rate_key == u64::MAX { 0 } else { *rate_key };
        let syscalls = if sc > 0.0 {
            format!("{sc:.3}")
        } else {
            "n/a".into()
        };
        println!(
            "| {pairs} | {} | {mode} | {} | {tx:.0} ({tx_lo:.0}..{tx_hi:.0}) | {ratio} | {csw:.3} | \
             {rx:.0} ({rx_lo:.0}..{rx_hi:.0}) | {sirq:.0} | {total:.0} ({total_lo:.0}..{total_hi:.0}) | \
             {total_ratio} | {syscalls} | {ach:.0} ({ach_lo:.0}..{ach_hi:.0}) | {ok}/{} |",
            rate_label(rate),
            rs.len(),
            rs.len(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(stats(vec![3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(stats(vec![4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert_eq!(stats(vec![f64::NAN, 1.0, 3.0]), (2.0, 1.0, 3.0));
    }

    #[test]
    fn parses_result_lines_only() {
        assert!(parse("Error: x").is_none());
        let r = parse("result mode=uring rate=40000 tx_ns_per_send=1234").unwrap_or_default();
        assert_eq!(num(&r, "rate"), 40000.0);
        assert_eq!(r.get("mode").map(String::as_str), Some("uring"));
    }
}
