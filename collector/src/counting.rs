//! People, not device keys: how many people were at a site in each window, from its sensors'
//! sightings.
//!
//! Most phones randomize their address, per burst or every few minutes, so a count of device
//! keys counts address changes, not people. The estimator (version [`VERSION`]) counts
//! *present devices* in each window instead, and turns them into people with the site's
//! calibration:
//! - **in the room**: a sighting counts only if its strongest frame reaches the
//!   calibration's RSSI floor (a phone in the corridor or next door is heard, weaker);
//! - **one device, one count**: a globally addressed device counts once by its key; randomized
//!   addresses count once per link (the chain of one device's addresses its sensor linked:
//!   wire crate docs, "Links"), and two sensors' chains that share an address are one device.
//!   A randomized sighting without a link (a version 1 agent) is a device of its own, and
//!   counted as `unlinked` beside the estimate, which it inflates;
//! - **present between probes**: a device is in the room from its first probe to its last
//!   while its silences last at most [`PRESENCE_GAP_MS`] (a phone with its screen off probes
//!   every few minutes), widened by [`PRESENCE_PAD_MS`]; a window counts the fraction of it
//!   each device was present, so a window's devices are a mean over the window, as the
//!   people it is judged against are;
//! - **fixtures and staff apart**: a device heard in at least the calibration's fixture
//!   hours ([`FIXTURE_HOURS`] uncalibrated), distinct hours of a UTC day (a lab PC, a
//!   printer, a staff phone that stays all day), is counted apart for that day, never as a
//!   visitor: a globally addressed device by its key, a randomized one by its link (a chain
//!   of addresses that went on for hours). The traffic also counts apart a staff phone
//!   whose links broke, by its model's **run** (one probe fingerprint in the room all along
//!   for hours: [`Fixtures`]). Decided from what the sensors heard, never from vendor
//!   prefixes or lists.
//!
//! `people = devices x people_per_device`, with the Poisson 95 % interval of the device count
//! ([`intervals::poisson`]) scaled the same way: it covers the count's sampling noise, not
//! the estimator's bias (the counting bench measures how often it covers the truth). Uncalibrated sites use
//! [`Calibration::uncalibrated`]; [`fit`] fits a calibration from a labelled period.
//!
//! Pure: the same sightings give the same windows, whatever their order.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

/// The estimator's name and version, written beside every estimate.
pub const VERSION: &str = "present-devices/4";
/// A device (a global key, or a link) heard in this many distinct hours of a day is a
/// fixture, uncalibrated (a calibration fits its site's: [`Calibration::fixture_hours`]).
pub const FIXTURE_HOURS: u8 = 4;
/// The fixture hours a calibration may choose among, the default first: a labelled period
/// that cannot tell them apart (a short one, with nobody there for hours) keeps it.
const FIXTURE_HOURS_FITTED: [u8; 6] = [FIXTURE_HOURS, 3, 6, 8, 12, 16];
/// A device silent for longer than this has left (phones with the screen off probe every
/// few minutes; the pass gap of ATTRIBUTION.md is the same 30 min).
pub const PRESENCE_GAP_MS: i64 = 30 * 60_000;
/// A device is taken to be present this long before its first and after its last probe.
pub const PRESENCE_PAD_MS: i64 = 2 * 60_000;
/// A phone in a room of a few metres around the sensor is heard at this or stronger: the
/// uncalibrated RSSI floor, and the floor of a fixture's run.
pub const ROOM_RSSI_DBM: i8 = -65;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// One sighting, as the estimator needs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sensed {
    pub device: u64,
    /// The sensor's link of the device's addresses; 0 if it came without one.
    pub link: u64,
    /// Globally addressed (a stable key), or randomized.
    pub global: bool,
    pub fingerprint: u32,
    pub first_ms: i64,
    pub last_ms: i64,
    pub rssi_max: i8,
}

/// A site's calibration: the RSSI floor of its room, people per present device, and how
/// long a device stays in a day before it is a fixture. Stored in the inventory (table
/// `site_calibrations`, imported from the CSV `calibrate` writes).
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// Sightings whose strongest frame is weaker than this are outside the site, dBm.
    pub rssi_min_dbm: i8,
    /// People per present device: corrects for phones that do not probe within a window
    /// (more than 1) and for people with several devices (less than 1).
    pub people_per_device: f64,
    /// A device heard in this many distinct hours of a UTC day is a fixture, counted apart
    /// (a room where people stay for a whole 4-6 hour class, with a laptop and a phone
    /// each, fits a longer rule than a shop's).
    pub fixture_hours: u8,
    /// What it was fitted on; absent for the built-in default.
    pub fitted: Option<Fitted>,
}

/// The labelled period a calibration was fitted on.
#[derive(Clone, Debug, PartialEq)]
pub struct Fitted {
    /// Labelled windows used.
    pub windows: usize,
    /// Mean absolute error on them, people (in-sample: optimistic).
    pub mae: f64,
}

impl Calibration {
    /// The default for a site without a fitted calibration: a floor of -65 dBm (a phone in
    /// a room of a few metres around the sensor), one person per present device, and
    /// fixtures heard in [`FIXTURE_HOURS`] hours of their day.
    pub fn uncalibrated() -> Calibration {
        Calibration {
            rssi_min_dbm: ROOM_RSSI_DBM,
            people_per_device: 1.0,
            fixture_hours: FIXTURE_HOURS,
            fitted: None,
        }
    }

    /// "calibrated" or "uncalibrated", for the outputs.
    pub fn kind(&self) -> &'static str {
        if self.fitted.is_some() {
            "calibrated"
        } else {
            "uncalibrated"
        }
    }

    /// Checks a calibration read from a file; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(-120..=0).contains(&self.rssi_min_dbm) {
            return Err(format!(
                "rssi_min_dbm: {} is not a signal level in [-120, 0] dBm",
                self.rssi_min_dbm
            ));
        }
        if !(self.people_per_device.is_finite() && self.people_per_device > 0.0) {
            return Err(format!(
                "people_per_device: {} is not a positive number",
                self.people_per_device
            ));
        }
        if !(1..=24).contains(&self.fixture_hours) {
            return Err(format!(
                "fixture_hours: {} is not a number of hours in [1, 24]",
                self.fixture_hours
            ));
        }
        Ok(())
    }
}

