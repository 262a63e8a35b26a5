//! Radiotap header parsing (<https://www.radiotap.org>).
//!
//! Layout: `version u8 (0) | pad u8 | length u16 LE | present u32 LE ...`, where bit 31 of a
//! presence word says another word follows. Fields follow the last word in bit order, each
//! aligned to its natural alignment relative to the start of the header. Bit 29 of a word
//! switches the next word to the radiotap namespace (bit numbering restarts at 0), bit 30 to
//! a vendor namespace, whose data starts with `OUI[3] | sub u8 | skip_length u16 LE` and is
//! skipped whole. An unknown field ends field parsing (its size is unknowable) without
//! making the frame malformed: the header length still says where the 802.11 frame starts.

use super::Reject;

pub(super) const FLAG_FCS_AT_END: u8 = 0x10;
pub(super) const FLAG_BAD_FCS: u8 = 0x40;

const FLAGS: usize = 1;
const CHANNEL: usize = 3;
const DBM_ANTSIGNAL: usize = 5;
const XCHANNEL: usize = 18;
const RADIOTAP_NS: u32 = 1 << 29;
const VENDOR_NS: u32 = 1 << 30;
const EXT: u32 = 1 << 31;

/// (alignment, size) of the radiotap-namespace fields 0-27; 28 (TLVs) and above end parsing.
const FIELDS: [(usize, usize); 28] = [
    (8, 8),  // 0 TSFT
    (1, 1),  // 1 flags
    (1, 1),  // 2 rate
    (2, 4),  // 3 channel: freq u16, flags u16
    (1, 2),  // 4 FHSS
    (1, 1),  // 5 dBm antenna signal
    (1, 1),  // 6 dBm antenna noise
    (2, 2),  // 7 lock quality
    (2, 2),  // 8 TX attenuation
    (2, 2),  // 9 dB TX attenuation
    (1, 1),  // 10 dBm TX power
    (1, 1),  // 11 antenna
    (1, 1),  // 12 dB antenna signal
    (1, 1),  // 13 dB antenna noise
    (2, 2),  // 14 RX flags
    (2, 2),  // 15 TX flags
    (1, 1),  // 16 RTS retries
    (1, 1),  // 17 data retries
    (4, 8),  // 18 XChannel
    (1, 3),  // 19 MCS
    (4, 8),  // 20 A-MPDU status
    (2, 12), // 21 VHT
    (8, 12), // 22 timestamp
    (2, 12), // 23 HE
    (2, 12), // 24 HE-MU
    (2, 6),  // 25 HE-MU-other-user
    (1, 1),  // 26 0-length PSDU
    (2, 4),  // 27 L-SIG
];

