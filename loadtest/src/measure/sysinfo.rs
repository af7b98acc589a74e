//! CPU time and memory from `/proc`: the tester's own CPU (by thread) and the server's RSS/CPU.

use std::time::Duration;

/// Thread-name prefix of the embedded server's runtime threads (excluded from the tester's CPU).
pub(crate) const SERVER_THREAD: &str = "courier-srv";

/// CPU time of this process's threads, split by whether they belong to the embedded server.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuSplit {
    /// Tester threads (clients, publisher over HTTP, reports).
    pub(crate) tester: Duration,
    /// Embedded server threads (server tasks and the in-process publisher).
    pub(crate) server: Duration,
}

/// The CPU time of every live thread at one instant, by thread id.
///
/// Differences are taken per thread ([`CpuSample::since`]), not between process-wide sums: a
/// thread that exits in between (a blocking-pool thread, or another test's runtime when tests
/// share the process) would otherwise take its whole CPU time out of the later sum.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuSample {
    /// (thread id, CPU ns, is an embedded server thread).
    threads: Vec<(u32, u64, bool)>,
}

impl std::ops::Add for CpuSplit {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            tester: self.tester + o.tester,
            server: self.server + o.server,
        }
    }
}

impl CpuSample {
    /// The CPU each kind of thread used from the first sample to the last of `chain`, summed
    /// interval by interval: a thread that exits counts up to the last sample it was alive in,
    /// so each interval's figure is part of the total.
    pub(crate) fn across(chain: &[&CpuSample]) -> CpuSplit {
        chain
            .windows(2)
            .map(|w| w[1].since(w[0]))
            .fold(CpuSplit::default(), |a, b| a + b)
    }

    /// The CPU each kind of thread used between `earlier` and this sample (threads started in
    /// between count from zero; threads that exited in between are not counted).
    pub(crate) fn since(&self, earlier: &CpuSample) -> CpuSplit {
        let mut split = CpuSplit::default();
        for &(tid, ns, server) in &self.threads {
            let before = earlier
                .threads
                .iter()
                .find(|t| t.0 == tid)
                .map_or(0, |t| t.1);
            let d = Duration::from_nanos(ns.saturating_sub(before));
            if server {
                split.server += d;
            } else {
                split.tester += d;
            }
        }
        split
    }
}

/// Reads the CPU time of every live thread of this process (`/proc/self/task/*/schedstat`, ns).
pub(crate) fn cpu_sample() -> CpuSample {
    let mut sample = CpuSample::default();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return sample;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let path = entry.path();
        let Ok(stat) = std::fs::read_to_string(path.join("schedstat")) else {
            continue;
        };
        let Some(ns) = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        sample
            .threads
            .push((tid, ns, comm.starts_with(SERVER_THREAD)));
    }
    sample
}

/// CPU time (user + system) of another process, from `/proc/PID/stat` (clock ticks of 10 ms).
pub(crate) fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces: utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Resident set size of `pid` (`None`: this process), bytes.
pub(crate) fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_numbers() {
        assert!(rss_bytes(None).is_some_and(|b| b > 0));
        assert!(process_cpu(std::process::id()).is_some());
    }

    /// Spins until this thread has had `d` more CPU time (its own schedstat), bounded by 10 s of
    /// wall time: on a busy machine a wall-time spin may hold less CPU than the assertions need.
    fn spin_cpu(d: Duration) {
        let own_cpu = || {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(Duration::ZERO, Duration::from_nanos)
        };
        let (start, t) = (own_cpu(), std::time::Instant::now());
        while own_cpu() < start + d && t.elapsed() < Duration::from_secs(10) {
            std::hint::black_box(0u64);
        }
    }

    #[test]
    fn a_thread_that_exits_does_not_cancel_the_others() {
        let spin = spin_cpu;
        let helper = std::thread::spawn(move || {
            spin(Duration::from_millis(30));
            std::thread::sleep(Duration::from_millis(50));
        });
        std::thread::sleep(Duration::from_millis(40));
        let before = cpu_sample(); // the helper has ~30 ms of CPU here, then exits
        helper.join().expect("helper");
        spin(Duration::from_millis(20));
        let used = cpu_sample().since(&before);
        assert!(
            used.tester >= Duration::from_millis(10),
            "this thread's CPU is seen: {used:?}"
        );
        assert_eq!(used.server, Duration::ZERO);
    }

    #[test]
    fn a_phase_chain_holds_a_thread_that_exits_before_its_end() {
        let first = cpu_sample();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (spun_tx, spun_rx) = std::sync::mpsc::channel::<()>();
        let helper = std::thread::spawn(move || {
            spin_cpu(Duration::from_millis(30));
            let _ = spun_tx.send(());
            let _ = rx.recv();
        });
        spun_rx.recv().expect("helper spun");
        let middle = cpu_sample(); // the helper is alive here with ~30 ms of CPU
        drop(tx);
        helper.join().expect("helper");
        let last = cpu_sample();
        let window = middle.since(&first);
        let whole = CpuSample::across(&[&first, &middle, &last]);
        assert!(window.tester >= Duration::from_millis(20), "{window:?}");
        assert!(
            whole.tester >= window.tester,
            "the whole holds its part: {whole:?} vs {window:?}"
        );
    }
}
