//! Statistics for noisy comparisons: medians with min..max over repeated runs (`--repeat`), and
//! the median B/A ratio of paired rounds with a bootstrap confidence interval (`loadtest ab`).
//!
//! Why the median ratio: on a shared 2-core box one run swings 10–20 %, and the swings are not
//! normal (a compile starting mid-run makes one round an outlier). The median ignores outliers and
//! pairing a round's A and B cancels slow drifts. The interval is a percentile bootstrap of the
//! median ratio (no distribution assumed; seeded, so the same rounds give the same interval). The
//! *decision* uses the exact sign test on the per-round ratios as well, because a bootstrap of a
//! handful of rounds is too narrow: with 3 rounds every ratio below 1 happens by chance one time
//! in four. The sign test is distribution-free and honest at small n — at 95 % it needs at least
//! 6 rounds to call anything (2/2⁶ = 0.031), which is why `--rounds` defaults to 6.

use serde::{Deserialize, Serialize};

use crate::schema::{Better, Spread};

/// The median of `v` (`None` when empty).
pub(crate) fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// Median, min and max of `v` (`None` when empty).
pub(crate) fn spread(v: &[f64]) -> Option<Spread> {
    Some(Spread {
        median: median(v)?,
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// Resamples per bootstrap interval.
pub(crate) const RESAMPLES: usize = 2000;
/// Seed of the resampler (fixed: the same rounds give the same interval).
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// A small xorshift generator: enough for resampling indexes, and no extra crate.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The percentile-bootstrap interval of the median of `v` at `confidence` (e.g. 0.95).
pub(crate) fn bootstrap_median_ci(v: &[f64], confidence: f64) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut rng = XorShift(SEED);
    let mut sample = vec![0.0; v.len()];
    let mut medians: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            for s in sample.iter_mut() {
                *s = v[rng.below(v.len())];
            }
            median(&sample).unwrap_or(f64::NAN)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    let at = |q: f64| medians[((q * RESAMPLES as f64) as usize).min(RESAMPLES - 1)];
    Some((at(tail), at(1.0 - tail)))
}

/// What an A/B comparison concluded for one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// B is worse than A beyond the threshold, and the interval excludes "no change".
    Regression,
    /// B is better than A beyond the threshold, and the interval excludes "no change".
    Improvement,
    /// Neither: within the threshold or within the noise.
    NoSignificantChange,
}

/// One metric's B/A comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RatioSummary {
    /// The metric.
    pub(crate) metric: String,
    /// Which way is better.
    pub(crate) better: Better,
    /// A's values, one per round.
    pub(crate) a: Vec<f64>,
    /// B's values, one per round.
    pub(crate) b: Vec<f64>,
    /// B/A per round: median, min, max.
    pub(crate) ratio: Spread,
    /// Bootstrap interval of the median ratio.
    pub(crate) ci: (f64, f64),
    /// Two-sided exact sign-test p-value of "B/A is as often above 1 as below".
    pub(crate) p_value: f64,
    /// The conclusion.
    pub(crate) verdict: Verdict,
}

/// The two-sided exact sign test: p-value of seeing this many ratios on one side of 1 (ties
/// dropped) if above and below were equally likely.
pub(crate) fn sign_test(ratios: &[f64]) -> f64 {
    let above = ratios.iter().filter(|r| **r > 1.0).count() as u64;
    let below = ratios.iter().filter(|r| **r < 1.0).count() as u64;
    let n = above + below;
    if n == 0 {
        return 1.0;
    }
    let k = above.min(below);
    // P(X ≤ k) for X ~ Binomial(n, 1/2), built term by term: C(n, i) / 2^n.
    let mut term = 0.5f64.powi(n as i32);
    let mut tail = 0.0;
    for i in 0..=k {
        tail += term;
        term *= (n - i) as f64 / (i + 1) as f64;
    }
    (2.0 * tail).min(1.0)
}