pub(super) struct Radiotap {
    /// Header length: the 802.11 frame starts here.
    pub len: usize,
    pub flags: u8,
    /// The first dBm antenna signal: the combined one when per-antenna values follow.
    pub signal_dbm: Option<i8>,
    /// Channel centre frequency, MHz (the Channel field, else XChannel).
    pub freq_mhz: Option<u16>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(super) fn parse(data: &[u8]) -> Result<Radiotap, Reject> {
    if data.len() < 8 {
        return Err(Reject::RadiotapTruncated);
    }
    if data[0] != 0 {
        return Err(Reject::RadiotapVersion);
    }
    let len = usize::from(u16_at(data, 2).ok_or(Reject::RadiotapTruncated)?);
    if len < 8 || len > data.len() {
        return Err(Reject::RadiotapLength);
    }
    let hdr = &data[..len];

    let mut words_end = 4;
    loop {
        let word = u32_at(hdr, words_end).ok_or(Reject::RadiotapTruncated)?;
        words_end += 4;
        if word & EXT == 0 {
            break;
        }
    }

    let mut out = Radiotap {
        len,
        flags: 0,
        signal_dbm: None,
        freq_mhz: None,
    };
    let mut off = words_end;
    let mut base = 0usize; // field index of bit 0 in the current word
    let mut in_radiotap_ns = true;
    let mut word_at = 4;
    'words: while word_at < words_end {
        let word = u32_at(hdr, word_at).ok_or(Reject::RadiotapTruncated)?;
        word_at += 4;
        if in_radiotap_ns {
            let mut bits = word & !(RADIOTAP_NS | VENDOR_NS | EXT);
            while bits != 0 {
                let index = base + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(&(align, size)) = FIELDS.get(index) else {
                    break 'words; // unknown size: nothing further can be located
                };
                off = off.next_multiple_of(align);
                let field = hdr.get(off..off + size).ok_or(Reject::RadiotapField)?;
                match index {
                    FLAGS => out.flags = field[0],
                    DBM_ANTSIGNAL if out.signal_dbm.is_none() => {
                        out.signal_dbm = Some(field[0] as i8)
                    }
                    CHANNEL => out.freq_mhz = Some(u16::from_le_bytes([field[0], field[1]])),
                    XCHANNEL if out.freq_mhz.is_none() => {
                        out.freq_mhz = Some(u16::from_le_bytes([field[4], field[5]]))
                    }
                    _ => {}
                }
                off += size;
            }
        }
        if word & RADIOTAP_NS != 0 {
            in_radiotap_ns = true;
            base = 0;
        } else if word & VENDOR_NS != 0 {
            in_radiotap_ns = false;
            base = 0;
            off = off.next_multiple_of(2);
            let skip = u16_at(hdr, off + 4).ok_or(Reject::RadiotapField)?;
            off += 6 + usize::from(skip);
            if off > len {
                return Err(Reject::RadiotapField);
            }
        } else {
            base += 32;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_combined_signal_before_per_antenna_ones() {
        // word0: flags, dBm signal, radiotap NS, ext; word1: dBm signal, antenna, radiotap NS,
        // ext; word2: dBm signal, antenna. Data: flags, -40 combined, -42 ant0, 0, -45 ant1, 1.
        let mut h = vec![0u8, 0, 0, 0];
        h.extend_from_slice(&(1u32 << 1 | 1 << 5 | RADIOTAP_NS | EXT).to_le_bytes());
        h.extend_from_slice(&(1u32 << 5 | 1 << 11 | RADIOTAP_NS | EXT).to_le_bytes());
        h.extend_from_slice(&(1u32 << 5 | 1 << 11).to_le_bytes());
        h.extend_from_slice(&[0x00, (-40i8) as u8, (-42i8) as u8, 0, (-45i8) as u8, 1]);
        h[2] = h.len() as u8;
        let r = parse(&h).expect("valid header");
        assert_eq!(r.signal_dbm, Some(-40));
        assert_eq!(r.len, h.len());
    }

    #[test]
    fn aligns_fields_to_their_natural_boundary() {
        // TSFT (align 8) after two presence words puts data at offset 16, not 12.
        let mut h = vec![0u8, 0, 0, 0];
        h.extend_from_slice(&(1u32 | 1 << 5 | EXT).to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&[0xee; 4]); // padding
        h.extend_from_slice(&[0; 8]); // TSFT
        h.push((-71i8) as u8);
        h[2] = h.len() as u8;
        assert_eq!(parse(&h).expect("valid").signal_dbm, Some(-71));
    }

    #[test]
    fn skips_vendor_namespaces() {
        let mut h = vec![0u8, 0, 0, 0];
        h.extend_from_slice(&(1u32 << 1 | VENDOR_NS | EXT).to_le_bytes());
        h.extend_from_slice(&(1u32 << 3 | RADIOTAP_NS | EXT).to_le_bytes());
        h.extend_from_slice(&(1u32 << 5).to_le_bytes());
        h.push(0x10); // flags at 16
        h.push(0); // align vendor header to 2
        h.extend_from_slice(&[0x00, 0x11, 0x22, 0, 3, 0, 9, 9, 9]); // OUI, sub, skip=3, data
        h.push((-66i8) as u8);
        h[2] = h.len() as u8;
        let r = parse(&h).expect("valid");
        assert_eq!(r.flags, 0x10);
        assert_eq!(r.signal_dbm, Some(-66));
    }

    #[test]
    fn rejects_fields_beyond_the_header() {
        let mut h = vec![0u8, 0, 8, 0];
        h.extend_from_slice(&(1u32 << 5).to_le_bytes());
        h.push(0xc0); // beyond the declared 8 bytes
        assert_eq!(parse(&h).err(), Some(Reject::RadiotapField));
    }

    #[test]
    fn rejects_a_bitmap_chain_running_past_the_header() {
        let mut h = vec![0u8, 0, 8, 0];
        h.extend_from_slice(&EXT.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(parse(&h).err(), Some(Reject::RadiotapTruncated));
    }
}
