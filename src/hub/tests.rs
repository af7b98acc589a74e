//! The hub's unit tests: runs and bounds, positions, resume, order, the byte cap.

use super::*;
use crate::history::Recover;
use crate::layer::MemoryLayer;
use crate::outbox::Limits;
use crate::outbox::Push;
use bytes::Bytes;
use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

fn hub(policy: SlowPolicy) -> Hub {
    Hub::new(
        Arc::new(MemoryLayer::new()),
        policy,
        Arc::new(Metrics::new()),
        None,
    )
}

fn history_hub(history: HistoryConfig) -> Hub {
    Hub::new(
        Arc::new(MemoryLayer::new()),
        SlowPolicy::Close,
        Arc::new(Metrics::new()),
        Some(history),
    )
}

fn outbox(hub: &Hub, max_frames: usize) -> Arc<Outbox> {
    let limits = Limits {
        max_frames,
        max_bytes: 1 << 20,
    };
    Arc::new(Outbox::new(hub.next_conn_id(), limits))
}

/// Joins with `recover`; the welcome frame says where the client starts.
fn join(hub: &Hub, group: &GroupName, recover: Recover) -> Arc<Outbox> {
    let out = outbox(hub, 1000);
    let welcome = |at: Option<&Position>| {
        Some(protocol::frame(
            "welcome",
            &serde_json::json!(at.map(|p| (p.offset, p.epoch.to_string()))),
        ))
    };
    futures::executor::block_on(hub.join(group, out.clone(), 0, &recover, welcome))
        .expect("joined");
    out
}

fn json(frames: &[Bytes]) -> Vec<serde_json::Value> {
    frames
        .iter()
        .map(|f| serde_json::from_str(protocol::frame_text(f)).expect("JSON"))
        .collect()
}

fn publish(hub: &Hub, group: &GroupName, range: std::ops::RangeInclusive<u64>) {
    let frames: Vec<Bytes> = range
        .map(|i| protocol::frame("e", &serde_json::json!(i)))
        .collect();
    hub.publish_local(
        frames
            .into_iter()
            .map(|f| (group, f))
            .collect::<Vec<_>>()
            .into_iter(),
    );
}

fn member(hub: &Hub, group: &GroupName, max_frames: usize) -> Arc<Outbox> {
    let out = outbox(hub, max_frames);
    assert!(hub.group_add(group, out.clone(), 0));
    out
}

fn queued(out: &Outbox) -> Vec<Bytes> {
    let mut batch = VecDeque::new();
    let mut cx = Context::from_waker(Waker::noop());
    match out.poll_take(&mut cx, &mut batch, 0) {
        Poll::Ready(_) => batch.into_iter().collect(),
        Poll::Pending => Vec::new(),
    }
}

#[test]
fn runs_of_one_group_keep_the_order_given() {
    let hub = hub(SlowPolicy::Close);
    let (g1, g2) = (GroupName::new("g1").unwrap(), GroupName::new("g2").unwrap());
    let (x1, x2, y) = (
        member(&hub, &g1, 8),
        member(&hub, &g1, 8),
        member(&hub, &g2, 8),
    );
    // A member of both groups sees the frames exactly in the order published.
    let both = member(&hub, &g1, 8);
    assert!(hub.group_add(&g2, both.clone(), 0));
    let f = |s: &'static str| Bytes::from_static(s.as_bytes());
    let items = [(&g1, f("a")), (&g1, f("b")), (&g2, f("c")), (&g1, f("d"))];
    hub.publish_local(items.into_iter());
    for x in [&x1, &x2] {
        assert_eq!(queued(x), [f("a"), f("b"), f("d")]);
    }
    assert_eq!(queued(&y), [f("c")]);
    assert_eq!(queued(&both), [f("a"), f("b"), f("c"), f("d")]);
    let m = &hub.0.metrics;
    assert_eq!(m.deliveries.get(), 11);
    assert_eq!(m.events_published.get(), 4);
    assert_eq!(m.events_received.get(), 4);
}

