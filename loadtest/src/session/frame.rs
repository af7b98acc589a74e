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

/// An event as the receivers read it. The run id stays bytes: a delivery is a frame whose run id
/// equals this run's (ASCII) id byte for byte, which no invalid UTF-8 can, so the fast path does
/// not validate it (from_utf8 was ~10 % of the scan's instructions).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Received<'a> {
    /// Per-user sequence number, from 1.
    pub seq: u64,
    /// Intended send time, unix ns.
    pub ts: u64,
    /// The run id's bytes.
    pub run: &'a [u8],
}

impl<'a> From<EventData<'a>> for Received<'a> {
    fn from(d: EventData<'a>) -> Self {
        Self {
            seq: d.seq,
            ts: d.ts,
            run: d.run.as_bytes(),
        }
    }
}

/// Parses one text frame; `None` for anything that is not `{"type":…}` with an optional event.
pub fn parse(text: &str) -> Option<Frame<'_>> {
    serde_json::from_str(text).ok()
}

/// The type alone, whatever the data: `resync`'s data is not an event's.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
}

/// The type of a frame that is not this run's event (`resync`, `refreshed`, …).
pub fn kind(text: &[u8]) -> Option<&str> {
    serde_json::from_slice::<Kind<'_>>(text)
        .ok()
        .map(|k| k.kind)
}

/// The server's `resync` (PROTOCOL.md §7): messages were missed (`broker_reconnected`, or a
/// position that cannot be served); `offset`/`epoch`: the stream head to go on from.
pub const RESYNC: &str = "resync";
/// The answer to an in-place token `refresh`.
pub const REFRESHED: &str = "refreshed";

/// A position in a user's stream as a frame's `data` or top level carries it.
#[derive(Debug, Default, Deserialize)]
pub struct Head {
    /// The offset.
    #[serde(default)]
    pub offset: Option<u64>,
    /// The epoch.
    #[serde(default)]
    pub epoch: Option<String>,
    /// A `resync`'s reason (`position_expired`, `epoch_changed`, `broker_reconnected`).
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Deserialize)]
struct WithData {
    #[serde(default)]
    data: Head,
}

/// The head a `resync` names (fields absent when the server sent none).
pub fn resync_head(text: &[u8]) -> Head {
    serde_json::from_slice::<WithData>(text)
        .map(|w| w.data)
        .unwrap_or_default()
}

/// The position `connection_established` carries with `recover=1` (top-level `offset`/`epoch`).
pub fn established_head(text: &[u8]) -> Head {
    serde_json::from_slice(text).unwrap_or_default()
}

/// An event's position: its top-level `"offset":N,"epoch":"E"`, which courier writes after
/// `data` (PROTOCOL.md §7), so it is searched from the end and the padding is never scanned.
pub fn position(b: &[u8]) -> Option<(u64, &[u8])> {
    const KEY: &[u8] = b"\"offset\":";
    let at = b.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let (offset, mut i) = number_at(b, skip_ws(b, at))?;
    i = expect(b, i, b',')?;
    let (ks, ke) = string_at(b, skip_ws(b, i))?;
    if &b[ks..ke] != b"epoch" {
        return None;
    }
    i = expect(b, ke + 1, b':')?;
    let (s, e) = string_at(b, skip_ws(b, i))?;
    Some((offset, &b[s..e]))
}

/// The event data of one text frame, if it carries one: the fast path, else UTF-8 validation
/// and [`parse`].
#[inline]
pub fn event(text: &[u8]) -> Option<Received<'_>> {
    match fast_event(text) {
        Some(d) => Some(d),
        None => parse(std::str::from_utf8(text).ok()?).and_then(|f| f.data.map(Received::from)),
    }
}

const DATA: &[u8] = b"\"data\"";

/// The position of the first `"data"`. A plain loop: it is ~20 bytes in (after `{"type":"…",`),
/// too close for a vectorised search to pay for its set-up (memmem was ~3 % of the tester's CPU).
fn find_data(b: &[u8]) -> Option<usize> {
    // The usual shape first: `{"type":"<T>","data"`.
    if let Some((_, e)) = b
        .starts_with(b"{\"type\":")
        .then(|| string_at(b, 8))
        .flatten()
    {
        if b.get(e + 1..).is_some_and(|r| r.starts_with(b",\"data\"")) {
            return Some(e + 2);
        }
    }
    let mut i = 0;
    while let Some(rest) = b.get(i..) {
        let at = rest.iter().position(|&c| c == b'"')?;
        if rest[at..].starts_with(DATA) {
            return Some(i + at);
        }
        i += at + 1;
    }
    None
}

