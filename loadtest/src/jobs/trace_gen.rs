//! `loadtest trace-gen`: a synthetic publish trace in courier's `--trace-publishes` format — a
//! diurnal curve plus a push spike — for `--model replay` when no recorded trace is at hand (and
//! the source of `scenarios/sample-trace.jsonl`, which its test regenerates byte for byte).
//!
//! # Shape
//! - **Diurnal curve**: second `s` of a `D`-second "day" has `mean·(1 − A·cos(2π·s/D))` events on
//!   average (trough at the start and end, peak at midday), drawn as whole events with the
//!   fraction decided by the generator, at uniform times inside the second. Each goes to a user
//!   drawn with a square-law skew (user index `⌊N·r²⌋`: a few heavy users get most events), with
//!   the reference app's types: 80 % `new_message` (80–480 bytes, most short), 13 %
//!   `friend_request` (140–180), 7 % `friend_accepted` (110–130).
//! - **Push spike**: from `--spike-at` for `--spike-length`, one `new_message` of 100–140 bytes to
//!   each of a `--spike-users` fraction of the users (distinct users, uniform times).
//!
//! The random numbers come from SplitMix64, written out here, so a seed gives the same file on
//! every machine and every version of every dependency.

use std::io::Write;
use std::time::Duration;

use crate::cli::TraceGenOpts;
use crate::error::{usage, Result, EXIT_PASS};