#[test]
fn a_run_past_the_bound_counts_every_refused_frame() {
    let hub = hub(SlowPolicy::DropNewest);
    let g = GroupName::new("g").unwrap();
    let (small, roomy) = (member(&hub, &g, 2), member(&hub, &g, 8));
    let frames: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i])).collect();
    hub.publish_local(frames.iter().map(|f| (&g, f.clone())));
    assert_eq!(queued(&small), frames[..2]);
    assert_eq!(queued(&roomy), frames);
    let m = &hub.0.metrics;
    assert_eq!(m.deliveries.get(), 7);
    assert_eq!(m.queue_full.get(), 3);
    assert!(m
        .render()
        .contains(r#"courier_drops_total{reason="queue_full"} 3"#));
    // A closed queue takes nothing and says so.
    small.close(CloseCode::SlowConsumer);
    assert_eq!(small.push_all(&frames), (0, Push::Closed));
}

#[test]
fn a_resume_replays_the_gap_then_goes_on_live_and_plain_members_see_no_positions() {
    let hub = history_hub(HistoryConfig::default());
    let g = GroupName::new("user_7").unwrap();
    publish(&hub, &g, 1..=3);
    let fresh = join(&hub, &g, Recover::Fresh);
    let plain = join(&hub, &g, Recover::No);
    let head = json(&queued(&fresh))[0]["data"].clone();
    assert_eq!(head[0], 3, "a fresh positioned join starts at the head");
    let epoch = head[1].as_str().unwrap().to_owned();
    publish(&hub, &g, 4..=10);
    let live = json(&queued(&fresh));
    assert_eq!(live.len(), 7);
    for (i, f) in live.iter().enumerate() {
        assert_eq!(f["offset"], 4 + i as u64);
        assert_eq!(f["epoch"], epoch.as_str());
    }
    let plain_frames = json(&queued(&plain));
    assert_eq!(plain_frames[0]["data"], serde_json::Value::Null);
    assert!(plain_frames[1..].iter().all(|f| f.get("offset").is_none()));
    // Away after offset 6: offsets 7..=10 come back, in order, once; then live from 11.
    let since = Recover::Since(Position {
        offset: 6,
        epoch: epoch.as_str().into(),
    });
    let back = join(&hub, &g, since);
    publish(&hub, &g, 11..=11);
    let frames = json(&queued(&back));
    assert_eq!(
        frames[0]["data"][0], 6,
        "the welcome carries the position sent"
    );
    let offsets: Vec<u64> = frames[1..]
        .iter()
        .map(|f| f["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [7, 8, 9, 10, 11]);
    let m = &hub.0.metrics.render();
    assert!(
        m.contains(r#"courier_resumes_total{reason="replayed"} 1"#),
        "{m}"
    );
    assert!(m.contains("courier_replayed_events_total 4"), "{m}");
}

#[test]
fn positions_that_cannot_be_served_get_one_resync_before_any_event() {
    let hub = history_hub(HistoryConfig {
        size: 5,
        ..HistoryConfig::default()
    });
    let g = GroupName::new("user_8").unwrap();
    publish(&hub, &g, 1..=20);
    let epoch = {
        let f = json(&queued(&join(&hub, &g, Recover::Fresh)));
        f[0]["data"][1].as_str().unwrap().to_owned()
    };
    let cases = [
        (
            Recover::Since(Position {
                offset: 2,
                epoch: epoch.as_str().into(),
            }),
            "position_expired",
        ),
        (
            Recover::Since(Position {
                offset: 2,
                epoch: "gone".into(),
            }),
            "epoch_changed",
        ),
        (
            Recover::Since(Position {
                offset: 99,
                epoch: epoch.as_str().into(),
            }),
            "epoch_changed",
        ),
        (Recover::Unusable, "epoch_changed"),
    ];
    for (recover, reason) in cases {
        let out = join(&hub, &g, recover);
        let frames = json(&queued(&out));
        assert_eq!(frames.len(), 2, "{reason}: welcome and resync only");
        assert_eq!(frames[1]["type"], "resync");
        assert_eq!(frames[1]["data"]["reason"], reason);
        assert_eq!(frames[1]["data"]["offset"], 20);
        assert_eq!(frames[1]["data"]["epoch"], epoch.as_str());
    }
}

#[test]
fn concurrent_publishers_deliver_offsets_in_order() {
    let hub = history_hub(HistoryConfig {
        size: 0,
        ..HistoryConfig::default()
    });
    let g = GroupName::new("user_1").unwrap();
    let out = outbox(&hub, 100_000);
    futures::executor::block_on(hub.join(&g, out.clone(), 0, &Recover::Fresh, |_| None)).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..500 {
                    publish(&hub, &g, 1..=1);
                }
            });
        }
    });
    let offsets: Vec<u64> = json(&queued(&out))
        .iter()
        .map(|f| f["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, (1..=2000).collect::<Vec<_>>());
}

#[test]
fn the_byte_cap_evicts_idle_streams_first_and_is_never_exceeded() {
    let cfg = HistoryConfig {
        max_bytes: SHARDS * 8 * 1024,
        ..HistoryConfig::default()
    };
    let cap = cfg.max_bytes;
    let hub = history_hub(cfg);
    let kept = GroupName::new("user_0").unwrap();
    let member = join(&hub, &kept, Recover::Fresh);
    for u in 0..2000 {
        let g = GroupName::new(&format!("user_{u}")).unwrap();
        publish(&hub, &g, 1..=5);
        let bytes = hub.0.metrics.history_bytes.get();
        assert!(bytes as usize <= cap, "{bytes} > {cap}");
    }
    assert!(hub.0.metrics.history_evictions.get() > 0);
    // The connected user's stream was never evicted: its position still resumes.
    let epoch = json(&queued(&member))[0]["data"][1]
        .as_str()
        .unwrap()
        .to_owned();
    let back = join(
        &hub,
        &kept,
        Recover::Since(Position {
            offset: 5,
            epoch: epoch.into(),
        }),
    );
    assert_eq!(json(&queued(&back)).len(), 1, "current: the welcome only");
    let sum: usize = hub.shards().map(|s| s.history_bytes).sum();
    assert_eq!(sum as i64, hub.0.metrics.history_bytes.get());
}

#[test]
fn a_sweep_forgets_idle_positions_and_aged_events() {
    let cfg = HistoryConfig {
        ttl: std::time::Duration::from_secs(1),
        meta_ttl: std::time::Duration::from_secs(1),
        ..HistoryConfig::default()
    };
    let hub = history_hub(cfg);
    let g = GroupName::new("user_3").unwrap();
    publish(&hub, &g, 1..=3);
    assert_eq!(hub.0.metrics.history_streams.get(), 1);
    hub.sweep_history();
    assert_eq!(hub.0.metrics.history_streams.get(), 1, "not idle yet");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    hub.sweep_history();
    assert_eq!(hub.0.metrics.history_streams.get(), 0);
    assert_eq!(hub.0.metrics.history_bytes.get(), 0);
    assert_eq!(hub.group_count(), 0);
}
