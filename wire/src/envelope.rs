//! The sightings batch: [`Envelope`] and its [`Sighting`]s.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::Millis;

/// A 64-bit keyed identifier serialized as 16 lowercase hex digits (JSON numbers lose
/// precision past 2^53): [`DeviceKey`] and [`LinkKey`].
macro_rules! hex_key {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:016x}", self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.len() {
                    16 => hex(s.as_bytes()).map($name),
                    _ => None,
                }
                .ok_or_else(|| format!(concat!($what, " {:?} is not 16 hex digits"), s))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(hex_digits(self.0, &mut [0; 16]))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                from_str_field(d, concat!("a ", $what, " of 16 hex digits"))
            }
        }
    };
}

hex_key!(
    /// A device's keyed hash: the first 8 bytes of HMAC-SHA256(epoch key, MAC), big-endian.
    DeviceKey,
    "device key"
);

hex_key!(
    /// The sensor's link of a device's addresses (contract version 2): the rotating addresses
    /// one device used, as one sensor linked them (see the crate docs, "Links"). For a
    /// globally addressed device it equals the device key.
    LinkKey,
    "link"
);

/// `value`'s low `out.len()` nibbles as lowercase hex digits, written into `out` (the keys
/// and fingerprints of every sighting are serialized this way: a tenth of the agent's JSON
/// time went to the formatting machinery).
fn hex_digits(mut value: u64, out: &mut [u8]) -> &str {
    for b in out.iter_mut().rev() {
        *b = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
    std::str::from_utf8(out).expect("hex digits are ASCII")
}

/// Up to 16 hex digits (either case) as a number; None if any byte is not one.
fn hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &b| {
        let v = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        Some(n << 4 | u64::from(v))
    })
}

/// Deserializes a string field with `T::from_str`, borrowing the text where the input allows
/// (serde's `Cow<str>` always copies): sightings carry four such fields each.
pub(crate) fn from_str_field<'de, D, T>(d: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    struct Visit<T>(&'static str, std::marker::PhantomData<T>);
    impl<T: std::str::FromStr<Err = String>> de::Visitor<'_> for Visit<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            s.parse().map_err(E::custom)
        }
    }
    d.deserialize_str(Visit(expecting, std::marker::PhantomData))
}

/// A 32-bit digest of a probe request's capability information elements.
///
/// Stable for one device model and OS across MAC rotations, so it groups randomized
/// addresses for footfall counting. Serialized as 8 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fingerprint(pub u32);

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(hex_digits(u64::from(self.0), &mut [0; 8]))
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.len() {
            8 => hex(s.as_bytes()).map(|v| Fingerprint(v as u32)),
            _ => None,
        }
        .ok_or_else(|| format!("fingerprint {s:?} is not 8 hex digits"))
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_field(d, "a fingerprint of 8 hex digits")
    }
}

/// Whether a device address is stable and linkable across sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityClass {
    /// Universally administered address (U/L bit 0): stable, linkable across sites.
    Global,
    /// Locally administered address (U/L bit 1): randomized or private; counted for footfall,
    /// not linked across sites.
    Local,
}

/// One device seen by one sensor over one stretch of time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sighting {
    pub device: DeviceKey,
    /// The device's link (version 2; absent from version 1 agents: such a sighting is its
    /// own device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkKey>,
    /// The device key under the next epoch's key (version 3), only on a sighting that began in
    /// the last days of its epoch (see the crate docs, "Epoch bridges").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<DeviceKey>,
    pub class: IdentityClass,
    pub fingerprint: Fingerprint,
    pub first_seen: Millis,
    pub last_seen: Millis,
    /// Frames from this device in `[first_seen, last_seen]`.
    pub frames: u32,
    /// Strongest received signal, dBm.
    pub rssi_max: i8,
    /// Mean received signal, dBm, rounded to 0.1.
    pub rssi_mean: f32,
    /// `false` for an interim update of a sighting that is still open.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// A batch of sightings from one sensor: the payload of a `.../sightings` message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Contract version, [`crate::VERSION`].
    pub v: u32,
    pub sensor: String,
    pub site: String,
    /// Strictly rising per sensor, across restarts.
    pub seq: u64,
    /// The hashing epoch of every sighting in the batch.
    pub epoch: u32,
    /// When the batch was closed, in the sensor's clock (event time on replay).
    pub sent_at: Millis,
    pub sightings: Vec<Sighting>,
}