/// One window's estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub start_ms: i64,
    pub people: f64,
    /// 95 % interval.
    pub lo: f64,
    pub hi: f64,
    /// Devices in the room, the mean over the window: globally addressed, and randomized
    /// (by link); of the randomized, those without a link (each address its own device).
    pub global: f64,
    pub randomized: f64,
    pub unlinked: f64,
    /// Fixtures heard in the window (counted apart, not in `people`).
    pub fixtures: u32,
}

/// What is counted apart: devices that are fixtures for a day (by [`fixture_key`]), and the
/// runs of a fingerprint (see [`Fixtures`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fixed {
    /// (UTC day, [`fixture_key`]).
    keys: FxHashSet<(i64, u64)>,
    /// Per (UTC day, fingerprint): the runs, `[start, end)` ms, in time order.
    runs: FxHashMap<(i64, u32), Vec<(i64, i64)>>,
}

impl Fixed {
    /// The key of the fixture a sighting is of, if it is one's.
    pub(crate) fn fixture_of(&self, s: &Sensed) -> Option<u64> {
        fixture_key(s).filter(|&k| self.keys.contains(&(s.first_ms.div_euclid(DAY_MS), k)))
    }

    /// For a randomized sighting wholly within a run of its fingerprint, the key the run is
    /// counted by among the fixtures ([`RUN_KEY`] with the fingerprint: one device).
    pub(crate) fn run_of(&self, s: &Sensed) -> Option<u64> {
        let runs = self
            .runs
            .get(&(s.first_ms.div_euclid(DAY_MS), s.fingerprint))
            .filter(|_| !s.global)?;
        runs.iter()
            .any(|&(from, to)| from <= s.first_ms && s.last_ms < to)
            .then_some(RUN_KEY | u64::from(s.fingerprint))
    }
}

/// What adding a sighting to [`Fixtures`] changed: the earliest start of a sighting that may
/// have become a fixture's (`fixtures`), or a run's (`runs`).
#[derive(Debug, Default, PartialEq)]
pub struct Changed {
    pub fixtures: Option<i64>,
    pub runs: Option<i64>,
}

/// The key a run of a fingerprint is counted by among the fixtures: this bit, with the
/// fingerprint in the low 32 (a device key with it set is a fixture's key as well, rarely:
/// the two are only ever counted together, never joined).
const RUN_KEY: u64 = 1 << 63;
/// The slots a run is found in.
const SLOT_MS: i64 = 5 * 60_000;
const SLOTS_PER_DAY: usize = (DAY_MS / SLOT_MS) as usize;
/// A run is this long at least ([`FIXTURE_HOURS`], whatever a site's calibration: the
/// calibration is fitted on the occupancy, which does not count runs apart)...
const RUN_SLOTS: usize = FIXTURE_HOURS as usize * (HOUR_MS / SLOT_MS) as usize;
/// ... and silent for at most this many slots in a row (10 to 15 min).
const RUN_GAP_SLOTS: usize = 2;

/// Finds the fixtures of each day, one sighting at a time (the stage's, and [`fixtures`]):
/// - a device (a global key, or a link) heard, at any strength, in at least the
///   calibration's fixture hours (distinct hours of a UTC day): counted apart by the
///   occupancy and the traffic;
/// - a **run** of a fingerprint: randomized addresses of one probe fingerprint heard in the
///   room (at [`ROOM_RSSI_DBM`] or stronger) in the 5-min slots of at least
///   [`FIXTURE_HOURS`] hours, silent for at most 10-15 min at a time. In a store that is a
///   phone that stayed, a staff phone, whose links broke: phones that draw a new address
///   and counter with each burst, and probe every few minutes with the screen off, leave
///   chains the agent cannot continue, and with other phones of their model in the room
///   their chains are handed to and from the others'. The traffic counts every randomized
///   sighting of that fingerprint wholly within the run apart, as one device, neither a
///   visitor nor a passer-by: a visitor with a phone of the staff phone's model, in those
///   hours, is lost with it (its chains mix with the staff phone's, and cannot be told
///   apart). The occupancy does not: a room where people stay for hours (a class, an
///   office) has several phones of a model there all along, and they are people present.
pub struct Fixtures {
    /// Per (UTC day, key): the hours of that day heard, one bit each.
    hours: FxHashMap<(i64, u64), u32>,
    /// Per (UTC day, fingerprint): the slots of that day heard in the room, one bit each.
    slots: FxHashMap<(i64, u32), [u64; SLOTS_PER_DAY.div_ceil(64)]>,
    /// The longest sighting added, ms ([`Fixtures::longest_ms`]).
    longest_ms: i64,
    /// A device heard in this many hours of its day is a fixture.
    fixture_hours: u32,
    pub fixed: Fixed,
}

impl Fixtures {
    /// None yet; a device heard in `fixture_hours` hours of its day will be a fixture.
    pub fn new(fixture_hours: u8) -> Fixtures {
        Fixtures {
            hours: FxHashMap::default(),
            slots: FxHashMap::default(),
            longest_ms: 0,
            fixture_hours: u32::from(fixture_hours),
            fixed: Fixed::default(),
        }
    }

    /// From now on a device heard in `fixture_hours` hours of its day is a fixture (a new
    /// calibration): the fixtures of the days held are those heard that long so far.
    pub fn set_fixture_hours(&mut self, fixture_hours: u8) {
        let n = u32::from(fixture_hours);
        if n != self.fixture_hours {
            self.fixture_hours = n;
            self.fixed.keys = (self.hours.iter())
                .filter(|(_, h)| h.count_ones() >= n)
                .map(|(k, _)| *k)
                .collect();
        }
    }

    /// The longest sighting added, ms: how far before a time a sighting that reaches it
    /// can start.
    pub fn longest_ms(&self) -> i64 {
        self.longest_ms
    }

