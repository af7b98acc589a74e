//! Client WebSocket frames: arbitrary bytes as what a client sent, cut into arbitrary reads, through
//! the reader the connection uses (`ws::Reader::feed`, via `courier::fuzzing::Reader`).
//!
//! Input: byte 0 picks the limits (bits 0-2: the message limit from `MAX_MESSAGE`, bits 3-4: the
//! fragment limit from `MAX_FRAGMENTS`) and bit 7 hands the first read over as the upgrade
//! request's leftover; byte 1 (mod 8) is how many read lengths follow, one byte each; the rest is
//! the client's byte stream.
//!
//! Checked: no panic; a message over the limit, a long control frame or too many fragments is
//! never delivered; the reader never holds more bytes than it was given, nor (unless it stopped at
//! a close) more than one frame header plus one frame under the limit; and every way of cutting the
//! stream into reads gives the same messages and the same error as reading it whole.
#![no_main]

use courier::fuzzing::{Limits, Message, ReadError, Reader};
use libfuzzer_sys::fuzz_target;

const MAX_MESSAGE: [usize; 8] = [0, 1, 2, 125, 126, 127, 1024, 65536];
const MAX_FRAGMENTS: [usize; 4] = [1, 2, 4, 64];
/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;
/// RFC 6455's limit on a control frame's payload.
const MAX_CONTROL: usize = 125;

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Text(String),
    Binary,
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>),
}

/// Everything the connection would act on: the messages, then how reading ended.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    got: Vec<Got>,
    /// `Some(Ok)`: stopped at a close; `Some(Err)`: refused; `None`: input ran out.
    end: Option<Result<(), ReadError>>,
}

/// Reads `reads` the way the connection does: the first as the handshake's leftover if `leftover`,
/// then each socket read; stops at the first close (the connection then closes) or error.
fn run(limits: Limits, leftover: bool, reads: &[&[u8]]) -> Outcome {
    let (first, rest): (&[u8], &[&[u8]]) = match reads.split_first() {
        Some((first, rest)) if leftover => (first, rest),
        _ => (&[], reads),
    };
    let mut reader = Reader::new(limits, first);
    let mut got = Vec::new();
    let mut given = first.len();
    let mut delivered = 0usize;
    // The connection parses the leftover (with an empty read) only when there is one.
    let lead: &[&[u8]] = if reader.has_carry() { &[&[]] } else { &[] };
    for read in lead.iter().chain(rest) {
        let before = reader.buffered().carry;
        let mut buf = read.to_vec();
        given += read.len();
        let mut closed = false;
        let fed = reader.feed(&mut buf, |m| {
            let g = match m {
                Message::Text(t) => {
                    assert!(
                        t.len() <= limits.max_message,
                        "text over the limit delivered"
                    );
                    delivered += t.len();
                    Got::Text(t.to_owned())
                }
                Message::Binary => Got::Binary,
                Message::Ping(p) => {
                    assert!(p.len() <= MAX_CONTROL, "long ping delivered");
                    delivered += p.len();
                    Got::Ping(p.to_vec())
                }
                Message::Pong => Got::Pong,
                Message::Close(c) => {
                    closed = true;
                    Got::Close(c)
                }
            };
            got.push(g);
            !closed
        });
        assert!(
            delivered <= given,
            "delivered {delivered} payload bytes of {given} read"
        );
        let held = reader.buffered();
        assert!(
            held.carry <= before + read.len(),
            "carry grew past what was read"
        );
        assert_eq!(reader.has_carry(), held.carry > 0);
        if let Err(e) = fed {
            return Outcome {
                got,
                end: Some(Err(e)),
            };
        }
        if closed {
            return Outcome {
                got,
                end: Some(Ok(())),
            };
        }
        // Every limit is checked before memory is committed.
        assert!(
            held.carry < MAX_HEADER + limits.max_message.max(MAX_CONTROL),
            "carry {} over one frame under the limit {}",
            held.carry,
            limits.max_message
        );
        assert!(
            held.partial <= limits.max_message,
            "fragments over the limit kept"
        );
        assert!(
            held.fragments <= limits.max_fragments,
            "too many fragments kept"
        );
    }
    Outcome { got, end: None }
}

fuzz_target!(|data: &[u8]| {
    let [sel, n, rest @ ..] = data else { return };
    let limits = Limits {
        max_message: MAX_MESSAGE[usize::from(sel & 7)],
        max_fragments: MAX_FRAGMENTS[usize::from((sel >> 3) & 3)],
    };
    let n = usize::from(n % 8).min(rest.len());
    let (lens, stream) = rest.split_at(n);
    let mut reads: Vec<&[u8]> = Vec::new();
    let mut tail = stream;
    for &len in lens {
        let (read, more) = tail.split_at(usize::from(len).min(tail.len()));
        reads.push(read);
        tail = more;
    }
    reads.push(tail);

    let whole = run(limits, false, &[stream]);
    assert_eq!(
        run(limits, sel & 0x80 != 0, &reads),
        whole,
        "cut into {lens:?}"
    );
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(run(limits, false, &bytes), whole, "byte by byte");
});