impl Envelope {
    /// The topic this envelope is published on.
    pub fn topic(&self) -> String {
        crate::topic::sightings(&self.site, &self.sensor)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The envelope of the crate docs' layout.
    pub(crate) fn sample() -> Envelope {
        Envelope {
            v: crate::VERSION,
            sensor: "s-01".into(),
            site: "store-7".into(),
            seq: 42,
            epoch: 437,
            sent_at: Millis(1_668_506_405_120),
            sightings: vec![Sighting {
                device: DeviceKey(0x9f86_d081_884c_7d65),
                link: Some(LinkKey(0x0b1e_55ed_c0ff_ee00)),
                next: None,
                class: IdentityClass::Global,
                fingerprint: Fingerprint(0x1a2b_3c4d),
                first_seen: Millis(1_668_506_341_003),
                last_seen: Millis(1_668_506_398_870),
                frames: 12,
                rssi_max: -51,
                rssi_mean: -63.4,
                is_final: true,
            }],
        }
    }

    #[test]
    fn json_matches_the_documented_layout() {
        let json = serde_json::to_string(&sample()).expect("serializable");
        assert_eq!(
            json,
            concat!(
                r#"{"v":3,"sensor":"s-01","site":"store-7","seq":42,"epoch":437,"#,
                r#""sent_at":"2022-11-15T10:00:05.120Z","sightings":[{"device":"9f86d081884c7d65","#,
                r#""link":"0b1e55edc0ffee00","class":"global","fingerprint":"1a2b3c4d","first_seen":"2022-11-15T09:59:01.003Z","#,
                r#""last_seen":"2022-11-15T09:59:58.870Z","frames":12,"rssi_max":-51,"rssi_mean":-63.4,"#,
                r#""final":true}]}"#
            )
        );
    }

    #[test]
    fn a_version_1_sighting_has_no_link() {
        let json = serde_json::to_string(&sample())
            .expect("serializable")
            .replace(r#""v":3"#, r#""v":1"#)
            .replace(r#""link":"0b1e55edc0ffee00","#, "");
        let e: Envelope = serde_json::from_str(&json).expect("a version 1 envelope");
        assert_eq!((e.v, e.sightings[0].link), (1, None));
        let bad = serde_json::to_string(&sample())
            .expect("serializable")
            .replace("0b1e55edc0ffee00", "0b1e55edc0ffee0");
        let err = serde_json::from_str::<Envelope>(&bad).expect_err("short link");
        assert!(
            err.to_string()
                .contains("link \"0b1e55edc0ffee0\" is not 16 hex digits"),
            "{err}"
        );
    }

    #[test]
    fn a_bridged_sighting_carries_its_next_key_after_the_link() {
        let mut e = sample();
        e.sightings[0].next = Some(DeviceKey(0x00c0_ffee_0000_0001));
        let json = serde_json::to_string(&e).expect("serializable");
        assert!(
            json.contains(r#""link":"0b1e55edc0ffee00","next":"00c0ffee00000001","class""#),
            "{json}"
        );
        let back: Envelope = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, e);
        let err = serde_json::from_str::<Envelope>(&json.replace("00c0ffee00000001", "x"))
            .expect_err("a bad next key");
        assert!(err.to_string().contains("device key \"x\""), "{err}");
    }

    #[test]
    fn device_keys_above_2_pow_53_survive_json() {
        let mut e = sample();
        e.sightings[0].device = DeviceKey(u64::MAX - 1);
        let back: Envelope =
            serde_json::from_slice(&serde_json::to_vec(&e).expect("serializable")).expect("valid");
        assert_eq!(back.sightings[0].device, DeviceKey(u64::MAX - 1));
    }

    #[test]
    fn rejects_a_numeric_device_key() {
        let json = serde_json::to_string(&sample())
            .expect("serializable")
            .replace(r#""9f86d081884c7d65""#, "12345");
        let err = serde_json::from_str::<Envelope>(&json).expect_err("numeric key");
        assert!(
            err.to_string()
                .contains("integer `12345`, expected a device key of 16 hex digits"),
            "{err}"
        );
    }

    #[test]
    fn device_keys_are_exactly_16_hex_digits() {
        let key = DeviceKey(0x9f86_d081_884c_7d65);
        assert_eq!("9f86d081884c7d65".parse(), Ok(key));
        assert_eq!("9F86D081884C7D65".parse(), Ok(key));
        assert_eq!("ffffffffffffffff".parse(), Ok(DeviceKey(u64::MAX)));
        for bad in [
            "9f86d081884c7d6g",
            "9f86d081884c7d6",
            "9f86d081884c7d655",
            "+f86d081884c7d65",
            "",
        ] {
            let err = bad.parse::<DeviceKey>().expect_err(bad);
            assert!(err.contains("is not 16 hex digits"), "{err}");
        }
        assert_eq!("0000abcd".parse(), Ok(Fingerprint(0xabcd)));
        assert!("0000abc".parse::<Fingerprint>().is_err());
        assert!("0000abcx".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn rejects_unknown_fields() {
        let json = serde_json::to_string(&sample())
            .expect("serializable")
            .replace(r#""v":3,"#, r#""v":3,"mac":"aa:bb","#);
        let err = serde_json::from_str::<Envelope>(&json).expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `mac`"), "{err}");
    }

    fn arb_sighting() -> impl Strategy<Value = Sighting> {
        (
            (
                any::<u64>(),
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()),
            ),
            any::<bool>(),
            any::<u32>(),
            0i64..4_000_000_000_000,
            0i64..86_400_000,
            1u32..100_000,
            any::<i8>(),
            -1000i32..0,
            any::<bool>(),
        )
            .prop_map(
                |((d, link, next), g, fp, first, dur, frames, max, mean, fin)| Sighting {
                    device: DeviceKey(d),
                    link: link.map(LinkKey),
                    next: next.map(DeviceKey),
                    class: if g {
                        IdentityClass::Global
                    } else {
                        IdentityClass::Local
                    },
                    fingerprint: Fingerprint(fp),
                    first_seen: Millis(first),
                    last_seen: Millis(first + dur),
                    frames,
                    rssi_max: max,
                    rssi_mean: mean as f32 / 10.0,
                    is_final: fin,
                },
            )
    }

    proptest! {
        #[test]
        fn envelope_round_trips(seq in any::<u64>(), epoch in any::<u32>(),
                                sightings in proptest::collection::vec(arb_sighting(), 0..20)) {
            let e = Envelope { seq, epoch, sightings, ..sample() };
            let json = serde_json::to_vec(&e).expect("serializable");
            let back: Envelope = serde_json::from_slice(&json).expect("round trip");
            prop_assert_eq!(&back, &e);
            prop_assert_eq!(Envelope::from_binary(&e.to_binary()), Ok(e));
        }
    }
}
