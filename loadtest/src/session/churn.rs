//! Churning connections (issue 16 §4): a connection of the churn fraction drops once per period
//! (a close, a reset, or a stall then a reset), stays away, and reconnects — to the next target,
//! with its position or without — while every connection of the run refreshes its token in place
//! before `exp` when asked. Accounting is [`Recovery`]'s; this module only acts.
//! Coming back (after a drop or a server close) is [`super::reconnect`]'s.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::connect::ConnectSpec;
use super::reconnect::{
    come_back, comes_back_after, pause, reconnect, reopen, resume_query, stream_end,
};
use super::tokens::{Minter, Tokens};
use super::worker::{absorb, Acc, Conn, Phase, Shared, CLOSE_TIMEOUT};
use crate::cli::ChurnMode;
use crate::plan::Plan;
use crate::plan::{Churn, TokenPlan};

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
    pub(super) fn token(&self, user: usize) -> String {
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
    // With resume on, every connection comes back after a server close (see the module doc).
    let resuming = ctx.plan.as_ref().filter(|p| p.resume);
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
            Wake::Read(r) => {
                let cut_off = resuming.and_then(|_| stream_end(&r));
                if cut_off.is_none() {
                    absorb(&acc, client, &mut c.slot, &shared, r);
                }
                let closed = c.slot.closed.filter(|&code| comes_back_after(code));
                let how = cut_off.or_else(|| closed.map(|code| code.to_string()));
                let (Some(p), Some(how)) = (resuming, how) else {
                    continue;
                };
                reopen(&mut c, &acc, how);
                let issued = Instant::now();
                match come_back(&mut c, p, &ctx, &shared, &acc, &mut target, &cut).await {
                    None => break,
                    Some(true) => {
                        refresh_at = ctx.refresh_at(issued).filter(|_| ctx.minter.is_some())
                    }
                    Some(false) => c.slot.done = true,
                }
            }
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
            let stalled = pause(p.stall, cut).await;
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
    pause(p.away_of(c.idx, drops), cut).await
}
