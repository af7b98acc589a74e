//! Positions, streams and resume: the rules, tested on their own.

use super::*;
use std::time::Duration;

fn cfg(size: usize) -> HistoryConfig {
    HistoryConfig {
        size,
        ttl: Duration::from_secs(300),
        ..HistoryConfig::default()
    }
}

fn event(i: u64) -> Bytes {
    protocol::frame("e", &serde_json::json!(i))
}

fn data_of(frames: &[Bytes]) -> Vec<(u64, u64)> {
    frames
        .iter()
        .map(|f| {
            let v: serde_json::Value = serde_json::from_str(protocol::frame_text(f)).expect("JSON");
            (v["data"].as_u64().unwrap(), v["offset"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn query_strings_name_the_recovery_asked_for() {
    assert_eq!(Recover::from_query(None), Recover::No);
    assert_eq!(Recover::from_query(Some("token=x")), Recover::No);
    assert_eq!(
        Recover::from_query(Some("token=x&recover=1")),
        Recover::Fresh
    );
    assert_eq!(
        Recover::from_query(Some("since=7&epoch=ab12")),
        Recover::Since(Position {
            offset: 7,
            epoch: "ab12".into()
        })
    );
    for bad in [
        "since=7",
        "epoch=e",
        "since=x&epoch=e",
        "since=-1&epoch=e",
        "since=1&epoch=",
    ] {
        assert_eq!(Recover::from_query(Some(bad)), Recover::Unusable, "{bad}");
    }
    let long = format!("since=1&epoch={}", "e".repeat(65));
    assert_eq!(Recover::from_query(Some(&long)), Recover::Unusable);
}

#[test]
fn a_gap_within_the_bounds_is_replayed_in_order_exactly_once() {
    let cfg = cfg(100);
    let mut s = Stream::new(0);
    for i in 1..=30 {
        assert_eq!(s.append(&event(i), 1, &cfg).0, i);
    }
    let from = Position {
        offset: 10,
        ..s.head()
    };
    let Resume::Replay(frames) = s.resume(&from, 2, &cfg) else {
        panic!("replayable")
    };
    assert_eq!(
        data_of(&frames),
        (11..=30).map(|i| (i, i)).collect::<Vec<_>>()
    );
    let Resume::Replay(none) = s.resume(&s.head(), 2, &cfg) else {
        panic!("current")
    };
    assert!(none.is_empty());
}

#[test]
fn what_the_bounds_dropped_is_signalled_not_skipped() {
    let cfg = cfg(5);
    let mut s = Stream::new(0);
    for i in 1..=8 {
        s.append(&event(i), 1, &cfg);
    }
    let at = |offset| Position { offset, ..s.head() };
    assert!(matches!(s.resume(&at(3), 1, &cfg), Resume::Replay(f) if f.len() == 5));
    assert!(matches!(
        s.resume(&at(2), 1, &cfg),
        Resume::Resync(ResyncReason::PositionExpired)
    ));
    // Age: everything recorded at 1 s is past a 300 s TTL at 302 s.
    assert!(matches!(
        s.resume(&at(7), 302, &cfg),
        Resume::Resync(ResyncReason::PositionExpired)
    ));
    assert!(matches!(s.resume(&at(8), 302, &cfg), Resume::Replay(f) if f.is_empty()));
    let other = Position {
        offset: 8,
        epoch: "other".into(),
    };
    assert!(matches!(
        s.resume(&other, 1, &cfg),
        Resume::Resync(ResyncReason::EpochChanged)
    ));
    assert!(matches!(
        s.resume(&at(9), 1, &cfg),
        Resume::Resync(ResyncReason::EpochChanged)
    ));
}

#[test]
fn bytes_are_counted_and_bounded_per_stream() {
    let mut cfg = cfg(1000);
    cfg.stream_bytes = 10 * (event(50).len() + ENTRY_OVERHEAD);
    let mut s = Stream::new(0);
    let mut total = 0isize;
    for i in 1..=50 {
        total += s.append(&event(i), 0, &cfg).1;
    }
    assert_eq!(s.entries.len(), 10);
    assert_eq!(total as usize, s.bytes);
    assert!(s.bytes <= cfg.stream_bytes);
    assert_eq!(s.clear(), total as usize);
    // Numbering goes on after the history is dropped; the gap is then signalled.
    assert_eq!(s.append(&event(51), 0, &cfg).0, 51);
    let from = Position {
        offset: 49,
        ..s.head()
    };
    assert!(matches!(
        s.resume(&from, 0, &cfg),
        Resume::Resync(ResyncReason::PositionExpired)
    ));
}

#[test]
fn epochs_are_unique() {
    assert_ne!(Stream::new(0).epoch, Stream::new(0).epoch);
}