/// The trace's first instant: 2026-12-07 00:00:00 UTC, unix µs (any fixed value would do; a
/// replay only uses offsets).
const EPOCH_US: u64 = 1_796_601_600_000_000;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..lo + span`.
    fn between(&mut self, lo: u64, span: u64) -> u64 {
        lo + (self.unit() * span as f64) as u64
    }
}

/// One generated event: offset µs, user number (from 1), type, `data` bytes.
type GenEvent = (u64, u32, &'static str, u64);

/// The checked shape.
struct Shape {
    users: u32,
    seconds: u64,
    mean: f64,
    amplitude: f64,
    spike_at_us: u64,
    spike_us: u64,
    spike_users: u32,
    seed: u64,
}

impl Shape {
    fn resolve(o: &TraceGenOpts) -> Result<Self> {
        let dur = |name: &str, text: &str| -> Result<Duration> {
            humantime::parse_duration(text).map_err(|e| usage(format!("--{name} {text:?}: {e}")))
        };
        let day = dur("duration", &o.duration)?;
        let spike_at = dur("spike-at", &o.spike_at)?;
        let spike_length = dur("spike-length", &o.spike_length)?;
        if o.users == 0 || day.as_secs() == 0 {
            return Err(usage(
                "--users and --duration (whole seconds) must be at least 1",
            ));
        }
        let rate_ok = o.mean_rate > 0.0 && o.mean_rate <= 1e6;
        if !rate_ok || !(0.0..1.0).contains(&o.amplitude) {
            return Err(usage(
                "--mean-rate must be in (0, 1e6], --amplitude in [0, 1)",
            ));
        }
        if !(0.0..=1.0).contains(&o.spike_users) || spike_at + spike_length > day {
            return Err(usage(
                "--spike-users must be in [0, 1] and the spike must end within --duration",
            ));
        }
        Ok(Self {
            users: o.users,
            seconds: day.as_secs(),
            mean: o.mean_rate,
            amplitude: o.amplitude,
            spike_at_us: spike_at.as_micros() as u64,
            spike_us: (spike_length.as_micros() as u64).max(1),
            spike_users: (f64::from(o.users) * o.spike_users).round() as u32,
            seed: o.seed,
        })
    }

    /// Every event, by time.
    fn events(&self) -> Vec<GenEvent> {
        let mut rng = SplitMix(self.seed);
        let mut out = Vec::new();
        let day = self.seconds as f64;
        for s in 0..self.seconds {
            let phase = std::f64::consts::TAU * (s as f64 + 0.5) / day;
            let lambda = self.mean * (1.0 - self.amplitude * phase.cos());
            let n = lambda.floor() as u64 + u64::from(rng.unit() < lambda.fract());
            for _ in 0..n {
                let at = s * 1_000_000 + rng.between(0, 1_000_000);
                let r = rng.unit();
                let user = (f64::from(self.users) * r * r) as u32 + 1;
                let pick = rng.unit();
                let (kind, bytes) = if pick < 0.80 {
                    let r = rng.unit();
                    ("new_message", 80 + (400.0 * r * r * r) as u64)
                } else if pick < 0.93 {
                    ("friend_request", rng.between(140, 41))
                } else {
                    ("friend_accepted", rng.between(110, 21))
                };
                out.push((at, user, kind, bytes));
            }
        }
        // The push: distinct users (a partial Fisher–Yates shuffle), one event each.
        let mut users: Vec<u32> = (1..=self.users).collect();
        for i in 0..self.spike_users as usize {
            let j = i + (rng.unit() * (users.len() - i) as f64) as usize;
            users.swap(i, j);
            let at = self.spike_at_us + rng.between(0, self.spike_us);
            out.push((at, users[i], "new_message", rng.between(100, 41)));
        }
        out.sort_by_key(|e| e.0);
        out
    }
}

/// Writes `events` as courier writes its trace (same keys, same order).
fn write_jsonl(events: &[GenEvent], out: &mut impl Write) -> std::io::Result<()> {
    for (at, user, kind, bytes) in events {
        writeln!(
            out,
            r#"{{"t_us":{},"group":"user_{user}","type":"{kind}","bytes":{bytes}}}"#,
            EPOCH_US + at
        )?;
    }
    Ok(())
}

/// `loadtest trace-gen`: writes the trace, says what it wrote.
pub(crate) async fn run(o: &TraceGenOpts) -> anyhow::Result<u8> {
    write(o)
}

/// [`run`]'s work (a small file: written in place, not on a blocking thread).
fn write(o: &TraceGenOpts) -> anyhow::Result<u8> {
    let shape = Shape::resolve(o)?;
    let events = shape.events();
    let file =
        std::fs::File::create(&o.out).map_err(|e| usage(format!("{}: {e}", o.out.display())))?;
    let mut file = std::io::BufWriter::new(file);
    write_jsonl(&events, &mut file)
        .and_then(|()| file.flush())
        .map_err(|e| usage(format!("{}: {e}", o.out.display())))?;
    eprintln!(
        "wrote {} events of {} users over {} s to {}",
        events.len(),
        shape.users,
        shape.seconds,
        o.out.display()
    );
    Ok(EXIT_PASS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Command, Opts};
    use crate::plan::Trace;

    /// `loadtest trace-gen --out OUT` with `extra` flags, parsed as the binary parses them.
    fn opts(out: &std::path::Path, extra: &[&str]) -> TraceGenOpts {
        let mut argv = vec![
            "loadtest",
            "trace-gen",
            "--out",
            out.to_str().expect("utf-8"),
        ];
        argv.extend_from_slice(extra);
        match Opts::parse_from(argv).command {
            Some(Command::TraceGen(o)) => o,
            other => panic!("not trace-gen: {other:?}"),
        }
    }

    #[test]
    fn the_default_trace_has_a_diurnal_curve_a_push_spike_and_parses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("t.jsonl");
        assert_eq!(write(&opts(&out, &[])).expect("generated"), EXIT_PASS);
        let t = Trace::load(std::slice::from_ref(&out)).expect("the generator's output parses");
        // Seconds of the generator's day (a replay's offsets start at the first event instead).
        let mut per_sec = vec![0u64; 90];
        for line in std::fs::read_to_string(&out).expect("read").lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let t_us = v["t_us"].as_u64().expect("t_us");
            per_sec[((t_us - EPOCH_US) / 1_000_000) as usize] += 1;
        }
        // Mean 12/s over 90 s, plus 200 pushes.
        let n = t.events.len() as f64;
        assert!((900.0..1400.0).contains(&(n - 200.0)), "{n} events");
        assert_eq!(t.skipped, 0);
        assert!(t.per_user.len() <= 200);
        // Diurnal: midday (seconds 35..55) well above the night (the first and last 10 s).
        let mean = |r: std::ops::Range<usize>| {
            per_sec[r.clone()].iter().sum::<u64>() as f64 / r.len() as f64
        };
        let (night, midday) = ((mean(0..10) + mean(80..90)) / 2.0, mean(35..55));
        assert!(midday > 3.0 * night, "night {night}/s, midday {midday}/s");
        // The spike: seconds 60 and 61 carry the push, far above any other second.
        let others = per_sec
            .iter()
            .enumerate()
            .filter(|(s, _)| !(60..62).contains(s))
            .map(|(_, c)| *c)
            .max()
            .unwrap_or(0);
        assert!(
            per_sec[60] > 3 * others && per_sec[61] > 3 * others,
            "{per_sec:?}"
        );
        assert!(t
            .kinds
            .iter()
            .all(|k| ["new_message", "friend_request", "friend_accepted"].contains(&k.as_str())));
    }

    #[test]
    fn a_seed_gives_the_same_file_and_the_sample_is_the_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gen = |name: &str, extra: &[&str]| {
            let out = dir.path().join(name);
            write(&opts(&out, extra)).expect("generated");
            std::fs::read(&out).expect("read")
        };
        let a = gen("a", &[]);
        assert_eq!(a, gen("b", &["--seed", "1"]), "deterministic");
        assert_ne!(a, gen("c", &["--seed", "2"]), "the seed matters");
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/sample-trace.jsonl");
        let committed = std::fs::read(sample).expect("scenarios/sample-trace.jsonl");
        assert!(
            a == committed,
            "the sample is `loadtest trace-gen` with the default flags"
        );
    }

    #[test]
    fn a_bad_shape_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("t");
        for bad in [
            &["--users", "0"][..],
            &["--amplitude", "1.5"],
            &["--spike-at", "89s"],
            &["--duration", "soon"],
        ] {
            assert!(write(&opts(&out, bad)).is_err(), "{bad:?}");
        }
    }
}
