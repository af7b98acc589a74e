//! Token verification under arbitrary input (issue 9 §4): never a panic, garbage never verifies.
//! The other parsers' properties live beside them: the client-frame reader
//! (`src/ws/reader_tests.rs`), the channels_redis payload codec
//! (`src/layer/redis/wire/codec_properties.rs`), echo / event frames (`src/protocol.rs`) and the
//! `POST /api/notify` body (`src/api_properties.rs`); cargo-fuzz targets for the same four parsers
//! are in `fuzz/` (`scripts/fuzz.sh`).

use courier::auth::Verifier;
use courier::config::JwtConfig;
use proptest::prelude::*;

proptest! {
    /// Any string offered as a token is refused or accepted, never a panic; garbage is refused.
    #[test]
    fn token_verification_never_panics(token in ".{0,400}", dots in "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,60}") {
        let v = Verifier::new(&JwtConfig::hs256("secret")).expect("verifier");
        prop_assert!(v.verify(&token).is_err());
        prop_assert!(v.verify(&dots).is_err());
    }
}
