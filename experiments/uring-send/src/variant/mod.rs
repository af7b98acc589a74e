//! The sender variants; each runs the same [`Schedule`](crate::pace::Schedule) over the same sockets.

mod direct;
mod tokio_task;
mod tokio_uring;
mod uring;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::cpu::{self, Usage};
use crate::{Mode, Run};

/// What one variant did, measured from the first send to the last byte handed to the kernel.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Frames sent (all complete: partial writes were finished).
    pub sends: u64,
    /// Wall time of the sending window.
    pub wall: Duration,
    /// Process CPU in that window.
    pub cpu: Usage,
    /// Send-path syscalls: `write`/`writev` calls, or `io_uring_enter` calls (uring variants);
    /// 0 where the variant cannot count them (tokio-uring submits inside its runtime).
    pub syscalls: u64,
    /// Writes that were short or would block and were finished later.
    pub retries: u64,
    /// Sends that failed outright (a correct run has none).
    pub errors: u64,
    /// io_uring kernel threads alive at the end, and their CPU (already inside `cpu`).
    pub io_threads: usize,
    /// See `io_threads`.
    pub io_cpu: Duration,
    /// CPU of the ksoftirqd threads in the window (the whole box's: other work adds to it).
    pub softirqd: Duration,
}

/// Starts the clocks of a sending window.
pub struct Window {
    wall: Instant,
    cpu: Usage,
    softirqd: cpu::Softirqd,
    softirqd_start: Duration,
}

impl Window {
    /// Now.
    pub fn open() -> Result<Window, String> {
        let softirqd = cpu::Softirqd::find();
        Ok(Window {
            softirqd_start: softirqd.runtime(),
            softirqd,
            wall: Instant::now(),
            cpu: Usage::now().map_err(|e| format!("getrusage: {e}"))?,
        })
    }

    /// Closes the window into an outcome with the given counts.
    pub fn close(
        self,
        sends: u64,
        syscalls: u64,
        retries: u64,
        errors: u64,
    ) -> Result<Outcome, String> {
        let cpu = Usage::now()
            .map_err(|e| format!("getrusage: {e}"))?
            .since(self.cpu);
        let wall = self.wall.elapsed();
        let softirqd = self.softirqd.runtime().saturating_sub(self.softirqd_start);
        let (io_threads, io_cpu) = cpu::io_threads();
        Ok(Outcome {
            sends,
            wall,
            cpu,
            syscalls,
            retries,
            errors,
            io_threads,
            io_cpu,
            softirqd,
        })
    }
}

/// Runs `args.mode` over `socks` (connected, TCP_NODELAY; nonblocking for the epoll variants,
/// blocking for the io_uring ones) sending `frame`; gives the sockets back in the same order.
pub fn run(
    args: &Run,
    socks: Vec<TcpStream>,
    frame: &'static [u8],
) -> Result<(Outcome, Vec<TcpStream>), String> {
    match args.mode {
        Mode::Tokio => tokio_task::run(args, socks, frame, true),
        Mode::Tokio1 => tokio_task::run(args, socks, frame, false),
        Mode::Direct => direct::run(args, &socks, frame).map(|o| (o, socks)),
        Mode::Uring => uring::run(args, &socks, frame, uring::Setup::Plain).map(|o| (o, socks)),
        Mode::UringFixed => {
            uring::run(args, &socks, frame, uring::Setup::Fixed).map(|o| (o, socks))
        }
        Mode::UringSqpoll => {
            uring::run(args, &socks, frame, uring::Setup::Sqpoll).map(|o| (o, socks))
        }
        Mode::TokioUring => tokio_uring::run(args, socks, frame),
    }
}
