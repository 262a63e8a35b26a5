//! The binary encoding of an [`Envelope`]: the same fields as the JSON layout, in fixed-width
//! little-endian records (see the crate docs, "Binary encoding").

use crate::{DeviceKey, Envelope, Fingerprint, IdentityClass, LinkKey, Millis, Sighting};

/// The first bytes of every binary envelope. `0xFF` never occurs in UTF-8, so a payload that
/// starts with it can never be taken for JSON, nor JSON for it.
pub const MAGIC: [u8; 3] = [0xFF, b'F', b'F'];
/// The binary layout's own version, the byte after [`MAGIC`].
pub const BINARY_FORMAT: u8 = 1;

const FINAL: u8 = 1;
const LOCAL: u8 = 1 << 1;
const HAS_LINK: u8 = 1 << 2;
const HAS_NEXT: u8 = 1 << 3;

/// Bytes of one sighting without its optional keys: flags, device, fingerprint, first and last
/// seen, frames, rssi_max, rssi_mean.
const SIGHTING_BYTES: usize = 1 + 8 + 4 + 8 + 8 + 4 + 1 + 4;

/// Whether `payload` is a binary envelope (it starts with [`MAGIC`]); otherwise it is JSON.
pub fn is_binary(payload: &[u8]) -> bool {
    payload.starts_with(&MAGIC)
}

/// Why a payload is not a binary envelope: the field, and the byte offset where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    #[error("not a binary envelope (it does not start with FF 46 46)")]
    NotBinary,
    #[error("binary format {0} (this build reads format {BINARY_FORMAT})")]
    UnknownFormat(u8),
    #[error("truncated at byte {at}: {field} needs {needed} more bytes")]
    Truncated {
        field: &'static str,
        at: usize,
        needed: usize,
    },
    #[error("{field} at byte {at} is not UTF-8")]
    NotUtf8 { field: &'static str, at: usize },
    #[error("sighting {index}: unknown flag bits {flags:#04x}")]
    UnknownFlags { index: usize, flags: u8 },
    #[error("{0} bytes after the last sighting")]
    Trailing(usize),
}

/// The contract version of a binary envelope, read from its header alone; None if the payload
/// is not long enough to hold it or does not start with [`MAGIC`].
pub fn version_of(payload: &[u8]) -> Option<u32> {
    is_binary(payload)
        .then(|| payload.get(MAGIC.len() + 1).copied().map(u32::from))
        .flatten()
}

