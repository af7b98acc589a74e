//! HTTP publishing API (ours): `POST /api/notify` and `POST /api/group_send`, guarded by `X-API-Key`.
//!
//! A batch is validated whole before anything is sent: a 400 means nothing was published.

pub(crate) mod body;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::layer::GroupName;
use crate::protocol;
use crate::state::AppState;

/// Why a publish request was refused; each maps to one status in [`IntoResponse`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No API key is configured (403).
    #[error("publish API disabled: start courier with --api-key")]
    Disabled,
    /// Missing or wrong `X-API-Key` (401).
    #[error("missing or invalid X-API-Key")]
    Unauthorized,
    /// Body is not what the endpoint takes (400); nothing was published.
    #[error("{0}")]
    BadRequest(String),
    /// Body over the limit (413).
    #[error("request body too large")]
    TooLarge,
    /// The channel layer could not publish (503). The cause is logged, never sent: it may name
    /// hosts and internals the publisher has no business seeing.
    #[error("channel layer unavailable")]
    Unavailable(#[source] crate::Error),
    /// The process is stopping and its layer is the in-process one (503, `Retry-After: 1`): an
    /// event accepted now would reach no client (they are being closed 1001) and no history
    /// (the next process starts a new epoch), so it is refused and the publisher retries
    /// against the restarted or another process. Redis layers keep accepting: the event goes
    /// to the other processes and the shared history.
    #[error("shutting down")]
    ShuttingDown,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Disabled => StatusCode::FORBIDDEN,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(ref cause) => {
                tracing::warn!(error = %cause, "publish refused: channel layer unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::ShuttingDown => {
                let body = Json(json!({ "error": self.to_string() }));
                let retry = [(header::RETRY_AFTER, "1")];
                return (StatusCode::SERVICE_UNAVAILABLE, retry, body).into_response();
            }
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// The body of an authorized publish request. Checking the key before reading the body means an
/// unauthenticated client never makes the server buffer or parse anything.
pub struct PublishBody(Bytes);

impl FromRequest<AppState> for PublishBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        check_key(state, req.headers())?;
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|r| match r.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
                _ => ApiError::BadRequest(r.body_text()),
            })?;
        // Checked once the body is in, right before publishing: a request in flight when the
        // stop begins is refused too (the listener stops accepting new ones then).
        if state.shutdown_token().is_cancelled() && state.hub().layer().is_local() {
            return Err(ApiError::ShuttingDown);
        }
        Ok(Self(body))
    }
}

/// A publish body's bytes as a JSON tree (`group_send`'s first step).
fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))
}

fn check_key(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = state
        .config()
        .api_key
        .as_deref()
        .ok_or(ApiError::Disabled)?;
    let given = headers
        .get("x-api-key")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if bool::from(expected.as_bytes().ct_eq(given)) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// `POST /api/notify`: one `{"user_id","type","data"}` object, or an array of them.
///
/// The hub decides how the batch travels ([`Hub::notify_many`](crate::Hub)).
pub async fn notify(
    State(state): State<AppState>,
    PublishBody(body): PublishBody,
) -> Result<Response, ApiError> {
    let batch = body::notify_batch(&body)?;
    state
        .hub()
        .notify_many(&batch)
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(accepted(batch.len()))
}

/// `POST /api/group_send`: `{"group": name, "message": {"type": …, …}}`, as Channels' `group_send`.
pub async fn group_send(
    State(state): State<AppState>,
    PublishBody(body): PublishBody,
) -> Result<Response, ApiError> {
    let mut body = json_body(&body)?;
    let bad = |m: &str| ApiError::BadRequest(m.to_owned());
    let group = body
        .get("group")
        .and_then(Value::as_str)
        .and_then(GroupName::new)
        .ok_or_else(|| {
            bad("\"group\" must match ^[a-zA-Z0-9\\-_.]+$ and be shorter than 100 characters")
        })?;
    let Some(Value::Object(message)) = body.get_mut("message").map(Value::take) else {
        return Err(bad("\"message\" must be an object"));
    };
    protocol::event_frame(&message).map_err(|e| bad(&e.to_string()))?;
    state
        .hub()
        .group_send(&group, &message)
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(accepted(1))
}

fn accepted(n: usize) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "accepted": n }))).into_response()
}

#[cfg(test)]
mod properties;
