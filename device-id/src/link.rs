//! Linking one device's rotating addresses at the edge (wire crate docs, "Links").
//!
//! A *chain* is the run of randomized addresses one device used, as one sensor heard them.
//! When a new randomized address is first heard, [`Linker::open`] continues the chain it most
//! likely belongs to, among the chains with the same probe fingerprint whose last frame came
//! within [`HORIZON_MS`] and on the same UTC day:
//! - **sequence continuity** first: phones keep one 802.11 sequence counter across address
//!   changes, so the new address's first sequence number is a little ahead of the chain's
//!   last (by at most [`SEQ_SLACK`] plus [`SEQ_PER_SEC`] per second since: the sensor hears
//!   one channel of many, so it misses most of a device's frames). Of several such chains,
//!   the nearest in sequence wins;
//! - **timing and signal** otherwise, for devices that draw a new counter with each address:
//!   the chain whose last frame is the most recent, if between [`QUIET_MS`] (a burst is
//!   over: a device heard this close to a chain's last frame with an unrelated counter is
//!   another device) and [`BLIND_MS`] before, at a signal within [`RSSI_SPREAD_DB`] of the
//!   new frame's.
//!
//! Otherwise the address starts a chain. A chain's link is keyed like the device key and
//! names the day and the chain's first address ([`crate::EpochHasher::link_key`]).
//!
//! A wrong link between two phones of one model swaps or merges their chains; the count of
//! chains, which is what the collector counts, suffers less than the chains do.
//!
//! Memory: 24 bytes per live chain in a slab, plus one map entry per fingerprint heard within
//! the horizon; chains are freed once no open sighting holds them and their horizon passed.

use std::collections::HashMap;
use std::num::NonZeroU32;

use wire::{DeviceKey, Fingerprint, LinkKey};

use crate::EpochHasher;

/// A chain ends when no new address continued it for this long.
pub const HORIZON_MS: i64 = 10 * 60_000;
/// Without sequence continuity, a new address continues a chain only this soon after the
/// chain's last frame (a device that rotates per burst bursts again within a minute or so).
pub const BLIND_MS: i64 = 90_000;
/// ... and no sooner than this.
pub const QUIET_MS: i64 = 2_000;
/// Sequence numbers a device may send between two frames the sensor hears, at once ...
pub const SEQ_SLACK: i64 = 64;
/// ... and per second since: a busy phone sends a few dozen probes per second of scanning.
pub const SEQ_PER_SEC: i64 = 16;
/// ... and never more than half the counter's range (4096), or any counter would do.
const SEQ_MAX_STEP: i64 = 2048;
/// Without sequence continuity, the new frame's signal is within this of the chain's last.
pub const RSSI_SPREAD_DB: i16 = 12;
/// How often [`Linker::advance`] frees the chains past their horizon, in event time.
const SWEEP_EVERY_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
const NONE: u32 = u32::MAX;
const SEQ_MASK: u16 = 0x0fff;

/// A handle to a chain, held by the sighting of the address it was opened for: its slab
/// index + 1 (so an `Option<ChainId>` takes 4 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainId(NonZeroU32);

impl ChainId {
    fn new(index: u32) -> ChainId {
        ChainId(NonZeroU32::new(index + 1).expect("fewer than 2^32 - 1 chains"))
    }

    fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// 24 bytes.
#[derive(Clone, Copy, Debug)]
struct Chain {
    link: LinkKey,
    /// The last frame heard of any of its addresses.
    last_ms: i64,
    /// The next chain with the same fingerprint, or [`NONE`].
    next: u32,
    /// The sequence number of that frame.
    seq: u16,
    rssi: i8,
    /// Open sightings holding it (saturating: a chain with 255 is never freed early).
    holders: u8,
}

/// The live chains of one sensor.
#[derive(Default)]
pub struct Linker {
    chains: Vec<Chain>,
    free: Vec<u32>,
    /// The first chain of each fingerprint's list.
    heads: HashMap<Fingerprint, u32>,
    /// Chains continued by a later address (not counting new chains).
    continued: u64,
    /// Event time of the next sweep.
    next_sweep: i64,
}

impl Linker {
    /// The chain of a randomized address first heard at `ts_ms` (its first frame's sequence
    /// number `seq` and signal `rssi`): an existing chain it continues, or a new one keyed by
    /// `hasher` (the epoch of `ts_ms`) and the address `octets`. The caller holds the chain
    /// until the address's sighting closes ([`Linker::release`]).
    pub fn open(
        &mut self,
        hasher: &EpochHasher,
        octets: &[u8; 6],
        fingerprint: Fingerprint,
        seq: u16,
        ts_ms: i64,
        rssi: i8,
    ) -> ChainId {
        let day = ts_ms.div_euclid(DAY_MS);
        // (sequence step, index) of the nearest in sequence; (last, index) of the most recent.
        let mut by_seq: Option<(i64, u32)> = None;
        let mut by_time: Option<(i64, u32)> = None;
        let mut i = self.heads.get(&fingerprint).copied().unwrap_or(NONE);
        while i != NONE {
            let c = &self.chains[i as usize];
            let dt = ts_ms - c.last_ms;
            if (0..=HORIZON_MS).contains(&dt) && c.last_ms.div_euclid(DAY_MS) == day {
                let step = i64::from(seq.wrapping_sub(c.seq) & SEQ_MASK);
                let allowed = (SEQ_SLACK + SEQ_PER_SEC * dt / 1000).min(SEQ_MAX_STEP);
                if (1..=allowed).contains(&step) && by_seq.is_none_or(|(s, _)| step < s) {
                    by_seq = Some((step, i));
                }
                let near = (i16::from(rssi) - i16::from(c.rssi)).abs() <= RSSI_SPREAD_DB;
                if (QUIET_MS..=BLIND_MS).contains(&dt)
                    && near
                    && by_time.is_none_or(|(t, _)| c.last_ms > t)
                {
                    by_time = Some((c.last_ms, i));
                }
            }
            i = c.next;
        }
        if let Some((_, i)) = by_seq.or(by_time) {
            self.continued += 1;
            let c = &mut self.chains[i as usize];
            c.holders = c.holders.saturating_add(1);
            c.last_ms = ts_ms;
            c.seq = seq;
            c.rssi = rssi;
            return ChainId::new(i);
        }
        let chain = Chain {
            link: hasher.link_key(day as u32, octets),
            last_ms: ts_ms,
            next: self.heads.get(&fingerprint).copied().unwrap_or(NONE),
            seq,
            rssi,
            holders: 1,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.chains[i as usize] = chain;
                i
            }
            None => {
                self.chains.push(chain);
                u32::try_from(self.chains.len() - 1).expect("fewer than 2^32 - 1 chains")
            }
        };
        self.heads.insert(fingerprint, i);
        ChainId::new(i)
    }

    /// A later frame of an address of the chain.
    pub fn heard(&mut self, id: ChainId, ts_ms: i64, seq: u16, rssi: i8) {
        let c = &mut self.chains[id.index()];
        if ts_ms >= c.last_ms {
            c.last_ms = ts_ms;
            c.seq = seq;
            c.rssi = rssi;
        }
    }

    /// The link of a sighting of the device `device` holding `chain`: its chain's, or for a
    /// globally addressed device (no chain), its device key.
    pub fn link(&self, chain: Option<ChainId>, device: DeviceKey) -> LinkKey {
        match chain {
            Some(id) => self.chains[id.index()].link,
            None => LinkKey(device.0),
        }
    }

    /// The sighting that held the chain closed.
    pub fn release(&mut self, id: ChainId) {
        let c = &mut self.chains[id.index()];
        if c.holders < u8::MAX {
            c.holders = c.holders.saturating_sub(1);
        }
    }

    /// Moves event time to `now_ms`: every [`SWEEP_EVERY_MS`], frees the chains no sighting
    /// holds whose horizon passed (a chain outlives its horizon by at most that).
    pub fn advance(&mut self, now_ms: i64) {
        if now_ms >= self.next_sweep {
            self.next_sweep = now_ms + SWEEP_EVERY_MS;
            self.sweep(now_ms);
        }
    }

    fn sweep(&mut self, now_ms: i64) {
        let (chains, free) = (&mut self.chains, &mut self.free);
        self.heads.retain(|_, head| {
            let (mut prev, mut i) = (NONE, *head);
            while i != NONE {
                let c = chains[i as usize];
                if c.holders == 0 && now_ms - c.last_ms > HORIZON_MS {
                    match prev {
                        NONE => *head = c.next,
                        p => chains[p as usize].next = c.next,
                    }
                    free.push(i);
                } else {
                    prev = i;
                }
                i = c.next;
            }
            *head != NONE
        });
    }

    /// Chains alive (held, or within their horizon when last swept).
    #[cfg(test)]
    fn chains(&self) -> usize {
        self.chains.len() - self.free.len()
    }

