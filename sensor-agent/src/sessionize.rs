//! Sessionization: frames of one device become sightings.
//!
//! A sighting opens with a device's first frame and closes when no frame has come for
//! `gap`; a sighting open for longer than `interim` is also emitted as an interim update
//! (`final: false`) every `interim`. Time is event time (frame timestamps), advanced by
//! [`Sessionizer::advance`]. Memory is bounded: at `max_devices` the stalest sightings are
//! closed early and counted as evicted. Emission order is sorted, so replay is deterministic.

use hashbrown::HashMap;
use wire::{DeviceKey, Fingerprint, IdentityClass, Millis, Sighting};

/// A sighting with the hashing epoch it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Emitted {
    pub epoch: u32,
    pub sighting: Sighting,
}

struct Open {
    first: i64,
    last: i64,
    last_emit: i64,
    frames: u32,
    rssi_sum: i64,
    rssi_max: i8,
    epoch: u32,
    class: IdentityClass,
    fingerprint: Fingerprint,
}

impl Open {
    fn sighting(&self, device: DeviceKey, is_final: bool) -> Emitted {
        let mean = (self.rssi_sum as f64 / f64::from(self.frames.max(1)) * 10.0).round() / 10.0;
        Emitted {
            epoch: self.epoch,
            sighting: Sighting {
                device,
                class: self.class,
                fingerprint: self.fingerprint,
                first_seen: Millis(self.first),
                last_seen: Millis(self.last),
                frames: self.frames,
                rssi_max: self.rssi_max,
                rssi_mean: mean as f32,
                is_final,
            },
        }
    }
}

/// One observation of a device.
pub(crate) struct Observation {
    pub ts_ms: i64,
    pub epoch: u32,
    pub device: DeviceKey,
    pub class: IdentityClass,
    pub fingerprint: Fingerprint,
    pub rssi_dbm: i8,
}

pub(crate) struct Sessionizer {
    open: HashMap<DeviceKey, Open>,
    gap_ms: i64,
    interim_ms: i64,
    max_devices: usize,
    closing: Vec<(DeviceKey, Open)>,
    pub(crate) evicted: u64,
}

