//! (d) The integration shape: tokio-uring's runtime, a task per socket woken as in (a), each write an
//! io_uring op; the runtime submits every op pushed during a round of polling in one
//! `io_uring_enter` when the thread parks, and learns of completions through the ring's fd in epoll.

use std::cell::Cell;
use std::net::TcpStream as StdStream;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio_uring::net::TcpStream;

use super::{Outcome, Window};
use crate::outbox::{Outbox, Progress};
use crate::pace::{Picker, Schedule};
use crate::Run;

/// Submission queue entries of the runtime's ring (its default is 256).
const ENTRIES: u32 = 4096;
/// How long the end of a run waits for the tasks to write what was queued.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the schedule on a tokio-uring runtime (current thread: tokio-uring has no other kind).
pub fn run(
    args: &Run,
    socks: Vec<StdStream>,
    frame: &'static [u8],
) -> Result<(Outcome, Vec<StdStream>), String> {
    let args = args.clone();
    tokio_uring::builder()
        .entries(ENTRIES)
        .start(drive(args, socks, frame))
}

async fn drive(
    args: Run,
    socks: Vec<StdStream>,
    frame: &'static [u8],
) -> Result<(Outcome, Vec<StdStream>), String> {
    // Shared with the tasks as in (a) (`Arc`, atomics), so the accounting is the same.
    let progress = Arc::new(Progress::default());
    // Single-threaded runtime: an `Rc` counter is enough for the (never expected) errors.
    let errors = Rc::new(Cell::new(0u64));
    let mut outboxes = Vec::with_capacity(socks.len());
    let mut tasks = Vec::with_capacity(socks.len());
    for s in socks {
        let out = Arc::new(Outbox::default());
        outboxes.push(Arc::clone(&out));
        let conn = connection(
            TcpStream::from_std(s),
            out,
            frame,
            Arc::clone(&progress),
            Rc::clone(&errors),
        );
        tasks.push(tokio_uring::spawn(conn));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut pick = Picker::new(args.seed, outboxes.len());
    let mut refused = 0u64;
    let window = Window::open()?;
    let mut sched = Schedule::new(&args);
    while let Some(due) = sched.due() {
        for _ in 0..due {
            if !outboxes[pick.next_index()].push() {
                refused += 1;
            }
        }
        if args.rate == 0 {
            // Closed loop, as the single-thread variants are: the batch is written before the next.
            progress.wait_for(sched.issued - refused).await;
        } else {
            tokio::time::sleep_until(sched.next_tick().into()).await;
        }
    }
    let want = sched.issued - refused;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, progress.wait_for(want)).await;
    let sent = progress.written();
    let mut outcome = window.close(sent, 0, 0, refused + (want - sent.min(want)))?;
    for out in &outboxes {
        out.close();
    }
    let mut back = Vec::with_capacity(tasks.len());
    for t in tasks {
        back.push(into_std(t.await.map_err(|e| format!("task: {e}"))?));
    }
    outcome.errors += errors.get();
    Ok((outcome, back))
}

/// tokio-uring's `TcpStream` has no `into_std` and closes its fd on drop; the next window needs
/// the socket, so take the fd back out.
fn into_std(s: TcpStream) -> StdStream {
    let fd = s.as_raw_fd();
    // Leaks the stream's small shared-fd state instead of running its drop, which would close `fd`.
    std::mem::forget(s);
    // SAFETY: `fd` is the open socket `from_std` took in `drive`; its task has returned, so no
    // operation on it is in flight, and the forgotten stream will never close it: the new
    // `StdStream` is its only owner.
    #[allow(unsafe_code)]
    unsafe {
        StdStream::from_raw_fd(fd)
    }
}

/// One connection: take what is queued, write each frame with `write_all` (an io_uring write op,
/// resubmitted by tokio-uring on a short write). tokio-uring's vectored write takes an owned
/// `Vec` per call; at one frame per wake, which is what sparse delivery gives, one op is the same.
async fn connection(
    s: TcpStream,
    out: Arc<Outbox>,
    frame: &'static [u8],
    progress: Arc<Progress>,
    errors: Rc<Cell<u64>>,
) -> TcpStream {
    loop {
        let n = out.take().await;
        if n == 0 {
            return s;
        }
        for _ in 0..n {
            let (res, _) = s.write_all(frame).await;
            if res.is_err() {
                errors.set(errors.get() + 1);
                return s;
            }
        }
        progress.add(u64::from(n));
    }
}
