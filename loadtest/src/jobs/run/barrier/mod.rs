//! `--barrier redis://…`: N tester processes (agents) of one run meet in Redis after their connect
//! phase, and all of them start publishing at one instant, set by the last agent to get ready.
//!
//! A run is named by `--run-id`; its keys are `loadtest:barrier:{ID}:agents` (a hash: segment
//! K → the agent's random token, plus `n` → N), `…:ready` (a set of K) and `…:start` (unix ms on
//! Redis's clock). Every step is one Lua script, so two agents never both take a slot or both
//! set the start:
//!
//! 1. **join** (before any socket to the target opens): take segment K (the given `--segment`, or
//!    the first free one in 1..=N). An id whose start is set, a taken K, or a different N is a
//!    usage error at once: a re-run with a used id, or two runs sharing one, never sees the other's
//!    state.
//! 2. **ready** (after the connect phase): add K to the ready set; the agent completing it sets
//!    `start` = Redis `TIME` + [`START_LEAD`].
//! 3. **wait**: poll `start` until it is set or `--barrier-timeout` passes; on a timeout (or a
//!    setup error, or Ctrl-C) the agent **leaves** — removes its slot unless the start was set,
//!    in which case it takes that start after all — so agents either all start or none does.
//!
//! Clocks: the start is an instant on Redis's clock. Each agent estimates its own clock's offset
//! from Redis with the fastest of `CLOCK_SAMPLES` `TIME` round trips and schedules the start on
//! its own clock, so agents agree to within about half that round trip (plus any asymmetry of the
//! route), whether or not their clocks are synchronised. Keys expire [`crate::plan::KEY_MARGIN`] past the
//! longest an agent may still need them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};
use tokio_util::sync::CancellationToken;

mod lua;

use futures::future::BoxFuture;
use lua::{JOIN, LEAVE, READY};

use crate::error::{Error, Result};
use crate::plan::{BarrierSpec, Segment};
use crate::session::{Start, StartGate};

/// How far past the last agent's arrival the start is set: every waiting agent polls it well
/// within that.
pub const START_LEAD: Duration = Duration::from_secs(1);
/// Time between polls of the start key.
const POLL: Duration = Duration::from_millis(50);
/// Bound on connecting to Redis and on each command.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// `TIME` round trips taken to estimate this clock's offset from Redis's.
pub(crate) const CLOCK_SAMPLES: usize = 5;

/// The agreed start of a barrier run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// The start, unix ms on Redis's clock: the same for every agent (the report's
    /// `raw.start_at_ms`).
    pub start_ms: u64,
    /// The same instant on this machine's clock.
    pub local_ms: u64,
    /// Redis's clock minus this machine's, ms (estimated).
    pub offset_ms: i64,
}

/// This agent's slot in a barrier run.
pub(crate) struct Joined {
    spec: BarrierSpec,
    conn: MultiplexedConnection,
    /// The segment this agent runs.
    pub segment: Segment,
    token: String,
}

/// Where the ready set stands, from one poll.
struct Standing {
    start: Option<u64>,
    joined: Vec<usize>,
    ready: Vec<usize>,
}

fn redis_err(spec: &BarrierSpec, e: impl std::fmt::Display) -> Error {
    Error::Setup(format!("--barrier {}: {e}", spec.url))
}

/// Bounds one Redis call by [`REDIS_TIMEOUT`].
async fn bounded<T>(
    spec: &BarrierSpec,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(REDIS_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| redis_err(spec, e)),
        Err(_) => Err(redis_err(spec, "no answer within 5 s")),
    }
}

/// Connects and takes this agent's slot: `segment` when given, else the first free one.
pub(crate) async fn join(spec: &BarrierSpec, segment: Option<Segment>) -> Result<Joined> {
    let client = redis::Client::open(spec.url.as_str()).map_err(|e| redis_err(spec, e))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT));
    let mut conn = bounded(
        spec,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await?;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let [agents, _, start] = spec.keys();
    let got: i64 = bounded(
        spec,
        Script::new(JOIN)
            .key(&agents)
            .key(&start)
            .arg(segment.map_or(0, |s| s.index))
            .arg(spec.agents)
            .arg(&token)
            .arg(spec.key_ttl.as_millis() as u64)
            .invoke_async(&mut conn),
    )
    .await?;
    let id = &spec.run_id;
    let n = spec.agents;
    match (got, segment) {
        (-1, _) => Err(Error::Usage(format!(
            "--barrier: run id {id:?} already started; give every launch a fresh --run-id"
        ))),
        (-2, _) => Err(Error::Usage(format!(
            "--barrier: run id {id:?} was joined with a different --agents than {n}"
        ))),
        (0, Some(s)) => Err(Error::Usage(format!(
            "--barrier: segment {s} of run id {id:?} is taken (another agent with --segment {s}, \
             or an earlier launch with this id: use a fresh --run-id)"
        ))),
        (0, None) => Err(Error::Usage(format!(
            "--barrier: all {n} segments of run id {id:?} are taken (more than --agents {n} \
             agents, or an earlier launch with this id: use a fresh --run-id)"
        ))),
        (k, _) => Ok(Joined {
            spec: spec.clone(),
            conn,
            segment: Segment {
                index: usize::try_from(k).map_err(|_| redis_err(spec, "bad join reply"))?,
                count: n,
            },
            token,
        }),
    }
}

