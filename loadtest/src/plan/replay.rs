//! `--model replay --trace FILE`: courier's publish trace (`--trace-publishes`, JSONL) read into a
//! schedule the publisher lanes replay, and the rule that maps trace users onto the run's users.
//!
//! # Reading
//! Each line is `{"t_us":…,"group":"user_42","type":"new_message","bytes":57}` (courier's
//! `src/trace.rs`; other keys are ignored). Several files (a rotated pair `FILE.1 FILE`, or the
//! traces of several couriers) are read in the order given and merged by time, a stable sort, so
//! events of one file with equal times keep their order. Times become offsets from the first event.
//! A file over [`MAX_TRACE_BYTES`], more than [`MAX_TRACE_EVENTS`] events, a malformed line (named
//! by file and line number), an event over [`MAX_EVENT_BYTES`] or a type that would need JSON
//! escaping is refused before anything connects.
//!
//! Only `user_{id}` groups are replayed (the tester's clients are users); events of other groups
//! are skipped and counted ([`Trace::skipped`]), and the run says how many.
//!
//! # Mapping
//! Trace users are numbered by first appearance (0, 1, …) and trace user `t` becomes run user
//! index `t % users`: deterministic, and every run user gets a trace user when the trace has at
//! least as many. A trace with more users than the run folds several onto one run user; each
//! keeps its own order, and the run user's stream is their merge by time (its sequence numbers
//! follow that merge). The per-user fan-out is the run's connections per user: every connection
//! of the mapped user gets every event.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{usage, Result};

/// Largest trace file read: 256 MiB (about 3.5 million lines of courier's format).
pub const MAX_TRACE_BYTES: u64 = 256 * 1024 * 1024;
/// Most events replayed from all files together: 24 bytes each once read (96 MiB at the bound),
/// 32 while the files are merged.
pub const MAX_TRACE_EVENTS: usize = 4_000_000;
/// Largest recorded event `data` replayed: courier's default `--max-body-bytes` (1 MiB).
pub const MAX_EVENT_BYTES: u64 = 1024 * 1024;
/// Default `--replay-speed`: the trace's own pace.
pub const DEFAULT_REPLAY_SPEED: f64 = 1.0;
/// Slowest `--replay-speed` (and the floor of a `--find-max speed` search): a thousandth.
pub const MIN_REPLAY_SPEED: f64 = 0.001;

/// One replayed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEvent {
    /// Offset from the trace's first event, µs.
    pub at_us: u64,
    /// Trace user, numbered by first appearance.
    pub user: u32,
    /// Index into [`Trace::kinds`].
    pub kind: u16,
    /// Size of the recorded event's `data`, bytes.
    pub bytes: u32,
}

/// A trace, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The files, as given.
    pub files: Vec<PathBuf>,
    /// Events of `user_{id}` groups, by time.
    pub events: Vec<TraceEvent>,
    /// Event types, each once, in order of first appearance.
    pub kinds: Vec<String>,
    /// Events per trace user.
    pub per_user: Vec<u64>,
    /// Events of other groups, not replayed.
    pub skipped: u64,
}

/// A line of courier's trace format.
#[derive(Deserialize)]
struct Line<'a> {
    t_us: u64,
    #[serde(borrow)]
    group: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    bytes: u64,
}

/// Trace users and types seen so far while reading.
#[derive(Default)]
struct Names {
    users: std::collections::HashMap<String, u32>,
    kinds: std::collections::HashMap<String, u16>,
    kind_list: Vec<String>,
}

