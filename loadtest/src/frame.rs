//! Cheap frame parsing: a borrowed serde struct per text frame, no `serde_json::Value` tree.

use serde::Deserialize;

/// The `type` of the frame every accepted connection gets first.
pub const CONNECTION_ESTABLISHED: &str = "connection_established";

/// A server frame: `{"type":T, "data":D, …}`; other keys (`message`, `user_id`, padding) are skipped.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    /// The frame type.
    #[serde(rename = "type", borrow)]
    pub kind: &'a str,
    /// The event data, when it is a loadtest event.
    #[serde(default, borrow)]
    pub data: Option<EventData<'a>>,
}

/// The `data` the loadtest puts in every event (PROTOCOL.md §6).
#[derive(Debug, Deserialize)]
pub struct EventData<'a> {
    /// Per-user sequence number, from 1.
    pub seq: u64,
    /// Intended send time, unix ns.
    pub ts: u64,
    /// The run id: frames from another run are counted as foreign, not as deliveries.
    #[serde(borrow)]
    pub run: &'a str,
}

/// Parses one text frame; `None` for anything that is not `{"type":…}` with an optional event.
pub fn parse(text: &str) -> Option<Frame<'_>> {
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_and_skips_padding() {
        let f = parse(r#"{"type":"loadtest","data":{"seq":3,"ts":17,"run":"ab","pad":"xxxx"}}"#)
            .expect("frame");
        assert_eq!(f.kind, "loadtest");
        let d = f.data.expect("data");
        assert_eq!((d.seq, d.ts, d.run), (3, 17, "ab"));
    }

    #[test]
    fn parses_connection_established() {
        let f =
            parse(r#"{"type":"connection_established","message":"Connected as 7","user_id":7}"#)
                .expect("frame");
        assert_eq!(f.kind, CONNECTION_ESTABLISHED);
        assert!(f.data.is_none());
    }

    #[test]
    fn foreign_shapes_are_none() {
        assert!(parse(r#"{"type":"echo","data":[1,2]}"#).is_none());
        assert!(parse("not json").is_none());
    }
}
