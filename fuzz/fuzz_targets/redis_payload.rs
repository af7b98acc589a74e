//! channels_redis payloads as they arrive from Redis: msgpack or JSON (sniffed), optionally behind
//! a random prefix and Fernet, through the layers' one codec (`wire::codec::Codec::decode`).
//!
//! Byte 0 picks the codec: bits 0-1 — 0: plain, 1: plain behind channels_redis's 12-byte random
//! prefix, 2: with a Fernet key (the bytes are taken as the token), 3: Fernet-wrapped (the bytes
//! are a plaintext this target encrypts, so decryption succeeds and the plaintext decoder sees
//! arbitrary bytes); bit 2: the 12-byte prefix in modes 2 and 3; bit 3: mode 3 encrypts with the
//! second (rotated-out) key. The rest is the payload.
//!
//! Checked: no panic; a decoded message maps to a valid JSON frame or a typed refusal (what the hub
//! does next); it re-encodes in both formats and decodes back to itself, also through a codec
//! configured for the other format (the sniffing); and Fernet is transparent — a wrapped plaintext
//! decodes exactly when, and to what, the bare plaintext does.
#![no_main]

use courier::config::WireFormat;
use courier::fuzzing::{derive_fernet_key, Codec};
use courier::layer::GroupMessage;
use courier::protocol::{event_frame, frame_text};
use fernet::Fernet;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// channels_redis's `random_prefix_length` for the core layer.
const PREFIX: usize = 12;

fn keys() -> Vec<String> {
    vec!["fuzz-key".into(), "rotated-out-key".into()]
}

/// The checks on a message the codec produced.
fn check(message: &GroupMessage, keys: &[String], prefix: usize) {
    if let Ok(frame) = event_frame(message) {
        let v: Value = serde_json::from_str(frame_text(&frame)).expect("a frame is JSON");
        assert!(v["type"].is_string(), "frame without a string type: {v}");
    }
    for format in [WireFormat::Msgpack, WireFormat::Json] {
        let writer = Codec::new(format, keys, prefix);
        let bytes = writer
            .encode(message)
            .expect("a decoded message re-encodes");
        assert_eq!(
            writer.decode(&bytes).as_ref(),
            Ok(message),
            "{format:?} round trip"
        );
        let other = match format {
            WireFormat::Msgpack => WireFormat::Json,
            WireFormat::Json => WireFormat::Msgpack,
        };
        let reader = Codec::new(other, keys, prefix);
        assert_eq!(
            reader.decode(&bytes).as_ref(),
            Ok(message),
            "{format:?} read as {other:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let [sel, payload @ ..] = data else { return };
    let prefix = if sel & 4 != 0 { PREFIX } else { 0 };
    match sel & 3 {
        0 | 1 => {
            let prefix = if sel & 3 == 1 { PREFIX } else { 0 };
            if let Ok(m) = Codec::new(WireFormat::Msgpack, &[], prefix).decode(payload) {
                check(&m, &[], prefix);
            }
        }
        2 => {
            if let Ok(m) = Codec::new(WireFormat::Json, &keys(), prefix).decode(payload) {
                check(&m, &keys(), prefix);
            }
        }
        _ => {
            let keys = keys();
            let key = &keys[usize::from(sel & 8 != 0)];
            let fernet = Fernet::new(&derive_fernet_key(key)).expect("derived keys are valid");
            if payload.len() < prefix {
                return;
            }
            let (random, plain) = payload.split_at(prefix);
            let mut wrapped = random.to_vec();
            wrapped.extend_from_slice(fernet.encrypt(plain).as_bytes());
            let keyed = Codec::new(WireFormat::Msgpack, &keys, prefix).decode(&wrapped);
            let bare = Codec::new(WireFormat::Msgpack, &[], 0).decode(plain);
            assert_eq!(
                keyed.as_ref().ok(),
                bare.as_ref().ok(),
                "Fernet changed the decoding"
            );
            if let Ok(m) = keyed {
                check(&m, &keys, prefix);
            }
        }
    }
});
