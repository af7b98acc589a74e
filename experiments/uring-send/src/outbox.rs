//! A per-connection queue shaped like courier's `outbox.rs` (one mutex, a count of frames, a
//! waker), and the written-frames count the pacer of the task variants waits on.
//!
//! courier queues `Bytes` handles; every frame here is the same static frame, so a count carries
//! the same information with the same locking and waking: a push is one uncontended lock and — only
//! when the task is parked — one wake; the task takes everything queued in one go.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Poll, Waker};

use tokio::sync::Notify;

/// Frames queued at most (courier's default `--queue-messages`); never reached in these runs.
pub const MAX_FRAMES: u32 = 1024;

#[derive(Default)]
struct State {
    queued: u32,
    waker: Option<Waker>,
    /// Set at the end of a run: `take` then returns 0 and the task exits with its counts.
    closed: bool,
}

/// One connection's queue.
#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
}

impl Outbox {
    /// Queues one frame and wakes the task if it is parked; false when the queue is full.
    pub fn push(&self) -> bool {
        let waker = {
            let Ok(mut st) = self.state.lock() else {
                return false;
            };
            if st.queued >= MAX_FRAMES {
                return false;
            }
            st.queued += 1;
            st.waker.take()
        };
        // Woken outside the lock, as courier does, so the woken task never finds it held.
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Ends the task once it has written what it took.
    pub fn close(&self) {
        let waker = match self.state.lock() {
            Ok(mut st) => {
                st.closed = true;
                st.waker.take()
            }
            Err(_) => None,
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Waits until frames are queued and takes them all; 0 once closed (or poisoned).
    pub async fn take(&self) -> u32 {
        poll_fn(|cx| {
            let Ok(mut st) = self.state.lock() else {
                return Poll::Ready(0);
            };
            if st.queued > 0 {
                return Poll::Ready(std::mem::take(&mut st.queued));
            }
            if st.closed {
                return Poll::Ready(0);
            }
            match &st.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }
}

/// Frames the connection tasks have written, and a way for the pacer to wait for a count: the
/// closed loop of an unpaced run (push a batch, wait until it is written) and the end of a run.
pub struct Progress {
    written: AtomicU64,
    /// The count the pacer waits for; `u64::MAX` while nobody waits, so a paced run's tasks
    /// never notify.
    wake_at: AtomicU64,
    notify: Notify,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress {
            written: AtomicU64::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            notify: Notify::new(),
        }
    }
}

impl Progress {
    /// A task wrote `n` frames. SeqCst here and in [`Progress::wait_for`]: either the task sees
    /// the new `wake_at` or the pacer sees the new count, so no wake-up is lost.
    pub fn add(&self, n: u64) {
        let now = self.written.fetch_add(n, Ordering::SeqCst) + n;
        if now >= self.wake_at.load(Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Waits until `target` frames are written.
    pub async fn wait_for(&self, target: u64) {
        self.wake_at.store(target, Ordering::SeqCst);
        // A permit left by an earlier target only costs one more look at the count.
        while self.written() < target {
            self.notify.notified().await;
        }
        self.wake_at.store(u64::MAX, Ordering::SeqCst);
    }
}
