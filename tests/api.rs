//! The HTTP publish API (PROTOCOL.md §3, ours): `POST /api/notify` (one or a batch) and
//! `POST /api/group_send`, guarded by `X-API-Key`; 202 with counts, JSON errors otherwise.

mod common;

use common::*;
use serde_json::{json, Value};

/// The error body every refusal carries: `{"error": "<non-empty text>"}`.
fn assert_json_error(r: &HttpResponse, status: u16) {
    assert_eq!(r.status, status, "{r:?}");
    let body = r.json();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(
        r.headers
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        r.headers
    );
}

/// Proves `ws` received nothing since its last frame: a marker must be its very next frame.
async fn assert_nothing_more(srv: &TestServer, user: u64, ws: &mut Ws) {
    let r = post_json(
        srv.addr,
        "/api/notify",
        &json!({"user_id": user, "type": "marker"}),
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(next_text(ws).await, r#"{"type":"marker","data":null}"#);
}

#[tokio::test]
async fn notify_one() {
    let srv = spawn_server(config()).await;
    let mut ws = connect_user(srv.addr, json!(42)).await;
    let r = post_json(
        srv.addr,
        "/api/notify",
        &json!({"user_id": 42, "type": "friend-request", "data": {"request_id": 7}}),
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json(), json!({"accepted": 1}));
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"friend_request","data":{"request_id":7}}"#
    );
    // A string user_id is the same user, as in tokens.
    let r = post_json(
        srv.addr,
        "/api/notify",
        &json!({"user_id": "42", "type": "new_message", "data": "hi"}),
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"new_message","data":"hi"}"#
    );
    srv.stop().await;
}

