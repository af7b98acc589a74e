//! CPU-time readings: the whole process (getrusage) and its io_uring kernel threads (/proc).

use std::fs;
use std::io;
use std::time::Duration;

/// User and system CPU time of the whole thread group, exited threads included.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User time.
    pub user: Duration,
    /// System time.
    pub sys: Duration,
    /// Context switches, voluntary and involuntary: on loopback a send wakes the receiver, and
    /// where the scheduler runs it decides how often the sender is switched out.
    pub csw: u64,
}

impl Usage {
    /// This process now. getrusage(RUSAGE_SELF) sums every thread of the group, and io_uring's
    /// io-wq workers (`iou-wrk-*`) and SQPOLL thread (`iou-sqp-*`) are threads of the group
    /// (kernel `create_io_thread`), so their CPU is in here too; [`io_threads`] shows how much.
    pub fn now() -> io::Result<Usage> {
        let mut ru = libc::rusage {
            ru_utime: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            ru_stime: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            ru_maxrss: 0,
            ru_ixrss: 0,
            ru_idrss: 0,
            ru_isrss: 0,
            ru_minflt: 0,
            ru_majflt: 0,
            ru_nswap: 0,
            ru_inblock: 0,
            ru_oublock: 0,
            ru_msgsnd: 0,
            ru_msgrcv: 0,
            ru_nsignals: 0,
            ru_nvcsw: 0,
            ru_nivcsw: 0,
        };
        // SAFETY: `ru` is a valid, writable `rusage` for the duration of the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Usage {
            user: timeval(ru.ru_utime),
            sys: timeval(ru.ru_stime),
            csw: u64::try_from(ru.ru_nvcsw + ru.ru_nivcsw).unwrap_or(0),
        })
    }

    /// Time spent since `earlier`.
    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            user: self.user.saturating_sub(earlier.user),
            sys: self.sys.saturating_sub(earlier.sys),
            csw: self.csw.saturating_sub(earlier.csw),
        }
    }

    /// User plus system.
    pub fn total(self) -> Duration {
        self.user + self.sys
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

/// Live io_uring kernel threads of this process: how many, and their CPU so far (utime + stime
/// from /proc, in clock ticks of 10 ms). Exited io-wq workers are no longer listed, but their time
/// stays in [`Usage::now`].
pub fn io_threads() -> (usize, Duration) {
    let mut count = 0;
    let mut ticks = 0u64;
    let Ok(dir) = fs::read_dir("/proc/self/task") else {
        return (0, Duration::ZERO);
    };
    for task in dir.flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ppid ..." — comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with("iou-") {
            continue;
        }
        count += 1;
        // Fields after ')': state is field 3, utime field 14, stime field 15.
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    (count, Duration::from_millis(ticks * 10))
}

/// The 1-minute load average, for the record of how busy the box was.
pub fn loadavg() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(-1.0)
}

/// The kernel's softirq threads (`ksoftirqd/N`). Loopback TCP runs the receive side of a send in
/// softirq context, inline in the sending syscall — unless the kernel defers it to these threads
/// under load, which would move CPU out of the sender's account; so runs count them too.
pub struct Softirqd {
    pids: Vec<u32>,
}

impl Softirqd {
    /// Finds the threads (a scan of /proc, done once before a window opens).
    pub fn find() -> Softirqd {
        let mut pids = Vec::new();
        if let Ok(dir) = fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                if comm.starts_with("ksoftirqd/") {
                    pids.push(pid);
                }
            }
        }
        Softirqd { pids }
    }

    /// Their CPU time so far (schedstat: nanoseconds, exact), over all CPUs.
    pub fn runtime(&self) -> Duration {
        let ns: u64 = self
            .pids
            .iter()
            .filter_map(|p| fs::read_to_string(format!("/proc/{p}/schedstat")).ok())
            .filter_map(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .sum();
        Duration::from_nanos(ns)
    }
}