impl Sessionizer {
    pub(crate) fn new(gap_secs: u32, interim_secs: u32, max_devices: usize) -> Sessionizer {
        Sessionizer {
            open: HashMap::with_capacity(max_devices.min(1 << 16)),
            gap_ms: i64::from(gap_secs) * 1000,
            interim_ms: i64::from(interim_secs) * 1000,
            max_devices,
            closing: Vec::new(),
            evicted: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.open.len()
    }

    /// Adds an observation; returns whether it opened a new sighting. An interim update that
    /// falls due is pushed to `out`.
    pub(crate) fn observe(&mut self, o: &Observation, out: &mut Vec<Emitted>) -> bool {
        if let Some(s) = self.open.get_mut(&o.device) {
            if o.ts_ms - s.last <= self.gap_ms {
                s.first = s.first.min(o.ts_ms);
                s.last = s.last.max(o.ts_ms);
                s.frames = s.frames.saturating_add(1);
                s.rssi_sum += i64::from(o.rssi_dbm);
                s.rssi_max = s.rssi_max.max(o.rssi_dbm);
                if s.last - s.last_emit >= self.interim_ms {
                    s.last_emit = s.last;
                    out.push(s.sighting(o.device, false));
                }
                return false;
            }
            // The gap passed before a sweep noticed: close the old sighting first.
            let old = self.open.remove(&o.device).expect("present: just looked up");
            out.push(old.sighting(o.device, true));
        }
        if self.open.len() >= self.max_devices {
            self.evict(out);
        }
        self.open.insert(
            o.device,
            Open {
                first: o.ts_ms,
                last: o.ts_ms,
                last_emit: o.ts_ms,
                frames: 1,
                rssi_sum: i64::from(o.rssi_dbm),
                rssi_max: o.rssi_dbm,
                epoch: o.epoch,
                class: o.class,
                fingerprint: o.fingerprint,
            },
        );
        true
    }

    /// Closes every sighting whose gap has passed at event time `now_ms`.
    pub(crate) fn advance(&mut self, now_ms: i64, out: &mut Vec<Emitted>) {
        let gap = self.gap_ms;
        self.closing
            .extend(self.open.extract_if(|_, s| now_ms - s.last > gap));
        self.emit_closing(out);
    }

    /// Closes every open sighting (end of input, shutdown).
    pub(crate) fn close_all(&mut self, out: &mut Vec<Emitted>) {
        self.closing.extend(self.open.drain());
        self.emit_closing(out);
    }

    /// Closes the stalest eighth of the tracked sightings to make room.
    fn evict(&mut self, out: &mut Vec<Emitted>) {
        let n = (self.max_devices / 8).max(1);
        let mut lasts: Vec<(i64, DeviceKey)> =
            self.open.iter().map(|(k, s)| (s.last, *k)).collect();
        let nth = n.min(lasts.len()) - 1;
        lasts.select_nth_unstable(nth);
        let cutoff = lasts[nth];
        self.closing
            .extend(self.open.extract_if(|k, s| (s.last, *k) <= cutoff));
        self.evicted += self.closing.len() as u64;
        self.emit_closing(out);
    }

    fn emit_closing(&mut self, out: &mut Vec<Emitted>) {
        self.closing
            .sort_unstable_by_key(|(k, s)| (s.epoch, s.first, *k));
        out.extend(self.closing.drain(..).map(|(k, s)| s.sighting(k, true)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(device: u64, ts_ms: i64, rssi: i8) -> Observation {
        Observation {
            ts_ms,
            epoch: 1,
            device: DeviceKey(device),
            class: IdentityClass::Global,
            fingerprint: Fingerprint(7),
            rssi_dbm: rssi,
        }
    }

    #[test]
    fn a_gap_splits_sightings() {
        let mut s = Sessionizer::new(60, 300, 100);
        let mut out = vec![];
        assert!(s.observe(&obs(1, 0, -60), &mut out));
        assert!(!s.observe(&obs(1, 30_000, -50), &mut out));
        s.advance(90_000, &mut out);
        assert!(out.is_empty(), "60 s after the last frame it is still open");
        s.advance(90_001, &mut out);
        assert_eq!(out.len(), 1);
        let g = &out[0].sighting;
        assert_eq!((g.first_seen, g.last_seen), (Millis(0), Millis(30_000)));
        assert_eq!((g.frames, g.rssi_max, g.rssi_mean), (2, -50, -55.0));
        assert!(g.is_final);
    }

    #[test]
    fn a_late_frame_after_the_gap_closes_and_reopens() {
        let mut s = Sessionizer::new(60, 300, 100);
        let mut out = vec![];
        s.observe(&obs(1, 0, -60), &mut out);
        assert!(s.observe(&obs(1, 61_000, -60), &mut out));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sighting.last_seen, Millis(0));
    }

    #[test]
    fn long_stays_get_interim_updates() {
        let mut s = Sessionizer::new(60, 300, 100);
        let mut out = vec![];
        for t in 0..=20 {
            s.observe(&obs(1, t * 30_000, -60), &mut out);
        }
        let interim: Vec<_> = out.iter().filter(|e| !e.sighting.is_final).collect();
        assert_eq!(interim.len(), 2, "at 300 s and 600 s");
        assert_eq!(interim[0].sighting.last_seen, Millis(300_000));
        assert_eq!(interim[0].sighting.first_seen, Millis(0));
        s.close_all(&mut out);
        let last = out.last().expect("final");
        assert!(last.sighting.is_final);
        assert_eq!(last.sighting.frames, 21);
    }

    #[test]
    fn memory_is_bounded_and_eviction_counted() {
        let mut s = Sessionizer::new(60, 300, 64);
        let mut out = vec![];
        for d in 0..1000 {
            s.observe(&obs(d, d as i64, -60), &mut out);
            assert!(s.tracked() <= 64);
        }
        assert!(s.evicted > 0);
        assert_eq!(out.len() as u64, s.evicted);
        // The stalest went first.
        assert_eq!(out[0].sighting.device, DeviceKey(0));
    }
}