/// Compares paired rounds: ratio_i = b_i ÷ a_i. Regression when the median ratio is worse than
/// `1 ± threshold`, the whole bootstrap interval lies on the worse side of 1 *and* the sign test
/// rejects "no change" at `confidence`; improvement likewise.
/// Rounds with a zero on either side are left out; `None` when none is left.
pub(crate) fn compare_rounds(
    metric: &str,
    better: Better,
    a: &[f64],
    b: &[f64],
    threshold: f64,
    confidence: f64,
) -> Option<RatioSummary> {
    let ratios: Vec<f64> = a
        .iter()
        .zip(b)
        // A zero on either side (a CPU reading below the clock tick, no loss) has no ratio.
        .filter(|(x, y)| **x != 0.0 && **y != 0.0)
        .map(|(x, y)| y / x)
        .collect();
    let ratio = spread(&ratios)?;
    let ci = bootstrap_median_ci(&ratios, confidence)?;
    let worse_up = match better {
        Better::Lower => Some(true),
        Better::Higher => Some(false),
        Better::Neither => None,
    };
    let p_value = sign_test(&ratios);
    let significant = p_value <= 1.0 - confidence;
    let up = significant && ratio.median > 1.0 + threshold && ci.0 > 1.0;
    let down = significant && ratio.median < 1.0 - threshold && ci.1 < 1.0;
    let verdict = match (worse_up, up, down) {
        (Some(true), true, _) | (Some(false), _, true) => Verdict::Regression,
        (Some(true), _, true) | (Some(false), true, _) => Verdict::Improvement,
        _ => Verdict::NoSignificantChange,
    };
    Some(RatioSummary {
        metric: metric.into(),
        better,
        a: a.to_vec(),
        b: b.to_vec(),
        ratio,
        ci,
        p_value,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spreads() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let s = spread(&[5.0, 1.0, 9.0]).expect("spread");
        assert_eq!((s.median, s.min, s.max), (5.0, 1.0, 9.0));
    }

    #[test]
    fn the_interval_holds_the_median_and_is_reproducible() {
        let v = [1.02, 0.97, 1.05, 0.99, 1.01, 1.10, 0.95, 1.00];
        let (lo, hi) = bootstrap_median_ci(&v, 0.95).expect("ci");
        let m = median(&v).expect("median");
        assert!(lo <= m && m <= hi, "{lo} {m} {hi}");
        assert!(lo >= 0.95 && hi <= 1.10);
        assert_eq!(bootstrap_median_ci(&v, 0.95), Some((lo, hi)), "seeded");
    }

    #[test]
    fn verdicts_follow_direction_threshold_and_noise() {
        let a = [100.0; 6];
        let slower = [80.0, 82.0, 79.0, 81.0, 80.0, 83.0];
        let r = compare_rounds(
            "deliveries_per_sec",
            Better::Higher,
            &a,
            &slower,
            0.05,
            0.95,
        )
        .expect("summary");
        assert_eq!(r.verdict, Verdict::Regression);
        assert!((r.ratio.median - 0.805).abs() < 1e-9);
        let r = compare_rounds("p99_ms", Better::Lower, &a, &slower, 0.05, 0.95).expect("s");
        assert_eq!(r.verdict, Verdict::Improvement, "lower latency is better");
        // Noise around 1: ±15 % swings both ways.
        let noisy = [85.0, 115.0, 95.0, 108.0, 90.0, 112.0];
        let r = compare_rounds("deliveries_per_sec", Better::Higher, &a, &noisy, 0.05, 0.95)
            .expect("s");
        assert_eq!(r.verdict, Verdict::NoSignificantChange);
        // A consistent 2 % change is below a 5 % threshold.
        let slight = [98.0; 6];
        let r = compare_rounds(
            "deliveries_per_sec",
            Better::Higher,
            &a,
            &slight,
            0.05,
            0.95,
        )
        .expect("s");
        assert_eq!(r.verdict, Verdict::NoSignificantChange);
        assert!(compare_rounds("x", Better::Higher, &[0.0], &[1.0], 0.05, 0.95).is_none());
        // Three rounds all one way is chance one time in four: never significant.
        let r = compare_rounds(
            "deliveries_per_sec",
            Better::Higher,
            &a[..3],
            &slower[..3],
            0.05,
            0.95,
        )
        .expect("s");
        assert_eq!((r.p_value, r.verdict), (0.25, Verdict::NoSignificantChange));
    }

    #[test]
    fn sign_test_p_values() {
        assert_eq!(sign_test(&[0.9; 6]), 2.0 / 64.0);
        assert_eq!(sign_test(&[1.1, 0.9]), 1.0);
        // 5 of 6 above: 2 × (1 + 6) / 64.
        assert!((sign_test(&[1.1, 1.2, 1.1, 1.3, 1.1, 0.9]) - 14.0 / 64.0).abs() < 1e-12);
        assert_eq!(sign_test(&[1.0, 1.0]), 1.0, "ties say nothing");
    }
}
