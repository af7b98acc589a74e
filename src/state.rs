//! Shared server state: a cheap-clone handle over everything a connection or request needs.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Verifier;
use crate::config::Config;
use crate::directory::{TokenDirectory, UserDirectory};
use crate::error::Result;
use crate::hub::Hub;
use crate::layer::ChannelLayer;
use crate::metrics::Metrics;
use crate::rate::IpRate;

/// Cheap-clone handle (`Arc`) to the server's state.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: Config,
    verifier: Verifier,
    directory: Arc<dyn UserDirectory>,
    hub: Hub,
    metrics: Arc<Metrics>,
    /// Cancelled once on shutdown; each connection holds a child token.
    shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for their close frames.
    tracker: TaskTracker,
    /// Open connections, checked against `max_connections` (an atomic: no lock per handshake).
    open: AtomicUsize,
    /// Handshakes per client address; `None`: no limit.
    ip_rate: Option<IpRate>,
}

impl AppState {
    /// State with the layer and user directory `config` names (token directory unless
    /// `user_db` is set). Redis layers and the database directory start background tasks, so
    /// call this inside a Tokio runtime.
    pub fn new(config: Config) -> Result<Self> {
        config.validate()?;
        let layer = crate::layer::build(&config)?;
        let directory: Arc<dyn UserDirectory> = match &config.user_db {
            Some(db) => Arc::new(crate::userdb::DjangoUserDirectory::new(db)?),
            None => Arc::new(TokenDirectory),
        };
        Self::assemble(config, layer, directory)
    }

    /// State over a given layer and user directory (tests, other layers, embedding).
    pub fn with_parts(
        config: Config,
        layer: Arc<dyn ChannelLayer>,
        directory: Arc<dyn UserDirectory>,
    ) -> Result<Self> {
        config.validate()?;
        Self::assemble(config, layer, directory)
    }

    /// The state over checked parts; the one place the token verifier is built (a bad key fails
    /// here).
    fn assemble(
        config: Config,
        layer: Arc<dyn ChannelLayer>,
        directory: Arc<dyn UserDirectory>,
    ) -> Result<Self> {
        let metrics = Arc::new(Metrics::new());
        layer.attach_metrics(metrics.clone());
        let hub = Hub::new(
            layer,
            config.slow_policy,
            metrics.clone(),
            Some(fitted_history(&config)),
        );
        if let Some(trace) = &config.trace {
            hub.attach_trace(Arc::new(crate::trace::Trace::new(trace.clone())));
        }
        let ip_rate = IpRate::new(config.handshake_rate_per_ip, config.handshake_burst_per_ip);
        Ok(Self(Arc::new(Inner {
            verifier: Verifier::new(&config.jwt)?,
            config,
            directory,
            hub,
            metrics,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            open: AtomicUsize::new(0),
            ip_rate,
        })))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }
    /// Whether `ip` may start a WebSocket handshake now (the per-IP rate limit).
    pub(crate) fn handshake_allowed(&self, ip: IpAddr) -> bool {
        self.0.ip_rate.as_ref().is_none_or(|r| r.allow(ip))
    }

    /// The token verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.0.verifier
    }
    /// The user directory.
    pub fn directory(&self) -> &dyn UserDirectory {
        &*self.0.directory
    }
    /// The hub (membership, fan-out, publishing).
    pub fn hub(&self) -> &Hub {
        &self.0.hub
    }
    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    /// The server-wide shutdown token.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.0.shutdown
    }
    /// The connection task tracker.
    pub fn tracker(&self) -> &TaskTracker {
        &self.0.tracker
    }
    /// Open connections now.
    pub fn open_connections(&self) -> usize {
        self.0.open.load(Ordering::Relaxed)
    }

    /// Takes a connection slot, or `None` at the limit. The slot is freed when the guard drops.
    pub fn try_open(&self) -> Option<ConnSlot> {
        let max = self.0.config.max_connections;
        self.0
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        self.0.metrics.connections_open.inc();
        Some(ConnSlot(self.clone()))
    }
}

/// The history bounds, fitted to the outbound queue (said in the log when that lowers them).
fn fitted_history(config: &Config) -> crate::config::HistoryConfig {
    let asked = &config.history;
    let fitted = config.fitted_history();
    if (fitted.size, fitted.stream_bytes) != (asked.size, asked.stream_bytes) {
        tracing::warn!(
            size = fitted.size,
            stream_bytes = fitted.stream_bytes,
            "history per user lowered to fit --queue-messages/--queue-bytes (a replay must fit an empty queue)"
        );
    }
    fitted
}

/// One taken connection slot; dropping it frees the slot.
pub struct ConnSlot(AppState);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0 .0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics().connections_open.dec();
    }
}
