//! The matrix: receiver child up, pairs connected once, then every (round, rate, mode) window.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cpu;
use crate::pace::MAX_SECS;
use crate::variant::{self, Outcome};
use crate::{Mode, Run, SendArgs};

/// Most pairs: each side holds one fd per pair and the hard limit is 20000.
const MAX_PAIRS: usize = 19_000;
/// How long the receiver may take to exit after its report.
const CHILD_EXIT: Duration = Duration::from_secs(5);

/// The receiver child and its two pipe ends.
struct Receiver {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
}

impl Receiver {
    fn spawn(pairs: usize, cpu: Option<u32>) -> Result<Receiver, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut cmd = match cpu {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.arg("-c").arg(c.to_string()).arg(exe);
                t
            }
            None => Command::new(exe),
        };
        let mut child = cmd
            .args(["recv", "--pairs", &pairs.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn receiver: {e}"))?;
        let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("receiver pipes".into());
        };
        Ok(Receiver {
            child,
            to,
            from: BufReader::new(from),
        })
    }

    /// The next line, which must start with `word`; the words after it.
    fn expect(&mut self, word: &str) -> Result<Vec<String>, String> {
        let mut line = String::new();
        self.from
            .read_line(&mut line)
            .map_err(|e| format!("receiver: {e}"))?;
        let mut words = line.split_whitespace().map(str::to_string);
        match words.next() {
            Some(w) if w == word => Ok(words.collect()),
            _ => Err(format!("receiver said {line:?}, wanted {word}")),
        }
    }

    fn say(&mut self, line: &str) -> Result<(), String> {
        writeln!(self.to, "{line}")
            .and_then(|()| self.to.flush())
            .map_err(|e| format!("receiver: {e}"))
    }

    /// Waits for the child to exit; kills it (our own child, by handle) if it does not.
    fn reap(mut self) {
        let deadline = Instant::now() + CHILD_EXIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebSocket text frame of `size` bytes in all (2- or 4-byte header, JSON-ish payload), leaked
/// so io_uring may point at it for the life of the process.
fn frame(size: usize) -> &'static [u8] {
    let mut f = Vec::with_capacity(size);
    let payload = if size > 129 {
        size - 4
    } else {
        size.saturating_sub(2)
    };
    f.push(0x81);
    if size > 129 {
        f.push(126);
        f.extend_from_slice(&u16::try_from(payload).unwrap_or(u16::MAX).to_be_bytes());
    } else {
        f.push(u8::try_from(payload).unwrap_or(125));
    }
    let body = br#"{"type":"notification","data":{"id":12345,"kind":"comment","text":"lorem ipsum dolor sit amet"}}"#;
    f.extend(body.iter().cycle().take(payload));
    f.truncate(size.max(1));
    Box::leak(f.into_boxed_slice())
}