impl Trace {
    /// Reads `files` (in order) into one trace, merged by time; see the module docs for the
    /// bounds and what is refused.
    pub fn load(files: &[PathBuf]) -> Result<Self> {
        if files.is_empty() {
            return Err(usage("--model replay needs a trace (--trace FILE)"));
        }
        let mut names = Names::default();
        // (t_us, file order, event) until the sort; the user's number is final already.
        let mut raw: Vec<(u64, TraceEvent)> = Vec::new();
        let mut skipped = 0;
        for path in files {
            skipped += read_file(path, &mut names, &mut raw)?;
        }
        if raw.is_empty() {
            return Err(usage(format!(
                "trace {}: no event of a user_{{id}} group to replay ({skipped} of other groups)",
                show(files)
            )));
        }
        raw.sort_by_key(|(t, _)| *t);
        let first = raw[0].0;
        let mut per_user = vec![0; names.users.len()];
        let events = raw
            .into_iter()
            .map(|(t, e)| {
                per_user[e.user as usize] += 1;
                TraceEvent {
                    at_us: t - first,
                    ..e
                }
            })
            .collect();
        Ok(Self {
            files: files.to_vec(),
            events,
            kinds: names.kind_list,
            per_user,
            skipped,
        })
    }

    /// From the first event to the last.
    pub fn span(&self) -> Duration {
        Duration::from_micros(self.events.last().map_or(0, |e| e.at_us))
    }

    /// The run user index trace user `user` replays as, among `users`.
    pub fn run_user(user: u32, users: usize) -> usize {
        user as usize % users.max(1)
    }

    /// Events run user index `u` gets among `users`: those of every trace user mapped onto it.
    pub fn events_for(&self, u: usize, users: usize) -> u64 {
        self.per_user.iter().skip(u).step_by(users.max(1)).sum()
    }

    /// The most events in any one second of the trace (its peak rate, events/s).
    pub fn peak_per_sec(&self) -> u64 {
        let mut best = 0;
        let mut from = 0;
        for (i, e) in self.events.iter().enumerate() {
            while self.events[from].at_us + 1_000_000 <= e.at_us {
                from += 1;
            }
            best = best.max(i + 1 - from);
        }
        best as u64
    }

    /// The largest recorded `data`, bytes.
    pub fn max_bytes(&self) -> usize {
        self.events
            .iter()
            .map(|e| e.bytes as usize)
            .max()
            .unwrap_or(0)
    }

    /// Events per whole second of the trace's own time (second `k` holds offsets in
    /// `[k s, (k+1) s)`).
    pub fn per_second(&self) -> Vec<u64> {
        let mut out = vec![0; (self.span().as_secs() + 1) as usize];
        for e in &self.events {
            out[(e.at_us / 1_000_000) as usize] += 1;
        }
        out
    }
}

/// The files for messages: `a, b`.
fn show(files: &[PathBuf]) -> String {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    names.join(", ")
}

