//! Micro-benches: frame encoding (once vs per recipient), echo, JWT verification, batch framing.
// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use courier::auth::Verifier;
use courier::config::JwtConfig;
use courier::notify::notify_message;
use courier::protocol;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use tungstenite::protocol::frame::{coding::Data, coding::OpCode, Frame};

const RECIPIENTS: usize = 100;

fn encoding(c: &mut Criterion) {
    let message = notify_message(
        "friend_request",
        json!({"request_id": 7, "from_user": {"id": 1, "username": "alice", "first_name": "Alice", "last_name": "Liddell"}}),
    );
    let mut g = c.benchmark_group("encode_event");
    g.throughput(Throughput::Elements(RECIPIENTS as u64));
    g.bench_function("once_then_clone", |b| {
        b.iter(|| {
            let frame = protocol::event_frame(&message).expect("valid event");
            for _ in 0..RECIPIENTS {
                black_box(frame.clone());
            }
        })
    });
    g.bench_function("per_recipient", |b| {
        b.iter(|| {
            for _ in 0..RECIPIENTS {
                black_box(protocol::event_frame(&message).expect("valid event"));
            }
        })
    });
    g.finish();
    c.bench_function("echo_frame", |b| {
        b.iter(|| black_box(protocol::echo(r#"{"action":"ping","n":[1,2,3]}"#)))
    });
}

fn jwt(c: &mut Criterion) {
    let secret = "bench-secret";
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = json!({"token_type": "access", "exp": now + 3600, "iat": now, "jti": "0123456789abcdef0123456789abcdef", "user_id": "42"});
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token");
    let verifier = Verifier::new(&JwtConfig::hs256(secret)).expect("verifier");
    c.bench_function("jwt_verify_hs256", |b| {
        b.iter(|| black_box(verifier.verify(&token).is_ok()))
    });
}

/// What a writer hands the socket per batch of 128 frames: the old path framed each message into
/// a per-connection buffer (tungstenite); today's frames are encoded once per event, and a batch is
/// those shared bytes as they are (the kernel gathers them from one `writev`; copying them into
/// one buffer is the upper bound of what that costs here).
fn batch_framing(c: &mut Criterion) {
    let frame = protocol::event_frame(&notify_message(
        "notification_test",
        json!({"seq": 1, "ts": 1u64 << 60, "run": "bench"}),
    ))
    .expect("valid event");
    let mut g = c.benchmark_group("writer_batch");
    g.throughput(Throughput::Elements(128));
    g.bench_function("tungstenite_frame_128_into_buffer", |b| {
        let payload = bytes::Bytes::from(protocol::frame_text(&frame).to_owned());
        let mut out = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            for _ in 0..128 {
                let f = Frame::message(payload.clone(), OpCode::Data(Data::Text), true);
                f.format(&mut out).expect("framing into a Vec cannot fail");
            }
            black_box(out.len())
        })
    });
    g.bench_function("preencoded_128_gathered", |b| {
        let batch: Vec<bytes::Bytes> = (0..128).map(|_| frame.clone()).collect();
        let mut out = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            for f in &batch {
                out.extend_from_slice(f);
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, encoding, jwt, batch_framing);
criterion_main!(benches);
