//! Histograms in the report: HdrHistogram's V2 + DEFLATE encoding in base64, so `loadtest merge`
//! adds segments up exactly.

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::stats::new_histogram;
use crate::error::{Error, Result};

/// A histogram as HdrHistogram's V2 + DEFLATE encoding in base64 (what `HistogramLogWriter` and
/// the other HdrHistogram ports read).
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Serializing into a Vec cannot fail for a valid histogram; an empty string decodes as empty.
    if V2DeflateSerializer::new().serialize(h, &mut bytes).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The inverse of [`encode`]; `what` names the field in errors.
pub fn decode(text: &str, what: &str) -> Result<Histogram<u64>> {
    if text.is_empty() {
        return Ok(new_histogram());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::Usage(format!("{what}: not base64: {e}")))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| Error::Usage(format!("{what}: not an HdrHistogram V2 histogram: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_exactly() {
        let mut h = new_histogram();
        for v in [1, 5, 250, 1_000, 99_999, 3_000_000] {
            h.record(v).expect("in range");
        }
        let back = decode(&encode(&h), "t").expect("decodes");
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert!(decode("!!", "t").is_err());
        assert!(decode("", "t").expect("empty").is_empty());
    }
}
