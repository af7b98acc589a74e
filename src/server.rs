//! The HTTP/WebSocket server: routes, the upgrade handler and `run` with graceful shutdown.

use std::future::Future;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::serve::ListenerExt;
use axum::Router;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

use crate::auth::{self, AuthError};
use crate::config::READ_BUFFER_BYTES;
use crate::connection;
use crate::directory::User;
use crate::error::Result;
use crate::layer::GroupName;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Accept backlog. std/tokio's `bind` uses 1024, which overflows in a connect storm (thousands of
/// handshakes in flight): every dropped SYN costs the client a 1 s retransmit. The kernel caps it at
/// `net.core.somaxconn` (4096 on current Linux).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Slack on top of the drain bound for close frames and task teardown.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(2);

/// The application's routes over `state`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config().max_body_bytes;
    let api = Router::new()
        .route("/api/notify", post(crate::api::notify))
        .route("/api/group_send", post(crate::api::group_send))
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        // The reference route is `ws/notifications/$`; ours also takes it without the slash.
        .route("/ws/notifications/", any(ws_handler))
        .route("/ws/notifications", any(ws_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .merge(api)
        .with_state(state)
}

/// Serves `listener` until `shutdown` resolves, then closes every client with 1001 after draining
/// its queue (bounded by `shutdown_timeout`) and returns.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let token = state.shutdown_token().clone();
    let listener = listener.tap_io(|tcp| {
        // Notifications are small and latency-bound: never wait for Nagle.
        let _ = tcp.set_nodelay(true);
    });
    let stop = token.clone();
    axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown => {},
                _ = stop.cancelled() => {},
            }
            tracing::info!("shutting down: closing connections with 1001");
            stop.cancel();
        })
        .await?;
    let tracker = state.tracker();
    tracker.close();
    if tokio::time::timeout(
        state.config().shutdown_timeout + SHUTDOWN_SLACK,
        tracker.wait(),
    )
    .await
    .is_err()
    {
        tracing::warn!(
            left = tracker.len(),
            "shutdown bound reached with connections still open"
        );
    }
    Ok(())
}

/// Binds `addr` with [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (a restart is not refused while old
/// connections linger in TIME_WAIT).
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket.listen(LISTEN_BACKLOG)?)
}

async fn ws_handler(
    State(state): State<AppState>,
    ws: WebSocketUpgrade,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let cfg = state.config();
    let mut ws = ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(cfg.max_frame_bytes)
        .max_frame_size(cfg.max_frame_bytes);
    let token = auth::extract_token(query.as_deref(), &headers);
    if token
        .as_ref()
        .is_some_and(|(_, via_subprotocol)| *via_subprotocol)
    {
        // The client offered `bearer, <JWT>`; the handshake must select `bearer`.
        ws = ws.protocols(["bearer"]);
    }
    let user = authenticate(&state, token.as_ref().map(|(t, _)| t.as_str())).await;
    if let Err(e) = &user {
        Metrics::inc(&state.metrics().auth_failures, e.reason());
        let peer = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info!(reason = e.reason(), error = %e, user_agent = peer, "websocket unauthenticated");
    }
    let tracked = state.clone();
    ws.on_upgrade(move |socket| {
        tracked
            .tracker()
            .clone()
            .track_future(connection::run(socket, state, user))
    })
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
