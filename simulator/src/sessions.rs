//! Frames to sightings and sightings to batches, as the agent does it: frames below its RSSI
//! floor are dropped, damaged ones too; a sighting of one
//! address at one sensor closes `gap` after its last frame; randomized addresses are linked
//! into chains by the agent's own linker (`device_id::link`), from the cues each device
//! family really gives (its sequence counter, burst timing, signal); batches close by size,
//! by age in event time, or when the epoch changes. The truth uses the sightings; the fast mode writes
//! the batches as the agents' MQTT envelopes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use device_id::link::{ChainId, Linker};
use device_id::{epoch_key, EpochHasher, Epochs};
use firmware_config::Secret;
use wire::{DeviceKey, Envelope, Fingerprint, IdentityClass, Millis, Sighting};

use crate::pcap::NOISE;
use crate::radio::{Heard, CORRUPT};
use crate::scenario::Scenario;
use crate::world::World;

/// A closed sighting, with what the simulator knows about it.
#[derive(Clone, Debug)]
pub struct Closed {
    pub sensor: u32,
    pub device: u32,
    pub epoch: u32,
    pub sighting: Sighting,
    /// Union of the frames' `activity::kind` bits.
    pub kinds: u8,
    /// When the agent closes it: its sweep, once the gap has passed since the last frame
    /// (the simulator finds out later, at the sensor's next frame).
    pub closed_ms: i64,
}

struct Open {
    first: i64,
    last: i64,
    frames: u32,
    rssi_max: i8,
    rssi_sum: i64,
    device: u32,
    kinds: u8,
    chain: Option<ChainId>,
}

#[derive(Default)]
struct PerSensor {
    open: HashMap<[u8; 6], Open>,
    expiry: BinaryHeap<Reverse<(i64, [u8; 6])>>,
    linker: Linker,
}

pub struct Sessions {
    floor: i8,
    gap_ms: i64,
    epochs: Epochs,
    secret: Secret,
    keys: HashMap<u32, EpochHasher>,
    sensors: Vec<PerSensor>,
    /// Fingerprint by device (its model's probe elements), shared by every shard.
    fingerprints: Arc<[Fingerprint]>,
}

impl Sessions {
    pub fn new(w: &World, secret: &[u8], s: &Scenario, fingerprints: Arc<[Fingerprint]>) -> Self {
        let gap_secs = s.output.sighting_gap_secs;
        Sessions {
            floor: s.output.rssi_floor_dbm,
            gap_ms: i64::from(gap_secs) * 1000,
            epochs: Epochs::new(s.city.epoch_days, s.city.bridge_days),
            secret: Secret::from_bytes(secret.to_vec()),
            keys: HashMap::new(),
            sensors: (0..w.sensors.len()).map(|_| PerSensor::default()).collect(),
            fingerprints,
        }
    }

    pub fn epoch_of(&self, ms: i64) -> u32 {
        self.epochs.epoch_of(ms)
    }

    /// The key sensors publish for `mac` in `epoch`.
    pub fn key(&mut self, epoch: u32, mac: &[u8; 6]) -> DeviceKey {
        hasher(&mut self.keys, &self.secret, epoch).device_key(mac)
    }

