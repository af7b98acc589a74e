//! (c) io_uring: every send due in a tick is one SQE, and one `io_uring_enter` submits them all.
//!
//! Two sends to one socket in a tick are two SQEs with no ordering between them (no
//! `IO_LINK`): should one park on a full socket, the other may pass it. The receiver counts
//! bytes and parses nothing, so this costs nothing here; a courier integration would keep one
//! send in flight per socket (README, "What an integration would cost").

use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use super::{Outcome, Window};
use crate::pace::{Picker, Schedule};
use crate::Run;

/// Submission queue entries (the completion queue gets twice as many). A tick at 80k/s holds
/// ~80 sends and an unpaced round `--batch`; a fuller queue is submitted before it overflows.
const ENTRIES: u32 = 4096;
/// How long the end of a run waits for completions still in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// How the ring is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Defaults; SQEs name plain fds (a file-table lookup per send).
    Plain,
    /// Registered files (`types::Fixed`, no lookup) and SINGLE_ISSUER | DEFER_TASKRUN (the
    /// recommended setup for one thread owning the ring: completions run only when it asks).
    Fixed,
    /// Registered files and a kernel SQPOLL thread that picks up SQEs without a syscall; it spins
    /// for its idle time (1 s) after work, so at ≥ 1 tick/ms it never sleeps: a core's worth.
    Sqpoll,
}

/// Waits of 10 ms for a full queue to move before a run gives up.
const MAX_WAITS: u32 = 1000;
/// SQPOLL idle time before the kernel thread sleeps, ms.
const SQPOLL_IDLE_MS: u32 = 1000;

/// The ring and the sends it carries.
struct Ring {
    ring: IoUring,
    setup: Setup,
    fds: Vec<RawFd>,
    frame: &'static [u8],
    inflight: u64,
    /// Frames completed in full.
    sent: u64,
    syscalls: u64,
    retries: u64,
    errors: u64,
    /// Continuations of short sends, found while reaping, pushed after.
    again: Vec<(usize, usize)>,
}

impl Ring {
    fn new(socks: &[TcpStream], frame: &'static [u8], setup: Setup) -> Result<Ring, String> {
        let mut b = IoUring::builder();
        match setup {
            Setup::Plain => {}
            Setup::Fixed => {
                b.setup_single_issuer().setup_defer_taskrun();
            }
            Setup::Sqpoll => {
                b.setup_sqpoll(SQPOLL_IDLE_MS);
            }
        }
        let ring = b
            .build(ENTRIES)
            .map_err(|e| format!("io_uring setup ({setup:?}): {e}"))?;
        let fds: Vec<RawFd> = socks.iter().map(AsRawFd::as_raw_fd).collect();
        if setup != Setup::Plain {
            ring.submitter()
                .register_files(&fds)
                .map_err(|e| format!("register_files: {e}"))?;
        }
        Ok(Ring {
            ring,
            setup,
            fds,
            frame,
            inflight: 0,
            sent: 0,
            syscalls: 0,
            retries: 0,
            errors: 0,
            again: Vec::new(),
        })
    }

    /// Queues a send of `frame[from..]` to socket `i`, submitting first if the queue is full.
    fn send(&mut self, i: usize, from: usize) -> Result<(), String> {
        let buf = &self.frame[from..];
        let len = u32::try_from(buf.len()).map_err(|_| "frame too large".to_string())?;
        let entry = match self.setup {
            Setup::Plain => opcode::Send::new(types::Fd(self.fds[i]), buf.as_ptr(), len).build(),
            Setup::Fixed | Setup::Sqpoll => {
                let slot = u32::try_from(i).map_err(|_| "socket index".to_string())?;
                opcode::Send::new(types::Fixed(slot), buf.as_ptr(), len).build()
            }
        }
        .user_data(((i as u64) << 32) | from as u64);
        // Backpressure: at most a queue's worth in flight. Inline sends complete within the
        // submit, so this only waits when the kernel runs behind (SQPOLL at full speed).
        let mut waits = 0;
        while self.inflight >= u64::from(ENTRIES) || self.ring.submission().is_full() {
            self.flush()?;
            if self.inflight < u64::from(ENTRIES) && !self.ring.submission().is_full() {
                break;
            }
            waits += 1;
            if waits > MAX_WAITS {
                return Err("io_uring: no progress (queue full for 10 s)".into());
            }
            self.wait(Duration::from_millis(10))?;
        }
        self.push(&entry)
            .map_err(|()| "submission queue full".to_string())?;
        self.inflight += 1;
        Ok(())
    }

