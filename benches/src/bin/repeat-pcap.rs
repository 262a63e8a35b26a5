//! `repeat-pcap IN OUT TIMES`: writes a classic pcap file TIMES over, each copy shifted in
//! time to start one hour after the previous one ended, so sessions do not merge.

use std::io::{BufWriter, Write};

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, times] = args.as_slice() else {
        bail!("usage: repeat-pcap IN OUT TIMES");
    };
    let times: u64 = times.parse().context("TIMES must be a whole number")?;
    let data = std::fs::read(input).with_context(|| format!("failed to read {input}"))?;
    if data.len() < 24 || data[..4] != [0xd4, 0xc3, 0xb2, 0xa1] {
        bail!("{input} is not a little-endian microsecond pcap file");
    }
    let mut records = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let word = |o: usize| u32::from_le_bytes(data[at + o..at + o + 4].try_into().expect("4"));
        let (sec, caplen) = (word(0), word(8) as usize);
        if at + 16 + caplen > data.len() {
            bail!("{input} ends inside a record");
        }
        records.push((sec, &data[at..at + 16 + caplen]));
        at += 16 + caplen;
    }
    let (first, last) = match (records.first(), records.last()) {
        (Some(f), Some(l)) => (f.0, l.0),
        _ => bail!("{input} has no records"),
    };
    let span = last - first + 3600;
    let mut w = BufWriter::new(
        std::fs::File::create(output).with_context(|| format!("failed to create {output}"))?,
    );
    w.write_all(&data[..24])?;
    for i in 0..times {
        let shift = u32::try_from(i * u64::from(span)).context("too many repetitions")?;
        for (sec, rec) in &records {
            w.write_all(&(sec + shift).to_le_bytes())?;
            w.write_all(&rec[4..])?;
        }
    }
    w.flush()?;
    eprintln!(
        "repeat-pcap: {} frames -> {output}",
        records.len() as u64 * times
    );
    Ok(())
}