fn unix_us_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The session waits on the barrier between its connect phase and its first send.
impl StartGate for Joined {
    fn open<'a>(&'a self, stop: &'a CancellationToken) -> BoxFuture<'a, Result<Option<Start>>> {
        Box::pin(async move {
            let agreed = self.wait(stop).await?;
            Ok(Some(Start {
                agreed_ms: agreed.map(|a| a.start_ms),
                local_ms: agreed.map(|a| a.local_ms),
            }))
        })
    }
}

impl Joined {
    /// Reports ready and waits for the start (announced on stderr). `Ok(None)`: `stop` fired
    /// first (the slot is given up). A timeout gives the slot up and is an [`Error::Barrier`].
    pub(crate) async fn wait(&self, stop: &CancellationToken) -> Result<Option<Agreed>> {
        let offset_ms = (self.clock_offset_us().await? as f64 / 1000.0).round() as i64;
        let agreed = |start_ms: u64| {
            eprintln!(
                "barrier: {} agents ready (run id {}); publishing at {start_ms} (Redis clock; \
                 this machine's is {:+} ms off)",
                self.spec.agents, self.spec.run_id, -offset_ms
            );
            Agreed {
                start_ms,
                local_ms: start_ms.saturating_add_signed(-offset_ms),
                offset_ms,
            }
        };
        let deadline = tokio::time::Instant::now() + self.spec.timeout;
        let [agents, ready, start] = self.spec.keys();
        let reply: Vec<i64> = bounded(
            &self.spec,
            Script::new(READY)
                .key(&agents)
                .key(&ready)
                .key(&start)
                .arg(self.segment.index)
                .arg(&self.token)
                .arg(self.spec.agents)
                .arg(START_LEAD.as_millis() as u64)
                .arg(self.spec.key_ttl.as_millis() as u64)
                .invoke_async(&mut self.conn.clone()),
        )
        .await?;
        match reply.as_slice() {
            [1, ms] => return Ok(Some(agreed(*ms as u64))),
            [0, _] => {}
            _ => {
                return Err(redis_err(
                    &self.spec,
                    format!(
                        "segment {} of run id {:?} is no longer this agent's (its keys expired?)",
                        self.segment, self.spec.run_id
                    ),
                ))
            }
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    let _ = self.leave().await;
                    return Ok(None);
                }
                _ = tokio::time::sleep(POLL) => {}
            }
            let standing = self.poll().await?;
            if let Some(ms) = standing.start {
                return Ok(Some(agreed(ms)));
            }
            if tokio::time::Instant::now() >= deadline {
                // The start may have been set since the poll: leaving then means taking it.
                if let Some(ms) = self.leave().await? {
                    return Ok(Some(agreed(ms)));
                }
                return Err(self.timed_out(&standing));
            }
        }
    }

    /// The error for a timeout: who never joined, who joined but never got ready.
    fn timed_out(&self, s: &Standing) -> Error {
        let n = self.spec.agents;
        let list = |ks: Vec<usize>| {
            ks.iter()
                .map(|k| format!("{k}/{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let absent: Vec<usize> = (1..=n).filter(|k| !s.joined.contains(k)).collect();
        let connecting: Vec<usize> = (1..=n)
            .filter(|k| s.joined.contains(k) && !s.ready.contains(k))
            .collect();
        let mut missing = Vec::new();
        if !absent.is_empty() {
            missing.push(format!("never joined: {}", list(absent)));
        }
        if !connecting.is_empty() {
            missing.push(format!("joined, not ready: {}", list(connecting)));
        }
        Error::Barrier(format!(
            "barrier timed out after {}: {} of {n} agents ready (run id {:?} at {}; this agent is \
             segment {}; {}); nothing was published",
            humantime::format_duration(self.spec.timeout),
            s.ready.len(),
            self.spec.run_id,
            self.spec.url,
            self.segment,
            missing.join("; ")
        ))
    }

    /// Gives this agent's slot up unless the run started; returns the start if it did.
    pub(crate) async fn leave(&self) -> Result<Option<u64>> {
        let [agents, ready, start] = self.spec.keys();
        bounded(
            &self.spec,
            Script::new(LEAVE)
                .key(&agents)
                .key(&ready)
                .key(&start)
                .arg(self.segment.index)
                .arg(&self.token)
                .invoke_async(&mut self.conn.clone()),
        )
        .await
    }

    async fn poll(&self) -> Result<Standing> {
        let [agents, ready, start] = self.spec.keys();
        let (start, joined, ready): (Option<u64>, Vec<String>, Vec<usize>) = bounded(
            &self.spec,
            redis::pipe()
                .get(&start)
                .hkeys(&agents)
                .smembers(&ready)
                .query_async(&mut self.conn.clone()),
        )
        .await?;
        Ok(Standing {
            start,
            joined: joined.iter().filter_map(|k| k.parse().ok()).collect(),
            ready,
        })
    }

    /// Redis's clock minus this machine's, µs: from the `TIME` round trip with the least delay,
    /// taking Redis's reading as made halfway through it.
    async fn clock_offset_us(&self) -> Result<i64> {
        let mut best: Option<(Duration, i64)> = None;
        for _ in 0..CLOCK_SAMPLES {
            let (sent, at) = (std::time::Instant::now(), unix_us_now());
            let (secs, us): (i64, i64) = bounded(
                &self.spec,
                redis::cmd("TIME").query_async(&mut self.conn.clone()),
            )
            .await?;
            let rtt = sent.elapsed();
            let offset = secs * 1_000_000 + us - (at + rtt.as_micros() as i64 / 2);
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, offset));
            }
        }
        Ok(best.map_or(0, |(_, o)| o))
    }
}
