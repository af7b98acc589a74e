//! Churning connections (issue 16 §4): a connection of the churn fraction drops once per period
//! (a close, a reset, or a stall then a reset), stays away, and reconnects — to the next target,
//! with its position or without — while every connection of the run refreshes its token in place
//! before `exp` when asked. Accounting is [`Recovery`]'s; this module only acts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::connect::{connect_one, Attempt, ConnectSpec};
use super::tokens::{Minter, Tokens};
use super::worker::{absorb, Acc, Conn, Phase, Shared, CLOSE_TIMEOUT};
use crate::cli::ChurnMode;
use crate::measure::Position;
use crate::plan::Plan;
use crate::plan::{Churn, TokenPlan};

/// Reconnect attempts after one drop (each to the next target) before the client gives up.
const RECONNECT_ATTEMPTS: u32 = 3;
/// Pause between failed reconnect attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What every churning or refreshing connection of a run shares.
pub(crate) struct ChurnCtx {
    /// The churn model (`None`: refresh only).
    pub(crate) plan: Option<Churn>,
    /// Connections in the run (churners are picked by index out of them).
    pub(crate) connections: usize,
    /// Token lifetime and refresh.
    pub(crate) tokens: TokenPlan,
    /// When the first tokens were minted (their `exp` counts from here).
    pub(crate) minted_at: Instant,
    /// Where to connect: the first target, then the reconnect targets (round-robin).
    pub(crate) targets: Vec<ConnectSpec>,
    /// Fresh tokens (`None`: a tokens file; the first ones are reused).
    pub(crate) minter: Option<Minter>,
    /// The first tokens.
    pub(crate) first_tokens: Arc<Tokens>,
    /// Per user index, the highest seq whose publish call returned (the replay's watermark).
    pub(crate) sent: Arc<Vec<AtomicU64>>,
}

impl ChurnCtx {
    /// The context of `plan` (`None` when it neither churns nor refreshes): `first` is where the
    /// connect phase connected, `secret` mints fresh tokens when the tester has it.
    pub(crate) fn build(
        plan: &Plan,
        first: &ConnectSpec,
        tokens: Arc<Tokens>,
        secret: Option<String>,
    ) -> Option<Arc<Self>> {
        if plan.churn.is_none() && plan.tokens.refresh_before.is_none() {
            return None;
        }
        let mut targets = vec![first.clone()];
        for ep in plan.churn.iter().flat_map(|c| &c.reconnect_targets) {
            targets.push(ConnectSpec {
                addr: ep.addr,
                host: ep.host.clone(),
                path: ep.path.clone(),
                tls: ep.tls(plan.tls.as_ref()),
                sources: first.sources.clone(),
                timeout: first.timeout,
                slow_fraction: 0.0,
                query: String::new(),
            });
        }
        let minter = secret.map(|secret| Minter {
            secret,
            user_ids: Arc::new(tokens.user_ids.clone()),
            lifetime: plan.tokens.lifetime,
        });
        Some(Arc::new(Self {
            plan: plan.churn.clone(),
            connections: plan.connections,
            tokens: plan.tokens,
            minted_at: Instant::now(),
            targets,
            minter,
            sent: Arc::new((0..plan.users).map(|_| AtomicU64::new(0)).collect()),
            first_tokens: tokens,
        }))
    }

    /// When a token issued at `issued` is to be refreshed (`None`: never).
    fn refresh_at(&self, issued: Instant) -> Option<Instant> {
        let before = self.tokens.refresh_before?;
        Some(issued + self.tokens.lifetime.saturating_sub(before))
    }

    /// A token for `user`: fresh when the tester mints, else the first one.
    fn token(&self, user: usize) -> String {
        self.minter
            .as_ref()
            .and_then(|m| m.mint(user))
            .or_else(|| self.first_tokens.tokens.get(user).cloned())
            .unwrap_or_default()
    }
}

