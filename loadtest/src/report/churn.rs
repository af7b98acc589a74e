//! The `churn` section: each logical client's [`Recovery`] settled against what its user was
//! published, summed, with the recovery-time histogram and the connections worth a look.

use crate::measure::{encode, new_histogram, ConnResult, Recovery};
use crate::plan::Plan;
use crate::schema::{Churn, ChurnConnection, Quantiles, MAX_LISTED};
use crate::session::RunData;

/// The section of a run with churn or token refresh (`None` otherwise).
pub(crate) fn churn(plan: &Plan, d: &RunData, user_ids: &[u64]) -> Option<Churn> {
    if plan.churn.is_none() && plan.tokens.refresh_before.is_none() {
        return None;
    }
    let mut c = Churn {
        mode: plan.churn.as_ref().map_or("", |c| c.mode.name()).into(),
        resume: plan.churn.as_ref().is_some_and(|c| c.resume),
        ..Churn::default()
    };
    let mut hist = new_histogram();
    for conn in d.stats.conns.iter().filter(|c| !c.slow) {
        let Some(r) = conn.recovery.as_deref() else {
            continue;
        };
        let published = d.published.per_user.get(conn.user).copied().unwrap_or(0);
        let refused = d
            .published
            .refused
            .get(&conn.user)
            .map_or(&[][..], Vec::as_slice);
        let row = add(&mut c, r, conn, (published, refused), user_ids);
        for us in &r.recovery_us {
            hist.saturating_record((*us).max(1));
        }
        let notable = row.lost_silent + row.unrecoverable + row.duplicated + row.reordered > 0;
        if notable && c.connections.len() < MAX_LISTED {
            c.connections.push(row);
        } else if notable {
            c.connections_omitted += 1;
        }
    }
    c.never_accepted = d.published.refused.values().map(|v| v.len() as u64).sum();
    c.connections.sort_by_key(|r| r.connection);
    c.recoveries = hist.len();
    c.recovery_ms = Quantiles::of_us(&hist);
    c.recovery_us = encode(&hist);
    Some(c)
}

/// Adds one logical client to `c`; its own row. `published`: its user's events published, and
/// those of them the server refused.
fn add(
    c: &mut Churn,
    r: &Recovery,
    conn: &ConnResult,
    (published, refused): (u64, &[u64]),
    user_ids: &[u64],
) -> ChurnConnection {
    let settled = r.settle(&conn.seq, published, refused);
    c.churning += u64::from(r.drops > 0);
    c.drops += r.drops;
    c.reconnects += r.reconnects;
    c.reconnect_failures += r.reconnect_failures;
    for (k, v) in &r.server_closes {
        *c.server_closes.entry(k.clone()).or_default() += v;
    }
    for (k, v) in &r.resyncs {
        *c.resyncs.entry(k.clone()).or_default() += v;
    }
    c.recovered += r.recovered;
    c.unrecoverable += settled.unrecoverable;
    c.lost_silent += settled.lost_silent;
    c.replay_bytes += r.replay_bytes;
    c.refreshes += r.refreshes;
    c.refreshed += r.refreshed;
    ChurnConnection {
        connection: r.idx as u64,
        user: user_ids.get(conn.user).copied().unwrap_or(conn.user as u64),
        drops: r.drops,
        reconnects: r.reconnects,
        recovered: r.recovered,
        unrecoverable: settled.unrecoverable,
        lost_silent: settled.lost_silent,
        duplicated: conn.seq.duplicated,
        reordered: conn.seq.reordered,
    }
}
