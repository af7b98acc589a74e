//! Unit tests of the frame reader and the client frame writer, on hand-built frames.

use super::*;

/// An unmasked server frame.
fn server_frame(op: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | op];
    match payload.len() {
        n @ 0..=125 => f.push(n as u8),
        n @ 126..=0xFFFF => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// Feeds `bytes` in reads of at most `chunk` bytes, collecting every message as owned data.
fn feed(r: &mut Reader, bytes: &[u8], chunk: usize) -> Result<Vec<(u8, Vec<u8>)>, WireError> {
    let mut got = Vec::new();
    let mut rest = bytes;
    loop {
        while let Some(m) = r.next_msg()? {
            got.push(match m {
                Msg::Text(t) => (OP_TEXT, t.to_vec()),
                Msg::Binary(b) => (OP_BINARY, b.to_vec()),
                Msg::Close(c) => (OP_CLOSE, c.to_be_bytes().to_vec()),
            });
        }
        if rest.is_empty() {
            return Ok(got);
        }
        let spare = r.spare();
        let n = spare.len().min(chunk).min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        r.filled(n);
        rest = &rest[n..];
    }
}

/// Unmasks the client frames in `out`: (opcode, payload) each, checking FIN and the mask bit.
fn client_frames(mut out: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !out.is_empty() {
        assert_eq!(out[0] & 0xF0, 0x80, "final, no RSV");
        assert_eq!(out[1] & 0x80, 0x80, "client frames are masked");
        let (hdr, len) = match out[1] & 0x7F {
            126 => (4, u16::from_be_bytes([out[2], out[3]]) as usize),
            127 => (
                10,
                u64::from_be_bytes(out[2..10].try_into().expect("8")) as usize,
            ),
            n => (2, n as usize),
        };
        let mask = &out[hdr..hdr + 4];
        let payload = out[hdr + 4..hdr + 4 + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        frames.push((out[0] & 0x0F, payload));
        out = &out[hdr + 4 + len..];
    }
    frames
}

#[test]
fn reads_frames_split_at_every_boundary() {
    let mut wire = server_frame(OP_TEXT, true, b"{\"seq\":1}");
    wire.extend(server_frame(OP_BINARY, true, &[0, 1, 2]));
    wire.extend(server_frame(OP_TEXT, true, &[b'x'; 300])); // 16-bit length
    wire.extend(server_frame(OP_TEXT, true, b""));
    for chunk in [1, 2, 3, 7, 64, 4096] {
        let got = feed(&mut Reader::new(7), &wire, chunk).expect("valid frames");
        assert_eq!(
            got,
            vec![
                (OP_TEXT, b"{\"seq\":1}".to_vec()),
                (OP_BINARY, vec![0, 1, 2]),
                (OP_TEXT, vec![b'x'; 300]),
                (OP_TEXT, vec![]),
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn many_small_frames_reuse_one_buffer() {
    let one = server_frame(OP_TEXT, true, &[b'e'; 150]);
    let wire: Vec<u8> = std::iter::repeat_n(one, 1000).flatten().collect();
    let mut r = Reader::new(1);
    let got = feed(&mut r, &wire, READ_BUFFER).expect("valid");
    assert_eq!(got.len(), 1000);
    assert_eq!(r.buf.len(), READ_BUFFER, "no growth for small frames");
}

#[test]
fn large_frames_grow_the_buffer_then_give_it_back() {
    let big: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
    let mut wire = server_frame(OP_BINARY, true, &big); // 64-bit length
    wire.extend(server_frame(OP_TEXT, true, b"after"));
    let mut r = Reader::new(3);
    let got = feed(&mut r, &wire, 64 * 1024).expect("valid");
    assert_eq!(got, vec![(OP_BINARY, big), (OP_TEXT, b"after".to_vec())]);
    let _ = r.spare();
    assert_eq!(r.buf.len(), READ_BUFFER, "memory given back once consumed");
}

#[test]
fn fragmented_messages_are_assembled_and_pings_between_answered() {
    let mut wire = server_frame(OP_TEXT, false, b"hel");
    wire.extend(server_frame(OP_PING, true, b"are you there"));
    wire.extend(server_frame(OP_CONTINUATION, false, b"lo "));
    wire.extend(server_frame(OP_PONG, true, b"ignored"));
    wire.extend(server_frame(OP_CONTINUATION, true, b"world"));
    wire.extend(server_frame(OP_TEXT, true, b"next"));
    for chunk in [1, 5, 4096] {
        let mut r = Reader::new(9);
        let got = feed(&mut r, &wire, chunk).expect("valid");
        assert_eq!(
            got,
            vec![
                (OP_TEXT, b"hello world".to_vec()),
                (OP_TEXT, b"next".to_vec())
            ]
        );
        assert_eq!(
            client_frames(r.output()),
            vec![(OP_PONG, b"are you there".to_vec())]
        );
    }
}

#[test]
fn close_frames_report_their_code_and_queue_the_echo() {
    let mut r = Reader::new(5);
    let got = feed(
        &mut r,
        &server_frame(OP_CLOSE, true, &[0x0F, 0xA8, b'!']),
        4096,
    );
    assert_eq!(got, Ok(vec![(OP_CLOSE, 4008u16.to_be_bytes().to_vec())]));
    assert_eq!(
        client_frames(r.output()),
        vec![(OP_CLOSE, 4008u16.to_be_bytes().to_vec())]
    );
    r.written(r.output().len());
    assert!(r.output().is_empty());

    let mut r = Reader::new(5);
    let got = feed(&mut r, &server_frame(OP_CLOSE, true, b""), 4096);
    assert_eq!(got, Ok(vec![(OP_CLOSE, NO_STATUS.to_be_bytes().to_vec())]));
    assert_eq!(
        client_frames(r.output()),
        vec![(OP_CLOSE, NORMAL.to_be_bytes().to_vec())],
        "1005 is never sent"
    );
}

#[test]
fn protocol_violations_are_errors() {
    let masked = {
        let mut f = server_frame(OP_TEXT, true, b"abcd");
        f[1] |= 0x80;
        f.splice(2..2, [0, 0, 0, 0]);
        f
    };
    let reserved = {
        let mut f = server_frame(OP_TEXT, true, b"x");
        f[0] |= 0x40;
        f
    };
    let huge = {
        let mut f = vec![0x80 | OP_BINARY, 127];
        f.extend_from_slice(&(MAX_MESSAGE as u64 + 1).to_be_bytes());
        f
    };
    let too_long_in_fragments = {
        let part = vec![0u8; MAX_MESSAGE / 2 + 1];
        let mut f = server_frame(OP_BINARY, false, &part);
        f.extend(server_frame(OP_CONTINUATION, true, &part));
        f
    };
    let cases: Vec<(Vec<u8>, WireError)> = vec![
        (masked, WireError::Masked),
        (reserved, WireError::Reserved),
        (server_frame(0x3, true, b""), WireError::Opcode(3)),
        (server_frame(OP_PING, false, b""), WireError::Control),
        (server_frame(OP_PING, true, &[0; 126]), WireError::Control),
        (
            server_frame(OP_CONTINUATION, true, b"x"),
            WireError::Fragmentation,
        ),
        (
            [
                server_frame(OP_TEXT, false, b"a"),
                server_frame(OP_TEXT, true, b"b"),
            ]
            .concat(),
            WireError::Fragmentation,
        ),
        (server_frame(OP_CLOSE, true, &[3]), WireError::Close),
        (huge, WireError::TooLarge(MAX_MESSAGE as u64 + 1)),
        (
            too_long_in_fragments,
            WireError::TooLarge(2 * (MAX_MESSAGE as u64 / 2 + 1)),
        ),
    ];
    for (wire, want) in cases {
        assert_eq!(
            feed(&mut Reader::new(1), &wire, 1 << 20),
            Err(want.clone()),
            "{want}"
        );
    }
}

#[test]
fn client_frames_are_masked_with_changing_keys_and_one_close() {
    let mut r = Reader::new(42);
    let pings = [
        server_frame(OP_PING, true, b"a"),
        server_frame(OP_PING, true, b"b"),
    ]
    .concat();
    feed(&mut r, &pings, 4096).expect("pings");
    r.queue_close(1000);
    r.queue_close(1001); // nothing may follow a close
    feed(&mut r, &server_frame(OP_PING, true, b"late"), 4096).expect("ping after close");
    let frames = client_frames(r.output());
    assert_eq!(
        frames,
        vec![
            (OP_PONG, b"a".to_vec()),
            (OP_PONG, b"b".to_vec()),
            (OP_CLOSE, 1000u16.to_be_bytes().to_vec()),
        ]
    );
    let out = r.output();
    assert_ne!(out[2..6], out[9..13], "a fresh mask key per frame");
    let mut long = Vec::new();
    client_frame(&mut long, OP_BINARY, &[7; 70_000], [1, 2, 3, 4]);
    assert_eq!(client_frames(&long), vec![(OP_BINARY, vec![7; 70_000])]);
}
