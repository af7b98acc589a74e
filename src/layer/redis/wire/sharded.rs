//! The redis-cluster layer's format: hash-tag partition channels and batch frames of groups.
//!
//! # Partitions
//! Group `g` lives in partition `K = crc32(g) mod P` (channels_redis's CRC-32, so the rule is one
//! line in Python too), whose shard channel is `{<prefix>:courier:p<K>}`. The whole name is the
//! hash tag, so each partition has one slot and one owner; a courier subscribes the partitions
//! that have local members, not one channel per group.
//!
//! # Frames
//! One `SPUBLISH` carries every message of one publish call for one partition, in order:
//!
//! ```text
//! frame := VERSION(0x01) entry*
//! entry := group_len:u8  group:[u8; group_len]  body_len:u32 (big-endian)  body:[u8; body_len]
//! ```
//!
//! `body` is the channels_redis payload codec's output (msgpack or JSON, Fernet when keys are
//! set), so encryption and format work as for the other layers; the group stays in clear, as it
//! is in the pub/sub layer's channel name. A frame is atomic: Redis publishes all of it or none,
//! which is what makes retrying a redirected `SPUBLISH` safe.

use super::codec::{Codec, CodecError};
use super::crc32;
use super::history::parse_note;
use crate::history::Position;
use crate::layer::{GroupMessage, GroupName};

/// The first byte of every frame; a receiver skips frames of another version.
const VERSION: u8 = 1;

/// Why a frame could not be read. Counted as `decode`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// Empty, another version, or cut short.
    #[error("not a version-{VERSION} frame, or truncated")]
    Malformed,
    /// A group name that is not UTF-8 (a receiver only matches names against its own groups).
    #[error("group name in frame is not UTF-8")]
    Group,
    /// The body did not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// The partition channels under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Partitions {
    /// `{<prefix>:courier:p`: what every channel starts with.
    head: String,
    count: usize,
}

impl Partitions {
    /// `count` partitions (at least one) under `prefix`.
    pub(crate) fn new(prefix: &str, count: usize) -> Self {
        Self {
            head: format!("{{{prefix}:courier:p"),
            count: count.max(1),
        }
    }

    /// How many there are.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The partition `group` lives in.
    pub(crate) fn of(&self, group: &GroupName) -> usize {
        crc32(group.as_str().as_bytes()) as usize % self.count
    }

    /// Partition `k`'s shard channel, `{<prefix>:courier:p<k>}`.
    pub(crate) fn channel(&self, k: usize) -> String {
        format!("{}{k}}}", self.head)
    }

    /// A user stream's position hash, in partition `k`'s slot (same hash tag as its channel).
    pub(crate) fn meta_key(&self, k: usize, group: &GroupName) -> String {
        format!("{}{k}}}:pos:{group}", self.head)
    }

    /// A user stream's events, in partition `k`'s slot.
    pub(crate) fn stream_key(&self, k: usize, group: &GroupName) -> String {
        format!("{}{k}}}:hist:{group}", self.head)
    }

    /// The partition a channel name belongs to, if it is one of ours.
    pub(crate) fn parse(&self, channel: &[u8]) -> Option<usize> {
        let rest = channel.strip_prefix(self.head.as_bytes())?;
        let digits = rest.strip_suffix(b"}")?;
        let k: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
        (k < self.count && digits.first() != Some(&b'+')).then_some(k)
    }
}

/// The first byte of a note frame: the positions of the next frame's numbered entries (an older
/// receiver skips it as a frame of another version and still gets the events).
const NOTE_VERSION: u8 = 0x80;

/// A note frame's `(entry index, position)` pairs; `None` if `frame` is not a note.
pub(crate) fn notes(frame: &[u8]) -> Option<Result<Vec<(usize, Position)>, FrameError>> {
    let rest = frame.strip_prefix(&[NOTE_VERSION])?;
    let lines = rest.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    Some(
        lines
            .map(|line| {
                let (idx, note) = line
                    .iter()
                    .position(|b| *b == b' ')
                    .map(|i| (&line[..i], &line[i + 1..]))
                    .ok_or(FrameError::Malformed)?;
                let idx = std::str::from_utf8(idx)
                    .ok()
                    .and_then(|i| i.parse().ok())
                    .ok_or(FrameError::Malformed)?;
                let position = parse_note(note).map_err(|_| FrameError::Malformed)?;
                Ok((idx, position))
            })
            .collect(),
    )
}

