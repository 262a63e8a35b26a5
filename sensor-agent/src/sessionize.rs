//! Sessionization: frames of one address become sightings of one device key, and the
//! randomized addresses of one device are linked into chains (`device_id::link`).
//!
//! A sighting opens with an address's first frame and closes when no frame has come for
//! `gap`; a sighting open longer than `interim` is also emitted as an interim update
//! (`final: false`) each time its duration crosses a multiple of `interim`. Time is event
//! time (frame timestamps), advanced by [`Sessionizer::advance`].
//!
//! The table is keyed by the raw address and holds the device key computed when the sighting
//! opened: it is the hashing cache, so the HMAC runs once per sighting, not per frame (the
//! address stays in this process's memory only, as DESIGN.md allows). Memory is bounded: at
//! `max_devices` the stalest 1/32 is closed early and counted as evicted (a small share, so
//! the sightings an eviction emits at once stay small beside the table). An open sighting
//! costs 36 bytes in the slab, a 12-byte slot in the map and 10 in the expiry heap, and a
//! randomized one holds a 24-byte chain; closing emits in sorted order
//! (epoch, first_seen, device key), so replay is deterministic and the order reveals nothing
//! about addresses.
//!
//! Expiry is a min-heap of `(deadline, address)`, the deadline in whole seconds, with one live
//! entry per open sighting: an entry whose deadline is before its sighting's `first + gap`
//! belongs to an earlier sighting of the same address and is skipped. A sweep pops only what
//! is due and re-queues sightings that saw frames since, so an idle sweep is O(1).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use device_id::link::{ChainId, Linker};
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

/// 36 bytes, packed to 2-byte alignment (every read is by value: no reference to a field is
/// ever taken). Times are offsets from `first`; `frames_max` packs the frame count (low 24
/// bits, saturating) and the strongest RSSI (high 8 bits).
#[repr(Rust, packed(2))]
#[derive(Clone, Copy)]
struct Open {
    first: i64,
    device: DeviceKey,
    last_ms: u32,
    frames_max: u32,
    rssi_sum: i32,
    fingerprint: Fingerprint,
    /// A randomized address's chain; a global address is its own link.
    chain: Option<ChainId>,
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

