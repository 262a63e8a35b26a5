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
                    let seq = spool.append(|s| payload(s, len)).expect("append");
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
        let seq = s.append(|seq| payload(seq, 10)).expect("append");
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
        s.append(|seq| payload(seq, 8000)).expect("append");
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
        s.append(|seq| payload(seq, 5000)).expect("append");
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
    s.append(|seq| payload(seq, 10)).expect("append");
    let due = s.sync_due_in().expect("an unsynced batch waits");
    assert!(due <= Duration::from_secs(60));
    s.sync();
    assert_eq!(s.sync_due_in(), None);
    let (mut never, _) = Spool::open(dir.path(), 1 << 20, FsyncPolicy::Never).expect("open");
    never.append(|seq| payload(seq, 10)).expect("append");
    assert_eq!(never.sync_due_in(), None);
}
