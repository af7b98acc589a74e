//! Reader tests: client frames built by tungstenite, fed whole, split at every byte, and hostile.

use super::*;
use tungstenite::protocol::frame::Frame;

const LIMITS: ReaderLimits = ReaderLimits {
    max_message: 1024,
    max_fragments: 4,
};

fn client_frame(data: &[u8], opcode: OpCode, fin: bool) -> Vec<u8> {
    let header = FrameHeader {
        is_final: fin,
        opcode,
        mask: Some([0x11, 0x22, 0x33, 0x44]),
        ..FrameHeader::default()
    };
    let f = Frame::from_payload(header, data.to_vec().into());
    let mut out = Vec::new();
    f.format(&mut out).unwrap();
    out
}

fn text(s: &str) -> Vec<u8> {
    client_frame(s.as_bytes(), OpCode::Data(Data::Text), true)
}

#[derive(Debug, PartialEq, Clone)]
enum Got {
    Text(String),
    Binary,
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>),
}

fn feed_all(reader: &mut Reader, chunks: &[&[u8]]) -> (Vec<Got>, Result<(), ReadError>) {
    let mut got = Vec::new();
    for chunk in chunks {
        let mut buf = chunk.to_vec();
        let r = reader.feed(&mut buf, |m| {
            got.push(match m {
                ClientMessage::Text(t) => Got::Text(t.into()),
                ClientMessage::Binary => Got::Binary,
                ClientMessage::Ping(p) => Got::Ping(p.into()),
                ClientMessage::Pong => Got::Pong,
                ClientMessage::Close(c) => Got::Close(c),
            });
            true
        });
        if r.is_err() {
            return (got, r);
        }
    }
    (got, Ok(()))
}

#[test]
fn whole_and_split_at_every_byte_give_the_same_messages() {
    let mut stream = text("{\"a\":1}");
    stream.extend(client_frame(b"hi", OpCode::Control(Control::Ping), true));
    stream.extend(client_frame(b"ab", OpCode::Data(Data::Text), false));
    stream.extend(client_frame(b"cd", OpCode::Data(Data::Continue), true));
    stream.extend(client_frame(&[0xff], OpCode::Data(Data::Binary), true));
    stream.extend(client_frame(
        &4000u16.to_be_bytes(),
        OpCode::Control(Control::Close),
        true,
    ));
    let want = vec![
        Got::Text("{\"a\":1}".into()),
        Got::Ping(b"hi".to_vec()),
        Got::Text("abcd".into()),
        Got::Binary,
        Got::Close(Some(4000)),
    ];
    let (got, r) = feed_all(&mut Reader::new(LIMITS, &[]), &[&stream]);
    assert_eq!((got, r), (want.clone(), Ok(())));
    for cut in 1..stream.len() {
        let mut reader = Reader::new(LIMITS, &[]);
        let (got, r) = feed_all(&mut reader, &[&stream[..cut], &stream[cut..]]);
        assert_eq!((got, r), (want.clone(), Ok(())), "cut at {cut}");
        assert!(
            !reader.has_carry(),
            "nothing left after the last frame (cut {cut})"
        );
    }
}

#[test]
fn leftover_from_the_handshake_is_read_first() {
    let first = text("1");
    let mut reader = Reader::new(LIMITS, &first);
    let (got, _) = feed_all(&mut reader, &[&[], &text("2")]);
    assert_eq!(got, vec![Got::Text("1".into()), Got::Text("2".into())]);
}

#[test]
fn limits_are_enforced_from_the_header() {
    let big = client_frame(&vec![b'x'; 2000], OpCode::Data(Data::Text), true);
    // Only the header arrived: refused before the payload is buffered.
    let (_, r) = feed_all(&mut Reader::new(LIMITS, &[]), &[&big[..8]]);
    assert_eq!(r, Err(ReadError::TooBig));
    let mut frags = client_frame(b"a", OpCode::Data(Data::Text), false);
    for _ in 0..10 {
        frags.extend(client_frame(b"", OpCode::Data(Data::Continue), false));
    }
    let (_, r) = feed_all(&mut Reader::new(LIMITS, &[]), &[&frags]);
    assert_eq!(r, Err(ReadError::TooManyFragments));
    let mut grow = client_frame(&[b'x'; 600], OpCode::Data(Data::Text), false);
    grow.extend(client_frame(
        &[b'x'; 600],
        OpCode::Data(Data::Continue),
        true,
    ));
    let (_, r) = feed_all(&mut Reader::new(LIMITS, &[]), &[&grow]);
    assert_eq!(r, Err(ReadError::TooBig));
}

