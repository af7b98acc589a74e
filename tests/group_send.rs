//! PROTOCOL.md §3: group membership and fan-out through real sockets — every connection of a user
//! receives, nobody else does, and membership ends with the connection.
//!
//! "Receives nothing" is checked without sleeping: after the event under test, a marker is sent to
//! the bystander, and the marker must be the bystander's very next frame.

mod common;

use common::*;
use courier::layer::GroupName;
use courier::UserId;
use serde_json::json;

async fn marker(srv: &TestServer, user: i64, ws: &mut Ws) {
    srv.state
        .hub()
        .notify_user(&UserId::Int(user), "marker", json!(user))
        .await
        .expect("notify");
    assert_eq!(
        next_text(ws).await,
        format!(r#"{{"type":"marker","data":{user}}}"#),
        "user {user} got something before the marker"
    );
}

#[tokio::test]
async fn every_connection_of_a_user_receives_and_others_do_not() {
    let srv = spawn_server(config()).await;
    let mut a1 = connect_user(srv.addr, json!("1")).await;
    let mut a2 = connect_user(srv.addr, json!(1)).await;
    let mut a3 = connect_user(srv.addr, json!("1")).await;
    let mut b = connect_user(srv.addr, json!("2")).await;
    let mut c = connect_user(srv.addr, json!("12")).await; // `user_12` must not match `user_1`
    assert_eq!(srv.state.hub().group_size("user_1"), 3);

    for i in 0..5 {
        srv.state
            .hub()
            .notify_user(&UserId::Int(1), "new_message", json!({"n": i}))
            .await
            .expect("notify");
    }
    for ws in [&mut a1, &mut a2, &mut a3] {
        for i in 0..5 {
            assert_eq!(
                next_text(ws).await,
                format!(r#"{{"type":"new_message","data":{{"n":{i}}}}}"#)
            );
        }
    }
    marker(&srv, 2, &mut b).await;
    marker(&srv, 12, &mut c).await;
    srv.stop().await;
}

#[tokio::test]
async fn send_to_an_empty_group_is_not_an_error() {
    let srv = spawn_server(config()).await;
    let group = GroupName::new("user_404").expect("group");
    let msg = json!({"type": "x", "data": 1})
        .as_object()
        .cloned()
        .expect("object");
    srv.state
        .hub()
        .group_send(&group, &msg)
        .await
        .expect("empty group is fine");
    assert_eq!(srv.state.hub().deliver_local(&group, &msg), 0);
    srv.stop().await;
}

#[tokio::test]
async fn membership_is_gone_after_disconnect() {
    let srv = spawn_server(config()).await;
    let hub = srv.state.hub().clone();
    let mut a = connect_user(srv.addr, json!(9)).await;
    let b = connect_user(srv.addr, json!(9)).await;
    let c = connect_user(srv.addr, json!(10)).await;
    assert_eq!(hub.group_size("user_9"), 2);
    assert_eq!(hub.group_count(), 2);
    assert_eq!(srv.state.open_connections(), 3);

    // A clean close.
    a.close(None).await.expect("close");
    eventually("a leaves user_9", || hub.group_size("user_9") == 1).await;
    // A dropped TCP connection (no close frame).
    drop(b);
    eventually("b leaves user_9", || hub.group_size("user_9") == 0).await;
    assert_eq!(hub.group_count(), 1);
    drop(c);
    eventually("all groups gone", || hub.group_count() == 0).await;
    eventually("all slots freed", || srv.state.open_connections() == 0).await;

    let m = metrics(srv.addr).await;
    assert_metric(&m, "courier_connections_open", 0.0);
    assert_metric(&m, "courier_groups", 0.0);
    assert_metric(&m, "courier_group_members", 0.0);
    assert_metric(&m, r#"courier_handshakes_total{result="accepted"}"#, 3.0);
    // Nothing is delivered to a group whose members left.
    let msg = json!({"type": "x"}).as_object().cloned().expect("object");
    assert_eq!(
        hub.deliver_local(&GroupName::new("user_9").expect("group"), &msg),
        0
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_reconnected_user_receives_again() {
    let srv = spawn_server(config()).await;
    let ws = connect_user(srv.addr, json!(3)).await;
    drop(ws);
    eventually("left", || srv.state.hub().group_size("user_3") == 0).await;
    let mut ws = connect_user(srv.addr, json!(3)).await;
    marker(&srv, 3, &mut ws).await;
    srv.stop().await;
}

#[tokio::test]
async fn metrics_count_publishes_and_deliveries() {
    let srv = spawn_server(config()).await;
    let mut a = connect_user(srv.addr, json!(1)).await;
    let mut b = connect_user(srv.addr, json!(1)).await;
    srv.state
        .hub()
        .notify_user(&UserId::Int(1), "t", json!(1))
        .await
        .expect("notify");
    srv.state
        .hub()
        .notify_user(&UserId::Int(77), "t", json!(1))
        .await
        .expect("notify");
    next_text(&mut a).await;
    next_text(&mut b).await;
    let m = metrics(srv.addr).await;
    assert_metric(&m, "courier_events_published_total", 2.0);
    assert_metric(&m, "courier_deliveries_total", 2.0);
    assert_metric(&m, "courier_connections_open", 2.0);
    assert_metric(&m, "courier_groups", 1.0);
    assert_metric(&m, "courier_group_members", 2.0);
    let health = http(srv.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    srv.stop().await;
}
