//! When events are sent: the burst and rate arrival models, resolved from flags over the
//! scenario's `[publish]` section and checked.

use std::time::Duration;

use super::build::duration;
use super::PublishSection;
use crate::cli::{Model, Opts};
use crate::error::{usage, Result};

/// When events are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
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
}

impl ArrivalModel {
    /// The model and its parameters: a flag beats `[publish]`, which beats the defaults (10
    /// bursts of 20 events per user, 100 ms apart; 10 000 events/s for 5 s).
    pub fn resolve(opts: &Opts, p: &PublishSection) -> Result<Self> {
        let model = match (opts.model, p.model.as_deref()) {
            (Some(m), _) => m,
            (None, None | Some("burst")) => Model::Burst,
            (None, Some("rate")) => Model::Rate,
            (None, Some(other)) => {
                return Err(usage(format!(
                    "publish.model {other:?}: expected \"burst\" or \"rate\""
                )))
            }
        };
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
        };
        match arrival {
            ArrivalModel::Burst {
                bursts, per_user, ..
            } if bursts == 0 || per_user == 0 => {
                return Err(usage("bursts and events_per_burst must be at least 1"))
            }
            ArrivalModel::Rate { per_sec, length }
                if !(per_sec > 0.0 && per_sec.is_finite()) || length.is_zero() =>
            {
                return Err(usage("rate must be positive and rate_duration non-zero"))
            }
            _ => {}
        }
        Ok(arrival)
    }
}
