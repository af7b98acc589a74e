//! `--barrier`'s flags, checked before any I/O, and the run's key names.

use std::time::Duration;

use crate::error::{Error, Result};

/// Default longest wait, after this agent is ready, for the others.
pub const DEFAULT_BARRIER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the keys outlive the longest an agent may need them.
pub const KEY_MARGIN: Duration = Duration::from_secs(60);
/// Longest `--run-id`.
const MAX_RUN_ID: usize = 64;

/// A validated `--barrier` (see [`crate::plan::Plan::barrier`]).
#[derive(Debug, Clone)]
pub struct BarrierSpec {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// N: agents that must get ready.
    pub agents: usize,
    /// Names the run's keys.
    pub run_id: String,
    /// Longest wait after this agent is ready.
    pub timeout: Duration,
    /// Key lifetime, refreshed on every join and ready: the run's bound + the timeout + a margin.
    pub key_ttl: Duration,
}

impl BarrierSpec {
    /// Checks the barrier flags: `--agents` and `--run-id` given, N equal to `--segment`'s,
    /// enough users for N segments, a single run (no `--repeat`, no `--find-max`).
    pub fn resolve(opts: &crate::cli::Opts, plan: &super::Plan) -> Result<Option<Self>> {
        let Some(url) = &opts.barrier else {
            return Ok(None);
        };
        let usage = |m: String| Error::Usage(format!("--barrier: {m}"));
        let agents = opts
            .agents
            .ok_or_else(|| usage("needs --agents N (the number of tester processes)".into()))?;
        if agents == 0 {
            return Err(usage("--agents must be at least 1".into()));
        }
        let run_id = opts.run_id.clone().ok_or_else(|| {
            usage("needs --run-id ID, fresh for every launch (e.g. `date +%s`)".into())
        })?;
        if run_id.is_empty()
            || run_id.len() > MAX_RUN_ID
            || !run_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(usage(format!(
                "--run-id {run_id:?}: 1 to {MAX_RUN_ID} of A-Z a-z 0-9 . _ -"
            )));
        }
        match plan.segment {
            Some(s) if s.count != agents => {
                return Err(usage(format!(
                    "--agents {agents} but --segment {s}: one agent per segment"
                )))
            }
            None if plan.users < agents => {
                return Err(usage(format!(
                    "{} users cannot fill {agents} segments",
                    plan.users
                )))
            }
            _ => {}
        }
        if plan.repeat > 1 || plan.find_max.is_some() {
            return Err(usage(
                "a barrier starts one run: no --repeat, no --find-max".into(),
            ));
        }
        redis::Client::open(url.as_str()).map_err(|e| usage(format!("{url:?}: {e}")))?;
        let timeout = super::build::duration(
            opts.barrier_timeout.as_deref(),
            None,
            "--barrier-timeout",
            DEFAULT_BARRIER_TIMEOUT,
        )?;
        Ok(Some(Self {
            url: url.clone(),
            agents,
            run_id,
            timeout,
            key_ttl: plan.duration + timeout + KEY_MARGIN,
        }))
    }

    /// The run's keys: agents, ready, start (one hash tag, so one slot on a cluster).
    pub fn keys(&self) -> [String; 3] {
        ["agents", "ready", "start"].map(|k| format!("loadtest:barrier:{{{}}}:{k}", self.run_id))
    }
}
