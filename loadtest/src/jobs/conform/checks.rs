//! The conformance checks, one per rule of PROTOCOL.md (§1 auth, §2 frames, §3 groups, §4 limits;
//! §7's positions, resume and token lifetime are in `recovery`).
//! Each opens its own connections, so one failure never hides another.

use std::time::Duration;

use serde_json::{json, Value};

use super::client::{connect, Client, Dial, Refused, Seen};
use super::publish::{EventSender, NotSent};
use crate::session::tokens::{mint_one, TokenKind};

/// base64url of `{"alg":"none","typ":"JWT"}`: an unsigned token's header.
const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

/// Every check: name and the rule it checks.
pub const CHECKS: &[(&str, &str)] = &[
    ("connection_established", "first frame: {type: connection_established, message: \"Connected as …\", user_id: <number>}, keys in that order"),
    ("echo", "a JSON object comes back as {type: echo, data: <the object>}"),
    ("echo_any_json", "arrays, numbers, strings and null are echoed as sent"),
    ("invalid_json", "invalid JSON gets {type: error, message: \"Invalid JSON\"} and the connection stays open"),
    ("binary_frame", "a binary frame gets {type: error, message: \"Binary frames are not supported\"} and the connection stays open"),
    ("event_friend_request", "notify_user friend_request arrives as {type: friend_request, data}"),
    ("event_friend_accepted", "notify_user friend_accepted arrives as {type: friend_accepted, data}"),
    ("event_new_message", "notify_user new_message arrives as {type: new_message, data}"),
    ("event_generic", "notify_user with another type T arrives as {type: T, data}"),
    ("event_notification", "group event {type: notification, notification_type: T, data} arrives as {type: T, data}"),
    ("event_notification_without_type", "group event notification without notification_type arrives as {type: notification, data}"),
    ("per_user_isolation", "an event for one user never reaches another user's connection"),
    ("multi_connection_fanout", "every connection of one user receives the user's event"),
    ("auth_missing_token", "no token: handshake completes, then close 4001"),
    ("auth_bad_signature", "a token signed with another key: close 4001"),
    ("auth_expired", "an expired token: close 4001"),
    ("auth_refresh_token", "a refresh token: close 4001"),
    ("auth_alg_none", "an unsigned (alg: none) token: close 4001"),
    ("oversized_frame", "a text frame above the size limit: close 1009"),
    // Reliable delivery (PROTOCOL.md §7, ours; in `recovery.rs`).
    ("positions", "recover=1: connection_established and every event carry offset (integer) and epoch (string); offsets grow by one per event of the user"),
    ("resume_exactly_once", "a reconnect with since/epoch gets every missed event once, in order, then live ones"),
    ("resume_unrecoverable_signalled", "an unknown epoch gets exactly one resync {reason: epoch_changed, offset: head, epoch} before anything else"),
    ("refresh_in_place", "{type: refresh, token} with a new token of the same user gets {type: refreshed, data: {exp}}, not echoed, and the connection stays open"),
    ("refresh_other_user", "a refresh with another user's token: close 4001"),
    ("expiry_close", "at the token's exp + grace the server closes 4001 \"token expired\" (run with --expiry-wait)"),
];

/// A check that did not pass.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Miss {
    /// The server did something else: what was expected and what was seen.
    Fail(String),
    /// The check could not run here (no publisher, no secret).
    Skip(String),
}

/// A check's result.
pub(crate) type Verdict = Result<(), Miss>;

/// What the checks need.
pub(crate) struct Ctx {
    /// The server: `ws[s]://…/ws/notifications/` and where that is.
    pub(crate) url: Dial,
    /// Longest wait for one expected frame or close.
    pub(crate) wait: Duration,
    /// Three users: (id, valid token).
    pub(crate) users: Vec<(u64, String)>,
    /// The HS256 secret, when tokens are minted (expired and refresh tokens need it).
    pub(crate) secret: Option<String>,
    /// How events are published.
    pub(crate) sender: EventSender,
    /// The server's incoming frame limit (the oversized frame is 1 KiB above it).
    pub(crate) max_frame_bytes: usize,
    /// `--expiry-wait`: how long past a short token's `exp` to wait for the close (`None`: the
    /// expiry check is not run).
    pub(crate) expiry_wait: Option<Duration>,
}

fn fail(expected: &str, seen: &Seen) -> Miss {
    Miss::Fail(format!("expected {expected}; observed {seen}"))
}

impl From<Refused> for Miss {
    fn from(r: Refused) -> Self {
        Miss::Fail(format!("could not connect: {r}"))
    }
}

