//! channels_redis's message serialization: msgpack (or JSON), optional Fernet, optional random prefix.
//!
//! channels_redis 4.3 `serializers.py`: `serialize` = `as_bytes(message)`, then Fernet-encrypt when
//! `symmetric_encryption_keys` is set (key = `urlsafe_b64encode(sha256(secret))`), then prepend
//! `random_prefix_length` random bytes (12 for the core layer, 0 for pub/sub). `deserialize` undoes it
//! in reverse. On the way in courier sniffs the format (a JSON object starts with `{`, a msgpack map
//! never does), so one courier reads what Django writes whichever `serializer_format` it uses.

use base64::Engine;
use fernet::{Fernet, MultiFernet};
use sha2::{Digest, Sha256};

use crate::config::WireFormat;
use crate::layer::GroupMessage;

/// Why a payload could not be turned into a group message. Counted as `decode` and logged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    /// Shorter than the random prefix.
    #[error("payload shorter than its random prefix")]
    Short,
    /// Fernet token invalid, or signed with a key we do not have.
    #[error("fernet decryption failed")]
    Decrypt,
    /// Not a msgpack map with string keys and JSON-representable values.
    #[error("msgpack: {0}")]
    Msgpack(String),
    /// Not a JSON object.
    #[error("json: {0}")]
    Json(String),
}

/// Encoder/decoder for one layer's payloads. Built once; cheap to share.
pub(crate) struct Codec {
    format: WireFormat,
    crypter: Option<MultiFernet>,
    random_prefix: usize,
}

impl Codec {
    /// `keys` are channels_redis `symmetric_encryption_keys` (the first one encrypts; all decrypt).
    /// `random_prefix` is channels_redis's `random_prefix_length` (12 for the core layer, 0 for pub/sub).
    pub(crate) fn new(format: WireFormat, keys: &[String], random_prefix: usize) -> Self {
        let fernets: Vec<Fernet> = keys
            .iter()
            .filter_map(|k| Fernet::new(&derive_fernet_key(k)))
            .collect();
        let crypter = (!fernets.is_empty()).then(|| MultiFernet::new(fernets));
        Self {
            format,
            crypter,
            random_prefix,
        }
    }

    /// Serializes `message` the way channels_redis's `serialize` would.
    pub(crate) fn encode(&self, message: &GroupMessage) -> Result<Vec<u8>, CodecError> {
        let plain = match self.format {
            WireFormat::Msgpack => {
                rmp_serde::to_vec_named(message).map_err(|e| CodecError::Msgpack(e.to_string()))?
            }
            WireFormat::Json => {
                serde_json::to_vec(message).map_err(|e| CodecError::Json(e.to_string()))?
            }
        };
        let body = match &self.crypter {
            Some(c) => c.encrypt(&plain).into_bytes(),
            None => plain,
        };
        if self.random_prefix == 0 {
            return Ok(body);
        }
        let mut out = Vec::with_capacity(self.random_prefix + body.len());
        // 12 bytes keep equal messages distinct members of the inbox ZSET; uniqueness, not secrecy.
        while out.len() < self.random_prefix {
            let take = (self.random_prefix - out.len()).min(16);
            out.extend_from_slice(&uuid::Uuid::new_v4().as_bytes()[..take]);
        }
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Deserializes a payload the way channels_redis's `deserialize` would, sniffing JSON vs msgpack.
    pub(crate) fn decode(&self, payload: &[u8]) -> Result<GroupMessage, CodecError> {
        let body = payload.get(self.random_prefix..).ok_or(CodecError::Short)?;
        match &self.crypter {
            Some(c) => {
                let token = std::str::from_utf8(body).map_err(|_| CodecError::Decrypt)?;
                let plain = c.decrypt(token).map_err(|_| CodecError::Decrypt)?;
                decode_plain(&plain)
            }
            None => decode_plain(body),
        }
    }
}

/// channels_redis `make_fernet`: `urlsafe_b64encode(sha256(key))`.
pub(crate) fn derive_fernet_key(secret: &str) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(Sha256::digest(secret.as_bytes()))
}

/// Deepest nesting a payload may have, in either format: serde_json's own limit (it counts the
/// same way as rmp-serde's). With one limit, a message read from msgpack can always be written as
/// JSON and read back; and decoding stays well inside a worker thread's 2 MiB stack, which
/// rmp-serde's default of 1024 did not (a 500-deep payload overflowed it in a debug build and
/// aborted the process; found by fuzz/redis_payload).
pub(crate) const MAX_NESTING: usize = 128;

fn decode_plain(bytes: &[u8]) -> Result<GroupMessage, CodecError> {
    // A msgpack map starts with 0x80..=0x8f, 0xde or 0xdf; `{` (0x7b) is a positive fixint, which
    // can never be a whole msgpack message here, so the first byte tells the formats apart.
    if bytes.first() == Some(&b'{') {
        serde_json::from_slice(bytes).map_err(|e| CodecError::Json(e.to_string()))
    } else {
        let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
        de.set_max_depth(MAX_NESTING);
        serde::Deserialize::deserialize(&mut de).map_err(|e| CodecError::Msgpack(e.to_string()))
    }
}

