//! The reliable-delivery checks (PROTOCOL.md §7, ours): positions, a resume served exactly once,
//! an unservable position signalled by one `resync`, a token refreshed in place, the close at
//! expiry. The reference has none of these: against the Django seed they fail, named.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::checks::{Ctx, Miss, Verdict};
use super::client::{connect_with, Client, Seen};
use crate::measure::Position;
use crate::session::resume_query;
use crate::session::tokens::{mint_for, TokenKind};

/// Lifetime of a token minted for a refresh.
const REFRESH_LIFETIME: Duration = Duration::from_secs(120);
/// Lifetime of the token the expiry check connects with.
const SHORT_LIFETIME: Duration = Duration::from_secs(2);

/// Why the reference fails these checks, appended to a failure that shows no positions at all.
const NO_POSITIONS: &str = "the server keeps no positions (the reference does not: PROTOCOL.md §7)";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The position a frame carries at its top level (`connection_established`, an event).
fn position_of(v: &Value) -> Option<Position> {
    Some(Position {
        offset: v["offset"].as_u64()?,
        epoch: v["epoch"].as_str()?.to_owned(),
    })
}

fn fail(expected: &str, seen: &Seen) -> Miss {
    Miss::Fail(format!("expected {expected}; observed {seen}"))
}

impl Ctx {
    /// Connects user `u` with `query` after the token; the connection and the position its
    /// `connection_established` carried.
    async fn open_at(&self, u: usize, query: &str) -> Result<(Client, Position), Miss> {
        let token = &self.users[u].1;
        let mut c = connect_with(&self.url, Some(token), query, self.wait).await?;
        match c.next(self.wait).await {
            Seen::Json(v) if v["type"] == "connection_established" => match position_of(&v) {
                Some(p) => Ok((c, p)),
                None => Err(Miss::Fail(format!(
                    "expected connection_established with offset and epoch; observed frame {v}: {NO_POSITIONS}"
                ))),
            },
            other => Err(fail("connection_established", &other)),
        }
    }

    /// Publishes event `n` of `check` to user `u` and expects it with the position after `at`.
    async fn event_at(
        &self,
        c: &mut Client,
        u: usize,
        check: &str,
        n: u64,
        at: &Position,
    ) -> Result<Position, Miss> {
        let data = json!({"check": check, "n": n});
        self.sender
            .notify(self.users[u].0, "new_message", &data)
            .await?;
        self.expect_event(c, &data, at).await
    }

    /// Expects the event `data` next, at the offset after `at`, in `at`'s epoch.
    async fn expect_event(
        &self,
        c: &mut Client,
        data: &Value,
        at: &Position,
    ) -> Result<Position, Miss> {
        let want = json!({"type": "new_message", "data": data, "offset": at.offset + 1, "epoch": at.epoch});
        match c.next(self.wait).await {
            Seen::Json(v) if v == want => Ok(Position {
                offset: at.offset + 1,
                epoch: at.epoch.clone(),
            }),
            Seen::Json(v) if v["type"] == "new_message" && position_of(&v).is_none() => {
                Err(Miss::Fail(format!(
                    "expected {want}; observed frame {v}: {NO_POSITIONS}"
                )))
            }
            other => Err(fail(&want.to_string(), &other)),
        }
    }

    /// Sends a probe and expects its echo next: nothing else (a duplicate, a second resync) was
    /// queued before it.
    async fn nothing_else(&self, c: &mut Client) -> Verdict {
        let msg = json!({"probe": "nothing else queued"});
        c.text(&msg.to_string()).await?;
        match c.next(self.wait).await {
            Seen::Json(v) if v == json!({"type": "echo", "data": msg}) => Ok(()),
            other => Err(fail("nothing before the probe's echo", &other)),
        }
    }
}

/// How much longer than the usual bound check `name` may take: the expiry check waits for the
/// token's `exp` and `--expiry-wait`.
pub(crate) fn extra_time(name: &str, ctx: &Ctx) -> Duration {
    match (name, ctx.expiry_wait) {
        ("expiry_close", Some(w)) => SHORT_LIFETIME + w,
        _ => Duration::ZERO,
    }
}

/// Runs the reliable-delivery check `name` (`None`: not one of them).
pub(crate) async fn run(name: &str, ctx: &Ctx) -> Option<Verdict> {
    Some(match name {
        "positions" => positions(ctx).await,
        "resume_exactly_once" => resume(ctx).await,
        "resume_unrecoverable_signalled" => unrecoverable(ctx).await,
        "refresh_in_place" => refresh(ctx, 0).await,
        "refresh_other_user" => refresh(ctx, 1).await,
        "expiry_close" => expiry(ctx).await,
        _ => return None,
    })
}

