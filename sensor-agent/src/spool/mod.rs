//! The durable spool: every batch is on disk before it is published, and leaves the disk
//! only after the broker's PUBACK for it.
//!
//! On disk: a directory of segment files `seg-{first_seq:020}.ffs`, each a run of
//! [`record`]s in rising `seq`, plus `acked`, the highest sequence number below which every
//! batch was acknowledged (a hint written without fsync: losing it only causes duplicates).
//! Invariants:
//! - `seq` rises strictly across restarts: the next one is above every record on disk, the
//!   `acked` hint, and the first seq named by the newest segment file.
//! - The newest segment is never deleted, so its name keeps `seq` even when all is acked.
//! - The total size stays under `max_bytes`: the oldest segment is dropped (counted, logged
//!   at ERROR) to make room, so a long outage loses the oldest data, never the newest.
//! - A torn or corrupt record is skipped and counted on open; the newest segment is cut back
//!   to its last intact record so appends continue cleanly.
//!
//! Two more things keep a batch until it is safe:
//! - **Kept after the acknowledgement** ([`Spool::set_keep_acked`]): a broker that crashes
//!   loses what it acknowledged since its last save to disk (Mosquitto saves on a timer), so
//!   an acknowledged batch stays (on disk, counted in no figure) until the broker has been
//!   heard from that long after the acknowledgement ([`Spool::release_kept`]), and after a
//!   reconnect it is published again ([`Spool::resend_kept`]). The collector drops the
//!   duplicates.
//! - **In memory when the disk fails** ([`Spool::set_memory_max`]): when a batch cannot be
//!   written (disk full, read-only, I/O error), it waits in memory instead, up to a byte
//!   budget (past it the oldest in memory is dropped and counted), and each later append tries
//!   the disk again. Batches in memory are lost if the agent stops before the broker takes
//!   them. Their numbers are recorded in `issued`, a file of fixed size rewritten in place (so
//!   it needs no free space once created), so that a restart never numbers a batch twice.

mod record;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use firmware_config::FsyncPolicy;
use thiserror::Error;
use tracing::{error, info, warn};

/// Spool failures; all are I/O on the spool directory: check its disk and permissions.
#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("spool record {seq} is not on disk any more")]
    Missing { seq: u64 },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A sequence number kept in a small file (`acked`, `issued`); 0 when missing or unreadable.
fn read_hint(path: &Path) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

struct Segment {
    first_seq: u64,
    path: PathBuf,
    bytes: u64,
    /// Records still needed: pending, or kept after their acknowledgement.
    live: usize,
}

#[derive(Clone, Copy)]
struct Loc {
    segment: u64,
    offset: u64,
    len: usize,
}

/// Where a batch waits.
enum Stored {
    Disk(Loc),
    /// The disk refused it.
    Memory(Vec<u8>),
}

/// The width of the `issued` file: 20 digits and a newline.
const ISSUED_LEN: usize = 21;

/// What opening the spool found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub pending: usize,
    pub corrupt_records: u64,
    pub truncated_bytes: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    last_sync: Instant,
    /// Appended since the last fsync.
    dirty: bool,
    segments: VecDeque<Segment>,
    active: Option<File>,
    /// A failed write left the active segment's end unknown: the next write starts a new one.
    torn: bool,
    pending: BTreeMap<u64, Stored>,
    /// Acknowledged, kept for a resend until released: (batch, when acknowledged).
    kept: BTreeMap<u64, (Stored, Instant)>,
    keep_acked: Duration,
    next_seq: u64,
    acked_hint: u64,
    total_bytes: u64,
    memory_bytes: u64,
    memory_max: u64,
    /// `issued`, opened at start while the disk still had room; `None`: it could not be.
    issued: Option<File>,
    /// The last write to disk failed (logged once per change).
    disk_failing: bool,
    dropped_batches: u64,
    resent_batches: u64,
    buf: Vec<u8>,
}

/// The in-memory budget when the disk fails, unless [`Spool::set_memory_max`] says otherwise.
const MEMORY_MAX: u64 = 8 << 20;

