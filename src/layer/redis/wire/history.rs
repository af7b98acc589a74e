//! Positions and history of user streams in Redis (PROTOCOL.md §7), shared by every courier
//! process: the keys, the two scripts, and the note that carries a position through pub/sub.
//!
//! # Keys (on the host of the group's channel)
//! - `{prefix}:courier:pos:{group}`: a hash — `epoch`, `offset` (the head: one sequencer per
//!   stream, whoever publishes), `run` (the `run_id` of the Redis that wrote it), `bytes`.
//! - `{prefix}:courier:hist:{group}`: a Stream; entry id `0-<offset>`, fields `t` (Redis time in
//!   ms) and `p` (the channels_redis payload, as published).
//!
//! # Scripts
//! [`PUBLISH_LUA`] takes the next offset, appends, trims (count and bytes; age is judged at read
//! time and bounds the key's TTL) and publishes — one atomic step, so offsets follow publish order
//! and nothing is numbered that was not published. [`READ_LUA`] returns the head and the entries
//! after a position. Both change the epoch (and drop the entries) when the stream's `run` is not
//! this Redis's `run_id`: the server restarted since the stream was written — perhaps from an older
//! snapshot, which would otherwise reuse offsets under the same epoch — so its history cannot be
//! vouched for. A missing hash (never written, expired, lost) gets a fresh epoch too.
//!
//! # Position notes
//! The event itself is published on the group's channel exactly as channels_redis would (the
//! payload untouched, Fernet and float spelling included), so a Django consumer of the group —
//! Daphne still serving some clients during a migration — receives it as before. Its position
//! goes in a note, `<offset> <epoch>`, published by the same script *just before* it on the
//! courier-only channel `{prefix}__courier__{group}`. A courier process subscribes both channels
//! on the group's host: messages of one connection arrive in execution order and a script runs
//! alone, so the next message on the group channel after a note is that note's event; a message
//! with no note before it (Django's own `group_send`) carries no position.

use std::sync::Arc;

use crate::history::Position;
use crate::layer::{GroupName, StreamHistory};

use super::codec::Codec;

use super::Names;

/// The part both publish scripts share: take the next offset (a new epoch when the stream's
/// `run` is not this Redis's `run_id`, or the hash is gone), append the event, trim by count and
/// bytes, refresh the TTLs. Expects the locals `mkey` and `skey` (the position hash and the
/// stream), `payload`, `size`, `ttl`, `meta_ttl`, `max_bytes`, `candidate` and `run` (this
/// Redis's `run_id`, set by `run_lua!`); leaves `offset` and `epoch`.
macro_rules! append_lua {
    () => {
        r"
local meta = redis.call('HMGET', mkey, 'epoch', 'run')
local epoch = meta[1]
if (not epoch) or meta[2] ~= run then
  epoch = candidate
  redis.call('DEL', skey)
  redis.call('HSET', mkey, 'epoch', epoch, 'run', run, 'bytes', 0)
end
local offset = redis.call('HINCRBY', mkey, 'offset', 1)
if size > 0 and #payload <= max_bytes then
  local t = redis.call('TIME')
  local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
  redis.call('XADD', skey, '0-' .. offset, 't', now_ms, 'p', payload)
  local bytes = redis.call('HINCRBY', mkey, 'bytes', #payload)
  local len = redis.call('XLEN', skey)
  while len > 0 and (len > size or bytes > max_bytes) do
    local first = redis.call('XRANGE', skey, '-', '+', 'COUNT', 1)[1]
    bytes = bytes - #first[2][4]
    redis.call('XDEL', skey, first[1])
    len = len - 1
  end
  redis.call('HSET', mkey, 'bytes', bytes)
  redis.call('PEXPIRE', skey, ttl)
else
  redis.call('DEL', skey)
  redis.call('HSET', mkey, 'bytes', 0)
end
redis.call('PEXPIRE', mkey, meta_ttl)
"
    };
}

/// Sets `run`: this Redis's `run_id`, which changes with every start (a restart from an older
/// snapshot included, and the new master after a failover).
macro_rules! run_lua {
    () => {
        r"
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')"
    };
}

/// pub/sub: appends to a stream and publishes the position note, then the event. KEYS: meta,
/// stream. ARGV: channel, payload, size, ttl ms, meta ttl ms, stream bytes, epoch candidate, note
/// channel. Returns `{offset, epoch}`.
pub(crate) const PUBLISH_LUA: &str = concat!(
    run_lua!(),
    r"
local mkey, skey = KEYS[1], KEYS[2]
local payload, size, ttl, meta_ttl = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local max_bytes, candidate = tonumber(ARGV[6]), ARGV[7]",
    append_lua!(),
    r"redis.call('PUBLISH', ARGV[8], offset .. ' ' .. epoch)
redis.call('PUBLISH', ARGV[1], payload)
return {offset, epoch}
"
);

/// core: appends to a stream, then channels_redis's `group_send` into the inboxes given, a
/// courier inbox's member carrying the position after its random prefix. KEYS: meta, stream,
/// inbox…. ARGV: payload (as kept), size, ttl ms, meta ttl ms, stream bytes, epoch candidate,
/// capacity, score, expiry, then per inbox its member and `1` for a courier inbox. Returns
/// `{offset, epoch, over_capacity}`.
pub(crate) const CORE_PUBLISH_LUA: &str = concat!(
    run_lua!(),
    r"
local mkey, skey = KEYS[1], KEYS[2]
local payload, size, ttl, meta_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local max_bytes, candidate = tonumber(ARGV[5]), ARGV[6]",
    append_lua!(),
    r"local over = 0
for i = 3, #KEYS do
  local j = 10 + (i - 3) * 2
  local member = ARGV[j]
  if ARGV[j + 1] == '1' then
    member = string.sub(member, 1, 12) .. string.char(0xC1) .. offset .. ' ' .. epoch .. ' ' .. string.sub(member, 13)
  end
  if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[7]) then
    redis.call('ZADD', KEYS[i], ARGV[8], member)
    redis.call('EXPIRE', KEYS[i], ARGV[9])
  else
    over = over + 1
  end
end
return {offset, epoch, over}
"
);

