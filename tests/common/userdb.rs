//! The Django user table seen from a running server: the handshake reads it, and a user revoked
//! while connected is closed.

use serde_json::json;

use super::*;

/// Runs a server whose handshake checks the Django user table `user_db`, which must hold alice
/// (1, active) and bob (2, inactive) and no user 3: user 1 is welcomed as alice, users 2 and 3
/// are closed with 4001. Stops the server after.
pub async fn assert_handshake_uses_user_table(user_db: courier::config::UserDbConfig) {
    let mut config = config();
    config.user_db = Some(user_db);
    let s = spawn_server(config).await;

    let mut ws = ws_connect(s.addr, &token_for(json!("1"))).await;
    let hello = next_json(&mut ws).await;
    assert_eq!(
        hello,
        json!({"type": "connection_established", "message": "Connected as alice", "user_id": 1})
    );
    for id in [2, 3] {
        let mut ws = ws_connect(s.addr, &token_for(json!(id))).await;
        expect_close(&mut ws, 4001, "unauthenticated").await;
    }
    s.stop().await;
}

/// With `user_db` holding alice (1, active): her idle connection stays open past the cache TTL,
/// and once `revoke` deactivates or deletes her in the database it is closed 4001 within about
/// the TTL — though she sends nothing — and counted as `revoked`.
pub async fn assert_revoked_user_is_closed<F: std::future::Future<Output = ()>>(
    user_db: courier::config::UserDbConfig,
    revoke: impl FnOnce() -> F,
) {
    let ttl = user_db.cache_ttl;
    let mut config = config();
    config.user_db = Some(user_db);
    let s = spawn_server(config).await;
    let mut ws = connect_user(s.addr, json!(1)).await;
    tokio::time::sleep(ttl * 3).await;
    send_text(&mut ws, "1").await;
    assert_eq!(next_json(&mut ws).await, json!({"type": "echo", "data": 1}));
    revoke().await;
    expect_close(&mut ws, 4001, "unauthenticated").await;
    let m = metrics(s.addr).await;
    assert_metric(&m, r#"courier_auth_failures_total{reason="revoked"}"#, 1.0);
    s.stop().await;
}
