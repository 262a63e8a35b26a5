//! Radiotap captures: probe requests with the information elements of each device model,
//! beacons and acknowledgements from nearby access points, and damaged frames.
//!
//! Every frame has a radiotap header (flags with FCS-at-end, channel, antenna signal) and a
//! valid CRC-32 FCS, except damaged probes, whose last byte was flipped after the FCS was
//! computed (as a bit error in the air would).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::{DataLink, Endianness, TsResolution};
use wire::Fingerprint;

use crate::radio::{Heard, CHANNEL_MHZ, CORRUPT};
use crate::world::{Micros, FAMILY_PROFILES, SEC};

/// Noise frame kinds, in `Heard::flags`.
pub const BEACON: u8 = 0x40;
pub const ACK: u8 = 0x20;
pub const NOISE: u8 = BEACON | ACK;

/// The information elements of a probe request from `family`'s `model` on channel `chan`.
pub fn probe_ies(family: usize, model: usize, chan: u8) -> Vec<u8> {
    let prof = &FAMILY_PROFILES[family];
    let (ht_info, ext_caps) = prof.models[model];
    let mut ies = vec![0, 0]; // wildcard SSID
    ies.extend_from_slice(&[1, 4, 0x02, 0x04, 0x0b, 0x16]);
    ies.extend_from_slice(&[50, 8, 0x0c, 0x12, 0x18, 0x24, 0x30, 0x48, 0x60, 0x6c]);
    ies.extend_from_slice(&[3, 1, [1, 6, 11][usize::from(chan)]]);
    let mut ht = vec![45, 26, ht_info[0], ht_info[1], 0x17, 0xff, 0xff];
    ht.resize(28, 0);
    ies.extend_from_slice(&ht);
    ies.push(127);
    ies.push(ext_caps.len() as u8);
    ies.extend_from_slice(ext_caps);
    ies.extend_from_slice(match family {
        0 => &[
            221, 10, 0x00, 0x17, 0xf2, 0x0a, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00,
        ],
        3 => &[221, 9, 0x00, 0x50, 0xf2, 0x08, 0x00, 0x10, 0x00, 0x00, 0x00],
        _ => &[221, 7, 0x50, 0x6f, 0x9a, 0x16, 0x03, 0x01, 0x03],
    });
    ies
}

/// The fingerprint the agent computes for a device of `family`'s `model`.
pub fn model_fingerprint(family: usize, model: usize) -> Fingerprint {
    device_id::fingerprint(&probe_ies(family, model, 0))
}

/// The global header of a radiotap capture: classic pcap, little-endian, microseconds.
pub fn radiotap_header() -> PcapHeader {
    PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: 65535,
        datalink: DataLink::IEEE802_11_RADIOTAP,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    }
}

/// Writes one sensor's capture: classic pcap, little-endian, microseconds, radiotap.
pub struct PcapWriter {
    out: pcap_file::pcap::PcapWriter<BufWriter<File>>,
    frame: Vec<u8>,
    /// Probe request bodies by (family, model, channel).
    ies: Vec<Vec<[Vec<u8>; 3]>>,
}

