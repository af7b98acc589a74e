//! Wire format: close codes, server → client frames, and the group-event → frame mapping.
//!
//! Every frame is encoded once — JSON and WebSocket header together — into [`Bytes`]; fan-out
//! clones that handle (a refcount bump), so a notification delivered to 10k sockets is serialized
//! and framed exactly once, and written as it is.

use std::sync::LazyLock;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{value::RawValue, Map, Value};

use crate::ws;

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
    /// 1002 `protocol error`: the client broke RFC 6455 framing (unmasked or reserved frames, a
    /// stray continuation, a fragmented control frame). Fix the client.
    ProtocolError = 1002,
    /// 1007 `invalid payload`: a text message that is not UTF-8. Fix the client.
    InvalidPayload = 1007,
    /// 1009 `message too big`: a client message exceeded the size limit, or arrived in more
    /// fragments than allowed. Fix the client.
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
    /// 4003 `too many connections`: this user already has the most connections allowed per user
    /// (the newest is refused; the others stay). Close another one, or reconnect later.
    TooManyConnections = 4003,
    /// 4008 `slow consumer`: the outbound queue overflowed. Reconnect; messages were missed.
    SlowConsumer = 4008,
    /// 4029 `rate limited`: the client sent messages faster than allowed. Reconnect with backoff.
    RateLimited = 4029,
}

/// RFC 6455 §5.5: a control frame carries at most 125 bytes, two of which are the code.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

impl CloseCode {
    /// Every code, for documentation tables and tests.
    pub const ALL: [CloseCode; 12] = [
        Self::Normal,
        Self::GoingAway,
        Self::ProtocolError,
        Self::InvalidPayload,
        Self::TooBig,
        Self::InternalError,
        Self::TryAgainLater,
        Self::Unauthenticated,
        Self::PingTimeout,
        Self::TooManyConnections,
        Self::SlowConsumer,
        Self::RateLimited,
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
            Self::ProtocolError => "protocol error",
            Self::InvalidPayload => "invalid payload",
            Self::TooBig => "message too big",
            Self::InternalError => "internal error",
            Self::TryAgainLater => "try again later",
            Self::Unauthenticated => "unauthenticated",
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

    /// Reverse lookup, used where a code travels as a plain integer (an atomic in the hub).
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
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

/// `{"type":"connection_established","message":"Connected as <username>","user_id":<id>}`.
pub fn connection_established(username: &str, user_id: &Value) -> Bytes {
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
pub fn echo(text: &str) -> Option<Bytes> {
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    Some(ws::text_frame_from_json(|out| {
        out.extend_from_slice(br#"{"type":"echo","data":"#);
        out.extend_from_slice(raw.get().as_bytes());
        out.push(b'}');
    }))
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
pub fn frame(kind: &str, data: &Value) -> Bytes {
    #[derive(Serialize)]
    struct Frame<'a> {
        r#type: &'a str,
        data: &'a Value,
    }
    encode(&Frame { r#type: kind, data })
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
        assert_eq!(frame_text(&f.unwrap()), r#"{"type":"x","data":{"a":1}}"#);
    }

    #[test]
    fn other_types_are_forwarded_and_data_defaults_to_null() {
        let f = event_frame(&map(json!({"type":"custom_thing"}))).unwrap();
        assert_eq!(frame_text(&f), r#"{"type":"custom_thing","data":null}"#);
        let f = event_frame(&map(json!({"type":"notification","data":1}))).unwrap();
        assert_eq!(frame_text(&f), r#"{"type":"notification","data":1}"#);
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
            frame_text(&echo(" [1, 2] ").unwrap()),
            r#"{"type":"echo","data":[1, 2]}"#
        );
        assert_eq!(
            frame_text(&echo("\"s\"").unwrap()),
            r#"{"type":"echo","data":"s"}"#
        );
        assert!(echo("{nope").is_none());
        assert!(echo("").is_none());
    }

    #[test]
    fn established_frame_shape() {
        let f = connection_established("alice", &json!(42));
        assert_eq!(
            frame_text(&f),
            r#"{"type":"connection_established","message":"Connected as alice","user_id":42}"#
        );
    }

    mod properties {
        use super::*;
        use crate::prop_support::json_value;
        use proptest::prelude::*;

        proptest! {
        /// Any client text yields an echo of exactly that JSON, or the Invalid JSON error — never a
        /// panic; an echo always parses back to `{"type":"echo","data":X}`.
        #[test]
        fn echo_is_valid_json_or_refused(text in ".{0,200}") {
            if let Some(frame) = echo(&text) {
                let v: Value = serde_json::from_str(frame_text(&frame)).expect("echo is JSON");
                let sent: Value = serde_json::from_str(&text).expect("accepted text was JSON");
                prop_assert_eq!(v, json!({"type": "echo", "data": sent}));
            } else {
                prop_assert!(serde_json::from_str::<Value>(&text).is_err());
            }
        }

        /// Any group message becomes a frame or a typed refusal, and a frame is valid JSON.
        #[test]
        fn group_events_map_or_refuse(data in json_value(), kind in proptest::option::of(json_value())) {
            let mut m = Map::new();
            if let Some(k) = kind { m.insert("type".into(), k); }
            m.insert("data".into(), data);
            if let Ok(frame) = event_frame(&m) {
                let v: Value = serde_json::from_str(frame_text(&frame)).expect("frame is JSON");
                prop_assert!(v["type"].is_string());
            }
        }
            }
    }
}