/// The query after the token on the first connect: `recover=1` when the run resumes, so that
/// `connection_established` and every event carry positions.
pub(crate) fn first_query(plan: &Plan) -> String {
    resume_query(plan.churn.as_ref().is_some_and(|c| c.resume), None)
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

/// What woke the connection's loop.
enum Wake {
    Read(Result<(), super::client::ClientError>),
    Drop,
    Refresh,
    Phase(bool),
    Stop,
}

/// Receives on one connection like the plain receiver, and drops, reconnects and refreshes on
/// schedule, until it is complete, gives up, or `cut`.
pub(super) async fn run(
    mut c: Conn,
    acc: Arc<Mutex<Acc>>,
    shared: Shared,
    cut: CancellationToken,
    ctx: Arc<ChurnCtx>,
) -> Conn {
    let churn = ctx
        .plan
        .as_ref()
        .filter(|p| p.is_churner(c.idx, ctx.connections));
    let mut next_drop = churn.map(|p| Instant::now() + p.phase(c.idx));
    let mut refresh_at = ctx.refresh_at(ctx.minted_at);
    let mut phase_rx = shared.phase.clone();
    let (mut phase_open, mut draining) = (true, false);
    let mut target = 0usize;
    let cancelled = cut.cancelled();
    tokio::pin!(cancelled);
    while !c.slot.done {
        let Some(client) = c.client.as_mut() else {
            break;
        };
        let drop_due = next_drop.filter(|_| !draining);
        let far = Instant::now() + shared.run_len;
        let wake = tokio::select! {
            biased;
            _ = &mut cancelled => Wake::Stop,
            _ = tokio::time::sleep_until(drop_due.unwrap_or(far)), if drop_due.is_some() => Wake::Drop,
            _ = tokio::time::sleep_until(refresh_at.unwrap_or(far)), if refresh_at.is_some() => Wake::Refresh,
            r = phase_rx.changed(), if phase_open => Wake::Phase(r.is_ok()),
            r = client.fill() => Wake::Read(r),
        };
        match wake {
            Wake::Stop => break,
            Wake::Read(r) => absorb(&acc, client, &mut c.slot, &shared, r),
            Wake::Phase(open) => {
                phase_open = open;
                draining = matches!(*phase_rx.borrow(), Phase::Draining(_));
            }
            Wake::Refresh => {
                refresh_at = None;
                let token = ctx.token(c.slot.user);
                let frame = format!(r#"{{"type":"refresh","token":"{token}"}}"#);
                if client.send_text(frame.as_bytes()).await.is_ok() {
                    if let Some(r) = c.slot.recovery.as_deref_mut() {
                        r.refreshes += 1;
                    }
                    refresh_at = ctx.refresh_at(Instant::now());
                }
            }
            Wake::Drop => {
                let (Some(p), Some(due)) = (churn, drop_due) else {
                    continue;
                };
                let Some(old) = c.client.take() else { break };
                if !leave(old, p, &cut).await || !away(&mut c, p, &cut).await {
                    break;
                }
                let issued = Instant::now();
                if reconnect(&mut c, p, &ctx, &shared, &acc, &mut target).await {
                    refresh_at = ctx.refresh_at(issued).filter(|_| ctx.minter.is_some());
                } else {
                    c.slot.done = true;
                }
                let next = due + p.every;
                next_drop = Some(next.max(Instant::now() + p.every / 2));
            }
        }
    }
    if let Some(r) = c.slot.recovery.as_deref_mut() {
        r.stopped_reading();
    }
    c
}

/// Drops `client` the plan's way; `false` when the run was cut meanwhile.
async fn leave(client: Client, p: &Churn, cut: &CancellationToken) -> bool {
    match p.mode {
        ChurnMode::Close => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.leave()).await;
        }
        ChurnMode::Reset => client.reset(),
        ChurnMode::Stall => {
            // Not reading: the server's queue and the socket buffers fill, as a phone's do in a
            // tunnel; what they hold is never read (the position is the last event handled).
            let stalled = tokio::select! {
                _ = cut.cancelled() => false,
                _ = tokio::time::sleep(p.stall) => true,
            };
            client.reset();
            if !stalled {
                return false;
            }
        }
    }
    true
}

/// Counts the drop and stays away; `false` when the run was cut meanwhile.
async fn away(c: &mut Conn, p: &Churn, cut: &CancellationToken) -> bool {
    let drops = match c.slot.recovery.as_deref_mut() {
        Some(r) => {
            r.dropping();
            r.drops
        }
        None => 0,
    };
    tokio::select! {
        _ = cut.cancelled() => false,
        _ = tokio::time::sleep(p.away_of(c.idx, drops)) => true,
    }
}

/// Reconnects to the next target (up to [`RECONNECT_ATTEMPTS`] times), resuming when the plan
/// says so; `false` when every attempt failed.
async fn reconnect(
    c: &mut Conn,
    p: &Churn,
    ctx: &ChurnCtx,
    shared: &Shared,
    acc: &Mutex<Acc>,
    target: &mut usize,
) -> bool {
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
        tokio::time::sleep(RETRY_PAUSE).await;
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