/// The fast path: `None` whenever the frame is not exactly in the expected shape.
///
/// `"data"` is found first; the tester's own compact layout (`{"seq":N,"ts":N,"run":"…"`, as
/// courier relays it) is then matched literally. Otherwise the object's members are read in order
/// until `seq`, `ts` and `run` are all known, so the padding after them is never scanned. Spaces
/// are allowed around `:` and `,` (Python's `json.dumps` writes `"seq": 1`). A member before the
/// three that is not a plain string or integer, an escape, a float or an overflow sends the frame
/// to serde.
pub fn fast_event(b: &[u8]) -> Option<Received<'_>> {
    let mut i = find_data(b)? + DATA.len();
    if let Some(d) = compact_event(b, i) {
        return Some(d);
    }
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
                run = Some(&b[s..e]);
                i = e + 1;
            }
            // Another member before the three: skip it only if it is a plain value, and only
            // if its bytes are UTF-8 (as serde would require).
            key => {
                std::str::from_utf8(key).ok()?;
                i = match string_at(b, i) {
                    Some((s, e)) => std::str::from_utf8(&b[s..e]).ok().map(|_| e + 1)?,
                    None => number_at(b, i)?.1,
                }
            }
        }
        if let (Some(seq), Some(ts), Some(run)) = (seq, ts, run) {
            return Some(Received { seq, ts, run });
        }
        i = expect(b, i, b',')?;
    }
}

/// `:{"seq":N,"ts":N,"run":"…"` at `i`, byte for byte (the member loop accepts the same
/// frames; this skips its key matching, which was half of the scan's time).
fn compact_event(b: &[u8], i: usize) -> Option<Received<'_>> {
    let mut i = i + literal(b, i, b":{\"seq\":")?;
    let seq;
    (seq, i) = number_at(b, i)?;
    i += literal(b, i, b",\"ts\":")?;
    let ts;
    (ts, i) = number_at(b, i)?;
    i += literal(b, i, b",\"run\":")?;
    let (s, e) = string_at(b, i)?;
    Some(Received {
        seq,
        ts,
        run: &b[s..e],
    })
}

/// `lit.len()` when `b` holds `lit` at `i`.
fn literal(b: &[u8], i: usize, lit: &[u8]) -> Option<usize> {
    b.get(i..)?.starts_with(lit).then_some(lit.len())
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
///
/// Eight bytes at a time (SWAR): the digits of each 8-byte load are found and converted with a
/// few multiplies, so a 19-digit nanosecond timestamp is three steps instead of 19 dependent
/// multiply-adds (the digit loop was ~6 % of the tester's CPU per delivery).
fn number_at(b: &[u8], i: usize) -> Option<(u64, usize)> {
    const POW10: [u64; 9] = [
        1,
        10,
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
    ];
    let (mut n, mut j) = (0u64, i);
    while let Some(chunk) = b.get(j..j + 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let x = u64::from_le_bytes(bytes);
        let k = leading_digits(x);
        if j + k - i > 19 {
            return checked_number_at(b, i); // may not fit: the careful way
        }
        if k > 0 {
            // Move the k digits to the top bytes and fill the bottom with '0's: leading zeros.
            let s = 8 * (8 - k) as u32;
            let aligned = if s == 0 {
                x
            } else {
                (x << s) | (ZEROS >> (64 - s))
            };
            n = n * POW10[k] + eight_digits(aligned);
        }
        j += k;
        if k < 8 {
            return end_of_number(b, i, j).then_some((n, j));
        }
    }
    // Fewer than eight bytes left in the frame.
    while let Some(c @ b'0'..=b'9') = b.get(j) {
        if j - i == 19 {
            return checked_number_at(b, i);
        }
        n = n * 10 + u64::from(c - b'0');
        j += 1;
    }
    end_of_number(b, i, j).then_some((n, j))
}

/// Whether digits `i..j` are a whole number: at least one, then `,`, `}` or whitespace.
fn end_of_number(b: &[u8], i: usize, j: usize) -> bool {
    j > i && matches!(b.get(j), Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
}

/// [`number_at`] one checked digit at a time, for numbers of 20 digits or more.
fn checked_number_at(b: &[u8], i: usize) -> Option<(u64, usize)> {
    let (mut n, mut j) = (0u64, i);
    while let Some(c @ b'0'..=b'9') = b.get(j) {
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        j += 1;
    }
    end_of_number(b, i, j).then_some((n, j))
}

const ZEROS: u64 = 0x3030_3030_3030_3030;

/// How many ASCII digits eight bytes loaded little-endian start with.
fn leading_digits(x: u64) -> usize {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const SIX: u64 = 0x0606_0606_0606_0606;
    // A byte is a digit iff its high nibble is 3, and still 3 after adding 6 (0x3A..0x3F become
    // 0x40..). A carry out of a byte ≥ 0xFA only corrupts later bytes, which come after a
    // non-digit and are not counted.
    let non_digit = ((x & HIGH) ^ ZEROS) | ((x.wrapping_add(SIX) & HIGH) ^ ZEROS);
    (non_digit.trailing_zeros() / 8) as usize
}

/// The value of eight ASCII digits loaded little-endian (first digit in the low byte).
fn eight_digits(chunk: u64) -> u64 {
    let c = chunk - 0x3030_3030_3030_3030;
    let c = (c * 10 + (c >> 8)) & 0x00FF_00FF_00FF_00FF;
    let c = (c * 100 + (c >> 16)) & 0x0000_FFFF_0000_FFFF;
    (c * 10_000 + (c >> 32)) & 0xFFFF_FFFF
}

/// The byte range inside a string that starts at `i` and has no escapes. A plain loop: keys and
/// the run id are 2–12 bytes, shorter than a vectorised search's set-up.
fn string_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let len = b
        .get(start..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\')?;
    (b[start + len] == b'"').then_some((start, start + len))
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
