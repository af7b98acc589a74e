//! The publishing API of the reference's `utils.py`: `notify_user` and its three helpers.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::auth::UserId;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::layer::{GroupMessage, GroupName};

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

impl Hub {
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
