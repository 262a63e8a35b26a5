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

    /// Whole seconds since the Unix epoch (floor).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0)
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
        match self.to_datetime() {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => Err(serde::ser::Error::custom(format!(
                "timestamp {} ms is out of range",
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

    #[test]
    fn rejects_garbage() {
        let err = serde_json::from_str::<Millis>("\"yesterday\"").expect_err("not a time");
        assert!(err.to_string().contains("invalid timestamp"), "{err}");
    }
}
