//! What a sensor publishes instead of an address (DESIGN.md, privacy invariant), shared by
//! the agent, which hashes real addresses, and the simulator, whose fast mode must produce
//! byte-identical keys and fingerprints without capturing anything.
//!
//! - [`epoch_key`]: `HKDF-SHA256(ikm = tenant secret, salt = "footfall/v1/device-key",
//!   info = "epoch" || epoch u32 BE)`, 32 bytes. Every sensor of a tenant derives the same
//!   epoch key, so one phone has one key everywhere within an epoch, and a new key the next.
//! - [`EpochHasher::device_key`]: the first 8 bytes of `HMAC-SHA256(epoch_key, MAC)` read
//!   big-endian. A keyed hash with a secret that never leaves the sensors cannot be reversed
//!   by enumerating the ~39-bit allocated address space, as an unsalted hash can.
//! - [`EpochHasher::link_key`] and [`link::Linker`]: the link of a chain of one device's
//!   randomized addresses (wire crate docs, "Links").
//! - [`Epochs`]: which epoch a time falls in, and whether a sighting is in its epoch's last
//!   days, where it also carries its next epoch's key (wire crate docs, "Epoch bridges").
//! - [`fingerprint`]: FNV-1a 32 over the stable parts of a probe request's information
//!   elements (chipset and OS capabilities, not networks or channels).

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wire::{DeviceKey, Fingerprint, LinkKey};

pub mod keys;
pub mod link;

pub use keys::EpochKeys;

const HKDF_SALT: &[u8] = b"footfall/v1/device-key";

/// Derives the 32-byte key of one epoch from the tenant secret.
pub fn epoch_key(secret: &[u8], epoch: u32) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret);
    let mut info = *b"epoch\0\0\0\0";
    info[5..].copy_from_slice(&epoch.to_be_bytes());
    let mut okm = [0u8; 32];
    hk.expand(&info, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

const DAY_MS: i64 = 86_400_000;

/// The epoch lengths a tenant may choose, in days.
pub const EPOCH_DAYS: std::ops::RangeInclusive<u32> = 1..=366;

/// Why `days` is not an epoch length, if it is not.
pub fn check_epoch_days(days: u32) -> Result<(), String> {
    if EPOCH_DAYS.contains(&days) {
        Ok(())
    } else {
        Err(format!(
            "must be {}-{}",
            EPOCH_DAYS.start(),
            EPOCH_DAYS.end()
        ))
    }
}

/// The epoch calendar of a tenant: `epoch = floor(unix_ms / epoch length)`, and the bridge,
/// the last `bridge_days` of each epoch, in which a sighting also carries its device key
/// under the next epoch's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epochs {
    epoch_ms: i64,
    bridge_ms: i64,
}

impl Epochs {
    /// Epochs of `epoch_days` (at least 1) with a bridge of `bridge_days` (0: none; capped
    /// below the epoch's length, so a key is never published more than one epoch ahead).
    pub fn new(epoch_days: u32, bridge_days: u32) -> Epochs {
        let epoch_days = epoch_days.max(1);
        Epochs {
            epoch_ms: i64::from(epoch_days) * DAY_MS,
            bridge_ms: i64::from(bridge_days.min(epoch_days - 1)) * DAY_MS,
        }
    }

    /// The epoch's length in milliseconds.
    pub fn epoch_ms(&self) -> i64 {
        self.epoch_ms
    }

    /// The epoch that contains `ms` (0 before 1970).
    pub fn epoch_of(&self, ms: i64) -> u32 {
        u32::try_from(ms.div_euclid(self.epoch_ms)).unwrap_or(0)
    }

    /// When `epoch` begins, in ms since 1970.
    pub fn start_of(&self, epoch: u32) -> i64 {
        i64::from(epoch) * self.epoch_ms
    }

    /// The next epoch, if a sighting that began at `first_ms` is in its epoch's bridge.
    pub fn bridge_to(&self, first_ms: i64) -> Option<u32> {
        let next = self.epoch_of(first_ms).checked_add(1)?;
        (self.bridge_ms > 0 && first_ms >= self.start_of(next) - self.bridge_ms).then_some(next)
    }
}

/// The keyed HMAC state of one epoch: hashing an address clones it instead of keying a new
/// HMAC each time.
#[derive(Clone)]
pub struct EpochHasher(Hmac<Sha256>);

impl EpochHasher {
    pub fn new(epoch_key: &[u8; 32]) -> EpochHasher {
        EpochHasher(Hmac::<Sha256>::new_from_slice(epoch_key).expect("HMAC takes any key length"))
    }

    /// The device key of the address `octets`.
    pub fn device_key(&self, octets: &[u8; 6]) -> DeviceKey {
        let mut m = self.0.clone();
        m.update(octets);
        let digest = m.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        DeviceKey(u64::from_be_bytes(first))
    }

    /// The link of a chain of randomized addresses that began on UTC day `day` (days since
    /// the Unix epoch) with the address `octets`: the first 8 bytes of `HMAC-SHA256(epoch
    /// key, "footfall/link" || day u32 BE || octets)` read big-endian. Its message is longer
    /// than a device key's (the bare 6 octets), so the two never collide by construction.
    pub fn link_key(&self, day: u32, octets: &[u8; 6]) -> LinkKey {
        let mut m = self.0.clone();
        m.update(b"footfall/link");
        m.update(&day.to_be_bytes());
        m.update(octets);
        let digest = m.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        LinkKey(u64::from_be_bytes(first))
    }
}

