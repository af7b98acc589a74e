//! `--server-metrics URL`: courier's Prometheus counters scraped before and after a run, reported
//! beside the tester's own figures, with every disagreement flagged (a drop the server counted that
//! the tester never missed, a loss the server never counted, close codes that differ).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::net::{get_text, Peer, TlsClient};
use crate::plan::Endpoint;
use crate::schema::{CrossCheck, ServerMetrics};

/// One scrape: every sample by its full name with labels (`courier_closes_total{code="4008"}`).
pub(crate) type Samples = BTreeMap<String, f64>;

/// Parses Prometheus/OpenMetrics text: `name{labels} value`, comments skipped.
pub(crate) fn parse(text: &str) -> Samples {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            // Label values may hold spaces: the name ends at the last `}` when there are labels.
            let (name, rest) = match l.rfind('}') {
                Some(p) => l.split_at(p + 1),
                None => l.split_once(' ')?,
            };
            let value = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.trim().to_owned(), value))
        })
        .collect()
}

/// A metrics page to scrape: its URL (for messages), where it is, and its path.
#[derive(Debug, Clone)]
pub(crate) struct MetricsAt {
    /// The URL as given.
    pub(crate) url: String,
    peer: Peer,
    path: String,
}

impl MetricsAt {
    /// `ep`, with the run's TLS settings for an `https://` URL.
    pub(crate) fn new(ep: &Endpoint, tls: Option<&TlsClient>) -> Self {
        Self {
            url: ep.url.clone(),
            peer: ep.peer(tls),
            path: ep.path.clone(),
        }
    }
}

/// Scrapes `ep`; a failure is a setup error naming the URL.
pub(crate) async fn scrape(ep: &MetricsAt) -> Result<Samples> {
    match get_text(&ep.peer, &ep.path).await {
        Ok((200, body)) => Ok(parse(&body)),
        Ok((status, _)) => Err(Error::Setup(format!(
            "--server-metrics {}: HTTP {status}",
            ep.url
        ))),
        Err(e) => Err(Error::Setup(format!("--server-metrics {}: {e}", ep.url))),
    }
}

/// The tester's side of the cross-checks.
#[derive(Debug, Clone, Default)]
pub(crate) struct TesterFigures {
    /// Events published.
    pub(crate) events: u64,
    /// Deliveries received, every client.
    pub(crate) received: u64,
    /// Deliveries lost, every client.
    pub(crate) lost: u64,
    /// Closes seen by code (handshake rejections and closes during the run).
    pub(crate) closes: BTreeMap<String, u64>,
}

fn sum_prefix(d: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    d.iter()
        .filter(|(k, _)| *k == prefix || k.starts_with(&format!("{prefix}{{")))
        .map(|(_, v)| v)
        .sum()
}

/// The label value of `key` in a sample name: `code` of `courier_closes_total{code="4008"}`.
fn label<'a>(sample: &'a str, key: &str) -> Option<&'a str> {
    let start = sample.find(&format!("{key}=\""))? + key.len() + 2;
    let len = sample[start..].find('"')?;
    Some(&sample[start..start + len])
}

