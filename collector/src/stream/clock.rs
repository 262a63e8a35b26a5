//! The stage's clocks: event time for the input (the watermark follows it), and the wall
//! clock that versions the written rows.

use std::time::Instant;

/// The stage's timestamps: the event-time bucket in the high bits, and below it a step the
/// feeding worker takes after each recompute's batch, so the frontier passes the batch (and
/// the stays it rebuilt are forgotten) without event time moving on.
pub(super) const STEP_BITS: u32 = 16;
pub(super) const STEP_MASK: u64 = (1 << STEP_BITS) - 1;

/// The watermark (ms) of a frontier: its bucket's start.
pub(super) fn watermark_ms(t: u64, bucket_ms: i64) -> i64 {
    i64::try_from(t >> STEP_BITS)
        .unwrap_or(i64::MAX)
        .saturating_mul(bucket_ms)
}

/// The input's event-time clock: the newest sighting seen, moving on with the wall clock
/// while no data comes, minus the allowed lateness, in buckets.
#[derive(Clone)]
pub(super) struct Clock {
    pub(super) bucket_ms: i64,
    pub(super) lateness_ms: i64,
    pub(super) high_ms: Option<i64>,
    pub(super) at: Instant,
}

impl Clock {
    fn now_ms(&self) -> Option<i64> {
        self.high_ms
            .map(|h| h + i64::try_from(self.at.elapsed().as_millis()).unwrap_or(i64::MAX / 2))
    }

    pub(super) fn saw(&mut self, newest_ms: i64) {
        let high = self.now_ms().map_or(newest_ms, |h| h.max(newest_ms));
        self.high_ms = Some(high);
        self.at = Instant::now();
    }

    /// The input's time (its bucket's, step 0); 0 before any data.
    pub(super) fn time(&self) -> u64 {
        self.now_ms().map_or(0, |h| {
            u64::try_from((h - self.lateness_ms).div_euclid(self.bucket_ms)).unwrap_or(0)
                << STEP_BITS
        })
    }
}

/// The versions of the rows an operator writes (ReplacingMergeTree keeps the highest): the
/// wall clock in µs, but always above the last one given and, after a restart, above every
/// version already in the tables, so a clock stepped back cannot make a newer row lose to
/// an older one.
#[derive(Clone, Copy)]
pub(super) struct Versions {
    last: u64,
}

impl Versions {
    /// Versions above `floor` (the tables' highest).
    pub(super) fn after(floor: u64) -> Versions {
        Versions { last: floor }
    }

    /// The next version, the wall clock reading `now_us`.
    pub(super) fn next(&mut self, now_us: u64) -> u64 {
        self.last = now_us.max(self.last.saturating_add(1));
        self.last
    }
}

/// The wall clock in µs since the Unix epoch.
pub fn wall_clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_rise_even_when_the_clock_steps_back_or_is_behind_the_tables() {
        let mut v = Versions::after(0);
        assert_eq!(v.next(1_000), 1_000, "the wall clock");
        assert_eq!(v.next(400), 1_001, "a clock stepped back");
        assert_eq!(v.next(5_000), 5_000);
        let mut restarted = Versions::after(9_000);
        assert_eq!(restarted.next(5_000), 9_001, "above what the tables hold");
    }
}
