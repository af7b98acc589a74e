//! The write half of a connection: batches taken from the outbox, written with one vectored
//! `write` each (over TLS: one rustls write and one `write_tls`), partial writes resumed where
//! they stopped.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::task::{ready, Context, Poll};

use bytes::Bytes;

use super::transport::Transport;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, KEEP_SLOTS};
use crate::protocol::CloseCode;

/// Frames handed to one `writev` (Linux takes up to 1024; 64 × ~160 B is ~10 KB, past which a
/// bigger batch buys nothing).
const IOV: usize = 64;
/// Batches written per poll before the task yields to others.
const BATCHES_PER_POLL: usize = 16;

/// What the writer has taken and not yet written.
#[derive(Default)]
pub(crate) struct Writer {
    batch: VecDeque<Bytes>,
    /// Bytes of `batch.front()` already written.
    offset: usize,
    /// Bytes written since the outbox last heard of it.
    written: usize,
}

impl Writer {
    /// Writes until the queue is empty (pending: the next push wakes the task), the socket is full
    /// (pending: writability wakes it), or a close was asked for (ready with the code, whatever
    /// was taken still in the batch).
    pub(crate) fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Transport,
        out: &Outbox,
        metrics: &Metrics,
    ) -> Poll<io::Result<CloseCode>> {
        for _ in 0..BATCHES_PER_POLL {
            if self.batch.is_empty() {
                let written = std::mem::take(&mut self.written);
                match out.poll_take(cx, &mut self.batch, written) {
                    Poll::Ready(Some(code)) => return Poll::Ready(Ok(code)),
                    Poll::Ready(None) => {}
                    Poll::Pending => {
                        self.shrink();
                        // Parked on the outbox; TLS records not yet on the socket wake it too.
                        ready!(io.poll_flush(cx))?;
                        return Poll::Pending;
                    }
                }
            }
            let frames = ready!(self.poll_write_batch(cx, io, out))?;
            metrics.writer_batch(frames);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Writes what is in the batch (no new frames): for the close path.
    pub(crate) fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Transport,
        out: &Outbox,
    ) -> Poll<io::Result<()>> {
        while !self.batch.is_empty() {
            ready!(self.poll_write_batch(cx, io, out))?;
        }
        ready!(io.poll_flush(cx))?;
        out.release(std::mem::take(&mut self.written));
        Poll::Ready(Ok(()))
    }

    /// Writes the batch and everything still queued: a draining close (the outbox already
    /// refuses pushes, so this ends).
    pub(crate) fn poll_drain_queue(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Transport,
        out: &Outbox,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_drain(cx, io, out))?;
            // With a close set, taking never parks: it yields what is left, or nothing.
            let _ = out.poll_take(cx, &mut self.batch, 0);
            if self.batch.is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// Keeps only the frame a partial write has started (the stream must stay well-framed), then
    /// appends `frame`: what a non-draining close sends.
    pub(crate) fn replace_with(&mut self, out: &Outbox, frame: Bytes) {
        out.count_unqueued(frame.len());
        let keep = usize::from(self.offset > 0);
        self.written += self.batch.iter().skip(keep).map(Bytes::len).sum::<usize>();
        self.batch.truncate(keep);
        self.batch.push_back(frame);
    }

    /// Appends `frame` after what is taken (a draining close's last frame).
    pub(crate) fn append(&mut self, out: &Outbox, frame: Bytes) {
        out.count_unqueued(frame.len());
        self.batch.push_back(frame);
    }

    /// One `writev` of up to [`IOV`] frames; returns how many frames it completed.
    fn poll_write_batch(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Transport,
        out: &Outbox,
    ) -> Poll<io::Result<u64>> {
        loop {
            if io.poll_write_ready(cx)?.is_pending() {
                // Parked on a full socket: let a close asked for meanwhile wake the task.
                out.park(cx);
                return Poll::Pending;
            }
            let mut slices = [IoSlice::new(&[]); IOV];
            let mut n = 0;
            for (i, f) in self.batch.iter().take(IOV).enumerate() {
                slices[i] = IoSlice::new(if i == 0 { &f[self.offset..] } else { f });
                n += 1;
            }
            match io.try_write_vectored(&slices[..n]) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(wrote) => return Poll::Ready(Ok(self.advance(wrote))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn advance(&mut self, mut wrote: usize) -> u64 {
        self.written += wrote;
        let mut frames = 0;
        while let Some(front) = self.batch.front() {
            let left = front.len() - self.offset;
            if wrote < left {
                self.offset += wrote;
                break;
            }
            wrote -= left;
            self.offset = 0;
            self.batch.pop_front();
            frames += 1;
        }
        frames
    }

    /// Gives a burst's high-water storage back when the connection goes idle.
    fn shrink(&mut self) {
        if self.batch.capacity() > KEEP_SLOTS {
            self.batch = VecDeque::new();
        }
    }
}
