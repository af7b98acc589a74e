//! Reliable delivery over real sockets (PROTOCOL.md §7), memory layer: a client that drops and
//! comes back with its position gets exactly what it missed, in order, then live events; a
//! position that cannot be served is told with one `resync`; a client without `recover=1` sees
//! frames as before.

mod common;

use common::*;
use serde_json::json;

fn url(srv: &TestServer, user: u64, query: &str) -> String {
    format!("{}?token={}&{query}", srv.ws_url(), token_for(json!(user)))
}

#[tokio::test]
async fn a_reconnect_with_its_position_gets_every_missed_event_once_in_order() {
    let srv = spawn_server(config()).await;
    let mut ws = ws_connect_url(&url(&srv, 5, "recover=1")).await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "connection_established");
    assert_eq!(hello["offset"], 0, "{hello}");
    let epoch = hello["epoch"].as_str().expect("epoch").to_owned();
    notify_range(srv.addr, 5, 1..=10).await;
    for i in 1..=10u64 {
        let f = next_json(&mut ws).await;
        assert_eq!(
            f,
            json!({"type":"new_message","data":{"n":i},"offset":i,"epoch":epoch})
        );
    }
    drop(ws);
    // Away while events 11..=30 are published.
    notify_range(srv.addr, 5, 11..=30).await;
    let mut back = ws_connect_url(&url(&srv, 5, &format!("since=10&epoch={epoch}"))).await;
    let hello = next_json(&mut back).await;
    assert_eq!(
        (hello["offset"].as_u64(), hello["epoch"].as_str()),
        (Some(10), Some(&*epoch))
    );
    notify_range(srv.addr, 5, 31..=31).await;
    for i in 11..=31u64 {
        let f = next_json(&mut back).await;
        assert_eq!(
            (f["data"]["n"].as_u64(), f["offset"].as_u64()),
            (Some(i), Some(i)),
            "{f}"
        );
    }
    let m = metrics(srv.addr).await;
    assert_metric(&m, r#"courier_resumes_total{reason="replayed"}"#, 1.0);
    assert_metric(&m, "courier_replayed_events_total", 20.0);
    // A client without recover=1 sees the reference's frames.
    let mut plain = connect_user(srv.addr, json!(5)).await;
    notify_range(srv.addr, 5, 32..=32).await;
    assert_eq!(
        next_json(&mut plain).await,
        json!({"type":"new_message","data":{"n":32}})
    );
    srv.stop().await;
}

#[tokio::test]
async fn positions_that_cannot_be_served_are_signalled_before_any_event() {
    let mut cfg = config();
    cfg.history.size = 5;
    let srv = spawn_server(cfg).await;
    let mut ws = ws_connect_url(&url(&srv, 6, "recover=1")).await;
    let epoch = next_json(&mut ws).await["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    notify_range(srv.addr, 6, 1..=20).await;
    for i in 1..=20u64 {
        assert_eq!(next_json(&mut ws).await["offset"].as_u64(), Some(i));
    }
    let cases = [
        (format!("since=3&epoch={epoch}"), "position_expired"),
        ("since=3&epoch=restarted".to_owned(), "epoch_changed"),
        ("since=abc&epoch=x".to_owned(), "epoch_changed"),
    ];
    let mut head = 20;
    for (query, reason) in cases {
        let mut c = ws_connect_url(&url(&srv, 6, &query)).await;
        assert_eq!(next_json(&mut c).await["type"], "connection_established");
        let resync = next_json(&mut c).await;
        assert_eq!(
            resync,
            json!({"type":"resync","data":{"reason":reason,"offset":head,"epoch":epoch}}),
            "{query}"
        );
        head += 1;
        notify_range(srv.addr, 6, head..=head).await;
        for conn in [&mut c, &mut ws] {
            let live = next_json(conn).await;
            assert_eq!(
                live["offset"].as_u64(),
                Some(head),
                "live goes on after the resync"
            );
        }
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_token_past_exp_and_grace_closes_4001_and_a_refresh_extends_it() {
    let mut cfg = config();
    cfg.token_grace = std::time::Duration::from_millis(300);
    let srv = spawn_server(cfg).await;
    let short = |secs: i64| mint_token(SECRET, json!({"user_id": "9", "exp": now() + secs}));
    // Not refreshed: closed at exp + grace with the documented code and reason.
    let mut ws = ws_connect(srv.addr, &short(1)).await;
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    expect_close(&mut ws, 4001, "token expired").await;
    // Refreshed in place before exp: answered, not echoed, and the connection outlives the first
    // token.
    let mut ws = ws_connect(srv.addr, &short(1)).await;
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    let fresh = short(60);
    send_text(
        &mut ws,
        &json!({"type":"refresh","token":fresh}).to_string(),
    )
    .await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["type"], "refreshed", "{reply}");
    assert_eq!(
        reply["data"]["exp"].as_i64().map(|e| e > now() + 30),
        Some(true)
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    send_text(&mut ws, "[1]").await;
    assert_eq!(next_json(&mut ws).await, json!({"type":"echo","data":[1]}));
    // Another user's token, a refresh token and garbage all close 4001.
    let bad = [
        json!({"type":"refresh","token": token_for(json!(10))}),
        json!({"type":"refresh","token": mint_token(SECRET, json!({"user_id":"9","token_type":"refresh"}))}),
        json!({"type":"refresh","token": 5}),
        json!({"type":"refresh"}),
    ];
    for frame in bad {
        let mut ws = connect_user(srv.addr, json!(9)).await;
        send_text(&mut ws, &frame.to_string()).await;
        expect_close(&mut ws, 4001, "unauthenticated").await;
    }
    let m = metrics(srv.addr).await;
    assert_metric(
        &m,
        r#"courier_token_refreshes_total{reason="other_user"}"#,
        1.0,
    );
    assert_metric(&m, r#"courier_token_refreshes_total{reason="ok"}"#, 1.0);
    srv.stop().await;
}

#[tokio::test]
async fn token_expiry_ignore_keeps_the_reference_behaviour() {
    let mut cfg = config();
    cfg.token_expiry = courier::config::TokenExpiry::Ignore;
    cfg.token_grace = std::time::Duration::ZERO;
    let srv = spawn_server(cfg).await;
    let token = mint_token(SECRET, json!({"user_id": "9", "exp": now() + 1}));
    let mut ws = ws_connect(srv.addr, &token).await;
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    send_text(&mut ws, "1").await;
    assert_eq!(next_json(&mut ws).await, json!({"type":"echo","data":1}));
    srv.stop().await;
}
