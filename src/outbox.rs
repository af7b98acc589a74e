//! A connection's bounded outbound queue (messages *and* bytes) and its close signal.
//!
//! The hub pushes with `try_send` and never waits: a full queue is the slow-consumer case, handled
//! by the [`SlowPolicy`](crate::config::SlowPolicy). The writer task drains the queue in batches.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::protocol::CloseCode;

/// Identifies a connection within this process.
pub type ConnId = u64;

/// The sending half, shared by the hub (fan-out) and the connection's reader (replies).
pub struct Outbox {
    id: ConnId,
    tx: flume::Sender<Message>,
    /// Bytes of text frames queued and not yet taken by the writer.
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    /// First close code asked for (0 = none); the writer sends it.
    close_code: AtomicU16,
    cancel: CancellationToken,
}

/// The receiving half, owned by the connection's writer task.
pub struct OutboxRx {
    /// Queued frames.
    pub rx: flume::Receiver<Message>,
    /// Shared state: byte accounting and the close signal.
    pub shared: Arc<Outbox>,
}

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued.
    Queued,
    /// The queue is at its message or byte limit.
    Full,
    /// The connection is gone.
    Closed,
}

impl Outbox {
    /// A queue of at most `max_messages` frames and `max_bytes` bytes of text, closed when `parent`
    /// (the server's shutdown token) is cancelled.
    pub fn new(
        id: ConnId,
        max_messages: usize,
        max_bytes: usize,
        parent: &CancellationToken,
    ) -> (Arc<Self>, OutboxRx) {
        // flume allocates queue storage on demand; tokio's mpsc allocates a 32-slot block (~1.5 KB)
        // per channel up front, which an idle connection would hold forever. The trade-off: flume
        // keeps a queue's high-water capacity after a burst, at most `max_messages` × 48 B.
        let (tx, rx) = flume::bounded(max_messages.max(1));
        let shared = Arc::new(Self {
            id,
            tx,
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
            close_code: AtomicU16::new(0),
            cancel: parent.child_token(),
        });
        (shared.clone(), OutboxRx { rx, shared })
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queues a shared frame without waiting.
    pub fn push(&self, frame: &Utf8Bytes) -> Push {
        let len = frame.len();
        // Reserve first so the writer's release can never underflow the counter.
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > self.max_bytes && before > 0 {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            return Push::Full;
        }
        match self.tx.try_send(Message::Text(frame.clone())) {
            Ok(()) => Push::Queued,
            Err(e) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                match e {
                    flume::TrySendError::Full(_) => Push::Full,
                    flume::TrySendError::Disconnected(_) => Push::Closed,
                }
            }
        }
    }

    /// Queues a frame, waiting for room (the reader's replies: a client that floods us while not
    /// reading stalls its own reads, not the server).
    pub async fn send(&self, msg: Message) -> bool {
        let len = message_len(&msg);
        self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        let ok = self.tx.send_async(msg).await.is_ok();
        if !ok {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
        }
        ok
    }

    /// Marks `len` bytes as taken off the queue by the writer.
    pub fn release(&self, msg: &Message) {
        self.queued_bytes
            .fetch_sub(message_len(msg), Ordering::Relaxed);
    }

    /// Asks the connection to close with `code`. The first code asked for wins.
    pub fn close(&self, code: CloseCode) {
        let _ =
            self.close_code
                .compare_exchange(0, code.code(), Ordering::AcqRel, Ordering::Acquire);
        self.cancel.cancel();
    }

    /// The close code asked for, if any. A cancelled parent (server shutdown) means `going away`.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self.close_code.load(Ordering::Acquire) {
            0 if self.cancel.is_cancelled() => Some(CloseCode::GoingAway),
            0 => None,
            c => CloseCode::from_code(c),
        }
    }

    /// Resolves when the connection should close.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Whether a close was asked for.
    pub fn is_closing(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

fn message_len(msg: &Message) -> usize {
    match msg {
        Message::Text(t) => t.len(),
        _ => 0,
    }
}
