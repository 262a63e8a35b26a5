//! The dates a page shows: a period of local dates in the URL (`from`, `to`, both included),
//! the last 7 days by default.

use chrono::{NaiveDate, TimeZone};

/// Local dates, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The longest period a page shows.
pub const MAX_DAYS: i64 = 366;

impl Period {
    /// Reads `from` and `to` (`to` absent: `today`; `from` absent: 6 days before `to`); a bad
    /// one is an error naming it, for a 400.
    pub fn parse(from: Option<&str>, to: Option<&str>, today: NaiveDate) -> Result<Period, String> {
        Period::parse_named(("from", "to"), from, to, today)
    }

    /// As [`Period::parse`], with the parameters' names for the messages.
    pub fn parse_named(
        names: (&str, &str),
        from: Option<&str>,
        to: Option<&str>,
        today: NaiveDate,
    ) -> Result<Period, String> {
        let date = |name: &str, v: &str| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| format!("{name}: {v:?} is not a date (YYYY-MM-DD)"))
        };
        let to = to.map_or(Ok(today), |v| date(names.1, v))?;
        let from = from.map_or(Ok(to - chrono::Days::new(6)), |v| date(names.0, v))?;
        if from > to {
            return Err(format!("{}: {from} is after {} ({to})", names.0, names.1));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(format!(
                "{}, {}: {from} to {to} is more than {MAX_DAYS} days",
                names.0, names.1
            ));
        }
        Ok(Period { from, to })
    }

    /// How many days.
    pub fn days(&self) -> u64 {
        u64::try_from((self.to - self.from).num_days() + 1).unwrap_or(1)
    }

    /// The period of the same length just before.
    pub fn previous(&self) -> Period {
        let days = chrono::Days::new(self.days());
        Period {
            from: self.from - days,
            to: self.to - days,
        }
    }

    /// Every date, in order.
    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> {
        let to = self.to;
        self.from.iter_days().take_while(move |d| *d <= to)
    }

    /// The period on `tz`'s clocks as UTC milliseconds: [start of `from`, start of the day
    /// after `to`).
    pub fn utc_ms(&self, tz: chrono_tz::Tz) -> (i64, i64) {
        (
            start_ms(self.from, tz),
            start_ms(self.to + chrono::Days::new(1), tz),
        )
    }
}

/// When `day` starts on `tz`'s clocks (the first instant of it that exists), UTC ms.
pub fn start_ms(day: NaiveDate, tz: chrono_tz::Tz) -> i64 {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Midnight may fall in a DST gap (or twice): the earliest of the first hour's instants.
    (0..=60)
        .find_map(|m| {
            tz.from_local_datetime(&(midnight + chrono::Duration::minutes(m)))
                .earliest()
        })
        .map_or_else(
            || midnight.and_utc().timestamp_millis(),
            |t| t.timestamp_millis(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 20).expect("date")
    }

    #[test]
    fn the_default_is_the_last_week_and_bad_dates_are_named() {
        let p = Period::parse(None, None, today()).expect("defaults");
        assert_eq!(
            (p.from.to_string(), p.to.to_string()),
            ("2026-03-14".into(), "2026-03-20".into())
        );
        assert_eq!(p.previous().from.to_string(), "2026-03-07");
        assert_eq!(p.days(), 7);
        assert_eq!(p.dates().count(), 7);
        for ((from, to), field) in [
            ((Some("2026-02-30"), None), "from"),
            ((Some("2026-03-21"), None), "from"),
            ((None, Some("yesterday")), "to"),
            ((Some("2016-01-01"), None), "from, to"),
        ] {
            let e = Period::parse(from, to, today()).expect_err(field);
            assert!(e.starts_with(&format!("{field}: ")), "{e}");
        }
    }

    #[test]
    fn local_days_start_at_local_midnight() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().expect("tz");
        let p = Period::parse(Some("2026-03-28"), Some("2026-03-29"), today()).expect("period");
        let (start, end) = p.utc_ms(berlin);
        // 2026-03-28 00:00 CET is 23:00 UTC the day before; the 29th has 23 hours (DST).
        assert_eq!(start, 1_774_652_400_000);
        assert_eq!(end - start, (24 + 23) * 3_600_000);
    }
}
