//! One client connection: tungstenite performs the HTTP upgrade, then server frames are read
//! straight from the `TcpStream` by a [`wire::Reader`] and the client's few frames (pongs, close)
//! are written masked.
//!
//! The upgrade runs over [`Upgrade`], which never reads past the end of the response headers, so
//! tungstenite buffers nothing the reader would then miss and the `TcpStream` can be taken back.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;

use super::wire::{self, Msg, Reader, WireError};

/// Why a connection cannot be read any more.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The server broke the protocol.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The server closed the TCP stream without a close frame.
    #[error("connection closed without a close frame")]
    Eof,
}

/// An upgraded WebSocket connection, read without tungstenite.
pub struct Client {
    tcp: TcpStream,
    reader: Reader,
}

impl Client {
    /// Performs the WebSocket upgrade of `request` over `tcp` (HTTP errors come back as
    /// tungstenite's, e.g. `WsError::Http` with the status).
    pub async fn upgrade(request: Request, tcp: TcpStream) -> Result<Self, WsError> {
        // tungstenite allocates this read buffer for the socket it hands back, which is dropped
        // at once: keep it small.
        let config = WebSocketConfig::default().read_buffer_size(wire::READ_BUFFER);
        let io = Upgrade { tcp, matched: 0 };
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, io, Some(config)).await?;
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        Ok(Self {
            tcp: ws.into_inner().tcp,
            reader: Reader::new(seed),
        })
    }

    /// Writes queued client frames (pongs, the close reply), then reads what the socket has.
    /// Cancel-safe for the read; a cancelled write leaves the rest queued.
    pub async fn fill(&mut self) -> Result<(), ClientError> {
        self.flush().await?;
        let n = self.tcp.read(self.reader.spare()).await?;
        if n == 0 {
            return Err(ClientError::Eof);
        }
        self.reader.filled(n);
        Ok(())
    }

    /// The next buffered message (`None`: [`Client::fill`] first); pings are answered.
    #[inline]
    pub fn next_msg(&mut self) -> Result<Option<Msg<'_>>, WireError> {
        self.reader.next_msg()
    }

    /// Writes the queued client frames.
    pub async fn flush(&mut self) -> io::Result<()> {
        while !self.reader.output().is_empty() {
            let n = self.tcp.write(self.reader.output()).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.reader.written(n);
        }
        Ok(())
    }

    /// Sends a text frame (and whatever pongs are queued before it).
    pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        self.reader.queue_text(payload);
        self.flush().await
    }

    /// Leaves abruptly: a TCP reset (linger 0), no close frame, as a killed process or a
    /// dropped NAT entry looks to the server.
    pub fn reset(self) {
        let _ = self.tcp.set_zero_linger();
    }

    /// Leaves like a closed tab: close 1000 and the TCP close, without waiting for the server's
    /// answer (what it still sends is never read). Unbounded: the caller bounds it.
    pub async fn leave(mut self) {
        self.reader.queue_close(wire::NORMAL);
        let _ = self.flush().await;
        let _ = self.tcp.shutdown().await;
    }

    /// Closes politely: sends close 1000 (or the echo already queued after a server close) and,
    /// unless the server closed first, reads until its close frame or EOF. Unbounded: the caller
    /// bounds it with a timeout.
    pub async fn close(&mut self, server_closed: bool) {
        self.reader.queue_close(wire::NORMAL);
        if self.flush().await.is_err() || server_closed {
            let _ = self.tcp.shutdown().await;
            return;
        }
        loop {
            match self.next_msg() {
                Ok(Some(Msg::Close(_))) | Err(_) => break,
                Ok(Some(_)) => continue,
                Ok(None) => {}
            }
            if self.fill().await.is_err() {
                break;
            }
        }
        let _ = self.tcp.shutdown().await;
    }
}

/// The TCP stream during the upgrade: reads end at the blank line that ends the response
/// headers (a 101 has no body), so the first frames stay in the socket for the [`Reader`].
struct Upgrade {
    tcp: TcpStream,
    /// How much of `\r\n\r\n` the bytes read so far end with.
    matched: usize,
}

/// Advances the `\r\n\r\n` matcher over `bytes`: the new state and how many bytes it consumed
/// (all of them, or up to and including the terminator).
fn scan(mut m: usize, bytes: &[u8]) -> (usize, usize) {
    for (i, &c) in bytes.iter().enumerate() {
        m = match (m, c) {
            (0 | 2, b'\r') | (1 | 3, b'\n') => m + 1,
            (_, b'\r') => 1,
            _ => 0,
        };
        if m == 4 {
            return (m, i + 1);
        }
    }
    (m, bytes.len())
}

impl AsyncRead for Upgrade {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.matched == 4 {
            return Poll::Ready(Ok(())); // the headers are complete: nothing more is tungstenite's
        }
        let mut peek = [0u8; 1024];
        let mut peeked = ReadBuf::new(&mut peek);
        ready!(this.tcp.poll_peek(cx, &mut peeked))?;
        let (_, take) = scan(this.matched, peeked.filled());
        let dst = buf.initialize_unfilled_to(take.min(buf.remaining()));
        match this.tcp.try_read(dst) {
            Ok(n) => {
                this.matched = scan(this.matched, &dst[..n]).0;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Upgrade {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::scan;

    #[test]
    fn header_end_is_found_across_reads() {
        let head = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n\r\n\x81\x02hi";
        let end = head.len() - 4;
        assert_eq!(scan(0, head), (4, end));
        for split in 1..end {
            let (m, used) = scan(0, &head[..split]);
            assert_eq!(used, split);
            assert_eq!(
                scan(m, &head[split..]),
                (4, end - split),
                "split at {split}"
            );
        }
        assert_eq!(
            scan(0, b"a\r\r\n\r\nb"),
            (4, 6),
            "a stray CR restarts the match"
        );
    }
}
