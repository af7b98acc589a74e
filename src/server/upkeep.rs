//! The server's upkeep tasks, owned by [`run`](super::run): history sweeps, catch-ups from the
//! layer's streams, the re-check of connected users against the Django user table, and the
//! publish trace's writer.

use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::auth::UserId;
use crate::metrics::Metrics;
use crate::protocol::CloseCode;
use crate::state::AppState;

/// How often history past its age and positions past their idle TTL are dropped (the byte bounds
/// are kept at every append; this only returns memory sooner).
const HISTORY_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// How long shutdown waits for the trace writer to write what is queued.
const TRACE_FLUSH_BOUND: Duration = Duration::from_secs(5);

/// The running upkeep tasks.
pub(super) struct Upkeep {
    periodic: Vec<JoinHandle<()>>,
    /// The trace writer and what stops it.
    trace: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Upkeep {
    /// Stops the periodic tasks, then lets the trace writer write what is queued (bounded).
    pub(super) async fn stop(self) {
        for task in self.periodic {
            task.abort();
        }
        if let Some((stop, writer)) = self.trace {
            stop.cancel();
            let _ = tokio::time::timeout(TRACE_FLUSH_BOUND, writer).await;
        }
    }
}

/// Starts the upkeep tasks `state` needs.
pub(super) fn spawn(state: &AppState) -> Upkeep {
    let trace = state.hub().trace_handle().map(|trace| {
        let stop = CancellationToken::new();
        let (until, state) = (stop.clone(), state.clone());
        let writer = tokio::spawn(async move { trace.write(until, state.metrics()).await });
        (stop, writer)
    });
    let mut tasks = Vec::new();
    if state.hub().keeps_history() {
        let hub = state.hub().clone();
        tasks.push(every(HISTORY_SWEEP_EVERY, move || {
            hub.sweep_history();
            std::future::ready(())
        }));
    }
    if state.hub().streams_in_layer() {
        let hub = state.hub().clone();
        tasks.push(tokio::spawn(async move { hub.run_catch_ups().await }));
    }
    if let Some(period) = state.directory().recheck_every() {
        let state = state.clone();
        tasks.push(every(period, move || recheck_users(state.clone())));
    }
    Upkeep {
        periodic: tasks,
        trace,
    }
}

fn every<F: std::future::Future<Output = ()> + Send>(
    period: Duration,
    mut work: impl FnMut() -> F + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            work().await;
        }
    })
}

/// Closes (4001) every connection of a user the directory no longer lets in — deleted or
/// deactivated in Django — idle connections included, asking about all connected users in
/// batches.
async fn recheck_users(state: AppState) {
    let groups = state.hub().member_groups();
    let ids: Vec<UserId> = groups
        .iter()
        .filter_map(|g| g.as_str().strip_prefix("user_"))
        .filter_map(|id| UserId::from_claim(&Value::String(id.to_owned())))
        .collect();
    if ids.is_empty() {
        return;
    }
    match state.directory().refused_among(&ids).await {
        Ok(refused) => {
            for id in refused {
                tracing::info!(user = %id, "closing the connections of a user no longer allowed");
                Metrics::inc(&state.metrics().auth_failures, "revoked");
                state
                    .hub()
                    .close_group(&format!("user_{id}"), CloseCode::Unauthenticated);
            }
        }
        Err(e) => tracing::warn!(error = %e, "user re-check failed; will retry"),
    }
}
