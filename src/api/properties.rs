//! Publish-body properties: any bytes are a batch or a 400, never a panic; a batch of valid items
//! is exactly the groups and messages `notify_user` would send; one bad item refuses the whole body.

use super::*;
use proptest::prelude::*;

use crate::layer::GroupMessage;
use crate::prop_support::json_value;

/// A `user_id` as a publisher may send it, with the id text its group must carry.
fn user_id() -> impl Strategy<Value = (Value, String)> {
    prop_oneof![
        any::<i64>().prop_map(|n| (json!(n), n.to_string())),
        // simplejwt ≥ 5.5.1 style: the integer as a string, padded the ways Django accepts.
        (any::<u32>(), 0usize..3, prop_oneof![Just(""), Just(" ")]).prop_map(|(n, zeros, pad)| (
            json!(format!("{pad}{}{n}{pad}", "0".repeat(zeros))),
            n.to_string()
        )),
        // A non-numeric primary key (a letter first, so it never parses as an integer).
        "[a-zA-Z][a-zA-Z0-9_.-]{0,40}".prop_map(|s| (json!(s), s)),
    ]
}

/// One valid item and the (group, message) it must become.
fn item() -> impl Strategy<Value = (Value, (String, GroupMessage))> {
    (
        user_id(),
        "[a-z][a-z_-]{0,15}",
        proptest::option::of(json_value()),
    )
        .prop_map(|((uid, id), kind, data)| {
            let mut item = json!({"user_id": uid, "type": kind});
            if let Some(d) = &data {
                item["data"] = d.clone();
            }
            let mut want = GroupMessage::new();
            want.insert("type".into(), json!(kind.replace('-', "_")));
            want.insert("data".into(), data.unwrap_or(Value::Null));
            (item, (format!("user_{id}"), want))
        })
}

/// Items `notify` must refuse.
fn bad_item() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value().prop_filter("not an object", |v| !v.is_object()),
        Just(json!({"type": "x"})),
        Just(json!({"user_id": 1.5, "type": "x"})),
        Just(json!({"user_id": true, "type": "x"})),
        Just(json!({"user_id": "a b", "type": "x"})),
        Just(json!({"user_id": "", "type": "x"})),
        Just(json!({"user_id": 1})),
        Just(json!({"user_id": 1, "type": ""})),
        Just(json!({"user_id": 1, "type": 7})),
    ]
}

/// The batch as (group, message), each item's frame checked against its message: the frame the
/// memory layer delivers must be the one a broker layer's message makes.
fn parse(body: &[u8]) -> Result<Vec<(GroupName, GroupMessage)>, ApiError> {
    let batch = body::notify_batch(body)?;
    Ok(batch
        .iter()
        .map(|n| {
            let message = n.message();
            let from_message = crate::protocol::event_frame(&message).expect("deliverable");
            let as_json = |f: &[u8]| -> Value {
                serde_json::from_str(crate::protocol::frame_text(f)).expect("a frame is JSON")
            };
            assert_eq!(as_json(&n.frame()), as_json(&from_message));
            (n.group.clone(), message)
        })
        .collect())
}

#[test]
fn a_float_is_published_exactly() {
    // The float that fuzz/redis_payload found one ULP off after a JSON parse.
    let body = br#"{"user_id": 1, "type": "t", "data": 1.5000000016069859}"#;
    let batch = parse(body).expect("valid body");
    let frame = crate::protocol::event_frame(&batch[0].1).expect("deliverable");
    assert_eq!(
        crate::protocol::frame_text(&frame),
        r#"{"type":"t","data":1.5000000016069859}"#
    );
    let direct = body::notify_batch(body).expect("valid body");
    assert_eq!(
        crate::protocol::frame_text(&direct[0].frame()),
        r#"{"type":"t","data":1.5000000016069859}"#
    );
}

