//! The stage's clocks: event time for the input (the watermark follows it), and the wall
//! clock that versions the written rows.

use std::time::Instant;

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

    /// The input's time (a bucket number); 0 before any data.
    pub(super) fn time(&self) -> u64 {
        self.now_ms().map_or(0, |h| {
            u64::try_from((h - self.lateness_ms).div_euclid(self.bucket_ms)).unwrap_or(0)
        })
    }
}

/// The wall clock in µs since the Unix epoch: the version of the rows written now.
pub(super) fn wall_clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
