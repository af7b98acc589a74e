//! The one reconnect-with-backoff loop of every Redis task.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::conn::CONNECT_TIMEOUT;
use super::health::LayerMetrics;

/// Exponential backoff with jitter between reconnect attempts: 100 ms doubling to 1 s. Every
/// second away from the broker is a second of lost notifications, and an attempt against a host
/// that is down costs it a refused SYN: the cap was 5 s, which kept courier away for 3.8 s after a
/// 3 s outage (scripts/broker-failover.sh); at 1 s a fleet of even a thousand processes asks a
/// recovering Redis for 1000 connections a second, well within what it takes.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(1);

    /// Starts at the minimum.
    pub(crate) fn new() -> Self {
        Self { next: Self::MIN }
    }
    /// After a success: the next failure retries quickly again.
    pub(crate) fn reset(&mut self) {
        self.next = Self::MIN;
    }
    /// Sleeps for the current delay (±25 % jitter, so a fleet does not reconnect in lockstep), then
    /// doubles it. Returns `false` if `cancel` fired first.
    pub(crate) async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let jitter = 0.75 + f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 512.0;
        let delay = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(Self::MAX);
        tokio::select! {
            _ = cancel.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// The one reconnect-with-backoff loop of every Redis task, as an iterator of connections:
///
/// ```text
/// let mut link = Reconnect::new("task", host, &metrics, &stop);
/// while let Some((conn, resumed)) = link.next(|| connect()).await {
///     match session(conn, resumed).await { Ok(()) => return, Err(e) => link.lost(&e) }
/// }
/// ```
///
/// [`next`](Self::next) connects (bounded by [`CONNECT_TIMEOUT`]), backing off between attempts,
/// and yields `None` once `stop` fires. `resumed` is `true` for every connection after the first
/// attempt: messages may have been lost and Redis may have forgotten us, the cue to re-register
/// and resync. The loop body stays in the caller, so its session can borrow the task's state.
pub(crate) struct Reconnect<'a> {
    task: &'static str,
    host: usize,
    metrics: &'a LayerMetrics,
    stop: &'a CancellationToken,
    backoff: Backoff,
    tried: bool,
    /// This task counts its host as down (see [`LayerMetrics`]).
    failing: bool,
}

impl<'a> Reconnect<'a> {
    /// The loop of `task` (for logs) on host number `host`, counting into `metrics`.
    pub(crate) fn new(
        task: &'static str,
        host: usize,
        metrics: &'a LayerMetrics,
        stop: &'a CancellationToken,
    ) -> Self {
        Self {
            task,
            host,
            metrics,
            stop,
            backoff: Backoff::new(),
            tried: false,
            failing: false,
        }
    }

    /// The next connection and whether it is resumed; `None` when the layer stops.
    pub(crate) async fn next<C, Connecting>(
        &mut self,
        mut connect: impl FnMut() -> Connecting,
    ) -> Option<(C, bool)>
    where
        Connecting: Future<Output = redis::RedisResult<C>>,
    {
        let (task, host) = (self.task, self.host);
        loop {
            let resumed = self.tried;
            if resumed && !self.backoff.wait(self.stop).await {
                return None;
            }
            self.tried = true;
            let attempt = tokio::select! {
                _ = self.stop.cancelled() => return None,
                r = tokio::time::timeout(CONNECT_TIMEOUT, connect()) => r,
            };
            match attempt {
                Ok(Ok(conn)) => {
                    if resumed {
                        self.metrics.reconnect();
                    }
                    self.set_failing(false);
                    self.backoff.reset();
                    return Some((conn, resumed));
                }
                Ok(Err(e)) => tracing::warn!(host, error = %e, "{task}: cannot connect; retrying"),
                Err(_) => tracing::warn!(host, "{task}: connect timed out; retrying"),
            }
            self.set_failing(true);
        }
    }

    fn set_failing(&mut self, failing: bool) {
        if failing != self.failing {
            self.failing = failing;
            if failing {
                self.metrics.task_down(self.host);
            } else {
                self.metrics.task_up(self.host);
            }
        }
    }

    /// The session on the last connection broke with `e`: counted and logged.
    pub(crate) fn lost(&mut self, e: &redis::RedisError) {
        self.set_failing(true);
        self.metrics.error("disconnect");
        let (task, host) = (self.task, self.host);
        tracing::warn!(host, error = %e, "{task}: connection lost; reconnecting");
    }
}
