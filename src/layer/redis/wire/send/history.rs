//! The sender's user-stream history: the scripts and bounds, the numbered `group_send` of the
//! core flavor, and the stream read a resume makes.

use redis::Script;

use super::super::history as wire_history;
use super::{Inbox, Sender};
use crate::config::HistoryConfig;
use crate::error::{Error, Result};
use crate::layer::{GroupMessage, GroupName, StreamHistory};

/// The scripts and bounds of user-stream history in Redis (`wire::history`).
pub(crate) struct HistoryWriter {
    pub(super) publish: Script,
    /// The core flavor's: history, then `group_send` into the inboxes.
    pub(super) core_publish: Script,
    read: Script,
    pub(super) size: usize,
    pub(super) ttl_ms: u64,
    pub(super) meta_ttl_ms: u64,
    pub(super) stream_bytes: usize,
}

impl Sender {
    /// This sender, keeping user-stream history within `bounds` on its publishes (pub/sub).
    pub(crate) fn with_history(mut self, bounds: &HistoryConfig) -> Self {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.history = Some(Box::new(HistoryWriter {
            publish: Script::new(wire_history::PUBLISH_LUA),
            core_publish: Script::new(wire_history::CORE_PUBLISH_LUA),
            read: Script::new(wire_history::READ_LUA),
            size: bounds.size,
            ttl_ms: ms(bounds.ttl).max(1),
            meta_ttl_ms: ms(bounds.meta_ttl).max(1),
            stream_bytes: bounds.stream_bytes,
        }));
        self
    }

    /// Whether publishes keep user-stream history.
    pub(crate) fn keeps_history(&self) -> bool {
        self.history.is_some()
    }

    /// `group`'s stream head and, with `after`, its events after that offset (decoded; a payload
    /// that does not decode is left out, so the gap shows).
    pub(crate) async fn read_stream(
        &self,
        group: &GroupName,
        after: Option<u64>,
    ) -> Result<StreamHistory> {
        let h = self
            .history
            .as_ref()
            .ok_or_else(|| Error::layer("history is off"))?;
        let mut conn = self.conns[self.host_of(group)].clone();
        let after = after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
        let reply: redis::Value = h
            .read
            .key(self.names.history_meta_key(group))
            .key(self.names.history_stream_key(group))
            .arg(after)
            .arg(&*crate::history::new_epoch())
            .arg(h.meta_ttl_ms)
            .arg(h.ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(Error::layer)?;
        wire_history::decode_read(reply, &self.codec, group)
    }

    /// The numbered `group_send` of one user-stream event on its group's host: the history
    /// script over that host's inboxes, courier's own ones (each channel `…!{group}`, one per
    /// group) flagged to carry the position.
    pub(super) fn core_numbered<'h>(
        &self,
        h: &'h HistoryWriter,
        group: &GroupName,
        message: &GroupMessage,
        inboxes: &[&Inbox],
        score: f64,
    ) -> Result<redis::ScriptInvocation<'h>> {
        let mut call = h.core_publish.prepare_invoke();
        call.key(self.names.history_meta_key(group))
            .key(self.names.history_stream_key(group));
        for inbox in inboxes {
            call.key(&inbox.key);
        }
        call.arg(self.codec.encode(message).map_err(Error::layer)?)
            .arg(h.size)
            .arg(h.ttl_ms)
            .arg(h.meta_ttl_ms)
            .arg(h.stream_bytes)
            .arg(&*crate::history::new_epoch())
            .arg(self.capacity)
            .arg(score)
            .arg(self.expiry_secs);
        let ours = format!("!{group}");
        for inbox in inboxes {
            let mut with_channel = message.clone();
            with_channel.insert("__asgi_channel__".into(), inbox.channels.clone().into());
            call.arg(self.codec.encode(&with_channel).map_err(Error::layer)?);
            let courier = inbox.channels.iter().all(|c| c.ends_with(&ours));
            call.arg(if courier { "1" } else { "0" });
        }
        Ok(call)
    }
}