/// Connects the pairs once and runs every window of the matrix over them, printing a result line
/// after each (flushed, so an interrupted matrix keeps what it measured).
pub fn run(args: &SendArgs) -> Result<(), String> {
    if args.pairs == 0 || args.pairs > MAX_PAIRS {
        return Err(format!("--pairs must be 1..={MAX_PAIRS}"));
    }
    if !(0.1..=MAX_SECS).contains(&args.secs) {
        return Err(format!("--secs must be 0.1..={MAX_SECS}"));
    }
    if args.frame == 0 || args.frame > 65_535 {
        return Err("--frame must be 1..=65535".into());
    }
    if args.modes.is_empty() || args.rates.is_empty() || args.rounds == 0 || args.rounds > 50 {
        return Err("need modes, rates and 1..=50 rounds".into());
    }
    let mut rx = Receiver::spawn(args.pairs, args.receiver_cpu)?;
    let port: u16 = rx
        .expect("port")?
        .first()
        .and_then(|p| p.parse().ok())
        .ok_or("receiver port")?;
    let setup = Instant::now();
    let mut socks = Vec::with_capacity(args.pairs);
    for i in 0..args.pairs {
        let s =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect #{i}: {e}"))?;
        // courier sets TCP_NODELAY on every accepted socket (src/server/accept.rs).
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        // Closed with a reset, not a FIN: no TIME_WAIT left behind (see Cargo.toml).
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .map_err(|e| e.to_string())?;
        socks.push(s);
    }
    rx.expect("ready")?;
    eprintln!(
        "{} pairs connected in {:.1} s",
        args.pairs,
        setup.elapsed().as_secs_f64()
    );
    let frame = frame(args.frame);
    let mut sent_bytes = 0u64;
    let mut received_before = 0u64;
    let mut failed = 0;
    for round in 1..=args.rounds {
        for &rate in &args.rates {
            for k in 0..args.modes.len() {
                // Rotated per round, so no variant always runs first (or right after another).
                let mode = args.modes[(k + round as usize - 1) % args.modes.len()];
                let run = Run {
                    mode,
                    rate,
                    secs: args.secs,
                    tick_us: args.tick_us,
                    batch: args.batch,
                    seed: args.seed + u64::from(round),
                };
                std::thread::sleep(Duration::from_millis(args.gap_ms));
                let load1 = cpu::loadavg();
                // io_uring parks a blocked op itself; the epoll variants need nonblocking sockets.
                let blocking = matches!(
                    mode,
                    Mode::Uring | Mode::UringFixed | Mode::UringSqpoll | Mode::TokioUring
                );
                for s in &socks {
                    s.set_nonblocking(!blocking).map_err(|e| e.to_string())?;
                }
                rx.say("start")?;
                rx.expect("ok")?;
                let (out, back) = variant::run(&run, socks, frame)?;
                socks = back;
                sent_bytes += out.sends * frame.len() as u64;
                rx.say(&format!("expect {sent_bytes}"))?;
                let done = rx.expect("done")?;
                let num = |i: usize| done.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                let (got_total, rx_user, rx_sys, rx_csw) = (num(0), num(1), num(2), num(3));
                let got = got_total.saturating_sub(received_before);
                received_before = got_total;
                let bytes = out.sends * frame.len() as u64;
                let rx = RxFigures {
                    user_us: rx_user,
                    sys_us: rx_sys,
                    csw: rx_csw,
                };
                if !print(
                    &run,
                    round,
                    args.pairs,
                    frame.len(),
                    &out,
                    bytes,
                    got,
                    &rx,
                    load1,
                ) {
                    failed += 1;
                }
            }
        }
    }
    let _ = rx.say("quit");
    rx.reap();
    if failed > 0 {
        return Err(format!("{failed} windows lost data or had send errors"));
    }
    Ok(())
}

/// The receiver's CPU in one window.
struct RxFigures {
    user_us: u64,
    sys_us: u64,
    csw: u64,
}

/// Prints one window's result line; false when bytes were lost or sends failed.
#[allow(clippy::too_many_arguments)]
fn print(
    run: &Run,
    round: u32,
    pairs: usize,
    frame: usize,
    out: &Outcome,
    bytes: u64,
    got: u64,
    rx: &RxFigures,
    load1: f64,
) -> bool {
    let sends = out.sends.max(1) as f64;
    let tx_ns = out.cpu.total().as_nanos() as f64 / sends;
    let rx_ns = (rx.user_us + rx.sys_us) as f64 * 1000.0 / sends;
    let tx_csw = out.cpu.csw as f64 / sends;
    let rx_csw = rx.csw as f64 / sends;
    let sirq_ns = out.softirqd.as_nanos() as f64 / sends;
    let ok = got == bytes && out.errors == 0;
    println!(
        "result mode={} round={round} pairs={pairs} rate={} secs={} frame={frame} sends={} achieved={:.0} \
         wall_s={:.3} tx_user_us={} tx_sys_us={} tx_ns_per_send={tx_ns:.0} tx_csw_per_send={tx_csw:.3} \
         rx_user_us={} rx_sys_us={} rx_ns_per_send={rx_ns:.0} rx_csw_per_send={rx_csw:.3} softirqd_ns_per_send={sirq_ns:.0} syscalls_per_send={:.3} retries={} \
         errors={} bytes_sent={bytes} bytes_recv={got} ok={} io_threads={} io_cpu_ms={} load1={load1:.2}",
        run.mode.name(),
        run.rate,
        run.secs,
        out.sends,
        out.sends as f64 / out.wall.as_secs_f64().max(1e-9),
        out.wall.as_secs_f64(),
        out.cpu.user.as_micros(),
        out.cpu.sys.as_micros(),
        rx.user_us,
        rx.sys_us,
        out.syscalls as f64 / sends,
        out.retries,
        out.errors,
        u8::from(ok),
        out.io_threads,
        out.io_cpu.as_millis(),
    );
    let _ = std::io::stdout().flush();
    ok
}
