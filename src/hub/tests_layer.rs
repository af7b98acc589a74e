//! The hub over a layer that keeps history: numbered events, the resume hold, gaps.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::json;

use super::*;
use crate::history::Recover;
use crate::layer::{GroupMessage, Inbound, StreamHistory};
use crate::outbox::Limits;

/// A layer whose stream is a list, and whose read lets `during_read` events arrive live first
/// (as if published while the read was on its way).
#[derive(Default)]
struct Numbered {
    inbound: OnceLock<Inbound>,
    stream: Mutex<Vec<(u64, GroupMessage)>>,
    during_read: Mutex<Vec<u64>>,
}

fn message(n: u64) -> GroupMessage {
    json!({"type": "e", "data": n})
        .as_object()
        .cloned()
        .unwrap()
}

fn at(offset: u64) -> Position {
    Position {
        offset,
        epoch: "E".into(),
    }
}

impl Numbered {
    /// Publishes offset `n`: kept in the stream, delivered live.
    fn publish(&self, group: &GroupName, n: u64) {
        self.stream.lock().unwrap().push((n, message(n)));
        if let Some(inbound) = self.inbound.get() {
            inbound(group, &message(n), Some(&at(n)));
        }
    }
}

impl ChannelLayer for Numbered {
    fn name(&self) -> &'static str {
        "numbered"
    }
    fn attach(&self, inbound: Inbound) {
        let _ = self.inbound.set(inbound);
    }
    fn keeps_history(&self) -> bool {
        true
    }
    fn read_stream<'a>(
        &'a self,
        group: &'a GroupName,
        after: Option<u64>,
    ) -> BoxFuture<'a, Result<StreamHistory>> {
        let read = {
            let stream = self.stream.lock().unwrap();
            let head = stream.last().map_or(0, |(o, _)| *o);
            let events = stream
                .iter()
                .filter(|(o, _)| after.is_some_and(|a| *o > a))
                .cloned()
                .collect();
            StreamHistory {
                head: at(head),
                events,
            }
        };
        let late: Vec<u64> = std::mem::take(&mut *self.during_read.lock().unwrap());
        for n in late {
            self.publish(group, n);
        }
        Box::pin(std::future::ready(Ok(read)))
    }
    fn subscribe(&self, _group: &GroupName) {}
    fn unsubscribe(&self, _group: &GroupName) {}
    fn publish<'a>(
        &'a self,
        _group: &'a GroupName,
        _message: &'a GroupMessage,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

fn setup() -> (Arc<Numbered>, Hub, GroupName) {
    let layer = Arc::new(Numbered::default());
    let hub = Hub::new(
        layer.clone(),
        SlowPolicy::Close,
        Arc::new(Metrics::new()),
        Some(crate::config::HistoryConfig::default()),
    );
    (layer, hub, GroupName::new("user_1").unwrap())
}

fn join(hub: &Hub, g: &GroupName, recover: Recover) -> Arc<Outbox> {
    let limits = Limits {
        max_frames: 100,
        max_bytes: 1 << 20,
    };
    let out = Arc::new(Outbox::new(hub.next_conn_id(), limits));
    let welcome = |_: Option<&Position>| Some(Bytes::from_static(b"welcome"));
    // The resume's read is bounded by a Tokio timer.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(hub.join(g, out.clone(), 0, &recover, welcome))
        .unwrap();
    out
}

/// What `out` has queued: `Some(offset)` per event frame (`None` without one), welcome skipped.
fn offsets(out: &Outbox) -> Vec<Option<u64>> {
    let mut batch = std::collections::VecDeque::new();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let _ = out.poll_take(&mut cx, &mut batch, 0);
    batch
        .iter()
        .filter(|f| f.as_ref() != b"welcome")
        .map(|f| {
            let v: serde_json::Value = serde_json::from_str(protocol::frame_text(f)).unwrap();
            v["offset"].as_u64()
        })
        .collect()
}

#[test]
fn a_resume_merges_the_read_and_the_held_events_once_in_order() {
    let (layer, hub, g) = setup();
    for n in 1..=4 {
        layer.publish(&g, n);
    }
    // 5 and 6 arrive live while the read (which already holds 5) is on its way.
    *layer.during_read.lock().unwrap() = vec![5, 6];
    layer.stream.lock().unwrap().push((5, message(5)));
    let back = join(&hub, &g, Recover::Since(at(2)));
    assert_eq!(offsets(&back), [3, 4, 5, 6].map(Some));
    layer.publish(&g, 7);
    let plain = join(&hub, &g, Recover::No);
    layer.publish(&g, 8);
    assert_eq!(offsets(&back), [Some(7), Some(8)]);
    assert_eq!(
        offsets(&plain),
        [None],
        "plain members get the reference's frame"
    );
}

/// Runs `g`'s queued catch-up (the server's task does this).
fn catch_up(hub: &Hub, g: &GroupName) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(hub.catch_up(g));
}

fn signal_outage(layer: &Numbered, g: &GroupName) {
    if let Some(inbound) = layer.inbound.get() {
        inbound(g, crate::layer::resync_message(), None);
    }
}