/// redis-cluster: numbers the user-stream entries of one partition frame, then `SPUBLISH`es a
/// note frame (version 0x80: a line `<entry index> <offset> <epoch>` per numbered entry) and the
/// frame itself on the partition's channel — one script, so nothing comes between them. KEYS: the
/// position hash and stream of each numbered entry, in order (all in the partition's slot). ARGV:
/// channel, frame, size, ttl ms, meta ttl ms, stream bytes, epoch candidate, then per numbered
/// entry its index and body. Returns how many entries it numbered.
pub(crate) const CLUSTER_PUBLISH_LUA: &str = concat!(
    run_lua!(),
    r"
local size, ttl, meta_ttl = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local max_bytes, candidate = tonumber(ARGV[6]), ARGV[7]
local note = string.char(0x80)
for n = 1, #KEYS / 2 do
  local mkey, skey = KEYS[2 * n - 1], KEYS[2 * n]
  local payload = ARGV[7 + 2 * n]",
    append_lua!(),
    r"  note = note .. ARGV[6 + 2 * n] .. ' ' .. offset .. ' ' .. epoch .. '\n'
end
redis.call('SPUBLISH', ARGV[1], note)
redis.call('SPUBLISH', ARGV[1], ARGV[2])
return #KEYS / 2
"
);

/// The byte after a courier inbox member's random prefix that says a position follows (0xC1:
/// never the first byte of msgpack, JSON or a Fernet token, so a plain member is never taken for
/// one).
pub(crate) const NOTE_MARK: u8 = 0xC1;

/// A core inbox member split: its position (if the publisher numbered it) and the member as
/// channels_redis wrote it. `prefix` is the random prefix length.
pub(crate) fn split_member(
    member: &[u8],
    prefix: usize,
) -> Result<(Option<Position>, std::borrow::Cow<'_, [u8]>), &'static str> {
    if member.get(prefix) != Some(&NOTE_MARK) {
        return Ok((None, std::borrow::Cow::Borrowed(member)));
    }
    let rest = &member[prefix + 1..];
    let mut parts = rest.splitn(3, |b| *b == b' ');
    let (Some(offset), Some(epoch), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("truncated position");
    };
    let mut note = offset.to_vec();
    note.push(b' ');
    note.extend_from_slice(epoch);
    let position = parse_note(&note)?;
    let mut plain = member[..prefix].to_vec();
    plain.extend_from_slice(body);
    Ok((Some(position), std::borrow::Cow::Owned(plain)))
}

/// Reads a stream's head and what came after a position. KEYS: meta, stream. ARGV: after (-1:
/// the head only), epoch candidate, meta ttl ms, ttl ms. Returns `{epoch, head, offset1, payload1,
/// …}` with the entries after `after` that are younger than the ttl, oldest first.
pub(crate) const READ_LUA: &str = r"
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'run', 'offset')
local epoch = meta[1]
local head = tonumber(meta[3] or '0')
if (not epoch) or meta[2] ~= run then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'run', run, 'bytes', 0, 'offset', head)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local out = {epoch, head}
local after = tonumber(ARGV[1])
if after >= 0 and after < head then
  local t = redis.call('TIME')
  local min_t = t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[4])
  for _, e in ipairs(redis.call('XRANGE', KEYS[2], '0-' .. (after + 1), '+')) do
    if tonumber(e[2][2]) >= min_t then
      table.insert(out, tonumber(string.match(e[1], '%-(%d+)$')))
      table.insert(out, e[2][4])
    end
  end
end
return out
";

impl Names {
    /// The stream's position hash.
    pub(crate) fn history_meta_key(&self, group: &GroupName) -> String {
        format!("{}:courier:pos:{group}", self.prefix())
    }

    /// The stream's events.
    pub(crate) fn history_stream_key(&self, group: &GroupName) -> String {
        format!("{}:courier:hist:{group}", self.prefix())
    }

