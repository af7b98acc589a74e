//! One WebSocket connection: a single task that writes queued frames, reads client frames, pings,
//! and closes — with a bounded linger so a stalled client still gets its close frame.
//!
//! One task instead of a reader and a writer: half the task memory, no cross-task wake between
//! the halves, and the socket is touched by exactly one task. The hub never waits on it: it pushes
//! into the [`Outbox`] and wakes the task only when the task is parked.

mod lifetime;
mod reading;
mod transport;
mod writer;

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{sleep_until, Instant};

use crate::auth::{AuthError, UserId};
use crate::directory::User;
use crate::history::{Position, Recover};
use crate::hub::Refused;
use crate::layer::GroupName;
use crate::outbox::{Limits, Outbox, Push};
use crate::protocol::{self, CloseCode};
use crate::state::AppState;
use crate::ws;

use lifetime::Lifetime;
use reading::{Discard, Input, Reading};
pub(crate) use transport::Transport;
use writer::Writer;

/// After our close frame is out, how long to wait for the client's close reply (or EOF) before
/// dropping TCP, so the frame is not lost to a reset. Within the linger bound.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(2);

/// A client that passed the handshake's checks.
pub(crate) struct Admitted {
    /// Who it is.
    pub(crate) user: User,
    /// Its token's `exp` (Unix seconds).
    pub(crate) exp: f64,
    /// The positions it asked for (`recover=1`, `since=`).
    pub(crate) recover: Recover,
}

/// Serves one upgraded socket for `user` (closing it at once with 4001 if authentication failed).
pub(crate) async fn run(
    io: Transport,
    leftover: Bytes,
    state: AppState,
    user: Result<Admitted, AuthError>,
) {
    let cfg = state.config();
    let hub = state.hub();
    let metrics = state.metrics();
    let limits = Limits {
        max_frames: cfg.queue_messages,
        max_bytes: cfg.queue_bytes,
    };
    let out = Arc::new(Outbox::new(hub.next_conn_id(), limits));
    let mut conn = Conn {
        io,
        reading: Reading::new(cfg, &leftover),
        writer: Writer::default(),
        out,
        state: state.clone(),
    };
    let refused = match &user {
        Err(_) => Some((CloseCode::Unauthenticated, "unauthenticated")),
        Ok(_) if state.shutdown_token().is_cancelled() => {
            Some((CloseCode::GoingAway, "shutting_down"))
        }
        Ok(_) => None,
    };
    if let Some((code, result)) = refused {
        metrics.handshake(result);
        return conn.close(code).await;
    }
    let Some(_slot) = state.try_open() else {
        metrics.handshake("over_limit");
        return conn.close(CloseCode::TryAgainLater).await;
    };
    let Ok(Admitted { user, exp, recover }) = user else {
        return;
    };
    // Auth already checked that the id makes a valid group name.
    let Some(group) = GroupName::for_user(&user.id) else {
        return conn.close(CloseCode::Unauthenticated).await;
    };
    // Queued as the group is joined, so it is always the first frame; then any replay.
    let welcome = |at: Option<&Position>| {
        let user_id = user.id.to_json();
        Some(protocol::connection_established(
            &user.username,
            &user_id,
            at,
        ))
    };
    let max = cfg.max_connections_per_user;
    let joined = hub
        .join(&group, conn.out.clone(), max, &recover, welcome)
        .await;
    if let Err(Refused::Full) = joined {
        metrics.handshake("user_limit");
        return conn.close(CloseCode::TooManyConnections).await;
    }
    // Shutdown closes every hub member; one that joined just after that sweep closes itself.
    if state.shutdown_token().is_cancelled() {
        conn.out.close(CloseCode::GoingAway);
    }
    metrics.handshake("accepted");
    tracing::debug!(conn = conn.out.id(), %group, "connected");
    let mut lifetime = Lifetime::new(&state, exp);
    let code = conn.serve(&user.id, &mut lifetime).await;
    hub.group_discard(&group, conn.out.id());
    if let Some(code) = code {
        conn.close(code).await;
    }
    tracing::debug!(conn = conn.out.id(), ?code, "disconnected");
}

/// What woke the open phase.
enum Wake {
    /// A close was asked for (by the hub or shutdown).
    Close(CloseCode),
    /// The socket is gone (write error): nothing more can be sent.
    Gone,
    /// The client sent something.
    Readable,
    /// The ping or pong timer fired.
    Timer,
}

struct Conn {
    /// The socket, plain or TLS: only this task reads and writes it.
    io: Transport,
    reading: Reading,
    writer: Writer,
    out: Arc<Outbox>,
    state: AppState,
}

