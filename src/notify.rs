//! The publishing API of the reference's `utils.py`: `notify_user` and its three helpers.

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::auth::UserId;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::layer::{GroupMessage, GroupName};
use crate::protocol;

/// The public fields of a Django user that the helpers put in `data`.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    /// `User.id`.
    pub id: Value,
    /// `User.username`.
    pub username: String,
    /// `User.first_name`.
    pub first_name: String,
    /// `User.last_name`.
    pub last_name: String,
}

/// The Channels message `notify_user` sends: `{"type": kind with '-' → '_', "data": data}`.
pub fn notify_message(kind: &str, data: Value) -> GroupMessage {
    message_of(notify_kind(kind), data)
}

/// `notify_user`'s message type for `kind`: `-` becomes `_`.
pub(crate) fn notify_kind(kind: &str) -> String {
    kind.replace('-', "_")
}

/// `{"type": kind, "data": data}` (`kind` already as [`notify_kind`] makes it).
pub(crate) fn message_of(kind: String, data: Value) -> GroupMessage {
    let mut m = Map::with_capacity(2);
    m.insert("type".into(), Value::String(kind));
    m.insert("data".into(), data);
    m
}

/// One validated `notify_user` call, its `data` borrowed as JSON text (from an HTTP body).
#[derive(Debug)]
pub(crate) struct Notification<'a> {
    /// `user_{id}`.
    pub(crate) group: GroupName,
    /// The message type, `-` already `_`.
    kind: String,
    /// `data` as sent (`None`: absent, i.e. `null`); checked as JSON by the caller.
    data: Option<&'a RawValue>,
}

impl<'a> Notification<'a> {
    /// A call to `group` with type `kind` (already as [`notify_kind`] makes it).
    pub(crate) fn new(group: GroupName, kind: String, data: Option<&'a RawValue>) -> Self {
        Self { group, kind, data }
    }

    /// The frame every member of the group gets, built from the `data` text as written.
    pub(crate) fn frame(&self) -> Bytes {
        protocol::frame_raw(&self.kind, self.data.map_or("null", RawValue::get))
    }

    /// The Channels message `notify_user` would send, for a layer that leaves the process.
    pub(crate) fn message(&self) -> GroupMessage {
        // `data` was checked as JSON by the same parser, so this parse cannot fail.
        let data = self
            .data
            .and_then(|d| serde_json::from_str(d.get()).ok())
            .unwrap_or(Value::Null);
        message_of(self.kind.clone(), data)
    }
}

impl Hub {
    /// Publishes a batch of notifications in order: with a layer that stays in this process, each
    /// frame is built from the `data` text and handed to the local members (no message is built
    /// at all); otherwise their Channels messages go to the layer in one call.
    pub(crate) async fn notify_many(&self, batch: &[Notification<'_>]) -> Result<()> {
        if self.layer().is_local() {
            for n in batch {
                // `null` when absent: 4 bytes.
                self.trace(&n.group, &n.kind, n.data.map_or(4, |d| d.get().len()));
            }
            self.publish_local(batch.iter().map(|n| (&n.group, n.frame())));
            return Ok(());
        }
        let messages: Vec<(GroupName, GroupMessage)> = batch
            .iter()
            .map(|n| (n.group.clone(), n.message()))
            .collect();
        self.group_send_many(&messages).await
    }

    /// `notify_user(user_id, type, data)`: a `group_send` to `user_{id}`.
    pub async fn notify_user(&self, user_id: &UserId, kind: &str, data: Value) -> Result<()> {
        let group = GroupName::for_user(user_id).ok_or(Error::BadGroup)?;
        self.group_send(&group, &notify_message(kind, data)).await
    }

    /// `notify_friend_request(to, from_user, request_id)`.
    pub async fn notify_friend_request(
        &self,
        to: &UserId,
        from_user: &UserSummary,
        request_id: Value,
    ) -> Result<()> {
        let data = json!({"request_id": request_id, "from_user": from_user});
        self.notify_user(to, "friend_request", data).await
    }

    /// `notify_friend_accepted(to, friend)`.
    pub async fn notify_friend_accepted(&self, to: &UserId, friend: &UserSummary) -> Result<()> {
        self.notify_user(to, "friend_accepted", json!({ "friend": friend }))
            .await
    }

    /// `notify_new_message(to, message_data)`: `data` is the message as given.
    pub async fn notify_new_message(&self, to: &UserId, message_data: Value) -> Result<()> {
        self.notify_user(to, "new_message", message_data).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyphens_become_underscores() {
        let m = notify_message("friend-request", json!({"a": 1}));
        assert_eq!(
            Value::Object(m),
            json!({"type": "friend_request", "data": {"a": 1}})
        );
    }
}