async fn positions(ctx: &Ctx) -> Verdict {
    let (mut c, head) = ctx.open_at(0, &resume_query(true, None)).await?;
    let first = ctx.event_at(&mut c, 0, "positions", 1, &head).await?;
    ctx.event_at(&mut c, 0, "positions", 2, &first).await?;
    c.close().await;
    Ok(())
}

async fn resume(ctx: &Ctx) -> Verdict {
    let name = "resume_exactly_once";
    let (mut c, head) = ctx.open_at(2, &resume_query(true, None)).await?;
    let last = ctx.event_at(&mut c, 2, name, 1, &head).await?;
    c.close().await;
    // Published while the client is away: the replay must bring both, once, in order.
    let missed = [
        json!({"check": name, "n": 2}),
        json!({"check": name, "n": 3}),
    ];
    for data in &missed {
        ctx.sender
            .notify(ctx.users[2].0, "new_message", data)
            .await?;
    }
    let (mut c, at) = ctx.open_at(2, &resume_query(true, Some(&last))).await?;
    if at != last {
        return Err(Miss::Fail(format!(
            "expected connection_established to carry the position sent ({} in {}); observed {} in {}",
            last.offset, last.epoch, at.offset, at.epoch
        )));
    }
    let mut pos = last;
    for data in &missed {
        pos = ctx.expect_event(&mut c, data, &pos).await?;
    }
    ctx.event_at(&mut c, 2, name, 4, &pos).await?;
    let r = ctx.nothing_else(&mut c).await;
    c.close().await;
    r
}

async fn unrecoverable(ctx: &Ctx) -> Verdict {
    let (c, head) = ctx.open_at(1, &resume_query(true, None)).await?;
    c.close().await;
    let stale = Position {
        offset: head.offset,
        epoch: format!("{}-conformance-unknown", head.epoch),
    };
    let (mut c, _) = ctx.open_at(1, &resume_query(true, Some(&stale))).await?;
    let want = json!({"type": "resync", "data": {"reason": "epoch_changed", "offset": head.offset, "epoch": head.epoch}});
    let r = match c.next(ctx.wait).await {
        Seen::Json(v) if v == want => ctx.nothing_else(&mut c).await,
        other => Err(fail(&want.to_string(), &other)),
    };
    c.close().await;
    r
}

/// `user`'s token refreshes the connection of user 0 (0: in place; another: refused).
async fn refresh(ctx: &Ctx, user: usize) -> Verdict {
    let secret = ctx.secret.as_deref().ok_or_else(|| {
        Miss::Skip("needs --jwt-secret to mint the new token (not in a --tokens-file)".into())
    })?;
    let token = mint_for(
        secret,
        ctx.users[user].0,
        TokenKind::Access,
        REFRESH_LIFETIME,
    )
    .map_err(|e| Miss::Fail(e.to_string()))?;
    let mut c = ctx.established(0).await?;
    let exp = unix_now() + REFRESH_LIFETIME.as_secs();
    c.text(&json!({"type": "refresh", "token": token}).to_string())
        .await?;
    let seen = c.next(ctx.wait).await;
    let r = match (user, &seen) {
        (0, Seen::Json(v)) if v["type"] == "refreshed" => match v["data"]["exp"].as_u64() {
            Some(e) if e.abs_diff(exp) <= 2 => ctx.nothing_else(&mut c).await,
            _ => Err(fail(
                &format!("{{\"type\":\"refreshed\",\"data\":{{\"exp\":{exp}}}}}"),
                &seen,
            )),
        },
        (0, _) => Err(fail(
            &format!("{{\"type\":\"refreshed\",\"data\":{{\"exp\":{exp}}}}}"),
            &seen,
        )),
        (_, Seen::Closed(Some(4001), _)) => Ok(()),
        (_, _) => Err(fail("close 4001", &seen)),
    };
    c.close().await;
    r
}

async fn expiry(ctx: &Ctx) -> Verdict {
    let wait = ctx.expiry_wait.ok_or_else(|| {
        Miss::Skip("not run: give --expiry-wait (at least the server's token grace + a few seconds; courier's default grace is 30s)".into())
    })?;
    let secret = ctx
        .secret
        .as_deref()
        .ok_or_else(|| Miss::Skip("needs --jwt-secret to mint a short-lived token".into()))?;
    let token = mint_for(secret, ctx.users[0].0, TokenKind::Access, SHORT_LIFETIME)
        .map_err(|e| Miss::Fail(e.to_string()))?;
    let mut c = connect_with(&ctx.url, Some(&token), "", ctx.wait).await?;
    match c.next(ctx.wait).await {
        Seen::Json(v) if v["type"] == "connection_established" => {}
        other => return Err(fail("connection_established", &other)),
    }
    match c.next(SHORT_LIFETIME + wait).await {
        Seen::Closed(Some(4001), reason) if reason == "token expired" => Ok(()),
        other => Err(fail("close 4001 \"token expired\"", &other)),
    }
}