    /// Counts `s`'s hours and slots; says what it changed.
    pub fn add(&mut self, s: &Sensed) -> Changed {
        self.longest_ms = self.longest_ms.max(s.last_ms - s.first_ms);
        let mut changed = Changed::default();
        let earliest = |at: &mut Option<i64>, t: i64| *at = Some(at.map_or(t, |c| c.min(t)));
        for (key, hour) in hours_heard(s) {
            let hours = self.hours.entry(key).or_default();
            let bit = 1u32 << hour.rem_euclid(24);
            if *hours & bit == 0 {
                *hours |= bit;
                if hours.count_ones() >= self.fixture_hours && self.fixed.keys.insert(key) {
                    // Its sightings are counted apart from the first hour it was heard in.
                    let first_hour = i64::from(hours.trailing_zeros());
                    earliest(&mut changed.fixtures, key.0 * DAY_MS + first_hour * HOUR_MS);
                }
            }
        }
        if !s.global && s.rssi_max >= ROOM_RSSI_DBM {
            let day = s.first_ms.div_euclid(DAY_MS);
            let slot = |t: i64| {
                (t - day * DAY_MS)
                    .div_euclid(SLOT_MS)
                    .clamp(0, SLOTS_PER_DAY as i64 - 1)
            };
            let (first, last) = (slot(s.first_ms) as usize, slot(s.last_ms) as usize);
            let bits = self.slots.entry((day, s.fingerprint)).or_default();
            let new = (first..=last).find(|&i| !heard(bits, i));
            if let Some(new) = new {
                let before = runs(bits);
                for i in first..=last {
                    bits[i / 64] |= 1 << (i % 64);
                }
                let after = runs(bits);
                if after != before {
                    let to_ms = |i: usize| day * DAY_MS + i as i64 * SLOT_MS;
                    // A run that only grew at its end holds, newly, the sightings that end
                    // after its old end; any other change, those from its start.
                    let grown = after.iter().find(|r| r.contains(&new)).map(|r| {
                        match before.iter().find(|b| b.start == r.start && b.end <= new) {
                            Some(b) => to_ms(b.end) - self.longest_ms,
                            None => to_ms(r.start),
                        }
                    });
                    earliest(&mut changed.runs, grown.unwrap_or(day * DAY_MS));
                    let ms = after
                        .iter()
                        .map(|r| (to_ms(r.start), to_ms(r.end)))
                        .collect();
                    self.fixed.runs.insert((day, s.fingerprint), ms);
                }
            }
        }
        changed
    }

    /// Reads what [`Fixtures::add`] of `s` will look up first, its key's hours of the day
    /// (for `Occupancy::insert_all`: a chunk's reads at once, their cache misses
    /// overlapping); returns what it read.
    pub(crate) fn look(&self, s: &Sensed) -> u32 {
        fixture_key(s)
            .and_then(|k| self.hours.get(&(s.first_ms.div_euclid(DAY_MS), k)))
            .copied()
            .unwrap_or(0)
    }

    /// Forgets the days before `day`.
    pub fn keep_from(&mut self, day: i64) {
        self.hours.retain(|(d, _), _| *d >= day);
        self.slots.retain(|(d, _), _| *d >= day);
        self.fixed.keys.retain(|(d, _)| *d >= day);
        self.fixed.runs.retain(|(d, _), _| *d >= day);
    }
}

/// The runs among a day's slots: ranges of slots heard, silent for at most
/// [`RUN_GAP_SLOTS`] in a row, [`RUN_SLOTS`] long at least.
fn runs(bits: &[u64]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut run: Option<std::ops::Range<usize>> = None;
    for i in (0..SLOTS_PER_DAY).filter(|&i| heard(bits, i)) {
        run = match run {
            Some(r) if i - r.end <= RUN_GAP_SLOTS => Some(r.start..i + 1),
            r => {
                out.extend(r.filter(|r| r.len() >= RUN_SLOTS));
                Some(i..i + 1)
            }
        };
    }
    out.extend(run.filter(|r| r.len() >= RUN_SLOTS));
    out
}

/// Whether slot `i` of a day's slots was heard.
fn heard(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// The fixtures among `sightings` (see [`Fixtures`]), heard in `fixture_hours` hours of
/// their day.
pub fn fixtures(sightings: &[Sensed], fixture_hours: u8) -> Fixed {
    let mut f = Fixtures::new(fixture_hours);
    for s in sightings {
        f.add(s);
    }
    f.fixed
}

/// What the estimate of `sightings` counts apart, and which of them are one device: the
/// fixtures (heard in `fixture_hours` hours of their day) and the identities.
pub fn known(sightings: &[Sensed], fixture_hours: u8) -> (Fixed, Identities) {
    (
        fixtures(sightings, fixture_hours),
        Identities::of(sightings),
    )
}

/// The hours a sighting was heard in, each with its (UTC day, [`fixture_key`]): what
/// [`Fixtures`] counts by key (a randomized address without a link: none).
fn hours_heard(s: &Sensed) -> impl Iterator<Item = ((i64, u64), i64)> + '_ {
    let key = fixture_key(s);
    (s.first_ms.div_euclid(HOUR_MS)..=s.last_ms.div_euclid(HOUR_MS))
        .filter_map(move |hour| key.map(|k| ((hour.div_euclid(24), k), hour)))
}

/// What a fixture is known by: a global address's key, a randomized address's link (none
/// without one: a single address of a rotating phone says nothing about its day).
pub(crate) fn fixture_key(s: &Sensed) -> Option<u64> {
    match (s.global, s.link) {
        (true, _) => Some(s.device),
        (false, 0) => None,
        (false, link) => Some(link),
    }
}

/// Present devices per window at an RSSI floor, by window start (windows aligned to
/// multiples of `window_ms` since the Unix epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Present {
    /// The devices' time in the room within the window, ms (whole numbers: the sums are
    /// the same to the last bit whatever order the devices are added in).
    global_ms: i64,
    randomized_ms: i64,
    unlinked_ms: i64,
    /// Fixtures heard in the window.
    fixtures: u32,
}

/// Who a sighting is: a global key, a randomized device's link (its chains joined through
/// the addresses they share), or, without a link, its own address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Identity {
    Global(u64),
    Linked(u64),
    Unlinked(u64),
}

/// Which sightings are one device ([`Identity`]): a randomized device's chains are joined
/// when they share an address (two sensors' chains, or one sensor's before and after a
/// restart), within a UTC day (a link never runs across midnight UTC, and a day's joins are
/// forgotten with it). Built one sighting at a time, by the stream stage, or from a set
/// ([`Identities::of`]): the same sightings give the same identities in any order, so a
/// window's estimate does not depend on which other windows were estimated with it.
#[derive(Clone, Debug, Default)]
pub struct Identities {
    days: FxHashMap<i64, Joins>,
}

