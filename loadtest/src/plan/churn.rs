//! The client-behaviour model: which connections drop, when, how, for how long, whether they
//! resume, where they reconnect; and the token lifetime with in-place refresh. Validated here,
//! before any socket opens; every value is bounded in count and time.

use std::time::Duration;

use super::build::duration;
use super::scenario::{ChurnSection, ClientsSection};
use super::target::{is_slow_index, parse_target, Auth, Endpoint, Target};
use crate::cli::{ChurnArgs, ChurnMode, Switch};
use crate::error::{usage, Result};

/// Default churn period.
pub const DEFAULT_CHURN_EVERY: Duration = Duration::from_secs(3);
/// Default time away: `500ms..2s`.
pub const DEFAULT_CHURN_AWAY: (Duration, Duration) =
    (Duration::from_millis(500), Duration::from_secs(2));
/// Default stall before the reset (`--churn-mode stall`).
pub const DEFAULT_CHURN_STALL: Duration = Duration::from_secs(1);
/// Default token lifetime. simplejwt's default is 5 minutes; a run (and a `--find-max` search)
/// may be longer, and without `--refresh-before` the server would close it at `exp`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Shortest churn period: faster would be a connect storm, which `connect-storm.toml` measures.
const MIN_EVERY: Duration = Duration::from_millis(100);
/// Longest time away or stall: a run is seconds to minutes long.
const MAX_AWAY: Duration = Duration::from_secs(300);
/// Shortest token lifetime (`exp` has one-second resolution).
const MIN_LIFETIME: Duration = Duration::from_secs(2);

/// Connections that drop and come back.
#[derive(Debug, Clone)]
pub struct Churn {
    /// Fraction of the healthy connections that churn.
    pub fraction: f64,
    /// Each churning connection drops once per period, at its own phase within it.
    pub every: Duration,
    /// Time away, uniform in `min..=max`.
    pub away: (Duration, Duration),
    /// How a connection drops.
    pub mode: ChurnMode,
    /// `Stall`: time without reading before the reset.
    pub stall: Duration,
    /// Reconnect with the last position (`since`/`epoch`).
    pub resume: bool,
    /// Where reconnects go, round-robin after the first target (empty: the first target only).
    pub reconnect_targets: Vec<Endpoint>,
}

impl Churn {
    /// Whether connection `i` of `n` churns. Counted from the far end so that churners and slow
    /// readers (counted from the near end) do not fall on the same indexes when the fractions
    /// are equal; a connection that is both is a slow reader.
    pub fn is_churner(&self, i: usize, n: usize) -> bool {
        is_slow_index(n.saturating_sub(i + 1), self.fraction)
    }

    /// Connection `i`'s first drop, after the first intended send: spread over the period by
    /// the golden ratio, so drops arrive evenly rather than all at once.
    pub fn phase(&self, i: usize) -> Duration {
        self.every.mul_f64((i as f64 * 0.618_033_988_75).fract())
    }

    /// The time away of connection `i`'s `k`-th drop: deterministic (a run is reproducible).
    pub fn away_of(&self, i: usize, k: u64) -> Duration {
        let (lo, hi) = self.away;
        let unit = (mix(((i as u64) << 20) ^ k) >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo).mul_f64(unit)
    }
}

/// splitmix64: a well-spread hash of a counter.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Token lifetime and in-place refresh.
#[derive(Debug, Clone, Copy)]
pub struct TokenPlan {
    /// `exp` − `iat` of every minted token.
    pub lifetime: Duration,
    /// Refresh this long before `exp` (`None`: never).
    pub refresh_before: Option<Duration>,
}

impl Default for TokenPlan {
    fn default() -> Self {
        Self {
            lifetime: DEFAULT_TOKEN_LIFETIME,
            refresh_before: None,
        }
    }
}

/// `MIN..MAX` or one duration.
fn parse_range(text: &str) -> Result<(Duration, Duration)> {
    let one = |s: &str| {
        humantime::parse_duration(s.trim()).map_err(|e| usage(format!("churn away {text:?}: {e}")))
    };
    let (lo, hi) = match text.split_once("..") {
        Some((a, b)) => (one(a)?, one(b)?),
        None => (one(text)?, one(text)?),
    };
    if lo > hi {
        return Err(usage(format!(
            "churn away {text:?}: the minimum is above the maximum"
        )));
    }
    Ok((lo, hi))
}

