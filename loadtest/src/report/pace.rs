//! The "tester limited" rule: when the tester, not the server, set a run's pace. A load tester
//! that cannot keep its schedule or read what arrives would otherwise report its own limit as the
//! server's (issue 19: 60k/s offered, the HTTP publisher sent 300,000 events in 8.8 s instead of
//! 5 s, and the report said PASS).
//!
//! The rule, in full: a run is tester limited when
//! - its open-model publisher fell behind the schedule: rate or replay model, publish lag p99 >
//!   [`PUBLISH_LAG_BOUND_MS`], for a publisher outside the server (`http`, `redis-*`; the embedded
//!   publisher is the server's own hub call on its runtime, so its lag is the server's). A burst
//!   run's lag (how late each burst started) is reported, not marked: a burst is "N events at
//!   once" stamped with the burst's time, so the time to send it is latency by design, shown
//!   per burst; or
//! - its receive side was saturated: receive lag p99 > [`RECEIVE_LAG_BOUND_MS`] (the receivers'
//!   runtime ran due tasks that late, so received times are the tester's delay).

use crate::error::{EXIT_FAIL, EXIT_PASS, EXIT_TESTER_LIMITED};
use crate::schema::{Report, TesterLimit};

/// Publish lag p99 above which the publisher set the pace, ms: well above a request's round trip
/// (~1 ms on loopback), well below the seconds a publisher that cannot keep up drifts.
pub const PUBLISH_LAG_BOUND_MS: f64 = 100.0;
/// Receive lag p99 above which the receive side set the pace, ms: an idle runtime wakes the
/// probe within its 1 ms timer tick; a busy box's scheduling adds a few ms, not a hundred.
pub const RECEIVE_LAG_BOUND_MS: f64 = 100.0;

/// The mark of one run's report, from its publish and receive lags; `open_model`: the plan is
/// an open model, rate or replay (only its publish lag can mark the run).
pub(crate) fn tester_limit(r: &Report, open_model: bool) -> TesterLimit {
    let mut reasons = Vec::new();
    match r.events.publish_lag_ms {
        Some(lag) if open_model && r.publisher != "embedded" && lag.p99 > PUBLISH_LAG_BOUND_MS => {
            reasons.push(format!(
                "publisher behind schedule: publish lag p99 {:.0} ms, max {:.0} ms (bound {PUBLISH_LAG_BOUND_MS:.0} ms)",
                lag.p99, lag.max
            ))
        }
        _ => {}
    }
    match r.tester.receive_lag_ms {
        Some(lag) if lag.p99 > RECEIVE_LAG_BOUND_MS => reasons.push(format!(
            "receive side saturated: receive lag p99 {:.0} ms, max {:.0} ms (bound {RECEIVE_LAG_BOUND_MS:.0} ms)",
            lag.p99, lag.max
        )),
        _ => {}
    }
    TesterLimit::new(reasons)
}

/// The exit code of a finished report's verdict: a pass the tester held back
/// ([`Report::held_back_by_tester`]) is [`EXIT_TESTER_LIMITED`], not [`EXIT_PASS`]; a failure
/// stays [`EXIT_FAIL`] either way.
pub(crate) fn exit_code(report: &Report) -> u8 {
    match (report.passed, report.held_back_by_tester()) {
        (true, false) => EXIT_PASS,
        (true, true) => EXIT_TESTER_LIMITED,
        (false, _) => EXIT_FAIL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Quantiles;

    fn lagging(publisher: &str, publish_p99: f64, receive_p99: f64) -> Report {
        let text = include_str!("../../tests/fixtures/report-v2-segment-1of2.json");
        let mut r: Report = serde_json::from_str(text).expect("fixture");
        r.publisher = publisher.into();
        let q = |p99| {
            Some(Quantiles {
                p50: 1.0,
                p99,
                max: p99,
            })
        };
        r.events.publish_lag_ms = q(publish_p99);
        r.tester.receive_lag_ms = q(receive_p99);
        r
    }

    #[test]
    fn the_rule_marks_an_open_model_publisher_behind_or_a_saturated_receive_side() {
        assert!(!tester_limit(&lagging("http", 99.0, 99.0), true).limited);
        assert!(tester_limit(&lagging("http", 101.0, 1.0), true).limited);
        assert!(tester_limit(&lagging("redis-core", 101.0, 1.0), true).limited);
        // The embedded publisher's lag is the server's; a burst's is latency by design.
        assert!(!tester_limit(&lagging("embedded", 5000.0, 1.0), true).limited);
        assert!(!tester_limit(&lagging("http", 5000.0, 1.0), false).limited);
        // A saturated receive side marks any run.
        let t = tester_limit(&lagging("embedded", 1.0, 101.0), false);
        assert!(
            t.limited && t.reasons[0].starts_with("receive side saturated"),
            "{t:?}"
        );
    }
}
