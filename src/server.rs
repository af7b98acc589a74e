//! The HTTP/WebSocket server: routes, the accept loop with its deadlines and limits, the upgrade
//! handler, and [`run`] with graceful shutdown.
//!
//! courier runs its own accept loop over hyper's HTTP/1 connections (not `axum::serve`) for three
//! reasons: every accepted socket gets a handshake deadline; accept errors (EMFILE) are counted and
//! backed off instead of spinning; and an upgraded connection comes back as the plain `TcpStream`
//! that the connection task writes pre-encoded frames to.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::auth::{self, AuthError};
use crate::connection;
use crate::directory::User;
use crate::error::Result;
use crate::layer::GroupName;
use crate::metrics::Metrics;
use crate::protocol::CloseCode;
use crate::state::AppState;
use crate::ws::upgrade::Upgrade;

/// Accept backlog. std/tokio's `bind` uses 1024, which overflows in a connect storm (thousands of
/// handshakes in flight): every dropped SYN costs the client a 1 s retransmit. The kernel caps it at
/// `net.core.somaxconn` (4096 on current Linux).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Slack on top of the drain and linger bounds for close frames and task teardown.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(2);
/// First pause after a failed accept; doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Connections the admin listener serves at once.
const ADMIN_CONNECTIONS: usize = 16;
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
fn socket_budget() -> usize {
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    let open = std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count());
    (limit as usize)
        .saturating_sub(RESERVED_DESCRIPTORS + open)
        .max(1)
}

/// The application's routes over `state`.
pub(crate) fn router(state: AppState) -> Router {
    let body_limit = state.config().max_body_bytes;
    let api = Router::new()
        .route("/api/notify", post(crate::api::notify))
        .route("/api/group_send", post(crate::api::group_send))
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        // The reference route is `ws/notifications/$`; ours also takes it without the slash.
        .route("/ws/notifications/", any(ws_handler))
        .route("/ws/notifications", any(ws_handler))
        .merge(admin_router())
        .merge(api)
        .with_state(state)
}

/// `/healthz` and `/metrics`: all the admin listener serves.
fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
}

/// Serves `listener` until `shutdown` resolves, then closes every client with 1001 after draining
/// its queue (bounded by `shutdown_timeout`), closes the channel layer (tidying broker state) and
/// returns.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_with_admin(listener, None, state, shutdown).await
}

/// [`run`], plus an optional admin listener serving only `/healthz` and `/metrics`, with its own
/// connection budget, so health checks answer while the main listener is saturated.
pub async fn run_with_admin(
    listener: TcpListener,
    admin: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let token = state.shutdown_token().clone();
    let stop = token.clone();
    let trigger = tokio::spawn(async move {
        tokio::select! {
            _ = shutdown => {},
            _ = stop.cancelled() => {},
        }
        tracing::info!("shutting down: closing connections with 1001");
        stop.cancel();
    });
    let http = TaskTracker::new();
    let budget = socket_budget();
    tracing::debug!(sockets = budget, "descriptor budget of the main listener");
    let main_loop = accept_loop(
        listener,
        router(state.clone()),
        state.clone(),
        Limits {
            pending: Arc::new(Semaphore::new(state.config().max_pending_handshakes)),
            sockets: Some(Arc::new(Semaphore::new(budget))),
        },
        http.clone(),
    );
    match admin {
        Some(admin) => {
            let admin_loop = accept_loop(
                admin,
                admin_router().with_state(state.clone()),
                state.clone(),
                Limits {
                    pending: Arc::new(Semaphore::new(ADMIN_CONNECTIONS)),
                    sockets: None,
                },
                http.clone(),
            );
            tokio::join!(main_loop, admin_loop);
        }
        None => main_loop.await,
    }
    trigger.abort();
    state.hub().close_all(CloseCode::GoingAway);
    let cfg = state.config();
    let bound = cfg.shutdown_timeout + cfg.close_linger + SHUTDOWN_SLACK;
    http.close();
    let tracker = state.tracker();
    tracker.close();
    let waited = tokio::time::timeout(bound, async {
        tokio::join!(http.wait(), tracker.wait());
    })
    .await;
    if waited.is_err() {
        tracing::warn!(
            left = tracker.len() + http.len(),
            "shutdown bound reached with connections still open"
        );
    }
    // Tidy broker state (core layer: remove this process's group memberships).
    state.hub().layer().close().await;
    Ok(())
}

