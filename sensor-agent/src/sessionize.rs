//! Sessionization: frames of one address become sightings of one device key.
//!
//! A sighting opens with an address's first frame and closes when no frame has come for
//! `gap`; a sighting open longer than `interim` is also emitted as an interim update
//! (`final: false`) each time its duration crosses a multiple of `interim`. Time is event
//! time (frame timestamps), advanced by [`Sessionizer::advance`].
//!
//! The table is keyed by the raw address and holds the device key computed when the sighting
//! opened: it is the hashing cache, so the HMAC runs once per sighting, not per frame (the
//! address stays in this process's memory only, as DESIGN.md allows). Memory is bounded: at
//! `max_devices` the stalest eighth is closed early and counted as evicted. An open sighting
//! costs 32 bytes in the table plus 16 in the expiry heap; closing emits in sorted order
//! (epoch, first_seen, device key), so replay is deterministic and the order reveals nothing
//! about addresses.
//!
//! Expiry is a min-heap of `(deadline, address)` with one live entry per open sighting: an
//! entry whose deadline is before its sighting's `first + gap` belongs to an earlier sighting
//! of the same address and is skipped. A sweep pops only what is due and re-queues sightings
//! that saw frames since, so an idle sweep is O(1).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use hashbrown::HashMap;
use wire::{DeviceKey, Fingerprint, IdentityClass, Millis, Sighting};

use crate::identity::Hasher;
use crate::mac::RawMac;

/// A sighting with the hashing epoch it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Emitted {
    pub epoch: u32,
    pub sighting: Sighting,
}

/// 32 bytes: times are offsets from `first`; `frames_max` packs the frame count (low 24
/// bits, saturating) and the strongest RSSI (high 8 bits).
struct Open {
    first: i64,
    device: DeviceKey,
    last_ms: u32,
    frames_max: u32,
    rssi_sum: i32,
    fingerprint: Fingerprint,
}

const FRAMES_MASK: u32 = 0x00ff_ffff;

impl Open {
    fn frames(&self) -> u32 {
        self.frames_max & FRAMES_MASK
    }

    fn rssi_max(&self) -> i8 {
        (self.frames_max >> 24) as u8 as i8
    }

    fn last(&self) -> i64 {
        self.first + i64::from(self.last_ms)
    }

    fn add(&mut self, ts_ms: i64, rssi: i8) {
        if ts_ms < self.first {
            // Out-of-order capture timestamps: keep offsets non-negative.
            let shift = (self.first - ts_ms).min(i64::from(u32::MAX - self.last_ms)) as u32;
            self.first -= i64::from(shift);
            self.last_ms += shift;
        } else {
            let d = (ts_ms - self.first).min(i64::from(u32::MAX)) as u32;
            self.last_ms = self.last_ms.max(d);
        }
        let frames = (self.frames() + 1).min(FRAMES_MASK);
        let max = self.rssi_max().max(rssi);
        self.frames_max = frames | (u32::from(max as u8) << 24);
        self.rssi_sum = self.rssi_sum.saturating_add(i32::from(rssi));
    }

    fn sighting(&self, mac: &RawMac, epoch: u32, is_final: bool) -> Emitted {
        let frames = self.frames();
        let mean = (f64::from(self.rssi_sum) / f64::from(frames.max(1)) * 10.0).round() / 10.0;
        Emitted {
            epoch,
            sighting: Sighting {
                device: self.device,
                class: class_of(mac),
                fingerprint: self.fingerprint,
                first_seen: Millis(self.first),
                last_seen: Millis(self.last()),
                frames,
                rssi_max: self.rssi_max(),
                rssi_mean: mean as f32,
                is_final,
            },
        }
    }
}

pub(crate) fn class_of(mac: &RawMac) -> IdentityClass {
    if mac.is_local() {
        IdentityClass::Local
    } else {
        IdentityClass::Global
    }
}

/// What one frame did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Observed {
    /// Added to an open sighting.
    Updated,
    /// Opened a new sighting of this device.
    Opened(u32, DeviceKey),
    /// The device is on the opt-out list: nothing kept.
    OptedOut,
}

