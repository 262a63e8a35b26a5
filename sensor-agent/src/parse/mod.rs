//! Frame parsing: radiotap header, then the 802.11 MAC header and probe-request body.
//!
//! [`parse`] borrows the captured bytes and allocates nothing. Every way a frame can be
//! refused is a [`Reject`], a small `Copy` enum that the pipeline counts by reason.

mod ieee80211;
mod radiotap;

use firmware_config::FcsPolicy;

use crate::mac::RawMac;
pub(crate) use ieee80211::FrameType;

/// Why a captured frame produced no observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Malformed: fewer than 8 bytes, or a presence bitmap running past the header.
    RadiotapTruncated,
    /// Malformed: radiotap version is not 0.
    RadiotapVersion,
    /// Malformed: the header length is below 8 or beyond the captured bytes.
    RadiotapLength,
    /// Malformed: a present field lies beyond the header length.
    RadiotapField,
    /// Malformed: the 802.11 frame is shorter than its header.
    FrameTruncated,
    /// Malformed: the 802.11 protocol version is not 0.
    ProtocolVersion,
    /// Policy: the FCS is wrong (by CRC or by the driver's bad-FCS flag).
    BadFcs,
}

impl Reject {
    /// Whether this is a malformed frame (as opposed to a policy drop).
    pub fn is_malformed(self) -> bool {
        !matches!(self, Reject::BadFcs)
    }

    pub fn name(self) -> &'static str {
        match self {
            Reject::RadiotapTruncated => "radiotap_truncated",
            Reject::RadiotapVersion => "radiotap_version",
            Reject::RadiotapLength => "radiotap_length",
            Reject::RadiotapField => "radiotap_field",
            Reject::FrameTruncated => "frame_truncated",
            Reject::ProtocolVersion => "protocol_version",
            Reject::BadFcs => "bad_fcs",
        }
    }
}

/// A parsed frame; `probe` is set for probe requests only.
pub(crate) struct Frame<'a> {
    pub frame_type: FrameType,
    pub signal_dbm: Option<i8>,
    pub freq_mhz: Option<u16>,
    pub probe: Option<Probe<'a>>,
}

/// What a probe request tells about its sender. The fingerprint is computed from `ies` only
/// when a sighting opens, not for every frame.
pub(crate) struct Probe<'a> {
    pub transmitter: RawMac,
    /// The 802.11 sequence number (12 bits).
    pub seq: u16,
    pub ies: &'a [u8],
}

pub(crate) use device_id::fingerprint;

