//! The connect phase: paced, bounded-concurrency handshakes; each client checks its
//! `connection_established` frame. Errors are counted by class, handshake latency recorded.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::net::TcpSocket;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientError};
use super::frame;
use super::wire::Msg;
use crate::measure::{new_histogram, Live, Position};
use crate::net::{self, Stream, Tls};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub(crate) struct ConnectSpec {
    /// Server address.
    pub(crate) addr: SocketAddr,
    /// `Host` header (`host:port`).
    pub(crate) host: String,
    /// Path, e.g. `/ws/notifications/`.
    pub(crate) path: String,
    /// `wss://`: the run's TLS settings and the name the certificate must carry.
    pub(crate) tls: Option<Tls>,
    /// Source addresses to spread over (empty: the OS chooses).
    pub(crate) sources: Vec<Ipv4Addr>,
    /// Bound on connect + handshake + first frame.
    pub(crate) timeout: Duration,
    /// Fraction of slow readers; their sockets get a small receive buffer (see [`SLOW_RCVBUF`]).
    pub(crate) slow_fraction: f64,
    /// Appended to the first connect's query after the token (`&recover=1` when the run resumes).
    pub(crate) query: String,
}

/// Receive buffer of a slow reader's socket. A non-reading client with the default loopback
/// buffers would soak up about a megabyte before the server's queue ever filled; a small window
/// makes it look like a phone on a bad network.
pub(crate) const SLOW_RCVBUF: u32 = 4096;

/// An established connection and its index.
pub(crate) struct Conn {
    /// Connection index (`0..connections`).
    pub(crate) idx: usize,
    /// The connection.
    pub(crate) client: Client,
    /// The stream position `connection_established` carried (with `recover=1`).
    pub(crate) head: Option<Position>,
}

/// The result of the connect phase.
pub(crate) struct ConnectPhase {
    /// Established connections.
    pub(crate) conns: Vec<Conn>,
    /// Attempts made (fewer than planned when stopped).
    pub(crate) attempted: u64,
    /// Failed attempts.
    pub(crate) failed: u64,
    /// Failures by class (`refused`, `timeout`, `address in use`, `http 403`, …).
    pub(crate) errors: BTreeMap<String, u64>,
    /// Close codes received instead of `connection_established`.
    pub(crate) closed_by_code: BTreeMap<u16, u64>,
    /// Handshake latency (TCP connect → `connection_established`, the TLS handshake included),
    /// µs.
    pub(crate) handshake_us: Histogram<u64>,
    /// `wss://`: the TLS handshake alone (TCP connected → TLS established), µs; empty otherwise.
    pub(crate) tls_handshake_us: Histogram<u64>,
    /// How long the phase took.
    pub(crate) elapsed: Duration,
}

/// One connect's outcome.
pub(crate) enum Attempt {
    /// Established, with the position `connection_established` carried and, over TLS, how long
    /// the TLS handshake took.
    Ok(Box<Client>, Option<Position>, Option<Duration>),
    /// Failed, by class.
    Failed(String),
    /// Closed by the server with this code instead of `connection_established`.
    Closed(u16),
}

fn classify_io(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionRefused => "refused".into(),
        ErrorKind::TimedOut => "timeout".into(),
        ErrorKind::AddrInUse | ErrorKind::AddrNotAvailable => "address in use".into(),
        ErrorKind::ConnectionReset => "reset".into(),
        _ if e.raw_os_error() == Some(24) => "too many open files".into(),
        _ => format!("io: {}", e.kind()),
    }
}

