//! The WebSocket wire format as the tester's client sees it (RFC 6455 §5): server frames parsed in
//! place from one reusable buffer, pings and closes answered with masked client frames.
//!
//! Why not tungstenite's read path: it zero-fills its read buffer on every read and copies each
//! frame out of it (memset + memmove were ~15 % of the tester's CPU per delivery on fanout-10k).
//! Here the buffer is zeroed once, bytes are read into it directly, and a message is a borrowed
//! slice of it; only a partial frame at the end of a read is moved to the front. Fragmented
//! messages are assembled in a second buffer; messages are bounded by [`MAX_MESSAGE`].

use thiserror::Error;

/// Bytes read from the socket per read, and the buffer size an idle connection keeps.
/// Frames are small; 8 KiB is what the tungstenite path used too.
pub const READ_BUFFER: usize = 8 * 1024;
/// Largest message accepted (one frame, or the sum of a fragmented message's frames): 16 MiB,
/// tungstenite's default frame limit. A larger one fails the connection with [`WireError::TooLarge`].
pub const MAX_MESSAGE: usize = 16 << 20;
/// Free space below which the unread tail is moved to the front before the next read.
const MIN_READ: usize = 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// Close code reported for a close frame without a payload (RFC 6455 §7.1.5).
pub const NO_STATUS: u16 = 1005;
/// Close code the tester sends when it leaves (normal closure).
pub const NORMAL: u16 = 1000;

/// One message from the server; pings are answered inside the reader and never surface.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// A text message's bytes, not UTF-8 validated: callers validate what they read.
    Text(&'a [u8]),
    /// A binary message.
    Binary(&'a [u8]),
    /// A close frame and its code ([`NO_STATUS`] when it had none); the reply is queued.
    Close(u16),
}

/// A frame that breaks the protocol: the connection cannot go on.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum WireError {
    /// RSV bits set (no extension was negotiated).
    #[error("reserved bits set")]
    Reserved,
    /// Servers must not mask (RFC 6455 §5.1).
    #[error("masked server frame")]
    Masked,
    /// An opcode RFC 6455 does not define.
    #[error("unknown opcode {0:#x}")]
    Opcode(u8),
    /// A control frame fragmented or over 125 bytes.
    #[error("bad control frame")]
    Control,
    /// A continuation outside a fragmented message, or a new message inside one.
    #[error("bad fragmentation")]
    Fragmentation,
    /// A close frame with a 1-byte payload.
    #[error("bad close frame")]
    Close,
    /// A message over [`MAX_MESSAGE`] bytes (its announced size).
    #[error("message of {0} bytes over the {MAX_MESSAGE}-byte limit")]
    TooLarge(u64),
}

/// Reads server frames from a reusable buffer and queues the client's masked replies.
pub struct Reader {
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Size of the incomplete frame at `start`, once its header is known (to grow `buf`).
    need: usize,
    /// The fragmented message being assembled, and its opcode.
    frag: Vec<u8>,
    frag_op: Option<u8>,
    /// Client frames (pongs, close) waiting to be written.
    out: Vec<u8>,
    /// A close frame has been queued: nothing may follow it (RFC 6455 §5.5.1).
    close_sent: bool,
    /// Mask key state (xorshift64*): masking only has to be unpredictable to intermediaries,
    /// and a per-connection random seed does that without a random-number call per frame.
    mask: u64,
}

impl Reader {
    /// A reader whose masks come from `seed` (any value; zero is replaced).
    pub fn new(seed: u64) -> Self {
        Self {
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            need: 0,
            frag: Vec::new(),
            frag_op: None,
            out: Vec::new(),
            close_sent: false,
            mask: seed | 1,
        }
    }

