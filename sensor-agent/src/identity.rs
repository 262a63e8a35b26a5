//! Keyed hashing of device addresses (DESIGN.md, privacy invariant).
//!
//! `epoch = floor(unix_secs / epoch_len)`;
//! `epoch_key = HKDF-SHA256(ikm = tenant secret, salt = "footfall/v1/device-key",
//! info = "epoch" || epoch u32 BE)`, 32 bytes; `device key = first 8 bytes of
//! HMAC-SHA256(epoch_key, MAC)` read big-endian. Every sensor of a tenant derives the same
//! epoch key, so one phone has one key everywhere within an epoch, and a new key the next.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wire::DeviceKey;

use firmware_config::Secret;

use crate::mac::RawMac;

const HKDF_SALT: &[u8] = b"footfall/v1/device-key";

/// Derives the 32-byte key of one epoch from the tenant secret.
pub fn epoch_key(secret: &Secret, epoch: u32) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret.expose());
    let mut info = *b"epoch\0\0\0\0";
    info[5..].copy_from_slice(&epoch.to_be_bytes());
    let mut okm = [0u8; 32];
    hk.expand(&info, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// The device key of the address `octets` under `epoch_key`: what a sensor publishes for it.
/// For simulators and tests that hold synthetic addresses; the agent itself hashes through
/// [`Hasher`], which never lets a raw address out of the crate.
pub fn device_key(epoch_key: &[u8; 32], octets: &[u8; 6]) -> DeviceKey {
    let mut m = Hmac::<Sha256>::new_from_slice(epoch_key).expect("HMAC takes any key length");
    m.update(octets);
    let digest = m.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    DeviceKey(u64::from_be_bytes(first))
}

/// Maps addresses to device keys. It keeps the current epoch's keyed HMAC state; callers
/// hash once per sighting (the session table caches the result), not once per frame.
pub(crate) struct Hasher {
    secret: Secret,
    epoch_ms: i64,
    epoch: u32,
    mac: Hmac<Sha256>,
}

impl Hasher {
    pub(crate) fn new(secret: Secret, epoch_days: u32) -> Hasher {
        let mac = keyed(&secret, 0);
        Hasher {
            secret,
            epoch_ms: i64::from(epoch_days) * 86_400_000,
            epoch: 0,
            mac,
        }
    }

    /// The epoch that contains `ts_ms`: a range check against the current epoch, which
    /// answers for almost every frame, before a division.
    pub(crate) fn epoch_of(&self, ts_ms: i64) -> u32 {
        let start = i64::from(self.epoch) * self.epoch_ms;
        if (start..start + self.epoch_ms).contains(&ts_ms) {
            return self.epoch;
        }
        u32::try_from(ts_ms.div_euclid(self.epoch_ms)).unwrap_or(0)
    }

    /// The device key of `mac` at time `ts_ms`, with its epoch.
    pub(crate) fn key(&mut self, mac: &RawMac, ts_ms: i64) -> (u32, DeviceKey) {
        let epoch = self.epoch_of(ts_ms);
        if epoch != self.epoch {
            self.epoch = epoch;
            self.mac = keyed(&self.secret, epoch);
        }
        let mut m = self.mac.clone();
        m.update(mac.octets());
        let digest = m.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (epoch, DeviceKey(u64::from_be_bytes(first)))
    }
}

fn keyed(secret: &Secret, epoch: u32) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(&epoch_key(secret, epoch)).expect("HMAC takes any key length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(b: [u8; 6]) -> RawMac {
        RawMac::from_slice(&b).expect("six bytes")
    }

    #[test]
    fn matches_an_independent_hmac_computation() {
        // Reference computed with Python's hmac/hashlib:
        //   prk = hmac(salt, secret); okm = hmac(prk, b"epoch" + epoch.to_bytes(4) + b"\x01")
        //   hmac(okm, mac).digest()[:8]
        let secret = Secret::from_bytes(b"tenant-secret-0123456789".to_vec());
        let mut h = Hasher::new(secret, 45);
        let ts = 1_668_506_405_120; // 2022-11-15, epoch 429 at 45 days
        let (epoch, key) = h.key(&mac([0x3c, 0x22, 0xfb, 0x01, 0x02, 0x03]), ts);
        assert_eq!(epoch, 429);
        assert_eq!(key.to_string(), "29ba4513ff145db2");
        let secret = Secret::from_bytes(b"tenant-secret-0123456789".to_vec());
        let octets = [0x3c, 0x22, 0xfb, 0x01, 0x02, 0x03];
        assert_eq!(device_key(&epoch_key(&secret, 429), &octets), key);
    }

    #[test]
    fn keys_are_stable_within_an_epoch_and_change_across_epochs() {
        let secret = Secret::from_bytes(b"tenant-secret-0123456789".to_vec());
        let mut h = Hasher::new(secret.clone(), 1);
        let m = mac([0x3c, 0x22, 0xfb, 0x01, 0x02, 0x03]);
        let day = 86_400_000;
        let a = h.key(&m, 10 * day + 5);
        assert_eq!(h.key(&m, 10 * day + day - 1), a, "same epoch, same key");
        let b = h.key(&m, 11 * day);
        assert_eq!(b.0, 11);
        assert_ne!(a.1, b.1, "a new epoch gives a new key");
        let mut other_sensor = Hasher::new(secret, 1);
        assert_eq!(other_sensor.key(&m, 10 * day), a, "every sensor agrees");
    }
}