    /// New addresses that continued a chain.
    pub fn continued(&self) -> u64 {
        self.continued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: Fingerprint = Fingerprint(0xabcd);

    fn hasher() -> EpochHasher {
        EpochHasher::new(&crate::epoch_key(b"tenant-secret-0123456789", 429))
    }

    /// A randomized address's link.
    fn link(l: &Linker, id: ChainId) -> LinkKey {
        l.link(Some(id), DeviceKey(0))
    }

    #[test]
    fn a_global_address_is_its_own_link() {
        let key = DeviceKey(0x9f86_d081_884c_7d65);
        assert_eq!(Linker::default().link(None, key), LinkKey(key.0));
    }

    fn addr(n: u8) -> [u8; 6] {
        [0xda, 0xa1, 0x19, 0, 0, n]
    }

    #[test]
    fn a_running_counter_links_a_new_address_to_its_chain_not_a_neighbours() {
        let (h, mut l) = (hasher(), Linker::default());
        let a = l.open(&h, &addr(1), FP, 100, 0, -50);
        let b = l.open(&h, &addr(2), FP, 3000, 500, -50);
        assert_ne!(a, b, "3000 is not a step from 100");
        l.heard(a, 1_000, 104, -50);
        l.heard(b, 1_200, 3010, -50);
        // Both go quiet; a minute later two new addresses appear, each carrying on a counter.
        let b2 = l.open(&h, &addr(3), FP, 3040, 61_000, -70);
        let a2 = l.open(&h, &addr(4), FP, 131, 61_500, -70);
        assert_eq!((a2, b2), (a, b));
        assert_eq!(link(&l, a2), link(&l, a));
        assert_ne!(link(&l, a), link(&l, b));
        assert_eq!(l.continued(), 2);
        // Another fingerprint never continues them.
        let c = l.open(&h, &addr(5), Fingerprint(1), 132, 62_000, -70);
        assert_ne!(c, a);
    }

    #[test]
    fn a_fresh_counter_links_only_soon_and_at_a_similar_signal() {
        let (h, mut l) = (hasher(), Linker::default());
        let a = l.open(&h, &addr(1), FP, 100, 0, -50);
        l.release(a);
        assert_eq!(l.open(&h, &addr(2), FP, 3000, 30_000, -55), a, "soon, near");
        assert_ne!(l.open(&h, &addr(3), FP, 1000, 60_000, -80), a, "too weak");
        let late = l.open(&h, &addr(4), FP, 2000, 30_000 + BLIND_MS + 1, -55);
        assert_ne!(late, a, "too late without a counter");
    }

    #[test]
    fn chains_end_at_their_horizon_and_at_midnight() {
        let (h, mut l) = (hasher(), Linker::default());
        let a = l.open(&h, &addr(1), FP, 100, 0, -50);
        let after = l.open(&h, &addr(2), FP, 101, HORIZON_MS + 1, -50);
        assert_ne!(after, a, "past the horizon");
        let evening = DAY_MS - 30_000;
        let e = l.open(&h, &addr(3), FP, 500, evening, -50);
        let morning = l.open(&h, &addr(4), FP, 501, DAY_MS + 1_000, -50);
        assert_ne!(morning, e, "not across midnight");
        assert_eq!(
            link(&l, morning),
            h.link_key(1, &addr(4)),
            "named by its day"
        );
        assert_eq!(link(&l, e), h.link_key(0, &addr(3)));
    }

    #[test]
    fn sweeping_frees_released_chains_past_their_horizon_and_reuses_them() {
        let (h, mut l) = (hasher(), Linker::default());
        let ids: Vec<ChainId> = (0..10)
            .map(|n| l.open(&h, &addr(n), Fingerprint(u32::from(n)), 0, 0, -50))
            .collect();
        for &id in &ids[..6] {
            l.release(id);
        }
        l.sweep(HORIZON_MS);
        assert_eq!(l.chains(), 10, "within the horizon");
        l.sweep(HORIZON_MS + 1);
        assert_eq!(l.chains(), 4, "the held ones stay");
        for (n, &id) in ids.iter().enumerate().skip(6) {
            assert_eq!(link(&l, id), h.link_key(0, &addr(n as u8)));
        }
        let again = l.open(&h, &addr(99), FP, 0, HORIZON_MS + 2, -50);
        assert!(ids[..6].contains(&again), "a freed slot is reused");
        assert_eq!(l.chains.len(), 10);
    }
}
