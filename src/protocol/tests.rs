//! Frame shapes, the close-code table and properties of client and group input.

use super::*;
use serde_json::json;

fn map(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn close_reasons_fit_a_control_frame() {
    for code in CloseCode::ALL {
        assert!(code.reason().len() <= MAX_CLOSE_REASON_BYTES, "{code:?}");
        assert!(matches!(code.code(), 1000..=1013 | 4000..=4999), "{code:?}");
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
    let f = connection_established("alice", &json!(42), None);
    assert_eq!(
        frame_text(&f),
        r#"{"type":"connection_established","message":"Connected as alice","user_id":42}"#
    );
    let at = Position {
        offset: 7,
        epoch: "e\"x".into(),
    };
    let f = connection_established("alice", &json!(42), Some(&at));
    assert_eq!(
        frame_text(&f),
        r#"{"type":"connection_established","message":"Connected as alice","user_id":42,"offset":7,"epoch":"e\"x"}"#
    );
}

#[test]
fn positioned_frames_add_offset_and_epoch_after_data() {
    let plain = frame_raw("new_message", r#"{"a": [1, 2]}"#);
    let f = positioned(&plain, 42, "k3Jq");
    assert_eq!(
        frame_text(&f),
        r#"{"type":"new_message","data":{"a": [1, 2]},"offset":42,"epoch":"k3Jq"}"#
    );
    // Long enough to need the 16-bit length form: the header is rebuilt, not patched.
    let big = frame("t", &json!("x".repeat(200)));
    let v: Value = serde_json::from_str(frame_text(&positioned(&big, 1, "e"))).unwrap();
    assert_eq!(
        v,
        json!({"type":"t","data":"x".repeat(200),"offset":1,"epoch":"e"})
    );
    let r = resync(ResyncReason::PositionExpired, &at_head());
    assert_eq!(
        frame_text(&r),
        r#"{"type":"resync","data":{"reason":"position_expired","offset":3,"epoch":"h"}}"#
    );
}

fn at_head() -> Position {
    Position {
        offset: 3,
        epoch: "h".into(),
    }
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