/// One day's chains: a union-find over link values, the smallest link of a set its root.
#[derive(Clone, Debug, Default)]
struct Joins {
    /// Per link: its parent (a root's is itself), and for a root, the earliest start of its
    /// set's sightings.
    parent: FxHashMap<u64, (u64, i64)>,
    /// Per address: the first link heard with it.
    by_address: FxHashMap<u64, u64>,
}

impl Joins {
    /// The root of `x`'s set, halving the path to it.
    fn root(&mut self, mut x: u64) -> u64 {
        loop {
            let p = self.parent.get(&x).map_or(x, |e| e.0);
            if p == x {
                return x;
            }
            let grand = self.parent.get(&p).map_or(p, |e| e.0);
            if let Some(e) = self.parent.get_mut(&x) {
                e.0 = grand;
            }
            x = grand;
        }
    }
}

impl Identities {
    /// The identities of `sightings`.
    pub fn of(sightings: &[Sensed]) -> Identities {
        let mut ids = Identities::default();
        for s in sightings {
            ids.add(s);
        }
        ids
    }

    /// Counts `s` in. When it joins two chains, returns the earliest start of their
    /// sightings: whatever they were counted in from there on may change.
    pub fn add(&mut self, s: &Sensed) -> Option<i64> {
        if s.global || s.link == 0 {
            return None;
        }
        let j = self.days.entry(s.first_ms.div_euclid(DAY_MS)).or_default();
        j.parent.entry(s.link).or_insert((s.link, s.first_ms));
        let r = j.root(s.link);
        let other = *j.by_address.entry(s.device).or_insert(s.link);
        let o = if other == s.link { r } else { j.root(other) };
        let earliest = |j: &Joins, x: u64| j.parent.get(&x).map_or(s.first_ms, |e| e.1);
        if o == r {
            // Most sightings: the set only starts earlier, if at all.
            if let Some(e) = j.parent.get_mut(&r) {
                e.1 = e.1.min(s.first_ms);
            }
            return None;
        }
        let first = s.first_ms.min(earliest(j, r)).min(earliest(j, o));
        // The smaller value is the root, so the result does not depend on the order.
        let root = o.min(r);
        j.parent.insert(root, (root, first));
        j.parent.insert(o.max(r), (root, first));
        Some(first)
    }

    /// Reads what [`Identities::add`] of `s` will look up, its link's and its address's
    /// entries (as [`Fixtures::look`]); returns what it read.
    pub(crate) fn look(&self, s: &Sensed) -> u64 {
        if s.global || s.link == 0 {
            return 0;
        }
        self.days
            .get(&s.first_ms.div_euclid(DAY_MS))
            .map_or(0, |j| {
                j.parent.get(&s.link).map_or(0, |e| e.0)
                    ^ j.by_address.get(&s.device).copied().unwrap_or(0)
            })
    }

    /// Forgets the days before `day`.
    pub fn keep_from(&mut self, day: i64) {
        self.days.retain(|d, _| *d >= day);
    }

    pub(crate) fn identity(&self, s: &Sensed) -> Identity {
        if s.global {
            return Identity::Global(s.device);
        }
        if s.link == 0 {
            return Identity::Unlinked(s.device);
        }
        let mut x = s.link;
        if let Some(j) = self.days.get(&s.first_ms.div_euclid(DAY_MS)) {
            while let Some(&(p, _)) = j.parent.get(&x).filter(|e| e.0 != x) {
                x = p;
            }
        }
        Identity::Linked(x)
    }
}

impl Present {
    /// The mean number of devices in the room over a window of `window_ms`.
    fn devices(&self, window_ms: i64) -> f64 {
        Present::mean(self.global_ms + self.randomized_ms, window_ms)
    }

    fn mean(ms: i64, window_ms: i64) -> f64 {
        ms as f64 / window_ms as f64
    }
}

/// What [`Presence::by_window`] finds: per window from the first a stay or a fixture's
/// sighting reaches to the last, the devices present, or none where nothing reaches it. (A
/// window of a few hours' read at a time: an array, not a map, for a map's entry per
/// device and window cost a tenth of the stage's emit.)
struct ByWindow {
    /// The first window's index (its start over the window length).
    first: i64,
    window_ms: i64,
    present: Vec<Option<Present>>,
}

impl ByWindow {
    /// The devices present in the window starting at `start_ms`, if anything reached it.
    fn get(&self, start_ms: i64) -> Option<&Present> {
        if start_ms.rem_euclid(self.window_ms) != 0 {
            return None;
        }
        let i = usize::try_from(start_ms.div_euclid(self.window_ms) - self.first).ok()?;
        self.present.get(i)?.as_ref()
    }

    /// Window `w`'s count (`w` its index: its start over the window length), within the
    /// span.
    fn at(&mut self, w: i64) -> &mut Present {
        self.present[(w - self.first) as usize].get_or_insert_with(Present::default)
    }
}

/// Each device's presence: from its first sighting above the floor to its last, bridging
/// silences of up to [`PRESENCE_GAP_MS`], widened by [`PRESENCE_PAD_MS`] on both sides; and
/// the fixtures' sightings, counted apart. Found once, it is counted into windows of any
/// length ([`Presence::by_window`]): the stream stage writes two.
pub struct Presence {
    /// Each device's stays (padded), devices in [`Identity`] order, stays in time order.
    stays: Vec<(Identity, i64, i64)>,
    /// Fixtures' sightings: (first, last, the fixture's key).
    fixtures: Vec<(i64, i64, u64)>,
}

