//! Publishers: how events reach the server. One trait, one implementation per path.
//!
//! # Adding a publisher
//! Implement [`Publisher`] in a new module: encode each [`Event`] with [`EventCodec`] and send it
//! the way the real backend would. Then add a `PublisherKind` variant (`cli/`) and a line in
//! [`build`]. The lane ([`lane`]) keeps each user's events in order on one publisher and stamps the
//! intended send time, so a new publisher gets exact accounting for free. The Redis publishers
//! ([`redis`]) are the example: Django's `group_send` through channels_redis, both layers.

pub(crate) mod http;
pub(crate) mod hub;
pub(crate) mod lane;
pub(crate) mod redis;

use futures::future::BoxFuture;

use crate::cli::PublisherKind;
use crate::error::Result;

/// The notification type the loadtest sends: one of the reference consumer's own handlers
/// (`new_message` forwards `data` as given), so the same run works against the Django app, which
/// kills the connection on a type it has no handler for. A replay sends the trace's types instead.
pub(crate) const EVENT_KIND: &str = "new_message";

/// One event for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event {
    /// The user's id (the group is `user_{id}`).
    pub(crate) user_id: u64,
    /// Per-user sequence number, from 1.
    pub(crate) seq: u64,
    /// Intended send time, unix ns.
    pub(crate) ts_ns: u64,
    /// The event type: an index into the codec's types (0: [`EVENT_KIND`] unless replaying).
    pub(crate) kind: u16,
    /// The size `data` should have, bytes (a replayed event's recorded size); 0: the codec's
    /// fixed padding (`--payload-bytes`).
    pub(crate) size: u32,
}

impl Event {
    /// A burst or rate event: the default type and padding.
    pub(crate) fn plain(user_id: u64, seq: u64, ts_ns: u64) -> Self {
        Self {
            user_id,
            seq,
            ts_ns,
            kind: 0,
            size: 0,
        }
    }
}

/// `{"seq":,"ts":,"run":"","pad":""}`: the bytes of the data object around its values.
const DATA_FRAME_BYTES: usize = 32;

/// Encodes event data: `{"seq":…,"ts":…,"run":"…","pad":"…"}` (PROTOCOL.md §6).
#[derive(Debug, Clone)]
pub(crate) struct EventCodec {
    /// This run's id.
    pub(crate) run_id: String,
    /// The longest padding any event gets; an event's padding is a prefix of it (no allocation).
    pub(crate) pad: String,
    /// Padding of an event without a size of its own.
    fixed_pad: usize,
    /// Event types by index (shared by the lanes).
    kinds: std::sync::Arc<[String]>,
}

impl EventCodec {
    /// A codec for `run_id` with `payload_bytes` of padding and the one type [`EVENT_KIND`].
    pub(crate) fn new(run_id: &str, payload_bytes: usize) -> Self {
        Self {
            run_id: run_id.to_owned(),
            pad: "x".repeat(payload_bytes),
            fixed_pad: payload_bytes,
            kinds: std::sync::Arc::new([EVENT_KIND.to_owned()]),
        }
    }

    /// A codec for a replay: the trace's `kinds`, and events padded up to `max_size` bytes of data.
    pub(crate) fn replaying(
        run_id: &str,
        payload_bytes: usize,
        kinds: &[String],
        max_size: usize,
    ) -> Self {
        Self {
            pad: "x".repeat(payload_bytes.max(max_size)),
            kinds: kinds.into(),
            ..Self::new(run_id, payload_bytes)
        }
    }

    /// The event's type (a trace's type was checked to need no JSON escaping).
    pub(crate) fn kind(&self, e: &Event) -> &str {
        self.kinds
            .get(usize::from(e.kind))
            .map_or(EVENT_KIND, String::as_str)
    }

    /// The event's padding: the fixed one, or what brings `data` to the event's size. The
    /// tester's own fields are never cut, so an event recorded smaller than them is sent at
    /// their size (about 65 bytes).
    pub(crate) fn pad(&self, e: &Event) -> &str {
        let n = if e.size == 0 {
            self.fixed_pad
        } else {
            let own = DATA_FRAME_BYTES + digits(e.seq) + digits(e.ts_ns) + self.run_id.len();
            (e.size as usize).saturating_sub(own)
        };
        &self.pad[..n.min(self.pad.len())]
    }

    /// Appends the data object as JSON text.
    pub(crate) fn write_data(&self, e: &Event, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            r#"{{"seq":{},"ts":{},"run":"{}","pad":"{}"}}"#,
            e.seq,
            e.ts_ns,
            self.run_id,
            self.pad(e)
        );
    }

    /// The data object as a JSON value (for in-process publishing).
    pub(crate) fn data_value(&self, e: &Event) -> serde_json::Value {
        let mut m = serde_json::Map::with_capacity(4);
        m.insert("seq".into(), e.seq.into());
        m.insert("ts".into(), e.ts_ns.into());
        m.insert("run".into(), self.run_id.clone().into());
        m.insert("pad".into(), self.pad(e).into());
        serde_json::Value::Object(m)
    }
}

