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

mod record;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
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

struct Segment {
    first_seq: u64,
    path: PathBuf,
    bytes: u64,
    unacked: usize,
}

#[derive(Clone, Copy)]
struct Loc {
    segment: u64,
    offset: u64,
    len: usize,
}

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
    pending: BTreeMap<u64, Loc>,
    next_seq: u64,
    acked_hint: u64,
    total_bytes: u64,
    dropped_batches: u64,
    buf: Vec<u8>,
}

impl Spool {
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        fsync: FsyncPolicy,
    ) -> Result<(Spool, Recovery), SpoolError> {
        fs::create_dir_all(dir).map_err(io("create spool directory", dir))?;
        let acked_path = dir.join("acked");
        let acked_hint = fs::read_to_string(&acked_path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
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
            pending: BTreeMap::new(),
            next_seq: acked_hint + 1,
            acked_hint,
            total_bytes: 0,
            dropped_batches: 0,
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
            let mut unacked = 0;
            for f in found {
                spool.next_seq = spool.next_seq.max(f.seq + 1);
                if f.seq > acked_hint {
                    unacked += 1;
                    spool.pending.insert(
                        f.seq,
                        Loc {
                            segment: first_seq,
                            offset: f.offset as u64,
                            len: f.len,
                        },
                    );
                }
            }
            spool.total_bytes += bytes;
            spool.segments.push_back(Segment {
                first_seq,
                path,
                bytes,
                unacked,
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

    /// Writes a batch under the next sequence number; `payload` builds it from that number.
    pub fn append(&mut self, payload: impl FnOnce(u64) -> Vec<u8>) -> Result<u64, SpoolError> {
        let seq = self.next_seq;
        let body = payload(seq);
        self.buf.clear();
        record::encode(seq, &body, &mut self.buf);
        let size = self.buf.len() as u64;
        self.make_room(size);
        let needs_new = match self.segments.back() {
            None => true,
            Some(s) => s.bytes > 0 && s.bytes + size > self.segment_bytes,
        };
        if needs_new || self.active.is_none() {
            self.roll(needs_new, seq)?;
        }
        let seg = self
            .segments
            .back_mut()
            .expect("roll leaves an active segment");
        let file = self.active.as_mut().expect("roll opens the active segment");
        file.write_all(&self.buf)
            .map_err(io("append to spool segment", &seg.path))?;
        let sync = match self.fsync {
            FsyncPolicy::EveryBatch => true,
            FsyncPolicy::Interval(d) => self.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        };
        if sync {
            file.sync_data()
                .map_err(io("sync spool segment", &seg.path))?;
            self.last_sync = Instant::now();
        }
        self.dirty = !sync;
        self.pending.insert(
            seq,
            Loc {
                segment: seg.first_seq,
                offset: seg.bytes + record::HEADER as u64,
                len: body.len(),
            },
        );
        seg.bytes += size;
        seg.unacked += 1;
        self.total_bytes += size;
        self.next_seq = seq + 1;
        Ok(seq)
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
                unacked: 0,
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
            let lost: Vec<u64> = self
                .pending
                .iter()
                .filter(|(_, l)| l.segment == seg.first_seq)
                .map(|(s, _)| *s)
                .collect();
            for s in &lost {
                self.pending.remove(s);
            }
            self.dropped_batches += lost.len() as u64;
            self.total_bytes -= seg.bytes;
            let _ = fs::remove_file(&seg.path);
            error!(
                dropped_batches = lost.len(),
                first_seq = seg.first_seq,
                max_bytes = self.max_bytes,
                "spool full, dropped oldest segment"
            );
        }
    }

    /// The oldest unacknowledged batch after `after` (exclusive), if any.
    pub fn next_pending(&self, after: Option<u64>) -> Option<u64> {
        match after {
            None => self.pending.keys().next().copied(),
            Some(a) => self.pending.range(a + 1..).next().map(|(s, _)| *s),
        }
    }

    /// Reads a pending batch's payload back from disk.
    pub fn read(&self, seq: u64) -> Result<Vec<u8>, SpoolError> {
        let loc = self.pending.get(&seq).ok_or(SpoolError::Missing { seq })?;
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

    /// Marks a batch delivered; deletes segments whose batches are all delivered.
    pub fn ack(&mut self, seq: u64) {
        let Some(loc) = self.pending.remove(&seq) else {
            return;
        };
        if let Some(seg) = self
            .segments
            .iter_mut()
            .find(|s| s.first_seq == loc.segment)
        {
            seg.unacked = seg.unacked.saturating_sub(1);
        }
        let watermark = self
            .pending
            .keys()
            .next()
            .map_or(self.next_seq - 1, |s| s - 1);
        if watermark > self.acked_hint {
            self.acked_hint = watermark;
            let tmp = self.dir.join("acked.tmp");
            if fs::write(&tmp, watermark.to_string()).is_ok() {
                let _ = fs::rename(&tmp, self.dir.join("acked"));
            }
        }
        self.collect_acked_segments();
    }

    fn collect_acked_segments(&mut self) {
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.unacked == 0) {
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

    pub fn pending_batches(&self) -> usize {
        self.pending.len()
    }

    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    pub fn dropped_batches(&self) -> u64 {
        self.dropped_batches
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