    /// Space to read into, after moving an unread tail to the front or growing the buffer when
    /// the frame at the head needs it (the only copies the reader makes).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
            if self.buf.len() > READ_BUFFER && self.need == 0 {
                // A large frame has been consumed: give its memory back.
                self.buf.truncate(READ_BUFFER);
                self.buf.shrink_to_fit();
            }
        }
        let room = self.buf.len() - self.end;
        if self.start > 0 && (room < MIN_READ || self.start + self.need > self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.need > self.buf.len() {
            self.buf.resize(self.need, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of [`Reader::spare`] as read.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Whether unread bytes are buffered.
    pub fn has_unread(&self) -> bool {
        self.start < self.end
    }

    /// Client frames waiting to be written (pongs, the close reply).
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Forgets `n` written bytes of [`Reader::output`].
    pub fn written(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// Queues a close frame with `code` (no reason), unless one was queued already.
    pub fn queue_close(&mut self, code: u16) {
        if std::mem::replace(&mut self.close_sent, true) {
            return;
        }
        let mask = self.next_mask();
        client_frame(&mut self.out, OP_CLOSE, &code.to_be_bytes(), mask);
    }

    /// Queues a text frame (a `refresh`), unless a close was queued: nothing may follow it.
    pub fn queue_text(&mut self, payload: &[u8]) {
        if self.close_sent {
            return;
        }
        let mask = self.next_mask();
        client_frame(&mut self.out, OP_TEXT, payload, mask);
    }

    fn next_mask(&mut self) -> [u8; 4] {
        self.mask ^= self.mask >> 12;
        self.mask ^= self.mask << 25;
        self.mask ^= self.mask >> 27;
        let m = self.mask.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((m >> 32) as u32).to_ne_bytes()
    }

    /// The next complete message in the buffer (`None`: read more first). Pings are answered
    /// (a pong is queued in [`Reader::output`]) and pongs skipped.
    pub fn next_msg(&mut self) -> Result<Option<Msg<'_>>, WireError> {
        if self.frag_op.is_none() && self.frag.capacity() > READ_BUFFER {
            self.frag = Vec::new();
        }
        loop {
            let Some((op, fin, hdr, len)) = self.header()? else {
                return Ok(None);
            };
            let (p, q) = (self.start + hdr, self.start + hdr + len);
            self.start = q;
            self.need = 0;
            match (op, self.frag_op) {
                (OP_TEXT | OP_BINARY, Some(_)) => return Err(WireError::Fragmentation),
                (OP_TEXT | OP_BINARY, None) if fin => {
                    let payload = &self.buf[p..q];
                    return Ok(Some(data(op, payload)));
                }
                (OP_TEXT | OP_BINARY, None) => {
                    self.frag.clear();
                    self.frag.extend_from_slice(&self.buf[p..q]);
                    self.frag_op = Some(op);
                }
                (OP_CONTINUATION, None) => return Err(WireError::Fragmentation),
                (OP_CONTINUATION, Some(first)) => {
                    let total = self.frag.len() + len;
                    if total > MAX_MESSAGE {
                        return Err(WireError::TooLarge(total as u64));
                    }
                    self.frag.extend_from_slice(&self.buf[p..q]);
                    if fin {
                        self.frag_op = None;
                        return Ok(Some(data(first, &self.frag)));
                    }
                }
                (OP_CLOSE, _) => {
                    let code = match len {
                        0 => NO_STATUS,
                        1 => return Err(WireError::Close),
                        _ => u16::from_be_bytes([self.buf[p], self.buf[p + 1]]),
                    };
                    // Echo the code (RFC 6455 §5.5.1); 1005 is never sent on the wire.
                    self.queue_close(if code == NO_STATUS { NORMAL } else { code });
                    return Ok(Some(Msg::Close(code)));
                }
                (OP_PING, _) if self.close_sent => {}
                (OP_PING, _) => {
                    let mask = self.next_mask();
                    client_frame(&mut self.out, OP_PONG, &self.buf[p..q], mask);
                }
                (OP_PONG, _) => {}
                (other, _) => return Err(WireError::Opcode(other)),
            }
        }
    }

    /// The header of the frame at `start` — (opcode, fin, header length, payload length) — once
    /// the whole frame is buffered; `None` (and `need` set) while it is not.
    fn header(&mut self) -> Result<Option<(u8, bool, usize, usize)>, WireError> {
        let b = &self.buf[self.start..self.end];
        let [b0, b1, ..] = *b else { return Ok(None) };
        if b0 & 0x70 != 0 {
            return Err(WireError::Reserved);
        }
        if b1 & 0x80 != 0 {
            return Err(WireError::Masked);
        }
        let (op, fin) = (b0 & 0x0F, b0 & 0x80 != 0);
        let (hdr, len) = match b1 & 0x7F {
            126 if b.len() >= 4 => (4, u64::from(u16::from_be_bytes([b[2], b[3]]))),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (10, u64::from_be_bytes(n))
            }
            126 | 127 => return Ok(None),
            n => (2, u64::from(n)),
        };
        if op >= OP_CLOSE && (!fin || len > 125) {
            return Err(WireError::Control);
        }
        if len > MAX_MESSAGE as u64 {
            return Err(WireError::TooLarge(len));
        }
        let total = hdr + len as usize;
        if b.len() < total {
            self.need = total;
            return Ok(None);
        }
        Ok(Some((op, fin, hdr, len as usize)))
    }
}

fn data(op: u8, payload: &[u8]) -> Msg<'_> {
    if op == OP_TEXT {
        Msg::Text(payload)
    } else {
        Msg::Binary(payload)
    }
}

/// Appends one final, masked client frame (RFC 6455 §5.3) to `out`.
pub fn client_frame(out: &mut Vec<u8>, op: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | op);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
