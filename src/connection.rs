//! One WebSocket connection: a reader loop (this task) and a writer task joined by the outbox.
//!
//! The writer drains its bounded queue in batches with `feed` and flushes once per batch — the flush
//! (a syscall) is the cost, not the JSON (PERFORMANCE.md: ~8× over flushing per message). The reader
//! answers echoes and errors, pings on a timer and enforces the pong deadline. Either side ends the
//! connection through [`Outbox::close`]; the writer sends the close frame.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::{sleep_until, timeout, Instant};

use crate::auth::AuthError;
use crate::directory::User;
use crate::layer::GroupName;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, OutboxRx};
use crate::protocol::{self, CloseCode};
use crate::state::AppState;

/// Frames taken off the queue per batch (one flush each).
const BATCH: usize = 128;
/// How long a close frame may take to leave when the peer is not reading.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long to wait for the peer's close reply after our close frame, before dropping TCP.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

type WsError = axum::Error;

/// Serves one upgraded socket for `user` (or closes it with 4001 if authentication failed).
///
/// Generic over the socket so tests can drive it without a network.
pub async fn run<S>(mut socket: S, state: AppState, user: Result<User, AuthError>)
where
    S: Stream<Item = Result<Message, WsError>>
        + Sink<Message, Error = WsError>
        + Send
        + Unpin
        + 'static,
{
    let metrics = state.metrics();
    let user = match user {
        Ok(u) => u,
        Err(_) => {
            metrics.handshake("unauthenticated");
            return close_now(&mut socket, CloseCode::Unauthenticated, metrics).await;
        }
    };
    if state.shutdown_token().is_cancelled() {
        metrics.handshake("shutting_down");
        return close_now(&mut socket, CloseCode::GoingAway, metrics).await;
    }
    let Some(_slot) = state.try_open() else {
        metrics.handshake("over_limit");
        return close_now(&mut socket, CloseCode::TryAgainLater, metrics).await;
    };
    // Auth already checked that the id makes a valid group name.
    let Some(group) = GroupName::for_user(&user.id) else {
        return close_now(&mut socket, CloseCode::Unauthenticated, metrics).await;
    };
    metrics.handshake("accepted");

    let cfg = state.config();
    let hub = state.hub();
    let id = hub.next_conn_id();
    let (outbox, rx) = Outbox::new(
        id,
        cfg.queue_messages,
        cfg.queue_bytes,
        state.shutdown_token(),
    );
    // Queued before joining the group, so it is always the first frame.
    outbox.push(&protocol::connection_established(
        &user.username,
        &user.id.to_json(),
    ));
    hub.group_add(&group, outbox.clone());
    tracing::debug!(conn = id, %group, "connected");

    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, rx, cfg.shutdown_timeout, state.clone()));
    let code = read_loop(&mut stream, &outbox, cfg.ping_interval, cfg.pong_timeout).await;
    if let Some(code) = code {
        outbox.close(code);
    }
    hub.group_discard(&group, id);
    let _ = writer.await;
    tracing::debug!(conn = id, ?code, "disconnected");
}