pub(crate) struct Sessionizer {
    hasher: Hasher,
    open: HashMap<RawMac, Open>,
    expiry: BinaryHeap<Reverse<(i64, RawMac)>>,
    /// Sightings to close, sorted by [`Sessionizer::take_closing`].
    closing: Vec<(u32, i64, DeviceKey, RawMac)>,
    closing_sorted: bool,
    gap_ms: i64,
    interim_ms: i64,
    max_devices: usize,
    pub(crate) evicted: u64,
}

impl Sessionizer {
    pub(crate) fn new(
        hasher: Hasher,
        gap_secs: u32,
        interim_secs: u32,
        max_devices: usize,
    ) -> Sessionizer {
        Sessionizer {
            hasher,
            // Allocated whole once: untouched pages cost no memory, and no resize ever
            // holds two tables at once.
            open: HashMap::with_capacity(max_devices),
            expiry: BinaryHeap::with_capacity(max_devices),
            closing: Vec::new(),
            closing_sorted: true,
            gap_ms: i64::from(gap_secs) * 1000,
            interim_ms: i64::from(interim_secs) * 1000,
            max_devices,
            evicted: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.open.len()
    }

    /// Adds a frame from `mac`. An interim update that falls due is pushed to `out`; a
    /// sighting that must close first (gap passed, epoch changed, table full) is queued for
    /// [`Sessionizer::drain_closing`].
    pub(crate) fn observe(
        &mut self,
        mac: &RawMac,
        ts_ms: i64,
        rssi: i8,
        ies: &[u8],
        opt_out: &HashSet<DeviceKey>,
        out: &mut Vec<Emitted>,
    ) -> Observed {
        let epoch = self.hasher.epoch_of(ts_ms);
        if let Some(s) = self.open.get_mut(mac) {
            let same_epoch = self.hasher.epoch_of(s.first) == epoch;
            if same_epoch && ts_ms - s.last() <= self.gap_ms {
                let before = i64::from(s.last_ms) / self.interim_ms;
                s.add(ts_ms, rssi);
                if i64::from(s.last_ms) / self.interim_ms > before {
                    out.push(s.sighting(mac, epoch, false));
                }
                return Observed::Updated;
            }
            // The gap passed before a sweep noticed, or a new epoch began: close it first.
            let s = self.open.remove(mac).expect("present: just looked up");
            out.push(s.sighting(mac, self.hasher.epoch_of(s.first), true));
        }
        let (epoch, device) = self.hasher.key(mac, ts_ms);
        if opt_out.contains(&device) {
            return Observed::OptedOut;
        }
        if self.open.len() >= self.max_devices {
            self.evict(out);
        }
        self.expiry.push(Reverse((ts_ms + self.gap_ms, *mac)));
        self.open.insert(
            *mac,
            Open {
                first: ts_ms,
                device,
                last_ms: 0,
                frames_max: 1 | (u32::from(rssi as u8) << 24),
                rssi_sum: i32::from(rssi),
                fingerprint: crate::parse::fingerprint(ies),
            },
        );
        Observed::Opened(epoch, device)
    }

    /// Queues every sighting whose gap has passed at event time `now_ms` for closing.
    pub(crate) fn advance(&mut self, now_ms: i64) {
        while let Some(&Reverse((deadline, mac))) = self.expiry.peek() {
            if deadline >= now_ms {
                break;
            }
            self.expiry.pop();
            let Some(s) = self.open.get(&mac) else {
                continue; // closed already
            };
            if deadline < s.first + self.gap_ms {
                continue; // queued for an earlier sighting of this address
            }
            if now_ms - s.last() > self.gap_ms {
                // Stays in the table until drained: no second copy of it is made.
                let epoch = self.hasher.epoch_of(s.first);
                self.closing.push((epoch, s.first, s.device, mac));
                self.closing_sorted = false;
            } else {
                self.expiry.push(Reverse((s.last() + self.gap_ms, mac)));
            }
        }
    }

    /// Queues every open sighting for closing (end of input, shutdown).
    pub(crate) fn close_all(&mut self) {
        // The heap is not needed any more; free it before the closing list grows.
        self.expiry = BinaryHeap::new();
        let epoch_of = |h: &Hasher, s: &Open| h.epoch_of(s.first);
        let hasher = &self.hasher;
        self.closing.extend(
            self.open
                .iter()
                .map(|(mac, s)| (epoch_of(hasher, s), s.first, s.device, *mac)),
        );
        self.closing_sorted = false;
    }

    /// Emits up to `max` queued closings, in (epoch, first_seen, device key) order; returns
    /// whether more remain. The pipeline drains the queue completely before the next frame,
    /// so a queued sighting is never updated or reopened.
    pub(crate) fn drain_closing(&mut self, max: usize, out: &mut Vec<Emitted>) -> bool {
        if !self.closing_sorted {
            // Sorted descending so the next ones pop off the end.
            self.closing
                .sort_unstable_by_key(|&(epoch, first, device, _)| Reverse((epoch, first, device)));
            self.closing_sorted = true;
        }
        for _ in 0..max {
            let Some((epoch, _, _, mac)) = self.closing.pop() else {
                break;
            };
            if let Some(s) = self.open.remove(&mac) {
                out.push(s.sighting(&mac, epoch, true));
            }
        }
        if self.closing.is_empty() {
            self.closing = Vec::new();
            false
        } else {
            true
        }
    }

    /// Closes the stalest eighth of the tracked sightings to make room.
    fn evict(&mut self, out: &mut Vec<Emitted>) {
        let n = (self.max_devices / 8).max(1);
        let mut lasts: Vec<(i64, DeviceKey)> =
            self.open.values().map(|s| (s.last(), s.device)).collect();
        let nth = n.min(lasts.len()) - 1;
        lasts.select_nth_unstable(nth);
        let cutoff = lasts[nth];
        drop(lasts);
        let mut stale: Vec<(u32, i64, DeviceKey, RawMac)> = self
            .open
            .iter()
            .filter(|(_, s)| (s.last(), s.device) <= cutoff)
            .map(|(m, s)| (self.hasher.epoch_of(s.first), s.first, s.device, *m))
            .collect();
        stale.sort_unstable_by_key(|e| (e.0, e.1, e.2));
        self.evicted += stale.len() as u64;
        for (epoch, _, _, mac) in stale {
            let s = self.open.remove(&mac).expect("present: just listed");
            out.push(s.sighting(&mac, epoch, true));
        }
    }
}

#[cfg(test)]
mod tests {
    use firmware_config::Secret;

