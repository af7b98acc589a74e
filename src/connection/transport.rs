//! The connection's byte stream under both hot paths: plain TCP, or TLS driven through rustls's
//! sans-I/O API on the same socket, by the same readiness-based task.
//!
//! The plain arm forwards to `TcpStream`'s `try_read`/`try_write_vectored`/readiness: one match
//! on the variant is all it adds (no allocation, copy or syscall). The TLS arm moves bytes through
//! the rustls session: socket → `read_tls` → `process_new_packets` → `reader()` on the way in;
//! `writer()` (one call per writer batch, so one `write_tls` sends many frames) → `write_tls` →
//! socket on the way out. Copying plaintext into rustls to encrypt it is the one copy TLS adds.
//!
//! Partial writes resume exactly where they stopped, as on plain TCP: rustls takes plaintext only
//! once its previous records are all on the socket, so the writer's offset counts what rustls took
//! and rustls's own buffer holds at most one batch of records, flushed before anything new.

use std::io::{self, IoSlice, Read, Write};
use std::task::{ready, Context, Poll};

use rustls::ServerConnection;
use tokio::net::TcpStream;

/// A connection's socket, plain or TLS.
pub(crate) enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS. Boxed: a rustls session is about a kilobyte, which a plain connection should not
    /// carry in its task.
    Tls(Box<TlsIo>),
}

/// A TLS session taken back from tokio-rustls after the upgrade, over its socket.
pub(crate) struct TlsIo {
    sock: TcpStream,
    session: ServerConnection,
    /// rustls may hold decrypted bytes the last read left (it filled the caller's buffer): the
    /// next read must not wait for the socket to become readable.
    buffered: bool,
}

impl Transport {
    /// The TLS transport over `sock` with `session`, as tokio-rustls hands them back. Marked
    /// buffered: rustls may hold plaintext read past the upgrade request.
    pub(crate) fn tls(sock: TcpStream, session: ServerConnection) -> Self {
        Self::Tls(Box::new(TlsIo {
            sock,
            session,
            buffered: true,
        }))
    }

    /// Ready when a read may return bytes (or EOF).
    #[inline]
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(sock) => sock.poll_read_ready(cx),
            Self::Tls(t) if t.buffered => Poll::Ready(Ok(())),
            Self::Tls(t) => t.sock.poll_read_ready(cx),
        }
    }

    /// Ready when a write may take bytes.
    #[inline]
    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(sock) => sock.poll_write_ready(cx),
            Self::Tls(t) => t.sock.poll_write_ready(cx),
        }
    }

    /// Reads what is there without waiting: `Ok(0)` is the end of the stream, `WouldBlock`
    /// nothing yet (and, as `TcpStream::try_read`, readiness cleared).
    #[inline]
    pub(crate) fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(sock) => sock.try_read(buf),
            Self::Tls(t) => t.try_read(buf),
        }
    }

    /// Writes from `bufs` without waiting; returns how many bytes were taken (for TLS: taken by
    /// rustls, sent as far as the socket accepts). `WouldBlock`: nothing taken.
    #[inline]
    pub(crate) fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Plain(sock) => sock.try_write_vectored(bufs),
            Self::Tls(t) => t.try_write_vectored(bufs),
        }
    }

    /// Ready once everything taken is on the socket (plain TCP: always; TLS: rustls's records).
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(_) => Poll::Ready(Ok(())),
            Self::Tls(t) => loop {
                match t.flush() {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready!(t.sock.poll_write_ready(cx))?;
                    }
                    done => return Poll::Ready(done),
                }
            },
        }
    }

    /// Queues TLS's close_notify after what was written (send it with [`poll_flush`]); plain TCP
    /// has nothing to say.
    ///
    /// [`poll_flush`]: Self::poll_flush
    pub(crate) fn close_notify(&mut self) {
        if let Self::Tls(t) = self {
            t.session.send_close_notify();
        }
    }
}

impl TlsIo {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.session.reader().read(buf) {
                Ok(n) => {
                    // A full buffer may have left more; `Ok(0)` is the peer's close_notify.
                    self.buffered = n == buf.len();
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.buffered = false,
                // `UnexpectedEof`: the socket ended without close_notify.
                Err(e) => return Err(e),
            }
            // Each turn consumes socket bytes, so this ends when the socket has nothing more
            // (`WouldBlock`, returned as is) or records turn into plaintext.
            if self.session.read_tls(&mut SyncIo(&self.sock))? == 0 {
                return Ok(0);
            }
            if let Err(e) = self.session.process_new_packets() {
                // rustls queued an alert telling the client why; best effort.
                let _ = self.flush();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // What the records asked rustls to answer (a KeyUpdate): as far as the socket takes
            // it now; the writer sends the rest before its next batch.
            self.flush_best_effort()?;
        }
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // Earlier records first: until they are out, take nothing new (the caller's offset then
        // means what it means on plain TCP).
        self.flush()?;
        let taken = self.session.writer().write_vectored(bufs)?;
        self.flush_best_effort()?;
        Ok(taken)
    }

    /// Writes rustls's pending records; `WouldBlock` if the socket filled first.
    fn flush(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            if self.session.write_tls(&mut SyncIo(&self.sock))? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// [`flush`](Self::flush), where a full socket is not an error.
    fn flush_best_effort(&mut self) -> io::Result<()> {
        match self.flush() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }
}

/// The socket as rustls's blocking-style `Read`/`Write`, over tokio's non-blocking `try_*` calls
/// (so `WouldBlock` clears readiness like any other `try_*`).
struct SyncIo<'a>(&'a TcpStream);

impl Read for SyncIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for SyncIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