    /// Feeds one frame; frames of one sensor must come in time order.
    pub fn feed(&mut self, h: &Heard, out: &mut Vec<Closed>) {
        if h.flags & (CORRUPT | NOISE) != 0 || h.rssi < self.floor {
            return;
        }
        let ms = h.t.div_euclid(1000);
        self.expire(h.sensor, ms, out);
        let epoch = self.epoch_of(ms);
        let gap = self.gap_ms;
        let same_epoch = |o: &Open, e: u32, s: &Self| s.epoch_of(o.first) == e;
        let ps = &self.sensors[h.sensor as usize];
        let extend = ps
            .open
            .get(&h.mac)
            .is_some_and(|o| same_epoch(o, epoch, self) && ms - o.last <= gap);
        if !extend {
            if let Some(o) = self.sensors[h.sensor as usize].open.remove(&h.mac) {
                let c = self.close(h.sensor, &h.mac, o);
                out.push(c);
            }
        }
        if !self.sensors[h.sensor as usize].open.contains_key(&h.mac) {
            let fingerprint = self.fingerprints[h.device as usize];
            let local = h.mac[0] & 0x02 != 0;
            let chain = local.then(|| {
                let hasher = hasher(&mut self.keys, &self.secret, epoch);
                let linker = &mut self.sensors[h.sensor as usize].linker;
                linker.open(hasher, &h.mac, fingerprint, h.seq, ms, h.rssi)
            });
            let ps = &mut self.sensors[h.sensor as usize];
            ps.expiry.push(Reverse((ms + gap, h.mac)));
            ps.open.insert(
                h.mac,
                Open {
                    first: ms,
                    last: ms,
                    frames: 0,
                    rssi_max: i8::MIN,
                    rssi_sum: 0,
                    device: h.device,
                    kinds: 0,
                    chain,
                },
            );
        }
        let ps = &mut self.sensors[h.sensor as usize];
        let o = ps.open.get_mut(&h.mac).expect("opened above");
        if let Some(c) = o.chain {
            ps.linker.heard(c, ms, h.seq, h.rssi);
        }
        o.last = o.last.max(ms);
        o.frames += 1;
        o.rssi_max = o.rssi_max.max(h.rssi);
        o.rssi_sum += i64::from(h.rssi);
        o.kinds |= h.flags;
    }

    /// Closes the sightings of `sensor` whose gap has passed at `now_ms`.
    pub fn expire(&mut self, sensor: u32, now_ms: i64, out: &mut Vec<Closed>) {
        self.sensors[sensor as usize].linker.advance(now_ms);
        loop {
            let ps = &mut self.sensors[sensor as usize];
            let Some(&Reverse((deadline, mac))) = ps.expiry.peek() else {
                return;
            };
            if deadline >= now_ms {
                return;
            }
            ps.expiry.pop();
            let Some(o) = ps.open.get(&mac) else { continue };
            if now_ms - o.last > self.gap_ms {
                let o = ps.open.remove(&mac).expect("present");
                let c = self.close(sensor, &mac, o);
                out.push(c);
            } else {
                ps.expiry.push(Reverse((o.last + self.gap_ms, mac)));
            }
        }
    }

    /// Closes everything (end of the simulation), in (first_seen, key) order per sensor.
    pub fn close_all(&mut self, out: &mut Vec<Closed>) {
        for sensor in 0..self.sensors.len() {
            let open: Vec<([u8; 6], Open)> = self.sensors[sensor].open.drain().collect();
            self.sensors[sensor].expiry.clear();
            let mut closed: Vec<Closed> = open
                .into_iter()
                .map(|(mac, o)| self.close(sensor as u32, &mac, o))
                .collect();
            closed.sort_by_key(|c| (c.sighting.first_seen.0, c.sighting.device));
            out.extend(closed);
        }
    }

    fn close(&mut self, sensor: u32, mac: &[u8; 6], o: Open) -> Closed {
        let epoch = self.epoch_of(o.first);
        let device = self.key(epoch, mac);
        let linker = &mut self.sensors[sensor as usize].linker;
        let link = linker.link(o.chain, device);
        if let Some(c) = o.chain {
            linker.release(c);
        }
        let next = self.epochs.bridge_to(o.first).map(|e| self.key(e, mac));
        let mean = (o.rssi_sum as f64 / f64::from(o.frames.max(1)) * 10.0).round() / 10.0;
        Closed {
            sensor,
            device: o.device,
            epoch,
            sighting: Sighting {
                device,
                link: Some(link),
                next,
                class: if mac[0] & 0x02 != 0 {
                    IdentityClass::Local
                } else {
                    IdentityClass::Global
                },
                fingerprint: self.fingerprints[o.device as usize],
                first_seen: Millis(o.first),
                last_seen: Millis(o.last),
                frames: o.frames,
                rssi_max: o.rssi_max,
                rssi_mean: mean as f32,
                is_final: true,
            },
            kinds: o.kinds,
            closed_ms: o.last + self.gap_ms,
        }
    }
}

