//! When events are sent: the burst, rate and replay arrival models, resolved from flags over the
//! scenario's `[publish]` section and checked.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::build::duration;
use super::replay::{Trace, DEFAULT_REPLAY_SPEED, MIN_REPLAY_SPEED};
use super::PublishSection;
use crate::cli::{Model, Opts};
use crate::error::{usage, Result};

/// When events are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrivalModel {
    /// `bursts` × `per_user` events per user, bursts `interval` apart.
    Burst {
        /// Number of bursts.
        bursts: u64,
        /// Events per user per burst.
        per_user: u64,
        /// Time between burst starts.
        interval: Duration,
    },
    /// `per_sec` events/s over all users for `length`.
    Rate {
        /// Events per second, all users together.
        per_sec: f64,
        /// How long to publish.
        length: Duration,
    },
    /// A recorded trace's events at their times ÷ `speed` (an open model like `Rate`).
    Replay {
        /// The trace (shared: a `--find-max` step's plan is a clone).
        trace: Arc<Trace>,
        /// Time runs this many times faster than recorded.
        speed: f64,
    },
}

impl ArrivalModel {
    /// Whether events follow a fixed schedule (rate, replay): an open model, whose publish lag is
    /// recorded per event and whose lagging publisher marks the run tester limited.
    pub fn is_open(&self) -> bool {
        !matches!(self, Self::Burst { .. })
    }

    /// The model and its parameters: a flag beats `[publish]`, which beats the defaults (10
    /// bursts of 20 events per user, 100 ms apart; 10 000 events/s for 5 s; replay at ×1).
    /// `base`: the scenario file's folder, against which its `trace` path is read.
    pub fn resolve(opts: &Opts, p: &PublishSection, base: Option<&Path>) -> Result<Self> {
        let model = match (opts.model, p.model.as_deref()) {
            (Some(m), _) => m,
            (None, None | Some("burst")) => Model::Burst,
            (None, Some("rate")) => Model::Rate,
            (None, Some("replay")) => Model::Replay,
            (None, Some(other)) => {
                return Err(usage(format!(
                    "publish.model {other:?}: expected \"burst\", \"rate\" or \"replay\""
                )))
            }
        };
        if model != Model::Replay && (!opts.trace.is_empty() || opts.replay_speed.is_some()) {
            return Err(usage("--trace and --replay-speed need --model replay"));
        }
        let arrival = match model {
            Model::Burst => ArrivalModel::Burst {
                bursts: opts.bursts.or(p.bursts).unwrap_or(10),
                per_user: opts.events_per_burst.or(p.events_per_burst).unwrap_or(20),
                interval: duration(
                    opts.burst_interval.as_deref(),
                    p.burst_interval.as_deref(),
                    "burst_interval",
                    Duration::from_millis(100),
                )?,
            },
            Model::Rate => ArrivalModel::Rate {
                per_sec: opts.rate.or(p.rate).unwrap_or(10_000.0),
                length: duration(
                    opts.rate_duration.as_deref(),
                    p.rate_duration.as_deref(),
                    "rate_duration",
                    Duration::from_secs(5),
                )?,
            },
            Model::Replay => {
                let files = if opts.trace.is_empty() {
                    // A scenario's path is relative to the scenario file.
                    let file = p.trace.as_deref().map(|f| match base {
                        Some(dir) => dir.join(f),
                        None => f.into(),
                    });
                    file.into_iter().collect()
                } else {
                    opts.trace.clone()
                };
                let speed = opts
                    .replay_speed
                    .or(p.replay_speed)
                    .unwrap_or(DEFAULT_REPLAY_SPEED);
                if !(MIN_REPLAY_SPEED..=f64::MAX).contains(&speed) {
                    return Err(usage(format!(
                        "replay_speed {speed}: expected at least {MIN_REPLAY_SPEED}"
                    )));
                }
                ArrivalModel::Replay {
                    trace: Arc::new(Trace::load(&files)?),
                    speed,
                }
            }
        };
        match &arrival {
            ArrivalModel::Burst {
                bursts, per_user, ..
            } if *bursts == 0 || *per_user == 0 => {
                return Err(usage("bursts and events_per_burst must be at least 1"))
            }
            ArrivalModel::Rate { per_sec, length }
                if !(*per_sec > 0.0 && per_sec.is_finite()) || length.is_zero() =>
            {
                return Err(usage("rate must be positive and rate_duration non-zero"))
            }
            _ => {}
        }
        Ok(arrival)
    }
}
