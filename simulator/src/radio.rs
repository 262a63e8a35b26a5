//! Probe bursts and what the sensors hear of them.
//!
//! A device near a sensor is detectable with the site kind's `detect_prob` per presence. It sends bursts
//! every Exp(mean) seconds, the mean set by a screen/activity state that flips every
//! Exp(state_mean_secs). A burst is 1 + Poisson(frames_per_burst - 1) frames about
//! `frame_gap_ms` apart, on one of three channels. Each frame's RSSI follows log-distance
//! path loss with per-presence shadowing and per-frame fading; a sensor captures it if it is
//! above the sensitivity, with probability `frame_capture`.

use crate::activity::Presence;
use crate::rng::{hash, Stream, Tag};
use crate::scenario::Scenario;
use crate::world::{MacPolicy, Micros, SiteKind, World, SEC};

/// The frame was damaged in the air: its FCS will not match.
pub const CORRUPT: u8 = 0x80;

/// One probe request a sensor captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Heard {
    pub sensor: u32,
    pub t: Micros,
    pub device: u32,
    pub seq: u16,
    pub mac: [u8; 6],
    pub rssi: i8,
    /// 0, 1, 2: channels 1, 6, 11.
    pub chan: u8,
    /// `activity::kind` bits of the presence, and [`CORRUPT`].
    pub flags: u8,
}

pub const CHANNEL_MHZ: [u16; 3] = [2412, 2437, 2462];

pub struct Radio<'a> {
    pub s: &'a Scenario,
    pub w: &'a World,
}

impl Radio<'_> {
    /// Appends the frames the sensors capture from person `pid`'s devices during
    /// `presences` (of day `d`); returns how many each presence produced.
    pub fn emit(
        &self,
        pid: u32,
        d: u32,
        presences: &[Presence],
        frames: &mut Vec<Heard>,
    ) -> Vec<u32> {
        let (s, w) = (self.s, self.w);
        let r = &s.radio;
        let dv = &s.devices;
        let person = &w.people[pid as usize];
        presences
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let before = frames.len();
                let site = &w.sites[p.site as usize];
                let walls = if !p.indoor && matches!(site.kind, SiteKind::Store { .. }) {
                    r.wall_loss_db
                } else {
                    0.0
                };
                let detect = match site.kind {
                    SiteKind::Store { .. } => s.stores.detect_prob,
                    SiteKind::Billboard => s.billboards.detect_prob,
                };
                let n = if p.indoor {
                    r.path_loss_indoor
                } else {
                    r.path_loss_outdoor
                };
                for &di in &person.devices {
                    let dev = &w.devices[di as usize];
                    let prof = dev.profile();
                    let mut rs = Stream::new(
                        w.seed,
                        Tag::Radio,
                        u64::from(di),
                        hash(&[u64::from(d), i as u64]),
                    );
                    if !rs.chance(detect) {
                        continue;
                    }
                    let shadow = rs.normal() * r.shadowing_sigma_db;
                    let mut on = rs.chance(dv.screen_on_share);
                    let mut switch = p.start + secs(rs.exp(dv.state_mean_secs));
                    let mut t = p.start;
                    let mut counter = (hash(&[dev.salt, u64::from(d), i as u64]) & 0xfff) as u16;
                    loop {
                        let mean = if on {
                            dv.burst_interval_on_secs
                        } else {
                            dv.burst_interval_off_secs
                        };
                        let next = t + secs(rs.exp(mean));
                        if next > switch {
                            t = switch;
                            on = !on;
                            switch = t + secs(rs.exp(dv.state_mean_secs));
                            if t >= p.end {
                                break;
                            }
                            continue;
                        }
                        t = next;
                        if t >= p.end {
                            break;
                        }
                        let mac = match prof.mac {
                            MacPolicy::Global => dev.global_mac,
                            MacPolicy::PerBurst => w.local_mac(di, t as u64),
                            MacPolicy::Rotating { secs } => {
                                let slot = (t / SEC + (dev.salt % secs as u64) as i64) / secs;
                                w.local_mac(di, slot as u64 | 1 << 63)
                            }
                        };
                        if prof.seq_resets {
                            counter = (hash(&[dev.salt, t as u64]) & 0xfff) as u16;
                        }
                        let chan = rs.below(3) as u8;
                        let count = 1 + rs.poisson(prof.frames_per_burst - 1.0);
                        let mut tk = t;
                        // A burst lasts tens of milliseconds: one distance for all its frames.
                        let dist = p.geom.distance_m(t).max(1.0);
                        let mean_rssi = r.tx_dbm_at_1m - 10.0 * n * dist.log10() - walls + shadow;
                        for _ in 0..count {
                            for &sensor in &site.sensors {
                                let rssi = mean_rssi + rs.normal() * r.fading_sigma_db;
                                if rssi >= r.sensitivity_dbm && rs.chance(r.frame_capture) {
                                    let corrupt = if rs.chance(s.output.corrupt_share) {
                                        CORRUPT
                                    } else {
                                        0
                                    };
                                    frames.push(Heard {
                                        sensor,
                                        t: tk,
                                        device: di,
                                        seq: counter,
                                        mac,
                                        rssi: rssi.round().clamp(-100.0, -10.0) as i8,
                                        chan,
                                        flags: p.kind | corrupt,
                                    });
                                }
                            }
                            counter = (counter + 1) & 0xfff;
                            tk += (r.frame_gap_ms * rs.range(0.6, 1.4) * 1000.0) as Micros;
                        }
                    }
                }
                frames[before..]
                    .iter()
                    .filter(|h| h.flags & CORRUPT == 0)
                    .count() as u32
            })
            .collect()
    }
}

fn secs(x: f64) -> Micros {
    (x * SEC as f64) as Micros
}
