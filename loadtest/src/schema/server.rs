//! `--server-metrics`: courier's own counters over the run beside the tester's figures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One figure seen from both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossCheck {
    /// What is compared.
    pub what: String,
    /// The tester's figure.
    pub tester: f64,
    /// The server's counter, over the run.
    pub server: f64,
    /// Whether the two agree (see the module doc for what must hold).
    pub agrees: bool,
    /// Why not, when they disagree.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The report's `server_metrics` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMetrics {
    /// Where they were scraped.
    pub source: String,
    /// Every counter's change over the run (gauges: the value after), by sample name.
    pub delta: BTreeMap<String, f64>,
    /// The cross-checks.
    pub checks: Vec<CrossCheck>,
    /// Every cross-check agrees.
    pub agree: bool,
}