/// The keyed hash state of `epoch`, made once per epoch.
fn hasher<'a>(
    keys: &'a mut HashMap<u32, EpochHasher>,
    secret: &Secret,
    epoch: u32,
) -> &'a EpochHasher {
    keys.entry(epoch)
        .or_insert_with(|| EpochHasher::new(&epoch_key(secret.expose(), epoch)))
}

/// Batches of one sensor, as the agent closes them.
pub struct Batcher {
    sensor: String,
    site: String,
    max: usize,
    max_age_ms: i64,
    next_seq: u64,
    current: Vec<Sighting>,
    epoch: u32,
    opened_ms: i64,
}

impl Batcher {
    pub fn new(sensor: String, site: String, max: u32, max_age_secs: u32) -> Self {
        Batcher {
            sensor,
            site,
            max: max as usize,
            max_age_ms: i64::from(max_age_secs) * 1000,
            next_seq: 1,
            current: Vec::new(),
            epoch: 0,
            opened_ms: 0,
        }
    }

    /// Adds a sighting that closed at `now_ms`; returns the batches that closed.
    pub fn push(&mut self, now_ms: i64, epoch: u32, s: Sighting, out: &mut Vec<Envelope>) {
        if !self.current.is_empty()
            && (epoch != self.epoch || now_ms - self.opened_ms >= self.max_age_ms)
        {
            self.flush(now_ms, out);
        }
        if self.current.is_empty() {
            self.epoch = epoch;
            self.opened_ms = now_ms;
        }
        self.current.push(s);
        if self.current.len() >= self.max {
            self.flush(now_ms, out);
        }
    }

    pub fn flush(&mut self, now_ms: i64, out: &mut Vec<Envelope>) {
        if self.current.is_empty() {
            return;
        }
        out.push(Envelope {
            v: wire::VERSION,
            sensor: self.sensor.clone(),
            site: self.site.clone(),
            seq: self.next_seq,
            epoch: self.epoch,
            // The agent sends an aged batch at its next sweep whether or not another
            // sighting comes: a quiet sensor's last sighting of the evening is not held
            // until its first of the morning.
            sent_at: Millis(now_ms.clamp(self.opened_ms, self.opened_ms + self.max_age_ms)),
            sightings: std::mem::take(&mut self.current),
        });
        self.next_seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use wire::{DeviceKey, Fingerprint, IdentityClass, Millis, Sighting};

    use super::Batcher;

    fn sighting(at_ms: i64) -> Sighting {
        Sighting {
            device: DeviceKey(1),
            link: None,
            next: None,
            class: IdentityClass::Local,
            fingerprint: Fingerprint(0),
            first_seen: Millis(at_ms),
            last_seen: Millis(at_ms),
            frames: 1,
            rssi_max: -60,
            rssi_mean: -60.0,
            is_final: true,
        }
    }

    #[test]
    fn a_quiet_sensors_batch_is_sent_when_it_ages_not_at_the_next_sighting() {
        const H: i64 = 3_600_000;
        let mut b = Batcher::new("s".into(), "site".into(), 3, 60);
        let mut out = Vec::new();
        b.push(22 * H, 1, sighting(22 * H), &mut out);
        // The next sighting comes nine hours later: the agent's sweep sent the first batch
        // a minute after it opened.
        b.push(31 * H, 1, sighting(31 * H), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sent_at, Millis(22 * H + 60_000));
        // A batch that fills is sent at once.
        b.push(31 * H + 1_000, 1, sighting(31 * H + 1_000), &mut out);
        b.push(31 * H + 2_000, 1, sighting(31 * H + 2_000), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].sent_at, Millis(31 * H + 2_000));
        assert_eq!(out[1].sightings.len(), 3);
    }
}