    use super::*;

    fn sessions(gap: u32, interim: u32, max: usize) -> Sessionizer {
        let h = Hasher::new(Secret::from_bytes(b"0123456789abcdef".to_vec()), 45);
        Sessionizer::new(h, gap, interim, max)
    }

    fn mac(n: u32) -> RawMac {
        let b = n.to_be_bytes();
        RawMac::from_slice(&[0x3c, 0x22, b[0], b[1], b[2], b[3]]).expect("six bytes")
    }

    fn see(s: &mut Sessionizer, n: u32, ts: i64, rssi: i8, out: &mut Vec<Emitted>) -> Observed {
        s.observe(&mac(n), ts, rssi, &[], &HashSet::new(), out)
    }

    fn drain(s: &mut Sessionizer, out: &mut Vec<Emitted>) {
        while s.drain_closing(3, out) {}
    }

    #[test]
    fn a_gap_splits_sightings() {
        let mut s = sessions(60, 300, 100);
        let mut out = vec![];
        assert!(matches!(
            see(&mut s, 1, 0, -60, &mut out),
            Observed::Opened(..)
        ));
        assert_eq!(see(&mut s, 1, 30_000, -50, &mut out), Observed::Updated);
        s.advance(90_000);
        drain(&mut s, &mut out);
        assert!(out.is_empty(), "60 s after the last frame it is still open");
        s.advance(90_001);
        drain(&mut s, &mut out);
        assert_eq!(out.len(), 1);
        let g = &out[0].sighting;
        assert_eq!((g.first_seen, g.last_seen), (Millis(0), Millis(30_000)));
        assert_eq!((g.frames, g.rssi_max, g.rssi_mean), (2, -50, -55.0));
        assert_eq!(g.class, IdentityClass::Global);
        assert!(g.is_final);
    }

