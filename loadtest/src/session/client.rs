//! One client connection: tungstenite performs the HTTP upgrade, then server frames are read
//! straight from the socket by a [`wire::Reader`] and the client's few frames (pongs, close) are
//! written masked.
//!
//! The upgrade runs over [`Upgrade`], which never reads past the end of the response headers, so
//! tungstenite buffers nothing the reader would then miss and the socket can be taken back. Over
//! TLS the bytes after the headers stay in rustls's plaintext buffer, which the next read drains
//! first. The socket is a [`Stream`]: reads match on it, and the plain arm is the `TcpStream`
//! read the tester had before TLS (no allocation, lock or atomic added per read).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;

use super::wire::{self, Msg, Reader, WireError};
use crate::net::Stream;

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
    stream: Stream,
    reader: Reader,
}

impl Client {
    /// Performs the WebSocket upgrade of `request` over `stream` (HTTP errors come back as
    /// tungstenite's, e.g. `WsError::Http` with the status).
    pub async fn upgrade(request: Request, stream: Stream) -> Result<Self, WsError> {
        // tungstenite allocates this read buffer for the socket it hands back, which is dropped
        // at once: keep it small.
        let config = WebSocketConfig::default().read_buffer_size(wire::READ_BUFFER);
        let io = Upgrade { stream, matched: 0 };
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, io, Some(config)).await?;
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        Ok(Self {
            stream: ws.into_inner().stream,
            reader: Reader::new(seed),
        })
    }

    /// Writes queued client frames (pongs, the close reply), then reads what the socket has.
    /// Cancel-safe for the read; a cancelled write leaves the rest queued.
    pub async fn fill(&mut self) -> Result<(), ClientError> {
        self.flush().await?;
        let n = match &mut self.stream {
            Stream::Plain(tcp) => tcp.read(self.reader.spare()).await?,
            Stream::Tls(tls) => tls.read(self.reader.spare()).await?,
        };
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
        match &mut self.stream {
            Stream::Plain(tcp) => {
                while !self.reader.output().is_empty() {
                    let n = tcp.write(self.reader.output()).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    self.reader.written(n);
                }
            }
            Stream::Tls(tls) => {
                while !self.reader.output().is_empty() {
                    let n = tls.write(self.reader.output()).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    self.reader.written(n);
                }
                // rustls may hold records the socket did not take yet (also after a cancelled
                // flush): push them out. Nothing pending costs no syscall.
                tls.flush().await?;
            }
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
        let _ = self.stream.tcp().set_zero_linger();
    }

    /// Leaves like a closed tab: close 1000 and the TCP close, without waiting for the server's
    /// answer (what it still sends is never read). Unbounded: the caller bounds it.
    pub async fn leave(mut self) {
        self.reader.queue_close(wire::NORMAL);
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    /// Closes politely: sends close 1000 (or the echo already queued after a server close) and,
    /// unless the server closed first, reads until its close frame or EOF. Unbounded: the caller
    /// bounds it with a timeout.
    pub async fn close(&mut self, server_closed: bool) {
        self.reader.queue_close(wire::NORMAL);
        if self.flush().await.is_err() || server_closed {
            let _ = self.stream.shutdown().await;
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
        let _ = self.stream.shutdown().await;
    }
}

/// The socket during the upgrade: reads end at the blank line that ends the response headers (a
/// 101 has no body), so the first frames stay in the socket (or rustls's buffer) for the
/// [`Reader`].
struct Upgrade {
    stream: Stream,
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
        match &mut this.stream {
            Stream::Plain(tcp) => {
                let mut peek = [0u8; 1024];
                let mut peeked = ReadBuf::new(&mut peek);
                ready!(tcp.poll_peek(cx, &mut peeked))?;
                let (_, take) = scan(this.matched, peeked.filled());
                let dst = buf.initialize_unfilled_to(take.min(buf.remaining()));
                match tcp.try_read(dst) {
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
            Stream::Tls(tls) => {
                // No peek through TLS: read at most the bytes that could still be part of the
                // terminator (from `matched`, it cannot end sooner than `4 - matched` bytes on),
                // so the read never passes it. The handshake only, so a few small reads of
                // rustls's buffer are fine.
                let want = (4 - this.matched).min(buf.remaining());
                let dst = buf.initialize_unfilled_to(want);
                let mut small = ReadBuf::new(dst);
                ready!(Pin::new(tls.as_mut()).poll_read(cx, &mut small))?;
                let n = small.filled().len();
                this.matched = scan(this.matched, &dst[..n]).0;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for Upgrade {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Over TLS the 101 and the first frame arrive in one record: the frame must still reach
    /// the reader (it waits in rustls's plaintext buffer, not in tungstenite's).
    #[tokio::test]
    #[allow(deprecated)] // ring's provider: see `net::tls`
    async fn a_frame_sent_with_the_101_over_tls_is_read() {
        use std::sync::Arc;
        use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
        use tokio_rustls::rustls::{self, ServerConfig};
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["courier.test".to_owned()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("leaf");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("write");

        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(
                    vec![leaf.der().clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                )
                .expect("config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut tls = acceptor.accept(tcp).await.expect("tls");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                tls.read_exact(&mut byte).await.expect("request");
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head).into_owned();
            let key = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Sec-WebSocket-Key: ")
                        .or(l.strip_prefix("sec-websocket-key: "))
                })
                .expect("key header");
            let mut out = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.trim().as_bytes())
            )
            .into_bytes();
            out.extend_from_slice(b"\x81\x05hello");
            tls.write_all(&out).await.expect("write"); // one write: one TLS record
            tls.flush().await.expect("flush");
            let mut rest = [0u8; 64];
            let _ = tls.read(&mut rest).await; // until the client goes
        });

        let client = crate::net::TlsClient::new(Some(&ca_file), false).expect("client");
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("courier.test").expect("name");
        let stream = client.handshake(tcp, &name).await.expect("handshake");
        let request = "wss://courier.test/ws/"
            .into_client_request()
            .expect("request");
        let mut c = Client::upgrade(request, stream).await.expect("upgrade");
        let got = loop {
            if let Some(m) = c.next_msg().expect("frame") {
                match m {
                    Msg::Text(t) => break t.to_vec(),
                    other => panic!("unexpected {other:?}"),
                }
            }
            tokio::time::timeout(std::time::Duration::from_secs(5), c.fill())
                .await
                .expect("the frame arrives in time")
                .expect("fill");
        };
        assert_eq!(got, b"hello");
        drop(c);
        server.await.expect("server");
    }
}
