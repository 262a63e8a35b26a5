//! People per site and window in the stream stage: [`crate::counting`]'s estimator, the one
//! `footfall-collector occupancy` runs offline, over each site's sightings as they arrive;
//! and from the same sightings, each site's traffic per local hour ([`crate::traffic`]),
//! written once the watermark has passed the end of what decides the hour, and again when
//! late data or a new fixture changes it.
//!
//! A window is written once the watermark has passed its end by the presence gap and pad
//! (no sighting that is not late can change it then), and written again, with a new
//! version, when late data changes it, when a device turns out to be a fixture (heard in
//! the site calibration's fixture hours of its day: its day is estimated again from the
//! first hour it was heard in), or when a sighting joins two chains into one device.
//!
//! The work is incremental: each emit estimates only the windows that became final or that
//! late data touched, from the sightings within reach of them, with the fixtures of whole
//! days kept up to date as sightings arrive. What changed is estimated again with the next
//! window final (hour decided), or 15 min (an hour) of event time after the change, not at
//! once: changes come in bursts, and each estimated at once, a site's day was read several
//! times over. When the input ends, every window up to the last sighting is written as it
//! stands.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::ch::rows::{day_of, OccupancyRow, TrafficRow};
use crate::counting::{self, Calibration, Sensed, PRESENCE_GAP_MS, PRESENCE_PAD_MS};
use crate::traffic::{self, Hour, Setting, HOUR_MS};
use crate::visits::{local_hour, per_site_run, ByRules, Rules, Seen};

/// The window lengths written, minutes. Both divide [`ALIGN_MS`].
pub const WINDOW_MINS: [u16; 2] = [5, 15];
/// The shortest window, ms ([`WINDOW_MINS`] is ascending).
const SHORTEST_MS: i64 = WINDOW_MINS[0] as i64 * 60_000;
/// Ranges of windows to estimate start and end on multiples of this.
const ALIGN_MS: i64 = 15 * 60_000;
const DAY_MS: i64 = 86_400_000;
/// How far a sighting can change the estimate of an earlier (or later) window.
const REACH_MS: i64 = PRESENCE_GAP_MS + PRESENCE_PAD_MS;
/// A site holds its sightings in a `Vec` per this much end time. (A map entry per time,
/// each with its own small `Vec`, cost some 250 bytes a sighting: with a day or two of a
/// city's sightings held, gigabytes.) By end, not start: the sightings that reach a time
/// are then in its bucket and the later ones. By start, those before it had to be read as
/// far back as the longest sighting held, and a device heard without a break for hours (a
/// PC, a printer: an agent's sighting lasts while frames keep coming) made every estimate
/// read hours of the site's sightings.
const BUCKET_MS: i64 = ALIGN_MS;

/// A site's sightings by the [`BUCKET_MS`] their end is in, the buckets in time order, each
/// in arrival order. Sensors send in time order, within minutes of each other, so nearly
/// every sighting goes to the last bucket or one just before it: a sighting looks there
/// first, and searches a run of memory only when it is late. (In a `BTreeMap`, each
/// sighting walked the tree's nodes to its bucket: 2.5 % of the stages bench's time.)
#[derive(Default)]
struct Buckets(Vec<(i64, Vec<Sensed>)>);

impl Buckets {
    fn push(&mut self, s: Sensed) {
        let bucket = s.last_ms.div_euclid(BUCKET_MS);
        let at = match self.0.last() {
            Some(&(last, _)) if last == bucket => self.0.len() - 1,
            _ => {
                let at = self.0.partition_point(|&(b, _)| b < bucket);
                if self.0.get(at).is_none_or(|&(b, _)| b != bucket) {
                    // As many as the bucket before it held: a bucket grows to about that,
                    // without copying itself at each doubling on the way.
                    let capacity = at.checked_sub(1).map_or(0, |i| self.0[i].1.len());
                    self.0.insert(at, (bucket, Vec::with_capacity(capacity)));
                }
                at
            }
        };
        self.0[at].1.push(s);
    }

    /// The sightings of the buckets from `first` to `last` (inclusive).
    fn range(&self, first: i64, last: i64) -> impl Iterator<Item = &Sensed> {
        let from = self.0.partition_point(|&(b, _)| b < first);
        let to = self.0.partition_point(|&(b, _)| b <= last);
        self.0[from..to.max(from)].iter().flat_map(|(_, v)| v)
    }

    /// Forgets the buckets before `first`.
    fn keep_from(&mut self, first: i64) {
        let before = self.0.partition_point(|&(b, _)| b < first);
        self.0.drain(..before);
    }

