//! Client → server frames: header parsing (tungstenite's), unmasking, reassembly, limits.
//!
//! Bytes come from the socket into a scratch buffer shared by the thread; only an incomplete
//! frame's tail is copied into the connection's own buffer, which is released once it empties, so
//! an idle connection holds no read buffer at all. Every limit is checked before any memory is
//! committed: a frame longer than the message limit is refused from its header alone.

use std::io::Cursor;

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// What a client sent, one complete message (or control frame) at a time.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClientMessage<'a> {
    /// A text message, UTF-8 checked.
    Text(&'a str),
    /// A binary message (courier answers it with an error frame).
    Binary,
    /// A ping with its payload (answered with a pong).
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame with its code, if any.
    Close(Option<u16>),
}

/// Why the client's byte stream cannot be read on; each maps to one close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReadError {
    /// A frame or message over the size limit (1009).
    #[error("message over the size limit")]
    TooBig,
    /// A message split into more fragments than allowed (1009: a continuation flood).
    #[error("too many fragments in one message")]
    TooManyFragments,
    /// A text message that is not UTF-8 (1007).
    #[error("text message is not UTF-8")]
    InvalidUtf8,
    /// A violation of RFC 6455 framing (1002), with what it was.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

/// The reader's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReaderLimits {
    /// Largest message (and so frame) payload, bytes.
    pub max_message: usize,
    /// Most frames one fragmented message may arrive in.
    pub max_fragments: usize,
}

/// A fragmented message being reassembled.
struct Partial {
    text: bool,
    data: Vec<u8>,
    fragments: usize,
}

/// Per-connection read state: the tail of an incomplete frame, and a message in fragments.
pub(crate) struct Reader {
    limits: ReaderLimits,
    carry: Vec<u8>,
    partial: Option<Partial>,
}

/// Capacity kept in `carry` after it empties; more is given back to the allocator.
const KEEP_CARRY: usize = 0;

impl Reader {
    /// A reader with `limits`; `leftover` is what the HTTP layer read past the upgrade request.
    pub(crate) fn new(limits: ReaderLimits, leftover: &[u8]) -> Self {
        Self {
            limits,
            carry: leftover.to_vec(),
            partial: None,
        }
    }

    /// Whether bytes of an unfinished frame are waiting (the handshake's leftovers included).
    pub(crate) fn has_carry(&self) -> bool {
        !self.carry.is_empty()
    }

    /// Bytes held now: the carried frame tail, and the fragmented message's data and frame count
    /// (the fuzz targets check them against the limits).
    #[cfg(fuzzing)]
    pub(crate) fn buffered(&self) -> (usize, usize, usize) {
        let (data, fragments) = self
            .partial
            .as_ref()
            .map_or((0, 0), |p| (p.data.len(), p.fragments));
        (self.carry.len(), data, fragments)
    }

    /// Feeds bytes just read from the socket (an empty slice parses what is carried) and calls
    /// `on` for every complete message; `on` returns `false` to stop reading (a close).
    pub(crate) fn feed(
        &mut self,
        input: &mut [u8],
        mut on: impl FnMut(ClientMessage<'_>) -> bool,
    ) -> Result<(), ReadError> {
        if self.carry.is_empty() {
            let used = parse(&self.limits, &mut self.partial, input, &mut on)?;
            self.carry.extend_from_slice(&input[used..]);
        } else {
            self.carry.extend_from_slice(input);
            let mut carry = std::mem::take(&mut self.carry);
            let used = parse(&self.limits, &mut self.partial, &mut carry, &mut on);
            match used {
                Ok(used) if used == carry.len() => {
                    carry.clear();
                    if carry.capacity() > KEEP_CARRY {
                        carry = Vec::new();
                    }
                }
                Ok(used) => {
                    carry.drain(..used);
                }
                Err(e) => return Err(e),
            }
            self.carry = carry;
        }
        Ok(())
    }
}

/// Parses every complete frame at the front of `data`; returns how many bytes it consumed.
fn parse(
    limits: &ReaderLimits,
    partial: &mut Option<Partial>,
    data: &mut [u8],
    on: &mut impl FnMut(ClientMessage<'_>) -> bool,
) -> Result<usize, ReadError> {
    let mut pos = 0;
    while pos < data.len() {
        let mut cursor = Cursor::new(&data[pos..]);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(_) => return Err(ReadError::Protocol("bad frame header")),
        };
        let head_len = cursor.position() as usize;
        check_header(&header, len, limits)?;
        let len = len as usize;
        if data.len() - pos - head_len < len {
            break;
        }
        let start = pos + head_len;
        pos = start + len;
        let payload = &mut data[start..pos];
        if let Some(mask) = header.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i & 3];
            }
        }
        if !dispatch(&header, payload, limits, partial, on)? {
            return Ok(pos);
        }
    }
    Ok(pos)
}

fn check_header(header: &FrameHeader, len: u64, limits: &ReaderLimits) -> Result<(), ReadError> {
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Err(ReadError::Protocol("reserved bits set"));
    }
    if header.mask.is_none() {
        return Err(ReadError::Protocol("unmasked client frame"));
    }
    match header.opcode {
        OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
            Err(ReadError::Protocol("reserved opcode"))
        }
        OpCode::Control(_) if !header.is_final || len > 125 => {
            Err(ReadError::Protocol("fragmented or long control frame"))
        }
        _ if len > limits.max_message as u64 => Err(ReadError::TooBig),
        _ => Ok(()),
    }
}

/// Hands one unmasked frame on; returns whether to keep reading.
fn dispatch(
    header: &FrameHeader,
    payload: &[u8],
    limits: &ReaderLimits,
    partial: &mut Option<Partial>,
    on: &mut impl FnMut(ClientMessage<'_>) -> bool,
) -> Result<bool, ReadError> {
    match header.opcode {
        OpCode::Data(Data::Continue) => {
            let Some(mut p) = partial.take() else {
                return Err(ReadError::Protocol("continuation without a message"));
            };
            p.fragments += 1;
            if p.fragments > limits.max_fragments {
                return Err(ReadError::TooManyFragments);
            }
            if p.data.len() + payload.len() > limits.max_message {
                return Err(ReadError::TooBig);
            }
            p.data.extend_from_slice(payload);
            if !header.is_final {
                *partial = Some(p);
                return Ok(true);
            }
            deliver(p.text, &p.data, on)
        }
        OpCode::Data(d) => {
            if partial.is_some() {
                return Err(ReadError::Protocol("new message inside a fragmented one"));
            }
            let text = d == Data::Text;
            if header.is_final {
                return deliver(text, payload, on);
            }
            *partial = Some(Partial {
                text,
                data: payload.to_vec(),
                fragments: 1,
            });
            Ok(true)
        }
        OpCode::Control(Control::Ping) => Ok(on(ClientMessage::Ping(payload))),
        OpCode::Control(Control::Pong) => Ok(on(ClientMessage::Pong)),
        OpCode::Control(_) => {
            let code = match payload {
                [] => None,
                [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
                [_] => return Err(ReadError::Protocol("one-byte close payload")),
            };
            Ok(on(ClientMessage::Close(code)))
        }
    }
}

fn deliver(
    text: bool,
    data: &[u8],
    on: &mut impl FnMut(ClientMessage<'_>) -> bool,
) -> Result<bool, ReadError> {
    if !text {
        return Ok(on(ClientMessage::Binary));
    }
    let s = std::str::from_utf8(data).map_err(|_| ReadError::InvalidUtf8)?;
    Ok(on(ClientMessage::Text(s)))
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
