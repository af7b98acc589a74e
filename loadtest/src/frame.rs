//! Frame parsing. Events take a fast path: the tester writes the event `data` itself
//! (`{"seq":N,"ts":N,"run":"…","pad":"…"}`), so finding `"data"` with `memmem` and reading the
//! three members directly gives the same answer as a JSON parser at a fraction of the cost (serde
//! was ~20 % of the tester's CPU per delivery). Anything the fast path does not recognise exactly —
//! escapes, floats, missing keys, nested values — falls back to the borrowed serde parse. (One
//! known difference: a key repeated after the three is not seen; serde would reject the frame.)
//!
//! Frames arrive as raw bytes (the client does not validate UTF-8, see `wire`): the fast path
//! reads only ASCII digits and the run id (checked as UTF-8 itself), and every other frame is
//! validated as UTF-8 before serde sees it, so a malformed frame is never counted as a delivery.

use std::sync::LazyLock;

use memchr::memmem::Finder;
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
#[derive(Debug, Deserialize, PartialEq, Eq)]
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

/// The event data of one text frame, if it carries one: the fast path, else UTF-8 validation
/// and [`parse`].
#[inline]
pub fn event(text: &[u8]) -> Option<EventData<'_>> {
    match fast_event(text) {
        Some(d) => Some(d),
        None => parse(std::str::from_utf8(text).ok()?).and_then(|f| f.data),
    }
}

// Built once: a `Finder` precomputes its search tables.
static DATA: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"data\""));

