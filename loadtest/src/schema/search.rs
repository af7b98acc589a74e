//! `--find-max`: the capacity search's steps and result, as the report keeps them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

// The search's direction is also a `--find-max` value: deriving clap's `ValueEnum` here keeps one
// enum for the flag and the report (clap is a derive, not a crate layer).
/// What `--find-max` searches over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchOver {
    /// Step the connection count up until a threshold fails.
    Connections,
    /// At a fixed connection count, the highest event rate at which every threshold holds.
    Rate,
    /// At a fixed connection count, the fastest replay of a trace (`--model replay`) at which
    /// every threshold holds: how many times its recorded traffic the deployment takes.
    Speed,
}

/// What one step ran with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepParameters {
    /// Connections.
    pub connections: usize,
    /// Users (connections per user kept from the plan).
    pub users: usize,
    /// Events/s, for a rate search (or a rate-model connections search).
    pub rate: Option<f64>,
    /// The replay speed, for a speed search (or a replay's connections search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

/// One step of the search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchStep {
    /// What it ran with.
    pub parameters: StepParameters,
    /// Every threshold's metric and a few standard figures, by metric name.
    pub figures: BTreeMap<String, f64>,
    /// Whether every threshold held.
    pub passed: bool,
    /// The thresholds that failed.
    pub failed: Vec<String>,
    /// Why the step says nothing of the server: the tester set the pace (its reasons). Such a
    /// step is neither the server's pass nor its failure. `None`: conclusive (or not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<String>,
}

/// The search's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchSummary {
    /// `connections`, `rate` or `speed`.
    pub over: SearchOver,
    /// Every step, in order.
    pub steps: Vec<SearchStep>,
    /// The highest passing connection count, rate or speed (never a tester-limited step's).
    pub highest_passing: Option<f64>,
    /// The lowest connection count or rate at which the tester set the pace: the search could
    /// not look at the server above it, so `highest_passing` is a lower bound of the server's
    /// limit, not the limit. `None`: the tester kept pace (or not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tester_limited_at: Option<f64>,
    /// The connection count a rate search ran at.
    pub connections: usize,
    /// Why the search ended.
    pub ended_by: String,
}
