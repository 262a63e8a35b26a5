//! The per-frame path: parse -> policy -> keyed hash -> sessionize -> batch.
//!
//! [`Pipeline`] is synchronous and single-threaded; it is driven by a capture loop (live or
//! replay) that hands it frames in event time and hands its batches to a [`BatchSink`].
//! Nothing here allocates per frame once the maps have grown, and nothing logs per frame.

use std::collections::{BTreeMap, HashSet};

use device_id::Epochs;
use firmware_config::{Config, FcsPolicy, Keys};
use serde::Serialize;
use wire::{DeviceKey, Millis, Sighting};

use crate::identity::Hasher;
use crate::mac::RawMac;
use crate::parse::{self, FrameType, Reject};
use crate::sessionize::{Emitted, Observed, Sessionizer};
use crate::Error;

/// A closed batch, before it is given a sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub epoch: u32,
    pub sent_at: Millis,
    pub sightings: Vec<Sighting>,
}

/// Where closed batches go: the spool (live and replay-to-broker) or a JSON-lines file.
pub trait BatchSink {
    fn put(&mut self, batch: Batch) -> Result<(), Error>;
}

/// What the pipeline has seen, by category: the `--summary` document.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    pub frames: u64,
    pub frames_by_type: BTreeMap<&'static str, u64>,
    pub probe_requests: u64,
    /// Probe requests by channel frequency (MHz; 0 where the header has none).
    pub probe_requests_by_freq_mhz: BTreeMap<u16, u64>,
    pub malformed: BTreeMap<&'static str, u64>,
    pub dropped: BTreeMap<&'static str, u64>,
    pub sightings: u64,
    pub interim_updates: u64,
    pub evicted_sightings: u64,
    /// New randomized addresses linked to a chain of earlier ones (wire docs, "Links").
    pub linked_addresses: u64,
    pub devices: BTreeMap<&'static str, u64>,
    pub batches: u64,
    /// Why reading the input stopped early, if it did (a damaged capture).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    frames: u64,
    by_type: [u64; 4],
    probes: u64,
    /// (frequency, probes): a handful of channels, so a scan beats a map.
    by_freq: Vec<(u16, u64)>,
    rejects: [u64; 7],
    below_floor: u64,
    duplicates: u64,
    no_signal: u64,
    opt_out: u64,
    no_key: u64,
    clock_unsynced: u64,
    sightings: u64,
    interim: u64,
    batches: u64,
}

/// Settings of the per-frame path, from the sensor configuration.
#[derive(Clone, Debug)]
pub struct PipelineSettings {
    pub fcs_policy: FcsPolicy,
    pub rssi_floor_dbm: i8,
    pub gap_secs: u32,
    pub interim_secs: u32,
    pub max_devices: usize,
    pub epochs: Epochs,
    pub batch_max_sightings: usize,
    pub batch_max_age_ms: i64,
    pub opt_out: HashSet<DeviceKey>,
}

impl PipelineSettings {
    pub fn from_config(cfg: &Config, opt_out: HashSet<DeviceKey>) -> PipelineSettings {
        PipelineSettings {
            fcs_policy: cfg.capture().fcs_policy,
            rssi_floor_dbm: cfg.capture().rssi_floor_dbm,
            gap_secs: cfg.sightings().gap_secs,
            interim_secs: cfg.sightings().interim_secs,
            max_devices: cfg.sightings().max_devices,
            epochs: Epochs::new(cfg.identity().epoch_days, cfg.identity().bridge_days),
            batch_max_sightings: cfg.mqtt().batch_max_sightings,
            batch_max_age_ms: cfg.mqtt().batch_max_age.as_millis() as i64,
            opt_out,
        }
    }
}

pub struct Pipeline {
    settings: PipelineSettings,
    sessions: Sessionizer,
    emitted: Vec<Emitted>,
    batch: Vec<Sighting>,
    batch_epoch: u32,
    batch_opened: i64,
    now_ms: i64,
    next_sweep: i64,
    /// Transmitter and sequence number of the previous probe request.
    last_probe: Option<(RawMac, u16)>,
    counters: Counters,
    devices: Option<HashSet<(u32, DeviceKey, bool)>>,
    /// The last epoch whose frames were dropped for want of a key (logged once each).
    no_key_epoch: Option<u32>,
    /// False while a live sensor's clock is not synchronised.
    clock_synced: bool,
}

const SWEEP_EVERY_MS: i64 = 1000;

