//! How a resuming client comes back (issue 16 §4 and item 6): after the tester's own drop, and
//! after the **server** ended the connection, as a real client does — a close frame that says
//! "come back" ([`comes_back_after`]: 1001 going away, 4008 "resume from the stream", …) or a
//! stream that ends without one (a killed courier). A server close is counted by kind and
//! followed, after a short jittered backoff, by a reconnect with the position through the same
//! path, retries and target rotation as a drop. Other close codes (auth, protocol) end the
//! connection: reconnecting would hide the defect they report.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::churn::ChurnCtx;
use super::client::ClientError;
use super::connect::{connect_one, Attempt};
use super::worker::{absorb, Acc, Conn, Shared};
use crate::measure::Position;
use crate::plan::Churn;

/// Reconnect attempts after one drop (each to the next target) before the client gives up, and
/// the pause after the first failed one (doubling, at most [`MAX_PAUSE`]): 0.2 + 0.4 + 0.8 +
/// 1.6 + 2 + 2 s, about 7 s of trying — a real client outlasts a process restart or a broker
/// back within seconds, whether it or the server ended the connection.
const RECONNECT_ATTEMPTS: u32 = 7;
const FIRST_PAUSE: Duration = Duration::from_millis(200);
/// Longest pause between reconnect attempts.
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// Before the first reconnect after a server close: at least this (a server that closes every
/// connection it accepts is not hammered in a loop), plus up to [`SERVER_CLOSE_SPREAD`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// … spread by connection index, so that thousands of clients of a restarted server do not all
/// come back in the same millisecond.
const SERVER_CLOSE_SPREAD: Duration = Duration::from_millis(250);

/// Close codes after which a real client reconnects and resumes (PROTOCOL.md §4: 1001 going
/// away, 1011 internal error, 1012 service restart, 1013 try again later, 4002 ping timeout,
/// 4008 slow consumer / resume from the stream, 4029 rate limited). 4001 wants a new token and
/// 1002/1007/1009/4003 a fixed client: those end the connection.
pub(super) fn comes_back_after(code: u16) -> bool {
    matches!(code, 1001 | 1011 | 1012 | 1013 | 4002 | 4008 | 4029)
}

/// The query after the token on a reconnect: the position with resume (`recover=1` when none
/// is known yet), nothing without.
pub(crate) fn resume_query(resume: bool, position: Option<&Position>) -> String {
    match (resume, position) {
        (false, _) => String::new(),
        (true, None) => "&recover=1".into(),
        (true, Some(p)) => format!("&since={}&epoch={}", p.offset, percent(&p.epoch)),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `eof`/`io` when the server's stream ended without a close frame (a killed process, a reset).
pub(super) fn stream_end(read: &Result<(), ClientError>) -> Option<String> {
    match read {
        Err(ClientError::Eof) => Some("eof".into()),
        Err(ClientError::Io(_)) => Some("io".into()),
        _ => None,
    }
}

/// The server ended `c`'s connection (`how`): counts it, and undoes what the receive path did
/// to end the connection for good (a close frame taken was counted as ended).
pub(super) fn reopen(c: &mut Conn, acc: &Mutex<Acc>, how: String) {
    if c.slot.closed.take().is_some() {
        let mut a = acc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        a.stats.ended = a.stats.ended.saturating_sub(1);
    }
    c.slot.done = false;
    c.client = None;
    if let Some(r) = c.slot.recovery.as_deref_mut() {
        r.server_closed(how);
    }
}

/// After a server close: waits [`MIN_BACKOFF`] and this connection's share of the spread, then
/// reconnects with its position; `None` when the run was cut meanwhile, else whether it is back.
pub(super) async fn come_back(
    c: &mut Conn,
    p: &Churn,
    ctx: &ChurnCtx,
    shared: &Shared,
    acc: &Mutex<Acc>,
    target: &mut usize,
    cut: &CancellationToken,
) -> Option<bool> {
    let spread =
        MIN_BACKOFF + SERVER_CLOSE_SPREAD.mul_f64((c.idx as f64 * 0.618_033_988_75).fract());
    if !pause(spread, cut).await {
        return None;
    }
    Some(reconnect(c, p, ctx, shared, acc, target).await)
}

/// Sleeps `d`; `false` when the run was cut meanwhile.
pub(super) async fn pause(d: Duration, cut: &CancellationToken) -> bool {
    tokio::select! {
        _ = cut.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Reconnects to the next target (up to [`RECONNECT_ATTEMPTS`] times), resuming when the plan
/// says so; `false` when every attempt failed.
pub(super) async fn reconnect(
    c: &mut Conn,
    p: &Churn,
    ctx: &ChurnCtx,
    shared: &Shared,
    acc: &Mutex<Acc>,
    target: &mut usize,
) -> bool {
    let mut wait = FIRST_PAUSE;
    for _ in 0..RECONNECT_ATTEMPTS {
        *target = (*target + 1) % ctx.targets.len().max(1);
        let Some(spec) = ctx.targets.get(*target) else {
            return false;
        };
        let watermark = p
            .resume
            .then(|| ctx.sent.get(c.slot.user).map(|s| s.load(Ordering::Acquire)))
            .flatten();
        let query = {
            let r = c.slot.recovery.as_deref_mut();
            let position = r.as_ref().and_then(|r| r.position.as_ref());
            resume_query(p.resume, position)
        };
        if let Some(r) = c.slot.recovery.as_deref_mut() {
            r.reconnecting(shared.clock.now_ns(), watermark);
        }
        let token = ctx.token(c.slot.user);
        let attempt =
            tokio::time::timeout(spec.timeout, connect_one(spec, c.idx, &token, &query)).await;
        let class = match attempt {
            Ok(Attempt::Ok(client, _, _)) => {
                let max_seen = c.slot.seq.max();
                if let Some(r) = c.slot.recovery.as_deref_mut() {
                    r.reconnected(shared.clock.now_ns(), max_seen);
                }
                let mut client = *client;
                // The replay may already sit in the buffer behind `connection_established`.
                absorb(acc, &mut client, &mut c.slot, shared, Ok(()));
                c.client = Some(client);
                return true;
            }
            Ok(Attempt::Failed(class)) => class,
            Ok(Attempt::Closed(code)) => format!("closed {code}"),
            Err(_) => "timeout".into(),
        };
        if let Some(r) = c.slot.recovery.as_deref_mut() {
            r.reconnect_failures += 1;
        }
        {
            let mut a = acc
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *a.stats
                .errors
                .entry(format!("reconnect: {class}"))
                .or_default() += 1;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_PAUSE);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_query_carries_the_position_percent_encoded() {
        let p = Position {
            offset: 42,
            epoch: "k3/J+q".into(),
        };
        assert_eq!(resume_query(true, Some(&p)), "&since=42&epoch=k3%2FJ%2Bq");
        assert_eq!(resume_query(true, None), "&recover=1");
        assert_eq!(resume_query(false, Some(&p)), "");
    }
}
