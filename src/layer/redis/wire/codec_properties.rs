//! Codec properties: arbitrary bytes from Redis never panic the decoder, and what courier encodes
//! decodes to the same message, in every configuration channels_redis has.

use super::*;
use proptest::prelude::*;
use serde_json::{json, Map};

use crate::prop_support::json_value;

proptest! {
    #[test]
    fn payload_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for codec in [
            Codec::new(WireFormat::Msgpack, &[], 0),
            Codec::new(WireFormat::Msgpack, &[], 12),
            Codec::new(WireFormat::Json, &["k".to_string()], 0),
        ] {
            let _ = codec.decode(&bytes);
        }
    }

    #[test]
    fn payloads_round_trip(
        data in json_value(),
        kind in "[a-z_]{1,12}",
        encrypted in any::<bool>(),
        prefix in prop_oneof![Just(0usize), Just(12)],
    ) {
        let keys = if encrypted { vec!["secret".to_string()] } else { vec![] };
        for format in [WireFormat::Msgpack, WireFormat::Json] {
            let codec = Codec::new(format, &keys, prefix);
            let mut m = Map::new();
            m.insert("type".into(), json!(kind));
            m.insert("data".into(), data.clone());
            let bytes = codec.encode(&m).expect("encode");
            prop_assert_eq!(codec.decode(&bytes).expect("decode"), m);
        }
    }
}