    fn len(&self) -> usize {
        self.0.iter().map(|(_, v)| v.len()).sum()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the stage writes.
#[derive(Clone, Debug, PartialEq)]
pub enum Counted {
    Occupancy(OccupancyRow),
    Traffic(TrafficRow),
}

/// The stage's state for the sites one worker owns.
pub struct Occupancy {
    sites: FxHashMap<Arc<str>, Site>,
    /// Sightings a site may hold; past it more are refused (counted in `refused`).
    max_held: usize,
    /// Days up to this one are incomplete: sightings read back at start-up begin in it (a
    /// day's fixtures need all of it), so their windows, written before, are not rewritten.
    incomplete_through: Option<i64>,
    /// Sightings that end before this are behind the horizon from the start (after a
    /// restart, the floor of the sightings read back).
    floor_ms: i64,
    /// Sightings refused at a full site, for the metrics.
    pub refused: u64,
}

struct Site {
    /// Sightings by the [`BUCKET_MS`] their end is in.
    sightings: Buckets,
    /// The latest interim update of each sighting still open, by (device, start, link).
    /// The agent sends an open sighting again every `sightings.interim_secs`: were each
    /// version held, a device heard for hours would be held, and read, once per update.
    open: FxHashMap<(u64, i64, u64), Sensed>,
    /// Sightings held (both kinds).
    held: usize,
    /// The hours each device was heard in, and the fixtures among them.
    fixtures: counting::Fixtures,
    /// Which sightings are one device.
    identities: counting::Identities,
    /// Windows from here on may have changed (late data, a new fixture), and the watermark
    /// when the first of those changes came: they are estimated again with the next window
    /// final, or [`ALIGN_MS`] of event time after that change, whichever comes first (as
    /// the hours are, `traffic_dirty`).
    dirty_from: Changes,
    /// Windows ending at or before this were final at the last emit.
    final_to: i64,
    /// Windows starting before this were estimated: up to the last sighting's, where it
    /// came before the watermark (the windows of a quiet spell are estimated when the
    /// sighting after it comes, not skipped for good).
    estimated_to: i64,
    /// The first and last times of the site's sightings: the windows written lie between.
    first_ms: i64,
    last_ms: i64,
    /// What was last written per (window length, start): people, lo, hi, global,
    /// randomized, fixtures.
    written: FxHashMap<(u16, i64), [f64; 7]>,
    /// Hours decided by sightings up to here were written (up to the hour of the last
    /// sighting, where it came before the watermark, as `estimated_to`).
    traffic_final: i64,
    /// Hours decided by sightings from here on may have changed (late data, a new fixture),
    /// and the watermark when the first of those changes came. They are computed again with
    /// the next hour decided, or an hour (of event time) after that change, whichever comes
    /// first: changes come in bursts (a fixture found, chains joined, a long sighting's
    /// updates each change the hours from early in the day), and computed at each, the
    /// hours were read some three times over.
    traffic_dirty: Changes,
    /// What was last written per hour.
    traffic_written: FxHashMap<i64, Hour>,
    /// The state holds nothing before this day (UTC days since the epoch).
    kept_from_day: i64,
    /// What decides its traffic, and its calibration.
    setting: ByRules<Setting>,
}

/// How many sightings [`Occupancy::insert_all`] looks ahead.
const LOOK_AHEAD: usize = 32;

impl Occupancy {
    /// A site holds at most `max_held` sightings; those that end before `floor_ms` are
    /// left out (`i64::MIN`: none).
    pub fn new(max_held: usize, floor_ms: i64) -> Occupancy {
        Occupancy {
            sites: FxHashMap::default(),
            max_held,
            incomplete_through: None,
            floor_ms,
            refused: 0,
        }
    }

    /// [`Occupancy::insert`] for each of a batch of sightings. Each chunk's entries in the
    /// fixtures' and the identities' tables (a random place in tables of millions) are read
    /// together first, so that their cache misses overlap, as the visits' are
    /// ([`crate::visits::Visits::insert_all`]).
    pub fn insert_all(&mut self, batch: &[Seen], watermark_ms: Option<i64>, horizon_ms: i64) {
        for chunk in batch.chunks(LOOK_AHEAD) {
            let sites = per_site_run(chunk, |name| self.sites.get(name));
            let read = chunk.iter().zip(sites).fold(0u64, |read, (s, site)| {
                site.map_or(read, |site| {
                    let sensed = sensed(s);
                    read ^ u64::from(site.fixtures.look(&sensed)) ^ site.identities.look(&sensed)
                })
            });
            std::hint::black_box(read);
            for s in chunk {
                self.insert(s, watermark_ms, horizon_ms);
            }
        }
    }

    /// Adds a sighting. An interim update is held until a later version of the sighting
    /// that covers it replaces it: left out, the earlier one changes no window, and the
    /// later one changes them only from the earlier one's end, unless it is stronger. A
    /// full site refuses new sightings (counted in `refused`) until the horizon forgets
    /// some.
    pub fn insert(&mut self, s: &Seen, watermark_ms: Option<i64>, horizon_ms: i64) {
        if s.written.is_some() || s.reopened {
            // A visit read back at start-up, not a sighting; or a sighting read back for the
            // visits' recompute, behind this horizon too.
            return;
        }
        if s.last_ms < self.floor_ms || watermark_ms.is_some_and(|w| s.last_ms < w - horizon_ms) {
            // Behind the horizon: left out, as the visits leave it out (and count it in
            // footfall_visits_too_late).
            return;
        }
        if s.tainted {
            let day = s.first_ms.div_euclid(DAY_MS);
            self.incomplete_through = self.incomplete_through.max(Some(day));
        }
        let sensed = sensed(s);
        if !self.sites.contains_key(&s.site) {
            self.sites.insert(s.site.clone(), Site::new(s));
        }
        let site = self.sites.get_mut(&s.site).expect("inserted");
        let version = (sensed.device, sensed.first_ms, sensed.link);
        let earlier = site.open.get(&version).copied();
        if earlier.is_some_and(|o| covers(&o, &sensed)) {
            // An update older than one held (redelivered, or out of order).
            return;
        }
        let earlier = earlier.filter(|o| covers(&sensed, o));
        if site.held >= self.max_held && earlier.is_none() {
            self.refused += 1;
            return;
        }
        site.first_ms = site.first_ms.min(s.first_ms);
        site.last_ms = site.last_ms.max(s.last_ms);
        // The earliest time the sighting changes the windows: its start (the earlier
        // version's end, if it replaces one), or earlier if it makes a fixture (counted
        // apart from the first hour it was heard in) or joins two chains into one device
        // (from the first sighting of either); windows this far before a sighting count its
        // presence. The traffic's hours change from its start (a stay's hour is its start's,
        // and its dwell decides its class), or from earlier if it makes a run (traffic
        // counts the run apart).
        let changed = site.fixtures.add(&sensed);
        let joined = site.identities.add(&sensed);
        let earliest = |from: i64| {
            [changed.fixtures, joined]
                .into_iter()
                .flatten()
                .fold(from, i64::min)
        };
        // A version as strong as the one it replaces adds presence only after that one's end;
        // a stronger one may reach the room's floor, and count from its start.
        let new_from = earlier
            .filter(|o| o.rssi_max == s.rssi_max)
            .map_or(s.first_ms, |o| o.last_ms);
        let dirty = earliest(new_from) - REACH_MS;
        let changes = earliest(changed.runs.map_or(s.first_ms, |t| t.min(s.first_ms)));
        let at = watermark_ms.unwrap_or(i64::MIN);
        if dirty < site.final_to {
            site.dirty_from.mark(dirty, at);
        }
        if changes <= site.traffic_final {
            site.traffic_dirty.mark(changes, at);
        }
        let held = if s.is_final {
            if earlier.is_some() {
                site.open.remove(&version);
            }
            site.store(sensed);
            earlier.is_none()
        } else {
            match site.open.insert(version, sensed) {
                // An update of another sighting alike in device, start and link, where
                // neither holds the other: held among the sightings.
                Some(other) if earlier.is_none() => {
                    site.store(other);
                    true
                }
                Some(_) => false,
                None => true,
            }
        };
        site.held += usize::from(held);
    }

    /// Writes the windows and hours that are final at `watermark_ms` (all of them at
    /// `None`, when the input has ended) and changed since they were last written; forgets
    /// what is older than `horizon_ms` behind the watermark.
    pub fn emit(
        &mut self,
        watermark_ms: Option<i64>,
        horizon_ms: i64,
        rules: &Rules,
        now_us: u64,
        out: &mut Vec<Counted>,
    ) {
        let final_to =
            watermark_ms.map_or(i64::MAX, |w| (w - REACH_MS).div_euclid(ALIGN_MS) * ALIGN_MS);
        // Windows of days read back only in part are not estimated again.
        let floor = self
            .incomplete_through
            .map_or(i64::MIN, |d| (d + 1) * DAY_MS);
        let now = watermark_ms.unwrap_or(i64::MAX);
        for (name, site) in &mut self.sites {
            let to = final_to.min(site.last_ms);
            if final_to > site.final_to {
                site.final_to = final_to;
            }
            let first = site.first_ms.div_euclid(ALIGN_MS) * ALIGN_MS;
            let next = site.estimated_to.max(first).max(floor);
            let from = (site.dirty_from)
                .take(
                    next,
                    next <= to && next + SHORTEST_MS <= site.final_to,
                    now,
                    ALIGN_MS,
                )
                .map_or(i64::MAX, |f| f.max(first).max(floor));
            let setting = (site.setting)
                .get(rules, |rules| Setting::of(rules, name))
                .clone();
            // The site's fixture rule is its calibration's, from the first emit on (and
            // from a new calibration's first emit, as its floor and scale are).
            site.fixtures
                .set_fixture_hours(setting.calibration.fixture_hours);
            // Nothing to do unless a window in [from, to] can be final: most emits, when
            // the watermark has not passed another window's end and no late data came.
            if from <= to && from + SHORTEST_MS <= site.final_to {
                site.estimate(
                    name,
                    from.div_euclid(ALIGN_MS) * ALIGN_MS,
                    to,
                    &setting.calibration,
                    now_us,
                    out,
                );
                // Every window up to the one holding `to` that is final (`final_to` is
                // aligned, so when `to` is it, the windows up to it): the shortest ones
                // after it are next (the longer ones holding them are estimated again,
                // written only if they changed).
                let through = (to.div_euclid(SHORTEST_MS) + 1).saturating_mul(SHORTEST_MS);
                site.estimated_to = site.estimated_to.max(through.min(site.final_to));
            }
            // The hours decided by sightings after the last emit's end, with those changed
            // since if the hours are due (`traffic_dirty`).
            let decided_to = watermark_ms.unwrap_or(i64::MAX);
            let reach = setting.decided_by(0);
            // The first hour decided by a sighting at `from` or later, and the last decided
            // by the watermark.
            let first_from = |from: i64| {
                traffic::hour_start(
                    from.saturating_sub(reach)
                        .saturating_add(HOUR_MS - 1)
                        .max(site.first_ms)
                        .max(floor),
                    setting.rule.tz,
                )
                .max(traffic::hour_start(site.first_ms, setting.rule.tz))
            };
            let last = decided_to.saturating_sub(reach).min(site.last_ms);
            let next = site.traffic_final.saturating_add(1);
            let first = (site.traffic_dirty)
                .take(next, first_from(next) <= last, decided_to, HOUR_MS)
                .map_or(i64::MAX, first_from);
            if first <= last {
                site.traffic(name, first, last, &setting, now_us, out);
                // Written up to the hour holding `last`: the next emit goes on from the
                // hour after it.
                let written = traffic::hour_start(last, setting.rule.tz).saturating_add(reach);
                site.traffic_final = site.traffic_final.max(written.min(decided_to));
            }
            // Forget what is behind the horizon, a day at a time (not a scan per emit).
            let keep_day = watermark_ms.map(|w| (w - horizon_ms).div_euclid(DAY_MS) - 1);
            if let Some(day) = keep_day.filter(|&d| d > site.kept_from_day) {
                let keep = day * DAY_MS;
                // Those that end in time to reach a window of the day kept (or its traffic's
                // hours), with room to spare.
                let bucket = (keep - 2 * REACH_MS).div_euclid(BUCKET_MS);
                site.sightings.keep_from(bucket);
                let kept_from = bucket * BUCKET_MS;
                site.open.retain(|_, o| o.last_ms >= kept_from);
                site.held = site.sightings.len() + site.open.len();
                site.fixtures.keep_from(day);
                site.identities.keep_from(day);
                site.written.retain(|(_, start), _| *start >= keep);
                site.traffic_written.retain(|start, _| *start >= keep);
                site.kept_from_day = day;
            }
        }
        self.sites
            .retain(|_, s| !s.sightings.is_empty() || !s.open.is_empty());
    }

    /// Sightings held, for the metrics.
    pub fn held(&self) -> usize {
        self.sites.values().map(|s| s.held).sum()
    }
}

/// What changed of a site's windows or hours since they were written: from when, and the
/// watermark when the first change came.
#[derive(Clone, Copy, Debug, Default)]
struct Changes(Option<(i64, i64)>);

impl Changes {
    /// Those from `from` on changed, at watermark `at`.
    fn mark(&mut self, from: i64, at: i64) {
        self.0 = Some(self.0.map_or((from, at), |(d, a)| (d.min(from), a)));
    }

    /// Where to compute from at watermark `now`: from `next` if `next_due` (the next window
    /// final, hour decided), or from the changes too; from the changes alone once they have
    /// waited `wait`; else nothing (the changes wait).
    fn take(&mut self, next: i64, next_due: bool, now: i64, wait: i64) -> Option<i64> {
        let waited = self.0.is_some_and(|(_, at)| now >= at.saturating_add(wait));
        (next_due || waited).then(|| self.0.take().map_or(next, |(d, _)| d.min(next)))
    }
}

/// Whether version `a` of a sighting holds all that `b` does: same device, link and kind,
/// and a span and a strongest frame at least as long and as strong. Left out, `b` changes
/// no window: its presence lies within `a`'s.
fn covers(a: &Sensed, b: &Sensed) -> bool {
    (a.device, a.link, a.global, a.fingerprint, a.first_ms)
        == (b.device, b.link, b.global, b.fingerprint, b.first_ms)
        && a.last_ms >= b.last_ms
        && a.rssi_max >= b.rssi_max
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
    /// An empty site, first seen in `s`.
    fn new(s: &Seen) -> Site {
        Site {
            sightings: Buckets::default(),
            open: FxHashMap::default(),
            held: 0,
            fixtures: counting::Fixtures::new(counting::FIXTURE_HOURS),
            identities: counting::Identities::default(),
            dirty_from: Changes::default(),
            final_to: i64::MIN,
            estimated_to: i64::MIN,
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            written: FxHashMap::default(),
            traffic_final: i64::MIN,
            traffic_dirty: Changes::default(),
            traffic_written: FxHashMap::default(),
            kept_from_day: i64::MIN,
            setting: ByRules::default(),
        }
    }

    /// The sightings held that reach into `[from, to]` (ms), in no particular order: the
    /// estimators group them by device and time themselves. Read where they are held, not
    /// copied out: a read takes more than an hour of a site's sightings.
    fn reaching(&self, from: i64, to: i64) -> impl Iterator<Item = &Sensed> {
        let last = (to.saturating_add(self.fixtures.longest_ms())).div_euclid(BUCKET_MS);
        (self.sightings.range(from.div_euclid(BUCKET_MS), last))
            .chain(self.open.values())
            .filter(move |s| s.last_ms >= from && s.first_ms <= to)
    }

    /// Holds a sighting among those by end.
    fn store(&mut self, s: Sensed) {
        self.sightings.push(s);
    }

    /// Computes the site's hours from the one holding `from` to the one holding `to`; writes
    /// those that changed.
    fn traffic(
        &mut self,
        name: &Arc<str>,
        from: i64,
        to: i64,
        setting: &Setting,
        now_us: u64,
        out: &mut Vec<Counted>,
    ) {
        let sightings = self.reaching(from - setting.gap_ms, setting.decided_by(to));
        let tz = setting.rule.tz;
        let (fixed, identities) = (&self.fixtures.fixed, &self.identities);
        for hour in traffic::hours_between(sightings, fixed, identities, setting, from, to) {
            if self.traffic_written.get(&hour.start_ms) == Some(&hour) {
                continue;
            }
            let local = chrono::DateTime::from_timestamp_millis(hour.start_ms)
                .unwrap_or_default()
                .with_timezone(&tz)
                .date_naive();
            let day = local
                .signed_duration_since(chrono::DateTime::UNIX_EPOCH.date_naive())
                .num_days();
            out.push(Counted::Traffic(TrafficRow {
                site: name.clone(),
                day: u16::try_from(day).unwrap_or(0),
                local_hour: u8::try_from(local_hour(hour.start_ms, tz)).unwrap_or(0),
                hour_ms: hour.start_ms,
                visitors: hour.visitors,
                passers_by: hour.passers_by,
                visitor_devices: hour.visitor_devices,
                passer_by_devices: hour.passer_by_devices,
                addresses: hour.addresses,
                unlinked_devices: hour.unlinked_devices,
                fixtures: hour.fixtures,
                dwell_under_5: hour.dwell[0],
                dwell_5_20: hour.dwell[1],
                dwell_20_60: hour.dwell[2],
                dwell_over_60: hour.dwell[3],
                capture_rate: setting.rule.capture_rate.unwrap_or(0.0),
                estimator: counting::VERSION,
                calibrated: u8::from(setting.calibration.fitted.is_some()),
                version: now_us,
            }));
            self.traffic_written.insert(hour.start_ms, hour);
        }
    }

    /// Estimates the final windows from `from` (aligned) to the one holding `to`; writes those
    /// that changed.
    fn estimate(
        &mut self,
        name: &Arc<str>,
        from: i64,
        to: i64,
        cal: &Calibration,
        now_us: u64,
        out: &mut Vec<Counted>,
    ) {
        let presence = counting::Presence::of(
            self.reaching(from - REACH_MS, to + REACH_MS),
            &self.fixtures.fixed,
            &self.identities,
            cal.rssi_min_dbm,
        );
        for mins in WINDOW_MINS {
            let window_ms = i64::from(mins) * 60_000;
            let windows = presence.windows(window_ms, cal, from.max(self.first_ms), to);
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
                out.push(Counted::Occupancy(OccupancyRow {
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
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::counting::tests::{MIN, T0};

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
            reopened: false,
            received_ms: 0,
        }
    }

    /// The rules of a store open all day, uncalibrated.
    fn rules() -> Rules {
        Rules {
            sites: FxHashMap::default(),
            default: crate::visits::SiteRule {
                board: false,
                rssi_threshold_dbm: -70,
                min_dwell_secs: 180,
                open_hour: 0,
                close_hour: 24,
                tz: chrono_tz::UTC,
                capture_rate: None,
            },
            calibrations: FxHashMap::default(),
            store_gap_ms: 10 * MIN,
            board_gap_ms: 30 * MIN,
            max_devices_per_site: usize::MAX,
            generation: 0,
        }
    }

    fn occupancy(rows: &[Counted]) -> Vec<&OccupancyRow> {
        rows.iter()
            .filter_map(|r| match r {
                Counted::Occupancy(o) => Some(o),
                Counted::Traffic(_) => None,
            })
            .collect()
    }

    /// The 15-min windows written so far, latest version of each.
    fn latest(rows: &[Counted]) -> BTreeMap<i64, f64> {
        occupancy(rows)
            .into_iter()
            .filter(|r| r.window_mins == 15)
            .map(|r| (r.start_ms, r.people))
            .collect()
    }

    /// The hours written so far, latest version of each.
    fn hours(rows: &[Counted]) -> BTreeMap<i64, TrafficRow> {
        rows.iter()
            .filter_map(|r| match r {
                Counted::Traffic(t) => Some((t.hour_ms, t.clone())),
                Counted::Occupancy(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_batch_counts_as_its_sightings_would_one_by_one() {
        // Two sites' sightings interleaved, so the chunks the batch is looked ahead by mix
        // them; some devices fixtures (heard all day), some chains joined.
        let rules = rules();
        let horizon = 48 * 60 * MIN;
        let all: Vec<Seen> = (0..300u64)
            .map(|k| {
                let first = (k as i64 * 7) % (20 * 60);
                let mut x = seen(k % 41, first, first + (k as i64 % 9));
                // Randomized addresses, each heard with several links: chains join.
                (x.class, x.link) = (i8::from(k % 2 == 0), 1 + k % 13);
                if k % 3 == 0 {
                    x.site = "other".into();
                }
                x
            })
            .collect();
        let run = |batch: bool| {
            let mut o = Occupancy::new(usize::MAX, i64::MIN);
            if batch {
                o.insert_all(&all, Some(T0), horizon);
            } else {
                all.iter().for_each(|s| o.insert(s, Some(T0), horizon));
            }
            let mut rows = Vec::new();
            o.emit(None, horizon, &rules, 1, &mut rows);
            rows
        };
        let rows = run(true);
        assert_eq!(rows, run(false));
        let sites: std::collections::BTreeSet<_> = (occupancy(&rows).iter())
            .filter(|r| r.people > 0.0)
            .map(|r| r.site.clone())
            .collect();
        assert_eq!(sites.len(), 2, "both sites counted");
    }

    #[test]
    fn windows_are_written_when_final_and_again_when_late_data_changes_them() {
        let rules = rules();
        let mut o = Occupancy::new(usize::MAX, i64::MIN);
        let mut rows = Vec::new();
        let horizon = 48 * 60 * MIN;
        o.insert(&seen(1, 3, 10), None, horizon);
        // At 20 min nothing is final (a sighting up to 32 min later may extend the stay).
        o.emit(Some(T0 + 20 * MIN), horizon, &rules, 1, &mut rows);
        assert!(rows.is_empty(), "{rows:?}");
        // At 60 min, 0-15 is final: device 1 from 1 to 12 min of it.
        o.emit(Some(T0 + 60 * MIN), horizon, &rules, 2, &mut rows);
        let w = latest(&rows);
        assert!((w[&T0] - 11.0 / 15.0).abs() < 1e-9, "{w:?}");
        let written = rows.len();
        // Nothing new: nothing written.
        o.emit(Some(T0 + 61 * MIN), horizon, &rules, 3, &mut rows);
        assert_eq!(rows.len(), written);
        // A late sighting of another device in 0-15: a new version of that window, with the
        // next window final or 15 min of event time later (here, the latter).
        o.insert(&seen(2, 0, 14), Some(T0 + 61 * MIN), horizon);
        o.emit(Some(T0 + 75 * MIN), horizon, &rules, 4, &mut rows);
        assert_eq!(rows.len(), written);
        o.emit(Some(T0 + 76 * MIN), horizon, &rules, 5, &mut rows);
        let again: Vec<&OccupancyRow> = occupancy(&rows[written..])
            .into_iter()
            .filter(|r| r.window_mins == 15)
            .collect();
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!((again[0].start_ms, again[0].version), (T0, 5));
        assert!((again[0].people - (11.0 + 15.0) / 15.0).abs() < 1e-9);
    }

    #[test]
    fn a_calibration_read_after_the_start_scales_the_windows_from_then_on() {
        let mut rules = rules();
        let mut o = Occupancy::new(usize::MAX, i64::MIN);
        let mut rows = Vec::new();
        let horizon = 48 * 60 * MIN;
        o.insert(&seen(1, 0, 15), None, horizon);
        o.emit(Some(T0 + 60 * MIN), horizon, &rules, 1, &mut rows);
        assert_eq!(latest(&rows)[&T0], 1.0, "uncalibrated: a person per device");
        // The inventory read again, with a calibration of two people per device.
        rules.calibrations.insert(
            "lab".into(),
            Calibration {
                people_per_device: 2.0,
                ..Calibration::uncalibrated()
            },
        );
        rules.generation += 1;
        o.insert(&seen(2, 60, 75), Some(T0 + 60 * MIN), horizon);
        o.emit(Some(T0 + 120 * MIN), horizon, &rules, 2, &mut rows);
        let w = latest(&rows);
        assert_eq!(w[&(T0 + 60 * MIN)], 2.0, "{w:?}");
        assert_eq!(w[&T0], 1.0, "a window written before is not written again");
    }

    #[test]
    fn a_late_sighting_that_joins_two_chains_rewrites_their_windows_and_hours() {
        // One phone heard for an hour as two chains (a sensor restarted: links 100 and 200,
        // a new address every 3 min), written as two devices; then a late sighting at the
        // end of the hour shows the last address of chain 100 in chain 200: one device, and
        // every window from the chains' start is written again (not only those within reach
        // of the sighting), within 15 min of event time, and every hour within an hour, as
        // the offline estimate over all of them says.
        let rules = rules();
        let horizon = 48 * 60 * MIN;
        let randomized = |address: u64, link: u64, min: i64| {
            let mut x = seen(address, min, min);
            (x.class, x.link) = (1, link);
            x
        };
        let mut all: Vec<Seen> = (0..20)
            .flat_map(|k| {
                [
                    randomized(1 + k, 100, 3 * k as i64),
                    randomized(101 + k, 200, 1 + 3 * k as i64),
                ]
            })
            .collect();
        let mut o = Occupancy::new(usize::MAX, i64::MIN);
        let mut rows = Vec::new();
        o.insert_all(&all, Some(T0), horizon);
        o.emit(Some(T0 + 300 * MIN), horizon, &rules, 1, &mut rows);
        let before = latest(&rows);
        assert!(before[&T0] > 1.9, "two devices: {before:?}");
        let late = randomized(20, 200, 58);
        o.insert(&late, Some(T0 + 300 * MIN), horizon);
        o.emit(Some(T0 + 315 * MIN), horizon, &rules, 2, &mut rows);
        all.push(late);
        let sensed: Vec<Sensed> = all.iter().map(sensed).collect();
        let offline = offline(&all);
        assert!(offline[&T0] < 1.1, "one device: {offline:?}");
        let after = latest(&rows);
        assert_eq!(
            after.range(..T0 + 75 * MIN).collect::<Vec<_>>(),
            offline.iter().collect::<Vec<_>>()
        );
        let (fixed, identities) = counting::known(&sensed, counting::FIXTURE_HOURS);
        let offline_hour = &traffic::hours_between(
            &sensed,
            &fixed,
            &identities,
            &Setting::of(&rules, "lab"),
            T0,
            T0,
        )[0];
        assert_eq!(offline_hour.visitor_devices, 1);
        // The hours go with the next hour decided, or an hour of event time after the
        // change: not yet, then.
        assert_eq!(hours(&rows)[&T0].visitor_devices, 2);
        o.emit(Some(T0 + 360 * MIN), horizon, &rules, 3, &mut rows);
        assert_eq!(
            hours(&rows)[&T0].visitor_devices,
            1,
            "the hour written again"
        );
    }

    #[test]
    fn a_device_that_becomes_a_fixture_is_taken_out_of_every_window_it_was_in() {
        // A printer heard every 10 min from 08:00, written as a person present while the
        // watermark follows it; in its fourth hour it is a fixture, and every window from
        // 08:00 on is written again without it.
        let rules = rules();
        let horizon = 48 * 60 * MIN;
        let mut o = Occupancy::new(usize::MAX, i64::MIN);
        let mut rows = Vec::new();
        for k in 0..20 {
            let t = 10 * k;
            o.insert(&seen(1, t, t + 1), Some(T0 + t * MIN), horizon);
            o.emit(
                Some(T0 + (t + 40) * MIN),
                horizon,
                &rules,
                k as u64,
                &mut rows,
            );
            if t == 170 {
                let w = latest(&rows);
                assert!(w[&T0] > 0.9, "a person present, until it is known: {w:?}");
            }
        }
        o.emit(None, horizon, &rules, 99, &mut rows);
        let w = latest(&rows);
        assert_eq!(w.len(), 13, "08:00 to 11:00: {w:?}");
        assert!(w.values().all(|&p| p == 0.0), "{w:?}");
    }

    #[test]
    fn a_quiet_spells_windows_and_hours_are_written_whenever_the_next_sighting_comes() {
        // A store hears a phone at 0-7 min, nothing for hours, then one at 400 min. Its
        // empty windows and hours in between are written (people 0), the same whether the
        // watermark passes the quiet spell before the next sighting comes or after.
        let rules = rules();
        let horizon = 48 * 60 * MIN;
        let run = |watermark_first: bool| {
            let mut o = Occupancy::new(usize::MAX, i64::MIN);
            let mut rows = Vec::new();
            o.insert(&seen(1, 0, 7), Some(T0), horizon);
            o.emit(Some(T0 + 60 * MIN), horizon, &rules, 1, &mut rows);
            if watermark_first {
                o.emit(Some(T0 + 380 * MIN), horizon, &rules, 2, &mut rows);
            }
            o.insert(&seen(2, 400, 405), Some(T0 + 380 * MIN), horizon);
            o.emit(Some(T0 + 390 * MIN), horizon, &rules, 3, &mut rows);
            o.emit(None, horizon, &rules, 4, &mut rows);
            let fives: Vec<i64> = occupancy(&rows)
                .iter()
                .filter(|r| r.window_mins == 5)
                .map(|r| r.start_ms)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            (
                latest(&rows),
                fives,
                hours(&rows).into_keys().collect::<Vec<_>>(),
            )
        };
        let (windows, fives, hours) = run(true);
        // 15-min windows from 0 to the one holding 405 min, every one.
        assert_eq!(
            windows.keys().copied().collect::<Vec<_>>(),
            (0..=27).map(|w| T0 + w * 15 * MIN).collect::<Vec<_>>()
        );
        assert_eq!(windows[&(T0 + 120 * MIN)], 0.0);
        assert_eq!(
            fives,
            (0..=81).map(|w| T0 + w * 5 * MIN).collect::<Vec<_>>()
        );
        assert_eq!(
            hours,
            (0..=6).map(|h| T0 + h * 60 * MIN).collect::<Vec<_>>()
        );
        assert_eq!(run(false), (windows, fives, hours));
    }

    #[test]
    fn the_stream_writes_what_the_offline_estimate_says() {
        // Sightings arriving in pieces, out of order, across midnight; at the end of input
        // every window and hour equals the offline estimate over all of them, uncalibrated
        // and under a calibration with its own scale and fixture rule.
        let calibrated = Calibration {
            rssi_min_dbm: counting::ROOM_RSSI_DBM,
            people_per_device: 0.5,
            fixture_hours: 12,
            fitted: Some(counting::Fitted {
                windows: 10,
                mae: 0.5,
            }),
        };
        let devices = [Calibration::uncalibrated(), calibrated].map(|cal| {
            let mut rules = rules();
            rules.calibrations.insert("lab".into(), cal.clone());
            stream_against_offline(&rules, &cal)
        });
        // The calibration's fixture rule counts devices that the default takes for fixtures.
        let [uncal, cal] = devices;
        assert!(
            cal > uncal + 1.0,
            "calibrated {cal:.2}, uncalibrated {uncal:.2}"
        );
    }

    /// Streams a day and a half of sightings (in pieces, out of order) under `rules`, and
    /// checks every window and hour against the offline estimate under `cal` (the site's
    /// calibration); gives the sum of the windows' devices (people over the scale).
    fn stream_against_offline(rules: &Rules, cal: &Calibration) -> f64 {
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
        let mut o = Occupancy::new(usize::MAX, i64::MIN);
        let mut rows = Vec::new();
        for (k, chunk) in all.chunks(50).enumerate() {
            let w = T0 + (900 + 250 * k as i64) * MIN;
            for s in chunk {
                o.insert(s, Some(w), 48 * 60 * MIN);
            }
            o.emit(Some(w), 48 * 60 * MIN, rules, k as u64, &mut rows);
        }
        o.emit(None, 48 * 60 * MIN, rules, 99, &mut rows);
        let sensed: Vec<Sensed> = all.iter().map(sensed).collect();
        let offline: BTreeMap<i64, f64> = counting::estimate(&sensed, 15 * MIN, cal)
            .into_iter()
            .map(|w| (w.start_ms, w.people))
            .collect();
        assert_eq!(latest(&rows), offline);
        let setting = Setting::of(rules, "lab");
        let (fixed, identities) = counting::known(&sensed, cal.fixture_hours);
        let offline: Vec<Hour> = traffic::hours_between(
            &sensed,
            &fixed,
            &identities,
            &setting,
            T0 + 900 * MIN,
            T0 + 2400 * MIN,
        );
        let streamed = hours(&rows);
        assert_eq!(streamed.len(), offline.len());
        for h in &offline {
            let row = &streamed[&h.start_ms];
            let got = [row.visitor_devices, row.passer_by_devices, row.addresses];
            let want = [h.visitor_devices, h.passer_by_devices, h.addresses];
            assert_eq!(got, want, "hour {}", (h.start_ms - T0) / MIN);
            assert_eq!(row.dwell_over_60, h.dwell[3]);
        }
        assert!(offline.iter().map(|h| h.visitor_devices).sum::<u32>() > 10);
        latest(&rows).values().sum::<f64>() / cal.people_per_device
    }

    #[test]
    fn the_stream_writes_the_hours_an_offline_run_gives() {
        // Six phones that stay for minutes to hours and come back, every few minutes a
        // sighting, delivered in chunks, partly late; at the end of input every hour equals
        // the offline run over all of them.
        let rules = rules();
        let mut all: Vec<Seen> = Vec::new();
        for d in 0..6u64 {
            let mut t = (d * 17) as i64;
            let mut k = 0;
            while t < 600 {
                // Randomized: a new address every sighting, one link per phone and stay (a
                // chain ends in a pause).
                let mut x = seen(d * 1000 + k as u64, t, t + 1);
                (x.class, x.link) = (1, 100 + 100 * d + k as u64 / 11);
                x.rssi_max = -60 - (k % 20) as i8;
                all.push(x);
                // Mostly 3-9 min apart, now and then a pause of 25-65 min.
                t += if k % 11 == 10 {
                    25 + 8 * d as i64
                } else {
                    3 + (k + d as i64) % 7
                };
                k += 1;
            }
        }
        // And a staff phone of another model, there for 8 hours, whose links broke at every
        // address: a fixture's run.
        for k in 0..160u64 {
            let mut x = seen(90_000 + k, 60 + 3 * k as i64, 61 + 3 * k as i64);
            (x.class, x.link, x.fingerprint) = (1, 90_000 + k, 9);
            all.push(x);
        }
        let mut o = Occupancy::new(usize::MAX, i64::MIN);
        let mut rows = Vec::new();
        let horizon = 48 * 60 * MIN;
        let order: Vec<usize> = (0..all.len()).map(|i| (i * 7919) % all.len()).collect();
        let mut sorted = order.clone();
        sorted.sort_by_key(|&i| all[i].first_ms);
        for (k, chunk) in sorted.chunks(25).enumerate() {
            // Each chunk's watermark is its newest sighting; a third of the chunks come late.
            let w = chunk.iter().map(|&i| all[i].last_ms).max().unwrap_or(T0) + 30 * MIN;
            for &i in chunk {
                o.insert(&all[i], Some(w), horizon);
            }
            if k % 3 != 1 {
                o.emit(Some(w), horizon, &rules, k as u64, &mut rows);
            }
        }
        o.emit(None, horizon, &rules, 999, &mut rows);
        let sensed: Vec<Sensed> = all.iter().map(sensed).collect();
        let (fixed, identities) = counting::known(&sensed, counting::FIXTURE_HOURS);
        let offline = traffic::hours_between(
            &sensed,
            &fixed,
            &identities,
            &Setting::of(&rules, "lab"),
            T0,
            T0 + 601 * MIN,
        );
        let streamed = hours(&rows);
        assert_eq!(streamed.len(), offline.len());
        for h in &offline {
            let row = &streamed[&h.start_ms];
            let got = [row.visitor_devices, row.passer_by_devices, row.addresses]
                .into_iter()
                .chain([
                    row.dwell_under_5,
                    row.dwell_5_20,
                    row.dwell_20_60,
                    row.dwell_over_60,
                ]);
            let want = [h.visitor_devices, h.passer_by_devices, h.addresses]
                .into_iter()
                .chain(h.dwell);
            assert_eq!(row.fixtures, h.fixtures);
            assert!(
                got.eq(want),
                "hour {}: {row:?} vs {h:?}",
                (h.start_ms - T0) / MIN
            );
        }
        // The staff phone counted apart in the hours it was there, not as visitors.
        assert!(offline[2..8].iter().all(|h| h.fixtures == 1), "{offline:?}");
        let visits: u32 = offline.iter().map(|h| h.visitor_devices).sum();
        assert!(visits >= 12, "{offline:?}");
        assert!(offline.iter().any(|h| h.dwell[3] > 0) && offline.iter().any(|h| h.dwell[1] > 0));
    }

    /// The 15-min windows of the offline estimate over `sightings`, uncalibrated.
    fn offline(sightings: &[Seen]) -> BTreeMap<i64, f64> {
        let sensed: Vec<Sensed> = sightings.iter().map(sensed).collect();
        counting::estimate(&sensed, 15 * MIN, &Calibration::uncalibrated())
            .into_iter()
            .map(|w| (w.start_ms, w.people))
            .collect()
    }

    #[test]
    fn windows_estimated_as_the_watermark_moves_on_equal_those_of_all_the_sightings_at_once() {
        // Eight hours of a room, delivered a few sightings at a time, each delivery followed
        // by an emit (the windows become final one at a time, as in a live stream): phones
        // whose addresses rotate, a chain continued under a new link from an address of the
        // one before (the chains join; the joining sighting often an hour late), long stays
        // sent as open updates first, two devices heard all day (fixtures), other sightings
        // an hour late. Every window as last written equals the offline estimate of the
        // final versions.
        let rules = rules();
        let horizon = 48 * 60 * MIN;
        let mut next = testkit::xorshift(0x2545_f491_4f6c_dd1d);
        // (sighting, delivered at): the final versions, and the updates sent before them.
        let mut sent: Vec<(Seen, i64)> = Vec::new();
        let mut finals: Vec<Seen> = Vec::new();
        for phone in 0..24u64 {
            let mut t = next(420) as i64;
            let mut address = phone * 1000;
            for j in 0..(4 + next(14)) {
                let last = t + 1 + next(if j % 5 == 4 { 50 } else { 4 }) as i64;
                let mut s = seen(address, t, last);
                (s.class, s.link, s.fingerprint) = (1, phone * 100 + j / 6, phone as u32);
                s.rssi_max = -45 - next(30) as i8;
                // A new chain's first sighting is of the last address of the one before.
                if j % 6 != 5 {
                    address += 1;
                }
                for update in (t + 10..last).step_by(10) {
                    let mut open = s.clone();
                    (open.last_ms, open.is_final) = (T0 + update * MIN, false);
                    sent.push((open, update));
                }
                // Late: now and then, and often the sighting that joins two chains (after
                // the windows of both were written).
                let late = if next(12) == 0 || (j % 6 == 0 && j > 0 && next(2) == 0) {
                    60
                } else {
                    next(4) as i64
                };
                sent.push((s.clone(), last + late));
                finals.push(s);
                let pause = if next(3) == 0 { 90 } else { 8 };
                t = last + next(pause) as i64;
            }
        }
        for fixture in [7_000_001u64, 7_000_002] {
            for k in 0..24 {
                let s = seen(fixture, k * 20, k * 20 + 2);
                sent.push((s.clone(), k * 20 + 2));
                finals.push(s);
            }
        }
        sent.sort_by_key(|(s, at)| (*at, s.device, s.last_ms));
        let mut o = Occupancy::new(usize::MAX, i64::MIN);
        let mut rows = Vec::new();
        for (k, chunk) in sent.chunks(3).enumerate() {
            let w = Some(T0 + (chunk[chunk.len() - 1].1 - 2) * MIN);
            for (s, _) in chunk {
                o.insert(s, w, horizon);
            }
            o.emit(w, horizon, &rules, k as u64, &mut rows);
        }
        o.emit(None, horizon, &rules, u64::MAX, &mut rows);
        let want = offline(&finals);
        assert!(want.values().any(|&p| p >= 4.0), "{want:?}");
        assert_eq!(latest(&rows), want);
    }

    #[test]
    fn a_sighting_sent_again_and_again_while_open_is_held_once_and_counted_as_its_last_version() {
        // A laptop heard for three hours (not yet a fixture): its agent sends the open
        // sighting every hour (`sightings.interim_secs`), each version an hour behind the
        // watermark (its sensor's backlog), so each extends windows already written, by
        // more than a sighting's reach; then the final version. Another device comes and
        // goes beside it. The stage holds one version of the laptop's sighting at a time,
        // and writes the windows the final version alone gives, as the offline estimate
        // does; an update redelivered after the final changes no window (it is held beside
        // it: the final is not looked for, and the update adds nothing).
        let rules = rules();
        let horizon = 48 * 60 * MIN;
        let mut o = Occupancy::new(usize::MAX, i64::MIN);
        let mut rows = Vec::new();
        let other = seen(2, 20, 70);
        o.insert(&other, Some(T0), horizon);
        let version = |k: i64| {
            let mut s = seen(1, 0, 60 * k);
            s.is_final = false;
            s
        };
        for k in 1..=2 {
            let w = Some(T0 + (60 * k + 60) * MIN);
            o.insert(&version(k), w, horizon);
            assert_eq!(o.held(), 2, "after version {k}");
            o.emit(w, horizon, &rules, k as u64, &mut rows);
        }
        let last = seen(1, 0, 175);
        let w = Some(T0 + 245 * MIN);
        o.insert(&last, w, horizon);
        assert_eq!(o.held(), 2);
        o.emit(w, horizon, &rules, 3, &mut rows);
        let written = rows.len();
        o.insert(&version(1), w, horizon);
        o.emit(Some(T0 + 246 * MIN), horizon, &rules, 4, &mut rows);
        o.emit(None, horizon, &rules, 5, &mut rows);
        let want = offline(&[other, last]);
        assert!((want[&(T0 + 150 * MIN)] - 1.0).abs() < 1e-9, "{want:?}");
        assert_eq!(latest(&rows), want);
        assert!(
            occupancy(&rows[written..])
                .iter()
                .all(|r| r.start_ms > T0 + 175 * MIN),
            "the redelivered update rewrote a window"
        );
    }

    #[test]
    fn a_sighting_counts_in_the_windows_it_reaches_before_the_watermark_reaches_its_end() {
        // Held by the time it ends, a sighting of 100 min is found for the windows at its
        // start, which are final long before its end is.
        let rules = rules();
        let horizon = 48 * 60 * MIN;
        let mut o = Occupancy::new(usize::MAX, i64::MIN);
        let mut rows = Vec::new();
        o.insert(&seen(1, 0, 100), Some(T0), horizon);
        o.emit(Some(T0 + 80 * MIN), horizon, &rules, 1, &mut rows);
        let w = latest(&rows);
        assert_eq!(w.keys().max(), Some(&(T0 + 30 * MIN)), "{w:?}");
        assert!(w.values().all(|&p| (p - 1.0).abs() < 1e-9), "{w:?}");
    }

    #[test]
    fn a_stronger_version_counts_from_the_sightings_start() {
        // An update heard below the room's floor counts nowhere; its final version, heard
        // above it, counts from the start, in windows written before it came.
        let rules = rules();
        let horizon = 48 * 60 * MIN;
        let mut o = Occupancy::new(usize::MAX, i64::MIN);
        let mut rows = Vec::new();
        let mut faint = seen(1, 0, 60);
        (faint.is_final, faint.rssi_max) = (false, -80);
        o.insert(&faint, Some(T0), horizon);
        o.emit(Some(T0 + 120 * MIN), horizon, &rules, 1, &mut rows);
        assert_eq!(latest(&rows)[&T0], 0.0);
        let last = seen(1, 0, 90);
        o.insert(&last, Some(T0 + 120 * MIN), horizon);
        o.emit(None, horizon, &rules, 2, &mut rows);
        assert_eq!(latest(&rows), offline(&[last]));
        assert_eq!(latest(&rows)[&T0], 1.0);
    }

    #[test]
    fn two_sightings_alike_in_device_start_and_link_are_both_held() {
        // Updates of two sightings that share device, start and link but where neither
        // holds the other (one longer, the other stronger): both count, as offline.
        let rules = rules();
        let horizon = 48 * 60 * MIN;
        let mut o = Occupancy::new(usize::MAX, i64::MIN);
        let mut rows = Vec::new();
        let mut longer = seen(1, 0, 40);
        longer.is_final = false;
        let mut stronger = seen(1, 0, 10);
        (stronger.is_final, stronger.rssi_max) = (false, -40);
        o.insert(&longer, Some(T0), horizon);
        o.insert(&stronger, Some(T0), horizon);
        assert_eq!(o.held(), 2);
        o.emit(None, horizon, &rules, 1, &mut rows);
        assert_eq!(latest(&rows), offline(&[longer, stronger]));
        assert!((latest(&rows)[&(T0 + 30 * MIN)] - 12.0 / 15.0).abs() < 1e-9);
    }

    #[test]
    fn a_full_site_refuses_more_sightings() {
        let mut o = Occupancy::new(2, i64::MIN);
        for device in 1..=4 {
            o.insert(&seen(device, 0, 10), None, 48 * 60 * MIN);
        }
        assert_eq!(o.refused, 2);
        assert_eq!(o.sites["lab"].held, 2);
    }
}