#[test]
fn hostile_frames_are_protocol_errors() {
    let unmasked = {
        let mut out = Vec::new();
        Frame::message(b"x".to_vec(), OpCode::Data(Data::Text), true)
            .format(&mut out)
            .unwrap();
        out
    };
    let mut rsv = text("x");
    rsv[0] |= 0x40;
    let mut reserved_op = text("x");
    reserved_op[0] = (reserved_op[0] & 0xf0) | 0x3;
    let long_ping = client_frame(&[0; 126], OpCode::Control(Control::Ping), true);
    let fragmented_ping = client_frame(b"", OpCode::Control(Control::Ping), false);
    let orphan = client_frame(b"x", OpCode::Data(Data::Continue), true);
    let mut nested = client_frame(b"a", OpCode::Data(Data::Text), false);
    nested.extend(text("b"));
    let one_byte_close = client_frame(&[3], OpCode::Control(Control::Close), true);
    for (name, bytes) in [
        ("unmasked", unmasked),
        ("rsv", rsv),
        ("reserved opcode", reserved_op),
        ("long ping", long_ping),
        ("fragmented ping", fragmented_ping),
        ("orphan continuation", orphan),
        ("nested", nested),
        ("one-byte close", one_byte_close),
    ] {
        let (_, r) = feed_all(&mut Reader::new(LIMITS, &[]), &[&bytes]);
        assert!(matches!(r, Err(ReadError::Protocol(_))), "{name}: {r:?}");
    }
    let bad_utf8 = client_frame(&[0xc3, 0x28], OpCode::Data(Data::Text), true);
    let (_, r) = feed_all(&mut Reader::new(LIMITS, &[]), &[&bad_utf8]);
    assert_eq!(r, Err(ReadError::InvalidUtf8));
}

#[test]
fn stops_at_a_close_and_keeps_the_rest() {
    let mut stream = client_frame(b"", OpCode::Control(Control::Close), true);
    stream.extend(text("after"));
    let mut reader = Reader::new(LIMITS, &[]);
    let mut n = 0;
    reader
        .feed(&mut stream, |_| {
            n += 1;
            false
        })
        .unwrap();
    assert_eq!(n, 1);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn any_frame() -> impl Strategy<Value = Vec<u8>> {
        (
            0u8..16,
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(op, fin, payload)| {
                // Any opcode, valid or not; masked like a client's.
                let mut f = vec![if fin { 0x80 } else { 0 } | op];
                if payload.len() < 126 {
                    f.push(0x80 | payload.len() as u8);
                } else {
                    f.push(0x80 | 126);
                    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
                }
                f.extend_from_slice(&[9, 8, 7, 6]);
                f.extend(
                    payload
                        .iter()
                        .enumerate()
                        .map(|(i, b)| b ^ [9, 8, 7, 6][i & 3]),
                );
                f
            })
    }

    fn outcome(chunks: &[Vec<u8>]) -> (Vec<Got>, Result<(), ReadError>) {
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        feed_all(&mut Reader::new(LIMITS, &[]), &refs)
    }

    proptest! {
        /// Arbitrary bytes never panic the reader, and it never reports more than it was fed.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let (got, _) = outcome(std::slice::from_ref(&bytes));
            prop_assert!(got.len() <= bytes.len());
        }

        /// However the stream is cut into reads, the reader sees the same messages and errors.
        #[test]
        fn any_split_gives_the_same_outcome(
            frames in proptest::collection::vec(any_frame(), 1..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let stream: Vec<u8> = frames.concat();
            let whole = outcome(std::slice::from_ref(&stream));
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            at.sort_unstable();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for a in at.into_iter().chain([stream.len()]) {
                chunks.push(stream[prev..a].to_vec());
                prev = a;
            }
            prop_assert_eq!(outcome(&chunks), whole);
        }
    }
}
