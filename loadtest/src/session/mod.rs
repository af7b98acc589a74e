//! One session: a single run of a plan, start to end: limits → server/tokens → connect phase →
//! start gate → receivers + publishers → drain → raw results for the report (`setup` starts the
//! server and mints the tokens; `churn` drops and reconnects clients). Every phase is
//! bounded by the plan's duration and the stop token.

mod churn;
pub mod client;
mod connect;
pub mod embedded_server;
pub mod frame;
mod gate;
mod meters;
mod progress;
mod publisher;
mod reconnect;
mod setup;
mod slow;
pub mod tokens;
pub mod wire;
mod worker;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub(crate) use connect::ConnectPhase;
pub(crate) use gate::{NoGate, Start, StartGate};
pub(crate) use meters::Costs;
pub(crate) use publisher::lane::Published;
pub(crate) use publisher::redis::group_of;
pub(crate) use reconnect::resume_query;

use churn::ChurnCtx;
use meters::Meters;
use progress::Progress;
use publisher::lane::{self, Lane};
use publisher::{EventCodec, PublishTarget};
use worker::{Assigned, Phase, Shared};

use crate::error::Result;
use crate::measure::{Clock, Exposition, Live, WorkerStats};
use crate::plan::{limits, publish_start, ArrivalModel, Plan};

/// Healthy connections per receiving worker (each worker has its own histogram).
const CONNS_PER_WORKER: usize = 512;
/// Longest wait for a Redis layer to register every user's group before publishing.
const READY_BOUND: Duration = Duration::from_secs(15);
/// Delay between the end of the connect phase and the first intended send.
const PUBLISH_LEAD: Duration = Duration::from_millis(20);

/// Why a run stopped early; set once by the first cause.
pub(crate) type StopReason = Arc<OnceLock<String>>;

/// Everything measured in one run, before it is turned into a report.
pub(crate) struct RunData {
    /// Connect phase (its `conns` moved out).
    pub(crate) connect: ConnectPhase,
    /// Merged receiver stats.
    pub(crate) stats: WorkerStats,
    /// What was published.
    pub(crate) published: Published,
    /// First intended send, unix ns.
    pub(crate) publish_start_ns: u64,
    /// The start every segment agreed on, unix ms (`--start-at`, or the barrier's on Redis's
    /// clock).
    pub(crate) start_at_ms: Option<u64>,
    /// The run clock.
    pub(crate) clock: Clock,
    /// Wall time of the run.
    pub(crate) wall: Duration,
    /// What the run cost the tester and the server, and resources over time.
    pub(crate) costs: Costs,
    /// Why the run stopped early, if it did.
    pub(crate) stop_reason: Option<String>,
    /// Each user index's id.
    pub(crate) user_ids: Arc<Vec<u64>>,
}

