//! (b) One loop, one nonblocking `write` per send, no task wake: the syscall and kernel cost alone.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;

use super::{Outcome, Window};
use crate::pace::{Picker, Schedule};
use crate::Run;

/// Runs the schedule; a short or blocked write is finished on a later tick (never seen with a
/// draining receiver, but a lost byte would void the run). A later frame to the same socket may
/// then go out before the rest of the earlier one: the receiver counts bytes, it parses nothing.
pub fn run(args: &Run, socks: &[TcpStream], frame: &'static [u8]) -> Result<Outcome, String> {
    let mut pick = Picker::new(args.seed, socks.len());
    // (socket, bytes of the frame already written), oldest first.
    let mut backlog: Vec<(usize, usize)> = Vec::new();
    let (mut syscalls, mut retries, mut errors) = (0u64, 0u64, 0u64);
    let window = Window::open()?;
    let mut sched = Schedule::new(args);
    let mut write = |i: usize, from: usize, backlog: &mut Vec<(usize, usize)>| {
        let mut sock = &socks[i];
        let mut done = from;
        while done < frame.len() {
            syscalls += 1;
            match sock.write(&frame[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    retries += 1;
                    backlog.push((i, done));
                    return;
                }
                Err(_) => {
                    errors += 1;
                    return;
                }
            }
        }
    };
    while let Some(due) = sched.due() {
        for (i, from) in std::mem::take(&mut backlog) {
            write(i, from, &mut backlog);
        }
        for _ in 0..due {
            write(pick.next_index(), 0, &mut backlog);
        }
        sched.wait_tick();
    }
    // Finish what is left; bounded like everything else here.
    let mut rounds = 0;
    while !backlog.is_empty() && rounds < 10_000 {
        for (i, from) in std::mem::take(&mut backlog) {
            write(i, from, &mut backlog);
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
        rounds += 1;
    }
    errors += backlog.len() as u64;
    window.close(sched.issued, syscalls, retries, errors)
}
