//! User-stream history on Redis Cluster: numbered frames (a note frame before each, one script)
//! and the stream read a resume makes, both in the partition's slot.

use std::time::Duration;

use redis::cluster_async::ClusterConnection;
use redis::Script;

use super::{refused, RedisClusterLayer, PUBLISH_RETRIES, RETRY_STEP};
use crate::config::HistoryConfig;
use crate::error::{Error, Result};
use crate::history::new_epoch;
use crate::layer::redis::wire::history::{decode_read, CLUSTER_PUBLISH_LUA, READ_LUA};
use crate::layer::{GroupName, StreamHistory};

/// The scripts and bounds.
pub(super) struct ClusterHistory {
    publish: Script,
    read: Script,
    size: usize,
    ttl_ms: u64,
    meta_ttl_ms: u64,
    stream_bytes: usize,
}

impl ClusterHistory {
    pub(super) fn new(bounds: &HistoryConfig) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        Self {
            publish: Script::new(CLUSTER_PUBLISH_LUA),
            read: Script::new(READ_LUA),
            size: bounds.size,
            ttl_ms: ms(bounds.ttl),
            meta_ttl_ms: ms(bounds.meta_ttl),
            stream_bytes: bounds.stream_bytes,
        }
    }
}

/// A frame to publish and its user-stream entries: `(index in the frame, group, body)`.
pub(super) struct Frame {
    pub(super) bytes: Vec<u8>,
    pub(super) numbered: Vec<(usize, GroupName, Vec<u8>)>,
}

impl RedisClusterLayer {
    /// Publishes a frame with numbered entries through the history script, sent again only while
    /// Redis refuses it (the script did not run).
    pub(super) async fn publish_numbered(
        &self,
        h: &ClusterHistory,
        mut conn: ClusterConnection,
        k: usize,
        channel: &str,
        frame: &Frame,
    ) -> redis::RedisResult<()> {
        let partitions = &self.shared.partitions;
        let mut call = h.publish.prepare_invoke();
        for (_, group, _) in &frame.numbered {
            call.key(partitions.meta_key(k, group))
                .key(partitions.stream_key(k, group));
        }
        call.arg(channel)
            .arg(&frame.bytes)
            .arg(h.size)
            .arg(h.ttl_ms)
            .arg(h.meta_ttl_ms)
            .arg(h.stream_bytes)
            .arg(&*new_epoch());
        for (idx, _, body) in &frame.numbered {
            call.arg(*idx).arg(body);
        }
        let mut retries = 0;
        loop {
            match call.invoke_async::<redis::Value>(&mut conn).await {
                Ok(_) => return Ok(()),
                Err(e) if retries < PUBLISH_RETRIES && refused(&e) => {
                    retries += 1;
                    tokio::time::sleep(RETRY_STEP * retries).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `group`'s stream head and, with `after`, its events after that offset.
    pub(super) async fn read(
        &self,
        group: &GroupName,
        after: Option<u64>,
    ) -> Result<StreamHistory> {
        let h = self
            .shared
            .history
            .as_ref()
            .ok_or_else(|| Error::layer("history is off"))?;
        let mut conn = self.shared.publisher().await?;
        let k = self.shared.partitions.of(group);
        let after = after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
        let reply: redis::Value = h
            .read
            .key(self.shared.partitions.meta_key(k, group))
            .key(self.shared.partitions.stream_key(k, group))
            .arg(after)
            .arg(&*new_epoch())
            .arg(h.meta_ttl_ms)
            .arg(h.ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(Error::layer)?;
        decode_read(reply, &self.shared.codec, group)
    }
}
