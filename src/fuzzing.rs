//! Thin wrappers over the internal parsers for the cargo-fuzz targets in `fuzz/`; compiled only
//! under `--cfg fuzzing`, so normal builds keep their public API.
//!
//! Each wrapper calls the very function the server uses and mirrors its `pub(crate)` types one to
//! one; no rule lives here.

use bytes::Bytes;

use crate::api::ApiError;
use crate::config::WireFormat;
use crate::layer::{GroupMessage, GroupName};
use crate::ws;

/// The client-frame reader's bounds (`ws::ReaderLimits`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message (and so frame) payload, bytes.
    pub max_message: usize,
    /// Most frames one fragmented message may arrive in.
    pub max_fragments: usize,
}

/// One client message (`ws::ClientMessage`).
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message, UTF-8 checked.
    Text(&'a str),
    /// A binary message.
    Binary,
    /// A ping with its payload.
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame with its code, if any.
    Close(Option<u16>),
}

/// Why the reader stopped (`ws::ReadError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// A frame or message over the size limit (1009).
    TooBig,
    /// A message in more fragments than allowed (1009).
    TooManyFragments,
    /// A text message that is not UTF-8 (1007).
    InvalidUtf8,
    /// An RFC 6455 framing violation (1002).
    Protocol(&'static str),
}

/// What the reader holds between reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffered {
    /// Bytes of an unfinished frame (or unread after a stop).
    pub carry: usize,
    /// Payload bytes of the fragmented message being reassembled.
    pub partial: usize,
    /// Frames that message has arrived in.
    pub fragments: usize,
}

/// The connection's client-frame reader (`ws::Reader`).
pub struct Reader(ws::Reader);

impl Reader {
    /// `ws::Reader::new`: `leftover` is what the HTTP layer read past the upgrade request.
    pub fn new(limits: Limits, leftover: &[u8]) -> Self {
        let limits = ws::ReaderLimits {
            max_message: limits.max_message,
            max_fragments: limits.max_fragments,
        };
        Self(ws::Reader::new(limits, leftover))
    }

    /// `ws::Reader::feed`: `on` returns `false` to stop (as the connection does at a close).
    pub fn feed(
        &mut self,
        input: &mut [u8],
        mut on: impl FnMut(Message<'_>) -> bool,
    ) -> Result<(), ReadError> {
        self.0
            .feed(input, |m| {
                on(match m {
                    ws::ClientMessage::Text(t) => Message::Text(t),
                    ws::ClientMessage::Binary => Message::Binary,
                    ws::ClientMessage::Ping(p) => Message::Ping(p),
                    ws::ClientMessage::Pong => Message::Pong,
                    ws::ClientMessage::Close(c) => Message::Close(c),
                })
            })
            .map_err(|e| match e {
                ws::ReadError::TooBig => ReadError::TooBig,
                ws::ReadError::TooManyFragments => ReadError::TooManyFragments,
                ws::ReadError::InvalidUtf8 => ReadError::InvalidUtf8,
                ws::ReadError::Protocol(what) => ReadError::Protocol(what),
            })
    }

    /// `ws::Reader::has_carry`.
    pub fn has_carry(&self) -> bool {
        self.0.has_carry()
    }

    /// What the reader holds now.
    pub fn buffered(&self) -> Buffered {
        let (carry, partial, fragments) = self.0.buffered();
        Buffered {
            carry,
            partial,
            fragments,
        }
    }
}

/// The channels_redis payload codec (`layer::redis::wire::codec::Codec`); errors as their text.
pub struct Codec(crate::layer::redis::wire::codec::Codec);

impl Codec {
    /// `Codec::new`: `keys` are `symmetric_encryption_keys`, `random_prefix` channels_redis's.
    pub fn new(format: WireFormat, keys: &[String], random_prefix: usize) -> Self {
        Self(crate::layer::redis::wire::codec::Codec::new(
            format,
            keys,
            random_prefix,
        ))
    }

    /// `Codec::encode`.
    pub fn encode(&self, message: &GroupMessage) -> Result<Vec<u8>, String> {
        self.0.encode(message).map_err(|e| e.to_string())
    }

    /// `Codec::decode`.
    pub fn decode(&self, payload: &[u8]) -> Result<GroupMessage, String> {
        self.0.decode(payload).map_err(|e| e.to_string())
    }
}

/// channels_redis `make_fernet`'s key derivation (`codec::derive_fernet_key`).
pub fn derive_fernet_key(secret: &str) -> String {
    crate::layer::redis::wire::codec::derive_fernet_key(secret)
}

/// A `POST /api/notify` body as the handler reads it: the batch to publish, each item as the
/// Channels message a broker layer gets and as the frame the memory layer delivers.
pub fn notify_body(body: &[u8]) -> Result<Vec<(GroupName, GroupMessage, Bytes)>, ApiError> {
    crate::api::body::notify_batch(body).map(|batch| {
        batch
            .iter()
            .map(|n| (n.group.clone(), n.message(), n.frame()))
            .collect()
    })
}