    fn sighting(
        &self,
        mac: &RawMac,
        epoch: u32,
        next: Option<DeviceKey>,
        linker: &Linker,
        is_final: bool,
    ) -> Emitted {
        let frames = self.frames();
        let mean = (f64::from(self.rssi_sum) / f64::from(frames.max(1)) * 10.0).round() / 10.0;
        Emitted {
            epoch,
            sighting: Sighting {
                device: self.device,
                link: Some(linker.link(self.chain, self.device)),
                next,
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

/// The open sightings by address: a map from address to slot (12 bytes a slot) beside a
/// dense slab of records. A hash table that fills up with the tombstones of removed entries
/// is rebuilt in place while it is at most half full, and reallocated at twice its size (two
/// tables at once) when it is fuller: with rotating addresses that happens at the cap. So
/// the map is sized for twice the cap, and holds small slots rather than the records.
struct Table {
    slots: HashMap<RawMac, u32>,
    records: Vec<Open>,
    free: Vec<u32>,
}

impl Table {
    fn with_capacity(n: usize) -> Table {
        Table {
            slots: HashMap::with_capacity(2 * n),
            records: Vec::with_capacity(n),
            free: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn contains_key(&self, mac: &RawMac) -> bool {
        self.slots.contains_key(mac)
    }

    fn get_slot(&self, mac: &RawMac) -> Option<(u32, &Open)> {
        self.slots.get(mac).map(|&i| (i, &self.records[i as usize]))
    }

    /// The sighting in `slot`, which must hold one.
    fn at(&self, slot: u32) -> &Open {
        &self.records[slot as usize]
    }

    fn get_mut(&mut self, mac: &RawMac) -> Option<&mut Open> {
        self.slots.get(mac).map(|&i| &mut self.records[i as usize])
    }

    fn insert(&mut self, mac: RawMac, open: Open) {
        let i = match self.free.pop() {
            Some(i) => {
                self.records[i as usize] = open;
                i
            }
            None => {
                self.records.push(open);
                u32::try_from(self.records.len() - 1).expect("fewer than 2^32 sightings")
            }
        };
        self.slots.insert(mac, i);
    }

    fn remove(&mut self, mac: &RawMac) -> Option<Open> {
        let i = self.slots.remove(mac)?;
        self.free.push(i);
        Some(self.records[i as usize])
    }

    /// Removes the sighting of `c`, if it is still the one in its slot.
    fn remove_queued(&mut self, c: &Closing) -> Option<Open> {
        let (mac, slot) = (c.mac, c.slot);
        (self.slots.get(&mac) == Some(&slot))
            .then(|| self.remove(&mac))
            .flatten()
    }

    fn iter(&self) -> impl Iterator<Item = (&RawMac, &Open)> {
        self.iter_slots().map(|(m, _, s)| (m, s))
    }

    fn iter_slots(&self) -> impl Iterator<Item = (&RawMac, u32, &Open)> {
        self.slots
            .iter()
            .map(|(m, &i)| (m, i, &self.records[i as usize]))
    }

    fn values(&self) -> impl Iterator<Item = &Open> {
        self.iter().map(|(_, s)| s)
    }
}

/// A sighting queued for closing: its address and its slot in the table, where its sort key
/// is read. 10 bytes, packed like [`Open`]: at shutdown every open sighting is queued at once,
/// and the queue then takes no more memory than the expiry heap freed for it.
#[repr(Rust, packed(2))]
#[derive(Clone, Copy)]
struct Closing {
    slot: u32,
    mac: RawMac,
}

impl Closing {
    fn of(mac: &RawMac, slot: u32) -> Closing {
        Closing { slot, mac: *mac }
    }

    /// The closing order: (first seen, device key).
    fn key(&self, open: &Table) -> (i64, DeviceKey) {
        let s = open.at(self.slot);
        (s.first, s.device)
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
    /// No key is held for this epoch (the sensor's epoch keys ran out): nothing kept.
    NoKey(u32),
}

/// An entry of the expiry heap: from when (in whole seconds since 1970, rounded up, so a
/// sighting closes at most a second of event time late) an open sighting of `mac` may have
/// expired. 10 bytes, packed: at 100 000 devices the heap is a tenth of the agent's memory.
#[repr(Rust, packed(2))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    secs: u32,
    mac: RawMac,
}

impl Due {
    fn at(deadline_ms: i64, mac: RawMac) -> Due {
        Due {
            secs: Due::secs(deadline_ms),
            mac,
        }
    }

    /// `ms` in whole seconds, rounded up, within u32 (1970 to 2106).
    fn secs(ms: i64) -> u32 {
        u32::try_from(ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0))
            .unwrap_or(if ms < 0 { 0 } else { u32::MAX })
    }
}

pub(crate) struct Sessionizer {
    hasher: Hasher,
    linker: Linker,
    open: Table,
    expiry: BinaryHeap<Reverse<Due>>,
    /// Sightings to close, sorted by [`Sessionizer::drain_closing`].
    closing: Vec<Closing>,
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
            linker: Linker::default(),
            // Allocated whole once: untouched pages cost no memory, and no resize ever
            // holds two tables at once.
            open: Table::with_capacity(max_devices),
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

    /// New randomized addresses that continued a chain.
    pub(crate) fn linked(&self) -> u64 {
        self.linker.continued()
    }

    /// Closes the open sighting `s` of `mac`: its last version (in the epoch of its start),
    /// and its chain let go.
    fn close(&mut self, mac: &RawMac, s: Open, out: &mut Vec<Emitted>) {
        let epoch = self.hasher.epoch_of(s.first);
        let next = self.hasher.next_key(mac, s.first);
        out.push(s.sighting(mac, epoch, next, &self.linker, true));
        if let Some(c) = s.chain {
            self.linker.release(c);
        }
    }

    /// Adds a frame from `mac`. An interim update that falls due is pushed to `out`; a
    /// sighting that must close first (gap passed, epoch changed, table full) is queued for
    /// [`Sessionizer::drain_closing`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn observe(
        &mut self,
        mac: &RawMac,
        ts_ms: i64,
        seq: u16,
        rssi: i8,
        ies: &[u8],
        opt_out: &HashSet<DeviceKey>,
        out: &mut Vec<Emitted>,
    ) -> Observed {
        let epoch = self.hasher.epoch_of(ts_ms);
        if !self.hasher.can_hash(ts_ms) {
            return Observed::NoKey(epoch);
        }
        if let Some(s) = self.open.get_mut(mac) {
            let same_epoch = self.hasher.epoch_of(s.first) == epoch;
            if same_epoch && ts_ms - s.last() <= self.gap_ms {
                let before = i64::from(s.last_ms) / self.interim_ms;
                s.add(ts_ms, rssi);
                if let Some(c) = s.chain {
                    self.linker.heard(c, ts_ms, seq, rssi);
                }
                if i64::from(s.last_ms) / self.interim_ms > before {
                    let next = self.hasher.next_key(mac, s.first);
                    out.push(s.sighting(mac, epoch, next, &self.linker, false));
                }
                return Observed::Updated;
            }
            // The gap passed before a sweep noticed, or a new epoch began: close it first.
            let s = self.open.remove(mac).expect("present: just looked up");
            self.close(mac, s, out);
        }
        let (epoch, device) = self.hasher.key(mac, ts_ms);
        if opt_out.contains(&device) {
            return Observed::OptedOut;
        }
        if self.open.len() >= self.max_devices {
            self.evict(out);
        }
        let fingerprint = crate::parse::fingerprint(ies);
        let chain = mac.is_local().then(|| {
            self.hasher
                .chain(&mut self.linker, mac, fingerprint, seq, ts_ms, rssi)
        });
        self.expiry
            .push(Reverse(Due::at(ts_ms + self.gap_ms, *mac)));
        self.open.insert(
            *mac,
            Open {
                first: ts_ms,
                device,
                last_ms: 0,
                frames_max: 1 | (u32::from(rssi as u8) << 24),
                rssi_sum: i32::from(rssi),
                fingerprint,
                chain,
            },
        );
        Observed::Opened(epoch, device)
    }

    /// Queues every sighting whose gap has passed at event time `now_ms` for closing.
    pub(crate) fn advance(&mut self, now_ms: i64) {
        self.linker.advance(now_ms);
        while let Some(&Reverse(Due { secs, mac })) = self.expiry.peek() {
            if i64::from(secs) * 1000 >= now_ms {
                break;
            }
            self.expiry.pop();
            let Some((slot, s)) = self.open.get_slot(&mac) else {
                continue; // closed already
            };
            if secs < Due::secs(s.first + self.gap_ms) {
                continue; // queued for an earlier sighting of this address
            }
            if now_ms - s.last() > self.gap_ms {
                // Stays in the table until drained: no second copy of it is made.
                self.closing.push(Closing::of(&mac, slot));
                self.closing_sorted = false;
            } else {
                self.expiry
                    .push(Reverse(Due::at(s.last() + self.gap_ms, mac)));
            }
        }
    }

    /// Forgets the open sightings of the devices in `keys` (an opt-out list reloaded):
    /// nothing more of them is emitted (their queued expiries and closings find no sighting).
    /// Returns how many.
    pub(crate) fn forget(&mut self, keys: &HashSet<DeviceKey>) -> usize {
        let gone: Vec<RawMac> = self
            .open
            .iter()
            .filter(|(_, s)| keys.contains(&{ s.device }))
            .map(|(mac, _)| *mac)
            .collect();
        for mac in &gone {
            self.open.remove(mac);
        }
        gone.len()
    }

    /// Queues every open sighting for closing (end of input, shutdown).
    pub(crate) fn close_all(&mut self) {
        // The heap is not needed any more; free it before the closing list grows.
        self.expiry = BinaryHeap::new();
        self.closing.reserve_exact(self.open.len());
        self.closing.extend(
            self.open
                .iter_slots()
                .map(|(mac, slot, _)| Closing::of(mac, slot)),
        );
        self.closing_sorted = false;
    }

    /// Emits up to `max` queued closings, in (epoch, first_seen, device key) order (the
    /// epoch follows from first_seen); returns whether more remain. The pipeline drains the
    /// queue completely before the next frame, so a queued sighting is never updated or
    /// reopened.
    pub(crate) fn drain_closing(&mut self, max: usize, out: &mut Vec<Emitted>) -> bool {
        if !self.closing_sorted {
            // Sorted descending so the next ones pop off the end.
            let open = &self.open;
            self.closing.sort_unstable_by_key(|c| Reverse(c.key(open)));
            self.closing_sorted = true;
        }
        for _ in 0..max {
            let Some(c) = self.closing.pop() else {
                break;
            };
            if let Some(s) = self.open.remove_queued(&c) {
                self.close(&{ c.mac }, s, out);
            }
        }
        if self.closing.is_empty() {
            self.closing = Vec::new();
            false
        } else {
            true
        }
    }

    /// Closes the stalest 1/32 of the tracked sightings to make room, and drops their
    /// entries from the expiry heap (with addresses that rotate, eviction is routine, and
    /// their entries would otherwise grow the heap past the table).
    fn evict(&mut self, out: &mut Vec<Emitted>) {
        let n = (self.max_devices / 32).max(1).min(self.open.len());
        if n == 0 {
            return;
        }
        // The n stalest by (last frame, device key), found without a 16-byte copy of every
        // sighting: the millisecond (after the stalest, 4 bytes) that the n-th falls in, then,
        // of the sightings last heard in that millisecond (in a burst of new devices, many),
        // the ones with the lowest device keys, kept in a heap no larger than needed.
        let oldest = self.open.values().map(Open::last).min().unwrap_or(0);
        let offset = |s: &Open| u32::try_from(s.last() - oldest).unwrap_or(u32::MAX);
        let mut offsets: Vec<u32> = self.open.values().map(offset).collect();
        let cut = *offsets.select_nth_unstable(n - 1).1;
        let tied_needed = n - offsets[..n - 1].iter().filter(|&&o| o < cut).count();
        drop(offsets);
        let mut tied = BinaryHeap::with_capacity(tied_needed + 1);
        for s in self.open.values().filter(|s| offset(s) == cut) {
            tied.push(s.device);
            if tied.len() > tied_needed {
                tied.pop();
            }
        }
        let last_tied = tied.peek().copied();
        drop(tied);
        let mut stale: Vec<Closing> = Vec::with_capacity(n);
        for (m, slot, s) in self.open.iter_slots() {
            let o = offset(s);
            if o < cut || (o == cut && Some(s.device) <= last_tied) {
                stale.push(Closing::of(m, slot));
            }
        }
        stale.sort_unstable_by_key(|c| c.key(&self.open));
        self.evicted += stale.len() as u64;
        for c in stale {
            let s = self.open.remove_queued(&c).expect("present: just listed");
            self.close(&{ c.mac }, s, out);
        }
        let open = &self.open;
        self.expiry
            .retain(|Reverse(d)| open.contains_key(&{ d.mac }));
    }
}

#[cfg(test)]
mod tests {
    use firmware_config::{Keys, Secret};

    use super::*;

    fn sessions(gap: u32, interim: u32, max: usize) -> Sessionizer {
        let h = Hasher::new(
            Keys::Tenant(Secret::from_bytes(b"0123456789abcdef".to_vec())),
            device_id::Epochs::new(45, 30),
        );
        Sessionizer::new(h, gap, interim, max)
    }

    fn mac(n: u32) -> RawMac {
        let b = n.to_be_bytes();
        RawMac::from_slice(&[0x3c, 0x22, b[0], b[1], b[2], b[3]]).expect("six bytes")
    }

    fn see(s: &mut Sessionizer, n: u32, ts: i64, rssi: i8, out: &mut Vec<Emitted>) -> Observed {
        s.observe(&mac(n), ts, 0, rssi, &[], &HashSet::new(), out)
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
        let seen = fresh.observe(&mac(9), 0, 0, -60, &[], &opt_out, &mut out);
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
    fn eviction_takes_the_stalest_and_breaks_ties_by_device_key() {
        let mut s = sessions(60, 300, 64);
        let mut out = vec![];
        see(&mut s, 0, 0, -60, &mut out);
        // 63 devices last heard in one millisecond: a burst of new arrivals.
        for d in 1..64 {
            see(&mut s, d, 5, -60, &mut out);
        }
        assert!(out.is_empty());
        see(&mut s, 100, 6, -60, &mut out); // the table is full: 64 / 32 = 2 go
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].sighting.first_seen, Millis(0), "the stalest");
        let tied = out[1].sighting.device;
        let mut rest = vec![];
        s.close_all();
        drain(&mut s, &mut rest);
        let left: Vec<DeviceKey> = rest
            .iter()
            .filter(|e| e.sighting.first_seen == Millis(5))
            .map(|e| e.sighting.device)
            .collect();
        assert_eq!(left.len(), 62);
        assert!(
            left.iter().all(|d| *d > tied),
            "of the tied, the lowest device key went"
        );
    }

    #[test]
    fn a_rotating_phone_keeps_one_link_and_a_global_address_is_its_own() {
        let mut s = sessions(60, 300, 100);
        let mut out = vec![];
        let local = |n: u32| {
            let b = n.to_be_bytes();
            RawMac::from_slice(&[0xda, 0xa1, b[1], b[2], b[3], 1]).expect("six bytes")
        };
        let none = HashSet::new();
        // One phone: a new address every burst, its sequence counter running on; and at
        // 60 s another phone of the same model, farther away, its counter elsewhere.
        for (n, t, seq, rssi) in [
            (0, 0, 100, -60),
            (1, 40_000, 107, -60),
            (99, 60_000, 3000, -85),
            (2, 95_000, 114, -60),
            (3, 130_000, 121, -60),
        ] {
            s.observe(&local(n), t, seq, rssi, &[], &none, &mut out);
        }
        see(&mut s, 7, 10_000, -60, &mut out);
        s.close_all();
        drain(&mut s, &mut out);
        let link_of = |first: i64| {
            out.iter()
                .find(|e| e.sighting.first_seen.0 == first)
                .and_then(|e| e.sighting.link)
                .expect("a link")
        };
        let phone = link_of(0);
        for t in [40_000, 95_000, 130_000] {
            assert_eq!(link_of(t), phone, "address at {t} ms");
        }
        assert_ne!(link_of(60_000), phone);
        let global = out
            .iter()
            .find(|e| e.sighting.first_seen.0 == 10_000)
            .expect("the global sighting");
        assert_eq!(
            global.sighting.link.map(|l| l.0),
            Some(global.sighting.device.0)
        );
        assert_eq!(s.linked(), 3);
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
