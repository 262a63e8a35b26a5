//! The shared real captures, and a capture split into records to re-stream.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The shared real captures: `$FOOTFALL_TESTDATA` or `../shared/testdata/pcaps` beside the
/// workspace. Panics with instructions when they are absent.
pub fn pcaps_dir() -> PathBuf {
    let dir = std::env::var_os("FOOTFALL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/pcaps")
        });
    assert!(
        dir.is_dir(),
        "TEST CAPTURES ABSENT: {} does not exist. Put the shared captures there or set \
         FOOTFALL_TESTDATA to their directory.",
        dir.display()
    );
    dir.canonicalize()
        .expect("an existing directory canonicalizes")
}

/// Every `.pcap`/`.pcapng` under `dir`, sorted.
pub fn captures_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("readable testdata directory") {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A pcap file read into records, to be re-streamed (e.g. into a FIFO) in parts.
pub struct PcapRecords {
    pub header: Vec<u8>,
    pub records: Vec<Vec<u8>>,
}

impl PcapRecords {
    /// Reads a classic little-endian microsecond pcap file.
    pub fn read(path: &Path) -> PcapRecords {
        let data = fs::read(path).expect("readable capture");
        assert_eq!(
            &data[..4],
            &[0xd4, 0xc3, 0xb2, 0xa1],
            "a little-endian pcap file"
        );
        let mut records = Vec::new();
        let mut at = 24;
        while at + 16 <= data.len() {
            let caplen =
                u32::from_le_bytes(data[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            let end = at + 16 + caplen;
            records.push(data[at..end].to_vec());
            at = end;
        }
        PcapRecords {
            header: data[..24].to_vec(),
            records,
        }
    }

    /// A record's capture time (ms since the Unix epoch), its frame, and whether the snap
    /// length cut the frame.
    pub fn frame(record: &[u8]) -> (i64, &[u8], bool) {
        let word = |i: usize| u32::from_le_bytes(record[i..i + 4].try_into().expect("4 bytes"));
        let ts_ms = i64::from(word(0)) * 1000 + i64::from(word(4)) / 1000;
        (ts_ms, &record[16..], word(8) < word(12))
    }

    /// Writes the header and `records` to `w`.
    pub fn write_to(&self, mut w: impl Write, records: &[Vec<u8>]) -> std::io::Result<()> {
        w.write_all(&self.header)?;
        for r in records {
            w.write_all(r)?;
        }
        w.flush()
    }
}