impl ServerMetrics {
    /// Compares the scrapes with the tester's figures.
    pub(crate) fn new(source: &str, before: &Samples, after: &Samples, t: &TesterFigures) -> Self {
        let delta: BTreeMap<String, f64> = after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
            .collect();
        let mut checks = Vec::new();
        let received = sum_prefix(&delta, "courier_events_received_total");
        checks.push(CrossCheck {
            what: "events the server received vs published".into(),
            tester: t.events as f64,
            server: received,
            agrees: received == t.events as f64,
            note: if received == t.events as f64 {
                String::new()
            } else {
                "another publisher used the server, or events were lost before it".into()
            },
        });
        let deliveries = sum_prefix(&delta, "courier_deliveries_total");
        let drops = sum_prefix(&delta, "courier_drops_total");
        // Every frame queued is either received or lost: queued = received + lost when the
        // tester's loss is the server's doing, and a frame received was queued.
        let queued_ok =
            deliveries >= t.received as f64 && deliveries <= (t.received + t.lost) as f64;
        checks.push(CrossCheck {
            what: "deliveries queued by the server vs received (+ lost) by the tester".into(),
            tester: t.received as f64,
            server: deliveries,
            agrees: queued_ok,
            note: if queued_ok {
                String::new()
            } else if deliveries < t.received as f64 {
                "the tester received more than the server queued".into()
            } else {
                "the server queued frames the tester neither received nor counted lost".into()
            },
        });
        // Each drop loses at least one delivery; a loss with no drop counted is not the server's.
        let lost_ok = drops <= t.lost as f64 && !(t.lost > 0 && drops == 0.0);
        checks.push(CrossCheck {
            what: "drops counted by the server vs deliveries lost by the tester".into(),
            tester: t.lost as f64,
            server: drops,
            agrees: lost_ok,
            note: if lost_ok {
                String::new()
            } else if drops > t.lost as f64 {
                "the server counted drops the tester did not see lost".into()
            } else {
                "the tester lost deliveries the server never counted as dropped".into()
            },
        });
        let mut codes: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for (k, v) in &delta {
            if k.starts_with("courier_closes_total{") {
                if let Some(code) = label(k, "code") {
                    codes.entry(code.to_owned()).or_default().1 += v;
                }
            }
        }
        for (code, n) in &t.closes {
            codes.entry(code.clone()).or_default().0 += *n as f64;
        }
        for (code, (tester, server)) in codes {
            if tester == 0.0 && server == 0.0 {
                continue;
            }
            checks.push(CrossCheck {
                what: format!("closes with code {code}"),
                tester,
                server,
                agrees: tester == server,
                note: if tester == server {
                    String::new()
                } else {
                    "the close codes the server counted differ from those the tester saw".into()
                },
            });
        }
        Self {
            source: source.into(),
            agree: checks.iter().all(|c| c.agrees),
            delta,
            checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str =
        "# HELP x\ncourier_deliveries_total 100\ncourier_events_received_total 10\n";
    const AFTER: &str = "# TYPE courier_deliveries counter\ncourier_deliveries_total 700\ncourier_events_received_total 160\ncourier_drops_total{reason=\"slow close\"} 5\ncourier_closes_total{code=\"4008\"} 2\n";

    #[test]
    fn parses_samples_with_labels() {
        let s = parse(AFTER);
        assert_eq!(s["courier_deliveries_total"], 700.0);
        assert_eq!(s["courier_drops_total{reason=\"slow close\"}"], 5.0);
        assert_eq!(
            label("courier_closes_total{code=\"4008\"}", "code"),
            Some("4008")
        );
    }

    #[test]
    fn agreement_and_each_kind_of_mismatch() {
        let (b, a) = (parse(BEFORE), parse(AFTER));
        let mut t = TesterFigures {
            events: 150,
            received: 595,
            lost: 5,
            closes: BTreeMap::from([("4008".into(), 2)]),
        };
        let m = ServerMetrics::new("u", &b, &a, &t);
        assert!(m.agree, "{:#?}", m.checks);
        assert_eq!(m.delta["courier_deliveries_total"], 600.0);
        t.lost = 0;
        t.received = 600;
        let m = ServerMetrics::new("u", &b, &a, &t);
        let bad: Vec<&str> = m
            .checks
            .iter()
            .filter(|c| !c.agrees)
            .map(|c| c.what.as_str())
            .collect();
        assert_eq!(
            bad,
            vec!["drops counted by the server vs deliveries lost by the tester"]
        );
        t.closes.clear();
        t.events = 149;
        let m = ServerMetrics::new("u", &b, &a, &t);
        assert_eq!(
            m.checks.iter().filter(|c| !c.agrees).count(),
            3,
            "{:#?}",
            m.checks
        );
    }
}
