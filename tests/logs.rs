//! Secrets never reach the logs (issue 9 §6): with every courier log line captured at `debug`,
//! tokens (valid, forged, expired) and API keys (right and wrong) appear nowhere, while each
//! refusal is logged once with its reason.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_keys_never_appear_in_debug_logs() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("courier=debug")
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();
    let srv = spawn_server(config()).await;
    let valid = token_for(json!(5));
    let forged = mint_token("not-the-secret", json!({}));
    let expired = mint_token(SECRET, json!({"exp": now() - 60}));
    let mut ok = ws_connect(srv.addr, &valid).await;
    assert_eq!(next_json(&mut ok).await["type"], "connection_established");
    for t in [&forged, &expired] {
        let mut ws = ws_connect(srv.addr, t).await;
        expect_close(&mut ws, 4001, "unauthenticated").await;
    }
    let wrong_key = "wrong-key-d41d8cd98f00b204";
    let body = br#"{"user_id": 5, "type": "t", "data": 1}"#;
    let r = http(
        srv.addr,
        "POST",
        "/api/notify",
        &[("X-API-Key", wrong_key)],
        body,
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(!r.body.contains(wrong_key), "error body echoes the key");
    let r = http(
        srv.addr,
        "POST",
        "/api/notify",
        &[("X-API-Key", API_KEY)],
        body,
    )
    .await;
    assert_eq!(r.status, 202);
    drop(ok);
    srv.stop().await;

    let text = logs.text();
    for (what, secret) in [
        ("valid token", valid.as_str()),
        ("forged token", forged.as_str()),
        ("expired token", expired.as_str()),
        ("API key", API_KEY),
        ("wrong API key", wrong_key),
        ("JWT secret", SECRET),
    ] {
        assert!(!text.contains(secret), "{what} found in the logs:\n{text}");
        // A token's signature alone is as good as the token.
        if let Some(sig) = secret.rsplit('.').next().filter(|s| s.len() > 20) {
            assert!(!text.contains(sig), "{what}'s signature found in the logs");
        }
    }
    assert_eq!(
        text.matches("websocket unauthenticated").count(),
        2,
        "each refusal logged once:\n{text}"
    );
    assert!(
        text.contains("reason=\"bad_signature\"") && text.contains("reason=\"expired\""),
        "{text}"
    );
}
