//! Server → client frames, encoded once: FIN + opcode, the length, the unmasked payload.

use bytes::Bytes;

/// Longest frame header a server writes: 2 bytes + an 8-byte extended length (no mask).
const MAX_HEADER: usize = 10;

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Writes the header for a final frame of `len` bytes with `opcode` at the end of `head`,
/// returning where it starts.
fn put_header(head: &mut [u8; MAX_HEADER], opcode: u8, len: usize) -> usize {
    let first = 0x80 | opcode;
    if len < 126 {
        head[8] = first;
        head[9] = len as u8;
        8
    } else if len <= usize::from(u16::MAX) {
        head[6] = first;
        head[7] = 126;
        head[8..10].copy_from_slice(&(len as u16).to_be_bytes());
        6
    } else {
        head[0] = first;
        head[1] = 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        0
    }
}

/// A frame of `opcode` around `payload` (one allocation, one copy).
fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut head = [0u8; MAX_HEADER];
    let start = put_header(&mut head, opcode, payload.len());
    let mut out = Vec::with_capacity(MAX_HEADER - start + payload.len());
    out.extend_from_slice(&head[start..]);
    out.extend_from_slice(payload);
    out.into()
}

/// A text frame of `text`.
pub(crate) fn text_frame(text: &str) -> Bytes {
    frame(OP_TEXT, text.as_bytes())
}

/// A text frame whose payload `write` serializes straight into the frame's buffer: room for the
/// longest header is left in front, and the header is written into its tail once the length is
/// known — no second copy of the payload.
pub(crate) fn text_frame_from_json(write: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    text_frame_sized(256, write)
}

/// [`text_frame_from_json`] for a payload of about `payload` bytes: the buffer is allocated to
/// fit, so a frame kept for a while (queued, or in a user's history) holds no slack.
pub(crate) fn text_frame_sized(payload: usize, write: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut buf = Vec::with_capacity(MAX_HEADER + payload);
    buf.extend_from_slice(&[0u8; MAX_HEADER]);
    write(&mut buf);
    let mut head = [0u8; MAX_HEADER];
    let start = put_header(&mut head, OP_TEXT, buf.len() - MAX_HEADER);
    buf[start..MAX_HEADER].copy_from_slice(&head[start..]);
    Bytes::from(buf).slice(start..)
}

/// A close frame with `code` and `reason` (the caller keeps the reason within 123 bytes).
pub(crate) fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    frame(OP_CLOSE, &payload)
}

/// An empty ping.
pub(crate) fn ping_frame() -> Bytes {
    Bytes::from_static(&[0x80 | OP_PING, 0])
}

/// A pong echoing `payload` (a ping's payload is at most 125 bytes).
pub(crate) fn pong_frame(payload: &[u8]) -> Bytes {
    frame(OP_PONG, payload)
}

/// The payload of a frame this module encoded (tests and benches).
pub fn payload(frame: &[u8]) -> &[u8] {
    let skip = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        Some(_) => 2,
        None => return &[],
    };
    frame.get(skip..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
    use tungstenite::protocol::frame::FrameHeader;

    fn parse(frame: &[u8]) -> (FrameHeader, u64, usize) {
        let mut c = Cursor::new(frame);
        let (h, len) = FrameHeader::parse(&mut c).unwrap().unwrap();
        (h, len, c.position() as usize)
    }

    #[test]
    fn headers_agree_with_tungstenite_at_every_length_class() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 70000] {
            let text = "x".repeat(len);
            for f in [
                text_frame(&text),
                text_frame_from_json(|b| b.extend_from_slice(text.as_bytes())),
            ] {
                let (h, n, at) = parse(&f);
                assert!(h.is_final && h.mask.is_none());
                assert_eq!(h.opcode, OpCode::Data(Data::Text));
                assert_eq!(n as usize, len);
                assert_eq!(&f[at..], text.as_bytes());
                assert_eq!(payload(&f), text.as_bytes());
            }
        }
    }

    #[test]
    fn control_frames() {
        let f = close_frame(4008, "slow consumer");
        let (h, n, at) = parse(&f);
        assert_eq!(h.opcode, OpCode::Control(Control::Close));
        assert_eq!(n, 15);
        assert_eq!(&f[at..at + 2], &4008u16.to_be_bytes());
        assert_eq!(
            parse(&ping_frame()).0.opcode,
            OpCode::Control(Control::Ping)
        );
        assert_eq!(payload(&pong_frame(b"hi")), b"hi");
    }
}
