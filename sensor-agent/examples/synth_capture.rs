//! Writes a synthetic radiotap capture of phones probing near a sensor, for the agent's memory
//! benchmark: a worst case (100 k devices at once near one sensor) that the simulator's
//! cities, which come with ground truth, do not produce.
//!
//! `synth_capture --out FILE [--devices N] [--minutes M] [--seed S] [--global-share F]`
//!
//! Each device is present for a random stretch of the period and sends bursts of 1-3 probe
//! requests every 20-90 s while present. A `--global-share` of them use a stable global MAC;
//! the rest draw a new locally administered MAC per burst, as randomizing phones do.
//! RSSI falls with a random distance. Deterministic for a given seed.

use std::io::BufWriter;
use std::time::Duration;

use pcap_file::pcap::{PcapPacket, PcapWriter};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Args {
    out: String,
    devices: u32,
    minutes: u32,
    seed: u64,
    global_share: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: String::new(),
        devices: 300,
        minutes: 120,
        seed: 1,
        global_share: 0.3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value:?}: {e}");
        match flag.as_str() {
            "--out" => a.out = value,
            "--devices" => a.devices = value.parse().map_err(|e| bad(&e))?,
            "--minutes" => a.minutes = value.parse().map_err(|e| bad(&e))?,
            "--seed" => a.seed = value.parse().map_err(|e| bad(&e))?,
            "--global-share" => a.global_share = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.out.is_empty() {
        return Err("--out FILE is required".into());
    }
    if !(0.0..=1.0).contains(&a.global_share) || a.minutes == 0 {
        return Err("--global-share must be 0-1 and --minutes positive".into());
    }
    Ok(a)
}

/// Radiotap (flags, channel, dBm signal) + probe request with typical elements.
fn frame(mac: [u8; 6], seq: u16, rssi: i8, freq: u16, model: u8) -> Vec<u8> {
    let mut f = vec![0, 0, 15, 0, 0b0010_1010, 0, 0, 0, 0, 0];
    f.extend_from_slice(&freq.to_le_bytes());
    f.extend_from_slice(&0x00a0u16.to_le_bytes());
    f.push(rssi as u8);
    f.extend_from_slice(&[0x40, 0, 0, 0]);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&(seq << 4).to_le_bytes());
    f.extend_from_slice(&[0, 0]); // wildcard SSID
    f.extend_from_slice(&[1, 4, 0x02, 0x04, 0x0b, 0x16]); // rates
    f.extend_from_slice(&[50, 8, 0x0c, 0x12, 0x18, 0x24, 0x30, 0x48, 0x60, 0x6c]);
    f.extend_from_slice(&[45, 2, 0x2d, model]); // HT capabilities (model-specific)
    f.extend_from_slice(&[221, 4, 0x00, 0x50, 0xf2, 0x08]);
    f
}

fn main() -> Result<(), String> {
    let a = parse_args()?;
    let mut rng = StdRng::seed_from_u64(a.seed);
    let start_us: u64 = 1_763_895_600_000_000; // 2025-11-23 11:00 UTC
    let period_us = u64::from(a.minutes) * 60_000_000;
    let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
    for d in 0..a.devices {
        let global = rng.gen_bool(a.global_share);
        let oui = [0x3c, 0x22, 0xfb];
        let fixed: [u8; 6] = [
            oui[0],
            oui[1],
            oui[2],
            (d >> 16) as u8,
            (d >> 8) as u8,
            d as u8,
        ];
        let model = rng.gen_range(0u8..8);
        let stay_us = rng.gen_range(60_000_000..=period_us.max(60_000_001));
        let arrive = rng.gen_range(0..=period_us.saturating_sub(stay_us));
        let distance_m: f64 = rng.gen_range(1.0..40.0);
        let mut t = start_us + arrive;
        let mut seq: u16 = rng.gen_range(0..4096);
        while t < start_us + arrive + stay_us {
            let mac = if global {
                fixed
            } else {
                let mut m: [u8; 6] = rng.gen();
                m[0] = (m[0] & 0xfc) | 0x02;
                m
            };
            for i in 0..rng.gen_range(1..=3u64) {
                let rssi = (-40.0 - 25.0 * distance_m.log10() + rng.gen_range(-6.0..6.0)) as i8;
                let freq = [2412u16, 2437, 2462][(i % 3) as usize];
                records.push((t + i * 20_000, frame(mac, seq, rssi, freq, model)));
                seq = (seq + 1) & 0x0fff;
            }
            t += rng.gen_range(20_000_000..90_000_000);
        }
    }
    records.sort_by_key(|(t, _)| *t);
    let file = std::fs::File::create(&a.out).map_err(|e| format!("{}: {e}", a.out))?;
    let fail = |e: pcap_file::PcapError| format!("{}: {e}", a.out);
    let header = simulator::pcap::radiotap_header();
    let mut w = PcapWriter::with_header(BufWriter::new(file), header).map_err(fail)?;
    for (t, f) in &records {
        w.write_packet(&PcapPacket::new(
            Duration::from_micros(*t),
            f.len() as u32,
            f,
        ))
        .map_err(fail)?;
    }
    std::io::Write::flush(&mut w.into_writer()).map_err(|e| format!("{}: {e}", a.out))?;
    eprintln!(
        "synth_capture: {} frames from {} devices over {} min -> {}",
        records.len(),
        a.devices,
        a.minutes,
        a.out
    );
    Ok(())
}
