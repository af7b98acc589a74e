//! The HTTP/WebSocket server: routes, the accept loop with its deadlines and limits, the upgrade
//! handler, and [`run`] with graceful shutdown.
//!
//! courier runs its own accept loop over hyper's HTTP/1 connections (not `axum::serve`) for three
//! reasons: every accepted socket gets a handshake deadline; accept errors (EMFILE) are counted and
//! backed off instead of spinning; and an upgraded connection comes back as the plain `TcpStream`
//! (or that socket and its rustls session, with `--tls-cert`) that the connection task writes
//! pre-encoded frames to.

mod accept;
mod forwarded;
mod handshake;
mod upkeep;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::Router;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::error::Result;
use crate::protocol::CloseCode;
use crate::state::AppState;
use crate::tls::{self, Tls};
pub(crate) use accept::SocketPermit;
pub use accept::RESERVED_DESCRIPTORS;
use accept::{accept_loop, socket_budget, Limits, ADMIN_CONNECTIONS};
use handshake::ws_handler;

/// Accept backlog. std/tokio's `bind` uses 1024, which overflows in a connect storm (thousands of
/// handshakes in flight): every dropped SYN costs the client a 1 s retransmit. The kernel caps it at
/// `net.core.somaxconn` (4096 on current Linux).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Slack on top of the drain and linger bounds for close frames and task teardown.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(2);

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
///
/// With [`Config::tls`](crate::Config::tls) the main listener speaks TLS (the admin listener
/// stays plain) and SIGHUP reloads the certificate; an unreadable or invalid certificate or key
/// fails here, before anything is served.
pub async fn run_with_admin(
    listener: TcpListener,
    admin: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let tls = state.config().tls.as_ref().map(Tls::new).transpose()?;
    let reloader = match &tls {
        Some(tls) => Some(tls::reload_on_hangup(tls.clone(), state.clone())?),
        None => None,
    };
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
    let upkeep = upkeep::spawn(&state);
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
        tls,
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
                None,
                http.clone(),
            );
            tokio::join!(main_loop, admin_loop);
        }
        None => main_loop.await,
    }
    trigger.abort();
    if let Some(reloader) = reloader {
        reloader.abort();
    }
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
    upkeep.stop().await;
    // Tidy broker state (core layer: remove this process's group memberships).
    state.hub().layer().close().await;
    Ok(())
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

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().render(),
    )
}