impl Pipeline {
    /// `count_devices` keeps the set of distinct device keys for the summary (replay);
    /// a long-running sensor leaves it off to keep memory bounded.
    pub fn new(settings: PipelineSettings, keys: Keys, count_devices: bool) -> Pipeline {
        Pipeline {
            sessions: Sessionizer::new(
                Hasher::new(keys, settings.epochs),
                settings.gap_secs,
                settings.interim_secs,
                settings.max_devices,
            ),
            emitted: Vec::new(),
            batch: Vec::with_capacity(settings.batch_max_sightings),
            batch_epoch: 0,
            batch_opened: 0,
            now_ms: i64::MIN,
            next_sweep: i64::MIN,
            last_probe: None,
            counters: Counters::default(),
            devices: count_devices.then(HashSet::new),
            no_key_epoch: None,
            clock_synced: true,
            settings,
        }
    }

    /// Processes one captured frame with capture timestamp `ts_ms`.
    pub fn on_frame(
        &mut self,
        ts_ms: i64,
        data: &[u8],
        truncated: bool,
        sink: &mut dyn BatchSink,
    ) -> Result<(), Error> {
        let frame = parse::parse(data, truncated, self.settings.fcs_policy);
        self.on_parsed(ts_ms, frame, sink)
    }

    /// Processes one frame parsed already (by a replay's reader thread, under
    /// [`Pipeline::fcs_policy`]).
    pub(crate) fn on_parsed(
        &mut self,
        ts_ms: i64,
        frame: Result<parse::Frame<'_>, Reject>,
        sink: &mut dyn BatchSink,
    ) -> Result<(), Error> {
        self.counters.frames += 1;
        if !self.clock_synced {
            // Neither hashed (its epoch would be wrong) nor stamped.
            self.counters.clock_unsynced += 1;
            return Ok(());
        }
        self.advance(ts_ms, sink)?;
        let frame = match frame {
            Ok(f) => f,
            Err(r) => {
                self.counters.rejects[r as usize] += 1;
                return Ok(());
            }
        };
        self.counters.by_type[frame.frame_type as usize] += 1;
        let Some(probe) = frame.probe else {
            return Ok(());
        };
        self.counters.probes += 1;
        let freq = frame.freq_mhz.unwrap_or(0);
        match self.counters.by_freq.iter_mut().find(|(f, _)| *f == freq) {
            Some((_, n)) => *n += 1,
            None => self.counters.by_freq.push((freq, 1)),
        }
        // The same transmission delivered twice in a row (a driver duplicate, or a retried
        // directed probe) is one frame, not two.
        let this = (probe.transmitter, probe.seq);
        if self.last_probe.replace(this) == Some(this) {
            self.counters.duplicates += 1;
            return Ok(());
        }
        let Some(rssi) = frame.signal_dbm else {
            self.counters.no_signal += 1;
            return Ok(());
        };
        if rssi < self.settings.rssi_floor_dbm {
            self.counters.below_floor += 1;
            return Ok(());
        }
        match self.sessions.observe(
            &probe.transmitter,
            ts_ms,
            probe.seq,
            rssi,
            probe.ies,
            &self.settings.opt_out,
            &mut self.emitted,
        ) {
            Observed::Updated => {}
            Observed::OptedOut => self.counters.opt_out += 1,
            Observed::NoKey(epoch) => {
                if self.no_key_epoch.replace(epoch) != Some(epoch) {
                    tracing::error!(
                        epoch,
                        "no device key for this epoch: its frames are dropped (counted as \
                         no_epoch_key) until its key is distributed (footfall-fleet keys)"
                    );
                }
                self.counters.no_key += 1;
            }
            Observed::Opened(epoch, device) => {
                if let Some(d) = &mut self.devices {
                    d.insert((epoch, device, !probe.transmitter.is_local()));
                }
            }
        }
        self.drain_emitted(sink)
    }

    /// How frames are to be parsed for [`Pipeline::on_parsed`].
    pub(crate) fn fcs_policy(&self) -> FcsPolicy {
        self.settings.fcs_policy
    }

    /// Moves event time forward without a frame (an idle live capture calls this with the
    /// wall clock): closes expired sightings and aged batches.
    pub fn advance(&mut self, now_ms: i64, sink: &mut dyn BatchSink) -> Result<(), Error> {
        if now_ms <= self.now_ms {
            return Ok(());
        }
        self.now_ms = now_ms;
        if now_ms >= self.next_sweep {
            self.next_sweep = now_ms + SWEEP_EVERY_MS;
            self.sessions.advance(now_ms);
            self.drain_closing(sink)?;
            if !self.batch.is_empty()
                && now_ms - self.batch_opened >= self.settings.batch_max_age_ms
            {
                self.flush_batch(sink)?;
            }
        }
        Ok(())
    }