/// Runs the plan once. `stop` ends it early (Ctrl-C); `reason` records why. Publishing waits for
/// `gate` (a `--barrier`: until every agent is ready); a gate's error (a barrier timeout) ends the
/// run after an orderly teardown and is returned. `exposition` (`--metrics-listen`) reads the
/// run's counters while it goes.
pub(crate) async fn run_once(
    plan: &Plan,
    stop: CancellationToken,
    reason: StopReason,
    gate: &dyn StartGate,
    exposition: &Exposition,
) -> Result<RunData> {
    limits::check_fds(plan)?;
    limits::check_ports(plan)?;
    let stop = stop.child_token();
    let before = meters::before(plan);
    let wall = Instant::now();
    let clock = Clock::new();

    let (server, spec, tokens, publish_target, secret) = setup::setup(plan).await?;
    let tokens = Arc::new(tokens);
    let churn = ChurnCtx::build(plan, &spec, tokens.clone(), secret);
    let live = Arc::new(Live::default());
    exposition.begin(live.clone());
    let server_addr = server.as_ref().map(|s| s.addr);
    let mut meters = Meters::start(before, plan, server_addr, clock, live.clone()).await?;
    let progress = Progress::start(
        plan.outputs.progress,
        plan.connections,
        plan.total_events(),
        live.clone(),
    );
    let timer = {
        let (stop, reason, bound) = (stop.clone(), reason.clone(), plan.duration);
        tokio::spawn(async move {
            tokio::time::sleep(bound).await;
            let _ = reason.set(format!(
                "duration bound ({}) reached",
                humantime::format_duration(bound)
            ));
            stop.cancel();
        })
    };

    // Connect phase.
    let users = plan.users;
    let token_of = {
        let tokens = tokens.clone();
        move |i: usize| tokens.tokens[i % users].clone()
    };
    meters.connecting();
    let mut phase = connect::connect_all(
        spec,
        plan.connections,
        token_of,
        plan.ramp_rate,
        plan.concurrency,
        &stop,
        &live,
    )
    .await;
    progress.connected();
    meters.connected(phase.conns.len());

    // Receivers.
    let run_id: Arc<str> = uuid::Uuid::new_v4().simple().to_string()[..12].into();
    let (phase_tx, phase_rx) = watch::channel(Phase::Publishing);
    // At most one report per worker; counting all connections (slow readers included) is a safe
    // upper bound on the number of workers.
    let max_workers = phase.conns.len().div_ceil(CONNS_PER_WORKER);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(max_workers.max(1));
    let release = CancellationToken::new();
    let shared = Shared {
        clock,
        run_id: run_id.clone(),
        phase: phase_rx,
        stop: stop.clone(),
        live: live.clone(),
        run_len: plan.duration,
        done: done_tx,
        release: release.clone(),
        churn: churn.clone(),
        receive_cost: plan.diagnostics.receive_cost,
        exposition: exposition.clone(),
    };
    let mut healthy = Vec::new();
    let mut slow_tasks = tokio::task::JoinSet::new();
    for c in std::mem::take(&mut phase.conns) {
        let user = c.idx % users;
        let a = Assigned {
            idx: c.idx,
            head: c.head,
            client: c.client,
            user,
            planned: plan.events_for_user(user),
        };
        if plan.is_slow(c.idx) {
            slow_tasks.spawn(slow::run_slow(a, plan.slow_after, shared.clone()));
        } else {
            healthy.push(a);
        }
    }
    let mut workers = tokio::task::JoinSet::new();
    while !healthy.is_empty() {
        let chunk: Vec<Assigned> = healthy
            .drain(..healthy.len().min(CONNS_PER_WORKER))
            .collect();
        workers.spawn(worker::run_worker(chunk, shared.clone()));
    }

    // Publishers: the embedded one runs on the server's runtime (its work is the server's).
    let user_ids = Arc::new(tokens.user_ids.clone());
    let codec = match &plan.arrival {
        ArrivalModel::Replay { trace, .. } => {
            EventCodec::replaying(&run_id, plan.payload_bytes, &trace.kinds, trace.max_bytes())
        }
        _ => EventCodec::new(&run_id, plan.payload_bytes),
    };
    let lanes = if matches!(publish_target, PublishTarget::Embedded(_)) {
        1
    } else {
        plan.lanes
    };
    let mut publishers = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        publishers.push(publisher::build(
            plan.publisher,
            &publish_target,
            codec.clone(),
        )?);
    }
    if let Some(first) = publishers.first_mut() {
        // Redis layers register groups in their own tasks: publishing before that loses events.
        let ready = first.wait_ready(&user_ids, READY_BOUND);
        tokio::select! {
            _ = stop.cancelled() => {}
            r = ready => if let Err(e) = r {
                eprintln!("warning: {}: {e}; publishing anyway", first.name());
            },
        }
    }
    // Segments of one run agree on the first intended send (`--start-at`, or the barrier's
    // start on this machine's clock), else it is right away.
    let mut gate_error = None;
    let (start_at_ms, local_start_ms) = match gate.open(&stop).await {
        Ok(None) => (plan.start_at_ms, plan.start_at_ms),
        Ok(Some(start)) => (start.agreed_ms, start.local_ms),
        Err(e) => {
            stop.cancel();
            gate_error = Some(e);
            (None, None)
        }
    };
    let start = publish_start(local_start_ms, PUBLISH_LEAD);
    let publish_start_ns = clock.at_ns(start.into_std());
    meters.publishing();
    let on_server = matches!(publish_target, PublishTarget::Embedded(_));
    let mut lane_tasks = Vec::new();
    if !stop.is_cancelled() {
        for (lane, p) in publishers.into_iter().enumerate() {
            let job = Lane {
                lane,
                lanes,
                user_ids: user_ids.clone(),
                arrival: plan.arrival.clone(),
                batch: plan.batch,
                clock,
                start,
                stop: stop.clone(),
                live: live.clone(),
                sent: churn.as_ref().map(|c| c.sent.clone()),
                publish_delay: plan.diagnostics.publish_delay,
            };
            lane_tasks.push(match &server {
                Some(s) if on_server => s.handle.spawn(lane::run_lane(job, p)),
                _ => tokio::spawn(lane::run_lane(job, p)),
            });
        }
    }
    let mut published = Published {
        per_user: vec![0; users],
        lanes: lane_tasks.len(),
        ..Published::default()
    };
    for t in lane_tasks {
        match t.await {
            Ok(p) => published.merge(p),
            Err(e) => {
                *published
                    .errors
                    .entry(format!("publisher task: {e}"))
                    .or_default() += 1
            }
        }
    }
    // Memory is sampled while every connection is still open and queues have just been filled.
    meters.loaded();
    let _ = phase_tx.send(Phase::Draining(
        tokio::time::Instant::now() + plan.drain_timeout,
    ));

    // Every worker has stopped receiving (or the run was stopped): the delivery window ends here,
    // before any connection closes.
    for _ in 0..workers.len() {
        tokio::select! {
            _ = stop.cancelled() => break,
            d = done_rx.recv() => if d.is_none() { break },
        }
    }
    meters.delivered();
    release.cancel();

    // Drain and collect.
    let mut stats = WorkerStats::new(plan.duration);
    while let Some(r) = workers.join_next().await {
        match r {
            Ok(s) => stats.merge(s),
            Err(e) => *stats.errors.entry(format!("worker task: {e}")).or_default() += 1,
        }
    }
    while let Some(r) = slow_tasks.join_next().await {
        match r {
            Ok(c) => stats.conns.push(c),
            Err(e) => {
                *stats
                    .errors
                    .entry(format!("slow reader task: {e}"))
                    .or_default() += 1
            }
        }
    }
    timer.abort();
    progress.finish();
    let costs = meters.finish().await?;
    if let Some(s) = server {
        s.stop().await;
    }
    if let Some(e) = gate_error {
        return Err(e);
    }
    Ok(RunData {
        connect: phase,
        stats,
        published,
        publish_start_ns,
        start_at_ms,
        clock,
        wall: wall.elapsed(),
        costs,
        stop_reason: reason.get().cloned(),
        user_ids,
    })
}
