//! The read half of a connection: socket bytes → client messages → replies (echo, errors, pongs),
//! under a per-connection message-rate limit.

use std::cell::RefCell;
use std::io::ErrorKind;

use super::transport::Transport;
use crate::config::Config;
use crate::outbox::{Outbox, Push};
use crate::protocol::{self, CloseCode};
use crate::rate::TokenBucket;
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
    /// Keep going; `pong` if the client answered our ping, `refresh` if it sent a token refresh
    /// (the last one, if several came in one read).
    More {
        /// A pong arrived.
        pong: bool,
        /// The token of a `{"type":"refresh"}` frame (empty if it had none).
        refresh: Option<String>,
    },
    /// End the connection with this code (`None`: the socket is gone, nothing can be sent).
    Close(Option<CloseCode>),
}

/// The connection's read state.
pub(super) struct Reading {
    reader: Reader,
    /// Client messages (pings included).
    rate: TokenBucket,
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
        Self {
            reader: Reader::new(limits, leftover),
            rate: TokenBucket::new(cfg.client_message_rate, cfg.client_message_burst),
            failed: false,
        }
    }

    /// Handles client frames that arrived with the upgrade request.
    pub(super) fn parse_leftover(&mut self, out: &Outbox) -> Input {
        if !self.reader.has_carry() {
            return Input::More {
                pong: false,
                refresh: None,
            };
        }
        self.handle(&mut [], out)
    }

    /// Reads what the socket has (a few reads at most) and answers it.
    pub(super) fn read(&mut self, io: &mut Transport, out: &Outbox) -> Input {
        let (mut pong, mut refresh) = (false, None);
        for _ in 0..READS_PER_WAKE {
            match read_once(io, |bytes| self.handle(bytes, out)) {
                Got::Empty => break,
                Got::Gone => return Input::Close(None),
                Got::Read(Input::More {
                    pong: p,
                    refresh: r,
                }) => {
                    pong |= p;
                    refresh = r.or(refresh);
                }
                Got::Read(close) => return close,
            }
        }
        Input::More { pong, refresh }
    }

    fn handle(&mut self, data: &mut [u8], out: &Outbox) -> Input {
        let Self { reader, rate, .. } = self;
        let (mut pong, mut refresh) = (false, None);
        let mut end: Option<Option<CloseCode>> = None;
        let fed = reader.feed(data, |msg| {
            if !rate.allow() {
                end = Some(Some(CloseCode::RateLimited));
                return false;
            }
            let reply = match msg {
                ClientMessage::Text(t) => match protocol::refresh_request(t) {
                    // Answered by the connection once the token is checked; never echoed.
                    Some(token) => {
                        refresh = Some(token);
                        return true;
                    }
                    None => protocol::echo(t).unwrap_or_else(protocol::invalid_json),
                },
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
            None => Input::More { pong, refresh },
        }
    }

    /// While closing: reads and drops what the client sends (so a client that keeps sending does
    /// not stall the close, and its unread bytes do not turn our close into a reset), watching
    /// for its close frame unless the stream has already failed to parse.
    pub(super) fn discard(&mut self, io: &mut Transport) -> Discard {
        for _ in 0..READS_PER_WAKE {
            match read_once(io, |bytes| self.watch_for_close(bytes)) {
                Got::Empty => return Discard::Idle,
                Got::Gone | Got::Read(true) => return Discard::Gone,
                Got::Read(false) => {}
            }
        }
        Discard::More
    }

    /// Whether `bytes` (parsed only while the stream still parses) hold the client's close frame.
    fn watch_for_close(&mut self, bytes: &mut [u8]) -> bool {
        if self.failed {
            return false;
        }
        let mut closed = false;
        let fed = self.reader.feed(bytes, |m| {
            closed = matches!(m, ClientMessage::Close(_));
            !closed
        });
        self.failed = fed.is_err();
        closed
    }
}

/// One socket read into the thread's scratch buffer.
enum Got<R> {
    /// Bytes arrived; what `f` made of them.
    Read(R),
    /// Nothing to read now.
    Empty,
    /// End of stream or a socket error: nothing more will be read.
    Gone,
}

fn read_once<R>(io: &mut Transport, f: impl FnOnce(&mut [u8]) -> R) -> Got<R> {
    SCRATCH.with_borrow_mut(|buf| match io.try_read(buf) {
        Ok(0) => Got::Gone,
        Ok(n) => Got::Read(f(&mut buf[..n])),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Got::Empty,
        Err(_) => Got::Gone,
    })
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
