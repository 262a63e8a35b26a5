//! People per site and window in the stream stage: [`crate::counting`]'s estimator, the one
//! `footfall-collector occupancy` runs offline, over each site's sightings as they arrive.
//!
//! A window is written once the watermark has passed its end by the presence gap and pad
//! (no sighting that is not late can change it then), and written again, with a new
//! version, when late data changes it, or when a device turns out to be a fixture (heard in
//! [`counting::FIXTURE_HOURS`] hours of its day: that day is estimated again).
//!
//! The work is incremental: each emit estimates only the windows that became final or that
//! late data touched, from the sightings within reach of them, with the fixtures of whole
//! days kept up to date as sightings arrive. When the input ends, every window up to the
//! last sighting is written as it stands.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::ch::rows::{day_of, OccupancyRow};
use crate::counting::{self, Calibration, Sensed, PRESENCE_GAP_MS, PRESENCE_PAD_MS};
use crate::visits::Seen;

/// The window lengths written, minutes. Both divide [`ALIGN_MS`].
pub const WINDOW_MINS: [u16; 2] = [5, 15];
/// The shortest window, ms ([`WINDOW_MINS`] is ascending).
const SHORTEST_MS: i64 = WINDOW_MINS[0] as i64 * 60_000;
/// Ranges of windows to estimate start and end on multiples of this.
const ALIGN_MS: i64 = 15 * 60_000;
const DAY_MS: i64 = 86_400_000;
/// How far a sighting can change the estimate of an earlier (or later) window.
const REACH_MS: i64 = PRESENCE_GAP_MS + PRESENCE_PAD_MS;

/// The stage's state for the sites one worker owns.
#[derive(Default)]
pub struct Occupancy {
    sites: HashMap<Arc<str>, Site>,
    /// Days up to this one are incomplete: sightings read back at start-up begin in it (a
    /// day's fixtures need all of it), so their windows, written before, are not rewritten.
    incomplete_through: Option<i64>,
}

struct Site {
    /// Sightings by start time.
    sightings: BTreeMap<i64, Vec<Sensed>>,
    /// The longest sighting held, ms: how far back a window's sightings can start.
    longest_ms: i64,
    /// Hours each globally addressed device was heard in, per (UTC day, device).
    hours: HashMap<(i64, u64), HashSet<i64>>,
    /// (day, device) heard in enough hours: fixtures.
    fixed: HashSet<(i64, u64)>,
    /// Windows from here on may have changed (late data, a new fixture).
    dirty_from: Option<i64>,
    /// Windows ending at or before this were final at the last emit.
    final_to: i64,
    /// The first and last times of the site's sightings: the windows written lie between.
    first_ms: i64,
    last_ms: i64,
    /// What was last written per (window length, start): people, lo, hi, global,
    /// randomized, fixtures.
    written: HashMap<(u16, i64), [f64; 7]>,
    /// The state holds nothing before this day (UTC days since the epoch).
    kept_from_day: i64,
}

impl Occupancy {
    /// Adds a sighting (an interim update too: its final version covers the same span).
    pub fn insert(&mut self, s: &Seen, watermark_ms: Option<i64>, horizon_ms: i64) {
        if s.written.is_some() {
            return; // a visit read back at start-up, not a sighting
        }
        if watermark_ms.is_some_and(|w| s.last_ms < w - horizon_ms) {
            // Behind the horizon: left out, as the visits leave it out (and count it in
            // footfall_visits_too_late).
            return;
        }
        if s.tainted {
            let day = s.first_ms.div_euclid(DAY_MS);
            self.incomplete_through = self.incomplete_through.max(Some(day));
        }
        let sensed = sensed(s);
        let site = self.sites.entry(s.site.clone()).or_insert_with(|| Site {
            sightings: BTreeMap::new(),
            longest_ms: 0,
            hours: HashMap::new(),
            fixed: HashSet::new(),
            dirty_from: None,
            final_to: i64::MIN,
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            written: HashMap::new(),
            kept_from_day: i64::MIN,
        });
        site.first_ms = site.first_ms.min(s.first_ms);
        site.last_ms = site.last_ms.max(s.last_ms);
        site.longest_ms = site.longest_ms.max(s.last_ms - s.first_ms);
        let mut dirty = s.first_ms - REACH_MS;
        for (key, hour) in counting::hours_heard(&sensed) {
            let hours = site.hours.entry(key).or_default();
            if hours.insert(hour)
                && hours.len() >= counting::FIXTURE_HOURS
                && site.fixed.insert(key)
            {
                // A fixture from now: its whole day counts it apart.
                dirty = dirty.min(key.0 * DAY_MS);
            }
        }
        if dirty < site.final_to {
            site.dirty_from = Some(site.dirty_from.map_or(dirty, |d| d.min(dirty)));
        }
        site.sightings.entry(s.first_ms).or_default().push(sensed);
    }