    /// Whether the system clock is synchronised: until it is, live frames are dropped and
    /// counted (`clock_unsynced`).
    pub fn set_clock_synced(&mut self, synced: bool) {
        self.clock_synced = synced;
    }

    /// Replaces the opt-out list (reloaded on SIGHUP). The devices it names are dropped from
    /// here on, with their open sightings and those waiting in the batch. Returns how many
    /// sightings were dropped.
    pub fn set_opt_out(&mut self, opt_out: HashSet<DeviceKey>) -> usize {
        let open = self.sessions.forget(&opt_out);
        let waiting = self.batch.len();
        self.batch.retain(|s| !opt_out.contains(&s.device));
        self.settings.opt_out = opt_out;
        open + waiting - self.batch.len()
    }

    /// Closes every sighting and flushes the last batch (end of input, shutdown).
    pub fn finish(&mut self, sink: &mut dyn BatchSink) -> Result<(), Error> {
        self.sessions.close_all();
        self.drain_closing(sink)?;
        self.flush_batch(sink)
    }

    /// Emits queued closings a batch at a time, so closing many sightings at once never
    /// holds them all in memory as sightings.
    fn drain_closing(&mut self, sink: &mut dyn BatchSink) -> Result<(), Error> {
        loop {
            let more = self
                .sessions
                .drain_closing(self.settings.batch_max_sightings, &mut self.emitted);
            self.drain_emitted(sink)?;
            if !more {
                return Ok(());
            }
        }
    }

    fn drain_emitted(&mut self, sink: &mut dyn BatchSink) -> Result<(), Error> {
        if self.emitted.is_empty() {
            return Ok(());
        }
        let mut emitted = std::mem::take(&mut self.emitted);
        for e in emitted.drain(..) {
            if e.sighting.is_final {
                self.counters.sightings += 1;
            } else {
                self.counters.interim += 1;
            }
            if !self.batch.is_empty() && e.epoch != self.batch_epoch {
                self.flush_batch(sink)?;
            }
            if self.batch.is_empty() {
                self.batch_epoch = e.epoch;
                self.batch_opened = self.now_ms;
            }
            self.batch.push(e.sighting);
            if self.batch.len() >= self.settings.batch_max_sightings {
                self.flush_batch(sink)?;
            }
        }
        self.emitted = emitted;
        Ok(())
    }

    fn flush_batch(&mut self, sink: &mut dyn BatchSink) -> Result<(), Error> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let sightings = std::mem::replace(
            &mut self.batch,
            Vec::with_capacity(self.settings.batch_max_sightings),
        );
        self.counters.batches += 1;
        sink.put(Batch {
            epoch: self.batch_epoch,
            sent_at: Millis(self.now_ms),
            sightings,
        })
    }

    /// Frames seen, malformed frames, sightings tracked: for heartbeats.
    pub fn frames(&self) -> u64 {
        self.counters.frames
    }

    pub fn malformed(&self) -> u64 {
        all_rejects()
            .filter(|r| r.is_malformed())
            .map(|r| self.counters.rejects[r as usize])
            .sum()
    }

    pub fn summary(&self) -> Summary {
        let c = &self.counters;
        let types = [
            (FrameType::Management, "management"),
            (FrameType::Control, "control"),
            (FrameType::Data, "data"),
            (FrameType::Extension, "extension"),
        ];
        let mut s = Summary {
            frames: c.frames,
            frames_by_type: types
                .iter()
                .map(|(t, n)| (*n, c.by_type[*t as usize]))
                .collect(),
            probe_requests: c.probes,
            probe_requests_by_freq_mhz: c.by_freq.iter().copied().collect(),
            sightings: c.sightings,
            interim_updates: c.interim,
            evicted_sightings: self.sessions.evicted,
            linked_addresses: self.sessions.linked(),
            batches: c.batches,
            ..Summary::default()
        };
        for r in all_rejects() {
            let target = if r.is_malformed() {
                &mut s.malformed
            } else {
                &mut s.dropped
            };
            target.insert(r.name(), c.rejects[r as usize]);
        }
        s.dropped.insert("below_rssi_floor", c.below_floor);
        s.dropped.insert("duplicate_frame", c.duplicates);
        s.dropped.insert("no_signal", c.no_signal);
        s.dropped.insert("opt_out", c.opt_out);
        s.dropped.insert("no_epoch_key", c.no_key);
        s.dropped.insert("clock_unsynced", c.clock_unsynced);
        if let Some(d) = &self.devices {
            let global = d.iter().filter(|(_, _, g)| *g).count() as u64;
            s.devices.insert("global", global);
            s.devices.insert("local", d.len() as u64 - global);
        }
        s
    }
}

