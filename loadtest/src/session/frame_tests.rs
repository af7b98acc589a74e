//! Tests of the frame parser: the fast path against serde, digits, malformed frames.

use super::*;

#[test]
fn parses_events_and_skips_padding() {
    let f = parse(r#"{"type":"loadtest","data":{"seq":3,"ts":17,"run":"ab","pad":"xxxx"}}"#)
        .expect("frame");
    assert_eq!(f.kind, "loadtest");
    let d = f.data.expect("data");
    assert_eq!((d.seq, d.ts, d.run), (3, 17, "ab"));
}

#[test]
fn parses_connection_established() {
    let f = parse(r#"{"type":"connection_established","message":"Connected as 7","user_id":7}"#)
        .expect("frame");
    assert_eq!(f.kind, CONNECTION_ESTABLISHED);
    assert!(f.data.is_none());
    assert!(event(br#"{"type":"connection_established","user_id":7}"#).is_none());
}

#[test]
fn foreign_shapes_are_none() {
    assert!(parse(r#"{"type":"echo","data":[1,2]}"#).is_none());
    assert!(parse("not json").is_none());
    assert!(event(br#"{"type":"echo","data":[1,2]}"#).is_none());
    assert!(event(b"not json").is_none());
}

/// Every frame below must give the serde answer; `fast` says whether the fast path took it.
fn agree(text: &str, fast: bool) -> Option<Received<'_>> {
    let slow = parse(text).and_then(|f| f.data).map(Received::from);
    assert_eq!(
        fast_event(text.as_bytes()).is_some(),
        fast,
        "fast path on {text}"
    );
    let got = event(text.as_bytes());
    assert_eq!(got, slow, "fast and slow paths disagree on {text}");
    got
}

#[test]
fn fast_path_takes_the_testers_own_frames() {
    let d = agree(
        r#"{"type":"loadtest","data":{"seq":42,"ts":1700000000123456789,"run":"0123456789ab","pad":"xxxx"}}"#,
        true,
    );
    assert_eq!(
        d,
        Some(Received {
            seq: 42,
            ts: 1_700_000_000_123_456_789,
            run: b"0123456789ab"
        })
    );
}

#[test]
fn fast_path_takes_python_json_dumps_spacing() {
    // Django's reference: `json.dumps` puts a space after `:` and `,`.
    let d = agree(
        r#"{"type": "loadtest", "data": {"seq": 7, "ts": 99, "run": "r1", "pad": "xx"}}"#,
        true,
    );
    assert_eq!(d.map(|d| (d.seq, d.ts, d.run)), Some((7, 99, &b"r1"[..])));
}

#[test]
fn foreign_run_ids_are_read_not_matched() {
    let d = agree(
        r#"{"type":"loadtest","data":{"seq":1,"ts":2,"run":"another-run","pad":""}}"#,
        true,
    );
    assert_eq!(d.map(|d| d.run), Some(&b"another-run"[..]));
}

#[test]
fn odd_shapes_fall_back_to_serde() {
    // Escaped run id, float, negative, overflow, key order with run first, missing key.
    agree(
        r#"{"type":"loadtest","data":{"seq":1,"ts":2,"run":"a\"b"}}"#,
        false,
    );
    agree(
        r#"{"type":"loadtest","data":{"seq":1.5,"ts":2,"run":"a"}}"#,
        false,
    );
    agree(
        r#"{"type":"loadtest","data":{"seq":-1,"ts":2,"run":"a"}}"#,
        false,
    );
    agree(
        r#"{"type":"loadtest","data":{"seq":99999999999999999999999,"ts":2,"run":"a"}}"#,
        false,
    );
    agree(r#"{"type":"loadtest","data":{"seq":1,"run":"a"}}"#, false);
    let d = agree(
        r#"{"type":"loadtest","data":{"run":"a","ts":2,"seq":3}}"#,
        true,
    );
    assert_eq!(d.map(|d| d.seq), Some(3));
}

#[test]
fn malformed_bytes_are_never_events() {
    // Invalid UTF-8 in the run id can never equal a run id (a `str`), elsewhere it is
    // rejected (serde's path).
    let bad_run = b"{\"type\":\"loadtest\",\"data\":{\"seq\":1,\"ts\":2,\"run\":\"a\xffb\"}}";
    let got = event(bad_run).expect("read");
    assert!(std::str::from_utf8(got.run).is_err(), "never a run's id");
    let bad_key =
        b"{\"type\":\"loadtest\",\"data\":{\"s\xffq\":1,\"seq\":1,\"ts\":2,\"run\":\"ab\"}}";
    assert!(event(bad_key).is_none());
    let bad_value =
        b"{\"type\":\"loadtest\",\"data\":{\"k\":\"\xff\",\"seq\":1,\"ts\":2,\"run\":\"ab\"}}";
    assert!(event(bad_value).is_none());
    let bad_escape = b"{\"type\":\"loadtest\",\"data\":{\"seq\":1,\"ts\":2,\"run\":\"a\\\xff\"}}";
    assert!(event(bad_escape).is_none());
    // A frame cut before its three members are complete is never an event.
    let whole = br#"{"type":"loadtest","data":{"seq":12,"ts":34,"run":"ab"}}"#;
    let run_end = whole.len() - 2;
    for end in 0..run_end {
        assert!(event(&whole[..end]).is_none(), "cut at {end}");
    }
    assert!(event(whole).is_some());
}

#[test]
fn numbers_agree_with_str_parse() {
    let mut values = vec![
        0u64,
        1,
        9,
        10,
        99_999_999,
        100_000_000,
        u64::MAX,
        u64::MAX - 1,
    ];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for digits in 1..=20u32 {
        for _ in 0..50 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(if digits == 20 {
                x | (1 << 63)
            } else {
                x % 10u64.pow(digits)
            });
        }
    }
    for v in values {
        let text = format!("{v},");
        assert_eq!(
            number_at(text.as_bytes(), 0),
            Some((v, text.len() - 1)),
            "{v}"
        );
        let closed = format!("{v}}}");
        assert_eq!(
            number_at(closed.as_bytes(), 0),
            Some((v, closed.len() - 1)),
            "{v}"
        );
    }
    for bad in [
        "18446744073709551616,",
        "99999999999999999999,",
        "123456789012345678901,",
        "1x",
        "",
        ",",
    ] {
        assert_eq!(number_at(bad.as_bytes(), 0), None, "{bad}");
    }
}

#[test]
fn data_is_found_past_lookalikes() {
    // The usual shape is matched as such; otherwise the first occurrence, even as a value
    // (the fast path then fails and serde decides).
    assert_eq!(find_data(br#"{"type":"data","data":1}"#), Some(15));
    assert_eq!(find_data(br#"{"kind":"data","data":1}"#), Some(8));
    let d = agree(r#"{"type":"data","data":{"seq":1,"ts":2,"run":"a"}}"#, true);
    assert_eq!(d.map(|d| d.seq), Some(1));
    assert_eq!(find_data(br#"{"type":"x","dat":1,"data":1}"#), Some(20));
    assert_eq!(find_data(br#"{"type":"x"}"#), None);
    assert_eq!(find_data(b"\"dat"), None);
}

#[test]
fn leading_digits_match_a_plain_count() {
    for c in 0..=255u8 {
        for pos in 0..8 {
            for tail in [b'7', b',', 0xFF, 0xFA, b'/', b':'] {
                let mut bytes = *b"98765432";
                bytes[pos] = c;
                if pos < 7 {
                    bytes[pos + 1] = tail;
                }
                let plain = bytes.iter().take_while(|c| c.is_ascii_digit()).count();
                let got = leading_digits(u64::from_le_bytes(bytes));
                assert_eq!(got, plain, "{bytes:?}");
            }
        }
    }
}

#[test]
fn the_compact_layout_and_the_member_loop_agree() {
    for text in [
        r#"{"type":"loadtest","data":{"seq":1,"ts":2,"run":"ab","pad":"x"}}"#,
        r#"{"type":"loadtest","data":{"seq":18446744073709551615,"ts":0,"run":""}}"#,
        r#"{"type":"loadtest","data":{"seq":1,"ts":2,"run":"a\"b"}}"#,
        r#"{"type":"loadtest","data":{"seq":1,"ts":2.5,"run":"a"}}"#,
        r#"{"type":"loadtest","data":{"seq":1,"ts":2}}"#,
    ] {
        let b = text.as_bytes();
        let at = find_data(b).expect("data") + DATA.len();
        if let Some(d) = compact_event(b, at) {
            assert_eq!(Some(d), agree(text, true), "{text}");
        } else {
            agree(text, false);
        }
    }
}

#[test]
fn resync_frames_are_told_apart() {
    let resync = br#"{"type":"resync","data":{"reason":"epoch_changed","offset":9,"epoch":"e2"}}"#;
    assert_eq!(kind(resync), Some(RESYNC));
    let head = resync_head(resync);
    assert_eq!((head.offset, head.epoch.as_deref()), (Some(9), Some("e2")));
    let bare = br#"{"type":"resync","data":{"reason":"broker_reconnected"}}"#;
    assert_eq!(resync_head(bare).offset, None);
    assert_eq!(
        kind(br#"{"type":"notification","data":{}}"#),
        Some("notification")
    );
    assert_eq!(kind(b"not json"), None);
}

#[test]
fn positions_are_read_from_the_end_of_an_event() {
    let e = br#"{"type":"new_message","data":{"seq":3,"ts":1,"run":"r","pad":"\"offset\":1"},"offset":42,"epoch":"k3Jq"}"#;
    assert_eq!(position(e), Some((42, &b"k3Jq"[..])));
    assert_eq!(
        event(e).map(|d| d.seq),
        Some(3),
        "the event itself still reads"
    );
    assert_eq!(
        position(br#"{"type":"new_message","data":{"seq":3}}"#),
        None
    );
    let est =
        br#"{"type":"connection_established","message":"m","user_id":1,"offset":7,"epoch":"e"}"#;
    let head = established_head(est);
    assert_eq!((head.offset, head.epoch.as_deref()), (Some(7), Some("e")));
}