impl Spool {
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        fsync: FsyncPolicy,
    ) -> Result<(Spool, Recovery), SpoolError> {
        fs::create_dir_all(dir).map_err(io("create spool directory", dir))?;
        let acked_path = dir.join("acked");
        let acked_hint = read_hint(&acked_path);
        let issued_path = dir.join("issued");
        let issued_seq = read_hint(&issued_path);
        let issued = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&issued_path)
            .and_then(|f| f.set_len(ISSUED_LEN as u64).map(|()| f))
        {
            Ok(f) => Some(f),
            Err(e) => {
                warn!(error = %e, path = %issued_path.display(), "cannot prepare the spool's issued-numbers file: if the disk fails, batches waiting in memory could be numbered again after a restart");
                None
            }
        };
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(io("list spool directory", dir))?
            .filter_map(|e| {
                let path = e.ok()?.path();
                let name = path.file_name()?.to_str()?;
                let seq = name
                    .strip_prefix("seg-")?
                    .strip_suffix(".ffs")?
                    .parse()
                    .ok()?;
                Some((seq, path))
            })
            .collect();
        names.sort();

        let mut spool = Spool {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes: (max_bytes / 16).clamp(64 << 10, 4 << 20),
            fsync,
            last_sync: Instant::now(),
            dirty: false,
            segments: VecDeque::new(),
            active: None,
            torn: false,
            pending: BTreeMap::new(),
            kept: BTreeMap::new(),
            keep_acked: Duration::ZERO,
            next_seq: acked_hint.max(issued_seq) + 1,
            acked_hint,
            total_bytes: 0,
            memory_bytes: 0,
            memory_max: MEMORY_MAX,
            issued,
            disk_failing: false,
            dropped_batches: 0,
            resent_batches: 0,
            buf: Vec::new(),
        };
        let mut rec = Recovery::default();
        let count = names.len();
        for (i, (first_seq, path)) in names.into_iter().enumerate() {
            let data = fs::read(&path).map_err(io("read spool segment", &path))?;
            let (found, good_end, corrupt) = record::scan(&data);
            rec.corrupt_records += corrupt;
            let newest = i + 1 == count;
            let mut bytes = data.len() as u64;
            if newest && good_end < data.len() {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io("open spool segment", &path))?;
                f.set_len(good_end as u64)
                    .map_err(io("truncate spool segment", &path))?;
                f.sync_all().map_err(io("sync spool segment", &path))?;
                rec.truncated_bytes += (data.len() - good_end) as u64;
                bytes = good_end as u64;
            }
            spool.next_seq = spool.next_seq.max(first_seq);
            let mut live = 0;
            for f in found {
                spool.next_seq = spool.next_seq.max(f.seq + 1);
                if f.seq > acked_hint {
                    live += 1;
                    spool.pending.insert(
                        f.seq,
                        Stored::Disk(Loc {
                            segment: first_seq,
                            offset: f.offset as u64,
                            len: f.len,
                        }),
                    );
                }
            }
            spool.total_bytes += bytes;
            spool.segments.push_back(Segment {
                first_seq,
                path,
                bytes,
                live,
            });
        }
        spool.collect_acked_segments();
        rec.pending = spool.pending.len();
        if rec.corrupt_records > 0 {
            warn!(
                corrupt = rec.corrupt_records,
                truncated_bytes = rec.truncated_bytes,
                dir = %dir.display(),
                "skipped corrupt or torn spool records"
            );
        }
        if rec.pending > 0 {
            info!(pending = rec.pending, "spool has batches to deliver");
        }
        Ok((spool, rec))
    }

    /// The sequence number the next [`Spool::append`] will use.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Keeps each acknowledged batch until the broker has been heard from `window` after
    /// the acknowledgement ([`Spool::release_kept`]); zero (the default) lets it go at once.
    pub fn set_keep_acked(&mut self, window: Duration) {
        self.keep_acked = window;
    }

    /// How many bytes of batches may wait in memory while the disk fails (8 MiB by default).
    pub fn set_memory_max(&mut self, bytes: u64) {
        self.memory_max = bytes;
    }

    /// Stores a batch under the next sequence number; `payload` builds it from that number.
    /// On disk if the disk takes it, else in memory (see the module's documentation).
    pub fn append(&mut self, payload: impl FnOnce(u64) -> Vec<u8>) -> u64 {
        let seq = self.next_seq;
        let body = payload(seq);
        self.next_seq = seq + 1;
        self.buf.clear();
        record::encode(seq, &body, &mut self.buf);
        match self.write(seq, body.len()) {
            Ok(loc) => {
                if self.disk_failing {
                    self.disk_failing = false;
                    info!(seq, "the spool's disk takes batches again");
                }
                self.pending.insert(seq, Stored::Disk(loc));
            }
            Err(e) => {
                if !self.disk_failing {
                    self.disk_failing = true;
                    error!(error = %e, seq, memory_max_bytes = self.memory_max, "the spool's disk refuses batches: they wait in memory until it takes them again (lost if the agent stops first)");
                }
                self.record_issued(seq);
                self.hold_in_memory(seq, body);
            }
        }
        seq
    }

    /// Writes the record in `self.buf` (encoded from `body`) to the active segment.
    fn write(&mut self, seq: u64, body_len: usize) -> Result<Loc, SpoolError> {
        let size = self.buf.len() as u64;
        self.make_room(size);
        let needs_new = self.torn
            || match self.segments.back() {
                None => true,
                Some(s) => s.bytes > 0 && s.bytes + size > self.segment_bytes,
            };
        if needs_new || self.active.is_none() {
            self.roll(needs_new, seq)?;
            self.torn = false;
        }
        let seg = self
            .segments
            .back_mut()
            .expect("roll leaves an active segment");
        let file = self.active.as_mut().expect("roll opens the active segment");
        let sync = match self.fsync {
            FsyncPolicy::EveryBatch => true,
            FsyncPolicy::Interval(d) => self.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        };
        let written = file
            .write_all(&self.buf)
            .map_err(io("append to spool segment", &seg.path))
            .and_then(|()| {
                if sync {
                    file.sync_data()
                        .map_err(io("sync spool segment", &seg.path))?;
                }
                Ok(())
            });
        if let Err(e) = written {
            // Cut the segment back to its last whole record; if even that fails, its end is
            // unknown: the next write starts a new segment (a reopen skips the torn record).
            if file.set_len(seg.bytes).is_err() {
                self.torn = true;
            }
            self.active = None;
            return Err(e);
        }
        if sync {
            self.last_sync = Instant::now();
        }
        self.dirty = !sync;
        let loc = Loc {
            segment: seg.first_seq,
            offset: seg.bytes + record::HEADER as u64,
            len: body_len,
        };
        seg.bytes += size;
        seg.live += 1;
        self.total_bytes += size;
        Ok(loc)
    }
    fn roll(&mut self, new_segment: bool, seq: u64) -> Result<(), SpoolError> {
        if let Some(f) = self.active.take() {
            let _ = f.sync_all();
        }
        if new_segment {
            let path = self.dir.join(format!("seg-{seq:020}.ffs"));
            self.segments.push_back(Segment {
                first_seq: seq,
                path,
                bytes: 0,
                live: 0,
            });
            self.collect_acked_segments();
        }
        let seg = self.segments.back().expect("a segment exists");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&seg.path)
            .map_err(io("open spool segment", &seg.path))?;
        if new_segment {
            // Make the new file's name durable: it carries `seq` across restarts.
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        self.active = Some(file);
        Ok(())
    }

    /// Drops the oldest segments until `size` more bytes fit under `max_bytes`.
    fn make_room(&mut self, size: u64) {
        while self.total_bytes + size > self.max_bytes && self.segments.len() > 1 {
            let seg = self.segments.pop_front().expect("more than one segment");
            let on = |s: &Stored| matches!(s, Stored::Disk(l) if l.segment == seg.first_seq);
            let before = self.pending.len();
            self.pending.retain(|_, s| !on(s));
            self.kept.retain(|_, (s, _)| !on(s));
            let lost = before - self.pending.len();
            self.dropped_batches += lost as u64;
            self.total_bytes -= seg.bytes;
            let _ = fs::remove_file(&seg.path);
            error!(
                dropped_batches = lost,
                first_seq = seg.first_seq,
                max_bytes = self.max_bytes,
                "spool full, dropped oldest segment"
            );
        }
    }

    /// Keeps a batch the disk refused in memory, dropping the oldest there to fit the budget.
    fn hold_in_memory(&mut self, seq: u64, body: Vec<u8>) {
        let size = body.len() as u64;
        while self.memory_bytes + size > self.memory_max {
            let oldest = self
                .pending
                .iter()
                .find(|(_, s)| matches!(s, Stored::Memory(_)))
                .map(|(seq, _)| *seq);
            let Some(old) = oldest else { break };
            if let Some(Stored::Memory(b)) = self.pending.remove(&old) {
                self.memory_bytes -= b.len() as u64;
            }
            self.dropped_batches += 1;
            error!(
                dropped_seq = old,
                memory_max_bytes = self.memory_max,
                "spool disk failing and memory budget full, dropped the oldest batch in memory"
            );
        }
        self.memory_bytes += size;
        self.pending.insert(seq, Stored::Memory(body));
    }

    /// Records that `seq` was handed out without reaching the disk (see `issued`).
    fn record_issued(&self, seq: u64) {
        if let Some(f) = &self.issued {
            let _ = f.write_all_at(format!("{seq:020}\n").as_bytes(), 0);
        }
    }

    /// The oldest unacknowledged batch after `after` (exclusive), if any.
    pub fn next_pending(&self, after: Option<u64>) -> Option<u64> {
        match after {
            None => self.pending.keys().next().copied(),
            Some(a) => self.pending.range(a + 1..).next().map(|(s, _)| *s),
        }
    }

    /// Reads a pending batch's payload back (from disk, or memory).
    pub fn read(&self, seq: u64) -> Result<Vec<u8>, SpoolError> {
        let loc = match self.pending.get(&seq) {
            None => return Err(SpoolError::Missing { seq }),
            Some(Stored::Memory(body)) => return Ok(body.clone()),
            Some(Stored::Disk(loc)) => loc,
        };
        let seg = self
            .segments
            .iter()
            .find(|s| s.first_seq == loc.segment)
            .ok_or(SpoolError::Missing { seq })?;
        let mut f = File::open(&seg.path).map_err(io("open spool segment", &seg.path))?;
        f.seek(SeekFrom::Start(loc.offset))
            .map_err(io("seek spool segment", &seg.path))?;
        let mut payload = vec![0; loc.len];
        f.read_exact(&mut payload)
            .map_err(io("read spool segment", &seg.path))?;
        Ok(payload)
    }

    /// Marks a batch delivered: kept for a resend if a window is set, else let go.
    pub fn ack(&mut self, seq: u64) {
        let Some(stored) = self.pending.remove(&seq) else {
            return;
        };
        if self.keep_acked.is_zero() {
            self.let_go(stored);
        } else {
            self.kept.insert(seq, (stored, Instant::now()));
        }
        self.advance_hint();
    }

    /// The broker was heard from at `heard`: batches acknowledged at least the keep window
    /// before it are safe in its saved state, and go.
    pub fn release_kept(&mut self, heard: Instant) {
        let Some(cutoff) = heard.checked_sub(self.keep_acked) else {
            return;
        };
        let safe: Vec<u64> = self
            .kept
            .iter()
            .filter(|(_, (_, at))| *at <= cutoff)
            .map(|(seq, _)| *seq)
            .collect();
        if safe.is_empty() {
            return;
        }
        for seq in safe {
            let (stored, _) = self.kept.remove(&seq).expect("listed above");
            self.let_go(stored);
        }
        self.advance_hint();
    }

    /// After a reconnect: the kept batches are pending again, to be published once more.
    /// Returns how many.
    pub fn resend_kept(&mut self) -> usize {
        let n = self.kept.len();
        for (seq, (stored, _)) in std::mem::take(&mut self.kept) {
            self.pending.insert(seq, stored);
        }
        self.resent_batches += n as u64;
        n
    }

    fn let_go(&mut self, stored: Stored) {
        match stored {
            Stored::Memory(body) => self.memory_bytes -= body.len() as u64,
            Stored::Disk(loc) => {
                if let Some(seg) = self
                    .segments
                    .iter_mut()
                    .find(|s| s.first_seq == loc.segment)
                {
                    seg.live = seg.live.saturating_sub(1);
                }
                self.collect_acked_segments();
            }
        }
    }

    /// Moves the `acked` hint up to just below the oldest batch still pending or kept.
    fn advance_hint(&mut self) {
        let oldest = [self.pending.keys().next(), self.kept.keys().next()]
            .into_iter()
            .flatten()
            .min();
        let watermark = oldest.map_or(self.next_seq - 1, |s| s - 1);
        if watermark > self.acked_hint {
            self.acked_hint = watermark;
            let tmp = self.dir.join("acked.tmp");
            if fs::write(&tmp, watermark.to_string()).is_ok() {
                let _ = fs::rename(&tmp, self.dir.join("acked"));
            }
        }
    }

    fn collect_acked_segments(&mut self) {
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.live == 0) {
            let seg = self.segments.pop_front().expect("checked non-empty");
            self.total_bytes -= seg.bytes;
            if let Err(e) = fs::remove_file(&seg.path) {
                warn!(error = %e, path = %seg.path.display(), "failed to delete acked spool segment");
            }
        }
    }

    /// Flushes written batches to stable storage (shutdown, fsync interval).
    pub fn sync(&mut self) {
        if let Some(f) = &self.active {
            let _ = f.sync_data();
            self.last_sync = Instant::now();
            self.dirty = false;
        }
    }

    /// Batches waiting for the broker's acknowledgement (on disk or in memory).
    pub fn pending_batches(&self) -> usize {
        self.pending.len()
    }

    /// Bytes the spool holds: its segment files and the batches in memory.
    pub fn bytes(&self) -> u64 {
        self.total_bytes + self.memory_bytes
    }

    pub fn dropped_batches(&self) -> u64 {
        self.dropped_batches
    }

    /// Batches published again after a reconnect ([`Spool::resend_kept`]).
    pub fn resent_batches(&self) -> u64 {
        self.resent_batches
    }

    /// How long until an `interval` fsync policy wants unsynced batches synced; `None` when
    /// nothing waits (or the policy never syncs on a timer).
    pub fn sync_due_in(&self) -> Option<Duration> {
        match self.fsync {
            FsyncPolicy::Interval(d) if self.dirty => {
                Some(d.saturating_sub(self.last_sync.elapsed()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
