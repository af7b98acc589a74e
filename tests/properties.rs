//! Properties of the parsers that take untrusted input (issue 9 §4): tokens and frames never
//! panic, and what they accept round-trips. The crate-internal parsers' properties live beside
//! them: the client-frame reader (`src/ws/reader_tests.rs`) and the channels_redis payload codec
//! (`src/layer/redis/wire/codec_properties.rs`).

use courier::auth::Verifier;
use courier::config::JwtConfig;
use courier::protocol;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Any string offered as a token is refused or accepted, never a panic; garbage is refused.
    #[test]
    fn token_verification_never_panics(token in ".{0,400}", dots in "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,60}") {
        let v = Verifier::new(&JwtConfig::hs256("secret")).expect("verifier");
        prop_assert!(v.verify(&token).is_err());
        prop_assert!(v.verify(&dots).is_err());
    }

    /// Any client text yields an echo of exactly that JSON, or the Invalid JSON error — never a
    /// panic; an echo always parses back to `{"type":"echo","data":X}`.
    #[test]
    fn echo_is_valid_json_or_refused(text in ".{0,200}") {
        if let Some(frame) = protocol::echo(&text) {
            let v: Value = serde_json::from_str(protocol::frame_text(&frame)).expect("echo is JSON");
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
        if let Ok(frame) = protocol::event_frame(&m) {
            let v: Value = serde_json::from_str(protocol::frame_text(&frame)).expect("frame is JSON");
            prop_assert!(v["type"].is_string());
        }
    }
}