#[test]
fn a_skipped_offset_is_caught_up_in_place_from_the_stream() {
    let (layer, hub, g) = setup();
    let positioned = join(&hub, &g, Recover::Fresh);
    let plain = join(&hub, &g, Recover::No);
    layer.publish(&g, 1);
    layer.publish(&g, 2);
    assert_eq!(offsets(&positioned), [Some(1), Some(2)]);
    // Offset 3 never arrives here; 4 does, and is held until the stream is read.
    layer.stream.lock().unwrap().push((3, message(3)));
    layer.publish(&g, 4);
    assert_eq!(offsets(&positioned), [], "nothing goes live over the gap");
    catch_up(&hub, &g);
    layer.publish(&g, 5);
    assert_eq!(offsets(&positioned), [3, 4, 5].map(Some));
    assert!(!positioned.is_closing());
    assert_eq!(
        offsets(&plain),
        [None; 4],
        "plain members never had positions to lose"
    );
    let metrics = hub.0.metrics.render();
    assert!(metrics.contains(r#"courier_catch_ups_total{reason="stream_gap"} 1"#));
    assert!(metrics.contains(r#"courier_resumes_total{reason="replayed"} 1"#));
}

#[test]
fn after_a_broker_outage_positioned_members_get_what_they_missed_and_plain_ones_are_told() {
    let (layer, hub, g) = setup();
    let positioned = join(&hub, &g, Recover::Fresh);
    let plain = join(&hub, &g, Recover::No);
    layer.publish(&g, 1);
    let _ = (offsets(&plain), offsets(&positioned));
    signal_outage(&layer, &g);
    // Published while the subscription was down: in the stream, never delivered here.
    layer.stream.lock().unwrap().push((2, message(2)));
    layer.publish(&g, 3);
    catch_up(&hub, &g);
    assert_eq!(
        offsets(&positioned),
        [2, 3].map(Some),
        "no resync: nothing lost"
    );
    assert_eq!(offsets(&plain), [None, None], "the resync frame, then 3");
    assert!(!positioned.is_closing() && !plain.is_closing());
    // The stream goes on: no gap is counted against the next member.
    let again = join(&hub, &g, Recover::Fresh);
    layer.publish(&g, 4);
    assert!(!again.is_closing());
    assert_eq!(offsets(&again), [Some(4)]);
    assert_eq!(offsets(&positioned), [Some(4)]);
}

#[test]
fn a_catch_up_the_stream_cannot_cover_is_one_resync_with_the_position() {
    let (layer, hub, g) = setup();
    let positioned = join(&hub, &g, Recover::Fresh);
    layer.publish(&g, 1);
    let _ = offsets(&positioned);
    signal_outage(&layer, &g);
    // 2 was trimmed away before the read; only 3 is kept.
    layer.stream.lock().unwrap().push((3, message(3)));
    catch_up(&hub, &g);
    let mut batch = std::collections::VecDeque::new();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let _ = positioned.poll_take(&mut cx, &mut batch, 0);
    let frames: Vec<serde_json::Value> = batch
        .iter()
        .map(|f| serde_json::from_str(protocol::frame_text(f)).unwrap())
        .collect();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "resync");
    assert_eq!(frames[0]["data"]["reason"], "position_expired");
    assert_eq!(frames[0]["data"]["offset"], 3);
    assert_eq!(frames[0]["data"]["epoch"], "E");
    assert!(!positioned.is_closing());
}

#[test]
fn a_backend_event_that_looks_like_the_outage_signal_is_an_ordinary_event() {
    let (layer, hub, g) = setup();
    let positioned = join(&hub, &g, Recover::Fresh);
    let lookalike = crate::layer::resync_message().clone();
    if let Some(inbound) = layer.inbound.get() {
        inbound(&g, &lookalike, None);
    }
    assert_eq!(offsets(&positioned), [None], "delivered, nothing held");
    assert!(!hub.0.metrics.render().contains("courier_catch_ups_total{"));
}

#[test]
fn a_join_whose_held_events_skip_past_its_read_is_closed_to_resume() {
    let (layer, hub, g) = setup();
    // Published before anyone here joined: in the stream only, so no gap can be seen live.
    for n in 1..=3 {
        layer.stream.lock().unwrap().push((n, message(n)));
    }
    // The read sees head 3; 5 arrives live meanwhile, 4 never does.
    *layer.during_read.lock().unwrap() = vec![5];
    let back = join(&hub, &g, Recover::Since(at(1)));
    assert_eq!(back.close_code(), Some(CloseCode::SlowConsumer));
    assert!(hub
        .0
        .metrics
        .render()
        .contains(r#"courier_drops_total{reason="stream_gap"} 1"#));
}

#[test]
fn an_event_the_resume_read_is_not_sent_again_when_it_arrives_late() {
    let (layer, hub, g) = setup();
    let other = join(&hub, &g, Recover::Fresh);
    for n in 1..=3 {
        layer.publish(&g, n);
    }
    // Offsets 4 and 5 are in Redis (the read sees them) but still on their way here.
    layer.stream.lock().unwrap().push((4, message(4)));
    layer.stream.lock().unwrap().push((5, message(5)));
    let back = join(&hub, &g, Recover::Since(at(3)));
    assert_eq!(offsets(&back), [Some(4), Some(5)]);
    for n in [4, 5, 6] {
        if let Some(inbound) = layer.inbound.get() {
            inbound(&g, &message(n), Some(&at(n)));
        }
    }
    assert_eq!(offsets(&back), [Some(6)], "4 and 5 once, from the stream");
    assert_eq!(offsets(&other), (1..=6).map(Some).collect::<Vec<_>>());
}