    /// Writes the windows that are final at `watermark_ms` (all of them at `None`, when the
    /// input has ended) and changed since they were last written; forgets what is older
    /// than `horizon_ms` behind the watermark.
    pub fn emit(
        &mut self,
        watermark_ms: Option<i64>,
        horizon_ms: i64,
        calibration: &dyn Fn(&str) -> Calibration,
        now_us: u64,
        out: &mut Vec<OccupancyRow>,
    ) {
        let final_to =
            watermark_ms.map_or(i64::MAX, |w| (w - REACH_MS).div_euclid(ALIGN_MS) * ALIGN_MS);
        // Windows of days read back only in part are not estimated again.
        let floor = self
            .incomplete_through
            .map_or(i64::MIN, |d| (d + 1) * DAY_MS);
        for (name, site) in &mut self.sites {
            let from = site
                .dirty_from
                .take()
                .map_or(site.final_to, |d| d.min(site.final_to))
                .max(site.first_ms.div_euclid(ALIGN_MS) * ALIGN_MS)
                .max(floor);
            let to = final_to.min(site.last_ms);
            if final_to > site.final_to {
                site.final_to = final_to;
            }
            // Nothing to do unless a window in [from, to] can be final: most emits, when
            // the watermark has not passed another window's end and no late data came.
            if from <= to && from + SHORTEST_MS <= site.final_to {
                let cal = calibration(name);
                site.estimate(
                    name,
                    from.div_euclid(ALIGN_MS) * ALIGN_MS,
                    to,
                    &cal,
                    now_us,
                    out,
                );
            }
            // Forget what is behind the horizon, a day at a time (not a scan per emit).
            let keep_day = watermark_ms.map(|w| (w - horizon_ms).div_euclid(DAY_MS) - 1);
            if let Some(day) = keep_day.filter(|&d| d > site.kept_from_day) {
                let keep = day * DAY_MS;
                site.sightings = site.sightings.split_off(&(keep - site.longest_ms));
                site.hours.retain(|(d, _), _| *d >= day);
                site.fixed.retain(|(d, _)| *d >= day);
                site.written.retain(|(_, start), _| *start >= keep);
                site.kept_from_day = day;
            }
        }
        self.sites.retain(|_, s| !s.sightings.is_empty());
    }
}

/// A stage record as the estimator sees it.
fn sensed(s: &Seen) -> Sensed {
    Sensed {
        device: s.device,
        link: s.link,
        global: s.class == 0,
        fingerprint: s.fingerprint,
        first_ms: s.first_ms,
        last_ms: s.last_ms,
        rssi_max: s.rssi_max,
    }
}