    fn push(&mut self, entry: &squeue::Entry) -> Result<(), ()> {
        // SAFETY: the entry points at `self.frame`, a `&'static` slice, so the buffer outlives
        // the operation; its fd (or registered slot) is a socket of the caller's `socks`, which
        // outlive this `Ring` (borrowed for the whole of `run`), and `run` reaps every completion
        // before returning.
        #[allow(unsafe_code)]
        unsafe {
            self.ring.submission().push(entry).map_err(|_| ())
        }
    }

    /// Submits what is queued (one `io_uring_enter`) and reaps the completions there are.
    fn flush(&mut self) -> Result<(), String> {
        if !self.ring.submission().is_empty() {
            let enters = self.setup != Setup::Sqpoll || self.ring.submission().need_wakeup();
            loop {
                match self.ring.submit() {
                    Ok(_) => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap(),
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                    Err(e) => return Err(format!("io_uring_enter: {e}")),
                }
            }
            self.syscalls += u64::from(enters);
        }
        self.reap();
        self.resend()
    }

    /// One `io_uring_enter` waiting up to `timeout` for a completion, then reap.
    fn wait(&mut self, timeout: Duration) -> Result<(), String> {
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        self.syscalls += 1;
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(format!("io_uring_enter (wait): {e}")),
        }
        self.reap();
        Ok(())
    }

    fn reap(&mut self) {
        let len = self.frame.len();
        for cqe in self.ring.completion() {
            self.inflight -= 1;
            let i = (cqe.user_data() >> 32) as usize;
            let from = (cqe.user_data() & 0xffff_ffff) as usize;
            match usize::try_from(cqe.result()) {
                Ok(n) if from + n >= len => self.sent += 1,
                Ok(n) if n > 0 => {
                    self.retries += 1;
                    self.again.push((i, from + n));
                }
                // -EAGAIN is not expected (io_uring polls a full socket itself), but retry it.
                _ if cqe.result() == -libc::EAGAIN => {
                    self.retries += 1;
                    self.again.push((i, from));
                }
                _ => self.errors += 1,
            }
        }
    }

    fn resend(&mut self) -> Result<(), String> {
        for (i, from) in std::mem::take(&mut self.again) {
            self.send(i, from)?;
        }
        Ok(())
    }

    /// Submits the rest and waits for every completion, bounded by [`DRAIN_TIMEOUT`].
    fn finish(&mut self) -> Result<(), String> {
        self.flush()?;
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while (self.inflight > 0 || !self.again.is_empty()) && Instant::now() < deadline {
            self.wait(Duration::from_millis(100))?;
            self.resend()?;
            self.flush()?;
        }
        self.errors += self.inflight;
        Ok(())
    }
}

/// Runs the schedule through one ring owned by this thread.
pub fn run(
    args: &Run,
    socks: &[TcpStream],
    frame: &'static [u8],
    setup: Setup,
) -> Result<Outcome, String> {
    let mut ring = Ring::new(socks, frame, setup)?;
    let mut pick = Picker::new(args.seed, socks.len());
    let window = Window::open()?;
    let mut sched = Schedule::new(args);
    while let Some(due) = sched.due() {
        for _ in 0..due {
            ring.send(pick.next_index(), 0)?;
        }
        ring.flush()?;
        sched.wait_tick();
    }
    ring.finish()?;
    let Ring {
        sent,
        syscalls,
        retries,
        errors,
        ..
    } = ring;
    window.close(sent, syscalls, retries, errors)
}
