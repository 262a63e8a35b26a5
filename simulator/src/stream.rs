//! The sensors' side of a day: frames in time order per sensor, written to the sensor's
//! capture, turned into sightings (and, in fast mode, batches). Sensors are split into a
//! fixed number of shards, each with its own state, so shards run in parallel and the output
//! does not depend on the number of threads.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use wire::{DeviceKey, Envelope};

use crate::output::{Creating, Error};
use crate::pcap::{self, PcapWriter};
use crate::radio::{Heard, CORRUPT};
use crate::scenario::{IdentityTruth, Mode, Scenario};
use crate::sessions::{Batcher, Closed, Sessions};
use crate::truth::DeviceSighting;
use crate::world::{Micros, World};
use crate::SensorCounts;

/// Sensor shards; a sensor belongs to shard `sensor % SHARDS`.
pub const SHARDS: usize = 16;

enum Out {
    Pcap(PcapWriter),
    Envelopes(BufWriter<File>, Batcher),
}

pub struct Shard {
    outs: Vec<Option<Out>>,
    sessions: Sessions,
    carry: Vec<Heard>,
    pub counts: Vec<SensorCounts>,
    pub device_sightings: Vec<DeviceSighting>,
    /// (device, epoch, key), first sightings of each key in this shard.
    pub identities: Vec<(u32, u32, DeviceKey)>,
    seen: HashSet<(u32, DeviceKey)>,
    closed: Vec<Closed>,
    batches: Vec<Envelope>,
}

pub struct Ctx<'a> {
    pub s: &'a Scenario,
    pub w: &'a World,
    pub seed: u64,
}

impl Shard {
    /// The shards, with a capture or envelope file per sensor under `dir`.
    pub fn create_all(
        cx: &Ctx,
        dir: &Path,
        fingerprints: &std::sync::Arc<[wire::Fingerprint]>,
    ) -> Result<Vec<Shard>, Error> {
        let (s, w) = (cx.s, cx.w);
        let mut shards: Vec<Shard> = (0..SHARDS)
            .map(|_| Shard {
                outs: (0..w.sensors.len()).map(|_| None).collect(),
                sessions: Sessions::new(w, &s.tenant_secret(), s, fingerprints.clone()),
                carry: Vec::new(),
                counts: vec![SensorCounts::default(); w.sensors.len()],
                device_sightings: Vec::new(),
                identities: Vec::new(),
                seen: HashSet::new(),
                closed: Vec::new(),
                batches: Vec::new(),
            })
            .collect();
        for (i, sensor) in w.sensors.iter().enumerate() {
            let out = match s.output.mode {
                Mode::Pcap => {
                    let path = dir.join(format!("{}.pcap", sensor.id));
                    Out::Pcap(PcapWriter::create(&path).creating(&path)?)
                }
                Mode::Envelopes => Out::Envelopes(
                    crate::output::create(&dir.join(format!("{}.jsonl", sensor.id)))?,
                    Batcher::new(
                        sensor.id.clone(),
                        w.sites[sensor.site as usize].id.clone(),
                        s.output.batch_max_sightings,
                        s.output.batch_max_age_secs,
                    ),
                ),
            };
            shards[i % SHARDS].outs[i] = Some(out);
        }
        Ok(shards)
    }

