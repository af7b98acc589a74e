//! Wire format: close codes, server → client frames, and the group-event → frame mapping.
//!
//! Every frame is encoded once into [`Utf8Bytes`]; fan-out clones that handle (a refcount bump), so
//! a notification delivered to 10k sockets is serialized exactly once.

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::{value::RawValue, Map, Value};

/// The close codes courier sends, with what a client should do about each (PROTOCOL.md §4).
///
/// This is the one table of close codes in the code base: everything that closes a socket names a
/// variant here, so the code, its reason text and its documentation cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    /// 1000: the client asked to close; we answer in kind.
    Normal = 1000,
    /// 1001 `going away`: the server is shutting down. Reconnect with backoff.
    GoingAway = 1001,
    /// 1009 `message too big`: a client frame exceeded the size limit. Fix the client.
    TooBig = 1009,
    /// 1011 `internal error`: the server failed in a way that is not the client's fault.
    InternalError = 1011,
    /// 1013 `try again later`: the server is at its connection limit. Reconnect later with backoff.
    TryAgainLater = 1013,
    /// 4001 `unauthenticated`: no, invalid or expired token, or unknown/inactive user.
    /// Refresh the token, then reconnect. The cause is logged server-side, never sent.
    Unauthenticated = 4001,
    /// 4002 `ping timeout`: no pong within the pong timeout. Reconnect.
    PingTimeout = 4002,
    /// 4008 `slow consumer`: the outbound queue overflowed. Reconnect; messages were missed.
    SlowConsumer = 4008,
}

/// RFC 6455 §5.5: a control frame carries at most 125 bytes, two of which are the code.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

impl CloseCode {
    /// Every code, for documentation tables and tests.
    pub const ALL: [CloseCode; 8] = [
        Self::Normal,
        Self::GoingAway,
        Self::TooBig,
        Self::InternalError,
        Self::TryAgainLater,
        Self::Unauthenticated,
        Self::PingTimeout,
        Self::SlowConsumer,
    ];

    /// The numeric code on the wire.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The reason text sent with the code (always ≤ [`MAX_CLOSE_REASON_BYTES`]).
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Normal => "normal closure",
            Self::GoingAway => "going away",
            Self::TooBig => "message too big",
            Self::InternalError => "internal error",
            Self::TryAgainLater => "try again later",
            Self::Unauthenticated => "unauthenticated",
            Self::PingTimeout => "ping timeout",
            Self::SlowConsumer => "slow consumer",
        }
    }

    /// Reverse lookup, used where a code travels as a plain integer (an atomic in the hub).
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// Frame text for the error sent when a client frame is not valid JSON.
pub const INVALID_JSON: Utf8Bytes =
    Utf8Bytes::from_static(r#"{"type":"error","message":"Invalid JSON"}"#);
/// Frame text for the error sent when a client sends a binary frame (ours: the reference crashes).
pub const BINARY_UNSUPPORTED: Utf8Bytes =
    Utf8Bytes::from_static(r#"{"type":"error","message":"Binary frames are not supported"}"#);

/// `{"type":"connection_established","message":"Connected as <username>","user_id":<id>}`.
pub fn connection_established(username: &str, user_id: &Value) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Frame<'a> {
        r#type: &'static str,
        message: String,
        user_id: &'a Value,
    }
    encode(&Frame {
        r#type: "connection_established",
        message: format!("Connected as {username}"),
        user_id,
    })
}

/// `{"type":"echo","data":X}` for a client text frame; `None` if the text is not JSON.
///
/// `X` is the client's value as sent (a borrowed [`RawValue`]), never re-serialized.
pub fn echo(text: &str) -> Option<Utf8Bytes> {
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    let mut out = String::with_capacity(raw.get().len() + 24);
    out.push_str(r#"{"type":"echo","data":"#);
    out.push_str(raw.get());
    out.push('}');
    Some(out.into())
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
pub fn event_frame(message: &Map<String, Value>) -> Result<Utf8Bytes, EventError> {
    let kind = message
        .get("type")
        .and_then(Value::as_str)
        .ok_or(EventError::MissingType)?;
    let kind = match (kind, message.get("notification_type")) {
        ("notification", Some(Value::String(t))) => t.as_str(),
        ("notification", Some(_)) => return Err(EventError::BadNotificationType),
        _ => kind,
    };
    Ok(frame(kind, message.get("data").unwrap_or(&Value::Null)))
}

/// `{"type":kind,"data":data}`, the shape of every notification frame.
pub fn frame(kind: &str, data: &Value) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Frame<'a> {
        r#type: &'a str,
        data: &'a Value,
    }
    encode(&Frame { r#type: kind, data })
}

fn encode<T: Serialize>(value: &T) -> Utf8Bytes {
    // Serializing plain structs of strings and `Value`s into a Vec cannot fail.
    let text = serde_json::to_string(value).unwrap_or_default();
    text.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        for code in CloseCode::ALL {
            assert!(code.reason().len() <= MAX_CLOSE_REASON_BYTES, "{code:?}");
            assert_eq!(CloseCode::from_code(code.code()), Some(code));
        }
    }

    #[test]
    fn notification_uses_notification_type() {
        let f = event_frame(&map(
            json!({"type":"notification","notification_type":"x","data":{"a":1}}),
        ));
        assert_eq!(f.unwrap().as_str(), r#"{"type":"x","data":{"a":1}}"#);
    }

    #[test]
    fn other_types_are_forwarded_and_data_defaults_to_null() {
        let f = event_frame(&map(json!({"type":"custom_thing"}))).unwrap();
        assert_eq!(f.as_str(), r#"{"type":"custom_thing","data":null}"#);
        let f = event_frame(&map(json!({"type":"notification","data":1}))).unwrap();
        assert_eq!(f.as_str(), r#"{"type":"notification","data":1}"#);
        assert_eq!(
            event_frame(&map(json!({"data":1}))),
            Err(EventError::MissingType)
        );
        assert_eq!(
            event_frame(&map(json!({"type":"notification","notification_type":3}))),
            Err(EventError::BadNotificationType)
        );
    }

    #[test]
    fn echo_keeps_the_raw_value() {
        assert_eq!(
            echo(" [1, 2] ").unwrap().as_str(),
            r#"{"type":"echo","data":[1, 2]}"#
        );
        assert_eq!(
            echo("\"s\"").unwrap().as_str(),
            r#"{"type":"echo","data":"s"}"#
        );
        assert!(echo("{nope").is_none());
        assert!(echo("").is_none());
    }

    #[test]
    fn established_frame_shape() {
        let f = connection_established("alice", &json!(42));
        assert_eq!(
            f.as_str(),
            r#"{"type":"connection_established","message":"Connected as alice","user_id":42}"#
        );
    }
}
