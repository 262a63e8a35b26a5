//! Model test: random appends, acks, restarts and torn writes against a simple model.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
enum Op {
    Append(usize),
    AckOldest,
    AckNewest,
    Reopen,
    TearTail(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3000).prop_map(Op::Append),
        2 => Just(Op::AckOldest),
        1 => Just(Op::AckNewest),
        1 => Just(Op::Reopen),
        1 => (1usize..40).prop_map(Op::TearTail),
    ]
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut p = format!("batch {seq};").into_bytes();
    p.resize(len.max(p.len()), (seq % 251) as u8);
    p
}

fn newest_segment(dir: &Path) -> Option<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ffs"))
        .collect();
    v.sort();
    v.pop()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn behaves_like_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).expect("open").0;
        let mut spool = open();
        let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut written: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut last_seq = 0u64;
        for op in ops {
            match op {
                Op::Append(len) => {
                    let seq = spool.append(|s| payload(s, len));
                    prop_assert!(seq > last_seq, "seq {} after {}", seq, last_seq);
                    last_seq = seq;
                    model.insert(seq, payload(seq, len));
                    written.insert(seq, payload(seq, len));
                }
                Op::AckOldest => if let Some((&s, _)) = model.iter().next() {
                    spool.ack(s);
                    model.remove(&s);
                },
                Op::AckNewest => if let Some((&s, _)) = model.iter().next_back() {
                    spool.ack(s);
                    model.remove(&s);
                },
                Op::Reopen => {
                    drop(spool);
                    spool = open();
                }
                Op::TearTail(n) => if let Some(path) = newest_segment(dir.path()) {
                    // A crash mid-append: part of a record at the end of the newest segment.
                    drop(spool);
                    let mut rec = Vec::new();
                    record::encode(last_seq + 1, &payload(last_seq + 1, 100), &mut rec);
                    let mut f = OpenOptions::new().append(true).open(&path).expect("open");
                    f.write_all(&rec[..n.min(rec.len() - 1)]).expect("write");
                    drop(f);
                    spool = open();
                }
            }
            // Everything unacknowledged is pending, in order, byte for byte.
            let mut seen = Vec::new();
            let mut cur = None;
            while let Some(s) = spool.next_pending(cur) {
                seen.push(s);
                // A re-sent batch is byte-identical to the first time.
                prop_assert_eq!(&spool.read(s).expect("read"), &written[&s]);
                cur = Some(s);
            }
            // Acked batches may come back after a restart (duplicates are allowed), but
            // nothing unacknowledged may be missing.
            for s in model.keys() {
                prop_assert!(seen.contains(s), "seq {} lost", s);
            }
            prop_assert!(spool.next_seq() > last_seq);
        }
    }
}

#[test]
fn seq_survives_a_restart_after_everything_was_acked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::EveryBatch).expect("open");
    for _ in 0..5 {
        let seq = s.append(|seq| payload(seq, 10));
        s.ack(seq);
    }
    drop(s);
    fs::remove_file(dir.path().join("acked")).expect("the hint can be lost");
    let (s, rec) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::EveryBatch).expect("reopen");
    assert_eq!(s.next_seq(), 6);
    assert!(
        rec.pending <= 5,
        "acked batches may be re-sent, never renumbered"
    );
}

#[test]
fn a_full_spool_drops_the_oldest_and_counts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).expect("open");
    for _ in 0..400 {
        s.append(|seq| payload(seq, 8000));
    }
    assert!(s.bytes() <= 1 << 20, "{} bytes", s.bytes());
    assert!(s.dropped_batches() > 0);
    let oldest = s.next_pending(None).expect("pending");
    assert!(oldest > 1, "the oldest went first");
    assert_eq!(s.next_pending(Some(399)), Some(400), "the newest is kept");
}

#[test]
fn acked_segments_are_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).expect("open");
    for _ in 0..100 {
        s.append(|seq| payload(seq, 5000));
    }
    let segments = |d: &Path| {
        fs::read_dir(d)
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ffs"))
            })
            .count()
    };
    assert!(segments(dir.path()) > 2);
    for seq in 1..=100 {
        s.ack(seq);
    }
    assert_eq!(segments(dir.path()), 1, "only the newest segment stays");
    assert_eq!(s.pending_batches(), 0);
}

