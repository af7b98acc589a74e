//! channels_redis 4.3's wire format in one place: key and channel names, which host of `hosts`
//! holds each, the `group_send` Lua script, the payload [`codec`], and pipelined sends ([`send`]);
//! and the redis-cluster layer's partitions and frames ([`sharded`]: Redis Cluster sharded pub/sub), built on the same codec.
//!
//! Both layers and [`GroupSender`](super::GroupSender) write through this module, so a rule of the
//! format (a key name, a hash, a score) has exactly one copy.
//!
//! # Host selection (channels_redis `utils._consistent_hash`)
//! `crc32(name) & 0xFFF`, scaled onto the ring: `int(bucket / (4096 / len(hosts)))`. The name
//! hashed differs per layer, as in channels_redis:
//! - pub/sub: the full channel `{prefix}__group__{group}` (`RedisPubSubLoopLayer._get_shard`);
//! - core, group ZSET: the bare group name (`group_add`/`group_send` call `consistent_hash(group)`);
//! - core, inbox ZSET `{prefix}specific.{client_prefix}!`: the non-local channel name
//!   `specific.{client_prefix}!` without the prefix (`_map_channel_keys_to_connection` and
//!   `receive_single`).

pub(crate) mod codec;
pub(crate) mod history;
pub(crate) mod send;
pub(crate) mod sharded;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::layer::GroupName;

/// channels_redis's `random_prefix_length` for the core layer: keeps equal messages distinct ZSET
/// members. The pub/sub layer writes none.
pub(crate) const RANDOM_PREFIX: usize = 12;

/// The channels_redis 4.3 `group_send` script, verbatim, so capacity is checked atomically.
pub(crate) const GROUP_SEND_LUA: &str = r"
    local over_capacity = 0
    local current_time = ARGV[#ARGV - 1]
    local expiry = ARGV[#ARGV]
    for i=1,#KEYS do
        if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
            redis.call('ZADD', KEYS[i], current_time, ARGV[i])
            redis.call('EXPIRE', KEYS[i], expiry)
        else
            over_capacity = over_capacity + 1
        end
    end
    return over_capacity
";

/// Key and channel names under one channels_redis `prefix`, and the host each lives on.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    prefix: String,
    hosts: usize,
}

impl Names {
    /// Names under `prefix` over `hosts` Redis servers (at least one).
    pub(crate) fn new(prefix: &str, hosts: usize) -> Self {
        Self {
            prefix: prefix.to_owned(),
            hosts: hosts.max(1),
        }
    }

    /// The channels_redis `prefix`.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// pub/sub: what channel names start with, `{prefix}__group__`.
    pub(crate) fn channel_prefix(&self) -> String {
        format!("{}__group__", self.prefix)
    }

    /// pub/sub: the Redis channel of `group`, `{prefix}__group__{group}`.
    pub(crate) fn group_channel(&self, group: &GroupName) -> String {
        format!("{}__group__{group}", self.prefix)
    }

    /// pub/sub: the host `group`'s channel is published and subscribed on.
    pub(crate) fn pubsub_host(&self, group: &GroupName) -> usize {
        consistent_hash(self.group_channel(group).as_bytes(), self.hosts)
    }

    /// core: the group ZSET, `{prefix}:group:{group}`.
    pub(crate) fn group_key(&self, group: &GroupName) -> String {
        format!("{}:group:{group}", self.prefix)
    }

    /// core: the host holding `group`'s ZSET.
    pub(crate) fn group_host(&self, group: &GroupName) -> usize {
        consistent_hash(group.as_str().as_bytes(), self.hosts)
    }

    /// core: the inbox ZSET a channel's messages go to, `{prefix}{non_local_name}`.
    pub(crate) fn inbox_key(&self, channel: &str) -> String {
        format!("{}{}", self.prefix, non_local_name(channel))
    }

    /// core: the host holding a channel's inbox.
    pub(crate) fn inbox_host(&self, channel: &str) -> usize {
        consistent_hash(non_local_name(channel).as_bytes(), self.hosts)
    }

    /// core: the channels of a group's members grouped by inbox, in ZRANGE order, like
    /// channels_redis `_map_channel_keys_to_connection` (one message per inbox, not per channel).
    pub(crate) fn inboxes_of(&self, channels: Vec<String>) -> Vec<Inbox> {
        let mut inboxes: Vec<Inbox> = Vec::new();
        for channel in channels {
            let key = self.inbox_key(&channel);
            match inboxes.iter_mut().find(|i| i.key == key) {
                Some(inbox) => inbox.channels.push(channel),
                None => inboxes.push(Inbox {
                    host: self.inbox_host(&channel),
                    key,
                    channels: vec![channel],
                }),
            }
        }
        inboxes
    }
}

/// One inbox ZSET a group message is written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inbox {
    /// `{prefix}specific.{client_prefix}!`.
    pub(crate) key: String,
    /// Which host holds it.
    pub(crate) host: usize,
    /// The member channels it serves: the message's `__asgi_channel__`.
    pub(crate) channels: Vec<String>,
}

