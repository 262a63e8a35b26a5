//! Keyed hashing of device addresses (DESIGN.md, privacy invariant): `epoch =
//! floor(unix_secs / epoch_len)`, and the epoch's key and the device key as `device_id`
//! defines them, with the next epoch's key in an epoch's bridge (wire crate docs, "Epoch
//! bridges"). Here the raw address stays inside the crate: only [`Hasher`] reads it.

use device_id::link::{ChainId, Linker};
use device_id::{EpochHasher, Epochs};
use firmware_config::Keys;
use wire::{DeviceKey, Fingerprint};

use crate::mac::RawMac;

/// Maps addresses to device keys. It keeps the current epoch's keyed HMAC state (and the
/// next one's, in the bridge); callers hash once per sighting (the session table caches the
/// result), not once per frame. With epoch keys (not the tenant secret) only the epochs
/// held can be hashed: callers ask [`Hasher::can_hash`] first.
pub(crate) struct Hasher {
    keys: Keys,
    epochs: Epochs,
    /// The epoch being hashed and its keyed state (none before the first frame).
    current: Option<(u32, EpochHasher)>,
    next: Option<(u32, Option<EpochHasher>)>,
}

impl Hasher {
    pub(crate) fn new(keys: Keys, epochs: Epochs) -> Hasher {
        Hasher {
            keys,
            epochs,
            current: None,
            next: None,
        }
    }

    /// Whether the keys cover the epoch of `ts_ms` (always, with the tenant secret).
    pub(crate) fn can_hash(&self, ts_ms: i64) -> bool {
        let epoch = self.epoch_of(ts_ms);
        self.current.as_ref().is_some_and(|(e, _)| *e == epoch)
            || self.keys.epoch_key(epoch).is_some()
    }

    /// The epoch that contains `ts_ms`: a range check against the current epoch, which
    /// answers for almost every frame, before a division.
    pub(crate) fn epoch_of(&self, ts_ms: i64) -> u32 {
        if let Some((epoch, _)) = self.current {
            let start = self.epochs.start_of(epoch);
            if (start..start + self.epochs.epoch_ms()).contains(&ts_ms) {
                return epoch;
            }
        }
        self.epochs.epoch_of(ts_ms)
    }

    /// The next epoch's key of `mac`, if a sighting of it that began at `first_ms` is in its
    /// epoch's bridge (and the next epoch's key is held). Hashed once per published sighting
    /// version, in the bridge only.
    pub(crate) fn next_key(&mut self, mac: &RawMac, first_ms: i64) -> Option<DeviceKey> {
        let next = self.epochs.bridge_to(first_ms)?;
        if self.next.as_ref().is_none_or(|(e, _)| *e != next) {
            let hasher = self.keys.epoch_key(next).map(|k| EpochHasher::new(&k));
            if hasher.is_none() {
                tracing::warn!(
                    epoch = next,
                    "no key for the next epoch: sightings in the bridge go without their next \
                     key until it is distributed (footfall-fleet keys)"
                );
            }
            self.next = Some((next, hasher));
        }
        let (_, hasher) = self.next.as_ref().expect("keyed above");
        hasher.as_ref().map(|h| h.device_key(mac.octets()))
    }

    /// The device key of `mac` at time `ts_ms`, with its epoch.
    pub(crate) fn key(&mut self, mac: &RawMac, ts_ms: i64) -> (u32, DeviceKey) {
        let (epoch, hasher) = self.at(ts_ms);
        (epoch, hasher.device_key(mac.octets()))
    }

    /// The chain of the randomized address `mac`, first heard at `ts_ms` (`link::Linker`).
    pub(crate) fn chain(
        &mut self,
        linker: &mut Linker,
        mac: &RawMac,
        fingerprint: Fingerprint,
        seq: u16,
        ts_ms: i64,
        rssi: i8,
    ) -> ChainId {
        let (_, hasher) = self.at(ts_ms);
        linker.open(hasher, mac.octets(), fingerprint, seq, ts_ms, rssi)
    }

    /// Keys the hasher for the epoch of `ts_ms`; returns the epoch. The caller checked
    /// [`Hasher::can_hash`].
    fn at(&mut self, ts_ms: i64) -> (u32, &EpochHasher) {
        let epoch = self.epoch_of(ts_ms);
        if self.current.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let key = self
                .keys
                .epoch_key(epoch)
                .expect("can_hash checked by the caller");
            self.current = Some((epoch, EpochHasher::new(&key)));
        }
        let (_, hasher) = self.current.as_ref().expect("keyed above");
        (epoch, hasher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_config::Secret;

    fn mac(b: [u8; 6]) -> RawMac {
        RawMac::from_slice(&b).expect("six bytes")
    }

    #[test]
    fn matches_an_independent_hmac_computation() {
        // Reference computed with Python's hmac/hashlib:
        //   prk = hmac(salt, secret); okm = hmac(prk, b"epoch" + epoch.to_bytes(4) + b"\x01")
        //   hmac(okm, mac).digest()[:8]
        let secret = Keys::Tenant(Secret::from_bytes(b"tenant-secret-0123456789".to_vec()));
        let mut h = Hasher::new(secret, Epochs::new(45, 30));
        let ts = 1_668_506_405_120; // 2022-11-15, epoch 429 at 45 days
        let (epoch, key) = h.key(&mac([0x3c, 0x22, 0xfb, 0x01, 0x02, 0x03]), ts);
        assert_eq!(epoch, 429);
        assert_eq!(key.to_string(), "29ba4513ff145db2");
    }

    #[test]
    fn keys_are_stable_within_an_epoch_and_change_across_epochs() {
        let secret = Keys::Tenant(Secret::from_bytes(b"tenant-secret-0123456789".to_vec()));
        let mut h = Hasher::new(secret.clone(), Epochs::new(1, 0));
        let m = mac([0x3c, 0x22, 0xfb, 0x01, 0x02, 0x03]);
        let day = 86_400_000;
        let a = h.key(&m, 10 * day + 5);
        assert_eq!(h.key(&m, 10 * day + day - 1), a, "same epoch, same key");
        let b = h.key(&m, 11 * day);
        assert_eq!(b.0, 11);
        assert_ne!(a.1, b.1, "a new epoch gives a new key");
        let mut other_sensor = Hasher::new(secret, Epochs::new(1, 0));
        assert_eq!(other_sensor.key(&m, 10 * day), a, "every sensor agrees");
    }

    #[test]
    fn in_the_bridge_the_next_key_is_the_key_the_next_epoch_gives() {
        let secret = Keys::Tenant(Secret::from_bytes(b"tenant-secret-0123456789".to_vec()));
        let mut h = Hasher::new(secret, Epochs::new(10, 3));
        let m = mac([0x3c, 0x22, 0xfb, 0x01, 0x02, 0x03]);
        let day = 86_400_000;
        assert_eq!(h.next_key(&m, 16 * day), None, "day 6 of 10");
        let next = h.next_key(&m, 17 * day).expect("day 7 of 10: the bridge");
        assert_eq!(
            h.key(&m, 20 * day),
            (2, next),
            "what the next epoch publishes"
        );
        assert_ne!(h.key(&m, 17 * day).1, next);
        // The next epoch's own bridge: its next key is the one after.
        let after = h.next_key(&m, 29 * day).expect("the bridge into epoch 3");
        assert_eq!(h.key(&m, 30 * day), (3, after));
    }
}