/// The churn the flags and the scenario ask for (`None`: no churn).
pub(super) fn resolve_churn(
    a: &ChurnArgs,
    s: &ChurnSection,
    target: &Target,
    allow_remote: bool,
) -> Result<Option<Churn>> {
    let fraction = a.churn_fraction.or(s.fraction).unwrap_or(0.0);
    let targets: Vec<&String> = if a.reconnect_targets.is_empty() {
        s.reconnect_targets.iter().collect()
    } else {
        a.reconnect_targets.iter().collect()
    };
    if fraction == 0.0 {
        let given = a.churn_every.is_some()
            || a.churn_away.is_some()
            || a.churn_mode.is_some()
            || a.churn_stall.is_some()
            || a.churn_resume.is_some()
            || !targets.is_empty();
        return match given {
            true => Err(usage(
                "--churn-* and --reconnect-target need --churn-fraction above 0",
            )),
            false => Ok(None),
        };
    }
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(usage("churn fraction must be in (0, 1]"));
    }
    let every = duration(
        a.churn_every.as_deref(),
        s.every.as_deref(),
        "churn every",
        DEFAULT_CHURN_EVERY,
    )?;
    if every < MIN_EVERY {
        return Err(usage(format!("churn every must be at least {MIN_EVERY:?}")));
    }
    let away = match a.churn_away.as_deref().or(s.away.as_deref()) {
        Some(text) => parse_range(text)?,
        None => DEFAULT_CHURN_AWAY,
    };
    let stall = duration(
        a.churn_stall.as_deref(),
        s.stall.as_deref(),
        "churn stall",
        DEFAULT_CHURN_STALL,
    )?;
    if away.1 > MAX_AWAY || stall > MAX_AWAY {
        return Err(usage(format!(
            "churn away and stall must be at most {MAX_AWAY:?}"
        )));
    }
    let mode = match (a.churn_mode, s.mode.as_deref()) {
        (Some(m), _) => m,
        (None, None) => ChurnMode::Close,
        (None, Some(m)) => clap::ValueEnum::from_str(m, false).map_err(|_| {
            usage(format!(
                "churn mode {m:?}: expected \"close\", \"reset\" or \"stall\""
            ))
        })?,
    };
    let resume = match a.churn_resume {
        Some(sw) => sw == Switch::On,
        None => s.resume.unwrap_or(true),
    };
    if !targets.is_empty() && matches!(target, Target::Embedded { .. }) {
        return Err(usage(
            "--reconnect-target needs an external --target (the embedded server's tokens are its own)",
        ));
    }
    let reconnect_targets = targets
        .into_iter()
        .map(|t| parse_target(t, allow_remote))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Churn {
        fraction,
        every,
        away,
        mode,
        stall,
        resume,
        reconnect_targets,
    }))
}

/// The token lifetime and refresh the flags and the scenario ask for.
pub(super) fn resolve_tokens(
    a: &ChurnArgs,
    c: &ClientsSection,
    auth: Option<&Auth>,
) -> Result<TokenPlan> {
    let lifetime = duration(
        a.token_lifetime.as_deref(),
        c.token_lifetime.as_deref(),
        "token lifetime",
        DEFAULT_TOKEN_LIFETIME,
    )?;
    let refresh_before = match a.refresh_before.as_deref().or(c.refresh_before.as_deref()) {
        Some(_) => Some(duration(
            a.refresh_before.as_deref(),
            c.refresh_before.as_deref(),
            "refresh before",
            Duration::ZERO,
        )?),
        None => None,
    };
    if lifetime < MIN_LIFETIME {
        return Err(usage(format!(
            "token lifetime must be at least {MIN_LIFETIME:?}"
        )));
    }
    if refresh_before.is_some_and(|r| r.is_zero() || r >= lifetime) {
        return Err(usage(
            "refresh before must be above 0 and below the token lifetime",
        ));
    }
    let custom = lifetime != DEFAULT_TOKEN_LIFETIME || refresh_before.is_some();
    if custom && matches!(auth, Some(Auth::File(_))) {
        return Err(usage(
            "--token-lifetime/--refresh-before mint tokens: give --jwt-secret, not --tokens-file",
        ));
    }
    Ok(TokenPlan {
        lifetime,
        refresh_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn churn(fraction: f64) -> Churn {
        Churn {
            fraction,
            every: Duration::from_secs(1),
            away: (Duration::from_millis(100), Duration::from_millis(300)),
            mode: ChurnMode::Close,
            stall: DEFAULT_CHURN_STALL,
            resume: true,
            reconnect_targets: Vec::new(),
        }
    }

    #[test]
    fn churners_are_the_fraction_and_away_times_stay_in_range() {
        let c = churn(0.2);
        assert_eq!((0..1000).filter(|&i| c.is_churner(i, 1000)).count(), 200);
        for i in 0..100 {
            assert!(c.phase(i) < c.every);
            for k in 0..10 {
                let a = c.away_of(i, k);
                assert!(a >= c.away.0 && a <= c.away.1, "{a:?}");
            }
        }
        assert_ne!(c.away_of(1, 0), c.away_of(2, 0), "spread, not one value");
    }

    #[test]
    fn away_ranges_parse_and_are_checked() {
        let ms = Duration::from_millis;
        assert_eq!(parse_range("500ms..2s").ok(), Some((ms(500), ms(2000))));
        assert_eq!(parse_range("1s").ok(), Some((ms(1000), ms(1000))));
        assert!(parse_range("2s..1s").is_err());
        assert!(parse_range("x..1s").is_err());
    }
}