impl PcapWriter {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let out = pcap_file::pcap::PcapWriter::with_header(
            BufWriter::with_capacity(1 << 16, File::create(path)?),
            radiotap_header(),
        )
        .map_err(std::io::Error::other)?;
        let ies = FAMILY_PROFILES
            .iter()
            .enumerate()
            .map(|(f, prof)| {
                (0..prof.models.len())
                    .map(|m| [0, 1, 2].map(|c| probe_ies(f, m, c)))
                    .collect()
            })
            .collect();
        Ok(PcapWriter {
            out,
            frame: Vec::with_capacity(256),
            ies,
        })
    }

    /// Writes a probe request (`family`, `model` of the device), a beacon or an ack.
    pub fn write(&mut self, h: &Heard, family: usize, model: usize) -> std::io::Result<()> {
        let f = &mut self.frame;
        f.clear();
        // Radiotap: flags (FCS at end), channel, dBm antenna signal.
        f.extend_from_slice(&[0, 0, 15, 0, 0b0010_1010, 0, 0, 0, 0x10, 0]);
        f.extend_from_slice(&CHANNEL_MHZ[usize::from(h.chan)].to_le_bytes());
        f.extend_from_slice(&0x00a0u16.to_le_bytes());
        f.push(h.rssi as u8);
        let body = f.len();
        if h.flags & BEACON != 0 {
            f.extend_from_slice(&[0x80, 0, 0, 0]);
            f.extend_from_slice(&[0xff; 6]);
            f.extend_from_slice(&h.mac);
            f.extend_from_slice(&h.mac);
            f.extend_from_slice(&(h.seq << 4).to_le_bytes());
            f.extend_from_slice(&(h.t as u64).to_le_bytes());
            f.extend_from_slice(&[0x64, 0x00, 0x11, 0x04]);
            let ssid = format!("cafe-{:02x}{:02x}", h.mac[4], h.mac[5]);
            f.push(0);
            f.push(ssid.len() as u8);
            f.extend_from_slice(ssid.as_bytes());
            f.extend_from_slice(&[1, 8, 0x82, 0x84, 0x8b, 0x96, 0x0c, 0x12, 0x18, 0x24]);
            f.extend_from_slice(&[3, 1, [1, 6, 11][usize::from(h.chan)]]);
        } else if h.flags & ACK != 0 {
            f.extend_from_slice(&[0xd4, 0, 0, 0]);
            f.extend_from_slice(&h.mac);
        } else {
            f.extend_from_slice(&[0x40, 0, 0, 0]);
            f.extend_from_slice(&[0xff; 6]);
            f.extend_from_slice(&h.mac);
            f.extend_from_slice(&[0xff; 6]);
            f.extend_from_slice(&(h.seq << 4).to_le_bytes());
            f.extend_from_slice(&self.ies[family][model][usize::from(h.chan)]);
        }
        let fcs = crc32fast::hash(&f[body..]);
        if h.flags & CORRUPT != 0 {
            let last = f.len() - 1;
            f[last] ^= 0x04;
        }
        f.extend_from_slice(&fcs.to_le_bytes());
        let at = Duration::from_micros(u64::try_from(h.t).unwrap_or(0));
        self.out
            .write_packet(&PcapPacket::new(at, f.len() as u32, f))
            .map(drop)
            .map_err(std::io::Error::other)
    }

    pub fn finish(self) -> std::io::Result<()> {
        use std::io::Write as _;
        self.out.into_writer().flush()
    }
}

/// The access points near a sensor: a few global addresses from router vendors.
pub fn access_points(seed: u64, sensor: u32) -> Vec<[u8; 6]> {
    (0..3u64)
        .map(|k| {
            let b = crate::rng::hash(&[seed, crate::rng::Tag::Noise as u64, u64::from(sensor), k])
                .to_be_bytes();
            [0xc4, 0x6e, 0x1f, b[0], b[1], b[2]]
        })
        .collect()
}

/// Noise frames for one sensor over `[from, to)`.
pub fn noise(
    seed: u64,
    sensor: u32,
    from: Micros,
    to: Micros,
    beacons_per_min: f64,
    acks_per_min: f64,
) -> Vec<Heard> {
    let aps = access_points(seed, sensor);
    let mut r =
        crate::rng::Stream::new(seed, crate::rng::Tag::Noise, u64::from(sensor), from as u64);
    let mut out = Vec::new();
    for (kind, per_min) in [(BEACON, beacons_per_min), (ACK, acks_per_min)] {
        if per_min <= 0.0 {
            continue;
        }
        let mut t = from;
        loop {
            t += (r.exp(60.0 / per_min) * SEC as f64) as Micros;
            if t >= to {
                break;
            }
            let ap = r.below(aps.len() as u64) as usize;
            out.push(Heard {
                sensor,
                t,
                device: u32::MAX,
                seq: r.below(4096) as u16,
                mac: aps[ap],
                rssi: r.range(-88.0, -50.0).round() as i8,
                chan: ap as u8,
                flags: kind,
            });
        }
    }
    out
}
