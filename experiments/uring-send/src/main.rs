//! Issue 19 microbenchmark: sparse small-frame sends over many loopback TCP sockets, epoll vs io_uring.
//!
//! # Layout
//! - `send` (the `bench` module) starts a receiver child process, connects the pairs, runs one
//!   sender variant for a bounded time and prints one `key=value` result line.
//! - `recv` (the `recv` module) is that child: it accepts the pairs and drains them with epoll.
//! - `summarize` (the `summary` module) turns result lines into the README's table.
//! - `variant/` holds the four senders; `pace` the shared schedule and socket picker; `cpu` the
//!   CPU-time readings; `outbox` the courier-shaped per-connection queue the task variants share.

mod bench;
mod cpu;
mod outbox;
mod pace;
mod recv;
mod summary;
mod variant;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Command line.
#[derive(Parser)]
#[command(about = "io_uring vs epoll send path for sparse delivery (courier issue 19)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one variant once and print one result line.
    Send(SendArgs),
    /// The receiver child (started by `send`; speaks a line protocol on stdin/stdout).
    Recv {
        /// Connections to accept before reporting ready.
        #[arg(long)]
        pairs: usize,
    },
    /// Read result lines and print the Markdown table of medians.
    Summarize {
        /// The mode the "vs" columns divide by.
        #[arg(long, default_value = "tokio")]
        baseline: String,
        /// Files of result lines (`send` output); other lines are skipped.
        files: Vec<PathBuf>,
    },
}

/// Which sender runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// (a) courier's shape: a tokio task per socket, woken through its outbox, one write per wake;
    /// multi-thread runtime with 2 workers (courier's `#[tokio::main]` on this box).
    Tokio,
    /// (a') the same on a current-thread runtime: no cross-thread wakes.
    Tokio1,
    /// (b) one loop, one nonblocking `write` per send: the syscall and kernel cost alone.
    Direct,
    /// (c) io_uring: a tick's sends as SQEs in one `io_uring_enter`, plain fds.
    Uring,
    /// (c) plus registered files and SINGLE_ISSUER | DEFER_TASKRUN.
    UringFixed,
    /// (c) with a kernel SQPOLL thread submitting (its CPU counted: it is in our thread group).
    UringSqpoll,
    /// (d) the integration shape: tokio-uring runtime, a task per socket as in (a), each write
    /// an io_uring op; the runtime submits all pushed ops once per park.
    TokioUring,
}

impl Mode {
    /// The name used on the command line and in result lines.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tokio => "tokio",
            Mode::Tokio1 => "tokio1",
            Mode::Direct => "direct",
            Mode::Uring => "uring",
            Mode::UringFixed => "uring-fixed",
            Mode::UringSqpoll => "uring-sqpoll",
            Mode::TokioUring => "tokio-uring",
        }
    }
}

/// The matrix to run: every (round, rate, mode) is one measured window over the same sockets.
#[derive(clap::Args, Clone, Debug)]
pub struct SendArgs {
    /// Sender variants, comma-separated; each round runs them in a rotated order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "tokio,direct,uring"
    )]
    pub modes: Vec<Mode>,
    /// Sends per second, comma-separated; 0 sends as fast as the variant can, `--batch` per round.
    #[arg(long, value_delimiter = ',', default_value = "40000")]
    pub rates: Vec<u64>,
    /// Rounds of the whole matrix.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Connected TCP pairs (each is one fd here and one in the receiver; hard limit 20000 each).
    #[arg(long, default_value_t = 10_000)]
    pub pairs: usize,
    /// Seconds of sending per window (bounded: at most 60).
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
    /// Frame size in bytes (courier's notification frames are ~100-200).
    #[arg(long, default_value_t = 150)]
    pub frame: usize,
    /// Pacing tick in microseconds: every tick the sends due so far go out as one batch.
    #[arg(long, default_value_t = 1000)]
    pub tick_us: u64,
    /// Sends per round at rate 0.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Seed of the socket picker (the same seed gives every variant the same sequence).
    #[arg(long, default_value_t = 19)]
    pub seed: u64,
    /// Run the receiver on this CPU only (via `taskset`); start the sender with `taskset -c` on
    /// another, so a send's wake-up of the receiver never lands on the sender's CPU (as with
    /// remote clients, where nothing local is woken).
    #[arg(long)]
    pub receiver_cpu: Option<u32>,
    /// Pause between windows, ms (lets the previous variant's threads and sockets settle).
    #[arg(long, default_value_t = 500)]
    pub gap_ms: u64,
}

/// One measured window: what a variant is given.
#[derive(Clone, Debug)]
pub struct Run {
    /// Sender variant.
    pub mode: Mode,
    /// Sends per second (0: as fast as possible).
    pub rate: u64,
    /// Seconds of sending.
    pub secs: f64,
    /// Pacing tick, µs.
    pub tick_us: u64,
    /// Sends per round at rate 0.
    pub batch: usize,
    /// Picker seed.
    pub seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Send(args) => bench::run(&args),
        Cmd::Recv { pairs } => recv::run(pairs),
        Cmd::Summarize { baseline, files } => summary::run(&files, &baseline),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
