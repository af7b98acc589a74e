//! The receiver child process: accepts the pairs and drains every socket with epoll, counting bytes.
//!
//! A separate process, so its CPU is measured apart from the sender's and each side holds only
//! its own 10k fds. Line protocol with the parent (stdin → stdout): `port P` (printed) ·
//! `ready` (all accepted) · then per window `start` → `ok` and `expect TOTAL_BYTES` (bytes sent
//! since the beginning) → `done RECEIVED_TOTAL USER_US SYS_US SWITCHES` (since `start`) · `quit`
//! or a closed stdin ends the process.

use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::cpu::Usage;

/// How long the receiver waits for the expected byte count before reporting what it has.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// The epoll thread wakes at least this often to look at the target.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// Most accepted connections (fd hard limit 20000, and a few for stdio and epoll).
const MAX_PAIRS: usize = 19_000;

/// Counters shared by the epoll thread and the control loop.
struct Shared {
    received: AtomicU64,
    /// Bytes the parent said it sent; 0 until then.
    target: AtomicU64,
}

/// The child's main: see the module doc.
pub fn run(pairs: usize) -> Result<(), String> {
    if pairs == 0 || pairs > MAX_PAIRS {
        return Err(format!("--pairs must be 1..={MAX_PAIRS}"));
    }
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let mut out = io::stdout().lock();
    writeln!(out, "port {port}")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;

    let shared = Arc::new(Shared {
        received: AtomicU64::new(0),
        target: AtomicU64::new(0),
    });
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), String>>(1);
    let (done_tx, done_rx) = mpsc::sync_channel::<u64>(1);
    let drain_shared = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("rx-epoll".into())
        .spawn(move || drain(listener, pairs, &drain_shared, &ready_tx, &done_tx))
        .map_err(|e| e.to_string())?;
    ready_rx
        .recv()
        .map_err(|_| "receiver thread died".to_string())??;
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;

    let mut start = Usage::default();
    for line in io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let mut words = line.split_whitespace();
        match words.next() {
            Some("start") => {
                start = Usage::now().map_err(|e| e.to_string())?;
                writeln!(out, "ok")
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())?;
            }
            Some("expect") => {
                let bytes: u64 = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .ok_or_else(|| format!("bad line {line:?}"))?;
                if shared.received.load(Ordering::SeqCst) < bytes {
                    shared.target.store(bytes, Ordering::SeqCst);
                    // Waits for this target's signal (or a timeout, reported as a short count,
                    // which the parent flags); a stale signal of an earlier target is skipped.
                    let deadline = std::time::Instant::now() + DRAIN_TIMEOUT;
                    while let Some(left) =
                        deadline.checked_duration_since(std::time::Instant::now())
                    {
                        match done_rx.recv_timeout(left) {
                            Ok(reached) if reached >= bytes => break,
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                }
                let used = Usage::now().map_err(|e| e.to_string())?.since(start);
                let got = shared.received.load(Ordering::SeqCst);
                let (user, sys) = (used.user.as_micros(), used.sys.as_micros());
                writeln!(out, "done {got} {user} {sys} {}", used.csw)
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())?;
            }
            Some("quit") => return Ok(()),
            _ => return Err(format!("bad line {line:?}")),
        }
    }
    Ok(())
}

/// The epoll thread: accept `pairs`, then read every readable socket dry until told the target.
fn drain(
    listener: TcpListener,
    pairs: usize,
    shared: &Shared,
    ready: &mpsc::SyncSender<Result<(), String>>,
    done: &mpsc::SyncSender<u64>,
) {
    let setup = || -> Result<(Poll, Vec<TcpStream>), String> {
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let mut socks = Vec::with_capacity(pairs);
        for i in 0..pairs {
            let (s, _) = listener.accept().map_err(|e| format!("accept #{i}: {e}"))?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            // Reset on close: no TIME_WAIT (the parent does the same on its side).
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .map_err(|e| e.to_string())?;
            let mut s = TcpStream::from_std(s);
            poll.registry()
                .register(&mut s, Token(i), Interest::READABLE)
                .map_err(|e| format!("register: {e}"))?;
            socks.push(s);
        }
        Ok((poll, socks))
    };
    let (mut poll, mut socks) = match setup() {
        Ok(v) => {
            let _ = ready.send(Ok(()));
            v
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    loop {
        if let Err(e) = poll.poll(&mut events, Some(POLL_TIMEOUT)) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            eprintln!("recv: epoll: {e}");
            return;
        }
        for ev in &events {
            let Some(s) = socks.get_mut(ev.token().0) else {
                continue;
            };
            // Edge-triggered: read until the socket is dry.
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => received += n as u64,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        shared.received.store(received, Ordering::Relaxed);
        let target = shared.target.load(Ordering::Relaxed);
        if target > 0 && received >= target {
            // Once per target: clear it so the next window's target is not met by this one.
            shared.target.store(0, Ordering::Relaxed);
            let _ = done.try_send(received);
        }
    }
}
