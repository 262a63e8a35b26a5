//! One spool record.
//!
//! Layout (little-endian): `magic u32 = "FFS1" | len u32 | seq u64 | crc u32 | payload[len]`,
//! where `crc = CRC-32(seq bytes || payload)`. The magic lets a reader resynchronise after a
//! corrupt record; the CRC rejects torn writes and bit rot.

pub(super) const MAGIC: [u8; 4] = *b"FFS1";
pub(super) const HEADER: usize = 20;
/// Far above any batch (10 000 sightings of ~300 bytes); a larger length is corruption.
pub(super) const MAX_PAYLOAD: usize = 32 << 20;

pub(super) fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// A record found in a segment: its sequence number and payload position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Found {
    pub seq: u64,
    pub offset: usize,
    pub len: usize,
}

/// Decodes the record at `at`, or `None` if it is torn or corrupt.
pub(super) fn decode(buf: &[u8], at: usize) -> Option<Found> {
    let h = buf.get(at..at + HEADER)?;
    if h[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(h[4..8].try_into().ok()?) as usize;
    let seq = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let want = u32::from_le_bytes(h[16..20].try_into().ok()?);
    if len > MAX_PAYLOAD {
        return None;
    }
    let payload = buf.get(at + HEADER..at + HEADER + len)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(payload);
    (crc.finalize() == want).then_some(Found {
        seq,
        offset: at + HEADER,
        len,
    })
}

/// Every intact record of a segment, and how many corrupt stretches were skipped. The end
/// of the last intact record is where appending may resume.
pub(super) fn scan(buf: &[u8]) -> (Vec<Found>, usize, u64) {
    let (mut found, mut at, mut good_end, mut corrupt) = (Vec::new(), 0, 0, 0);
    while at < buf.len() {
        if let Some(f) = decode(buf, at) {
            at = f.offset + f.len;
            good_end = at;
            found.push(f);
            continue;
        }
        corrupt += 1;
        // Resynchronise on the next magic that starts an intact record.
        let next = buf[at + 1..]
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == MAGIC)
            .map(|(i, _)| at + 1 + i)
            .find(|&i| decode(buf, i).is_some());
        match next {
            Some(i) => at = i,
            None => break,
        }
    }
    (found, good_end, corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (seq, p) in records {
            encode(*seq, p, &mut buf);
        }
        buf
    }

    #[test]
    fn reads_back_what_was_written() {
        let buf = segment(&[(1, b"one"), (2, b""), (3, b"three")]);
        let (found, end, corrupt) = scan(&buf);
        assert_eq!(found.iter().map(|f| f.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            &buf[found[2].offset..found[2].offset + found[2].len],
            b"three"
        );
        assert_eq!((end, corrupt), (buf.len(), 0));
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_intact_record() {
        let buf = segment(&[(1, b"one"), (2, b"two")]);
        for cut in 1..HEADER + 3 {
            let torn = &buf[..buf.len() - cut];
            let (found, end, corrupt) = scan(torn);
            assert_eq!(found.len(), 1, "cut {cut}");
            assert_eq!(end, HEADER + 3);
            assert_eq!(corrupt, 1);
        }
    }

    #[test]
    fn skips_a_corrupt_record_in_the_middle() {
        let mut buf = segment(&[(1, b"one"), (2, b"two"), (3, b"three")]);
        buf[HEADER + 3 + HEADER] ^= 0x55; // a payload byte of record 2
        let (found, end, corrupt) = scan(&buf);
        assert_eq!(found.iter().map(|f| f.seq).collect::<Vec<_>>(), [1, 3]);
        assert_eq!((end, corrupt), (buf.len(), 1));
    }
}
