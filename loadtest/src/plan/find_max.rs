//! `--find-max` settings: what the capacity search steps over and where it stops, checked up front.

use crate::cli::Opts;
use crate::error::{usage, Result};
use crate::plan::ArrivalModel;
use crate::schema::SearchOver;

/// Default `--precision` of a rate search: stop when the bracket is within 5 %.
pub const DEFAULT_PRECISION: f64 = 0.05;
/// Default `--max-steps` of a rate search (doubling from 1k/s to 1M/s is 10 steps).
pub const DEFAULT_MAX_STEPS: usize = 12;
/// Default `--max-speed` of a speed search: a replay at most 1000× its recorded pace.
pub const DEFAULT_MAX_SPEED: f64 = 1000.0;

/// Capacity search settings.
#[derive(Debug, Clone, Copy)]
pub struct FindMax {
    /// Connections or rate.
    pub over: SearchOver,
    /// Connections added per step.
    pub step: usize,
    /// Highest connection count tried.
    pub limit: usize,
    /// Highest rate tried, events/s.
    pub max_rate: f64,
    /// Highest replay speed tried.
    pub max_speed: f64,
    /// Rate and speed search: stop when the failing value ÷ the passing one − 1 is at most this.
    pub precision: f64,
    /// Rate and speed search: at most this many runs.
    pub max_steps: usize,
}

impl FindMax {
    /// `--find-max` and its flags, checked: a search needs a threshold to decide by, and a rate
    /// search needs the rate model.
    pub fn resolve(
        opts: &Opts,
        has_thresholds: bool,
        arrival: &ArrivalModel,
        connections: usize,
    ) -> Result<Option<Self>> {
        let over =
            match opts.find_max {
                None => return Ok(None),
                Some(_) if !has_thresholds => return Err(usage(
                    "--find-max needs at least one threshold (from the scenario or --threshold)",
                )),
                Some(SearchOver::Rate) if !matches!(arrival, ArrivalModel::Rate { .. }) => {
                    return Err(usage("--find-max rate needs the rate model (--model rate)"))
                }
                Some(SearchOver::Speed) if !matches!(arrival, ArrivalModel::Replay { .. }) => {
                    return Err(usage(
                        "--find-max speed needs the replay model (--model replay --trace FILE)",
                    ))
                }
                Some(over) => over,
            };
        let precision = opts.precision.unwrap_or(DEFAULT_PRECISION);
        if !(precision > 0.0 && precision < 1.0) {
            return Err(usage("--precision must be in (0, 1)"));
        }
        let max_rate = opts.max_rate.unwrap_or(f64::MAX);
        if max_rate.is_nan() || max_rate <= 0.0 {
            return Err(usage("--max-rate must be positive"));
        }
        let max_speed = opts.max_speed.unwrap_or(DEFAULT_MAX_SPEED);
        if max_speed.is_nan() || max_speed <= 0.0 {
            return Err(usage("--max-speed must be positive"));
        }
        Ok(Some(Self {
            over,
            step: opts.step.unwrap_or(connections).max(1),
            limit: opts.max_connections.unwrap_or(usize::MAX),
            max_rate,
            max_speed,
            precision,
            max_steps: opts.max_steps.unwrap_or(DEFAULT_MAX_STEPS).max(1),
        }))
    }
}
