//! Counters shared between the capture thread and the publisher, and the heartbeat built
//! from them. Names of the status fields are the wire contract's ([`wire::Status`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use wire::{Millis, Status};

/// Updated by the capture loop (at most once per second), read by the heartbeat.
#[derive(Debug)]
pub struct Telemetry {
    started: Instant,
    /// Exists while the system clock is synchronised (`capture.clock_sync_file`).
    clock_sync_file: Option<PathBuf>,
    pub frames_captured: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub frames_malformed: AtomicU64,
}

impl Telemetry {
    pub fn new(clock_sync_file: Option<PathBuf>) -> Telemetry {
        Telemetry {
            started: Instant::now(),
            clock_sync_file,
            frames_captured: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            frames_malformed: AtomicU64::new(0),
        }
    }
}

/// Identity fields of a status message.
#[derive(Clone, Debug)]
pub struct StatusIdentity {
    pub sensor: String,
    pub site: String,
    pub config_version: u32,
}

/// Spool figures for a heartbeat.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpoolFigures {
    pub batches: u64,
    pub bytes: u64,
    pub dropped_batches: u64,
}

impl Telemetry {
    pub fn status(&self, id: &StatusIdentity, online: bool, spool: SpoolFigures) -> Status {
        Status {
            v: wire::VERSION,
            sensor: id.sensor.clone(),
            site: id.site.clone(),
            online,
            at: Millis::now(),
            uptime_secs: self.started.elapsed().as_secs(),
            frames_captured: self.frames_captured.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            frames_malformed: self.frames_malformed.load(Relaxed),
            spool_batches: spool.batches,
            spool_bytes: spool.bytes,
            spool_dropped_batches: spool.dropped_batches,
            config_version: id.config_version,
            clock_synced: self.clock_synced(),
        }
    }
}

impl Telemetry {
    /// Whether the system clock is synchronised: its marker file exists (systemd-timesyncd
    /// creates `/run/systemd/timesync/synchronized`; chrony and ntpd users can from their
    /// hooks), or none is configured.
    pub fn clock_synced(&self) -> bool {
        self.clock_sync_file.as_deref().is_none_or(Path::exists)
    }
}