/// Decimal digits of `n`.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// A failed publish call.
#[derive(Debug)]
pub(crate) struct PublishError {
    /// What went wrong (the report's error key).
    pub(crate) message: String,
    /// The server certainly did not take the batch: the connection was refused, or it answered
    /// with an error status (courier's API answers 503 when its channel layer refused the
    /// publish). Such events were never accepted, so the churn accounting owes them to nobody.
    /// `false` when the outcome is unknown (a stream cut mid-request): they stay expected.
    pub(crate) refused: bool,
}

impl PublishError {
    /// A refusal (see [`PublishError::refused`]).
    pub(crate) fn refused(message: String) -> Self {
        Self {
            message,
            refused: true,
        }
    }
}

/// Any other failure: the batch may have been taken.
impl From<String> for PublishError {
    fn from(message: String) -> Self {
        Self {
            message,
            refused: false,
        }
    }
}

/// Sends events to the server. One instance per lane; a lane publishes its batches in order.
pub(crate) trait Publisher: Send {
    /// Short name for reports.
    fn name(&self) -> &'static str;
    /// Publishes `batch` (ordered per user). An error means the batch may not have been sent;
    /// the lane counts it and goes on (its events stay expected, so a real loss shows as lost).
    fn publish<'a>(&'a mut self, batch: &'a [Event]) -> BoxFuture<'a, Result<(), PublishError>>;
    /// Waits (at most `bound`) until the server can hear every user's group, for publishers whose
    /// subscriptions are registered asynchronously (Redis). The default is ready at once.
    fn wait_ready<'a>(
        &'a mut self,
        _user_ids: &'a [u64],
        _bound: std::time::Duration,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What a publisher needs to connect.
pub(crate) enum PublishTarget {
    /// The embedded server's state.
    Embedded(courier::AppState),
    /// HTTP `POST /api/notify` at `peer` (over TLS for a `wss://` target).
    Http {
        /// Server address, `Host` header and TLS.
        peer: crate::net::Peer,
        /// `X-API-Key`.
        api_key: String,
    },
    /// Redis, in a channels_redis layer's wire format.
    Redis {
        /// `RedisPubsub` or `RedisCore`.
        layer: courier::config::LayerKind,
        /// URL and prefix.
        config: courier::config::RedisConfig,
    },
}

/// Builds the publisher of one lane.
pub(crate) fn build(
    kind: PublisherKind,
    target: &PublishTarget,
    codec: EventCodec,
) -> Result<Box<dyn Publisher>> {
    use crate::error::Error;
    match (kind, target) {
        (PublisherKind::Embedded, PublishTarget::Embedded(state)) => {
            Ok(Box::new(hub::HubPublisher::new(state.clone(), codec)))
        }
        (PublisherKind::Http, PublishTarget::Http { peer, api_key }) => Ok(Box::new(
            http::HttpPublisher::new(peer.clone(), api_key.clone(), codec),
        )),
        (
            PublisherKind::RedisPubsub | PublisherKind::RedisCore,
            PublishTarget::Redis { layer, config },
        ) => Ok(Box::new(
            redis::RedisPublisher::new(*layer, config, codec).map_err(Error::Setup)?,
        )),
        _ => Err(Error::Usage("publisher and target do not match".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_text_and_value_agree() {
        let c = EventCodec::new("r1", 3);
        let e = Event::plain(9, 4, 123);
        let mut s = String::new();
        c.write_data(&e, &mut s);
        let parsed: serde_json::Value = serde_json::from_str(&s).expect("json");
        assert_eq!(parsed, c.data_value(&e));
        assert_eq!(c.kind(&e), EVENT_KIND);
    }

    #[test]
    fn a_replayed_event_has_its_recorded_type_and_size() {
        let kinds = ["a".to_owned(), "friend_request".to_owned()];
        let c = EventCodec::replaying("abcdefabcdef", 16, &kinds, 500);
        for (seq, size) in [(1, 80), (42, 137), (999, 500), (7, 3)] {
            let e = Event {
                kind: 1,
                size,
                ..Event::plain(9, seq, 1_765_100_000_123_456_789)
            };
            let mut s = String::new();
            c.write_data(&e, &mut s);
            // The tester's floor: 32 + digits of seq and ts + the run id.
            let floor = 32 + seq.to_string().len() + 19 + 12;
            assert_eq!(s.len(), (size as usize).max(floor), "{s}");
            assert_eq!(serde_json::to_string(&c.data_value(&e)).expect("json"), s);
            assert_eq!(c.kind(&e), "friend_request");
        }
        // Burst and rate events keep the fixed padding.
        let plain = Event::plain(9, 1, 1);
        assert_eq!(c.pad(&plain).len(), 16);
        assert_eq!(c.kind(&plain), "a");
    }
}
