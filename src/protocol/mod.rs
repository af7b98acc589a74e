//! Wire format: close codes, server → client frames, and the group-event → frame mapping.
//!
//! Every frame is encoded once — JSON and WebSocket header together — into [`Bytes`]; fan-out
//! clones that handle (a refcount bump), so a notification delivered to 10k sockets is serialized
//! and framed exactly once, and written as it is.

use std::sync::LazyLock;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{value::RawValue, Map, Value};

use crate::history::Position;
use crate::ws;

/// The close codes courier sends, with what a client should do about each (PROTOCOL.md §4).
///
/// This is the one table of close codes in the code base: everything that closes a socket names a
/// variant here, so the code, its reason text and its documentation cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1000: the client asked to close; we answer in kind.
    Normal,
    /// 1001 `going away`: the server is shutting down. Reconnect with backoff (and resume, §7).
    GoingAway,
    /// 1002 `protocol error`: the client broke RFC 6455 framing (unmasked or reserved frames, a
    /// stray continuation, a fragmented control frame). Fix the client.
    ProtocolError,
    /// 1007 `invalid payload`: a text message that is not UTF-8. Fix the client.
    InvalidPayload,
    /// 1009 `message too big`: a client message exceeded the size limit, or arrived in more
    /// fragments than allowed. Fix the client.
    TooBig,
    /// 1011 `internal error`: the server failed in a way that is not the client's fault.
    InternalError,
    /// 1013 `try again later`: the server is at its connection limit. Reconnect later with backoff.
    TryAgainLater,
    /// 4001 `unauthenticated`: no, invalid or expired token, unknown/inactive user (also a user
    /// deactivated while connected), or a bad `refresh`. Refresh the token, then reconnect. The
    /// cause is logged server-side, never sent.
    Unauthenticated,
    /// 4001 `token expired`: the connection's token passed its `exp` plus the grace without a
    /// `refresh`. Refresh the token, reconnect and resume: nothing is lost.
    TokenExpired,
    /// 4002 `ping timeout`: no pong within the pong timeout. Reconnect.
    PingTimeout,
    /// 4003 `too many connections`: this user already has the most connections allowed per user
    /// (the newest is refused; the others stay). Close another one, or reconnect later.
    TooManyConnections,
    /// 4008 `slow consumer`: the outbound queue overflowed. Reconnect; resume (§7), or messages
    /// were missed.
    SlowConsumer,
    /// 4029 `rate limited`: the client sent messages faster than allowed. Reconnect with backoff.
    RateLimited,
}

/// RFC 6455 §5.5: a control frame carries at most 125 bytes, two of which are the code.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

impl CloseCode {
    /// Every code, for documentation tables and tests.
    pub const ALL: [CloseCode; 13] = [
        Self::Normal,
        Self::GoingAway,
        Self::ProtocolError,
        Self::InvalidPayload,
        Self::TooBig,
        Self::InternalError,
        Self::TryAgainLater,
        Self::Unauthenticated,
        Self::TokenExpired,
        Self::PingTimeout,
        Self::TooManyConnections,
        Self::SlowConsumer,
        Self::RateLimited,
    ];

    /// The numeric code on the wire.
    pub const fn code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::ProtocolError => 1002,
            Self::InvalidPayload => 1007,
            Self::TooBig => 1009,
            Self::InternalError => 1011,
            Self::TryAgainLater => 1013,
            Self::Unauthenticated | Self::TokenExpired => 4001,
            Self::PingTimeout => 4002,
            Self::TooManyConnections => 4003,
            Self::SlowConsumer => 4008,
            Self::RateLimited => 4029,
        }
    }

    /// The reason text sent with the code (always ≤ [`MAX_CLOSE_REASON_BYTES`]).
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Normal => "normal closure",
            Self::GoingAway => "going away",
            Self::ProtocolError => "protocol error",
            Self::InvalidPayload => "invalid payload",
            Self::TooBig => "message too big",
            Self::InternalError => "internal error",
            Self::TryAgainLater => "try again later",
            Self::Unauthenticated => "unauthenticated",
            Self::TokenExpired => "token expired",
            Self::PingTimeout => "ping timeout",
            Self::TooManyConnections => "too many connections",
            Self::SlowConsumer => "slow consumer",
            Self::RateLimited => "rate limited",
        }
    }

    /// Whether queued frames are written before this close frame. Only shutdown drains (a
    /// client told `going away` should have what was already sent to it); every other close
    /// drops the queue so the close frame is next on the wire (a slow consumer's backlog would
    /// otherwise hold it back past the linger).
    pub const fn drains_queue(self) -> bool {
        matches!(self, Self::GoingAway)
    }
}