/// The device key of the address `octets` under `epoch_key`: what a sensor publishes for it.
pub fn device_key(epoch_key: &[u8; 32], octets: &[u8; 6]) -> DeviceKey {
    EpochHasher::new(epoch_key).device_key(octets)
}

const IE_SSID: u8 = 0;
const IE_DS_PARAMETER: u8 = 3;
const IE_REQUEST: u8 = 10;
const IE_VENDOR: u8 = 221;
/// Capability elements whose contents identify a chipset/OS: rates, HT, extended rates,
/// extended capabilities, VHT, and element-id extensions (HE and later).
const IE_CAPABILITIES: [u8; 6] = [1, 45, 50, 127, 191, 255];

/// FNV-1a 32 over the element ids in order, the contents of capability elements, and the
/// OUI + type of vendor elements. SSIDs, the current channel and anything after a truncated
/// element are left out: they vary per network, per hop, or are corrupt. (Hand-written: the
/// `fnv` crate has no 32-bit variant, and the value is part of the wire contract.)
pub fn fingerprint(mut ies: &[u8]) -> Fingerprint {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    while let [id, len, rest @ ..] = ies {
        let Some(data) = rest.get(..usize::from(*len)) else {
            break;
        };
        match *id {
            IE_SSID | IE_DS_PARAMETER | IE_REQUEST => {}
            IE_VENDOR => {
                eat(&[*id]);
                eat(&data[..data.len().min(4)]);
            }
            id if IE_CAPABILITIES.contains(&id) => {
                eat(&[id, *len]);
                eat(data);
            }
            id => eat(&[id]),
        }
        ies = &rest[usize::from(*len)..];
    }
    Fingerprint(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_hmac_computation() {
        // Reference computed with Python's hmac/hashlib:
        //   prk = hmac(salt, secret); okm = hmac(prk, b"epoch" + epoch.to_bytes(4) + b"\x01")
        //   hmac(okm, mac).digest()[:8]
        let key = epoch_key(b"tenant-secret-0123456789", 429);
        let octets = [0x3c, 0x22, 0xfb, 0x01, 0x02, 0x03];
        assert_eq!(device_key(&key, &octets).to_string(), "29ba4513ff145db2");
        assert_eq!(
            EpochHasher::new(&key).device_key(&octets).to_string(),
            "29ba4513ff145db2"
        );
    }

    #[test]
    fn link_keys_match_an_independent_hmac_computation() {
        // Python: hmac.new(okm, b"footfall/link" + (20407).to_bytes(4, "big") + mac,
        //                  hashlib.sha256).digest()[:8]
        let h = EpochHasher::new(&epoch_key(b"tenant-secret-0123456789", 429));
        let octets = [0xda, 0xa1, 0x19, 0x01, 0x02, 0x03];
        assert_eq!(h.link_key(20407, &octets).to_string(), "8ad35f5e602bb34c");
        assert_ne!(h.link_key(20408, &octets), h.link_key(20407, &octets));
        assert_ne!(h.link_key(20407, &octets).0, h.device_key(&octets).0);
    }

    #[test]
    fn the_bridge_is_the_last_days_of_each_epoch() {
        let e = Epochs::new(45, 30);
        let boundary = e.start_of(456); // 2026-03-08T00:00Z
        assert_eq!(boundary, 1_772_928_000_000);
        assert_eq!(e.epoch_of(boundary - 1), 455);
        assert_eq!(e.epoch_of(boundary), 456);
        assert_eq!(e.bridge_to(boundary - 1), Some(456));
        assert_eq!(e.bridge_to(boundary - 30 * DAY_MS), Some(456));
        assert_eq!(e.bridge_to(boundary - 30 * DAY_MS - 1), None, "15 days in");
        assert_eq!(e.bridge_to(boundary), None, "the new epoch's first day");
        assert_eq!(
            Epochs::new(45, 0).bridge_to(boundary - 1),
            None,
            "no bridge"
        );
        // A bridge as long as the epoch is cut to one day less: a key is never published
        // more than an epoch ahead.
        let whole = Epochs::new(2, 9);
        assert_eq!(whole.bridge_to(0), None);
        assert_eq!(whole.bridge_to(DAY_MS), Some(1));
    }

    #[test]
    fn fingerprint_ignores_ssid_channel_and_requests_but_not_capabilities() {
        let base = fingerprint(&[0, 3, b'a', b'b', b'c', 3, 1, 6, 1, 2, 0x82, 0x84]);
        let other_network = fingerprint(&[0, 0, 3, 1, 11, 10, 1, 7, 1, 2, 0x82, 0x84]);
        let other_rates = fingerprint(&[0, 0, 3, 1, 11, 1, 2, 0x82, 0x8b]);
        assert_eq!(base, other_network);
        assert_ne!(base, other_rates);
        // Vendor elements count by OUI and type only.
        let vendor = |tail: u8| fingerprint(&[221, 6, 0, 0x50, 0xf2, 8, tail, tail]);
        assert_eq!(vendor(1), vendor(2));
        // A truncated element and what follows it are left out.
        assert_eq!(
            fingerprint(&[1, 2, 0x82, 0x84, 45, 9, 1]),
            fingerprint(&[1, 2, 0x82, 0x84])
        );
    }
}
