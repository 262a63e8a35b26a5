//! UTC instants with millisecond precision, serialized as RFC 3339 (`...T10:00:05.120Z`).

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub i64);

impl Millis {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Millis(Utc::now().timestamp_millis())
    }

    fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0)
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` for years 0-9999, without allocating (sightings carry two
    /// timestamps each, so this is on the publishing hot path).
    fn rfc3339(self) -> Option<[u8; 24]> {
        let days = self.0.div_euclid(86_400_000);
        let ms_of_day = self.0.rem_euclid(86_400_000);
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, ms_of_day / 3_600_000);
        put(14, 2, ms_of_day / 60_000 % 60);
        put(17, 2, ms_of_day / 1000 % 60);
        put(20, 3, ms_of_day % 1000);
        Some(b)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => write!(f, "{}ms", self.0),
        }
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.rfc3339() {
            Some(b) => s.serialize_str(std::str::from_utf8(&b).expect("ASCII digits")),
            None => Err(serde::ser::Error::custom(format!(
                "timestamp {} ms is outside years 0-9999",
                self.0
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let t = DateTime::parse_from_rfc3339(&s)
            .map_err(|e| de::Error::custom(format!("invalid timestamp {s:?}: {e}")))?;
        Ok(Millis(t.with_timezone(&Utc).timestamp_millis()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_rfc3339_with_milliseconds() {
        let t = Millis(1_668_506_405_120);
        assert_eq!(
            serde_json::to_string(&t).expect("serializable"),
            "\"2022-11-15T10:00:05.120Z\""
        );
        assert_eq!(t.to_string(), "2022-11-15T10:00:05.120Z");
    }

    #[test]
    fn accepts_offsets_and_normalises_to_utc() {
        let t: Millis =
            serde_json::from_str("\"2022-11-15T11:00:05.120+01:00\"").expect("valid rfc3339");
        assert_eq!(t, Millis(1_668_506_405_120));
    }

    proptest::proptest! {
        #[test]
        fn fast_formatting_agrees_with_chrono(ms in -62_167_219_200_000i64..253_402_300_799_999) {
            let t = Millis(ms);
            let ours = serde_json::to_string(&t).expect("in range");
            let chrono = t.to_datetime().expect("in range").to_rfc3339_opts(SecondsFormat::Millis, true);
            proptest::prop_assert_eq!(ours, format!("\"{chrono}\""));
        }
    }

    #[test]
    fn refuses_years_beyond_four_digits() {
        assert!(serde_json::to_string(&Millis(253_402_300_800_000)).is_err());
        assert!(serde_json::to_string(&Millis(-62_167_219_200_001)).is_err());
    }

    #[test]
    fn rejects_garbage() {
        let err = serde_json::from_str::<Millis>("\"yesterday\"").expect_err("not a time");
        assert!(err.to_string().contains("invalid timestamp"), "{err}");
    }
}
