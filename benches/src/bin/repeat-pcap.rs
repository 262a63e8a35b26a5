//! `repeat-pcap IN OUT TIMES`: writes a classic pcap file TIMES over, each copy shifted in
//! time to start one hour after the previous one ended, so sessions do not merge.

use std::io::{BufReader, BufWriter};
use std::time::Duration;

use anyhow::{bail, Context};
use pcap_file::pcap::{PcapReader, PcapWriter};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, times] = args.as_slice() else {
        bail!("usage: repeat-pcap IN OUT TIMES");
    };
    let times: u32 = times.parse().context("TIMES must be a whole number")?;
    let file = std::fs::File::open(input).with_context(|| format!("failed to read {input}"))?;
    let mut reader = PcapReader::new(BufReader::new(file))
        .with_context(|| format!("{input} is not a classic pcap file"))?;
    let header = reader.header();
    let mut packets = Vec::new();
    while let Some(p) = reader.next_packet() {
        packets.push(
            p.with_context(|| format!("{input}: a damaged record"))?
                .into_owned(),
        );
    }
    let (Some(first), Some(last)) = (packets.first(), packets.last()) else {
        bail!("{input} has no records");
    };
    let span = Duration::from_secs(last.timestamp.as_secs() - first.timestamp.as_secs() + 3600);
    let out =
        std::fs::File::create(output).with_context(|| format!("failed to create {output}"))?;
    let mut w = PcapWriter::with_header(BufWriter::new(out), header)
        .with_context(|| format!("writing {output}"))?;
    for i in 0..times {
        for p in &packets {
            let mut shifted = p.clone();
            shifted.timestamp += span * i;
            w.write_packet(&shifted)
                .with_context(|| format!("writing {output}"))?;
        }
    }
    std::io::Write::flush(&mut w.into_writer()).with_context(|| format!("writing {output}"))?;
    eprintln!(
        "repeat-pcap: {} frames -> {output}",
        packets.len() as u64 * u64::from(times)
    );
    Ok(())
}