/// Reads one file's lines into `raw`; returns how many events of other groups it skipped.
fn read_file(path: &Path, names: &mut Names, raw: &mut Vec<(u64, TraceEvent)>) -> Result<u64> {
    let shown = path.display();
    let open_error = |e: std::io::Error| usage(format!("trace {shown}: {e}"));
    let file = std::fs::File::open(path).map_err(open_error)?;
    let len = file.metadata().map_err(open_error)?.len();
    if len > MAX_TRACE_BYTES {
        return Err(usage(format!(
            "trace {shown}: {len} bytes, over the {MAX_TRACE_BYTES}-byte bound; replay a part \
             (e.g. `head -n N`) or a sampled trace (courier --trace-sample)"
        )));
    }
    let mut skipped = 0;
    let mut text = String::new();
    let mut reader = std::io::BufReader::new(file);
    for n in 1.. {
        text.clear();
        if reader
            .read_line(&mut text)
            .map_err(|e| usage(format!("trace {shown}:{n}: {e}")))?
            == 0
        {
            break;
        }
        let line = text.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |msg: String| usage(format!("trace {shown}:{n}: {msg}"));
        let l: Line<'_> = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if l.bytes > MAX_EVENT_BYTES {
            return Err(bad(format!(
                "bytes {} is over the {MAX_EVENT_BYTES}-byte bound of one event",
                l.bytes
            )));
        }
        if l.kind.is_empty()
            || l.kind
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(bad(format!(
                "type {:?}: empty, or a character that needs JSON escaping",
                l.kind
            )));
        }
        let Some(id) = l.group.strip_prefix("user_").filter(|id| !id.is_empty()) else {
            skipped += 1;
            continue;
        };
        if raw.len() == MAX_TRACE_EVENTS {
            return Err(bad(format!(
                "more than {MAX_TRACE_EVENTS} events; replay a part or a sampled trace"
            )));
        }
        let next = names.users.len() as u32;
        let user = *names.users.entry(id.to_owned()).or_insert(next);
        let kind = match names.kinds.get(l.kind.as_ref()) {
            Some(&k) => k,
            None => {
                let k = u16::try_from(names.kind_list.len())
                    .map_err(|_| bad("more than 65536 event types".into()))?;
                names.kinds.insert(l.kind.to_string(), k);
                names.kind_list.push(l.kind.to_string());
                k
            }
        };
        raw.push((
            l.t_us,
            TraceEvent {
                at_us: 0,
                user,
                kind,
                bytes: l.bytes as u32,
            },
        ));
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn line(t: u64, group: &str, kind: &str, bytes: u64) -> String {
        format!("{{\"t_us\":{t},\"group\":\"{group}\",\"type\":\"{kind}\",\"bytes\":{bytes}}}\n")
    }

    #[test]
    fn a_rotated_pair_merges_by_time_and_maps_users_by_first_appearance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = [
            line(1_000_000, "user_7", "a", 10),
            line(1_500_000, "room_1", "a", 10),
            line(2_000_000, "user_3", "b", 20),
        ]
        .concat();
        let new = [
            line(2_000_000, "user_7", "a", 30),
            "\n".into(),
            line(3_200_000, "user_9", "c", 40),
        ]
        .concat();
        let files = [write(dir.path(), "t.1", &old), write(dir.path(), "t", &new)];
        let t = Trace::load(&files).expect("valid");
        let at: Vec<(u64, u32, u16, u32)> = t
            .events
            .iter()
            .map(|e| (e.at_us, e.user, e.kind, e.bytes))
            .collect();
        // Equal times keep the files' order: user_3 (file 1) before user_7's second (file 2).
        assert_eq!(
            at,
            [
                (0, 0, 0, 10),
                (1_000_000, 1, 1, 20),
                (1_000_000, 0, 0, 30),
                (2_200_000, 2, 2, 40)
            ]
        );
        assert_eq!(t.kinds, ["a", "b", "c"]);
        assert_eq!(t.per_user, [2, 1, 1]);
        assert_eq!(t.skipped, 1);
        assert_eq!(t.per_second(), [1, 2, 1]);
        assert_eq!(t.peak_per_sec(), 2);
        // Two run users: trace users 0 and 2 fold onto run user 0.
        assert_eq!((t.events_for(0, 2), t.events_for(1, 2)), (3, 1));
        assert_eq!(Trace::run_user(2, 2), 0);
    }

    #[test]
    fn bad_traces_are_refused_with_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let load = |text: &str| {
            let p = write(dir.path(), "bad.jsonl", text);
            Trace::load(&[p]).expect_err("refused").to_string()
        };
        let good = line(1, "user_1", "a", 1);
        let e = load(&format!("{good}{{\"t_us\":2,\"group\":\"user_1\"\n"));
        assert!(e.contains("bad.jsonl:2:"), "{e}");
        let e = load(&format!("{good}{good}{}", line(3, "user_1", "a", 2 << 20)));
        assert!(e.contains("bad.jsonl:3:") && e.contains("bound"), "{e}");
        let e = load(&format!("{good}{}", line(3, "user_1", "a\\\"b", 1)));
        assert!(e.contains("bad.jsonl:2:") && e.contains("escaping"), "{e}");
        let e = load(&format!(
            "{good}{}",
            "{\"t_us\":-1,\"group\":\"user_1\",\"type\":\"a\",\"bytes\":1}"
        ));
        assert!(e.contains("bad.jsonl:2:"), "{e}");
        let e = load(&line(1, "room_1", "a", 1));
        assert!(e.contains("no event of a user_{id} group"), "{e}");
        let e = Trace::load(&[dir.path().join("missing")])
            .expect_err("missing")
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
