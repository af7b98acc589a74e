//! The start gate: what a session waits on between its connect phase and its first intended send.
//! A job that coordinates several processes (`--barrier`) implements it, so the session never
//! imports a job.

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// The start a gate agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Start {
    /// The start every process agreed on, unix ms on the agreeing clock (the report's
    /// `raw.start_at_ms`); `None` when the gate gave up without one (`stop` fired).
    pub(crate) agreed_ms: Option<u64>,
    /// The same instant on this machine's clock.
    pub(crate) local_ms: Option<u64>,
}

/// Holds publishing back until every party is ready. Called once, after the connect phase.
pub(crate) trait StartGate: Sync {
    /// Waits for the start. `Ok(None)`: no gate, the plan's own `--start-at` (or now) holds. An
    /// error ends the run after an orderly teardown and is the run's error.
    fn open<'a>(&'a self, stop: &'a CancellationToken) -> BoxFuture<'a, Result<Option<Start>>>;
}

/// No gate: publishing starts at the plan's `--start-at`, or right away.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoGate;

impl StartGate for NoGate {
    fn open<'a>(&'a self, _stop: &'a CancellationToken) -> BoxFuture<'a, Result<Option<Start>>> {
        Box::pin(async { Ok(None) })
    }
}