impl From<NotSent> for Miss {
    fn from(n: NotSent) -> Self {
        match n {
            NotSent::Unsupported(why) => Miss::Skip(why),
            NotSent::Failed(why) => Miss::Fail(why),
        }
    }
}

impl From<Seen> for Miss {
    fn from(s: Seen) -> Self {
        Miss::Fail(format!("{s}"))
    }
}

impl Ctx {
    /// Opens a connection of user `u` (an index into `users`) and checks its first frame.
    async fn open(&self, u: usize) -> Result<(Client, Seen), Miss> {
        let (_, token) = &self.users[u];
        let mut c = connect(&self.url, Some(token), self.wait).await?;
        let first = c.next(self.wait).await;
        Ok((c, first))
    }

    /// Opens a connection whose first frame is `connection_established`.
    pub(super) async fn established(&self, u: usize) -> Result<Client, Miss> {
        let (c, first) = self.open(u).await?;
        match &first {
            Seen::Json(v) if v["type"] == "connection_established" => Ok(c),
            other => Err(fail("connection_established", other)),
        }
    }

    /// Expects exactly `want` as the next frame.
    async fn expect(&self, c: &mut Client, want: &Value) -> Verdict {
        match c.next(self.wait).await {
            Seen::Json(v) if &v == want => Ok(()),
            other => Err(fail(&want.to_string(), &other)),
        }
    }

    /// Sends text and expects its echo: proves the connection is open and in order.
    async fn probe(&self, c: &mut Client, tag: &str) -> Verdict {
        let msg = json!({"probe": tag});
        c.text(&msg.to_string()).await?;
        self.expect(c, &json!({"type": "echo", "data": msg})).await
    }

