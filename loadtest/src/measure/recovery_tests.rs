//! Unit tests of the churn accounting: replay, signalled ranges, silent loss.

use super::*;

const E: &[u8] = b"ep1";

fn pos(offset: u64) -> Option<(u64, &'static [u8])> {
    Some((offset, E))
}

/// A client of a user whose stream head was 100 at connect: seq `s` is offset `100 + s`.
fn client() -> (Recovery, SeqTracker) {
    let mut r = Recovery::new(7);
    r.connected(Some(Position {
        offset: 100,
        epoch: "ep1".into(),
    }));
    (r, SeqTracker::new(20))
}

fn receive(r: &mut Recovery, t: &mut SeqTracker, seq: u64, now_ns: u64) {
    let fresh = matches!(t.record(seq), crate::measure::Receipt::InOrder);
    r.event(seq, fresh, pos(100 + seq), now_ns, 50);
}

#[test]
fn a_resumed_replay_is_recovered_and_nothing_is_lost() {
    let (mut r, mut t) = client();
    for s in 1..=5 {
        receive(&mut r, &mut t, s, s);
    }
    assert_eq!(r.position.as_ref().map(|p| p.offset), Some(105));
    // Away while 6..=9 were published; back at 1 ms, caught up when 9 arrives at 3 ms.
    r.reconnecting(1_000_000, Some(9));
    r.reconnected(2_000_000, t.max());
    for s in 6..=12 {
        receive(&mut r, &mut t, s, 3_000_000);
    }
    assert_eq!((r.recovered, r.replay_bytes, r.reconnects), (4, 200, 1));
    assert_eq!(r.recovery_us, vec![2000]);
    assert_eq!(r.settle(&t, 12, &[]), Settled::default());
}

#[test]
fn a_gap_without_a_resync_is_silent_and_one_announced_is_not() {
    let (mut r, mut t) = client();
    for s in [1, 2, 3] {
        receive(&mut r, &mut t, s, 0);
    }
    // The server says: head is offset 106 (seq 6): 4..=6 are gone, and says so.
    r.resync(Some("position_expired"), Some(106), Some("ep1"), t.max());
    for s in [7, 8] {
        receive(&mut r, &mut t, s, 0);
    }
    // 9 never comes, nobody said so; 10 does.
    receive(&mut r, &mut t, 10, 0);
    let s = r.settle(&t, 10, &[]);
    assert_eq!((s.unrecoverable, s.lost_silent), (3, 1));
}

#[test]
fn an_epoch_change_ends_the_range_at_the_next_event() {
    let (mut r, mut t) = client();
    receive(&mut r, &mut t, 1, 0);
    // New history: head 3 in epoch ep2; the next event is offset 4 of ep2 with seq 5, so the
    // range is 2..=4 (seq 5 − (4 − 3)).
    r.resync(Some("epoch_changed"), Some(3), Some("ep2"), t.max());
    t.record(5);
    r.event(5, true, Some((4, b"ep2")), 0, 10);
    let s = r.settle(&t, 5, &[]);
    assert_eq!((s.unrecoverable, s.lost_silent), (3, 0));
    assert_eq!(
        r.position,
        Some(Position {
            offset: 4,
            epoch: "ep2".into()
        })
    );
}

#[test]
fn a_resync_left_open_covers_the_tail_and_stops_a_resume() {
    let (mut r, mut t) = client();
    receive(&mut r, &mut t, 1, 0);
    r.reconnecting(0, Some(4));
    r.reconnected(1, t.max());
    r.resync(None, None, None, t.max());
    let s = r.settle(&t, 4, &[]);
    assert_eq!((s.unrecoverable, s.lost_silent), (3, 0));
    assert!(r.recovery_us.is_empty(), "a resync is not a recovery");
}

#[test]
fn without_resume_nothing_is_recovered_and_the_gap_is_silent() {
    let (mut r, mut t) = client();
    receive(&mut r, &mut t, 1, 0);
    r.reconnecting(0, None);
    r.reconnected(1, t.max());
    receive(&mut r, &mut t, 4, 2);
    assert_eq!(r.recovered, 0);
    let s = r.settle(&t, 4, &[]);
    assert_eq!((s.unrecoverable, s.lost_silent), (0, 2));
}

#[test]
fn a_refused_publish_is_neither_lost_nor_signalled() {
    let (mut r, mut t) = client();
    for s in [1, 2, 5] {
        receive(&mut r, &mut t, s, 0);
    }
    // 3 and 4 were refused (courier down): never accepted, so never owed to anyone.
    assert_eq!(r.settle(&t, 5, &[3, 4]), Settled::default());
    // Only 3 refused: 4 is a silent loss.
    assert_eq!(r.settle(&t, 5, &[3]).lost_silent, 1);
    // A refused seq that came anyway (the server had taken it) changes nothing.
    assert_eq!(r.settle(&t, 5, &[2, 3, 4]), Settled::default());
    // Inside a signalled range a refused seq is not counted as signalled either.
    r.resync(Some("epoch_changed"), None, None, 5);
    let s = r.settle(&t, 8, &[3, 4, 6]);
    assert_eq!((s.unrecoverable, s.lost_silent), (2, 0));
}

#[test]
fn server_closes_and_resyncs_are_counted_by_kind() {
    let (mut r, t) = client();
    r.refreshes = 2;
    r.refreshed = 1;
    r.server_closed("1001".into());
    r.server_closed("eof".into());
    r.server_closed("1001".into());
    r.resync(Some("epoch_changed"), None, None, t.max());
    r.resync(None, None, None, t.max());
    assert_eq!(r.server_closes.get("1001"), Some(&2));
    assert_eq!(r.server_closes.get("eof"), Some(&1));
    assert_eq!(r.resyncs.get("epoch_changed"), Some(&1));
    assert_eq!(r.resyncs.get("unknown"), Some(&1));
    assert_eq!(
        r.refreshes, 1,
        "a refresh cut by the server is not counted as sent"
    );
}
