//! How the conformance checks make the server deliver events: courier's HTTP API (`POST
//! /api/notify`, `POST /api/group_send`, which the Django seed's test view mirrors for notify) or
//! channels_redis's wire format written to Redis (what Django's `group_send` writes).

use courier::config::{LayerKind, RedisConfig};
use courier::layer::{GroupMessage, GroupSender};
use serde_json::{json, Value};

use crate::net::{post_json, Peer};
use crate::session::group_of;

/// Longest wait for the server to register a user's group in Redis before publishing to it.
const REGISTER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a group must have had a listener before a Redis publish counts on it.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Why an event could not be sent: the check is skipped (nothing to publish with) or fails.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NotSent {
    /// The target cannot be asked to publish this way; the check is skipped.
    Unsupported(String),
    /// The publish call failed.
    Failed(String),
}

/// The way events reach the server under test.
pub(crate) enum EventSender {
    /// HTTP with `X-API-Key` (`https://` for a `wss://` target).
    Http {
        /// The server's address, `Host` header and TLS.
        peer: Peer,
        /// The key.
        api_key: String,
    },
    /// channels_redis `group_send`, through courier's own [`GroupSender`] (boxed: it holds the
    /// Redis connections and would make every sender as large).
    Redis(Box<GroupSender>),
    /// No way to publish: event checks are skipped.
    None,
}

impl EventSender {
    /// A Redis sender in `layer`'s format to `config`'s URL and prefix.
    pub(crate) fn redis(layer: LayerKind, config: &RedisConfig) -> Result<Self, String> {
        GroupSender::new(layer, config)
            .map(|s| Self::Redis(Box::new(s)))
            .map_err(|e| e.to_string())
    }

    /// Django's `notify_user(user_id, kind, data)`: `group_send("user_{id}", {"type": kind with
    /// '-' → '_', "data": data})`.
    pub(crate) async fn notify(&self, user: u64, kind: &str, data: &Value) -> Result<(), NotSent> {
        match self {
            Self::Http { peer, api_key } => {
                let body = json!({"user_id": user, "type": kind, "data": data}).to_string();
                expect_202(post_json(peer, "/api/notify", api_key, body).await)
            }
            Self::Redis(_) => {
                let message = json!({"type": kind.replace('-', "_"), "data": data});
                self.group_send(user, message).await
            }
            Self::None => Err(none()),
        }
    }

    /// A raw group message to `user_{id}` (`notification` with `notification_type`, …).
    pub(crate) async fn group_send(&self, user: u64, message: Value) -> Result<(), NotSent> {
        let group = group_of(user).map_err(NotSent::Failed)?;
        match self {
            Self::Http { peer, api_key } => {
                let body = json!({"group": group.as_str(), "message": message}).to_string();
                match post_json(peer, "/api/group_send", api_key, body).await {
                    Ok(404) => Err(NotSent::Unsupported(
                        "the target has no POST /api/group_send (a courier extension): give --publisher redis-pubsub|redis-core to send raw group messages".into(),
                    )),
                    other => expect_202(other),
                }
            }
            Self::Redis(sender) => {
                let Value::Object(map) = message else {
                    return Err(NotSent::Failed("a group message must be an object".into()));
                };
                let m: GroupMessage = map;
                // The server registers a group in Redis after the connection opens, and the
                // previous check's connection of the same user may still be unregistering (the
                // channel name is per group, so its ZREM can land after the listener check).
                // Publish only once the group has had a listener for a whole settle window.
                let deadline = tokio::time::Instant::now() + REGISTER_WAIT;
                let mut since: Option<tokio::time::Instant> = None;
                loop {
                    let now = tokio::time::Instant::now();
                    let listening = sender
                        .listening(std::slice::from_ref(&group))
                        .await
                        .map_err(|e| NotSent::Failed(format!("redis: {e}")))?
                        > 0;
                    since = if listening { since.or(Some(now)) } else { None };
                    if since.is_some_and(|t| now.duration_since(t) >= SETTLE) {
                        break;
                    }
                    if now > deadline {
                        return Err(NotSent::Failed(format!(
                            "no steady listener in Redis for {} within {}",
                            group.as_str(),
                            humantime::format_duration(REGISTER_WAIT)
                        )));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                sender
                    .send_many(&[(group, m)])
                    .await
                    .map(|_| ())
                    .map_err(|e| NotSent::Failed(format!("redis group_send: {e}")))
            }
            Self::None => Err(none()),
        }
    }
}

fn none() -> NotSent {
    NotSent::Unsupported(
        "no publisher: give --api-key (HTTP) or --publisher redis-pubsub|redis-core".into(),
    )
}

fn expect_202(r: Result<u16, String>) -> Result<(), NotSent> {
    match r {
        Ok(202) => Ok(()),
        Ok(401) => Err(NotSent::Failed("HTTP 401: wrong --api-key".into())),
        Ok(s) => Err(NotSent::Failed(format!("publish answered HTTP {s}"))),
        Err(e) => Err(NotSent::Failed(format!("publish: {e}"))),
    }
}