/// Why a `recover=1` client's position cannot be served (PROTOCOL.md §7): the one table of
/// `resync` reasons. A client that gets any of them refetches its state, then goes on from the
/// position in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// The broker was unreachable; what was published meanwhile is gone (every client).
    BrokerReconnected,
    /// The position is older than the history kept (count, bytes or age bound).
    PositionExpired,
    /// The epoch is unknown: the stream's history was lost or recreated (a restart, an eviction,
    /// a store restored from an older snapshot), or the position was unusable.
    EpochChanged,
}

impl ResyncReason {
    /// Every reason, for documentation tables and tests.
    pub const ALL: [ResyncReason; 3] = [
        Self::BrokerReconnected,
        Self::PositionExpired,
        Self::EpochChanged,
    ];

    /// The `reason` text in the frame (and the metrics label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BrokerReconnected => "broker_reconnected",
            Self::PositionExpired => "position_expired",
            Self::EpochChanged => "epoch_changed",
        }
    }
}

/// The error frame for a client text frame that is not JSON.
pub fn invalid_json() -> Bytes {
    static FRAME: LazyLock<Bytes> =
        LazyLock::new(|| ws::text_frame(r#"{"type":"error","message":"Invalid JSON"}"#));
    FRAME.clone()
}

/// The error frame for a client binary frame (ours: the reference crashes).
pub fn binary_unsupported() -> Bytes {
    static FRAME: LazyLock<Bytes> = LazyLock::new(|| {
        ws::text_frame(r#"{"type":"error","message":"Binary frames are not supported"}"#)
    });
    FRAME.clone()
}

/// `{"type":"connection_established","message":"Connected as <username>","user_id":<id>}`, and
/// on a `recover=1` connection the stream position after it (`"offset"`, `"epoch"`).
pub fn connection_established(username: &str, user_id: &Value, at: Option<&Position>) -> Bytes {
    #[derive(Serialize)]
    struct Frame<'a> {
        r#type: &'static str,
        message: String,
        user_id: &'a Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<&'a str>,
    }
    encode(&Frame {
        r#type: "connection_established",
        message: format!("Connected as {username}"),
        user_id,
        offset: at.map(|p| p.offset),
        epoch: at.map(|p| &*p.epoch),
    })
}

/// `{"type":"resync","data":{"reason":R,"offset":…,"epoch":…}}`: the stream head after a position
/// that could not be served.
pub(crate) fn resync(reason: ResyncReason, head: &Position) -> Bytes {
    frame(
        "resync",
        &serde_json::json!({"reason": reason.as_str(), "offset": head.offset, "epoch": &*head.epoch}),
    )
}

/// `{"type":"refreshed","data":{"exp":<unix seconds>}}`: a `refresh` was accepted.
pub(crate) fn refreshed(exp: u64) -> Bytes {
    frame("refreshed", &serde_json::json!({ "exp": exp }))
}

/// A notification frame built here, with `"offset"` and `"epoch"` after its `data`: the frame a
/// `recover=1` member gets. `plain` must come from [`frame`]/[`frame_raw`] (it ends in `}`).
pub(crate) fn positioned(plain: &[u8], offset: u64, epoch: &str) -> Bytes {
    let body = ws::encode::payload(plain);
    let open = body.strip_suffix(b"}").unwrap_or(body);
    ws::text_frame_sized(open.len() + 40 + epoch.len(), |out| {
        out.extend_from_slice(open);
        out.extend_from_slice(br#","offset":"#);
        out.extend_from_slice(offset.to_string().as_bytes());
        out.extend_from_slice(br#","epoch":"#);
        // Serializing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, epoch);
        out.push(b'}');
    })
}

/// `{"type":"echo","data":X}` for a client text frame; `None` if the text is not JSON.
///
/// `X` is the client's value as sent (a borrowed [`RawValue`]), never re-serialized.
pub fn echo(text: &str) -> Option<Bytes> {
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    Some(ws::text_frame_from_json(|out| {
        out.extend_from_slice(br#"{"type":"echo","data":"#);
        out.extend_from_slice(raw.get().as_bytes());
        out.push(b'}');
    }))
}

/// The token of a client `{"type":"refresh","token":…}` frame (PROTOCOL.md §7), empty when it
/// has none or not a string; `None` for every other text, which is answered as before (echo).
pub(crate) fn refresh_request(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Refresh<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
        token: Option<Value>,
    }
    // Most client frames are not refreshes: skip the parse for them.
    if !text.contains("refresh") {
        return None;
    }
    let msg: Refresh<'_> = serde_json::from_str(text).ok()?;
    (msg.kind.as_deref() == Some("refresh")).then(|| match msg.token {
        Some(Value::String(t)) => t,
        _ => String::new(),
    })
}

/// Why a group message cannot become a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Channels requires `type`; without a string there is nothing to name the frame.
    #[error("group message has no string \"type\"")]
    MissingType,
    /// `notification_type` was present but not a string.
    #[error("\"notification_type\" must be a string")]
    BadNotificationType,
}

/// Maps a Channels group message to the frame its consumer sends (PROTOCOL.md §2).
///
/// `{"type":"notification","notification_type":T,"data":D}` → `{"type":T,"data":D}`; every other
/// `type` T (the three named handlers, and — ours — any other) → `{"type":T,"data":D}`. A missing
/// `data` becomes `null` (ours: the reference raises `KeyError`).
pub fn event_frame(message: &Map<String, Value>) -> Result<Bytes, EventError> {
    Ok(frame(
        event_kind(message)?,
        message.get("data").unwrap_or(&Value::Null),
    ))
}

/// The frame type a group message becomes (see [`event_frame`]).
pub(crate) fn event_kind(message: &Map<String, Value>) -> Result<&str, EventError> {
    let kind = message
        .get("type")
        .and_then(Value::as_str)
        .ok_or(EventError::MissingType)?;
    match (kind, message.get("notification_type")) {
        ("notification", Some(Value::String(t))) => Ok(t.as_str()),
        ("notification", Some(_)) => Err(EventError::BadNotificationType),
        _ => Ok(kind),
    }
}

/// `{"type":kind,"data":data}`, the shape of every notification frame.
pub fn frame(kind: &str, data: &Value) -> Bytes {
    notification(256, kind, |out| {
        // Serializing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(out, data);
    })
}

/// [`frame`] with `data` given as JSON text, written as it is (the HTTP API's items), in a
/// buffer of its exact size.
pub(crate) fn frame_raw(kind: &str, data_json: &str) -> Bytes {
    // `{"type":` + kind (quoted, escapes rare) + `,"data":` + data + `}`.
    let size = 18 + kind.len() + data_json.len();
    notification(size, kind, |out| {
        out.extend_from_slice(data_json.as_bytes())
    })
}

/// The one writer of a notification frame: `{"type":kind,"data":` + what `data` writes + `}`,
/// in a buffer of about `size` bytes.
fn notification(size: usize, kind: &str, data: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    ws::text_frame_sized(size, |out| {
        out.extend_from_slice(br#"{"type":"#);
        // Serializing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, kind);
        out.extend_from_slice(br#","data":"#);
        data(out);
        out.push(b'}');
    })
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    ws::text_frame_from_json(|out| {
        // Serializing plain structs of strings and `Value`s into a Vec cannot fail.
        let _ = serde_json::to_writer(out, value);
    })
}

/// The JSON text of a frame encoded here (tests and benches).
pub fn frame_text(frame: &[u8]) -> &str {
    std::str::from_utf8(ws::encode::payload(frame)).unwrap_or("")
}

#[cfg(test)]
mod tests;
