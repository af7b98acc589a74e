//! The accept loop: descriptor and pending-handshake budgets, accept-error backoff, and each
//! socket's TLS handshake (with `--tls-cert`) and HTTP/1 exchange under its handshake deadline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::SHUTDOWN_SLACK;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::tls::Tls;

/// First pause after a failed accept; doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Connections the admin listener serves at once.
pub(super) const ADMIN_CONNECTIONS: usize = 16;
/// Descriptors kept out of the main listener's budget: the admin listener's connections, the
/// layer's and user directory's connections, log files. With them reserved the main listener
/// never drives the process into EMFILE, so health checks and the broker keep working.
pub const RESERVED_DESCRIPTORS: usize = ADMIN_CONNECTIONS + 48;

/// A socket's share of the descriptor budget, held from accept until the socket closes —
/// through the HTTP exchange and, after an upgrade, by the connection task.
#[derive(Clone)]
pub(crate) struct SocketPermit(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// How many sockets the main listener may hold open at once: the open-file limit less
/// [`RESERVED_DESCRIPTORS`] and the descriptors already open.
pub(super) fn socket_budget() -> usize {
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    let open = std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count());
    (limit as usize)
        .saturating_sub(RESERVED_DESCRIPTORS + open)
        .max(1)
}

/// What a listener may hold open at once.
pub(super) struct Limits {
    /// Sockets not yet past their first request.
    pub(super) pending: Arc<Semaphore>,
    /// Sockets in all (the descriptor budget); `None`: the admin listener, which lives on the
    /// reserve.
    pub(super) sockets: Option<Arc<Semaphore>>,
}

/// Accepts until shutdown: each socket first gets its permits — waiting here when none is free,
/// so the kernel backlog absorbs a storm instead of the process running out of descriptors — and
/// then a task serving HTTP/1 on it, over TLS when `tls` is given.
pub(super) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    state: AppState,
    limits: Limits,
    tls: Option<Tls>,
    http: TaskTracker,
) {
    let token = state.shutdown_token().clone();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let socket = match &limits.sockets {
            Some(sockets) => tokio::select! {
                _ = token.cancelled() => return,
                p = sockets.clone().acquire_owned() => match p {
                    Ok(p) => Some(SocketPermit(Arc::new(p))),
                    Err(_) => return,
                },
            },
            None => None,
        };
        let permit = tokio::select! {
            _ = token.cancelled() => return,
            p = limits.pending.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let accepted = tokio::select! {
            _ = token.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                let conn = serve(
                    tcp,
                    peer,
                    router.clone(),
                    state.clone(),
                    socket,
                    tls.clone(),
                );
                http.spawn(async move {
                    conn.await;
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: retrying at once would spin; the listener keeps its
                // backlog meanwhile. Logged at most once per backoff step.
                let reason = accept_error_reason(&e);
                Metrics::inc(&state.metrics().accept_errors, reason);
                tracing::warn!(error = %e, reason, pause_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {},
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

fn accept_error_reason(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(24) => "emfile",
        Some(23) => "enfile",
        Some(105) => "enobufs",
        Some(12) => "enomem",
        _ => "other",
    }
}

/// One accepted socket: its TLS handshake when the listener has TLS, then HTTP/1; the handshake
/// deadline runs from accept, so it bounds the TLS handshake and the first request together.
async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    state: AppState,
    socket: Option<SocketPermit>,
    tls: Option<Tls>,
) {
    // Notifications are small and latency-bound: never wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let cfg = state.config();
    if cfg.send_buffer_bytes > 0 {
        // Best effort: a refused size leaves the kernel's default, which only delays a 4008.
        let _ = SockRef::from(&tcp).set_send_buffer_size(cfg.send_buffer_bytes);
    }
    let deadline = Instant::now() + cfg.handshake_timeout;
    let Some(tls) = tls else {
        return serve_http(tcp, peer, router, state, socket, deadline).await;
    };
    let handshake = tokio::select! {
        s = tls.handshake(tcp, deadline, state.metrics()) => s,
        _ = state.shutdown_token().cancelled() => return,
    };
    if let Some(stream) = handshake {
        serve_http(stream, peer, router, state, socket, deadline).await;
    }
}

/// HTTP/1 with upgrades on `io`, `deadline` on its first request's headers (and the handshake
/// timeout on every later one's), graceful close at shutdown.
async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    state: AppState,
    socket: Option<SocketPermit>,
    deadline: Instant,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = state.config();
    let started = Arc::new(AtomicBool::new(false));
    let seen = started.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        seen.store(true, Ordering::Relaxed);
        req.extensions_mut().insert(ConnectInfo(peer));
        if let Some(p) = &socket {
            // An upgrade takes it along, so the socket stays counted for its whole life.
            req.extensions_mut().insert(p.clone());
        }
        router.clone().oneshot(req.map(Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.handshake_timeout)
        .max_buf_size(cfg.max_header_bytes);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let deadline = tokio::time::sleep_until(deadline);
    tokio::pin!(deadline);
    let token = state.shutdown_token();
    let mut armed = true;
    let no_request = || {
        if !started.load(Ordering::Relaxed) {
            // hyper's header timeout or ours: either way the socket never sent a request.
            Metrics::inc(&state.metrics().handshake_timeouts, "no_request");
        }
    };
    loop {
        tokio::select! {
            _ = &mut conn => return no_request(),
            _ = &mut deadline, if armed => {
                if !started.load(Ordering::Relaxed) {
                    tracing::debug!("handshake deadline: dropping a connection that sent no request");
                    return no_request();
                }
                armed = false;
            }
            _ = token.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_SLACK, conn).await;
                return;
            }
        }
    }
}
