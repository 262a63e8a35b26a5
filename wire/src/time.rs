//! UTC instants with millisecond precision, serialized as RFC 3339 (`...T10:00:05.120Z`).

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

impl std::str::FromStr for Millis {
    type Err = String;

    /// Any RFC 3339 time; the form this contract writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`, two per
    /// sighting on the collector's hot path) is read without the general-purpose parser.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(t) = parse_canonical(s.as_bytes()) {
            return Ok(t);
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Millis(t.with_timezone(&Utc).timestamp_millis()))
            .map_err(|e| format!("invalid timestamp {s:?}: {e}"))
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` with every field in range, or None (then chrono decides).
fn parse_canonical(b: &[u8]) -> Option<Millis> {
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, b'T', h0, h1, b':', n0, n1, b':', s0, s1, b'.', f0, f1, f2, b'Z'] =
        *b
    else {
        return None;
    };
    let mut digits = [
        y0, y1, y2, y3, m0, m1, d0, d1, h0, h1, n0, n1, s0, s1, f0, f1, f2,
    ];
    for d in &mut digits {
        *d = d.wrapping_sub(b'0');
        if *d > 9 {
            return None;
        }
    }
    let num =
        |r: std::ops::Range<usize>| digits[r].iter().fold(0i64, |n, &d| n * 10 + i64::from(d));
    let (year, month, day) = (num(0..4), num(4..6), num(6..8));
    let (hour, minute, second, milli) = (num(8..10), num(10..12), num(12..14), num(14..17));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Howard Hinnant's days-from-civil algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(Millis(
        days * 86_400_000 + ((hour * 60 + minute) * 60 + second) * 1000 + milli,
    ))
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::envelope::from_str_field(d, "an RFC 3339 timestamp")
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

    proptest::proptest! {
        #[test]
        fn fast_parsing_agrees_with_chrono(ms in -62_167_219_200_000i64..253_402_300_799_999) {
            let text = Millis(ms).to_string();
            proptest::prop_assert_eq!(parse_canonical(text.as_bytes()), Some(Millis(ms)));
        }

        #[test]
        fn fast_parsing_never_accepts_what_chrono_refuses(
            y in 0u32..10_000, m in 0u32..14, d in 0u32..33, h in 0u32..26, n in 0u32..62, s in 0u32..62,
        ) {
            let text = format!("{y:04}-{m:02}-{d:02}T{h:02}:{n:02}:{s:02}.250Z");
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|t| Millis(t.timestamp_millis()));
            match parse_canonical(text.as_bytes()) {
                Some(ours) => proptest::prop_assert_eq!(Some(ours), chrono),
                // Leap seconds (:60) are left to chrono.
                None => proptest::prop_assert!(chrono.is_none() || s == 60),
            }
        }
    }

    #[test]
    fn refuses_impossible_dates() {
        for bad in [
            "2023-02-29T00:00:00.000Z",
            "2024-13-01T00:00:00.000Z",
            "2024-04-31T10:00:00.000Z",
        ] {
            assert!(bad.parse::<Millis>().is_err(), "{bad}");
        }
        assert_eq!(
            "2024-02-29T23:59:59.999Z".parse::<Millis>(),
            Ok(Millis(1_709_251_199_999))
        );
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