#[tokio::test]
async fn notify_batch_in_order() {
    let srv = spawn_server(config()).await;
    let mut a = connect_user(srv.addr, json!(1)).await;
    let mut b = connect_user(srv.addr, json!(2)).await;
    let batch: Vec<Value> = (0..10)
        .map(|i| json!({"user_id": 1 + i % 2, "type": "n", "data": i}))
        .collect();
    let r = post_json(srv.addr, "/api/notify", &Value::Array(batch)).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json(), json!({"accepted": 10}));
    for i in (0..10).step_by(2) {
        assert_eq!(
            next_text(&mut a).await,
            format!(r#"{{"type":"n","data":{i}}}"#)
        );
        assert_eq!(
            next_text(&mut b).await,
            format!(r#"{{"type":"n","data":{}}}"#, i + 1)
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn bad_key_is_401_and_publishes_nothing() {
    let srv = spawn_server(config()).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    let body = br#"{"user_id":1,"type":"x"}"#;
    for headers in [
        vec![],
        vec![("X-API-Key", "wrong")],
        vec![("X-API-Key", "test-api-ke")],
        vec![("X-API-Key", "test-api-keyy")],
    ] {
        let r = http(srv.addr, "POST", "/api/notify", &headers, body).await;
        assert_json_error(&r, 401);
        let r = http(
            srv.addr,
            "POST",
            "/api/group_send",
            &headers,
            br#"{"group":"user_1","message":{"type":"x"}}"#,
        )
        .await;
        assert_json_error(&r, 401);
    }
    assert_nothing_more(&srv, 1, &mut ws).await;
    srv.stop().await;
}

#[tokio::test]
async fn no_key_configured_is_403() {
    let mut cfg = config();
    cfg.api_key = None;
    let srv = spawn_server(cfg).await;
    let r = post_json(srv.addr, "/api/notify", &json!({"user_id": 1, "type": "x"})).await;
    assert_json_error(&r, 403);
    let r = post_json(
        srv.addr,
        "/api/group_send",
        &json!({"group": "user_1", "message": {"type": "x"}}),
    )
    .await;
    assert_json_error(&r, 403);
    srv.stop().await;
}

#[tokio::test]
async fn bad_bodies_are_400() {
    let srv = spawn_server(config()).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    let key = [("X-API-Key", API_KEY)];
    for body in [&b"{not json"[..], b"", b"42", b"null", b"[1]"] {
        assert_json_error(
            &http(srv.addr, "POST", "/api/notify", &key, body).await,
            400,
        );
    }
    for body in [
        json!({"type": "x"}),                             // no user_id
        json!({"user_id": 1}),                            // no type
        json!({"user_id": 1, "type": ""}),                // empty type
        json!({"user_id": 1, "type": 5}),                 // type not a string
        json!({"user_id": "a b", "type": "x"}),           // not an id
        json!({"user_id": 1.5, "type": "x"}),             // not an id
        json!({"user_id": "x".repeat(200), "type": "x"}), // too long for a group name
    ] {
        assert_json_error(&post_json(srv.addr, "/api/notify", &body).await, 400);
    }
    // One bad item refuses the whole batch: nothing is published.
    let batch =
        json!([{"user_id": 1, "type": "first"}, {"user_id": 1}, {"user_id": 1, "type": "third"}]);
    let r = post_json(srv.addr, "/api/notify", &batch).await;
    assert_json_error(&r, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("item 1"),
        "{}",
        r.body
    );
    assert_nothing_more(&srv, 1, &mut ws).await;
    srv.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let mut cfg = config();
    cfg.max_body_bytes = 1024;
    let srv = spawn_server(cfg).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    let body = json!({"user_id": 1, "type": "x", "data": "y".repeat(4096)});
    assert_json_error(&post_json(srv.addr, "/api/notify", &body).await, 413);
    let body = json!({"group": "user_1", "message": {"type": "x", "data": "y".repeat(4096)}});
    assert_json_error(&post_json(srv.addr, "/api/group_send", &body).await, 413);
    // Just under the limit is fine.
    let body = json!({"user_id": 1, "type": "x", "data": "y".repeat(900)});
    assert_eq!(post_json(srv.addr, "/api/notify", &body).await.status, 202);
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["data"].as_str().map(str::len), Some(900));
    assert_nothing_more(&srv, 1, &mut ws).await;
    // The key is checked before the body is read: a wrong key with an oversized body is 401.
    let big = serde_json::to_vec(&json!({"user_id": 1, "type": "x", "data": "y".repeat(4096)}))
        .expect("json");
    let r = http(
        srv.addr,
        "POST",
        "/api/notify",
        &[("X-API-Key", "wrong")],
        &big,
    )
    .await;
    assert_json_error(&r, 401);
    srv.stop().await;
}

#[tokio::test]
async fn group_send_endpoint() {
    let srv = spawn_server(config()).await;
    let mut ws = connect_user(srv.addr, json!(5)).await;
    let cases = [
        (
            json!({"type": "notification", "notification_type": "alert", "data": {"a": 1}}),
            r#"{"type":"alert","data":{"a":1}}"#,
        ),
        (
            json!({"type": "friend_accepted", "data": {"friend": {"id": 2}}}),
            r#"{"type":"friend_accepted","data":{"friend":{"id":2}}}"#,
        ),
        (
            json!({"type": "notification", "data": 3}),
            r#"{"type":"notification","data":3}"#,
        ),
        (
            json!({"type": "whatever"}),
            r#"{"type":"whatever","data":null}"#,
        ),
    ];
    for (message, frame) in cases {
        let r = post_json(
            srv.addr,
            "/api/group_send",
            &json!({"group": "user_5", "message": message}),
        )
        .await;
        assert_eq!(r.status, 202, "{r:?}");
        assert_eq!(r.json(), json!({"accepted": 1}));
        assert_eq!(next_text(&mut ws).await, frame);
    }
    // An empty group is not an error.
    let r = post_json(
        srv.addr,
        "/api/group_send",
        &json!({"group": "nobody.here", "message": {"type": "x"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    for bad in [
        json!({"group": "user 5", "message": {"type": "x"}}),
        json!({"group": "g".repeat(100), "message": {"type": "x"}}),
        json!({"group": "", "message": {"type": "x"}}),
        json!({"message": {"type": "x"}}),
        json!({"group": "user_5"}),
        json!({"group": "user_5", "message": "x"}),
        json!({"group": "user_5", "message": {"data": 1}}),
        json!({"group": "user_5", "message": {"type": 1}}),
        json!({"group": "user_5", "message": {"type": "notification", "notification_type": 3}}),
    ] {
        assert_json_error(&post_json(srv.addr, "/api/group_send", &bad).await, 400);
    }
    assert_nothing_more(&srv, 5, &mut ws).await;
    srv.stop().await;
}

#[tokio::test]
async fn api_metrics_count_events() {
    let srv = spawn_server(config()).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    let batch = json!([{"user_id": 1, "type": "a"}, {"user_id": 1, "type": "b"}, {"user_id": 2, "type": "c"}]);
    assert_eq!(post_json(srv.addr, "/api/notify", &batch).await.status, 202);
    next_text(&mut ws).await;
    next_text(&mut ws).await;
    let m = metrics(srv.addr).await;
    assert_metric(&m, "courier_events_published_total", 3.0);
    assert_metric(&m, "courier_deliveries_total", 2.0);
    srv.stop().await;
}
