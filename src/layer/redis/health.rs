//! A Redis layer's health in the server metrics: errors, reconnects and the hosts that are down.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::metrics::Metrics;

/// The layer's view of the server metrics, attached after construction (see
/// [`ChannelLayer::attach_metrics`](crate::layer::ChannelLayer::attach_metrics)), and which hosts
/// are down.
pub(crate) struct LayerMetrics {
    registry: OnceLock<Arc<Metrics>>,
    /// Per host: how many of its tasks are failing now (a host is down while any is).
    failing: Vec<AtomicUsize>,
}

impl LayerMetrics {
    /// Metrics for a layer over `hosts` hosts.
    pub(crate) fn new(hosts: usize) -> Self {
        Self {
            registry: OnceLock::new(),
            failing: (0..hosts).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Sets the registry to count into (first call wins), with the hosts already down.
    pub(crate) fn attach(&self, metrics: Arc<Metrics>) {
        let _ = self.registry.set(metrics);
        self.publish_hosts_down();
    }

    /// One of `host`'s tasks lost (or could not get) its connection.
    pub(super) fn task_down(&self, host: usize) {
        if let Some(n) = self.failing.get(host) {
            n.fetch_add(1, Ordering::AcqRel);
            self.publish_hosts_down();
        }
    }

    /// That task is connected again.
    pub(super) fn task_up(&self, host: usize) {
        if let Some(n) = self.failing.get(host) {
            n.fetch_sub(1, Ordering::AcqRel);
            self.publish_hosts_down();
        }
    }

    /// Sets the gauge from the per-host counts (set, not inc/dec, so it is right whenever the
    /// registry arrives and however tasks interleave).
    fn publish_hosts_down(&self) {
        if let Some(m) = self.registry.get() {
            let down = self
                .failing
                .iter()
                .filter(|n| n.load(Ordering::Acquire) > 0)
                .count();
            m.layer_hosts_down.set(down as i64);
        }
    }
    /// Counts a layer error by reason (`disconnect`, `decode`, `publish`).
    pub(crate) fn error(&self, reason: &'static str) {
        if let Some(m) = self.registry.get() {
            Metrics::inc(&m.layer_errors, reason);
        }
    }
    /// Counts a successful reconnect.
    pub(crate) fn reconnect(&self) {
        if let Some(m) = self.registry.get() {
            m.layer_reconnects.inc();
        }
    }
}
