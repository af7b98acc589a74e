//! The read half of a connection: socket bytes → client messages → replies (echo, errors, pongs),
//! under a per-connection message-rate limit.

use std::cell::RefCell;
use std::io::ErrorKind;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::Config;
use crate::outbox::{Outbox, Push};
use crate::protocol::{self, CloseCode};
use crate::ws::{self, ClientMessage, ReadError, Reader, ReaderLimits};

/// Socket reads per wake-up before the task looks at its queue and timers again.
const READS_PER_WAKE: usize = 4;
/// The per-thread read scratch: one buffer per worker thread, never per connection.
const SCRATCH_BYTES: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_BYTES]);
}

/// What a read turned up.
pub(super) enum Input {
    /// Keep going; `pong` if the client answered our ping.
    More {
        /// A pong arrived.
        pong: bool,
    },
    /// End the connection with this code (`None`: the socket is gone, nothing can be sent).
    Close(Option<CloseCode>),
}

/// A token bucket over client messages; `rate == 0` turns it off.
struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn allow(&mut self) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The connection's read state.
pub(super) struct Reading {
    reader: Reader,
    rate: RateLimit,
    /// The byte stream could not be parsed on (a bad frame): from here on bytes are only drained,
    /// never parsed — parsing again would fail again, and closing on that failure with the
    /// client's bytes unread would turn our close frame into a TCP reset.
    failed: bool,
}

/// The close code for a stream that cannot be read on.
fn close_code(e: ReadError) -> CloseCode {
    match e {
        ReadError::TooBig | ReadError::TooManyFragments => CloseCode::TooBig,
        ReadError::InvalidUtf8 => CloseCode::InvalidPayload,
        ReadError::Protocol(_) => CloseCode::ProtocolError,
    }
}

impl Reading {
    /// Read state per `cfg`; `leftover` are bytes read past the upgrade request.
    pub(super) fn new(cfg: &Config, leftover: &[u8]) -> Self {
        let limits = ReaderLimits {
            max_message: cfg.max_frame_bytes,
            max_fragments: cfg.max_fragments,
        };
        let burst = cfg.client_message_burst as f64;
        Self {
            reader: Reader::new(limits, leftover),
            rate: RateLimit {
                rate: cfg.client_message_rate,
                burst,
                tokens: burst,
                last: Instant::now(),
            },
            failed: false,
        }
    }

    /// Handles client frames that arrived with the upgrade request.
    pub(super) fn parse_leftover(&mut self, out: &Outbox) -> Input {
        if !self.reader.has_carry() {
            return Input::More { pong: false };
        }
        self.handle(&mut [], out)
    }

    /// Reads what the socket has (a few reads at most) and answers it.
    pub(super) fn read(&mut self, sock: &TcpStream, out: &Outbox) -> Input {
        let mut pong = false;
        for _ in 0..READS_PER_WAKE {
            let step = SCRATCH.with_borrow_mut(|buf| match sock.try_read(buf) {
                Ok(0) => Some(Input::Close(None)),
                Ok(n) => Some(self.handle(&mut buf[..n], out)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                Err(_) => Some(Input::Close(None)),
            });
            match step {
                None => break,
                Some(Input::More { pong: p }) => pong |= p,
                Some(close) => return close,
            }
        }
        Input::More { pong }
    }

    fn handle(&mut self, data: &mut [u8], out: &Outbox) -> Input {
        let Self { reader, rate, .. } = self;
        let mut pong = false;
        let mut end: Option<Option<CloseCode>> = None;
        let fed = reader.feed(data, |msg| {
            if !rate.allow() {
                end = Some(Some(CloseCode::RateLimited));
                return false;
            }
            let reply = match msg {
                ClientMessage::Text(t) => protocol::echo(t).unwrap_or_else(protocol::invalid_json),
                ClientMessage::Binary => protocol::binary_unsupported(),
                ClientMessage::Ping(p) => ws::encode::pong_frame(p),
                ClientMessage::Pong => {
                    pong = true;
                    return true;
                }
                ClientMessage::Close(_) => {
                    end = Some(Some(CloseCode::Normal));
                    return false;
                }
            };
            match out.push(&reply) {
                Push::Queued => true,
                // A client that keeps sending while not reading fills its own queue.
                Push::Full => {
                    end = Some(Some(CloseCode::SlowConsumer));
                    false
                }
                Push::Closed => {
                    end = Some(None);
                    false
                }
            }
        });
        if let Err(e) = fed {
            self.failed = true;
            tracing::debug!(conn = out.id(), error = %e, "closing on a bad client frame");
            return Input::Close(Some(close_code(e)));
        }
        match end {
            Some(code) => Input::Close(code),
            None => Input::More { pong },
        }
    }

    /// While closing: reads and drops what the client sends (so a client that keeps sending does
    /// not stall the close, and its unread bytes do not turn our close into a reset), watching
    /// for its close frame unless the stream has already failed to parse.
    pub(super) fn discard(&mut self, sock: &TcpStream) -> Discard {
        for _ in 0..READS_PER_WAKE {
            let step = SCRATCH.with_borrow_mut(|buf| match sock.try_read(buf) {
                Ok(0) => Some(Discard::Gone),
                Ok(_) if self.failed => None,
                Ok(n) => {
                    let mut closed = false;
                    let fed = self.reader.feed(&mut buf[..n], |m| {
                        closed = matches!(m, ClientMessage::Close(_));
                        !closed
                    });
                    self.failed = fed.is_err();
                    closed.then_some(Discard::Gone)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => Some(Discard::Idle),
                Err(_) => Some(Discard::Gone),
            });
            if let Some(d) = step {
                return d;
            }
        }
        Discard::More
    }
}

/// What a discarding read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Discard {
    /// The client closed or hung up: nothing more will be read.
    Gone,
    /// Nothing more to read now (readiness cleared: the socket wakes the task when there is).
    Idle,
    /// The read budget ran out with bytes left: poll again after yielding.
    More,
}