impl Envelope {
    /// The envelope in the binary encoding, appended to `out`.
    ///
    /// # Panics
    /// If `v` does not fit a byte, `sensor` or `site` is longer than 255 bytes (valid ids are at
    /// most 64: [`crate::validate_id`]), or there are more than `u32::MAX` sightings.
    pub fn encode_binary(&self, out: &mut Vec<u8>) {
        out.reserve(32 + self.sensor.len() + self.site.len() + self.sightings.len() * 50);
        out.extend_from_slice(&MAGIC);
        out.push(BINARY_FORMAT);
        out.push(u8::try_from(self.v).expect("the contract version fits a byte"));
        for id in [&self.sensor, &self.site] {
            out.push(u8::try_from(id.len()).expect("ids are at most 64 bytes"));
            out.extend_from_slice(id.as_bytes());
        }
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.sent_at.0.to_le_bytes());
        let n = u32::try_from(self.sightings.len()).expect("at most u32::MAX sightings");
        out.extend_from_slice(&n.to_le_bytes());
        for s in &self.sightings {
            let flags = [
                (s.is_final, FINAL),
                (s.class == IdentityClass::Local, LOCAL),
                (s.link.is_some(), HAS_LINK),
                (s.next.is_some(), HAS_NEXT),
            ]
            .into_iter()
            .fold(0, |flags, (set, bit)| if set { flags | bit } else { flags });
            out.push(flags);
            out.extend_from_slice(&s.device.0.to_le_bytes());
            if let Some(link) = s.link {
                out.extend_from_slice(&link.0.to_le_bytes());
            }
            if let Some(next) = s.next {
                out.extend_from_slice(&next.0.to_le_bytes());
            }
            out.extend_from_slice(&s.fingerprint.0.to_le_bytes());
            out.extend_from_slice(&s.first_seen.0.to_le_bytes());
            out.extend_from_slice(&s.last_seen.0.to_le_bytes());
            out.extend_from_slice(&s.frames.to_le_bytes());
            out.push(s.rssi_max as u8);
            out.extend_from_slice(&s.rssi_mean.to_le_bytes());
        }
    }

    /// The envelope in the binary encoding.
    pub fn to_binary(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_binary(&mut out);
        out
    }

    /// Decodes a binary envelope. Checks the layout only; the contract's rules (versions,
    /// clock bounds, ids) are the consumer's, as for JSON.
    pub fn from_binary(payload: &[u8]) -> Result<Envelope, BinaryError> {
        match Envelope::from_binary_prefix(payload)? {
            (env, len) if len == payload.len() => Ok(env),
            (_, len) => Err(BinaryError::Trailing(payload.len() - len)),
        }
    }

    /// Decodes the binary envelope at the start of `bytes`, returning it and its length: the
    /// layout delimits itself, so envelopes can follow one another in a file (crate docs,
    /// "Files of envelopes").
    pub fn from_binary_prefix(bytes: &[u8]) -> Result<(Envelope, usize), BinaryError> {
        if !is_binary(bytes) {
            return Err(BinaryError::NotBinary);
        }
        let mut r = Reader {
            buf: bytes,
            at: MAGIC.len(),
        };
        let format = r.array::<1>("format")?[0];
        if format != BINARY_FORMAT {
            return Err(BinaryError::UnknownFormat(format));
        }
        let v = u32::from(r.array::<1>("v")?[0]);
        let sensor = r.id("sensor")?;
        let site = r.id("site")?;
        let seq = u64::from_le_bytes(r.array("seq")?);
        let epoch = u32::from_le_bytes(r.array("epoch")?);
        let sent_at = Millis(i64::from_le_bytes(r.array("sent_at")?));
        let n = u32::from_le_bytes(r.array("the sighting count")?) as usize;
        // Every sighting takes at least SIGHTING_BYTES: a count the bytes cannot hold is
        // refused before anything is allocated for it.
        r.need("sightings", n.saturating_mul(SIGHTING_BYTES))?;
        let mut sightings = Vec::with_capacity(n);
        for index in 0..n {
            let flags = r.array::<1>("flags")?[0];
            if flags & !(FINAL | LOCAL | HAS_LINK | HAS_NEXT) != 0 {
                return Err(BinaryError::UnknownFlags { index, flags });
            }
            let device = DeviceKey(u64::from_le_bytes(r.array("device")?));
            let link = match flags & HAS_LINK {
                0 => None,
                _ => Some(LinkKey(u64::from_le_bytes(r.array("link")?))),
            };
            let next = match flags & HAS_NEXT {
                0 => None,
                _ => Some(DeviceKey(u64::from_le_bytes(r.array("next")?))),
            };
            sightings.push(Sighting {
                device,
                link,
                next,
                class: match flags & LOCAL {
                    0 => IdentityClass::Global,
                    _ => IdentityClass::Local,
                },
                fingerprint: Fingerprint(u32::from_le_bytes(r.array("fingerprint")?)),
                first_seen: Millis(i64::from_le_bytes(r.array("first_seen")?)),
                last_seen: Millis(i64::from_le_bytes(r.array("last_seen")?)),
                frames: u32::from_le_bytes(r.array("frames")?),
                rssi_max: r.array::<1>("rssi_max")?[0] as i8,
                rssi_mean: f32::from_le_bytes(r.array("rssi_mean")?),
                is_final: flags & FINAL != 0,
            });
        }
        let env = Envelope {
            v,
            sensor,
            site,
            seq,
            epoch,
            sent_at,
            sightings,
        };
        Ok((env, r.at))
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn need(&self, field: &'static str, n: usize) -> Result<(), BinaryError> {
        match self.buf.len() - self.at {
            left if left >= n => Ok(()),
            left => Err(BinaryError::Truncated {
                field,
                at: self.at,
                needed: n - left,
            }),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], BinaryError> {
        self.need(field, N)?;
        let out = self.buf[self.at..self.at + N]
            .try_into()
            .expect("N bytes were checked");
        self.at += N;
        Ok(out)
    }

    /// A length-prefixed (one byte) UTF-8 string.
    fn id(&mut self, field: &'static str) -> Result<String, BinaryError> {
        let len = usize::from(self.array::<1>(field)?[0]);
        self.need(field, len)?;
        let at = self.at;
        let text = std::str::from_utf8(&self.buf[at..at + len])
            .map_err(|_| BinaryError::NotUtf8 { field, at })?;
        self.at += len;
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented sample, with sightings that have no link, a `next` key, or neither.
    fn envelope() -> Envelope {
        let base = crate::envelope::tests::sample();
        let one = base.sightings[0].clone();
        Envelope {
            sightings: vec![
                Sighting {
                    link: None,
                    ..one.clone()
                },
                Sighting {
                    device: DeviceKey(u64::MAX),
                    next: Some(DeviceKey(7)),
                    class: IdentityClass::Local,
                    is_final: false,
                    ..one.clone()
                },
                Sighting {
                    device: DeviceKey(1),
                    link: Some(LinkKey(1)),
                    class: IdentityClass::Local,
                    ..one
                },
            ],
            ..base
        }
    }

    #[test]
    fn an_envelope_comes_back_field_for_field_and_five_times_smaller_than_its_json() {
        let env = envelope();
        let bin = env.to_binary();
        assert!(is_binary(&bin));
        assert_eq!(version_of(&bin), Some(crate::VERSION));
        assert_eq!(Envelope::from_binary(&bin), Ok(env.clone()));
        let json = serde_json::to_vec(&env).expect("serializes");
        assert!(!is_binary(&json));
        assert!(
            bin.len() * 4 < json.len(),
            "{} vs {}",
            bin.len(),
            json.len()
        );
    }

    #[test]
    fn every_truncation_is_refused_with_the_field_it_cut() {
        let bin = envelope().to_binary();
        for len in 0..bin.len() {
            let Err(err) = Envelope::from_binary(&bin[..len]) else {
                panic!("{len} bytes decoded");
            };
            match (len, &err) {
                (0..=2, BinaryError::NotBinary) | (3.., BinaryError::Truncated { .. }) => {}
                _ => panic!("{len} bytes: {err}"),
            }
        }
        let mut extra = bin.clone();
        extra.push(0);
        assert_eq!(Envelope::from_binary(&extra), Err(BinaryError::Trailing(1)));
    }

    #[test]
    fn a_bad_header_or_flag_is_named() {
        let bin = envelope().to_binary();
        let mut format = bin.clone();
        format[3] = 2;
        assert_eq!(
            Envelope::from_binary(&format),
            Err(BinaryError::UnknownFormat(2))
        );
        let mut sensor = bin.clone();
        sensor[6] = 0xC3; // the sensor's first byte: a lone UTF-8 lead byte
        assert!(matches!(
            Envelope::from_binary(&sensor),
            Err(BinaryError::NotUtf8 {
                field: "sensor",
                ..
            })
        ));
        let first_flags = 3 + 2 + 1 + 4 + 1 + 7 + 8 + 4 + 8 + 4;
        let mut flags = bin;
        flags[first_flags] |= 0x80;
        assert!(matches!(
            Envelope::from_binary(&flags),
            Err(BinaryError::UnknownFlags { index: 0, .. })
        ));
    }

    #[test]
    fn a_count_larger_than_the_payload_is_refused_before_allocating() {
        let mut env = envelope();
        env.sightings.clear();
        let mut bin = env.to_binary();
        let n = bin.len() - 4;
        bin[n..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Envelope::from_binary(&bin),
            Err(BinaryError::Truncated {
                field: "sightings",
                ..
            })
        ));
    }
}
