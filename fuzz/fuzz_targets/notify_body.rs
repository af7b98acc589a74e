//! The body of `POST /api/notify`, as the handler reads it (`api::body::notify_batch`, via
//! `courier::fuzzing::notify_body`). The whole input is the body.
//!
//! Checked: no panic; a body is accepted only if it is JSON (`serde_json::Value` parses it) and
//! gives one (group, message, frame) per item, in order, each the same as that item sent alone:
//! group `user_{id}` for the item's `user_id`, message `{"type": type with '-' → '_', "data": data
//! or null}`, and both the message's frame and the direct frame the memory layer sends are exactly
//! that JSON; a refusal is a 400 naming the first bad item — every item before it is accepted, it
//! alone is not.
#![no_main]

use courier::api::ApiError;
use courier::fuzzing::notify_body;
use courier::protocol::{event_frame, frame_text};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fn body(items: &[Value]) -> Vec<u8> {
    serde_json::to_vec(items).expect("values serialize")
}

/// The id text `user_id` must put in the group name.
fn id_text(user_id: &Value) -> Option<String> {
    match user_id {
        Value::Number(n) => Some(n.as_i64()?.to_string()),
        Value::String(s) => {
            let t = s.trim();
            Some(
                t.parse::<i64>()
                    .map_or_else(|_| t.to_owned(), |n| n.to_string()),
            )
        }
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let result = notify_body(data);
    let Ok(parsed) = serde_json::from_slice::<Value>(data) else {
        assert!(
            matches!(result, Err(ApiError::BadRequest(_))),
            "accepted a body that is not JSON"
        );
        return;
    };
    let items = match parsed {
        Value::Array(items) => items,
        one => vec![one],
    };
    match result {
        Ok(batch) => {
            assert_eq!(batch.len(), items.len());
            for (item, (group, message, direct)) in items.iter().zip(&batch) {
                let want = format!(
                    "user_{}",
                    id_text(&item["user_id"]).expect("an accepted id")
                );
                assert_eq!(group.as_str(), want);
                let kind = item["type"]
                    .as_str()
                    .expect("an accepted type")
                    .replace('-', "_");
                let data = item.get("data").cloned().unwrap_or(Value::Null);
                assert_eq!(
                    Value::Object(message.clone()),
                    json!({"type": kind, "data": data})
                );
                let frame = event_frame(message).expect("an accepted message is deliverable");
                for frame in [&frame, direct] {
                    let sent: Value =
                        serde_json::from_str(frame_text(frame)).expect("frame is JSON");
                    assert_eq!(sent, json!({"type": kind, "data": data}));
                }
            }
            if items.len() > 1 && items.len() <= 16 {
                for (item, one) in items.iter().zip(&batch) {
                    let alone = notify_body(&body(std::slice::from_ref(item))).expect("alone too");
                    // The direct frame keeps the body's own spacing, which `body` re-encodes.
                    let json = |f: &[u8]| serde_json::from_str::<Value>(frame_text(f)).ok();
                    assert_eq!(alone.len(), 1);
                    assert_eq!((&alone[0].0, &alone[0].1), (&one.0, &one.1));
                    assert_eq!(json(&alone[0].2), json(&one.2));
                }
            }
        }
        Err(ApiError::BadRequest(e)) => {
            let at: usize = e
                .strip_prefix("item ")
                .and_then(|r| r.split_once(':'))
                .and_then(|(i, _)| i.parse().ok())
                .unwrap_or_else(|| panic!("a refusal that names no item: {e}"));
            assert!(at < items.len(), "{e} of {} items", items.len());
            assert!(
                notify_body(&body(&items[..at])).is_ok(),
                "an item before {at} is bad too"
            );
            assert!(
                notify_body(&body(&items[at..=at])).is_err(),
                "item {at} alone is accepted"
            );
        }
        Err(e) => panic!("a body parse gave {e:?}"),
    }
});