fn all_rejects() -> impl Iterator<Item = Reject> {
    [
        Reject::RadiotapTruncated,
        Reject::RadiotapVersion,
        Reject::RadiotapLength,
        Reject::RadiotapField,
        Reject::FrameTruncated,
        Reject::ProtocolVersion,
        Reject::BadFcs,
    ]
    .into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count(usize);

    impl BatchSink for Count {
        fn put(&mut self, batch: Batch) -> Result<(), Error> {
            self.0 += batch.sightings.len();
            Ok(())
        }
    }

    struct Keep(Vec<Batch>);

    impl BatchSink for Keep {
        fn put(&mut self, batch: Batch) -> Result<(), Error> {
            self.0.push(batch);
            Ok(())
        }
    }

    fn pipeline(fcs: FcsPolicy) -> Pipeline {
        let cfg = Config::from_toml_str(
            "version = 1\n[sensor]\nid = \"s\"\nsite = \"lab\"\n\
             [capture]\nrssi_floor_dbm = -128\n\
             [identity]\nsecret_env = \"UNUSED\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\
             [spool]\ndir = \"/tmp\"\n",
            std::path::Path::new("/"),
        )
        .expect("config");
        let keys = Keys::Tenant(firmware_config::Secret::from_bytes(
            *b"a-tenant-secret-of-some-length",
        ));
        let mut settings = PipelineSettings::from_config(&cfg, HashSet::new());
        settings.fcs_policy = fcs;
        Pipeline::new(settings, keys, false)
    }

    /// A real capture's frames through a pipeline whose clock is, then is not, synchronised.
    fn run(synced: bool) -> (Summary, usize) {
        let mut p = pipeline(FcsPolicy::TrustFlag);
        p.set_clock_synced(synced);
        let records = testkit::PcapRecords::read(
            &testkit::pcaps_dir().join("fryza/position_2_2024-02-08.pcap"),
        );
        let mut sink = Count(0);
        for r in records.records.iter().take(20_000) {
            let (ts, frame, truncated) = testkit::PcapRecords::frame(r);
            p.on_frame(ts, frame, truncated, &mut sink).expect("frame");
        }
        p.finish(&mut sink).expect("finish");
        (p.summary(), sink.0)
    }

    #[test]
    fn frames_before_the_clock_is_synchronised_are_dropped_unhashed_and_counted() {
        let (synced, sightings) = run(true);
        assert!(sightings > 10, "{sightings} sightings");
        assert_eq!(synced.dropped["clock_unsynced"], 0);
        let (unsynced, none) = run(false);
        assert_eq!(none, 0, "no sighting from an unsynchronised clock");
        assert_eq!(unsynced.dropped["clock_unsynced"], synced.frames);
        assert_eq!(unsynced.probe_requests, 0, "not even parsed");
    }

    #[test]
    fn frames_parsed_ahead_on_the_reader_thread_make_the_same_batches_as_in_line() {
        for (capture, fcs) in [
            ("fryza/position_2_2024-02-08.pcap", FcsPolicy::TrustFlag),
            // Frames of every type, some with a bad FCS.
            ("misc/aircrack-test1-3antenna.pcap", FcsPolicy::Verify),
        ] {
            let path = testkit::pcaps_dir().join(capture);
            let records = testkit::PcapRecords::read(&path);
            let mut in_line = pipeline(fcs);
            let mut a = Keep(Vec::new());
            for r in &records.records {
                let (ts, frame, truncated) = testkit::PcapRecords::frame(r);
                in_line
                    .on_frame(ts, frame, truncated, &mut a)
                    .expect("frame");
            }
            in_line.finish(&mut a).expect("finish");

            let mut ahead = pipeline(fcs);
            let mut b = Keep(Vec::new());
            let reader = crate::capture::ReadAhead::open(&path, ahead.fcs_policy()).expect("opens");
            let mut chunks = 0;
            while let crate::capture::Next::Chunk(c) =
                reader.next(std::time::Duration::from_secs(10))
            {
                chunks += 1;
                for (ts, frame) in c.frames() {
                    ahead.on_parsed(ts, frame, &mut b).expect("frame");
                }
                reader.recycle(c);
            }
            assert_eq!(reader.finish().expect("undamaged"), None);
            ahead.finish(&mut b).expect("finish");

            assert!(
                chunks > 1 || records.records.len() < 200,
                "{capture}: {chunks} chunks"
            );
            assert_eq!(ahead.summary(), in_line.summary(), "{capture}");
            assert!(!a.0.is_empty(), "{capture}");
            assert_eq!(b.0, a.0, "{capture}");
        }
    }
}
