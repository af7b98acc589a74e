//! TLS on the main listener: rustls (ring) with ALPN `http/1.1`, the certificate reloaded on
//! SIGHUP, and the TLS half of a connection's handshake.
//!
//! The TLS handshake runs inside the handshake deadline and the pending-handshake budget of the
//! HTTP request that follows it (`server::accept`), so a client that stalls mid-handshake is cut
//! like a half-open HTTP one. After the WebSocket upgrade the session is taken back out of
//! tokio-rustls and driven by the connection task itself (`connection::transport`).
//!
//! Reload is by SIGHUP, as nginx and HAProxy users expect (`systemctl reload`, certbot's deploy
//! hook): the files are read again and the next handshakes get the new certificate; open
//! connections keep their session. A failed reload (missing file, bad PEM, a key that is not the
//! certificate's) is logged and counted and the old certificate stays.

mod store;

use std::io::ErrorKind;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, Outcome};
use crate::state::AppState;
use store::CertStore;

/// The first byte a TLS client sends: the record type of its ClientHello (handshake).
const HANDSHAKE_RECORD: u8 = 0x16;
/// What a plain HTTP request on the TLS port is answered (nginx and Go answer it the same way,
/// so a misconfigured `ws://` client learns why instead of seeing a reset).
const PLAIN_HTTP_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
    Content-Type: text/plain; charset=utf-8\r\nContent-Length: 55\r\nConnection: close\r\n\r\n\
    This port speaks TLS: connect with https:// or wss://.\n";
/// Most of a plain request read before answering it (its head fits in this for any client that
/// could be served anyway; `--max-header-bytes` is the plain listener's bound).
const PLAIN_HEAD_MAX: usize = 16 * 1024;

/// The main listener's TLS: a cheap-clone handle to the acceptor and its certificate store.
#[derive(Clone)]
pub(crate) struct Tls(Arc<Inner>);

struct Inner {
    acceptor: TlsAcceptor,
    store: Arc<CertStore>,
}

/// The crypto provider of courier's TLS (and of the load tester's, so both ends negotiate alike).
///
/// Explicitly ring, not the process default: an embedder's other provider changes nothing.
/// rustls 0.23.48 deprecates it for lacking post-quantum key exchange, which only the aws-lc-rs
/// provider has; that one is left out for its C/cmake build (see Cargo.toml). Key exchange
/// X25519 first, as browsers offer it: this rustls lists P-384 first for ring, whose P-384 is
/// portable bignum code — a `perf` profile of 4000 handshakes had 60 % of courier's CPU in it,
/// for 0.09× the plain handshake rate (BENCHMARKS.md, "TLS cost").
pub fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    #[allow(deprecated)]
    let mut ring = rustls::crypto::ring::default_provider();
    ring.kx_groups = vec![X25519, SECP256R1, SECP384R1];
    ring
}

impl Tls {
    /// Reads the certificate and key of `cfg` (an error names the flag and file) and builds the
    /// server configuration: TLS 1.2 and 1.3, no client certificates, ALPN `http/1.1` only (a
    /// client offering only `h2` is refused: WebSocket here is HTTP/1.1's upgrade).
    pub(crate) fn new(cfg: &TlsConfig) -> Result<Self> {
        let provider = Arc::new(provider());
        let store = Arc::new(CertStore::load(cfg, provider.clone())?);
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self(Arc::new(Inner {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            store,
        })))
    }

    /// Reads the certificate files again (see the module doc); true if the new one is served.
    pub(crate) fn reload(&self, metrics: &Metrics) -> bool {
        let result = self.0.store.reload();
        let outcome = match &result {
            Ok(()) => {
                tracing::info!("TLS certificate reloaded");
                "ok"
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload failed; serving the previous one");
                "error"
            }
        };
        metrics
            .tls_reloads
            .get_or_create(&Outcome { result: outcome })
            .inc();
        result.is_ok()
    }

    /// The TLS handshake of an accepted socket, cut at `deadline`; `None` (counted by reason in
    /// `courier_tls_handshake_failures_total`) if it did not complete.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        deadline: Instant,
        metrics: &Metrics,
    ) -> Option<TlsStream<TcpStream>> {
        let reason = match tokio::time::timeout_at(deadline, self.try_handshake(tcp)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(reason)) => reason,
            Err(_) => "timeout",
        };
        tracing::debug!(reason, "TLS handshake did not complete");
        Metrics::inc(&metrics.tls_handshake_failures, reason);
        None
    }

    async fn try_handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, &'static str> {
        // A peek, so the ClientHello is still there for rustls: it costs one syscall per TLS
        // handshake and sorts plain HTTP out before rustls answers it with a binary alert.
        let mut first = [0u8; 1];
        match tcp.peek(&mut first).await {
            Ok(1..) => {}
            _ => return Err("closed"),
        }
        if first[0] != HANDSHAKE_RECORD {
            if first[0].is_ascii_uppercase() {
                refuse_plain_http(tcp).await;
            }
            return Err("not_tls");
        }
        match self.0.acceptor.accept(tcp).await {
            Ok(stream) => Ok(stream),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Err("closed"),
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                Err("invalid")
            }
        }
    }
}

/// Answers a plain HTTP request with 400 and closes. The request head is read first: closing a
/// socket with unread bytes resets it, and the reset can overtake the answer.
async fn refuse_plain_http(mut tcp: TcpStream) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let searched = head.len().saturating_sub(3);
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        let ended = head[searched..].windows(4).any(|w| w == b"\r\n\r\n");
        if ended || head.len() >= PLAIN_HEAD_MAX {
            break;
        }
    }
    if tcp.write_all(PLAIN_HTTP_REFUSAL).await.is_ok() {
        let _ = tcp.shutdown().await;
    }
}

/// Reloads `tls`'s certificate on every SIGHUP until the server shuts down. Registering the
/// handler fails only if the process cannot take signals at all.
pub(crate) fn reload_on_hangup(tls: Tls, state: AppState) -> Result<JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            let stop = state.shutdown_token().clone();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    got = hangups.recv() => match got {
                        Some(()) => {
                            tls.reload(state.metrics());
                        }
                        None => return,
                    },
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        // No SIGHUP: the certificate is read at start only.
        let _ = (tls, state);
        Ok(tokio::spawn(async {}))
    }
}