    /// Connects with `token` and expects the handshake to complete and a 4001 close.
    async fn expect_4001(&self, token: Option<&str>) -> Verdict {
        let mut c = match connect(&self.url, token, self.wait).await {
            Ok(c) => c,
            Err(Refused::Http(s)) => {
                return Err(Miss::Fail(format!(
                    "expected the handshake to complete, then close 4001; observed the handshake refused with HTTP {s} (a browser never sees a close code)"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        match c.next(self.wait).await {
            Seen::Closed(Some(4001), _) => Ok(()),
            other => Err(fail("close 4001", &other)),
        }
    }

    fn secret(&self) -> Result<&str, Miss> {
        self.secret.as_deref().ok_or_else(|| {
            Miss::Skip("needs --jwt-secret to mint this token (not in a --tokens-file)".into())
        })
    }

    /// Publishes with `send` to user `u` and expects `want` on one of its connections.
    async fn event(
        &self,
        u: usize,
        send: impl std::future::Future<Output = Result<(), NotSent>>,
        want: Value,
    ) -> Verdict {
        let mut c = self.established(u).await?;
        send.await?;
        let r = self.expect(&mut c, &want).await;
        c.close().await;
        r
    }
}

fn payload(name: &str) -> Value {
    json!({"check": name, "n": 1, "nested": {"list": [1, "two", null]}})
}

/// Runs the check called `name`.
pub(crate) async fn run(name: &str, ctx: &Ctx) -> Verdict {
    let id = |u: usize| ctx.users[u].0;
    match name {
        "connection_established" => {
            let (c, first) = ctx.open(0).await?;
            c.close().await;
            let Seen::Json(v) = &first else {
                return Err(fail("connection_established", &first));
            };
            let keys: Vec<&str> = v
                .as_object()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let message_ok = v["message"]
                .as_str()
                .and_then(|m| m.strip_prefix("Connected as "))
                .is_some_and(|name| !name.is_empty());
            if keys == ["type", "message", "user_id"]
                && v["type"] == "connection_established"
                && message_ok
                && v["user_id"].as_u64() == Some(id(0))
            {
                Ok(())
            } else {
                Err(fail(
                    &format!("{{\"type\":\"connection_established\",\"message\":\"Connected as …\",\"user_id\":{}}}", id(0)),
                    &first,
                ))
            }
        }
        "echo" => {
            let mut c = ctx.established(0).await?;
            let msg = payload(name);
            c.text(&msg.to_string()).await?;
            ctx.expect(&mut c, &json!({"type": "echo", "data": msg}))
                .await
        }
        "echo_any_json" => {
            let mut c = ctx.established(0).await?;
            for msg in [
                json!([1, 2, 3]),
                json!(42),
                json!("text"),
                json!(null),
                json!(-1.5),
            ] {
                c.text(&msg.to_string()).await?;
                ctx.expect(&mut c, &json!({"type": "echo", "data": msg}))
                    .await?;
            }
            Ok(())
        }
        "invalid_json" => {
            let mut c = ctx.established(0).await?;
            c.text("{not json").await?;
            ctx.expect(&mut c, &json!({"type": "error", "message": "Invalid JSON"}))
                .await?;
            ctx.probe(&mut c, "after invalid JSON").await
        }
        "binary_frame" => {
            let mut c = ctx.established(0).await?;
            c.binary(vec![0, 1, 2, 3]).await?;
            let want = json!({"type": "error", "message": "Binary frames are not supported"});
            ctx.expect(&mut c, &want).await?;
            ctx.probe(&mut c, "after a binary frame").await
        }
        "event_friend_request"
        | "event_friend_accepted"
        | "event_new_message"
        | "event_generic" => {
            let kind = match name {
                "event_generic" => "conformance_custom_event",
                other => other.trim_start_matches("event_"),
            };
            let data = payload(name);
            let want = json!({"type": kind, "data": data});
            ctx.event(0, ctx.sender.notify(id(0), kind, &data), want)
                .await
        }
        "event_notification" => {
            let data = payload(name);
            let msg = json!({"type": "notification", "notification_type": "conformance_alert", "data": data});
            let want = json!({"type": "conformance_alert", "data": data});
            ctx.event(0, ctx.sender.group_send(id(0), msg), want).await
        }
        "event_notification_without_type" => {
            let data = payload(name);
            let msg = json!({"type": "notification", "data": data});
            let want = json!({"type": "notification", "data": data});
            ctx.event(0, ctx.sender.group_send(id(0), msg), want).await
        }
        "per_user_isolation" => {
            let mut a = ctx.established(0).await?;
            let mut b = ctx.established(1).await?;
            let data = payload(name);
            ctx.sender.notify(id(0), "new_message", &data).await?;
            ctx.expect(&mut a, &json!({"type": "new_message", "data": data}))
                .await?;
            // The event reached user A; had it also been queued for B, it would come before B's echo.
            ctx.probe(&mut b, "isolation").await.map_err(|m| match m {
                Miss::Fail(f) => Miss::Fail(format!("user {}'s connection: {f}", id(1))),
                skip => skip,
            })
        }
        "multi_connection_fanout" => {
            let mut conns = Vec::new();
            for _ in 0..3 {
                conns.push(ctx.established(2).await?);
            }
            let data = payload(name);
            ctx.sender.notify(id(2), "new_message", &data).await?;
            let want = json!({"type": "new_message", "data": data});
            for (i, c) in conns.iter_mut().enumerate() {
                ctx.expect(c, &want).await.map_err(|m| match m {
                    Miss::Fail(f) => Miss::Fail(format!("connection {} of 3: {f}", i + 1)),
                    skip => skip,
                })?;
            }
            Ok(())
        }
        "auth_missing_token" => ctx.expect_4001(None).await,
        "auth_bad_signature" => {
            let token = match &ctx.secret {
                Some(s) => mint_one(&format!("{s}-not"), id(0), TokenKind::Access)
                    .map_err(|e| Miss::Fail(e.to_string()))?,
                // Keep header and claims, replace the signature.
                None => {
                    let t = &ctx.users[0].1;
                    let head = t.rsplit_once('.').map_or(t.as_str(), |(h, _)| h);
                    format!("{head}.c2lnbmVkLWJ5LXNvbWVvbmUtZWxzZQ")
                }
            };
            ctx.expect_4001(Some(&token)).await
        }
        "auth_expired" | "auth_refresh_token" => {
            let kind = if name == "auth_expired" {
                TokenKind::Expired
            } else {
                TokenKind::Refresh
            };
            let token =
                mint_one(ctx.secret()?, id(0), kind).map_err(|e| Miss::Fail(e.to_string()))?;
            ctx.expect_4001(Some(&token)).await
        }
        "auth_alg_none" => {
            let t = &ctx.users[0].1;
            let claims = t.split('.').nth(1).unwrap_or_default();
            ctx.expect_4001(Some(&format!("{ALG_NONE_HEADER}.{claims}.")))
                .await
        }
        "oversized_frame" => {
            let mut c = ctx.established(0).await?;
            let big = format!("\"{}\"", "x".repeat(ctx.max_frame_bytes + 1024));
            if let Err(seen) = c.text(&big).await {
                return Err(fail("close 1009", &seen));
            }
            match c.next(ctx.wait).await {
                Seen::Closed(Some(1009), _) => Ok(()),
                Seen::Json(v) if v["type"] == "echo" => Err(Miss::Fail(format!(
                    "expected close 1009; observed an echo of the {}-byte frame",
                    big.len()
                ))),
                other => Err(fail("close 1009", &other)),
            }
        }
        other => super::recovery::run(other, ctx)
            .await
            .unwrap_or_else(|| Err(Miss::Fail(format!("no check named {other:?}")))),
    }
}