/// What a listener may hold open at once.
struct Limits {
    /// Sockets not yet past their first request.
    pending: Arc<Semaphore>,
    /// Sockets in all (the descriptor budget); `None`: the admin listener, which lives on the
    /// reserve.
    sockets: Option<Arc<Semaphore>>,
}

/// Accepts until shutdown: each socket first gets its permits — waiting here when none is free,
/// so the kernel backlog absorbs a storm instead of the process running out of descriptors — and
/// then a task serving HTTP/1 on it.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    state: AppState,
    limits: Limits,
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
            Ok((tcp, _peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                let conn = serve_http(tcp, router.clone(), state.clone(), socket);
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

/// One accepted socket: HTTP/1 with upgrades, a deadline on its first request's headers (and on
/// every later one's), graceful close at shutdown.
async fn serve_http(tcp: TcpStream, router: Router, state: AppState, socket: Option<SocketPermit>) {
    // Notifications are small and latency-bound: never wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let cfg = state.config();
    let started = Arc::new(AtomicBool::new(false));
    let seen = started.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        seen.store(true, Ordering::Relaxed);
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
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    let deadline = tokio::time::sleep(cfg.handshake_timeout);
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

/// Binds `addr` with [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (a restart is not refused while old
/// connections linger in TIME_WAIT); with `reuse_port`, also `SO_REUSEPORT`, so several courier
/// processes share the address and the kernel spreads new connections over them.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    Ok(socket.listen(LISTEN_BACKLOG)?)
}

/// Why a WebSocket request is refused before the upgrade (an HTTP status; browsers cannot read a
/// close code they never got).
fn refuse(state: &AppState, status: StatusCode, reason: &'static str) -> Response {
    Metrics::inc(&state.metrics().handshake_refusals, reason);
    tracing::info!(
        reason,
        status = status.as_u16(),
        "websocket handshake refused"
    );
    (status, reason).into_response()
}

fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.is_empty() {
        return true;
    }
    match headers.get(header::ORIGIN) {
        // Not a browser: the Origin check protects browsers' cookies and tokens, nothing else.
        None => true,
        Some(o) => allowed.iter().any(|a| a.as_bytes() == o.as_bytes()),
    }
}

async fn ws_handler(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, _body): (Parts, _) = req.into_parts();
    let upgrade = match Upgrade::from_parts(&mut parts) {
        Ok(u) => u,
        Err(e) => {
            Metrics::inc(&state.metrics().handshake_refusals, "not_websocket");
            return e.into_response();
        }
    };
    let headers = &parts.headers;
    if !origin_allowed(&state.config().allowed_origins, headers) {
        return refuse(&state, StatusCode::FORBIDDEN, "origin");
    }
    let token = auth::extract_token(parts.uri.query(), headers);
    // The client offered `bearer, <JWT>`: the handshake must select `bearer`.
    let protocol = token
        .as_ref()
        .is_some_and(|(_, sub)| *sub)
        .then_some("bearer");
    let lookup = authenticate(&state, token.as_ref().map(|(t, _)| t.as_str()));
    let user = match tokio::time::timeout(state.config().handshake_timeout, lookup).await {
        Ok(u) => u,
        Err(_) => Err(AuthError::Directory("lookup timed out".into())),
    };
    if let Err(e) = &user {
        Metrics::inc(&state.metrics().auth_failures, e.reason());
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info!(reason = e.reason(), error = %e, user_agent = agent, "websocket unauthenticated");
    }
    let permit = parts.extensions.remove::<SocketPermit>();
    let (response, socket) = upgrade.accept(protocol);
    let tracked = state.clone();
    tracked.tracker().spawn(async move {
        if let Some((sock, leftover)) = socket.await {
            connection::run(sock, leftover, state, user).await;
        }
        drop(permit);
    });
    response
}

async fn authenticate(state: &AppState, token: Option<&str>) -> Result<User, AuthError> {
    let claims = state.verifier().verify(token.ok_or(AuthError::Missing)?)?;
    GroupName::for_user(&claims.user_id).ok_or(AuthError::BadUserId)?;
    state.directory().lookup(&claims).await
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().render(),
    )
}