/// The fast path: `None` whenever the frame is not exactly in the expected shape.
///
/// `"data"` is found with `memmem`; then the object's members are read in order until `seq`, `ts`
/// and `run` are all known, so the padding after them is never scanned. Spaces are allowed around
/// `:` and `,` (Python's `json.dumps` writes `"seq": 1`). A member before the three that is not a
/// plain string or integer, an escape, a float or an overflow sends the frame to serde.
pub fn fast_event(b: &[u8]) -> Option<EventData<'_>> {
    let mut i = DATA.find(b)? + DATA.needle().len();
    i = expect(b, i, b':')?;
    i = expect(b, i, b'{')?;
    let (mut seq, mut ts, mut run) = (None, None, None);
    loop {
        let (ks, ke) = string_at(b, skip_ws(b, i))?;
        i = expect(b, ke + 1, b':')?;
        i = skip_ws(b, i);
        match &b[ks..ke] {
            b"seq" => (seq, i) = number_at(b, i).map(|(n, e)| (Some(n), e))?,
            b"ts" => (ts, i) = number_at(b, i).map(|(n, e)| (Some(n), e))?,
            b"run" => {
                let (s, e) = string_at(b, i)?;
                // The only bytes read as text: validated here, not the whole frame.
                run = Some(std::str::from_utf8(&b[s..e]).ok()?);
                i = e + 1;
            }
            // Another member before the three: skip it only if it is a plain value, and only
            // if its bytes are UTF-8 (every byte the fast path reads is validated).
            key => {
                std::str::from_utf8(key).ok()?;
                i = match string_at(b, i) {
                    Some((s, e)) => std::str::from_utf8(&b[s..e]).ok().map(|_| e + 1)?,
                    None => number_at(b, i)?.1,
                }
            }
        }
        if let (Some(seq), Some(ts), Some(run)) = (seq, ts, run) {
            return Some(EventData { seq, ts, run });
        }
        i = expect(b, i, b',')?;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The position after `c`, which must follow `i` (spaces allowed before it).
fn expect(b: &[u8], i: usize, c: u8) -> Option<usize> {
    let i = skip_ws(b, i);
    (b.get(i) == Some(&c)).then_some(i + 1)
}

/// A non-negative integer at `i` ending at `,`, `}` or whitespace, and the position after it;
/// signs, fractions, exponents and overflow are left to serde.
fn number_at(b: &[u8], i: usize) -> Option<(u64, usize)> {
    let mut n = 0u64;
    let mut j = i;
    while let Some(c @ b'0'..=b'9') = b.get(j) {
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        j += 1;
    }
    let ends = matches!(b.get(j), Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r'));
    (j > i && ends).then_some((n, j))
}

/// The byte range inside a string that starts at `i` and has no escapes.
fn string_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let len = memchr::memchr2(b'"', b'\\', b.get(start..)?)?;
    (b[start + len] == b'"').then_some((start, start + len))
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
        assert!(event(br#"{"type":"connection_established","user_id":7}"#).is_none());
    }

    #[test]
    fn foreign_shapes_are_none() {
        assert!(parse(r#"{"type":"echo","data":[1,2]}"#).is_none());
        assert!(parse("not json").is_none());
        assert!(event(br#"{"type":"echo","data":[1,2]}"#).is_none());
        assert!(event(b"not json").is_none());
    }

    /// Every frame below must give the serde answer; `fast` says whether the fast path took it.
    fn agree(text: &str, fast: bool) -> Option<EventData<'_>> {
        let slow = parse(text).and_then(|f| f.data);
        assert_eq!(
            fast_event(text.as_bytes()).is_some(),
            fast,
            "fast path on {text}"
        );
        let got = event(text.as_bytes());
        assert_eq!(got, slow, "fast and slow paths disagree on {text}");
        got
    }

    #[test]
    fn fast_path_takes_the_testers_own_frames() {
        let d = agree(
            r#"{"type":"loadtest","data":{"seq":42,"ts":1700000000123456789,"run":"0123456789ab","pad":"xxxx"}}"#,
            true,
        );
        assert_eq!(
            d,
            Some(EventData {
                seq: 42,
                ts: 1_700_000_000_123_456_789,
                run: "0123456789ab"
            })
        );
    }

    #[test]
    fn fast_path_takes_python_json_dumps_spacing() {
        // Django's reference: `json.dumps` puts a space after `:` and `,`.
        let d = agree(
            r#"{"type": "loadtest", "data": {"seq": 7, "ts": 99, "run": "r1", "pad": "xx"}}"#,
            true,
        );
        assert_eq!(d.map(|d| (d.seq, d.ts, d.run)), Some((7, 99, "r1")));
    }

    #[test]
    fn foreign_run_ids_are_read_not_matched() {
        let d = agree(
            r#"{"type":"loadtest","data":{"seq":1,"ts":2,"run":"another-run","pad":""}}"#,
            true,
        );
        assert_eq!(d.map(|d| d.run), Some("another-run"));
    }

    #[test]
    fn odd_shapes_fall_back_to_serde() {
        // Escaped run id, float, negative, overflow, key order with run first, missing key.
        agree(
            r#"{"type":"loadtest","data":{"seq":1,"ts":2,"run":"a\"b"}}"#,
            false,
        );
        agree(
            r#"{"type":"loadtest","data":{"seq":1.5,"ts":2,"run":"a"}}"#,
            false,
        );
        agree(
            r#"{"type":"loadtest","data":{"seq":-1,"ts":2,"run":"a"}}"#,
            false,
        );
        agree(
            r#"{"type":"loadtest","data":{"seq":99999999999999999999999,"ts":2,"run":"a"}}"#,
            false,
        );
        agree(r#"{"type":"loadtest","data":{"seq":1,"run":"a"}}"#, false);
        let d = agree(
            r#"{"type":"loadtest","data":{"run":"a","ts":2,"seq":3}}"#,
            true,
        );
        assert_eq!(d.map(|d| d.seq), Some(3));
    }

    #[test]
    fn malformed_bytes_are_never_events() {
        // Invalid UTF-8 in the run id (read by the fast path) or elsewhere (serde's path).
        let bad_run = b"{\"type\":\"loadtest\",\"data\":{\"seq\":1,\"ts\":2,\"run\":\"a\xffb\"}}";
        assert!(event(bad_run).is_none());
        let bad_key =
            b"{\"type\":\"loadtest\",\"data\":{\"s\xffq\":1,\"seq\":1,\"ts\":2,\"run\":\"ab\"}}";
        assert!(event(bad_key).is_none());
        let bad_value =
            b"{\"type\":\"loadtest\",\"data\":{\"k\":\"\xff\",\"seq\":1,\"ts\":2,\"run\":\"ab\"}}";
        assert!(event(bad_value).is_none());
        let bad_escape =
            b"{\"type\":\"loadtest\",\"data\":{\"seq\":1,\"ts\":2,\"run\":\"a\\\xff\"}}";
        assert!(event(bad_escape).is_none());
        // A frame cut before its three members are complete is never an event.
        let whole = br#"{"type":"loadtest","data":{"seq":12,"ts":34,"run":"ab"}}"#;
        let run_end = whole.len() - 2;
        for end in 0..run_end {
            assert!(event(&whole[..end]).is_none(), "cut at {end}");
        }
        assert!(event(whole).is_some());
    }
}