impl Conn {
    /// The open phase: until a close is asked for or the socket is gone. Returns the close code
    /// to send, or `None` when nothing can be sent any more.
    async fn serve(&mut self, user: &UserId, lifetime: &mut Lifetime) -> Option<CloseCode> {
        let state = self.state.clone();
        let cfg = state.config();
        let metrics = state.metrics();
        let mut next_ping = Instant::now() + cfg.ping_interval;
        let mut pong_deadline: Option<Instant> = None;
        let next_timer = |ping: Instant, pong: Option<Instant>, expiry: Option<Instant>| {
            [pong, expiry]
                .into_iter()
                .flatten()
                .fold(ping, Instant::min)
        };
        let timer = sleep_until(next_timer(next_ping, None, lifetime.deadline));
        tokio::pin!(timer);
        // Bytes the HTTP layer read past the upgrade request are client frames.
        if let Input::Close(code) = self.reading.parse_leftover(&self.out) {
            return code;
        }
        loop {
            let wake = poll_fn(|cx| {
                // Checked first: a close asked for while the socket is full must not wait for
                // the socket (the outbox wakes the task for it).
                if let Some(code) = self.out.closing() {
                    return Poll::Ready(Wake::Close(code));
                }
                match self.writer.poll_flush(cx, &mut self.io, &self.out, metrics) {
                    Poll::Ready(Ok(code)) => return Poll::Ready(Wake::Close(code)),
                    Poll::Ready(Err(_)) => return Poll::Ready(Wake::Gone),
                    Poll::Pending => {}
                }
                if self.io.poll_read_ready(cx).is_ready() {
                    return Poll::Ready(Wake::Readable);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Timer);
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Close(code) => return Some(code),
                Wake::Gone => return None,
                Wake::Readable => match self.reading.read(&mut self.io, &self.out) {
                    Input::More { pong, refresh } => {
                        if pong {
                            pong_deadline = None;
                        }
                        if let Some(token) = refresh {
                            let Ok(reply) = lifetime.refresh(&state, user, &token).await else {
                                return Some(CloseCode::Unauthenticated);
                            };
                            if self.out.push(&reply) == Push::Full {
                                return Some(CloseCode::SlowConsumer);
                            }
                            let at = next_timer(next_ping, pong_deadline, lifetime.deadline);
                            timer.as_mut().reset(at);
                        }
                    }
                    Input::Close(code) => return code,
                },
                Wake::Timer => {
                    let now = Instant::now();
                    if lifetime.deadline.is_some_and(|d| d <= now) {
                        return Some(CloseCode::TokenExpired);
                    }
                    if pong_deadline.is_some_and(|d| d <= now) {
                        return Some(CloseCode::PingTimeout);
                    }
                    if next_ping <= now {
                        next_ping = now + cfg.ping_interval;
                        if pong_deadline.is_none() {
                            pong_deadline = Some(now + cfg.pong_timeout);
                            if self.out.push(&ws::ping_frame()) == Push::Full {
                                return Some(CloseCode::SlowConsumer);
                            }
                        }
                    }
                    timer
                        .as_mut()
                        .reset(next_timer(next_ping, pong_deadline, lifetime.deadline));
                }
            }
        }
    }

    /// Sends the close frame for `code` and drops the connection, all within bounds: a draining
    /// close (shutdown) first writes what is queued (bounded by the shutdown timeout); a stalled
    /// client has the whole linger to start reading again and still receive the frame.
    async fn close(&mut self, code: CloseCode) {
        let state = self.state.clone();
        let cfg = state.config();
        self.out.close(code);
        // `courier_closes_total` counts the server's own decisions; 1000 answers the client's.
        if code != CloseCode::Normal {
            self.state.metrics().close(code.code());
        }
        let frame = ws::close_frame(code.code(), code.reason());
        if code.drains_queue() {
            let drained = tokio::time::timeout(cfg.shutdown_timeout, self.drain_queue()).await;
            if !matches!(drained, Ok(true)) {
                return;
            }
            self.writer.append(&self.out, frame);
        } else {
            self.writer.replace_with(&self.out, frame);
        }
        let linger_end = Instant::now() + cfg.close_linger;
        let sent = tokio::time::timeout_at(linger_end, self.write_and_discard_reads()).await;
        if matches!(sent, Ok(true)) {
            // TLS: close_notify after the close frame, so the client sees a clean end.
            self.io.close_notify();
            let _ = tokio::time::timeout_at(linger_end, poll_fn(|cx| self.io.poll_flush(cx))).await;
        }
        if matches!(sent, Ok(true)) && code != CloseCode::Normal {
            let wait = (Instant::now() + CLOSE_REPLY_WAIT).min(linger_end);
            let _ = tokio::time::timeout_at(wait, self.await_peer_close()).await;
        }
    }

    /// Writes every queued frame; false if the socket failed.
    async fn drain_queue(&mut self) -> bool {
        poll_fn(|cx| self.writer.poll_drain_queue(cx, &mut self.io, &self.out))
            .await
            .is_ok()
    }

    /// Writes the batch (ending in the close frame) while reading and discarding what the client
    /// sends, so a client that only sends does not stall its own close; false if the socket died.
    async fn write_and_discard_reads(&mut self) -> bool {
        poll_fn(|cx| {
            // Until the socket is not readable: only a pending poll registers the read waker
            // (an `Idle` discard cleared readiness, so the next poll does).
            while self.io.poll_read_ready(cx).is_ready() {
                match self.reading.discard(&mut self.io) {
                    // The client is gone: nothing more can be delivered.
                    Discard::Gone => return Poll::Ready(false),
                    Discard::More => {
                        cx.waker().wake_by_ref();
                        break;
                    }
                    Discard::Idle => {}
                }
            }
            self.writer
                .poll_drain(cx, &mut self.io, &self.out)
                .map(|r| r.is_ok())
        })
        .await
    }

    /// Waits for the client's close frame or EOF, discarding everything else.
    async fn await_peer_close(&mut self) {
        poll_fn(|cx| loop {
            match self.io.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => match self.reading.discard(&mut self.io) {
                    Discard::Gone => return Poll::Ready(()),
                    Discard::Idle => continue,
                    Discard::More => {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                },
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    }
}