    fn own(&self) -> impl Iterator<Item = u32> + '_ {
        self.outs
            .iter()
            .enumerate()
            .filter(|(_, o)| o.is_some())
            .map(|(i, _)| i as u32)
    }

    /// Processes this shard's frames up to `to` (the end of a day); later frames wait.
    pub fn day(
        &mut self,
        cx: &Ctx,
        mut frames: Vec<Heard>,
        from: Micros,
        to: Micros,
    ) -> Result<(), Error> {
        frames.append(&mut self.carry);
        if cx.s.output.mode == Mode::Pcap {
            let o = &cx.s.output;
            for sensor in self.own().collect::<Vec<_>>() {
                frames.extend(pcap::noise(
                    cx.seed,
                    sensor,
                    from,
                    to,
                    o.beacons_per_minute,
                    o.noise_per_minute,
                ));
            }
        }
        frames.sort_unstable();
        let (today, later): (Vec<Heard>, Vec<Heard>) = frames.into_iter().partition(|h| h.t < to);
        self.carry = later;
        for h in &today {
            self.frame(cx, h)?;
        }
        let end_ms = to.div_euclid(1000);
        for sensor in self.own().collect::<Vec<_>>() {
            self.sessions.expire(sensor, end_ms, &mut self.closed);
            self.drain_closed(cx, end_ms)?;
        }
        Ok(())
    }

    /// Writes what is left (frames past the last midnight), closes every sighting and flushes.
    pub fn finish(&mut self, cx: &Ctx, end_ms: i64) -> Result<(), Error> {
        for h in std::mem::take(&mut self.carry) {
            self.frame(cx, &h)?;
        }
        self.sessions.close_all(&mut self.closed);
        self.drain_closed(cx, end_ms)?;
        for (sensor, out) in self.outs.iter_mut().enumerate() {
            match out.take() {
                Some(Out::Pcap(p)) => p.finish()?,
                Some(Out::Envelopes(mut f, mut b)) => {
                    b.flush(end_ms, &mut self.batches);
                    for e in self.batches.drain(..) {
                        self.counts[sensor].envelopes += 1;
                        serde_json::to_writer(&mut f, &e)?;
                        f.write_all(b"\n")?;
                    }
                    f.flush()?;
                }
                None => {}
            }
        }
        Ok(())
    }

    fn frame(&mut self, cx: &Ctx, h: &Heard) -> Result<(), Error> {
        let c = &mut self.counts[h.sensor as usize];
        match h.flags {
            f if f & pcap::BEACON != 0 => c.beacons += 1,
            f if f & pcap::ACK != 0 => c.acks += 1,
            f => {
                c.probe_requests += 1;
                c.corrupt_probe_requests += u64::from(f & CORRUPT != 0);
            }
        }
        if let Some(Out::Pcap(p)) = &mut self.outs[h.sensor as usize] {
            let (family, model) = match cx.w.devices.get(h.device as usize) {
                Some(dev) => (usize::from(dev.family), usize::from(dev.model)),
                None => (0, 0),
            };
            p.write(h, family, model)?;
        }
        self.sessions.feed(h, &mut self.closed);
        self.drain_closed(cx, h.t.div_euclid(1000))
    }

    fn drain_closed(&mut self, cx: &Ctx, now_ms: i64) -> Result<(), Error> {
        let (s, w) = (cx.s, cx.w);
        // In the order the agent's sweep closes them (a frame can close its own device's
        // sighting after others the sweep would have closed later).
        self.closed.sort_by_key(|c| c.closed_ms);
        for c in self.closed.drain(..) {
            let dev = &w.devices[c.device as usize];
            let linkable = dev.linkable();
            let sensor = c.sensor as usize;
            self.counts[sensor].sightings += 1;
            let record = match s.output.identity_truth {
                IdentityTruth::All => true,
                IdentityTruth::Linkable => linkable,
                IdentityTruth::None => false,
            };
            if record && self.seen.insert((c.device, c.sighting.device)) {
                self.identities.push((c.device, c.epoch, c.sighting.device));
            }
            if linkable && w.people[dev.person as usize].staff_at.is_none() {
                self.device_sightings.push(DeviceSighting {
                    device: c.device,
                    site: w.sensors[sensor].site,
                    first_ms: c.sighting.first_seen.0,
                    last_ms: c.sighting.last_seen.0,
                    rssi_max: c.sighting.rssi_max,
                    kinds: c.kinds,
                });
            }
            if let Some(Out::Envelopes(f, b)) = &mut self.outs[sensor] {
                // Batched when the agent would close it, not when the simulator found out
                // (a quiet store's last sighting of the night at its first frame of the
                // morning, hours later).
                b.push(
                    c.closed_ms.min(now_ms),
                    c.epoch,
                    c.sighting,
                    &mut self.batches,
                );
                for e in self.batches.drain(..) {
                    self.counts[sensor].envelopes += 1;
                    serde_json::to_writer(&mut *f, &e)?;
                    f.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    }
}