    /// What position-note channels start with, `{prefix}__courier__`.
    pub(crate) fn note_prefix(&self) -> String {
        format!("{}__courier__", self.prefix())
    }

    /// The group's position-note channel (subscribed on the host of its group channel).
    pub(crate) fn note_channel(&self, group: &GroupName) -> String {
        format!("{}__courier__{group}", self.prefix())
    }
}

/// A position note's `<offset> <epoch>`.
pub(crate) fn parse_note(bytes: &[u8]) -> Result<Position, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "note not UTF-8")?;
    let (offset, epoch) = text.split_once(' ').ok_or("note without epoch")?;
    let offset = offset
        .parse::<u64>()
        .map_err(|_| "note offset not a number")?;
    if epoch.is_empty() || epoch.contains(' ') {
        return Err("bad note epoch");
    }
    Ok(Position {
        offset,
        epoch: Arc::from(epoch),
    })
}

/// What a read found: the head, and the entries after the position asked for.
#[derive(Debug)]
pub(crate) struct StreamRead {
    /// The stream head now.
    pub(crate) head: Position,
    /// `(offset, payload)` after the position asked for, oldest first, aged-out ones left out.
    pub(crate) entries: Vec<(u64, Vec<u8>)>,
}

/// [`READ_LUA`]'s reply as the layer hands it to the hub: the head, and each entry decoded (one
/// that does not decode is left out and logged, so the gap shows and the client is told).
pub(crate) fn decode_read(
    reply: redis::Value,
    codec: &Codec,
    group: &GroupName,
) -> crate::Result<StreamHistory> {
    let read = parse_read(reply).map_err(crate::Error::layer)?;
    let events = read
        .entries
        .into_iter()
        .filter_map(|(offset, payload)| match codec.decode(&payload) {
            Ok(message) => Some((offset, message)),
            Err(e) => {
                tracing::warn!(%group, offset, error = %e, "history entry does not decode");
                None
            }
        })
        .collect();
    Ok(StreamHistory {
        head: read.head,
        events,
    })
}

/// Parses [`READ_LUA`]'s reply.
pub(crate) fn parse_read(reply: redis::Value) -> Result<StreamRead, &'static str> {
    let redis::Value::Array(items) = reply else {
        return Err("history read: not an array");
    };
    let mut items = items.into_iter();
    let text = |v: redis::Value| match v {
        redis::Value::BulkString(b) => Ok(b),
        redis::Value::SimpleString(s) => Ok(s.into_bytes()),
        _ => Err("history read: not a string"),
    };
    let int = |v: redis::Value| match v {
        redis::Value::Int(n) => u64::try_from(n).map_err(|_| "history read: negative offset"),
        _ => Err("history read: not an integer"),
    };
    let epoch = items.next().ok_or("history read: empty").and_then(text)?;
    let epoch = String::from_utf8(epoch).map_err(|_| "history read: epoch not UTF-8")?;
    let offset = items.next().ok_or("history read: no head").and_then(int)?;
    let mut entries = Vec::new();
    while let Some(o) = items.next() {
        let p = items.next().ok_or("history read: odd entries")?;
        entries.push((int(o)?, text(p)?));
    }
    Ok(StreamRead {
        head: Position {
            offset,
            epoch: epoch.into(),
        },
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Django helper (integrations/django/courier_notify.py) runs this very script: one rule,
    /// two languages, checked.
    #[test]
    fn the_django_helper_runs_this_publish_script() {
        let helper = include_str!("../../../../integrations/django/courier_notify.py");
        assert!(
            helper.contains(PUBLISH_LUA),
            "courier_notify.py's PUBLISH_LUA differs"
        );
    }

    #[test]
    fn core_members_carry_their_position_after_the_random_prefix() {
        assert_eq!(
            super::super::RANDOM_PREFIX,
            12,
            "CORE_PUBLISH_LUA splices after 12 bytes"
        );
        let plain = b"0123456789ab\x82\xa4type";
        let (pos, member) = split_member(plain, 12).expect("plain");
        assert!(pos.is_none());
        assert_eq!(&*member, plain);
        let mut numbered = plain[..12].to_vec();
        numbered.extend_from_slice(b"\xc17 ep \x82\xa4type");
        let (pos, member) = split_member(&numbered, 12).expect("numbered");
        assert_eq!(
            pos.map(|p| (p.offset, p.epoch.to_string())),
            Some((7, "ep".into()))
        );
        assert_eq!(&*member, plain);
        assert!(split_member(b"0123456789ab\xc17", 12).is_err());
    }

    #[test]
    fn notes_carry_an_offset_and_an_epoch() {
        let pos = parse_note(b"42 ab12").expect("valid");
        assert_eq!((pos.offset, &*pos.epoch), (42, "ab12"));
        for bad in [&b""[..], b"42", b"x e", b"-1 e", b"1 ", b"1 a b", b"\xff e"] {
            assert!(parse_note(bad).is_err(), "{bad:?}");
        }
    }
}