/// Appends one entry to `frame` (started with [`new_frame`]); returns its encoded body (what a
/// user stream keeps).
pub(crate) fn push_entry(
    frame: &mut Vec<u8>,
    codec: &Codec,
    group: &GroupName,
    message: &GroupMessage,
) -> Result<Vec<u8>, CodecError> {
    let body = codec.encode(message)?;
    // Group names are < 100 bytes (GroupName's rule), and a body over 4 GiB cannot be published.
    let body_len =
        u32::try_from(body.len()).map_err(|_| CodecError::Msgpack("message over 4 GiB".into()))?;
    frame.push(group.as_str().len() as u8);
    frame.extend_from_slice(group.as_str().as_bytes());
    frame.extend_from_slice(&body_len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(body)
}

/// An empty frame: the version byte.
pub(crate) fn new_frame() -> Vec<u8> {
    vec![VERSION]
}

/// The entries of a frame, in order, each as its group name and still-encoded body, so a receiver
/// decodes only the entries of its own groups. A malformed frame yields one error and stops.
pub(crate) fn entries(frame: &[u8]) -> impl Iterator<Item = Result<(&str, &[u8]), FrameError>> {
    let mut rest: Result<&[u8], Option<FrameError>> = match frame.split_first() {
        Some((&VERSION, rest)) => Ok(rest),
        _ => Err(Some(FrameError::Malformed)),
    };
    std::iter::from_fn(move || {
        let buf = match &mut rest {
            Err(e) => return e.take().map(Err),
            Ok(buf) => *buf,
        };
        if buf.is_empty() {
            return None;
        }
        match next_entry(buf) {
            Ok((group, body, after)) => {
                rest = Ok(after);
                Some(Ok((group, body)))
            }
            Err(e) => {
                rest = Err(None);
                Some(Err(e))
            }
        }
    })
}

fn next_entry(buf: &[u8]) -> Result<(&str, &[u8], &[u8]), FrameError> {
    let (&len, buf) = buf.split_first().ok_or(FrameError::Malformed)?;
    let (name, buf) = split(buf, usize::from(len))?;
    let (size, buf) = split(buf, 4)?;
    let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
    let (body, rest) = split(buf, size)?;
    let name = std::str::from_utf8(name).map_err(|_| FrameError::Group)?;
    Ok((name, body, rest))
}

fn split(buf: &[u8], n: usize) -> Result<(&[u8], &[u8]), FrameError> {
    (buf.len() >= n)
        .then(|| buf.split_at(n))
        .ok_or(FrameError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WireFormat;
    use serde_json::json;

    fn g(name: &str) -> GroupName {
        GroupName::new(name).expect("valid")
    }

    fn msg(n: i64) -> GroupMessage {
        json!({"type": "e", "data": {"n": n}})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn partition_channels_are_hash_tags_that_parse_back() {
        let p = Partitions::new("asgi", 256);
        assert_eq!(p.channel(17), "{asgi:courier:p17}");
        assert_eq!(p.parse(b"{asgi:courier:p17}"), Some(17));
        assert_eq!(p.parse(b"{asgi:courier:p256}"), None, "out of range");
        assert_eq!(p.parse(b"{asgi:courier:p+1}"), None);
        assert_eq!(p.parse(b"{other:courier:p1}"), None);
        assert_eq!(p.parse(b"{asgi:courier:p1"), None);
        // crc32("user_42") = 712180813 (Python's binascii.crc32), mod 256 = 77.
        assert_eq!(p.of(&g("user_42")), 712_180_813 % 256);
        assert_eq!(Partitions::new("x", 0).count(), 1);
    }

    #[test]
    fn frames_round_trip_in_order_with_each_codec() {
        let keys = ["k".to_owned()];
        for codec in [
            Codec::new(WireFormat::Msgpack, &[], 0),
            Codec::new(WireFormat::Json, &[], 0),
            Codec::new(WireFormat::Msgpack, &keys, 0),
        ] {
            let mut frame = new_frame();
            let items = [
                (g("user_1"), msg(1)),
                (g("user_2"), msg(2)),
                (g("user_1"), msg(3)),
            ];
            for (group, m) in &items {
                push_entry(&mut frame, &codec, group, m).expect("encode");
            }
            let got: Vec<(GroupName, GroupMessage)> = entries(&frame)
                .map(|e| {
                    let (group, body) = e.expect("entry");
                    (g(group), codec.decode(body).expect("body"))
                })
                .collect();
            assert_eq!(got, items);
        }
        assert_eq!(entries(&new_frame()).count(), 0, "an empty frame is valid");
    }

    #[test]
    fn malformed_frames_are_one_error_not_a_panic() {
        let codec = Codec::new(WireFormat::Msgpack, &[], 0);
        let mut frame = new_frame();
        push_entry(&mut frame, &codec, &g("user_1"), &msg(1)).expect("encode");
        for bad in [
            &b""[..],
            &[2, 0][..],
            &frame[..frame.len() - 1],
            &[1, 2, 0xff, 0xfe, 0, 0, 0, 0][..],
        ] {
            let all: Vec<_> = entries(bad).collect();
            assert_eq!(all.len(), 1, "{bad:?}");
            assert!(all[0].is_err(), "{bad:?}");
        }
    }
}
