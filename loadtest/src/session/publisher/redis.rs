//! The Redis publishers: what Django's `channel_layer.group_send("user_{id}", {"type": …,
//! "data": …})` writes with channels_redis, through courier's own [`GroupSender`] (same codec,
//! same Lua script), one pipelined round trip (pub/sub) or two (core) per batch.

use std::time::Duration;

use courier::config::{LayerKind, RedisConfig};
use courier::layer::{GroupMessage, GroupName, GroupSender};
use futures::future::BoxFuture;

use super::{Event, EventCodec, PublishError, Publisher};

/// How often to ask Redis whether the server has registered every group.
const READY_POLL: Duration = Duration::from_millis(25);

/// Publishes batches to Redis in a channels_redis layer's wire format.
pub(crate) struct RedisPublisher {
    name: &'static str,
    sender: GroupSender,
    codec: EventCodec,
    /// Reused between batches.
    items: Vec<(GroupName, GroupMessage)>,
}

impl RedisPublisher {
    /// A publisher in `layer`'s format; connects lazily. Must run inside a Tokio runtime.
    pub(crate) fn new(
        layer: LayerKind,
        config: &RedisConfig,
        codec: EventCodec,
    ) -> Result<Self, String> {
        let name = match layer {
            LayerKind::RedisPubsub => "redis-pubsub",
            LayerKind::RedisCore => "redis-core",
            LayerKind::Memory | LayerKind::RedisCluster => {
                return Err(format!(
                    "the {layer:?} layer has no channels_redis publisher"
                ))
            }
        };
        let sender = GroupSender::new(layer, config).map_err(|e| e.to_string())?;
        Ok(Self {
            name,
            sender,
            codec,
            items: Vec::new(),
        })
    }

    /// The Channels message Django's consumer would receive: `{"type": kind, "data": …}`.
    fn message(&self, e: &Event) -> GroupMessage {
        let mut m = GroupMessage::with_capacity(2);
        m.insert("type".into(), self.codec.kind(e).into());
        m.insert("data".into(), self.codec.data_value(e));
        m
    }
}

/// `user_{id}`, the reference consumer's group.
pub(crate) fn group_of(user_id: u64) -> Result<GroupName, String> {
    GroupName::new(&format!("user_{user_id}")).ok_or_else(|| format!("bad group user_{user_id}"))
}

impl Publisher for RedisPublisher {
    fn name(&self) -> &'static str {
        self.name
    }

    fn publish<'a>(&'a mut self, batch: &'a [Event]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            let mut items = std::mem::take(&mut self.items);
            items.clear();
            for e in batch {
                items.push((group_of(e.user_id)?, self.message(e)));
            }
            let sent = self.sender.send_many(&items).await;
            self.items = items;
            match sent {
                Ok(0) => Ok(()),
                // Django drops these silently; the tester says so (the events also count as lost).
                Ok(_) => {
                    Err(String::from("inbox at channels_redis capacity: messages dropped").into())
                }
                Err(e) => Err(e.to_string().into()),
            }
        })
    }

    fn wait_ready<'a>(
        &'a mut self,
        user_ids: &'a [u64],
        bound: Duration,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let groups = user_ids
                .iter()
                .map(|&id| group_of(id))
                .collect::<Result<Vec<_>, _>>()?;
            let deadline = tokio::time::Instant::now() + bound;
            loop {
                let n = self
                    .sender
                    .listening(&groups)
                    .await
                    .map_err(|e| e.to_string())?;
                if n >= groups.len() {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "after {}, only {n} of {} groups have a listener in Redis",
                        humantime::format_duration(bound),
                        groups.len()
                    ));
                }
                tokio::time::sleep(READY_POLL).await;
            }
        })
    }
}