impl Presence {
    /// The presence of the devices in `sightings` whose strongest frame reaches `rssi_min`,
    /// with the fixtures `fixed` apart.
    pub fn of<'a>(
        sightings: impl IntoIterator<Item = &'a Sensed>,
        fixed: &Fixed,
        identities: &Identities,
        rssi_min: i8,
    ) -> Presence {
        let mut fixtures = Vec::new();
        // Intervals by identity, in time order (each device's together, to join its stays).
        let mut spans: Vec<(Identity, i64, i64)> = Vec::new();
        for s in sightings {
            if let Some(k) = fixed.fixture_of(s) {
                fixtures.push((s.first_ms, s.last_ms, k));
            } else if s.rssi_max >= rssi_min {
                spans.push((identities.identity(s), s.first_ms, s.last_ms));
            }
        }
        spans.sort_unstable();
        let mut stays: Vec<(Identity, i64, i64)> = Vec::with_capacity(spans.len());
        for v in spans.chunk_by(|a, b| a.0 == b.0) {
            let id = v[0].0;
            let at = stays.len();
            for &(_, first, last) in v {
                match stays[at..].last_mut() {
                    Some((_, _, end)) if first - (*end - PRESENCE_PAD_MS) <= PRESENCE_GAP_MS => {
                        *end = (*end).max(last + PRESENCE_PAD_MS);
                    }
                    _ => stays.push((id, first - PRESENCE_PAD_MS, last + PRESENCE_PAD_MS)),
                }
            }
        }
        Presence { stays, fixtures }
    }

    /// Present devices per window of `window_ms` (aligned to multiples of it since the Unix
    /// epoch): a window counts the fraction of it each device was present (the truth it is
    /// judged against is a mean over the window too).
    fn by_window(&self, window_ms: i64) -> ByWindow {
        let spans = (self.stays.iter().map(|&(_, from, to)| (from, to)))
            .chain(self.fixtures.iter().map(|&(first, last, _)| (first, last)));
        let (first, last) = spans.fold((i64::MAX, i64::MIN), |(lo, hi), (from, to)| {
            (
                lo.min(from.div_euclid(window_ms)),
                hi.max(to.div_euclid(window_ms)),
            )
        });
        // No stay and no fixture: no window (the fold's bounds are then i64::MAX and MIN).
        let (first, len) = if first <= last {
            (first, last - first + 1)
        } else {
            (0, 0)
        };
        let mut by = ByWindow {
            first,
            window_ms,
            present: vec![None; len as usize],
        };
        for &(id, from, to) in &self.stays {
            for w in from.div_euclid(window_ms)..=to.div_euclid(window_ms) {
                let start = w * window_ms;
                let part = to.min(start + window_ms) - from.max(start);
                let p = by.at(w);
                match id {
                    Identity::Global(_) => p.global_ms += part,
                    Identity::Linked(_) => p.randomized_ms += part,
                    Identity::Unlinked(_) => {
                        p.randomized_ms += part;
                        p.unlinked_ms += part;
                    }
                }
            }
        }
        // (window, fixture key), each once: the distinct fixtures of each window.
        let mut fixtures: Vec<(i64, u64)> = (self.fixtures.iter())
            .flat_map(|&(first, last, key)| {
                (first.div_euclid(window_ms)..=last.div_euclid(window_ms)).map(move |w| (w, key))
            })
            .collect();
        fixtures.sort_unstable();
        fixtures.dedup();
        for v in fixtures.chunk_by(|a, b| a.0 == b.0) {
            by.at(v[0].0).fixtures = u32::try_from(v.len()).unwrap_or(u32::MAX);
        }
        by
    }

    /// The windows of `window_ms` from the one holding `from_ms` to the one holding `to_ms`,
    /// each with its estimate under `cal` (whose RSSI floor this presence was found at).
    pub fn windows(
        &self,
        window_ms: i64,
        cal: &Calibration,
        from_ms: i64,
        to_ms: i64,
    ) -> Vec<Window> {
        let counts = self.by_window(window_ms);
        (from_ms.div_euclid(window_ms)..=to_ms.div_euclid(window_ms))
            .map(|w| {
                let start_ms = w * window_ms;
                let p = counts.get(start_ms).copied().unwrap_or_default();
                let n = p.devices(window_ms);
                let (lo, hi) = intervals::poisson(n);
                let k = cal.people_per_device;
                Window {
                    start_ms,
                    people: k * n,
                    lo: k * lo,
                    hi: k * hi,
                    global: Present::mean(p.global_ms, window_ms),
                    randomized: Present::mean(p.randomized_ms, window_ms),
                    unlinked: Present::mean(p.unlinked_ms, window_ms),
                    fixtures: p.fixtures,
                }
            })
            .collect()
    }
}

/// The windows of `window_ms` from the first sighting's window to the last's, empty ones
/// included, each with its estimate.
pub fn estimate(sightings: &[Sensed], window_ms: i64, cal: &Calibration) -> Vec<Window> {
    let (Some(first), Some(last)) = (
        sightings.iter().map(|s| s.first_ms).min(),
        sightings.iter().map(|s| s.last_ms).max(),
    ) else {
        return Vec::new();
    };
    let (fixed, identities) = known(sightings, cal.fixture_hours);
    Presence::of(sightings, &fixed, &identities, cal.rssi_min_dbm)
        .windows(window_ms, cal, first, last)
}

/// Why a calibration could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("no labelled window has sightings: the truth and the envelopes do not overlap")]
    NoOverlap,
    #[error(
        "no labelled window has anyone present, or a device counted in it: a scale cannot be \
         fitted from empty rooms"
    )]
    NobodyPresent,
}

/// A labelled period: a site's sightings, and the true number of people in some of its
/// windows (window start -> people).
pub type Labelled<'a> = (&'a [Sensed], &'a BTreeMap<i64, f64>);