fn classify_ws(e: &WsError) -> String {
    match e {
        WsError::Io(io) => net::classify_tls(io).unwrap_or_else(|| classify_io(io)),
        WsError::Http(resp) => format!("http {}", resp.status().as_u16()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".into(),
        WsError::Protocol(p) => format!("protocol: {p}"),
        other => format!("{other}"),
    }
}

/// Connects client `idx` with `token`; `query` follows the token in the URL (`&since=…`).
pub(crate) async fn connect_one(
    spec: &ConnectSpec,
    idx: usize,
    token: &str,
    query: &str,
) -> Attempt {
    let socket = match spec.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    };
    let socket = match socket {
        Ok(s) => s,
        Err(e) => return Attempt::Failed(classify_io(&e)),
    };
    if crate::plan::is_slow_index(idx, spec.slow_fraction) {
        let _ = socket.set_recv_buffer_size(SLOW_RCVBUF);
    }
    if !spec.sources.is_empty() {
        let src = spec.sources[idx % spec.sources.len()];
        if let Err(e) = socket.bind(SocketAddr::new(src.into(), 0)) {
            return Attempt::Failed(classify_io(&e));
        }
    }
    let tcp = match socket.connect(spec.addr).await {
        Ok(t) => t,
        Err(e) => return Attempt::Failed(classify_io(&e)),
    };
    let _ = tcp.set_nodelay(true);
    let (stream, tls_took) = match &spec.tls {
        None => (Stream::Plain(tcp), None),
        Some(tls) => {
            let began = Instant::now();
            match tls.handshake(tcp).await {
                Ok(s) => (s, Some(began.elapsed())),
                Err(e) => {
                    return Attempt::Failed(
                        net::classify_tls(&e).unwrap_or_else(|| classify_io(&e)),
                    )
                }
            }
        }
    };
    let scheme = if spec.tls.is_some() { "wss" } else { "ws" };
    let url = format!("{scheme}://{}{}?token={token}{query}", spec.host, spec.path);
    let request = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => return Attempt::Failed(classify_ws(&e)),
    };
    let mut client = match Client::upgrade(request, stream).await {
        Ok(c) => c,
        Err(e) => return Attempt::Failed(classify_ws(&e)),
    };
    // The first data message must be connection_established (pings before it are answered).
    loop {
        match client.next_msg() {
            Ok(Some(Msg::Text(t))) => {
                let established = std::str::from_utf8(t)
                    .ok()
                    .and_then(frame::parse)
                    .is_some_and(|f| f.kind == frame::CONNECTION_ESTABLISHED);
                let head = frame::established_head(t);
                let head = head
                    .offset
                    .zip(head.epoch)
                    .map(|(offset, epoch)| Position { offset, epoch });
                return match established {
                    true => Attempt::Ok(Box::new(client), head, tls_took),
                    false => Attempt::Failed("unexpected first frame".into()),
                };
            }
            Ok(Some(Msg::Close(code))) => {
                let _ = client.flush().await; // the close echo
                return Attempt::Closed(code);
            }
            Ok(Some(Msg::Binary(_))) => return Attempt::Failed("unexpected first frame".into()),
            Ok(None) => {}
            Err(e) => return Attempt::Failed(format!("protocol: {e}")),
        }
        match client.fill().await {
            Ok(()) => {}
            Err(ClientError::Eof) => return Attempt::Failed("closed".into()),
            Err(ClientError::Io(e)) => return Attempt::Failed(classify_io(&e)),
            Err(e) => return Attempt::Failed(format!("protocol: {e}")),
        }
    }
}

/// Connects `tokens.len()`-indexed clients: connection `i` uses `token_of(i)`.
pub(crate) async fn connect_all(
    spec: ConnectSpec,
    count: usize,
    token_of: impl Fn(usize) -> String,
    ramp_rate: Option<f64>,
    concurrency: usize,
    stop: &CancellationToken,
    live: &Live,
) -> ConnectPhase {
    let start = tokio::time::Instant::now();
    let spec = std::sync::Arc::new(spec);
    let mut phase = ConnectPhase {
        conns: Vec::with_capacity(count),
        attempted: 0,
        failed: 0,
        errors: BTreeMap::new(),
        closed_by_code: BTreeMap::new(),
        handshake_us: new_histogram(),
        tls_handshake_us: new_histogram(),
        elapsed: Duration::ZERO,
    };
    let mut set: JoinSet<(usize, Attempt, Duration)> = JoinSet::new();
    let absorb = |phase: &mut ConnectPhase,
                  r: Result<(usize, Attempt, Duration), tokio::task::JoinError>| {
        let Ok((idx, outcome, took)) = r else {
            phase.failed += 1;
            *phase.errors.entry("task panicked".into()).or_default() += 1;
            return;
        };
        match outcome {
            Attempt::Ok(client, head, tls_took) => {
                let _ = phase.handshake_us.record((took.as_micros() as u64).max(1));
                if let Some(t) = tls_took {
                    let _ = phase.tls_handshake_us.record((t.as_micros() as u64).max(1));
                }
                phase.conns.push(Conn {
                    idx,
                    client: *client,
                    head,
                });
                live.connected
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Attempt::Failed(class) => {
                phase.failed += 1;
                *phase.errors.entry(class).or_default() += 1;
                live.failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Attempt::Closed(code) => {
                phase.failed += 1;
                *phase.closed_by_code.entry(code).or_default() += 1;
                *phase.errors.entry(format!("closed {code}")).or_default() += 1;
                live.failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    for idx in 0..count {
        if let Some(rate) = ramp_rate {
            let due = start + Duration::from_secs_f64(idx as f64 / rate);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        if stop.is_cancelled() {
            break;
        }
        while set.len() >= concurrency {
            let Some(r) = set.join_next().await else {
                break;
            };
            absorb(&mut phase, r);
        }
        let (spec, token) = (spec.clone(), token_of(idx));
        phase.attempted += 1;
        set.spawn(async move {
            let began = Instant::now();
            let outcome = match tokio::time::timeout(
                spec.timeout,
                connect_one(&spec, idx, &token, &spec.query),
            )
            .await
            {
                Ok(o) => o,
                Err(_) => Attempt::Failed("timeout".into()),
            };
            (idx, outcome, began.elapsed())
        });
    }
    loop {
        let next = tokio::select! {
            r = set.join_next() => r,
            _ = stop.cancelled() => { set.abort_all(); None }
        };
        let Some(r) = next else { break };
        absorb(&mut phase, r);
    }
    phase.elapsed = start.elapsed();
    phase
}
