//! (a) courier's shape: a tokio task per socket, woken through its outbox, one vectored write per wake.

use std::io::IoSlice;
use std::net::TcpStream as StdStream;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Outcome, Window};
use crate::outbox::{Outbox, Progress};
use crate::pace::{Picker, Schedule};
use crate::Run;

/// Frames per `writev` at most (courier's `IOV`).
const IOV: usize = 64;
/// How long the end of a run waits for the tasks to write what was queued.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// What one connection task did.
#[derive(Default)]
struct TaskCounts {
    syscalls: u64,
    retries: u64,
    errors: u64,
}

/// Runs the schedule on a tokio runtime: 2 workers (`multi`, as courier runs on this box) or the
/// current thread.
pub fn run(
    args: &Run,
    socks: Vec<StdStream>,
    frame: &'static [u8],
    multi: bool,
) -> Result<(Outcome, Vec<StdStream>), String> {
    let rt = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .map_err(|e| format!("runtime: {e}"))?;
    let args = args.clone();
    let result = rt.block_on(async move {
        // The pacer runs as a task, like courier's fan-out (a Redis reader or HTTP handler task);
        // `block_on`'s own future would run on a third thread in the multi-thread runtime.
        tokio::spawn(drive(args, socks, frame))
            .await
            .map_err(|e| format!("pacer: {e}"))?
    });
    rt.shutdown_background();
    result
}

async fn drive(
    args: Run,
    socks: Vec<StdStream>,
    frame: &'static [u8],
) -> Result<(Outcome, Vec<StdStream>), String> {
    let progress = Arc::new(Progress::default());
    let mut outboxes = Vec::with_capacity(socks.len());
    let mut tasks = Vec::with_capacity(socks.len());
    for s in socks {
        let s = TcpStream::from_std(s).map_err(|e| format!("from_std: {e}"))?;
        let out = Arc::new(Outbox::default());
        outboxes.push(Arc::clone(&out));
        tasks.push(tokio::spawn(connection(
            s,
            out,
            frame,
            Arc::clone(&progress),
        )));
    }
    // Let every task reach its first park, so the window sees no spawn work.
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
    // Counts of the tasks come after the window closes, so joining 10k tasks is not measured.
    let mut outcome = window.close(sent, 0, 0, refused + (want - sent.min(want)))?;
    for out in &outboxes {
        out.close();
    }
    let mut back = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (s, c) = t.await.map_err(|e| format!("task: {e}"))?;
        outcome.syscalls += c.syscalls;
        outcome.retries += c.retries;
        outcome.errors += c.errors;
        // Out of this runtime's epoll, still nonblocking, for the next window.
        back.push(s.into_std().map_err(|e| format!("into_std: {e}"))?);
    }
    Ok((outcome, back))
}

/// One connection: take what is queued, write it with `writev`s of up to [`IOV`] frames,
/// finishing partial writes, count the frames written.
async fn connection(
    mut s: TcpStream,
    out: Arc<Outbox>,
    frame: &'static [u8],
    progress: Arc<Progress>,
) -> (TcpStream, TaskCounts) {
    let mut c = TaskCounts::default();
    let len = frame.len();
    loop {
        let n = out.take().await as usize;
        if n == 0 {
            return (s, c);
        }
        let total = n * len;
        let mut done = 0;
        while done < total {
            // Slices: the unwritten tail of a partly written frame, then whole frames.
            let mut iov = [IoSlice::new(frame); IOV];
            let mut k = 0;
            let mut rest = total - done;
            let off = done % len;
            if off > 0 {
                iov[0] = IoSlice::new(&frame[off..]);
                rest -= len - off;
                k = 1;
            }
            k += (rest / len).min(IOV - k);
            let iov = &iov[..k];
            let want: usize = iov.iter().map(|v| v.len()).sum();
            c.syscalls += 1;
            match s.write_vectored(iov).await {
                Ok(0) | Err(_) => {
                    c.errors += ((total - done) / len) as u64;
                    return (s, c);
                }
                Ok(k) => {
                    if k < want {
                        c.retries += 1;
                    }
                    done += k;
                }
            }
        }
        progress.add(n as u64);
    }
}