impl Site {
    /// Estimates the final windows from `from` (aligned) to the one holding `to`; writes those
    /// that changed.
    fn estimate(
        &mut self,
        name: &Arc<str>,
        from: i64,
        to: i64,
        cal: &Calibration,
        now_us: u64,
        out: &mut Vec<OccupancyRow>,
    ) {
        // The sightings within reach of the windows.
        let sightings: Vec<Sensed> = self
            .sightings
            .range(from - REACH_MS - self.longest_ms..=to + REACH_MS)
            .flat_map(|(_, v)| v)
            .filter(|s| s.last_ms >= from - REACH_MS)
            .copied()
            .collect();
        for mins in WINDOW_MINS {
            let window_ms = i64::from(mins) * 60_000;
            let windows = counting::estimate_between(
                &sightings,
                &self.fixed,
                window_ms,
                cal,
                from.max(self.first_ms),
                to,
            );
            for w in windows {
                if w.start_ms < from || w.start_ms + window_ms > self.final_to {
                    continue;
                }
                let values = [
                    w.people,
                    w.lo,
                    w.hi,
                    w.global,
                    w.randomized,
                    w.unlinked,
                    f64::from(w.fixtures),
                ];
                if self.written.get(&(mins, w.start_ms)) == Some(&values) {
                    continue;
                }
                self.written.insert((mins, w.start_ms), values);
                out.push(OccupancyRow {
                    site: name.clone(),
                    day: day_of(w.start_ms),
                    window_mins: mins,
                    start_ms: w.start_ms,
                    people: w.people,
                    lo: w.lo,
                    hi: w.hi,
                    global_devices: w.global,
                    randomized_devices: w.randomized,
                    unlinked_devices: w.unlinked,
                    fixtures: w.fixtures,
                    estimator: counting::VERSION,
                    calibrated: u8::from(cal.fitted.is_some()),
                    version: now_us,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_710_403_200_000; // 2024-03-14T08:00Z

    fn seen(device: u64, first_min: i64, last_min: i64) -> Seen {
        Seen {
            site: "lab".into(),
            device,
            link: device,
            epoch: 1,
            class: 0,
            fingerprint: 1,
            first_ms: T0 + first_min * MIN,
            last_ms: T0 + last_min * MIN,
            rssi_max: -50,
            is_final: true,
            key: device,
            tainted: false,
            written: None,
        }
    }

    /// The 15-min windows written so far, latest version of each.
    fn latest(rows: &[OccupancyRow]) -> BTreeMap<i64, f64> {
        rows.iter()
            .filter(|r| r.window_mins == 15)
            .map(|r| (r.start_ms, r.people))
            .collect()
    }

    #[test]
    fn windows_are_written_when_final_and_again_when_late_data_changes_them() {
        let cal = Calibration::uncalibrated();
        let mut o = Occupancy::default();
        let mut rows = Vec::new();
        let horizon = 48 * 60 * MIN;
        o.insert(&seen(1, 3, 10), None, horizon);
        // At 20 min nothing is final (a sighting up to 32 min later may extend the stay).
        o.emit(Some(T0 + 20 * MIN), horizon, &|_| cal.clone(), 1, &mut rows);
        assert!(rows.is_empty(), "{rows:?}");
        // At 60 min, 0-15 is final: device 1 from 1 to 12 min of it.
        o.emit(Some(T0 + 60 * MIN), horizon, &|_| cal.clone(), 2, &mut rows);
        let w = latest(&rows);
        assert!((w[&T0] - 11.0 / 15.0).abs() < 1e-9, "{w:?}");
        let written = rows.len();
        // Nothing new: nothing written.
        o.emit(Some(T0 + 61 * MIN), horizon, &|_| cal.clone(), 3, &mut rows);
        assert_eq!(rows.len(), written);
        // A late sighting of another device in 0-15: a new version of that window.
        o.insert(&seen(2, 0, 14), Some(T0 + 61 * MIN), horizon);
        o.emit(Some(T0 + 62 * MIN), horizon, &|_| cal.clone(), 4, &mut rows);
        let again: Vec<&OccupancyRow> = rows[written..]
            .iter()
            .filter(|r| r.window_mins == 15)
            .collect();
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!((again[0].start_ms, again[0].version), (T0, 4));
        assert!((again[0].people - (11.0 + 15.0) / 15.0).abs() < 1e-9);
    }

    #[test]
    fn the_stream_writes_what_the_offline_estimate_says() {
        // Sightings arriving in pieces, out of order, across midnight; at the end of input
        // every window equals the offline estimate over all of them.
        let cal = Calibration::uncalibrated();
        let all: Vec<Seen> = (0..300i64)
            .map(|i| {
                let mut s = seen(
                    (i % 23) as u64,
                    (i * 37) % 1500 + 900,
                    (i * 37) % 1500 + 903,
                );
                s.class = (i % 3 == 0) as i8;
                s.fingerprint = (i % 7) as u32;
                s.rssi_max = -40 - (i % 40) as i8;
                s
            })
            .collect();
        let mut o = Occupancy::default();
        let mut rows = Vec::new();
        for (k, chunk) in all.chunks(50).enumerate() {
            let w = T0 + (900 + 250 * k as i64) * MIN;
            for s in chunk {
                o.insert(s, Some(w), 48 * 60 * MIN);
            }
            o.emit(
                Some(w),
                48 * 60 * MIN,
                &|_| cal.clone(),
                k as u64,
                &mut rows,
            );
        }
        o.emit(None, 48 * 60 * MIN, &|_| cal.clone(), 99, &mut rows);
        let sensed: Vec<Sensed> = all.iter().map(sensed).collect();
        let offline: BTreeMap<i64, f64> = counting::estimate(&sensed, 15 * MIN, &cal)
            .into_iter()
            .map(|w| (w.start_ms, w.people))
            .collect();
        assert_eq!(latest(&rows), offline);
    }
}