/// Parses one captured frame. `truncated` says the capture was cut by the snap length, in
/// which case a trailing FCS is not present in the bytes and cannot be checked.
pub(crate) fn parse(data: &[u8], truncated: bool, fcs: FcsPolicy) -> Result<Frame<'_>, Reject> {
    let rt = radiotap::parse(data)?;
    let mut body = &data[rt.len..];
    if rt.flags & radiotap::FLAG_BAD_FCS != 0 {
        return Err(Reject::BadFcs);
    }
    if rt.flags & radiotap::FLAG_FCS_AT_END != 0 && !truncated {
        let Some(split) = body.len().checked_sub(4) else {
            return Err(Reject::FrameTruncated);
        };
        let (frame, trailer) = body.split_at(split);
        if fcs == FcsPolicy::Verify {
            let want = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
            if crc32fast::hash(frame) != want {
                return Err(Reject::BadFcs);
            }
        }
        body = frame;
    }
    let mac = ieee80211::parse(body)?;
    Ok(Frame {
        frame_type: mac.frame_type,
        signal_dbm: rt.signal_dbm,
        freq_mhz: rt.freq_mhz,
        probe: mac.probe,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A radiotap header (flags, channel, antenna signal) followed by a probe request.
    pub(crate) fn probe_frame(flags: u8, signal: i8, ta: [u8; 6], ies: &[u8]) -> Vec<u8> {
        let mut f = vec![0, 0, 13, 0, 0b0010_1010, 0, 0, 0]; // flags(1) channel(3) signal(5)
        f.push(flags);
        f.push(0); // pad to 2 for channel
        f.extend_from_slice(&2437u16.to_le_bytes());
        f.extend_from_slice(&0x00a0u16.to_le_bytes());
        f.push(signal as u8);
        f[2] = f.len() as u8;
        f.extend_from_slice(&[0x40, 0x00, 0, 0]); // probe request, duration
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&ta);
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&[0x10, 0x00]);
        f.extend_from_slice(ies);
        f
    }

    const TA: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    #[test]
    fn parses_a_probe_request() {
        let f = probe_frame(0, -57, TA, &[0, 0, 1, 2, 0x82, 0x84]);
        let p = parse(&f, false, FcsPolicy::Verify).expect("valid frame");
        assert_eq!(p.signal_dbm, Some(-57));
        assert_eq!(p.freq_mhz, Some(2437));
        assert_eq!(p.frame_type, FrameType::Management);
        let probe = p.probe.expect("a probe request");
        assert!(probe.transmitter.is_local());
        assert_eq!(probe.transmitter.octets(), &TA);
        assert_eq!(
            probe.seq, 1,
            "sequence control 0x0010: sequence 1, fragment 0"
        );
    }

    #[test]
    fn verifies_and_strips_the_fcs() {
        let mut f = probe_frame(0x10, -57, TA, &[1, 1, 0x82]);
        let start = f[2] as usize;
        let crc = crc32fast::hash(&f[start..]);
        f.extend_from_slice(&crc.to_le_bytes());
        let p = parse(&f, false, FcsPolicy::Verify).expect("good fcs");
        assert!(p.probe.is_some());

        let last = f.len() - 1;
        f[last] ^= 0xff;
        assert_eq!(
            parse(&f, false, FcsPolicy::Verify).err(),
            Some(Reject::BadFcs)
        );
        // Trusting the flag keeps a frame whose FCS was rewritten, and strips the FCS.
        assert!(parse(&f, false, FcsPolicy::TrustFlag).is_ok());
        // A snap-length cut removed the FCS: nothing to check.
        assert!(parse(&f[..f.len() - 6], true, FcsPolicy::Verify).is_ok());
    }

    #[test]
    fn drops_frames_flagged_bad_fcs_under_every_policy() {
        let f = probe_frame(0x40, -57, TA, &[]);
        for policy in [FcsPolicy::Verify, FcsPolicy::TrustFlag] {
            assert_eq!(parse(&f, false, policy).err(), Some(Reject::BadFcs));
        }
    }

    #[test]
    fn fingerprint_ignores_ssid_and_channel_but_not_capabilities() {
        let a = probe_frame(
            0,
            -50,
            TA,
            &[0, 3, b'a', b'b', b'c', 3, 1, 6, 1, 2, 0x82, 0x84],
        );
        let b = probe_frame(0, -50, TA, &[0, 0, 3, 1, 11, 1, 2, 0x82, 0x84]);
        let c = probe_frame(0, -50, TA, &[0, 0, 3, 1, 11, 1, 2, 0x82, 0x8b]);
        let fp = |f: &[u8]| {
            parse(f, false, FcsPolicy::Verify)
                .expect("valid")
                .probe
                .map(|p| fingerprint(p.ies))
                .expect("probe")
        };
        assert_eq!(fp(&a), fp(&b));
        assert_ne!(fp(&b), fp(&c));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..400),
                                           truncated in any::<bool>()) {
            let _ = parse(&data, truncated, FcsPolicy::Verify);
        }

        #[test]
        fn never_panics_on_mutated_valid_frames(pos in 0usize..64, byte in any::<u8>(), cut in 0usize..64) {
            let mut f = probe_frame(0x10, -60, TA, &[0, 2, b'x', b'y', 1, 2, 0x82, 0x84, 221, 4, 0, 0x50, 0xf2, 8]);
            let p = pos % f.len();
            f[p] = byte;
            f.truncate(f.len().saturating_sub(cut));
            let _ = parse(&f, false, FcsPolicy::TrustFlag);
            let _ = parse(&f, false, FcsPolicy::Verify);
        }
    }
}
