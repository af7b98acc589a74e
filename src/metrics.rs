//! Prometheus metrics: one registry, counters cheap enough for the hot path.
//!
//! Per-delivery work touches only plain atomic counters, incremented once per event with the
//! recipient count (`inc_by`); labelled families (a hash lookup) are reserved for rare events.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A label set with one `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Stable, low-cardinality reason label.
    pub reason: &'static str,
}

/// A label set with one handshake `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `accepted`, `unauthenticated`, `over_limit` or `shutting_down`.
    pub result: &'static str,
}

/// A label set with one close `code`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Code {
    /// The WebSocket close code.
    pub code: u16,
}

/// Every metric courier exports. Cloning a metric clones an `Arc` handle to the same value.
#[derive(Default)]
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections (authenticated and registered).
    pub connections_open: Gauge,
    /// Handshakes by result: `accepted`, `unauthenticated`, `over_limit`, `shutting_down`.
    pub handshakes: Family<Outcome, Counter>,
    /// Authentication failures by [`AuthError::reason`](crate::auth::AuthError::reason).
    pub auth_failures: Family<Reason, Counter>,
    /// Groups with at least one local member.
    pub groups: Gauge,
    /// Local (connection, group) memberships.
    pub group_members: Gauge,
    /// Group messages published by this process (HTTP API and Rust API).
    pub events_published: Counter,
    /// Group messages received from the layer for local groups.
    pub events_received: Counter,
    /// Frames queued to a connection by fan-out.
    pub deliveries: Counter,
    /// Fan-out frames not delivered, by reason (`queue_full` under the drop policy, `slow_close`).
    pub drops: Family<Reason, Counter>,
    /// Writer batches flushed (one socket write each); `deliveries ÷ this` is the batch size.
    pub writer_flushes: Counter,
    /// Frames written by writer batches.
    pub writer_frames: Counter,
    /// Times a connection's outbound queue was found full.
    pub queue_full: Counter,
    /// Connections closed by the server, by close code.
    pub closes: Family<Code, Counter>,
    /// Redis hosts (of `--redis-url`) that a layer task cannot reach right now; only the groups
    /// on those hosts are affected.
    pub layer_hosts_down: Gauge,
    /// Layer problems by reason (`decode`, `publish`, `disconnect`, …).
    pub layer_errors: Family<Reason, Counter>,
    /// Successful reconnects of the layer to its broker.
    pub layer_reconnects: Counter,
    /// Failed `accept` calls by reason (`emfile`, `enfile`, `enobufs`, `enomem`, `other`).
    pub accept_errors: Family<Reason, Counter>,
    /// Connections that ended without a complete request head (`no_request`: the handshake
    /// deadline, or a client that connected and left).
    pub handshake_timeouts: Family<Reason, Counter>,
    /// WebSocket requests refused with an HTTP status before the upgrade, by reason
    /// (`not_websocket`, `origin`, `ip_rate`).
    pub handshake_refusals: Family<Reason, Counter>,
    /// `X-Forwarded-For` headers from a `--trusted-proxy` peer that could not be read (the peer's
    /// address was used instead): a proxy misconfiguration.
    pub forwarded_invalid: Counter,
    /// TLS handshakes on the main listener that did not complete, by reason: `timeout` (the
    /// handshake deadline), `not_tls` (plain HTTP or other bytes on the TLS port), `closed` (the
    /// client left mid-handshake), `invalid` (a TLS error: a bad hello, no shared version,
    /// cipher suite or ALPN protocol, a rejected certificate).
    pub tls_handshake_failures: Family<Reason, Counter>,
    /// Certificate reloads (SIGHUP) by result: `ok`, or `error` (the old certificate is kept).
    pub tls_reloads: Family<Outcome, Counter>,
    /// Bytes of per-user history kept (events, with their bookkeeping).
    pub history_bytes: Gauge,
    /// User streams whose position (and history) is kept.
    pub history_streams: Gauge,
    /// Streams evicted to stay within the process's history byte cap (their clients are told
    /// `epoch_changed`).
    pub history_evictions: Counter,
    /// Resumes (`since=`) and unusable positions by result: `replayed`, `current` (nothing
    /// missed), or the `resync` reason (`position_expired`, `epoch_changed`).
    pub resumes: Family<Reason, Counter>,
    /// Events replayed to resuming clients.
    pub replayed_events: Counter,
    /// Groups whose positioned members were caught up in place from the layer's stream, by
    /// cause: `broker_resync` (an outage), `stream_gap` (a skipped offset). Their results count
    /// in `resumes`.
    pub catch_ups: Family<Reason, Counter>,
    /// Token refreshes by result: `ok`, or the reason of the 4001 close.
    pub refreshes: Family<Reason, Counter>,
    /// Lines written to the publish trace.
    pub trace_lines: Counter,
    /// Publish-trace lines dropped (queue full, or the file could not be written).
    pub trace_dropped: Counter,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut m = Self::default();
        let r = &mut m.registry;
        r.register(
            "courier_connections_open",
            "Open WebSocket connections",
            m.connections_open.clone(),
        );
        r.register(
            "courier_handshakes",
            "WebSocket handshakes by result",
            m.handshakes.clone(),
        );
        r.register(
            "courier_auth_failures",
            "Authentication failures by reason",
            m.auth_failures.clone(),
        );
        r.register(
            "courier_groups",
            "Groups with local members",
            m.groups.clone(),
        );
        r.register(
            "courier_group_members",
            "Local group memberships",
            m.group_members.clone(),
        );
        r.register(
            "courier_events_published",
            "Group messages published here",
            m.events_published.clone(),
        );
        r.register(
            "courier_events_received",
            "Group messages received for local groups",
            m.events_received.clone(),
        );
        r.register(
            "courier_deliveries",
            "Frames queued to connections by fan-out",
            m.deliveries.clone(),
        );
        r.register(
            "courier_drops",
            "Fan-out frames not delivered, by reason",
            m.drops.clone(),
        );
        r.register(
            "courier_writer_flushes",
            "Writer batches flushed (one socket write each)",
            m.writer_flushes.clone(),
        );
        r.register(
            "courier_writer_frames",
            "Frames written by writer batches",
            m.writer_frames.clone(),
        );
        r.register(
            "courier_queue_full",
            "Outbound queue found full",
            m.queue_full.clone(),
        );
        r.register(
            "courier_closes",
            "Server-initiated closes by code",
            m.closes.clone(),
        );
        r.register(
            "courier_layer_hosts_down",
            "Redis hosts a layer task cannot reach now",
            m.layer_hosts_down.clone(),
        );
        r.register(
            "courier_layer_errors",
            "Channel layer errors by reason",
            m.layer_errors.clone(),
        );
        r.register(
            "courier_layer_reconnects",
            "Channel layer reconnects",
            m.layer_reconnects.clone(),
        );
        r.register(
            "courier_accept_errors",
            "Failed accepts by reason",
            m.accept_errors.clone(),
        );
        r.register(
            "courier_handshake_timeouts",
            "Connections dropped at the handshake deadline",
            m.handshake_timeouts.clone(),
        );
        r.register(
            "courier_handshake_refusals",
            "WebSocket requests refused before the upgrade, by reason",
            m.handshake_refusals.clone(),
        );
        r.register(
            "courier_forwarded_invalid",
            "Unreadable X-Forwarded-For headers from trusted proxies",
            m.forwarded_invalid.clone(),
        );
        r.register(
            "courier_tls_handshake_failures",
            "TLS handshakes that did not complete, by reason",
            m.tls_handshake_failures.clone(),
        );
        r.register(
            "courier_tls_reloads",
            "Certificate reloads by result",
            m.tls_reloads.clone(),
        );
        r.register(
            "courier_history_bytes",
            "Bytes of per-user history kept",
            m.history_bytes.clone(),
        );
        r.register(
            "courier_history_streams",
            "User streams with a kept position",
            m.history_streams.clone(),
        );
        r.register(
            "courier_history_evictions",
            "Streams evicted to stay within the history byte cap",
            m.history_evictions.clone(),
        );
        r.register("courier_resumes", "Resumes by result", m.resumes.clone());
        r.register(
            "courier_catch_ups",
            "Groups caught up in place from the layer's stream, by cause",
            m.catch_ups.clone(),
        );
        r.register(
            "courier_replayed_events",
            "Events replayed to resuming clients",
            m.replayed_events.clone(),
        );
        r.register(
            "courier_token_refreshes",
            "Token refreshes by result",
            m.refreshes.clone(),
        );
        r.register(
            "courier_trace_lines",
            "Lines written to the publish trace",
            m.trace_lines.clone(),
        );
        r.register(
            "courier_trace_dropped",
            "Publish-trace lines dropped",
            m.trace_dropped.clone(),
        );
        m
    }

    /// Counts a labelled event.
    pub fn inc(family: &Family<Reason, Counter>, reason: &'static str) {
        Self::inc_by(family, reason, 1);
    }

    /// Counts `n` labelled events.
    pub fn inc_by(family: &Family<Reason, Counter>, reason: &'static str, n: u64) {
        family.get_or_create(&Reason { reason }).inc_by(n);
    }

    /// Counts a handshake by its result.
    pub fn handshake(&self, result: &'static str) {
        self.handshakes.get_or_create(&Outcome { result }).inc();
    }

    /// Counts one flushed writer batch of `frames` frames.
    pub fn writer_batch(&self, frames: u64) {
        self.writer_flushes.inc();
        self.writer_frames.inc_by(frames);
    }

    /// Counts a server-initiated close.
    pub fn close(&self, code: u16) {
        self.closes.get_or_create(&Code { code }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
