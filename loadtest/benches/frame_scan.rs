//! The tester's per-delivery parsing: the event scan of one frame (the tester's own shape, and
//! Python's `json.dumps` spacing) and the WebSocket frame reader over a read's worth of frames.
// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use loadtest::session::frame;
use loadtest::session::wire::{Msg, Reader};
use std::hint::black_box;

/// A delivery as courier sends it: the tester's data with 64 bytes of padding (the default).
fn compact() -> String {
    format!(
        r#"{{"type":"loadtest","data":{{"seq":12345,"ts":1764578400123456789,"run":"0123456789ab","pad":"{}"}}}}"#,
        "x".repeat(64)
    )
}

/// The same through Django (`json.dumps` spacing).
fn spaced() -> String {
    compact().replace("\":", "\": ").replace(",\"", ", \"")
}

/// `n` unmasked server text frames of `payload`, as one read would return them.
fn frames(payload: &[u8], n: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    for _ in 0..n {
        wire.push(0x81);
        wire.push(126);
        wire.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        wire.extend_from_slice(payload);
    }
    wire
}

fn scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("event_scan");
    g.throughput(Throughput::Elements(1));
    for (name, text) in [("compact", compact()), ("json_dumps", spaced())] {
        assert!(
            frame::fast_event(text.as_bytes()).is_some(),
            "{name} takes the fast path"
        );
        g.bench_function(name, |b| {
            b.iter(|| frame::event(black_box(text.as_bytes())))
        });
    }
    g.finish();
}

fn reader(c: &mut Criterion) {
    const N: usize = 50;
    let text = compact();
    let wire = frames(text.as_bytes(), N);
    let mut g = c.benchmark_group("frame_reader");
    g.throughput(Throughput::Elements(N as u64));
    // One read's worth of frames (50 ≈ one burst of the embedded run), read and scanned.
    g.bench_function("read_and_scan_50", |b| {
        b.iter_batched_ref(
            || Reader::new(1),
            |r| {
                let mut seqs = 0u64;
                let mut rest = &wire[..];
                while !rest.is_empty() {
                    let spare = r.spare();
                    let n = spare.len().min(rest.len());
                    spare[..n].copy_from_slice(&rest[..n]);
                    r.filled(n);
                    rest = &rest[n..];
                    while let Ok(Some(Msg::Text(t))) = r.next_msg() {
                        seqs += frame::event(t).map_or(0, |d| d.seq);
                    }
                }
                black_box(seqs)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, scan, reader);
criterion_main!(benches);
