//! PROTOCOL.md §1: where the token may come from, what simplejwt accepts and rejects, and what an
//! unauthenticated client sees (handshake completes, then close 4001 `unauthenticated`, nothing else).

mod common;

use common::*;
use jsonwebtoken::{Algorithm, Header};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Connects with `token` in the query string and expects close 4001 with no frame before it.
async fn assert_rejected(srv: &TestServer, token: &str, case: &str) {
    let mut ws = ws_connect(srv.addr, token).await;
    match tokio::time::timeout(WAIT, expect_close(&mut ws, 4001, "unauthenticated")).await {
        Ok(()) => {}
        Err(_) => panic!("{case}: no close"),
    }
}

fn alg_none_token() -> String {
    let claims = Value::Object(access_claims());
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64url(claims.to_string().as_bytes());
    format!("{header}.{body}.")
}

#[tokio::test]
async fn every_auth_failure_closes_4001() {
    let srv = spawn_server(config()).await;
    let now = now();
    let garbage: String = std::iter::repeat("AbC9-_")
        .flat_map(str::chars)
        .take(8 * 1024)
        .collect();
    let cases: Vec<(&str, String)> = vec![
        ("missing", String::new()),
        ("malformed", "not-a-jwt".into()),
        ("malformed three parts", "a.b.c".into()),
        ("bad signature", mint_token("another-secret", json!({}))),
        ("alg none", alg_none_token()),
        (
            "alg none, empty signature stripped",
            alg_none_token().trim_end_matches('.').into(),
        ),
        ("expired", mint_token(SECRET, json!({"exp": now - 1}))),
        ("expires now", mint_token(SECRET, json!({"exp": now}))),
        (
            "refresh token",
            mint_token(SECRET, json!({"token_type": "refresh"})),
        ),
        (
            "missing token_type",
            mint_token(SECRET, json!({"token_type": null})),
        ),
        ("missing jti", mint_token(SECRET, json!({"jti": null}))),
        ("missing exp", mint_token(SECRET, json!({"exp": null}))),
        (
            "iat in the future",
            mint_token(SECRET, json!({"iat": now + 60})),
        ),
        (
            "nbf in the future",
            mint_token(SECRET, json!({"nbf": now + 60})),
        ),
        (
            "HS512 when HS256 is configured",
            mint_with(Algorithm::HS512, SECRET, json!({})),
        ),
        (
            "HS384 when HS256 is configured",
            mint_with(Algorithm::HS384, SECRET, json!({})),
        ),
        (
            "missing user_id",
            mint_token(SECRET, json!({"user_id": null})),
        ),
        (
            "user_id not an id",
            mint_token(SECRET, json!({"user_id": "a b"})),
        ),
        (
            "user_id a float",
            mint_token(SECRET, json!({"user_id": 1.5})),
        ),
        ("8 KB of garbage", garbage),
    ];
    for (case, token) in &cases {
        assert_rejected(&srv, token, case).await;
    }
    // No connection was admitted, and the reasons were counted (never sent to the client).
    assert_eq!(srv.state.hub().group_count(), 0);
    let m = metrics(srv.addr).await;
    assert_eq!(
        metric(&m, r#"courier_handshakes_total{result="unauthenticated"}"#),
        Some(cases.len() as f64),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"courier_handshakes_total{result="accepted"}"#),
        None
    );
    assert_eq!(
        metric(&m, r#"courier_closes_total{code="4001"}"#),
        Some(cases.len() as f64)
    );
    let failures: f64 = m
        .lines()
        .filter(|l| l.starts_with("courier_auth_failures_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        failures,
        cases.len() as f64,
        "every failure counted once:\n{m}"
    );
    for (reason, n) in [
        ("missing", 1.0),
        ("expired", 2.0),
        ("wrong_type", 2.0),
        ("bad_signature", 1.0),
        ("bad_algorithm", 2.0),
    ] {
        let series = format!(r#"courier_auth_failures_total{{reason="{reason}"}}"#);
        assert_eq!(metric(&m, &series), Some(n), "{series} in\n{m}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn accepts_what_simplejwt_accepts() {
    let srv = spawn_server(config()).await;
    let mut kid = Header::new(Algorithm::HS256);
    kid.kid = Some("key-1".into());
    let cases: Vec<(&str, String, Value)> = vec![
        (
            "string user_id (simplejwt >= 5.5.1)",
            token_for(json!("42")),
            json!(42),
        ),
        (
            "integer user_id (older simplejwt)",
            token_for(json!(42)),
            json!(42),
        ),
        ("\"01\" is user 1", token_for(json!("01")), json!(1)),
        ("\"1 \" is user 1", token_for(json!("1 ")), json!(1)),
        (
            "missing iat",
            mint_token(SECRET, json!({"iat": null, "user_id": "3"})),
            json!(3),
        ),
        (
            "extra claims and aud",
            mint_token(SECRET, json!({"aud": "x", "foo": [1], "user_id": "4"})),
            json!(4),
        ),
        (
            "kid header",
            encode_claims(&kid, SECRET, json!({"user_id": "5"})),
            json!(5),
        ),
    ];
    for (case, token, id) in cases {
        let mut ws = ws_connect(srv.addr, &token).await;
        let hello = next_json(&mut ws).await;
        assert_eq!(hello["type"], "connection_established", "{case}: {hello}");
        assert_eq!(hello["user_id"], id, "{case}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn integer_and_string_user_id_share_one_group() {
    let srv = spawn_server(config()).await;
    let mut a = connect_user(srv.addr, json!(1)).await;
    let mut b = connect_user(srv.addr, json!("01")).await;
    assert_eq!(srv.state.hub().group_size("user_1"), 2);
    srv.state
        .hub()
        .notify_user(&courier::UserId::Int(1), "new_message", json!("hi"))
        .await
        .expect("notify");
    for ws in [&mut a, &mut b] {
        assert_eq!(next_text(ws).await, r#"{"type":"new_message","data":"hi"}"#);
    }
    srv.stop().await;
}

#[tokio::test]
async fn token_via_authorization_header() {
    let srv = spawn_server(config()).await;
    let mut req = srv.ws_url().into_client_request().expect("request");
    let value = format!("Bearer {}", token_for(json!("9")));
    req.headers_mut()
        .insert("Authorization", value.parse().expect("header"));
    let (mut ws, _) = ws_connect_request(req).await;
    assert_eq!(next_json(&mut ws).await["user_id"], 9);

    // A bad bearer token is still a 4001, not an HTTP error.
    let mut req = srv.ws_url().into_client_request().expect("request");
    req.headers_mut()
        .insert("Authorization", "Bearer nope".parse().expect("header"));
    let (mut ws, _) = ws_connect_request(req).await;
    expect_close(&mut ws, 4001, "unauthenticated").await;
    srv.stop().await;
}

#[tokio::test]
async fn token_via_subprotocol_selects_bearer() {
    let srv = spawn_server(config()).await;
    let mut req = srv.ws_url().into_client_request().expect("request");
    let value = format!("bearer, {}", token_for(json!("10")));
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", value.parse().expect("header"));
    // tungstenite itself fails the handshake if the server picks a protocol we did not offer or
    // none at all; we also check it is exactly `bearer` (never echo the token back).
    let (mut ws, resp) = ws_connect_request(req).await;
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().ok()),
        Some(Some("bearer"))
    );
    assert_eq!(next_json(&mut ws).await["user_id"], 10);
    srv.stop().await;
}

#[tokio::test]
async fn path_with_and_without_trailing_slash_and_other_query_params() {
    let srv = spawn_server(config()).await;
    let token = token_for(json!("11"));
    for url in [
        format!("ws://{}/ws/notifications/?token={token}", srv.addr),
        format!("ws://{}/ws/notifications?token={token}", srv.addr),
        format!(
            "ws://{}/ws/notifications/?v=2&token={token}&token=ignored",
            srv.addr
        ),
    ] {
        let mut ws = ws_connect_url(&url).await;
        assert_eq!(next_json(&mut ws).await["user_id"], 11, "{url}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn an_unauthenticated_client_gets_no_group_events() {
    let srv = spawn_server(config()).await;
    let mut ws = ws_connect(srv.addr, "garbage").await;
    expect_close(&mut ws, 4001, "unauthenticated").await;
    assert_eq!(srv.state.hub().group_count(), 0);
    assert_eq!(srv.state.open_connections(), 0);
    srv.stop().await;
}
