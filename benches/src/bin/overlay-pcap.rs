//! `overlay-pcap OUT_DIR IN...`: puts labelled devices in one room at once. The inputs are
//! grouped by the first character of their file name (the Pintor captures' device label);
//! each group's records keep their own relative times and are shifted so the group's first
//! record falls at 2021-06-01T08:00:00Z. Writes `OUT_DIR/all.pcap` (every group, merged in
//! time order) and `OUT_DIR/GROUP.pcap` (each group alone, shifted the same way, so a replay
//! of it gives the same device keys as the merged one). Inputs that are not 802.11 with
//! radiotap headers (what the agent reads) are skipped, each named on stderr.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;

const START: Duration = Duration::from_secs(1_622_534_400);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out_dir, inputs @ ..] = args.as_slice() else {
        bail!("usage: overlay-pcap OUT_DIR IN...");
    };
    if inputs.is_empty() {
        bail!("usage: overlay-pcap OUT_DIR IN...");
    }
    let mut header: Option<PcapHeader> = None;
    let mut groups: BTreeMap<char, Vec<PcapPacket<'static>>> = BTreeMap::new();
    for input in inputs {
        let label = Path::new(input)
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.chars().next())
            .with_context(|| format!("{input}: no file name to take a label from"))?;
        let file = std::fs::File::open(input).with_context(|| format!("failed to read {input}"))?;
        let mut reader = PcapReader::new(BufReader::new(file))
            .with_context(|| format!("{input} is not a classic pcap file"))?;
        if reader.header().datalink != DataLink::IEEE802_11_RADIOTAP {
            eprintln!(
                "overlay-pcap: skipped {input}: link type {:?}, not 802.11 with radiotap",
                reader.header().datalink
            );
            continue;
        }
        header = Some(reader.header());
        let group = groups.entry(label).or_default();
        while let Some(p) = reader.next_packet() {
            group.push(
                p.with_context(|| format!("{input}: a damaged record"))?
                    .into_owned(),
            );
        }
    }
    let header = header.context("no input")?;
    let mut all = Vec::new();
    for (label, packets) in &mut groups {
        let first = packets
            .iter()
            .map(|p| p.timestamp)
            .min()
            .with_context(|| format!("group {label} has no records"))?;
        for p in packets.iter_mut() {
            p.timestamp = p.timestamp - first + START;
        }
        packets.sort_by_key(|p| p.timestamp);
        write(
            &Path::new(out_dir).join(format!("{label}.pcap")),
            header,
            packets,
        )?;
        all.extend(packets.iter().cloned());
    }
    all.sort_by_key(|p| p.timestamp);
    write(&Path::new(out_dir).join("all.pcap"), header, &all)?;
    eprintln!(
        "overlay-pcap: {} groups, {} frames -> {out_dir}/all.pcap",
        groups.len(),
        all.len()
    );
    Ok(())
}

fn write(path: &Path, header: PcapHeader, packets: &[PcapPacket<'_>]) -> anyhow::Result<()> {
    let out = std::fs::File::create(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    let mut w = PcapWriter::with_header(BufWriter::new(out), header)
        .with_context(|| format!("writing {}", path.display()))?;
    for p in packets {
        w.write_packet(p)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    std::io::Write::flush(&mut w.into_writer())
        .with_context(|| format!("writing {}", path.display()))
}
