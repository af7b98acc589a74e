//! The publish trace (`--trace-publishes FILE`): one JSON line per event published through this
//! process, for the load tester to replay a real traffic shape (`loadtest --model replay`).
//!
//! # Format
//! One object per line, in publish order:
//!
//! ```text
//! {"t_us":1765100000123456,"group":"user_42","type":"new_message","bytes":57}
//! ```
//!
//! `t_us`: Unix time in microseconds when the event was accepted; `group`: the Channels group;
//! `type`: the frame type clients get; `bytes`: the size of its `data` JSON. Never the content,
//! never a token.
//!
//! # Safe to leave on
//! - Sampled by group (`--trace-sample`, by CRC-32 of the name, the same in every process): a
//!   sampled user keeps all of its events, so per-user order and fan-out survive sampling.
//! - Written by its own task through a bounded queue: a publish never waits for the disk; a full
//!   queue drops lines and counts them (`courier_trace_dropped_total`).
//! - Rotated at `--trace-max-bytes`: the file becomes `FILE.1` (replacing an older one) and a new
//!   file starts, so at most twice the bound is on disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::layer::GroupName;
use crate::metrics::Metrics;

/// Lines queued for the writer at most; past it lines are dropped (and counted).
const QUEUE_LINES: usize = 65_536;
/// How often the writer flushes what it has written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where and how much to trace.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// The JSONL file (appended to; rotated to `<path>.1`).
    pub path: PathBuf,
    /// Fraction of groups traced, 0 < sample ≤ 1.
    pub sample: f64,
    /// Size at which the file is rotated.
    pub max_bytes: u64,
}

/// One traced event.
#[derive(Debug, Serialize)]
struct Line {
    t_us: u64,
    group: String,
    r#type: String,
    bytes: usize,
}

/// The trace: the publish side's queue and the writer's end of it.
pub(crate) struct Trace {
    config: TraceConfig,
    /// Groups with `crc32(name) < threshold` are traced.
    threshold: u64,
    tx: mpsc::Sender<Line>,
    /// Taken once by the writer task.
    rx: Mutex<Option<mpsc::Receiver<Line>>>,
}

impl Trace {
    /// A trace per `config` (nothing is opened until the writer runs).
    pub(crate) fn new(config: TraceConfig) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_LINES);
        let threshold = (config.sample.clamp(0.0, 1.0) * f64::from(u32::MAX)) as u64 + 1;
        Self {
            config,
            threshold,
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Whether `group` is in the sample.
    pub(crate) fn sampled(&self, group: &GroupName) -> bool {
        u64::from(crate::layer::redis::wire::crc32(group.as_str().as_bytes())) < self.threshold
    }

    /// Records one published event (if its group is sampled), without waiting.
    pub(crate) fn record(&self, group: &GroupName, kind: &str, bytes: usize, metrics: &Metrics) {
        if !self.sampled(group) {
            return;
        }
        let t_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let line = Line {
            t_us,
            group: group.as_str().to_owned(),
            r#type: kind.to_owned(),
            bytes,
        };
        if self.tx.try_send(line).is_err() {
            metrics.trace_dropped.inc();
        }
    }

    /// Writes queued lines to the file until `stop`, then what is left; flushes every second.
    /// A write error is logged and the line dropped (counted); the file is opened again.
    pub(crate) async fn write(&self, stop: CancellationToken, metrics: &Metrics) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let mut out = Output::new(&self.config);
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(line) => out.write(&line, metrics),
                    None => break,
                },
                _ = flush.tick() => out.flush(),
                _ = stop.cancelled() => break,
            }
        }
        while let Ok(line) = rx.try_recv() {
            out.write(&line, metrics);
        }
        out.flush();
    }
}

/// The open trace file and its rotation.
struct Output<'a> {
    config: &'a TraceConfig,
    file: Option<std::io::BufWriter<std::fs::File>>,
    written: u64,
}

impl<'a> Output<'a> {
    fn new(config: &'a TraceConfig) -> Self {
        Self {
            config,
            file: None,
            written: 0,
        }
    }

    fn open(path: &Path) -> std::io::Result<(std::io::BufWriter<std::fs::File>, u64)> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok((std::io::BufWriter::new(file), len))
    }

    fn write(&mut self, line: &Line, metrics: &Metrics) {
        let mut text = serde_json::to_vec(line).unwrap_or_default();
        text.push(b'\n');
        if self.file.is_some() && self.written + text.len() as u64 > self.config.max_bytes {
            self.rotate();
        }
        if self.file.is_none() {
            match Self::open(&self.config.path) {
                Ok((file, len)) => (self.file, self.written) = (Some(file), len),
                Err(e) => {
                    tracing::warn!(path = %self.config.path.display(), error = %e, "cannot open the publish trace");
                    metrics.trace_dropped.inc();
                    return;
                }
            }
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        match file.write_all(&text) {
            Ok(()) => {
                self.written += text.len() as u64;
                metrics.trace_lines.inc();
            }
            Err(e) => {
                tracing::warn!(error = %e, "publish trace write failed; reopening");
                metrics.trace_dropped.inc();
                self.file = None;
            }
        }
    }

    /// `FILE` → `FILE.1`, and a new `FILE` on the next write.
    fn rotate(&mut self) {
        self.flush();
        self.file = None;
        let mut old = self.config.path.clone().into_os_string();
        old.push(".1");
        if let Err(e) = std::fs::rename(&self.config.path, &old) {
            tracing::warn!(error = %e, "publish trace rotation failed");
        }
        self.written = 0;
    }

    fn flush(&mut self) {
        if let Some(Err(e)) = self.file.as_mut().map(std::io::Write::flush) {
            tracing::warn!(error = %e, "publish trace flush failed");
        }
    }
}

/// Counts the bytes a value serializes to, without keeping them.
#[derive(Default)]
pub(crate) struct ByteCount(pub(crate) usize);

impl Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_by_group_and_the_same_everywhere() {
        let cfg = |sample| TraceConfig {
            path: PathBuf::from("/nonexistent"),
            sample,
            max_bytes: 1,
        };
        let groups: Vec<GroupName> = (0..10_000)
            .map(|i| GroupName::new(&format!("user_{i}")).unwrap())
            .collect();
        let all = Trace::new(cfg(1.0));
        assert!(groups.iter().all(|g| all.sampled(g)));
        let tenth = Trace::new(cfg(0.1));
        let n = groups.iter().filter(|g| tenth.sampled(g)).count();
        assert!((800..1200).contains(&n), "{n} of 10k sampled at 0.1");
        let again = Trace::new(cfg(0.1));
        assert!(groups.iter().all(|g| tenth.sampled(g) == again.sampled(g)));
    }
}
