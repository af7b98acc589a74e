//! PROTOCOL.md §2, row by row: every server → client frame, checked byte for byte where the frame
//! is fully determined (courier emits compact JSON with the reference's key order).

mod common;

use common::*;
use courier::layer::GroupName;
use courier::notify::UserSummary;
use courier::UserId;
use futures::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn group_message(v: Value) -> courier::layer::GroupMessage {
    v.as_object().cloned().expect("object")
}

#[tokio::test]
async fn connection_established_with_numeric_user_id() {
    let srv = spawn_server(config()).await;
    let mut ws = ws_connect(srv.addr, &token_for(json!("42"))).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"connection_established","message":"Connected as 42","user_id":42}"#
    );
    srv.stop().await;
}

#[tokio::test]
async fn connection_established_uses_username_claim_and_string_ids() {
    let srv = spawn_server(config()).await;
    let token = mint_token(SECRET, json!({"user_id": "7", "username": "alice"}));
    let mut ws = ws_connect(srv.addr, &token).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"connection_established","message":"Connected as alice","user_id":7}"#
    );
    // A non-numeric primary key (custom user model) stays a string.
    let mut ws = ws_connect(srv.addr, &token_for(json!("abc-1"))).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"connection_established","message":"Connected as abc-1","user_id":"abc-1"}"#
    );
    srv.stop().await;
}

#[tokio::test]
async fn echoes_any_json_value_as_sent() {
    let srv = spawn_server(config()).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    let cases = [
        (r#"{"a":1,"b":[true,null]}"#, r#"{"a":1,"b":[true,null]}"#),
        (r#"{"z":1,"a":2}"#, r#"{"z":1,"a":2}"#),
        ("[1, 2, 3]", "[1, 2, 3]"),
        (r#""hello""#, r#""hello""#),
        ("42", "42"),
        ("-1.5e3", "-1.5e3"),
        // Beyond f64/i64: echoed raw, not re-serialized.
        (
            "123456789012345678901234567890",
            "123456789012345678901234567890",
        ),
        ("true", "true"),
        ("false", "false"),
        ("null", "null"),
        (
            r#"{"msg":"héllo \u00e9 🎉"}"#,
            r#"{"msg":"héllo \u00e9 🎉"}"#,
        ),
        ("  {\"pad\": 1}  ", "{\"pad\": 1}"),
    ];
    for (sent, echoed) in cases {
        send_text(&mut ws, sent).await;
        assert_eq!(
            next_text(&mut ws).await,
            format!(r#"{{"type":"echo","data":{echoed}}}"#),
            "sent {sent:?}"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn invalid_json_is_an_error_and_the_connection_stays_open() {
    let srv = spawn_server(config()).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    for bad in [
        "{nope",
        "",
        "   ",
        "{\"a\":1} trailing",
        "[1,",
        "undefined",
        "'single'",
    ] {
        send_text(&mut ws, bad).await;
        assert_eq!(
            next_text(&mut ws).await,
            r#"{"type":"error","message":"Invalid JSON"}"#,
            "sent {bad:?}"
        );
    }
    send_text(&mut ws, r#"{"still":"open"}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"echo","data":{"still":"open"}}"#
    );
    srv.stop().await;
}

#[tokio::test]
async fn binary_frame_is_an_error_and_the_connection_stays_open() {
    let srv = spawn_server(config()).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    ws.send(Message::binary(b"{\"a\":1}".to_vec()))
        .await
        .expect("send binary");
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"error","message":"Binary frames are not supported"}"#
    );
    send_text(&mut ws, "[]").await;
    assert_eq!(next_text(&mut ws).await, r#"{"type":"echo","data":[]}"#);
    srv.stop().await;
}

#[tokio::test]
async fn group_events_become_frames() {
    let srv = spawn_server(config()).await;
    let mut ws = connect_user(srv.addr, json!(5)).await;
    let hub = srv.state.hub();
    let group = GroupName::new("user_5").expect("valid group");
    let cases = [
        // notification with notification_type → {"type": T, "data": D}
        (
            json!({"type":"notification","notification_type":"friend_online","data":{"id":3}}),
            r#"{"type":"friend_online","data":{"id":3}}"#,
        ),
        // the three named handlers
        (
            json!({"type":"friend_request","data":{"request_id":1}}),
            r#"{"type":"friend_request","data":{"request_id":1}}"#,
        ),
        (
            json!({"type":"friend_accepted","data":{"friend":{"id":2}}}),
            r#"{"type":"friend_accepted","data":{"friend":{"id":2}}}"#,
        ),
        (
            json!({"type":"new_message","data":{"text":"hi"}}),
            r#"{"type":"new_message","data":{"text":"hi"}}"#,
        ),
        // ours: any other type is forwarded generically
        (
            json!({"type":"custom_event","data":[1,2]}),
            r#"{"type":"custom_event","data":[1,2]}"#,
        ),
        // ours: notification without notification_type
        (
            json!({"type":"notification","data":"x"}),
            r#"{"type":"notification","data":"x"}"#,
        ),
        // ours: missing data is null; extra keys are not forwarded
        (
            json!({"type":"ping_me","extra":1}),
            r#"{"type":"ping_me","data":null}"#,
        ),
    ];
    for (event, frame) in cases {
        hub.group_send(&group, &group_message(event.clone()))
            .await
            .expect("group_send");
        assert_eq!(next_text(&mut ws).await, frame, "event {event}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn notify_helpers_send_the_reference_shapes() {
    let srv = spawn_server(config()).await;
    let mut ws = connect_user(srv.addr, json!(8)).await;
    let hub = srv.state.hub();
    let to = UserId::Int(8);
    let from = UserSummary {
        id: json!(3),
        username: "bob".into(),
        first_name: "Bob".into(),
        last_name: "B".into(),
    };

    hub.notify_friend_request(&to, &from, json!(11))
        .await
        .expect("notify");
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type":"friend_request","data":{"request_id":11,"from_user":{"id":3,"username":"bob","first_name":"Bob","last_name":"B"}}})
    );
    hub.notify_friend_accepted(&to, &from)
        .await
        .expect("notify");
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type":"friend_accepted","data":{"friend":{"id":3,"username":"bob","first_name":"Bob","last_name":"B"}}})
    );
    hub.notify_new_message(&to, json!({"id":9,"text":"yo"}))
        .await
        .expect("notify");
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"new_message","data":{"id":9,"text":"yo"}}"#
    );
    // notify_user turns hyphens into underscores, like the reference's utils.py.
    hub.notify_user(&to, "friend-request", json!(null))
        .await
        .expect("notify");
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"type":"friend_request","data":null}"#
    );
    srv.stop().await;
}

#[tokio::test]
async fn client_close_is_answered() {
    let srv = spawn_server(config()).await;
    let mut ws = connect_user(srv.addr, json!(1)).await;
    ws.close(None).await.expect("close");
    // The server answers our close; the stream then ends.
    match next_message(&mut ws).await {
        Message::Close(_) => {}
        other => panic!("expected the close reply, got {other:?}"),
    }
    eventually("membership released", || {
        srv.state.hub().group_size("user_1") == 0
    })
    .await;
    srv.stop().await;
}
