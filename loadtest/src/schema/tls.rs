//! The report's TLS section: present when the run spoke TLS to its target (`wss://`), with the
//! TLS handshake's latency apart from the WebSocket upgrade's and the `--insecure` mark.

use serde::{Deserialize, Serialize};

use super::Quantiles;

/// How the run's TLS was set up and what its handshakes cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Tls {
    /// `--insecure`: certificates were not checked. Every report layout shows it, since a
    /// figure measured against an unverified server proves nothing about the real one.
    pub insecure: bool,
    /// What the certificate was checked against: `--ca-cert FILE`, `built-in roots`, or
    /// `none (--insecure)`.
    pub trust: String,
    /// The TLS handshake alone (TCP connected → TLS established), ms; the handshake figures of
    /// `connections` include it.
    pub handshake_ms: Quantiles,
}
