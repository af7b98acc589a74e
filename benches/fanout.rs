//! Hub fan-out: one `group_send` to a group of N members (no sockets), N from 1 to 10k.
// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]
//!
//! Measures what the hub itself costs per delivery: encode once, clone the bytes into N bounded
//! queues. Queues are drained outside the timed section so every send finds room. Each N runs
//! with history off and on (`history`: every event also appended to the user's stream), so
//! history's cost per event sits beside the fan-out it rides on.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use courier::config::{HistoryConfig, SlowPolicy};
use courier::hub::Hub;
use courier::layer::{GroupName, MemoryLayer};
use courier::metrics::Metrics;
use courier::notify::notify_message;
use courier::outbox::{Limits, Outbox};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;

/// Events per timed batch; queues hold this many before draining.
const BATCH: usize = 64;

fn setup<const N: usize>(history: bool) -> (Hub, GroupName, Vec<Arc<Outbox>>) {
    let hub = Hub::new(
        Arc::new(MemoryLayer::new()),
        SlowPolicy::Close,
        Arc::new(Metrics::new()),
        history.then(HistoryConfig::default),
    );
    let group = GroupName::new("user_1").expect("valid group");
    let limits = Limits {
        max_frames: BATCH,
        max_bytes: usize::MAX,
    };
    let rxs = (0..N)
        .map(|_| {
            let out = Arc::new(Outbox::new(hub.next_conn_id(), limits));
            hub.group_add(&group, out.clone(), 0);
            out
        })
        .collect();
    (hub, group, rxs)
}

fn fanout<const N: usize>(c: &mut Criterion) {
    let mut g = c.benchmark_group("hub_fanout");
    g.throughput(Throughput::Elements(N as u64));
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    let message = notify_message(
        "notification_test",
        json!({"seq": 1, "ts": 1_764_000_000_000_000_000u64, "run": "bench", "text": "you have a new friend request from alice"}),
    );
    for (name, history) in [("group_send", false), ("group_send_history", true)] {
        let (hub, group, rxs) = setup::<N>(history);
        g.bench_function(BenchmarkId::new(name, N), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH as u64);
                    let start = Instant::now();
                    for _ in 0..n {
                        black_box(hub.deliver_local(&group, &message));
                    }
                    total += start.elapsed();
                    for out in &rxs {
                        out.discard_queued();
                    }
                    left -= n;
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    fanout<1>,
    fanout<10>,
    fanout<100>,
    fanout<1000>,
    fanout<10000>
);
criterion_main!(benches);
