//! CPU time and memory from `/proc`: the tester's own CPU (by thread) and the server's RSS/CPU.

use std::time::Duration;

/// Thread-name prefix of the embedded server's runtime threads (excluded from the tester's CPU).
pub const SERVER_THREAD: &str = "courier-srv";

/// CPU time of this process's threads, split by whether they belong to the embedded server.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    /// Tester threads (clients, publisher over HTTP, reports).
    pub tester: Duration,
    /// Embedded server threads (server tasks and the in-process publisher).
    pub server: Duration,
}

/// Reads the CPU time of every live thread of this process (`/proc/self/task/*/schedstat`, ns).
pub fn cpu_split() -> CpuSplit {
    let mut split = CpuSplit::default();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return split;
    };
    for entry in dir.flatten() {
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
        let t = Duration::from_nanos(ns);
        if comm.starts_with(SERVER_THREAD) {
            split.server += t;
        } else {
            split.tester += t;
        }
    }
    split
}

/// CPU time (user + system) of another process, from `/proc/PID/stat` (clock ticks of 10 ms).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces: utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Resident set size of `pid` (`None`: this process), bytes.
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
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
        let _ = cpu_split();
    }
}