#[cfg(test)]
#[path = "codec_properties.rs"]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg() -> GroupMessage {
        let v = json!({"type": "friend_request", "data": {"request_id": 7, "from_user": {"id": 1, "username": "ann"}, "x": 1.5, "n": null}});
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn msgpack_round_trip_with_prefix() {
        let c = Codec::new(WireFormat::Msgpack, &[], 12);
        let bytes = c.encode(&msg()).expect("encode");
        assert!(
            bytes[12] & 0xf0 == 0x80,
            "a msgpack fixmap after 12 random bytes"
        );
        assert_eq!(c.decode(&bytes).expect("decode"), msg());
    }

    #[test]
    fn python_msgpack_bytes_decode() {
        // msgpack.packb({"type": "new_message", "data": {"id": 3}}) from Python's msgpack 1.x.
        let py = b"\x82\xa4type\xabnew_message\xa4data\x81\xa2id\x03";
        let m = Codec::new(WireFormat::Msgpack, &[], 0)
            .decode(py)
            .expect("decode");
        assert_eq!(
            serde_json::Value::Object(m),
            json!({"type": "new_message", "data": {"id": 3}})
        );
    }

    #[test]
    fn json_is_sniffed_and_written() {
        let c = Codec::new(WireFormat::Json, &[], 0);
        let bytes = c.encode(&msg()).expect("encode");
        assert_eq!(bytes[0], b'{');
        assert_eq!(
            Codec::new(WireFormat::Msgpack, &[], 0)
                .decode(&bytes)
                .expect("decode"),
            msg()
        );
    }

    #[test]
    fn fernet_round_trip_and_wrong_key() {
        let keys = vec!["s3cret".to_owned()];
        let c = Codec::new(WireFormat::Msgpack, &keys, 12);
        let bytes = c.encode(&msg()).expect("encode");
        assert!(bytes[12..].starts_with(b"gAAAAA"), "a Fernet token");
        assert_eq!(c.decode(&bytes).expect("decode"), msg());
        let other = Codec::new(WireFormat::Msgpack, &["other".to_owned()], 12);
        assert!(matches!(other.decode(&bytes), Err(CodecError::Decrypt)));
    }

    #[test]
    fn json_floats_decode_exactly() {
        // Found by fuzz/redis_payload: serde_json's default float parser may be one ULP off, so
        // this float (shortest form, as Python's json.dumps writes it) came out as
        // 1.500000001606986 on its way from Redis to the clients. `float_roundtrip` fixes it.
        let x = 1.500_000_001_606_985_9_f64;
        let payload = format!(r#"{{"type":"t","data":{x}}}"#);
        assert!(payload.contains("1.5000000016069859"), "{payload}");
        let m = Codec::new(WireFormat::Json, &[], 0)
            .decode(payload.as_bytes())
            .expect("decode");
        assert_eq!(m["data"].as_f64().map(f64::to_bits), Some(x.to_bits()));
        let again = Codec::new(WireFormat::Json, &[], 0)
            .encode(&m)
            .expect("encode");
        assert_eq!(again, payload.as_bytes(), "re-encoded as sent");
    }

    /// `{"type": [[…[null]…]]}` with `depth` nested containers in all, in both formats.
    fn nested(depth: usize) -> (Vec<u8>, Vec<u8>) {
        let mut msgpack = b"\x81\xa4type".to_vec();
        msgpack.extend(std::iter::repeat_n(0x91, depth - 1));
        msgpack.push(0xc0);
        let json = format!(
            r#"{{"type":{}null{}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        );
        (msgpack, json.into_bytes())
    }

    #[test]
    fn both_formats_take_the_same_nesting() {
        let c = Codec::new(WireFormat::Msgpack, &[], 0);
        for depth in 1..=MAX_NESTING + 2 {
            let (msgpack, json) = nested(depth);
            let (m, j) = (c.decode(&msgpack), c.decode(&json));
            assert_eq!(m.is_ok(), j.is_ok(), "depth {depth}: {m:?} vs {j:?}");
            assert_eq!(m.is_ok(), depth < MAX_NESTING, "depth {depth}");
            if let Ok(m) = m {
                // Whatever is read in one format is written and read back in the other.
                let json = Codec::new(WireFormat::Json, &[], 0)
                    .encode(&m)
                    .expect("encode");
                assert_eq!(c.decode(&json).expect("JSON round trip"), m);
            }
        }
    }

    #[test]
    fn deep_msgpack_is_refused_within_a_worker_stack() {
        // Found by fuzz/redis_payload: with rmp-serde's default depth (1024) this payload
        // overflowed a 2 MiB stack (a tokio worker's) in a debug build: the process aborted.
        let (msgpack, _) = nested(1000);
        let decoded = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                Codec::new(WireFormat::Msgpack, &[], 0)
                    .decode(&msgpack)
                    .is_ok()
            })
            .expect("spawn")
            .join()
            .expect("no panic");
        assert!(!decoded, "a 1000-deep payload is refused");
    }

    #[test]
    fn key_derivation_matches_python() {
        // base64.urlsafe_b64encode(hashlib.sha256(b"s3cret").digest())
        assert_eq!(
            derive_fernet_key("s3cret"),
            "HsHCa1DV08WNlYMYGvgHZlX-AHVr9yhZQLo2cPmfy6A="
        );
        assert!(Fernet::new(&derive_fernet_key("s3cret")).is_some());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let c = Codec::new(WireFormat::Msgpack, &[], 12);
        assert!(c.decode(b"short").is_err());
        assert!(c.decode(&[0u8; 40]).is_err());
        assert!(Codec::new(WireFormat::Msgpack, &[], 0)
            .decode(b"{not json")
            .is_err());
        assert!(Codec::new(WireFormat::Msgpack, &[], 0)
            .decode(&[0x91, 0x01])
            .is_err());
    }
}