/// Channels' `non_local_name`: everything up to and including the first `!`.
pub(crate) fn non_local_name(channel: &str) -> &str {
    match channel.find('!') {
        Some(i) => &channel[..=i],
        None => channel,
    }
}

/// channels_redis `_consistent_hash(value, ring_size)`: a CRC-32 bucket in 0..4096 scaled onto
/// `ring_size` hosts. The float division is Python's, so edge buckets land where Python puts them.
pub(crate) fn consistent_hash(value: &[u8], ring_size: usize) -> usize {
    if ring_size <= 1 {
        return 0;
    }
    let bucket = crc32(value) & 0xFFF;
    let divisor = 4096.0 / ring_size as f64;
    (f64::from(bucket) / divisor) as usize
}

/// CRC-32 (IEEE 802.3, reflected, as Python's `binascii.crc32`). Bitwise: names are short and
/// hashed once per publish, so a table or a crate buys nothing.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Now as float seconds since the epoch, like Python's `time.time()` (channels_redis scores).
pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_python_binascii() {
        // binascii.crc32(b"...") in Python 3.
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"user_42"), 712_180_813);
        assert_eq!(crc32(b"asgi__group__user_42"), 2_424_979_159);
        assert_eq!(crc32(b"user_1"), 1_664_048_480);
    }

    #[test]
    fn consistent_hash_matches_channels_redis() {
        // [_consistent_hash(v, n) for n in (2, 3, 5, 7)] with channels_redis 4.3.
        let cases: [(&str, [usize; 4]); 4] = [
            ("user_42", [0, 0, 1, 1]),
            ("asgi__group__user_42", [1, 2, 4, 6]),
            ("specific.0123456789abcdef0123456789abcdef!", [0, 1, 1, 2]),
            ("user_1", [1, 2, 4, 5]),
        ];
        for (value, want) in cases {
            let got = [2, 3, 5, 7].map(|n| consistent_hash(value.as_bytes(), n));
            assert_eq!(got, want, "{value}");
        }
        assert_eq!(consistent_hash(b"anything", 1), 0);
    }

    #[test]
    fn each_layer_hashes_the_name_channels_redis_hashes() {
        let names = Names::new("asgi", 7);
        let g = GroupName::new("user_42").expect("valid");
        assert_eq!(names.pubsub_host(&g), 6, "the prefixed channel");
        assert_eq!(names.group_host(&g), 1, "the bare group");
        let channel = "specific.0123456789abcdef0123456789abcdef!user_42";
        assert_eq!(names.inbox_host(channel), 2, "the non-local name");
        assert_eq!(
            names.inbox_key(channel),
            "asgispecific.0123456789abcdef0123456789abcdef!"
        );
    }

    #[test]
    fn inboxes_group_channels_by_non_local_name() {
        let names = Names::new("p", 3);
        let got = names.inboxes_of(vec![
            "specific.a!x".into(),
            "specific.b!y".into(),
            "specific.a!z".into(),
        ]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].key, "pspecific.a!");
        assert_eq!(got[0].channels, ["specific.a!x", "specific.a!z"]);
        assert_eq!(got[0].host, consistent_hash(b"specific.a!", 3));
        assert_eq!(got[1].channels, ["specific.b!y"]);
    }
}