    #[test]
    fn a_late_frame_after_the_gap_closes_and_reopens() {
        let mut s = sessions(60, 300, 100);
        let mut out = vec![];
        let Observed::Opened(_, first) = see(&mut s, 1, 0, -60, &mut out) else {
            panic!("opened")
        };
        assert_eq!(
            see(&mut s, 1, 61_000, -60, &mut out),
            Observed::Opened(0, first)
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sighting.last_seen, Millis(0));
    }

    #[test]
    fn long_stays_get_interim_updates() {
        let mut s = sessions(60, 300, 100);
        let mut out = vec![];
        for t in 0..=20 {
            see(&mut s, 1, t * 30_000, -60, &mut out);
        }
        let interim: Vec<_> = out.iter().filter(|e| !e.sighting.is_final).collect();
        assert_eq!(interim.len(), 2, "at 300 s and 600 s");
        assert_eq!(interim[0].sighting.last_seen, Millis(300_000));
        assert_eq!(interim[0].sighting.first_seen, Millis(0));
        s.close_all();
        drain(&mut s, &mut out);
        let last = out.last().expect("final");
        assert!(last.sighting.is_final);
        assert_eq!(last.sighting.frames, 21);
    }

    #[test]
    fn the_expiry_heap_closes_exactly_the_expired_and_requeues_the_active() {
        let mut s = sessions(60, 3600, 1000);
        let mut out = vec![];
        for d in 0..100 {
            see(&mut s, d, 0, -60, &mut out);
        }
        // Half keep talking; half go quiet.
        for t in (10_000..=120_000).step_by(10_000) {
            for d in 0..50 {
                see(&mut s, d, t, -60, &mut out);
            }
            s.advance(t);
            drain(&mut s, &mut out);
        }
        assert_eq!(out.len(), 50);
        assert!(out.iter().all(|e| e.sighting.frames == 1));
        assert_eq!(s.tracked(), 50);
        assert!(
            s.expiry.len() <= 100,
            "one live entry per sighting, few stale"
        );
    }

    #[test]
    fn closing_order_is_by_first_seen_then_device_key() {
        let mut s = sessions(60, 300, 1000);
        let mut out = vec![];
        for d in 0..40 {
            see(&mut s, d, i64::from(d % 4) * 1000, -60, &mut out);
        }
        s.close_all();
        drain(&mut s, &mut out);
        let keys: Vec<_> = out
            .iter()
            .map(|e| (e.sighting.first_seen, e.sighting.device))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 40);
    }

    #[test]
    fn opted_out_devices_leave_nothing() {
        let mut s = sessions(60, 300, 100);
        let mut out = vec![];
        let Observed::Opened(_, key) = see(&mut s, 9, 0, -60, &mut out) else {
            panic!("opened")
        };
        let mut fresh = sessions(60, 300, 100);
        let opt_out: HashSet<DeviceKey> = [key].into();
        let seen = fresh.observe(&mac(9), 0, -60, &[], &opt_out, &mut out);
        assert_eq!(seen, Observed::OptedOut);
        assert_eq!(fresh.tracked(), 0);
    }

    #[test]
    fn memory_is_bounded_and_eviction_counted() {
        let mut s = sessions(60, 300, 64);
        let mut out = vec![];
        for d in 0..1000 {
            see(&mut s, d, i64::from(d), -60, &mut out);
            assert!(s.tracked() <= 64);
        }
        assert!(s.evicted > 0);
        assert_eq!(out.len() as u64, s.evicted);
        assert_eq!(
            out[0].sighting.first_seen,
            Millis(0),
            "the stalest went first"
        );
    }

    #[test]
    fn packs_frames_and_rssi_without_loss() {
        let mut s = sessions(60, 86_400, 10);
        let mut out = vec![];
        see(&mut s, 1, 5_000, -90, &mut out);
        see(&mut s, 1, 1_000, -20, &mut out); // out of order: earlier than first
        see(&mut s, 1, 7_000, -128, &mut out);
        s.close_all();
        drain(&mut s, &mut out);
        let g = &out[0].sighting;
        assert_eq!((g.first_seen, g.last_seen), (Millis(1_000), Millis(7_000)));
        assert_eq!((g.frames, g.rssi_max), (3, -20));
        assert_eq!(g.rssi_mean, -79.3);
    }
}