/// Fits a calibration from labelled periods (one site's, or several alike): the fixture
/// hours (4, 3, 6, 8, 12 or 16), the RSSI floor (every whole dBm from -95 to -40) and the
/// scale that together minimize the mean absolute error over the labelled windows. For a
/// floor and fixture hours, the best scale is exact: the median of truth / devices weighted
/// by devices. Of equal errors, the first found wins: the default fixture rule, then the
/// shorter one; the lower floor.
pub fn fit(periods: &[Labelled<'_>], window_ms: i64) -> Result<Calibration, FitError> {
    let mut best: Option<(f64, u8, i8, f64)> = None;
    let mut overlap = false;
    // Which sightings are one device does not depend on the fixture rule: found once.
    let identities: Vec<Identities> = periods.iter().map(|(s, _)| Identities::of(s)).collect();
    for fixture_hours in FIXTURE_HOURS_FITTED {
        let fixed: Vec<Fixed> = (periods.iter())
            .map(|(s, _)| fixtures(s, fixture_hours))
            .collect();
        let known = (fixed.as_slice(), identities.as_slice());
        for floor in -95..=-40 {
            let Some((mae, scale)) = fit_scale(periods, known, floor, window_ms, &mut overlap)
            else {
                continue;
            };
            if best.is_none_or(|(m, ..)| mae < m) {
                best = Some((mae, fixture_hours, floor, scale));
            }
        }
    }
    if !overlap {
        return Err(FitError::NoOverlap);
    }
    let Some((mae, fixture_hours, floor, scale)) = best.filter(|b| b.3 > 0.0) else {
        return Err(FitError::NobodyPresent);
    };
    Ok(Calibration {
        rssi_min_dbm: floor,
        people_per_device: scale,
        fixture_hours,
        fitted: Some(Fitted {
            windows: periods.iter().map(|(_, t)| t.len()).sum(),
            mae,
        }),
    })
}

/// The best scale at `floor`, and its mean absolute error, over `periods` with what each
/// counts apart and which of its sightings are one device (`known`, per period); none if no
/// labelled window has a device. `overlap` says whether a labelled window had sightings.
fn fit_scale(
    periods: &[Labelled<'_>],
    (fixed, identities): (&[Fixed], &[Identities]),
    floor: i8,
    window_ms: i64,
    overlap: &mut bool,
) -> Option<(f64, f64)> {
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    for (((sightings, truth), fixed), identities) in periods.iter().zip(fixed).zip(identities) {
        let counts = Presence::of(*sightings, fixed, identities, floor).by_window(window_ms);
        *overlap |= truth.keys().any(|&k| counts.get(k).is_some());
        pairs.extend(truth.iter().map(|(start, &people)| {
            (
                counts.get(*start).map_or(0.0, |p| p.devices(window_ms)),
                people,
            )
        }));
    }
    let scale = weighted_median(pairs.iter().filter(|(n, _)| *n > 0.0).copied())?;
    let mae = pairs
        .iter()
        .map(|(n, t)| (scale * n - t).abs())
        .sum::<f64>()
        / pairs.len() as f64;
    Some((mae, scale))
}

/// The s minimizing sum |s n - t| over (n, t) with n > 0: the median of t / n weighted by n.
fn weighted_median(pairs: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let mut v: Vec<(f64, f64)> = pairs.map(|(n, t)| (t / n, n)).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half = v.iter().map(|(_, w)| w).sum::<f64>() / 2.0;
    let mut acc = 0.0;
    for (ratio, w) in &v {
        acc += w;
        if acc >= half {
            return Some(*ratio);
        }
    }
    v.last().map(|(r, _)| *r)
}

/// The tests' time: minutes from `T0`, and their sightings (the traffic's and the
/// occupancy stage's tests use them too).
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MIN: i64 = 60_000;
    pub(crate) const T0: i64 = 1_710_403_200_000; // 2024-03-14T08:00Z

    /// A sighting of address `device` with the link `link` (a randomized address's chain),
    /// from `first_min` to `last_min` minutes after `T0`.
    pub(crate) fn s(
        device: u64,
        global: bool,
        link: u64,
        first_min: i64,
        last_min: i64,
        rssi: i8,
    ) -> Sensed {
        Sensed {
            device,
            link,
            global,
            fingerprint: 0,
            first_ms: T0 + first_min * MIN,
            last_ms: T0 + last_min * MIN,
            rssi_max: rssi,
        }
    }

    #[test]
    fn rotating_addresses_of_one_phone_count_once_and_weak_or_fixed_devices_not_at_all() {
        let mut v = vec![
            // One phone, five random addresses in 15 min, one link.
            s(1, false, 7, 0, 0, -50),
            s(2, false, 7, 3, 3, -52),
            s(3, false, 7, 6, 6, -49),
            s(4, false, 7, 9, 9, -55),
            s(5, false, 7, 12, 12, -51),
            // Another phone.
            s(6, false, 9, 4, 4, -60),
            // A global phone.
            s(10, true, 1, 2, 8, -58),
            // In the corridor.
            s(11, true, 2, 5, 5, -85),
            s(12, false, 3, 5, 5, -80),
        ];
        // A lab PC heard all day (4 distinct hours), and a staff phone whose rotating
        // addresses one link chains for 5 hours.
        for h in 0..5 {
            v.push(s(20, true, 4, h * 60 + 1, h * 60 + 2, -40));
            v.push(s(30 + h as u64, false, 5, h * 60 + 3, h * 60 + 4, -40));
        }
        let w = estimate(&v, 15 * MIN, &Calibration::uncalibrated());
        assert_eq!(w[0].start_ms, T0);
        // Present from first to last probe, 2 min either side, as a share of the window: the
        // phone of link 7 for 14 of its 15 min (not 5 addresses), link 9 for 4,
        // the global phone for 10; the corridor's devices not at all; the PC apart.
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(w[0].randomized, 18.0 / 15.0), "{:?}", w[0]);
        assert!(close(w[0].global, 10.0 / 15.0), "{:?}", w[0]);
        assert_eq!(w[0].fixtures, 2);
        assert!(close(w[0].people, 28.0 / 15.0));
        assert!(w[0].lo < w[0].people && w[0].hi > w[0].people);
        // From the first window to the last, empty ones included, aligned to :00/:15/:30/:45.
        assert_eq!(w.len(), 4 * 4 + 1);
        assert!(w.iter().all(|x| x.start_ms % (15 * MIN) == 0));
        assert_eq!(w[1].people, 0.0);
        assert!(w[1].hi > 3.0 && w[1].hi < 3.8, "{}", w[1].hi);
    }

    /// A staff phone of fingerprint 9 that draws a new address, and so a new link, every 3 min
    /// (its chains broken), heard for a minute each, from `from_min` to `to_min`, at `rssi`.
    fn staff(from_min: i64, to_min: i64, rssi: i8) -> Vec<Sensed> {
        (from_min / 3..to_min / 3)
            .map(|k| Sensed {
                fingerprint: 9,
                ..s(
                    1000 + k as u64,
                    false,
                    5000 + k as u64,
                    3 * k,
                    3 * k + 1,
                    rssi,
                )
            })
            .collect()
    }

    #[test]
    fn a_phone_of_one_model_in_the_room_for_hours_makes_a_run_though_its_links_broke() {
        // Five hours; and a visitor of another model at 2:00-2:10.
        let mut v = staff(0, 300, -50);
        let visitor = s(1, false, 7, 120, 130, -50);
        v.push(visitor);
        let fixed = fixtures(&v, FIXTURE_HOURS);
        assert!(v[..100]
            .iter()
            .all(|s| fixed.run_of(s) == fixed.run_of(&v[0])));
        assert!(fixed.run_of(&v[0]).is_some());
        assert_eq!(fixed.run_of(&visitor), None);
        // A run is not a fixture by key: the occupancy counts what it holds.
        assert!(v.iter().all(|s| fixed.fixture_of(s).is_none()));
        // Whatever the order they come in, one sighting at a time.
        let mut f = Fixtures::new(FIXTURE_HOURS);
        for s in v.iter().rev() {
            f.add(s);
        }
        assert_eq!(f.fixed, fixed);
        // Three hours is not a run; nor five with a 20-min silence in the middle; nor five
        // outside the room (a phone next door, at -80 dBm).
        assert_eq!(
            fixtures(&staff(0, 180, -50), FIXTURE_HOURS),
            Fixed::default()
        );
        let mut gap = staff(0, 140, -50);
        gap.extend(staff(160, 300, -50));
        assert_eq!(fixtures(&gap, FIXTURE_HOURS), Fixed::default());
        assert_eq!(
            fixtures(&staff(0, 300, -80), FIXTURE_HOURS),
            Fixed::default()
        );
    }

    #[test]
    fn a_run_that_grows_changes_what_ends_after_its_old_end() {
        let mut f = Fixtures::new(FIXTURE_HOURS);
        for s in staff(0, 300, -50) {
            f.add(&s);
        }
        // 5:00-5:01 extends the run at its end: sightings ending after 5:00 (the run's old
        // end, slot-aligned) may be the run's now, from the longest sighting (1 min) before
        // it.
        let next = staff(300, 303, -50)[0];
        assert_eq!(f.add(&next).runs, Some(T0 + 299 * MIN));
        // A sighting in slots already heard changes nothing.
        assert_eq!(f.add(&staff(3, 6, -50)[0]), Changed::default());
    }

    #[test]
    fn chains_sharing_an_address_are_one_device_and_unlinked_addresses_are_flagged() {
        let v = [
            // Two sensors' chains of one phone: they share address 2.
            s(1, false, 100, 0, 0, -50),
            s(2, false, 100, 5, 5, -50),
            s(2, false, 200, 5, 6, -50),
            s(3, false, 200, 10, 10, -50),
            // A version 1 agent's sightings: two addresses, two devices, flagged.
            s(30, false, 0, 0, 0, -50),
            s(31, false, 0, 4, 4, -50),
        ];
        let w = estimate(&v, 15 * MIN, &Calibration::uncalibrated());
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // The phone from 0 to 10 min, 2 min either side, clipped to the window: 12 min; the
        // two unlinked addresses 2 min and 4 min each.
        assert!(
            close(w[0].randomized, (12.0 + 2.0 + 4.0) / 15.0),
            "{:?}",
            w[0]
        );
        assert!(close(w[0].unlinked, 6.0 / 15.0), "{:?}", w[0]);
        let mut reversed = v;
        reversed.reverse();
        let r = estimate(&reversed, 15 * MIN, &Calibration::uncalibrated());
        assert_eq!(r, w, "joined whatever the order");
    }

    #[test]
    fn a_join_says_from_when_the_identities_changed_and_a_day_keeps_its_own() {
        let mut ids = Identities::default();
        // Three chains of one phone, each a few sightings: 300 from 40 min, 200 from 20 min,
        // 100 from 0 min; nothing joins them until an address turns up in two of them.
        for x in [
            s(1, false, 300, 40, 41, -50),
            s(2, false, 200, 20, 21, -50),
            s(3, false, 200, 25, 26, -50),
            s(4, false, 100, 0, 1, -50),
        ] {
            assert_eq!(ids.add(&x), None);
        }
        let chain = |ids: &Identities, link, min| ids.identity(&s(99, false, link, min, min, -50));
        assert_ne!(chain(&ids, 300, 40), chain(&ids, 200, 20));
        // Address 3 again, in chain 300: 200 and 300 are one device from 20 min on.
        assert_eq!(ids.add(&s(3, false, 300, 45, 45, -50)), Some(T0 + 20 * MIN));
        assert_eq!(chain(&ids, 300, 40), Identity::Linked(200));
        assert_eq!(chain(&ids, 200, 20), Identity::Linked(200));
        // Address 4 in chain 300: all three, from the first sighting of any (0 min).
        assert_eq!(ids.add(&s(4, false, 300, 50, 50, -50)), Some(T0));
        assert_eq!(chain(&ids, 300, 40), Identity::Linked(100));
        assert_eq!(
            ids.add(&s(4, false, 300, 51, 51, -50)),
            None,
            "joined already"
        );
        // The same address and links the next day are another day's: not joined.
        let day = 24 * 60;
        assert_eq!(ids.add(&s(7, false, 500, day, day, -50)), None);
        assert_eq!(
            ids.add(&s(7, false, 600, day + 5, day + 5, -50)),
            Some(T0 + day * MIN)
        );
        assert_eq!(ids.add(&s(4, false, 700, day + 9, day + 9, -50)), None);
        assert_eq!(chain(&ids, 700, day), Identity::Linked(700));
        ids.keep_from((T0 + day * MIN).div_euclid(DAY_MS));
        assert_eq!(chain(&ids, 300, 40), Identity::Linked(300), "forgotten");
        assert_eq!(chain(&ids, 600, day), Identity::Linked(500));
    }

    #[test]
    fn a_silent_phone_stays_present_for_up_to_half_an_hour() {
        let v = [
            // Probes at 0 and 25 min: present throughout.
            s(1, true, 1, 0, 0, -50),
            s(1, true, 1, 25, 25, -50),
            // Probes at 60 and 100 min: two stays, gone between 62 and 98.
            s(2, true, 1, 60, 60, -50),
            s(2, true, 1, 100, 100, -50),
        ];
        let w = estimate(&v, 15 * MIN, &Calibration::uncalibrated());
        // 0-15: device 1 throughout; 15-30: until 27 min (its last probe and 2 min).
        assert_eq!(w[0].people, 1.0, "{:?}", w[0]);
        assert!((w[1].people - 0.8).abs() < 1e-9, "{:?}", w[1]);
        // 75-90: nobody (device 2 left at 62 min and came back at 98).
        assert_eq!(w[5].people, 0.0, "{:?}", w[5]);
    }

    #[test]
    fn the_order_of_sightings_does_not_matter() {
        let v: Vec<Sensed> = (0..40)
            .map(|i: i64| {
                s(
                    i as u64,
                    i % 3 == 0,
                    (i % 5) as u64,
                    i,
                    i + 2,
                    -40 - (i as i8),
                )
            })
            .collect();
        let mut r = v.clone();
        r.reverse();
        let cal = Calibration::uncalibrated();
        assert_eq!(estimate(&v, 5 * MIN, &cal), estimate(&r, 5 * MIN, &cal));
    }

    #[test]
    fn a_fit_recovers_the_floor_and_scale_of_a_known_room() {
        // Every other window (w = 0, 2, 4, ...) has w / 2 + 1 people in the room, each
        // heard from 2 to 13 min into it at -50 dBm (present, with the 2 min either side, for
        // the whole window) with a phone of its own model, and 5 devices in the corridor at
        // -80 dBm. Half of the people's phones probe: people = 2 x devices, floor between -80
        // and -50.
        let mut v = Vec::new();
        let mut truth = BTreeMap::new();
        let mut id = 0;
        for k in 0..8i64 {
            let m = 30 * k;
            truth.insert(T0 + m * MIN, 2.0 * (k as f64 + 1.0));
            for p in 0..=k {
                id += 1;
                v.push(s(id, false, (k * 100 + p) as u64, m + 2, m + 13, -50));
            }
            for c in 0..5 {
                id += 1;
                v.push(s(
                    id,
                    false,
                    (10_000 + k * 100 + c) as u64,
                    m + 2,
                    m + 13,
                    -80,
                ));
            }
        }
        let cal = fit(&[(&v, &truth)], 15 * MIN).expect("fits");
        assert!(cal.rssi_min_dbm > -80 && cal.rssi_min_dbm <= -50, "{cal:?}");
        assert_eq!(cal.people_per_device, 2.0);
        // Nobody stays for hours: every fixture rule fits as well, and the default is kept.
        assert_eq!(cal.fixture_hours, FIXTURE_HOURS);
        assert_eq!(cal.fitted.as_ref().map(|f| f.mae), Some(0.0));
        let w = estimate(&v, 15 * MIN, &cal);
        assert_eq!(w[6].people, 8.0); // 90 min in: 4 phones, 8 people
        assert_eq!(w[7].people, 0.0);
        // Nothing in common with the truth: refused, with the reason.
        let later: BTreeMap<i64, f64> = [(T0 + 100 * DAY_MS, 3.0)].into();
        assert!(matches!(
            fit(&[(&v, &later)], 15 * MIN),
            Err(FitError::NoOverlap)
        ));
    }

    #[test]
    fn a_fit_keeps_a_class_that_stays_for_hours_and_the_pc_that_stays_all_day_apart() {
        // Six people in a 5-hour class (8:00-13:00), each with a laptop (global) and a
        // phone (randomized, one link), heard every 10 min; a PC heard all day. Labelled:
        // the class's windows (6 people) and an hour either side (nobody).
        let mut v = Vec::new();
        for p in 0..6u64 {
            for k in 0..30 {
                v.push(s(100 + p, true, 100 + p, 10 * k, 10 * k + 1, -50));
                v.push(s(
                    1000 + 30 * p + k as u64,
                    false,
                    200 + p,
                    10 * k,
                    10 * k,
                    -50,
                ));
            }
        }
        for h in 0..24 {
            v.push(s(
                900,
                true,
                900,
                h * 60 - 8 * 60,
                h * 60 - 8 * 60 + 50,
                -40,
            ));
        }
        let window = |k: i64| T0 + k * 15 * MIN;
        let truth: BTreeMap<i64, f64> = (0..19)
            .map(|k| (window(k), 6.0))
            .chain((-8..-1).chain(21..28).map(|k| (window(k), 0.0)))
            .collect();
        // The default takes the class's devices for fixtures (heard in 5 hours of the day).
        let default = estimate(&v, 15 * MIN, &Calibration::uncalibrated());
        assert!(default.iter().all(|w| w.people == 0.0), "{default:?}");
        // The fit finds the shortest rule that keeps them (6 hours), two devices a person.
        let cal = fit(&[(&v, &truth)], 15 * MIN).expect("fits");
        assert_eq!(
            (cal.fixture_hours, cal.people_per_device),
            (6, 0.5),
            "{cal:?}"
        );
        assert_eq!(cal.fitted.as_ref().map(|f| f.mae), Some(0.0));
        let w = estimate(&v, 15 * MIN, &cal);
        let at = |k: i64| w.iter().find(|x| x.start_ms == window(k)).expect("window");
        assert_eq!((at(4).people, at(4).fixtures), (6.0, 1));
        assert_eq!((at(-4).people, at(-4).fixtures), (0.0, 1));
    }

    #[test]
    fn devices_all_below_the_floor_make_empty_windows() {
        // Only the corridor's devices: no stay, no fixture, so no window reached.
        let v = vec![s(11, true, 2, 5, 5, -85), s(12, false, 3, 20, 21, -80)];
        let w = estimate(&v, 15 * MIN, &Calibration::uncalibrated());
        assert_eq!(w.len(), 2);
        assert!(
            w.iter().all(|x| x.people == 0.0 && x.fixtures == 0),
            "{w:?}"
        );
    }

    #[test]
    fn a_bad_calibration_file_names_its_field() {
        let mut c = Calibration::uncalibrated();
        c.people_per_device = -1.0;
        assert!(c
            .validate()
            .expect_err("refused")
            .starts_with("people_per_device"));
        c = Calibration::uncalibrated();
        c.rssi_min_dbm = 5;
        assert!(c
            .validate()
            .expect_err("refused")
            .starts_with("rssi_min_dbm"));
        for hours in [0, 25] {
            c = Calibration::uncalibrated();
            c.fixture_hours = hours;
            assert!(c
                .validate()
                .expect_err("refused")
                .starts_with("fixture_hours"));
        }
    }
}