#[test]
fn interval_fsync_asks_for_a_sync_only_while_batches_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = FsyncPolicy::Interval(Duration::from_secs(60));
    let (mut s, _) = Spool::open(dir.path(), 1 << 20, policy).expect("open");
    assert_eq!(s.sync_due_in(), None, "nothing written");
    s.append(|seq| payload(seq, 10));
    let due = s.sync_due_in().expect("an unsynced batch waits");
    assert!(due <= Duration::from_secs(60));
    s.sync();
    assert_eq!(s.sync_due_in(), None);
    let (mut never, _) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).expect("open");
    never.append(|seq| payload(seq, 10));
    assert_eq!(never.sync_due_in(), None);
}

#[test]
fn acknowledged_batches_are_kept_for_a_resend_until_the_broker_is_heard_from_after_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).expect("open");
    s.set_keep_acked(Duration::from_secs(10));
    for _ in 0..3 {
        s.append(|seq| payload(seq, 10));
    }
    s.ack(1);
    s.ack(2);
    assert_eq!(
        s.next_pending(None),
        Some(3),
        "acknowledged batches are not pending"
    );
    // Heard from the broker soon after: nothing is safe yet.
    s.release_kept(Instant::now());
    assert_eq!(s.resend_kept(), 2, "a reconnect publishes both again");
    assert_eq!(s.next_pending(None), Some(1));
    assert_eq!(s.read(1).expect("read"), payload(1, 10));
    assert_eq!(s.resent_batches(), 2);
    // Acknowledged again, then the broker is heard from after the window: they go.
    s.ack(1);
    s.ack(2);
    s.release_kept(Instant::now() + Duration::from_secs(11));
    assert_eq!(s.resend_kept(), 0);
    assert_eq!(s.next_pending(None), Some(3));
    // A restart while a batch is kept publishes it again (the hint stays below it).
    s.ack(3);
    drop(s);
    let (s, rec) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).expect("reopen");
    assert_eq!((rec.pending, s.next_pending(None)), (1, Some(3)));
}

/// Blocks segment files for sequence numbers `seqs` with directories of their names, so
/// that rolling to a new segment fails as on a full disk.
fn block_segments(dir: &Path, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        fs::create_dir(dir.join(format!("seg-{seq:020}.ffs"))).expect("mkdir");
    }
}

#[test]
fn batches_the_disk_refuses_wait_in_memory_and_are_never_renumbered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).expect("open");
    s.set_memory_max(100_000);
    // 64 KiB segments: the ninth 8000-byte batch needs a new one, which cannot be made.
    block_segments(dir.path(), 2..=40);
    for _ in 0..20 {
        s.append(|seq| payload(seq, 8000));
    }
    // Eight on disk, twelve refused; twelve do not fit in 100,000 bytes: the oldest went.
    assert_eq!(s.pending_batches(), 8 + 12);
    let in_memory: Vec<u64> = (9..=20).collect();
    for seq in &in_memory {
        assert_eq!(s.read(*seq).expect("in memory"), payload(*seq, 8000));
    }
    // Too big for memory: 13 * 8000 > 100,000, so the oldest in memory was dropped.
    s.append(|seq| payload(seq, 8000));
    assert_eq!(s.dropped_batches(), 1);
    assert!(s.read(9).is_err(), "the oldest in memory was dropped");
    assert!(s.bytes() <= (1 << 20) + 100_000);
    // Acknowledging a batch in memory frees its room.
    s.ack(10);
    // The disk comes back: new batches go to disk again.
    for seq in 2..=40 {
        fs::remove_dir(dir.path().join(format!("seg-{seq:020}.ffs"))).expect("rmdir");
    }
    let back = s.append(|seq| payload(seq, 8000));
    assert_eq!(back, 22);
    drop(s);
    // After a restart, batches that were only in memory are gone, but their numbers are not
    // given out again.
    let (mut s, _) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).expect("reopen");
    assert!(s.read(11).is_err(), "memory does not survive a restart");
    assert_eq!(s.read(22).expect("on disk"), payload(22, 8000));
    assert_eq!(s.append(|seq| payload(seq, 10)), 23);
    // Even when the last batches issued before the restart never reached the disk.
    block_segments(dir.path(), 24..=60);
    let mut last = 0;
    for _ in 0..20 {
        last = s.append(|seq| payload(seq, 8000));
    }
    drop(s);
    for seq in 24..=60 {
        let _ = fs::remove_dir(dir.path().join(format!("seg-{seq:020}.ffs")));
    }
    let (mut s, _) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).expect("reopen");
    assert_eq!(s.append(|seq| payload(seq, 10)), last + 1);
}
