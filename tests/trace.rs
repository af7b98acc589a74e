//! The publish trace (`--trace-publishes`): every published event as one JSON line — time, group,
//! type, data size, never the content — in publish order, rotated at its size bound, written out at
//! shutdown.

mod common;

use std::path::PathBuf;

use common::*;
use courier::config::TraceConfig;
use serde_json::{json, Value};

fn read_lines(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[tokio::test]
async fn published_events_are_traced_in_order_without_content_and_rotated() {
    let dir = std::env::temp_dir().join(format!("courier-trace-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("publishes.jsonl");
    let mut cfg = config();
    cfg.trace = Some(TraceConfig {
        path: path.clone(),
        sample: 1.0,
        max_bytes: 4096,
    });
    let srv = spawn_server(cfg).await;
    let secret = "do-not-trace-me";
    let batch: Vec<Value> = (0..80)
        .map(|i| json!({"user_id": i % 4, "type": "new-message", "data": {"n": i, "s": secret}}))
        .collect();
    assert_eq!(
        post_json(srv.addr, "/api/notify", &Value::Array(batch))
            .await
            .status,
        202
    );
    let send = json!({"group": "user_1", "message": {"type": "notification", "notification_type": "x", "data": [1, 2]}});
    assert_eq!(
        post_json(srv.addr, "/api/group_send", &send).await.status,
        202
    );
    srv.stop().await;

    let mut old = path.clone().into_os_string();
    old.push(".1");
    let rotated = read_lines(&PathBuf::from(old));
    let current = read_lines(&path);
    assert!(!rotated.is_empty(), "4 KiB of lines rotated once");
    let lines: Vec<Value> = rotated.into_iter().chain(current).collect();
    assert_eq!(lines.len(), 81, "every event, none twice");
    for (i, line) in lines[..80].iter().enumerate() {
        assert_eq!(line["group"], format!("user_{}", i % 4));
        assert_eq!(line["type"], "new_message");
        let data = json!({"n": i, "s": secret}).to_string();
        assert_eq!(line["bytes"].as_u64(), Some(data.len() as u64), "{line}");
        assert_eq!(
            line.as_object().map(|o| o.len()),
            Some(4),
            "t_us, group, type, bytes only"
        );
    }
    assert_eq!(lines[80]["type"], "x");
    assert_eq!(lines[80]["bytes"], 5);
    let times: Vec<u64> = lines
        .iter()
        .map(|l| l["t_us"].as_u64().expect("t_us"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(!text.contains(secret));
    let _ = std::fs::remove_dir_all(&dir);
}
