//! The WebSocket handshake: origin and per-IP rate checks, token verification and the user
//! lookup, then the upgrade handed to a connection task.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::forwarded::client_addr;
use super::SocketPermit;
use crate::auth::{self, AuthError};
use crate::connection::{self, Admitted};
use crate::history::Recover;
use crate::layer::GroupName;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::ws::upgrade::Upgrade;

/// Why a WebSocket request is refused before the upgrade (an HTTP status; browsers cannot read a
/// close code they never got).
fn refuse(
    state: &AppState,
    client: Option<IpAddr>,
    status: StatusCode,
    reason: &'static str,
) -> Response {
    Metrics::inc(&state.metrics().handshake_refusals, reason);
    tracing::info!(
        reason,
        status = status.as_u16(),
        client = client.map(tracing::field::display),
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

pub(super) async fn ws_handler(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, _body): (Parts, _) = req.into_parts();
    let upgrade = match Upgrade::from_parts(&mut parts) {
        Ok(u) => u,
        Err(e) => {
            Metrics::inc(&state.metrics().handshake_refusals, "not_websocket");
            return e.into_response();
        }
    };
    // The TCP peer, or behind a `--trusted-proxy` the client it forwards for.
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| client_addr(&state, c.0.ip(), &parts.headers));
    // Counted before any other check: every handshake attempt spends the address's budget.
    if client.is_some_and(|ip| !state.handshake_allowed(ip)) {
        let mut refused = refuse(&state, client, StatusCode::TOO_MANY_REQUESTS, "ip_rate");
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return refused;
    }
    let headers = &parts.headers;
    if !origin_allowed(&state.config().allowed_origins, headers) {
        return refuse(&state, client, StatusCode::FORBIDDEN, "origin");
    }
    let token = auth::extract_token(parts.uri.query(), headers);
    // The client offered `bearer, <JWT>`: the handshake must select `bearer`.
    let protocol = token
        .as_ref()
        .is_some_and(|(_, sub)| *sub)
        .then_some("bearer");
    let recover = Recover::from_query(parts.uri.query());
    let lookup = authenticate(&state, token.as_ref().map(|(t, _)| t.as_str()), recover);
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
        tracing::info!(
            reason = e.reason(),
            error = %e,
            user_agent = agent,
            client = client.map(tracing::field::display),
            "websocket unauthenticated"
        );
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

async fn authenticate(
    state: &AppState,
    token: Option<&str>,
    recover: Recover,
) -> Result<Admitted, AuthError> {
    let claims = state.verifier().verify(token.ok_or(AuthError::Missing)?)?;
    GroupName::for_user(&claims.user_id).ok_or(AuthError::BadUserId)?;
    let user = state.directory().lookup(&claims).await?;
    Ok(Admitted {
        user,
        exp: claims.exp,
        recover,
    })
}