/// Reads client frames until the connection should end; returns the close code the reader
/// decided on (`Normal` when the client left), or `None` when someone else asked for the close
/// (shutdown, slow consumer) and already chose the code.
async fn read_loop<St>(
    stream: &mut St,
    outbox: &Outbox,
    ping_every: Duration,
    pong_timeout: Duration,
) -> Option<CloseCode>
where
    St: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pong_deadline: Option<Instant> = None;
    let cancelled = outbox.cancelled();
    tokio::pin!(cancelled);
    loop {
        let deadline = async {
            match pong_deadline {
                Some(d) => sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let reply = tokio::select! {
            _ = &mut cancelled => return None,
            _ = deadline => return Some(CloseCode::PingTimeout),
            _ = ping.tick() => {
                if pong_deadline.is_some() {
                    continue;
                }
                pong_deadline = Some(Instant::now() + pong_timeout);
                Message::Ping(Bytes::new())
            }
            msg = stream.next() => match msg {
                None | Some(Ok(Message::Close(_))) => return Some(CloseCode::Normal),
                Some(Err(e)) => return Some(if is_too_big(e) { CloseCode::TooBig } else { CloseCode::Normal }),
                Some(Ok(Message::Text(t))) => Message::Text(protocol::echo(&t).unwrap_or(protocol::INVALID_JSON)),
                Some(Ok(Message::Binary(_))) => Message::Text(protocol::BINARY_UNSUPPORTED),
                Some(Ok(Message::Pong(_))) => {
                    pong_deadline = None;
                    continue;
                }
                // tungstenite answers pings itself.
                Some(Ok(Message::Ping(_))) => continue,
            },
        };
        tokio::select! {
            _ = &mut cancelled => return None,
            sent = outbox.send(reply) => if !sent { return Some(CloseCode::Normal) },
        }
    }
}

fn is_too_big(e: WsError) -> bool {
    let inner = e.into_inner();
    matches!(
        inner.downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

/// Frames taken off the queue but not yet handed to the sink. Kept outside the write future so a
/// cancelled write loses nothing: the shutdown drain resumes where it stopped.
struct Pending {
    buf: Vec<Message>,
    next: usize,
}

impl Pending {
    /// Tops the batch up with what is queued now, without waiting.
    fn top_up(&mut self, rx: &mut OutboxRx) {
        while self.buf.len() < BATCH {
            match rx.rx.try_recv() {
                Ok(m) => self.buf.push(m),
                Err(_) => break,
            }
        }
    }

    /// Feeds every pending frame, then flushes once: one write syscall per batch.
    async fn write<Si>(&mut self, sink: &mut Si, outbox: &Outbox) -> Result<(), WsError>
    where
        Si: Sink<Message, Error = WsError> + Unpin,
    {
        while let Some(msg) = self.buf.get(self.next) {
            // Cloning a frame is a refcount bump; `feed` takes ownership only once ready.
            sink.feed(msg.clone()).await?;
            outbox.release(msg);
            self.next += 1;
        }
        self.buf.clear();
        self.next = 0;
        sink.flush().await
    }
}

async fn write_loop<Si>(mut sink: Si, mut rx: OutboxRx, drain: Duration, state: AppState)
where
    Si: Sink<Message, Error = WsError> + Unpin,
{
    let outbox: Arc<Outbox> = rx.shared.clone();
    // Allocated on first use and freed when the queue runs dry: an idle connection holds no batch
    // buffer (BATCH frames would be ~5 KB each, more than the rest of an idle connection).
    let mut pending = Pending {
        buf: Vec::new(),
        next: 0,
    };
    // Pinned once: re-creating `cancelled()` per batch would re-register with the token's tree
    // (a mutex) every time.
    let cancelled = outbox.cancelled();
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            biased;
            _ = &mut cancelled => break,
            first = rx.rx.recv_async() => {
                // Never disconnected while we hold `rx.shared` (it owns a sender).
                let Ok(first) = first else { break };
                // Sized to what is queued: a sparse delivery (one frame) must not pay for a
                // BATCH-sized allocation and its free.
                pending.buf.reserve((rx.rx.len() + 1).min(BATCH));
                pending.buf.push(first);
                // No `yield_now` here to let more frames gather: measured at fanout-10k it left the
                // batch size unchanged (≈ 55 frames per write) and cost server CPU.
                pending.top_up(&mut rx);
                let frames = pending.buf.len() as u64;
                let ok = tokio::select! {
                    biased;
                    r = pending.write(&mut sink, &outbox) => r.is_ok(),
                    _ = &mut cancelled => true,
                };
                if !ok {
                    return;
                }
                state.metrics().writer_batch(frames);
                if rx.rx.is_empty() {
                    pending.buf = Vec::new();
                }
            }
        }
    }
    let code = outbox.close_code().unwrap_or(CloseCode::Normal);
    match code {
        CloseCode::Normal => {
            // The client closed; tungstenite queued its close reply, which a flush sends.
            let _ = timeout(CLOSE_WRITE_TIMEOUT, sink.flush()).await;
        }
        CloseCode::GoingAway => {
            // Shutdown: deliver what is queued (bounded), then say goodbye.
            let _ = timeout(drain, async {
                loop {
                    pending.write(&mut sink, &outbox).await?;
                    pending.top_up(&mut rx);
                    if pending.buf.is_empty() {
                        return Ok::<_, WsError>(());
                    }
                }
            })
            .await;
            send_close(&mut sink, code, state.metrics()).await;
        }
        _ => send_close(&mut sink, code, state.metrics()).await,
    }
}

async fn send_close<Si>(sink: &mut Si, code: CloseCode, metrics: &Metrics)
where
    Si: Sink<Message, Error = WsError> + Unpin,
{
    metrics.close(code.code());
    let frame = CloseFrame {
        code: code.code(),
        reason: Utf8Bytes::from_static(code.reason()),
    };
    let _ = timeout(CLOSE_WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}

/// Closes a socket that never became a member (auth failure, limit, shutdown), then lingers
/// briefly for the client's close reply so the close frame is not lost to a TCP reset.
async fn close_now<S>(socket: &mut S, code: CloseCode, metrics: &Metrics)
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    send_close(socket, code, metrics).await;
    let _ = timeout(CLOSE_LINGER, async {
        while let Some(Ok(m)) = socket.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
