//! A connection's bounded outbound queue (frames *and* bytes) and close state, shared by the hub
//! (fan-out), the connection's own task (replies, pings) and the close logic.
//!
//! The queue is a `VecDeque` of pre-encoded frames behind one `std::sync::Mutex`: a push is one
//! uncontended lock, one refcount bump of the shared frame and — only when the connection's task is
//! parked — one wake. The task swaps the whole queue out under the same lock and writes it with
//! one vectored `write` per batch, so a burst costs one lock and one syscall per batch, not per
//! frame. Every byte queued counts against the bound until the socket took it, replies included.
//!
//! Memory: storage grows with a burst and is given back once drained (see
//! [`KEEP_SLOTS`]); an idle connection that has received nothing holds no queue storage at all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::protocol::CloseCode;

/// Identifies a connection within this process.
pub type ConnId = u64;

/// Queue slots kept after a drain; a larger high-water storage is freed (≤ 8 × 32 B per queue).
pub(crate) const KEEP_SLOTS: usize = 8;

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued.
    Queued,
    /// The queue is at its frame or byte limit.
    Full,
    /// The connection is closing or gone.
    Closed,
}

/// The queue's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Frames queued at most.
    pub max_frames: usize,
    /// Bytes queued (and taken but not yet written) at most.
    pub max_bytes: usize,
}

struct State {
    queue: VecDeque<Bytes>,
    /// Bytes queued plus bytes the task took and has not yet reported written.
    bytes: usize,
    /// The task, when it is parked waiting for frames.
    waker: Option<Waker>,
    /// The close asked for; from then on pushes are refused.
    close: Option<CloseCode>,
}

/// One connection's queue and close state.
pub struct Outbox {
    id: ConnId,
    limits: Limits,
    state: Mutex<State>,
    /// Set (under the lock) with `State::close`, so the task can check for a close on every
    /// wake-up without taking the lock.
    closing: AtomicBool,
}

impl Outbox {
    /// An empty outbox.
    pub fn new(id: ConnId, limits: Limits) -> Self {
        Self {
            id,
            limits,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                waker: None,
                close: None,
            }),
            closing: AtomicBool::new(false),
        }
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The queue's bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held (no user code runs under it); a poisoned lock
        // still holds a consistent queue.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a shared frame without waiting. Fan-out and the connection's own replies both come
    /// here, so a client that floods us while not reading fills its own bound like any other.
    pub fn push(&self, frame: &Bytes) -> Push {
        match self.push_all(std::slice::from_ref(frame)) {
            (1, _) => Push::Queued,
            (_, refused) => refused,
        }
    }

    /// Queues `frames` in order under one lock (a run of one group's events: one lock and at most
    /// one wake per member for the run, not per frame). Stops at the first frame that does not
    /// fit. Returns how many were queued and, for the rest, why not ([`Push::Queued`] if none is
    /// left).
    pub fn push_all(&self, frames: &[Bytes]) -> (usize, Push) {
        let mut s = self.state();
        if s.close.is_some() {
            return (0, Push::Closed);
        }
        let mut queued = 0;
        for frame in frames {
            let len = frame.len();
            // One frame larger than the byte bound still goes through an empty queue.
            if s.queue.len() >= self.limits.max_frames
                || (s.bytes + len > self.limits.max_bytes && s.bytes > 0)
            {
                break;
            }
            s.bytes += len;
            s.queue.push_back(frame.clone());
            queued += 1;
        }
        let waker = if queued > 0 { s.waker.take() } else { None };
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        let rest = if queued == frames.len() {
            Push::Queued
        } else {
            Push::Full
        };
        (queued, rest)
    }

    /// Asks the connection to close with `code`; the first code asked for wins. Unless the code
    /// drains (shutdown), what is queued is dropped now: a slow consumer's backlog is freed at once
    /// and its close frame is next in line.
    pub fn close(&self, code: CloseCode) {
        let mut s = self.state();
        if s.close.is_some() {
            return;
        }
        s.close = Some(code);
        self.closing.store(true, Ordering::Release);
        if !code.drains_queue() {
            let dropped: usize = s.queue.drain(..).map(|f| f.len()).sum();
            s.bytes -= dropped;
            s.queue = VecDeque::new();
        }
        let waker = s.waker.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The close asked for, if any.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.state().close
    }

    /// Whether a close was asked for.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// The close asked for, checked without the lock in the common case of none.
    pub(crate) fn closing(&self) -> Option<CloseCode> {
        if self.is_closing() {
            self.close_code()
        } else {
            None
        }
    }

    /// Keeps the task's waker for a close (the task is parked on something other than the queue).
    pub(crate) fn park(&self, cx: &Context<'_>) {
        let mut s = self.state();
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
    }

    /// The task's side: reports `written` bytes as gone, then moves every queued frame into the
    /// empty `batch` (swapping storage, no copy). Pending — with the task's waker kept for the next
    /// push — when nothing is queued and no close was asked for.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        batch: &mut VecDeque<Bytes>,
        written: usize,
    ) -> Poll<Option<CloseCode>> {
        debug_assert!(batch.is_empty());
        let mut s = self.state();
        s.bytes -= written;
        if !s.queue.is_empty() {
            std::mem::swap(&mut s.queue, batch);
            return Poll::Ready(s.close);
        }
        if s.close.is_some() {
            return Poll::Ready(s.close);
        }
        // Going idle: give a burst's storage back (while busy, the two buffers the queue and the
        // task's batch swap between keep their size, so a burst does not regrow them per batch).
        if s.queue.capacity() > KEEP_SLOTS {
            s.queue = VecDeque::new();
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Counts a frame the task writes without queueing it (its close frame), so the bytes it
    /// reports written match what was counted.
    pub(crate) fn count_unqueued(&self, len: usize) {
        self.state().bytes += len;
    }

    /// Reports `written` bytes as gone without taking more (the task is closing).
    pub(crate) fn release(&self, written: usize) {
        self.state().bytes -= written;
    }

    /// Drops everything queued, returning how many frames that was (benches, which have no
    /// socket to write to).
    pub fn discard_queued(&self) -> usize {
        let mut s = self.state();
        let n = s.queue.len();
        s.queue.clear();
        s.bytes = 0;
        n
    }

    /// Bytes queued or in flight (tests, diagnostics).
    pub fn queued_bytes(&self) -> usize {
        self.state().bytes
    }
}