/// The body rules the tree-less reader must keep exactly as a `Value` parse has them.
#[test]
fn accepts_what_a_json_tree_parse_accepts() {
    let deep = |k: usize| {
        format!(
            r#"{{"user_id":1,"type":"t","data":{}1{}}}"#,
            "[".repeat(k),
            "]".repeat(k)
        )
    };
    let cases = [
        deep(127),                                             // 128 deep in all: the limit
        deep(128),                                             // one past it
        r#"{"user_id":1,"type":"t","data":"\ud800"}"#.into(),  // lone surrogate in data
        r#"{"user_id":1,"type":"t","other":"\udc00"}"#.into(), // … in a skipped field
        r#"{"user_id":1,"type":"t","data":1e999}"#.into(),     // number out of range
        r#"{"user_id":1,"type":"t"} x"#.into(),                // trailing bytes
        r#"{"user_\u0069d":1,"type":"t"}"#.into(),             // an escaped key
        r#"[{"user_id":1,"type":"t","data":{"a":[1,{"b":null}]}}]"#.into(),
    ];
    for body in &cases {
        let tree = serde_json::from_slice::<Value>(body.as_bytes()).is_ok();
        let got = parse(body.as_bytes());
        assert_eq!(got.is_ok(), tree, "{body}: {got:?}");
        if let Err(e) = got {
            assert!(matches!(e, ApiError::BadRequest(_)), "{body}: {e:?}");
        }
    }
}

#[test]
fn a_repeated_key_keeps_its_last_value_and_data_keeps_its_text() {
    let body = br#"{"user_id":1,"type":"a","type":"b-c","data": {"x" : 1.0e2 }}"#;
    let batch = body::notify_batch(body).expect("valid body");
    assert_eq!(
        crate::protocol::frame_text(&batch[0].frame()),
        r#"{"type":"b_c","data":{"x" : 1.0e2 }}"#
    );
    assert_eq!(
        Value::Object(batch[0].message()),
        json!({"type": "b_c", "data": {"x": 100.0}})
    );
}

proptest! {
    /// Arbitrary bytes are refused or accepted, never a panic; whatever is accepted names valid
    /// per-user groups and is deliverable as a frame.
    #[test]
    fn arbitrary_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(batch) = parse(&bytes) {
            prop_assert!(serde_json::from_slice::<Value>(&bytes).is_ok(), "accepted non-JSON");
            for (group, message) in &batch {
                prop_assert!(group.as_str().starts_with("user_"));
                prop_assert!(crate::protocol::event_frame(message).is_ok());
            }
        }
    }

    /// A single item or a batch of valid items gives exactly their groups and messages, in order.
    #[test]
    fn valid_items_are_published_as_given(items in proptest::collection::vec(item(), 1..6)) {
        let want: Vec<(String, GroupMessage)> = items.iter().map(|(_, w)| w.clone()).collect();
        let got = |body: Value| -> Vec<(String, GroupMessage)> {
            let bytes = serde_json::to_vec(&body).expect("encode");
            parse(&bytes)
                .expect("valid body")
                .into_iter()
                .map(|(g, m)| (g.as_str().to_owned(), m))
                .collect()
        };
        prop_assert_eq!(got(items[0].0.clone()), want[..1].to_vec());
        let batch = Value::Array(items.iter().map(|(i, _)| i.clone()).collect());
        prop_assert_eq!(got(batch), want);
    }

    /// One bad item anywhere refuses the whole batch, naming its index: nothing is published.
    #[test]
    fn one_bad_item_refuses_the_batch(
        items in proptest::collection::vec(item(), 0..5),
        bad in bad_item(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut batch: Vec<Value> = items.into_iter().map(|(i, _)| i).collect();
        let at = at.index(batch.len() + 1);
        batch.insert(at, bad);
        let bytes = serde_json::to_vec(&Value::Array(batch)).expect("encode");
        match parse(&bytes) {
            Err(ApiError::BadRequest(e)) => prop_assert!(e.starts_with(&format!("item {at}: ")), "{}", e),
            other => prop_assert!(false, "accepted or wrong error: {:?}", other.map(|b| b.len())),
        }
    }
}
