//! Site visits: a site's sensors' sightings of one device merged into stays, each classified
//! as a passer-by or a visitor by the site's thresholds.
//!
//! A stay is a connected run of the device's sightings at the site: two sightings belong to
//! the same stay when the gap between them is at most the site kind's gap (stores 10 min,
//! boards 30 min, the pass gap of ATTRIBUTION.md). At a board, sightings at or above the
//! board's RSSI threshold (in view) and those below it chain separately: the in-view stays
//! are ATTRIBUTION.md's passes. The merge is a join in a lattice (first =
//! min, last = max, RSSI = max, sightings = set union), so it does not depend on the order
//! sightings arrive in, and a duplicate, a redelivery, a spool replay or an interim update
//! followed by its final version changes nothing it should not.
//!
//! A stay is written when it is closed (the watermark has passed its end by more than the
//! gap) and has changed since it was last written. A visit's identity is (site, day, device,
//! visit_id), with visit_id derived from the device and the start, so late data that extends
//! a written visit writes a new version of it, and data that moves its start or joins two
//! visits retracts the old identities (a row with `retracted = 1`).
//!
//! State is kept for `horizon` of event time behind the watermark. A sighting that ends
//! before that floor is too late to merge safely: it is counted and left out of the visits
//! (it is in the sightings table all the same). Its site's stays around it are rebuilt from
//! the table later (`stream::recompute`): those records, marked reopened, are merged whatever
//! the floor, and the stays they make behind it are forgotten once they are written and every
//! record of their recompute has come.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use smallvec::{smallvec, SmallVec};

use crate::ch::rows::{day_of, fnv64, SightingRow, VisitRow, PASSER_BY, VISITOR};
use crate::counting::Calibration;

/// A sighting as the stream stage needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub site: Arc<str>,
    pub device: u64,
    /// The sensor's link (0: none, from a version 1 agent).
    pub link: u64,
    pub epoch: u32,
    pub class: i8,
    pub fingerprint: u32,
    pub first_ms: i64,
    pub last_ms: i64,
    pub rssi_max: i8,
    /// false for an interim update of a sighting still open.
    pub is_final: bool,
    /// Identifies the sighting (its sensor and start) among its versions: an interim update
    /// and the final sighting share it.
    pub key: u64,
    /// Read back at start-up within a gap of the recovery floor: the stay it joins may have
    /// begun before the floor, so it is not written again.
    pub tainted: bool,
    /// Not a sighting but a visit read back from the table at start-up: its identity, so
    /// the stay it now belongs to retracts it if its own identity differs. Its interval is
    /// a union of sightings read back too, so it joins that stay and changes nothing else.
    pub written: Option<(u16, u64)>,
    /// Read back from the table after sightings came behind the horizon: merged whatever
    /// the floor, so the stays around them are rebuilt whole and written again
    /// (`stream::recompute`). A recompute's records are fed together, at one time of the
    /// stage's input.
    pub reopened: bool,
    /// When the collector received it (the table's `received_ms`); `i64::MAX` when read
    /// back from the table, as it is not new. A sighting too late for the state keeps the
    /// checkpoint's `settled_ms` behind this until its visits are recomputed.
    pub received_ms: i64,
}

impl Seen {
    pub fn new(row: &SightingRow, tainted: bool) -> Seen {
        Seen {
            site: row.site.clone(),
            device: row.device,
            link: row.link,
            epoch: row.epoch,
            class: row.class,
            fingerprint: row.fingerprint,
            first_ms: row.first_ms,
            last_ms: row.last_ms,
            rssi_max: row.rssi_max,
            is_final: row.r#final != 0,
            key: sighting_key(&row.sensor, row.first_ms),
            tainted,
            written: None,
            reopened: false,
            received_ms: row.received_ms,
        }
    }
}

/// A sighting's identity across its versions: its sensor and its start.
pub fn sighting_key(sensor: &str, first_ms: i64) -> u64 {
    fnv64(&[sensor.as_bytes(), &first_ms.to_le_bytes()])
}

/// What the inventory says about a site (table `sites`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiteRule {
    pub board: bool,
    pub rssi_threshold_dbm: i8,
    pub min_dwell_secs: u32,
    /// Opening hours, local time in `tz`: a visitor's stay starts in [open_hour, close_hour).
    pub open_hour: u8,
    pub close_hour: u8,
    pub tz: chrono_tz::Tz,
    /// The share of its visitors whose devices the site's sensors hear, if measured (a
    /// manual count at install): traffic in people is divided by it.
    pub capture_rate: Option<f32>,
}

impl SiteRule {
    /// Whether a sighting chains with the site's in-view ones (always, at a store).
    fn in_view(self, rssi_max: i8) -> bool {
        !self.board || rssi_max >= self.rssi_threshold_dbm
    }

    /// Whether a stay (of one in-view unit) is a visit: it starts within opening hours,
    /// lasts the minimum dwell, and its strongest frame reaches the threshold.
    pub fn visitor(self, first_ms: i64, dwell_ms: i64, rssi_max: i8) -> bool {
        let hour = local_hour(first_ms, self.tz);
        dwell_ms >= i64::from(self.min_dwell_secs) * 1000
            && rssi_max >= self.rssi_threshold_dbm
            && (u32::from(self.open_hour)..u32::from(self.close_hour)).contains(&hour)
    }
}

/// The rules of every site, with the defaults for a site not (yet) in the inventory.
#[derive(Clone, Debug)]
pub struct Rules {
    pub sites: FxHashMap<String, SiteRule>,
    pub default: SiteRule,
    /// Sites' counting calibrations (the rest are estimated uncalibrated).
    pub calibrations: FxHashMap<String, Calibration>,
    pub store_gap_ms: i64,
    pub board_gap_ms: i64,
    /// Devices (units) a site's state may hold: past it a new device's sightings are
    /// refused by the stage, counted, and kept in `sightings` (a flood of made-up keys
    /// cannot grow the state without bound, nor push real devices out).
    pub max_devices_per_site: usize,
    /// Which read of the inventory these are (each read counts one more): what the stages
    /// keep of a site's rule stands until it changes.
    pub generation: u64,
}

impl Rules {
    pub fn site(&self, site: &str) -> SiteRule {
        self.sites.get(site).copied().unwrap_or(self.default)
    }

    /// The site's counting calibration, or the uncalibrated default.
    pub fn calibration(&self, site: &str) -> Calibration {
        self.calibrations
            .get(site)
            .cloned()
            .unwrap_or_else(Calibration::uncalibrated)
    }

    /// How far apart two sightings of one stay may be at a site of this rule.
    pub fn gap_ms(&self, rule: SiteRule) -> i64 {
        if rule.board {
            self.board_gap_ms
        } else {
            self.store_gap_ms
        }
    }
}

/// What a stage keeps of a site's rule, found again only when the rules are read again.
/// (Looked up by the site's name at each emit, the rules took 2.8 % of the stages bench's
/// samples at city scale: benches/README.md, run 35.)
pub(crate) struct ByRules<T>(Option<(u64, T)>);

impl<T> Default for ByRules<T> {
    fn default() -> Self {
        ByRules(None)
    }
}

impl<T> ByRules<T> {
    /// The value under `rules`: the one kept, or `of(rules)` if they were read again since.
    pub(crate) fn get(&mut self, rules: &Rules, of: impl FnOnce(&Rules) -> T) -> &T {
        if self.0.as_ref().is_none_or(|(g, _)| *g != rules.generation) {
            self.0 = Some((rules.generation, of(rules)));
        }
        &self.0.as_ref().expect("just kept").1
    }
}

/// What chains: a device's sightings, in view of a board or not (always in view at a store).
type Unit = (u64, bool);

/// The identity of a written visit: (day, visit_id); site and device are the stay's own.
type Written = (u16, u64);

#[derive(Clone, Debug)]
struct Stay {
    first_ms: i64,
    last_ms: i64,
    rssi_max: i8,
    /// Epoch, class and fingerprint of the earliest sighting (ties: the smallest
    /// fingerprint), so the result does not depend on arrival order.
    epoch: u32,
    class: i8,
    fingerprint: u32,
    /// Sorted, distinct sighting keys. (Inline while few: a stay is one allocation less,
    /// and one pointer less to follow.)
    sightings: SmallVec<[u64; 2]>,
    /// Identities written for this stay or the stays merged into it.
    written: SmallVec<[Written; 1]>,
    dirty: bool,
    taint: Taint,
}

/// Whether a stay may reach beyond the sightings read back (its start before the range
/// read): then it is state only, not written. A recompute's records were read over a range
/// of their own, which holds every sighting of the stay that the records read back at
/// start-up hold, or else one of its own tainted ones (the stay is connected): where a
/// stay has a recompute's records, their taint is the stay's.
#[derive(Clone, Copy, Debug)]
struct Taint {
    read_back: bool,
    reread: Option<bool>,
}

impl Taint {
    fn of(s: &Seen) -> Taint {
        if s.reopened {
            Taint {
                read_back: false,
                reread: Some(s.tainted),
            }
        } else {
            Taint {
                read_back: s.tainted,
                reread: None,
            }
        }
    }

    fn join(self, o: Taint) -> Taint {
        Taint {
            read_back: self.read_back | o.read_back,
            reread: match (self.reread, o.reread) {
                (Some(a), Some(b)) => Some(a | b),
                (a, b) => a.or(b),
            },
        }
    }

    fn is_tainted(self) -> bool {
        self.reread.unwrap_or(self.read_back)
    }
}

impl Stay {
    fn of(s: &Seen) -> Stay {
        let (sightings, written) = match s.written {
            Some(id) => (SmallVec::new(), smallvec![id]),
            None => (smallvec![s.key], SmallVec::new()),
        };
        Stay {
            first_ms: s.first_ms,
            last_ms: s.last_ms.max(s.first_ms),
            rssi_max: s.rssi_max,
            epoch: s.epoch,
            class: s.class,
            fingerprint: s.fingerprint,
            sightings,
            written,
            dirty: true,
            taint: Taint::of(s),
        }
    }

    fn joins(&self, s: &Stay, gap_ms: i64) -> bool {
        self.reaches(s.first_ms, s.last_ms, gap_ms)
    }

    /// Whether `[first_ms, last_ms]` lies within `gap_ms` of this stay.
    fn reaches(&self, first_ms: i64, last_ms: i64, gap_ms: i64) -> bool {
        self.first_ms <= last_ms + gap_ms && first_ms <= self.last_ms + gap_ms
    }

    /// `absorb(Stay::of(s))` without building the stay: most sightings extend a stay.
    fn add(&mut self, s: &Seen) {
        if (s.first_ms, s.fingerprint) < (self.first_ms, self.fingerprint) {
            (self.epoch, self.class, self.fingerprint) = (s.epoch, s.class, s.fingerprint);
        }
        self.first_ms = self.first_ms.min(s.first_ms);
        self.last_ms = self.last_ms.max(s.last_ms.max(s.first_ms));
        self.rssi_max = self.rssi_max.max(s.rssi_max);
        match s.written {
            Some(id) => self.written.push(id),
            None => {
                if let Err(at) = self.sightings.binary_search(&s.key) {
                    self.sightings.insert(at, s.key);
                }
            }
        }
        self.taint = self.taint.join(Taint::of(s));
        self.dirty = true;
    }

    fn absorb(&mut self, o: Stay) {
        if (o.first_ms, o.fingerprint) < (self.first_ms, self.fingerprint) {
            (self.epoch, self.class, self.fingerprint) = (o.epoch, o.class, o.fingerprint);
        }
        self.first_ms = self.first_ms.min(o.first_ms);
        self.last_ms = self.last_ms.max(o.last_ms);
        self.rssi_max = self.rssi_max.max(o.rssi_max);
        self.sightings.extend(o.sightings);
        self.sightings.sort_unstable();
        self.sightings.dedup();
        self.written.extend(o.written);
        self.taint = self.taint.join(o.taint);
        self.dirty = true;
    }

    fn identity(&self, (device, in_view): Unit) -> Written {
        let view: &[u8] = if in_view { &[] } else { &[0] };
        let id = fnv64(&[&device.to_le_bytes(), view, &self.first_ms.to_le_bytes()]);
        (day_of(self.first_ms), id)
    }
}

/// A unit's stays, in start order, none joining another.
#[derive(Default)]
struct Stays {
    /// Inline: most units hold one stay.
    list: SmallVec<[Stay; 1]>,
    /// The time of the unit's live entry in [`Visits::due`]: no later than the close of any
    /// changed stay.
    due: Option<i64>,
    /// Whether the unit is in [`Visits::expiry`].
    expiring: bool,
}

impl Stays {
    /// Drops the written stays that no sighting at or above `floor_ms` can join; returns how
    /// many.
    fn drop_behind(&mut self, floor_ms: i64, gap: i64) -> usize {
        let before = self.list.len();
        self.list.retain(|s| s.dirty || s.last_ms + gap >= floor_ms);
        before - self.list.len()
    }

    /// Asks to be looked at by `at`: pushes an entry unless an earlier one is queued.
    fn call_by(&mut self, at: i64, site: u32, unit: Unit, queue: &mut Queue) {
        if self.due.is_none_or(|d| at < d) {
            self.due = Some(at);
            queue.push((at, site, unit.0, unit.1));
        }
    }

    /// Joins the expiry queue, unless in it already, at the time the earliest written stay
    /// falls behind the horizon (if any is held).
    fn expire(&mut self, gap: i64, horizon_ms: i64, site: u32, unit: Unit, expiry: &mut Expiry) {
        if self.expiring {
            return;
        }
        let earliest = self
            .list
            .iter()
            .filter(|s| !s.dirty)
            .map(|s| s.last_ms + gap + horizon_ms)
            .min();
        if let Some(at) = earliest {
            self.expiring = true;
            expiry.push_back((at, site, unit.0, unit.1));
        }
    }
}

/// An entry of the [`Queue`]: (due, site, device, in view).
type Due = (i64, u32, u64, bool);

/// Units by the time a changed stay of theirs closes; an entry whose time is not its unit's
/// `due` any more was superseded by an earlier one, and is skipped.
///
/// In slots of [`SLOT_MS`] of due time, not a heap: the watermark moves in buckets of a
/// minute (`visits.bucket_secs`), so an emit takes whole slots at once, each a run of
/// memory, where a heap of millions of units paid a cache miss per level of each pop; and
/// with its units in hand, the emit looks them up a chunk at a time ([`warm`]). The entries
/// an emit takes are sorted, so the units are looked at in the order a heap gave them, and
/// the rows come out as they did.
#[derive(Default)]
struct Queue {
    slots: BTreeMap<i64, Vec<Due>>,
}

/// The due time a [`Queue`] slot spans, ms.
const SLOT_MS: i64 = 60_000;

impl Queue {
    fn push(&mut self, e: Due) {
        self.slots
            .entry(e.0.div_euclid(SLOT_MS))
            .or_default()
            .push(e);
    }

    /// Moves the entries due before `watermark_ms` (all of them at `None`) into `out`, in
    /// order.
    fn take_due(&mut self, watermark_ms: Option<i64>, out: &mut Vec<Due>) {
        while let Some(mut slot) = self.slots.first_entry() {
            let start = *slot.key() * SLOT_MS;
            match watermark_ms {
                Some(w) if start >= w => break,
                Some(w) if start + SLOT_MS > w => {
                    // The watermark within the slot: take its part before it.
                    slot.get_mut().retain(|&e| {
                        e.0 >= w || {
                            out.push(e);
                            false
                        }
                    });
                    if slot.get().is_empty() {
                        slot.remove();
                    }
                    break;
                }
                _ => out.append(&mut slot.remove()),
            }
        }
        out.sort_unstable();
    }
}

/// Units holding written stays, by when the earliest falls behind the horizon.
type Expiry = VecDeque<Due>;

/// One site's state. Its units hash with foldhash, seeded per process (hashbrown's default):
/// device keys come from sensors, and a stolen sensor can publish made-up ones, so the
/// hash must not be predictable (SipHash cost a tenth of the stage; foldhash's cost against
/// the FxHash it replaced is not measured yet).
#[derive(Default)]
struct Site {
    name: Arc<str>,
    units: hashbrown::HashMap<Unit, Stays>,
    /// Its rule and gap.
    rule: ByRules<(SiteRule, i64)>,
}

impl Site {
    /// Its rule and gap under `rules`.
    fn rule(&mut self, rules: &Rules) -> (SiteRule, i64) {
        let name = &self.name;
        *self.rule.get(rules, |rules| {
            let rule = rules.site(name);
            (rule, rules.gap_ms(rule))
        })
    }
}

/// The visits of the sites one worker owns.
#[derive(Default)]
pub struct Visits {
    sites: Vec<Site>,
    site_ids: FxHashMap<Arc<str>, u32>,
    /// Units by when a changed stay closes (the watermark passes its end by the gap). One
    /// entry per unit, not per sighting: a stay that grew is queued again when its entry
    /// comes up.
    due: Queue,
    /// Units holding written stays, by when the earliest falls behind the horizon, in the
    /// order they were written: about the order of those times, so a queue, not a heap (a
    /// unit behind a later one is forgotten a little later).
    expiry: Expiry,
    /// The entries an emit takes from `due` (kept for its allocation).
    taken: Vec<Due>,
    /// Units whose stays behind the floor reopened records changed, with the time of the
    /// stage's input they were fed at, in that order: once the frontier is past it, every
    /// record fed with them has come, and those stays, written, are forgotten (the
    /// horizon's wait in `expiry` is for sightings yet to come, and none can join them).
    reopened: VecDeque<(u64, u32, Unit)>,
    /// Sightings ending before this are too late (event time, ms).
    floor_ms: i64,
    /// Counters for the metrics.
    pub too_late: u64,
    /// Sightings of new devices refused at a full site (`max_devices_per_site`).
    pub refused: u64,
    /// Stays held.
    held: usize,
    last_version: u64,
}

impl Visits {
    /// Stays of sightings that end at or after `floor_ms`: after a restart, the floor of
    /// the stays read back, so data behind it waits for a recompute from the start, as it
    /// will once the watermark is known (`i64::MIN`: none).
    pub fn new(floor_ms: i64) -> Visits {
        Visits {
            floor_ms,
            ..Visits::default()
        }
    }

    /// Merges a sighting, fed at time `fed` of the stage's input, into its device's stays.
    /// Returns false if it is too late. At a board, an interim update below the threshold is
    /// left for its final version.
    pub fn insert(&mut self, s: &Seen, rules: &Rules, fed: u64) -> bool {
        let site = self.site_id(&s.site);
        self.insert_of(s, site, rules, fed)
    }

    /// The id of the site named `name`: a new one if it has none yet.
    fn site_id(&mut self, name: &Arc<str>) -> u32 {
        if let Some(&id) = self.site_ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.sites.len()).expect("fewer than 2^32 sites");
        self.site_ids.insert(name.clone(), id);
        self.sites.push(Site {
            name: name.clone(),
            units: hashbrown::HashMap::default(),
            rule: ByRules::default(),
        });
        id
    }

    /// [`Visits::insert`] at the site of id `site`.
    fn insert_of(&mut self, s: &Seen, site: u32, rules: &Rules, fed: u64) -> bool {
        if s.last_ms < self.floor_ms && !s.reopened {
            self.too_late += 1;
            return false;
        }
        let (rule, gap) = self.sites[site as usize].rule(rules);
        let unit = (s.device, rule.in_view(s.rssi_max));
        if !unit.1 && !s.is_final {
            // Out of view so far: the final version may come into view, so wait for it.
            return true;
        }
        let units = &mut self.sites[site as usize].units;
        if units.len() >= rules.max_devices_per_site && !units.contains_key(&unit) {
            self.refused += 1;
            return true;
        }
        let unit_stays = units.entry(unit).or_default();
        let stays = &mut unit_stays.list;
        let covered = |x: &Stay| {
            x.first_ms <= s.first_ms
                && x.last_ms >= s.last_ms
                && x.rssi_max >= s.rssi_max
                && x.sightings.binary_search(&s.key).is_ok()
        };
        if s.written.is_none() && stays.iter().any(covered) {
            // A duplicate, or an earlier version of a sighting already merged.
            return true;
        }
        let last = s.last_ms.max(s.first_ms);
        let merged = match stays.iter().position(|x| x.reaches(s.first_ms, last, gap)) {
            None => {
                self.held += 1;
                Stay::of(s)
            }
            Some(i) => {
                // Grown, the stay may now reach its neighbours: merge them in.
                let mut grown = stays.remove(i);
                grown.add(s);
                while let Some(j) = stays.iter().position(|x| x.joins(&grown, gap)) {
                    grown.absorb(stays.remove(j));
                    self.held -= 1;
                }
                grown
            }
        };
        let close_at = merged.last_ms + gap;
        let at = stays.partition_point(|x| x.first_ms < merged.first_ms);
        stays.insert(at, merged);
        unit_stays.call_by(close_at, site, unit, &mut self.due);
        if s.reopened && last < self.floor_ms && self.reopened.back() != Some(&(fed, site, unit)) {
            self.reopened.push_back((fed, site, unit));
        }
        true
    }

    /// [`Visits::insert`] for each of a batch of sightings, fed at time `fed`; `too_late` is
    /// given those too late. The units of each chunk of the batch are looked up together
    /// first ([`warm`]), so that their cache misses overlap: one at a time, each insert
    /// waited for its unit's entry, a random place in a table of millions.
    pub fn insert_all<'a>(
        &mut self,
        batch: &'a [Seen],
        rules: &Rules,
        fed: u64,
        mut too_late: impl FnMut(&'a Seen),
    ) {
        let (mut sites, mut units) = (Vec::with_capacity(WARM), Vec::with_capacity(WARM));
        for chunk in batch.chunks(WARM) {
            sites.clear();
            sites.extend(per_site_run(chunk, |name| {
                let id = self.site_id(name);
                (id, self.sites[id as usize].rule(rules).0)
            }));
            units.clear();
            units.extend(
                (chunk.iter().zip(&sites))
                    .map(|(s, &(id, rule))| (0, id, s.device, rule.in_view(s.rssi_max))),
            );
            warm(&self.sites, &units);
            for (s, &(site, _)) in chunk.iter().zip(&sites) {
                if !self.insert_of(s, site, rules, fed) {
                    too_late(s);
                }
            }
        }
    }

    /// Writes the changed stays that are closed at `watermark_ms` (all of them at `None`,
    /// when the input has ended), and forgets the written ones older than `horizon_ms` behind
    /// the watermark. The work is per unit that needs it, not a scan of the state.
    pub fn emit(
        &mut self,
        watermark_ms: Option<i64>,
        horizon_ms: i64,
        rules: &Rules,
        now_us: u64,
        out: &mut Vec<VisitRow>,
    ) {
        let mut taken = std::mem::take(&mut self.taken);
        self.due.take_due(watermark_ms, &mut taken);
        for (i, &(due, site, device, view)) in taken.iter().enumerate() {
            if i % WARM == 0 {
                warm(&self.sites, &taken[i..(i + WARM).min(taken.len())]);
            }
            let unit = (device, view);
            let at = &mut self.sites[site as usize];
            let (rule, gap) = at.rule(rules);
            let Site { name, units, .. } = at;
            let Some(stays) = units.get_mut(&unit) else {
                continue;
            };
            if stays.due != Some(due) {
                continue;
            }
            stays.due = None;
            let mut open = None::<i64>;
            for stay in stays.list.iter_mut().filter(|s| s.dirty) {
                let close = stay.last_ms + gap;
                if watermark_ms.is_some_and(|w| close >= w) {
                    open = Some(open.map_or(close, |o| o.min(close)));
                    continue;
                }
                stay.dirty = false;
                if stay.taint.is_tainted() {
                    // Perhaps only the end of a stay: its identity cannot be known.
                    continue;
                }
                let id = stay.identity(unit);
                for &old in &stay.written {
                    if old != id {
                        let version = next_version(&mut self.last_version, now_us);
                        out.push(row(name, unit, old, stay, rule, 1, version));
                    }
                }
                stay.written.clear();
                stay.written.push(id);
                let version = next_version(&mut self.last_version, now_us);
                out.push(row(name, unit, id, stay, rule, 0, version));
            }
            if let Some(close) = open {
                stays.call_by(close, site, unit, &mut self.due);
            }
            stays.expire(gap, horizon_ms, site, unit, &mut self.expiry);
        }
        taken.clear();
        self.taken = taken;
        if let Some(w) = watermark_ms {
            self.floor_ms = self.floor_ms.max(w - horizon_ms);
            self.forget(horizon_ms, rules);
        }
    }

    /// Forgets the written stays behind the floor of the units reopened records changed,
    /// once the stage's `frontier` is past the time the records were fed at (after the
    /// [`Visits::emit`] that wrote them).
    pub fn release(&mut self, frontier: u64, rules: &Rules) {
        while let Some(&(fed, site, unit)) = self.reopened.front() {
            if fed >= frontier {
                break;
            }
            self.reopened.pop_front();
            let at = &mut self.sites[site as usize];
            let (_, gap) = at.rule(rules);
            let Some(stays) = at.units.get_mut(&unit) else {
                continue;
            };
            self.held -= stays.drop_behind(self.floor_ms, gap);
            if stays.list.is_empty() {
                at.units.remove(&unit);
            }
        }
    }

    /// Forgets the written stays that no sighting at or above the floor can join.
    fn forget(&mut self, horizon_ms: i64, rules: &Rules) {
        let floor_ms = self.floor_ms;
        let mut n = 0;
        while let Some(&(at, site, device, view)) = self.expiry.front() {
            if at - horizon_ms >= floor_ms {
                break;
            }
            if n % WARM == 0 {
                let next = self.expiry.as_slices().0;
                warm(&self.sites, &next[..next.len().min(WARM)]);
            }
            n += 1;
            self.expiry.pop_front();
            let unit = (device, view);
            let at = &mut self.sites[site as usize];
            let (_, gap) = at.rule(rules);
            let Some(stays) = at.units.get_mut(&unit) else {
                continue;
            };
            stays.expiring = false;
            self.held -= stays.drop_behind(floor_ms, gap);
            if stays.list.is_empty() {
                at.units.remove(&unit);
            } else {
                stays.expire(gap, horizon_ms, site, unit, &mut self.expiry);
            }
        }
    }

    /// Stays held, for the metrics.
    pub fn stays(&self) -> usize {
        self.held
    }
}

/// `of(site)` for each of `chunk`'s sightings, called once for each run of one site's: a
/// batch is a few messages, each of one site.
pub(crate) fn per_site_run<'a, T: Copy, F: FnMut(&'a Arc<str>) -> T>(
    chunk: &'a [Seen],
    mut of: F,
) -> impl Iterator<Item = T> + use<'a, T, F> {
    let mut last: Option<(&Arc<str>, T)> = None;
    chunk.iter().map(move |s| match last {
        // A message's sightings share their site's name.
        Some((name, t)) if Arc::ptr_eq(name, &s.site) || *name == s.site => t,
        _ => {
            let t = of(&s.site);
            last = Some((&s.site, t));
            t
        }
    })
}

/// How many units [`warm`] loads at once.
const WARM: usize = 32;

/// Looks up the units of `entries`, so that the work on them that follows finds them in the
/// cache. A unit's stays are a random place in a table of millions; one lookup at a time,
/// with a unit's work between two, the processor waited for each (70 % of the emit's own
/// time).
/// These lookups do not depend on each other, so their misses overlap. Each reads its
/// unit's entry from end to end (the due time after the stays, and the first stay's end
/// and identities): an entry spans three cache lines, and the key alone brought one.
fn warm(sites: &[Site], entries: &[Due]) {
    let read = entries
        .iter()
        .filter_map(|&(_, site, device, view)| sites[site as usize].units.get(&(device, view)))
        .map(|stays| {
            let first = stays.list.first();
            (stays.due.unwrap_or(0))
                ^ first.map_or(0, |s| {
                    s.last_ms ^ s.written.len() as i64 ^ s.sightings.len() as i64
                })
        })
        .fold(0, |a, b| a ^ b);
    std::hint::black_box(read);
}

/// A version for a row: the caller's clock in µs (`now`), rising strictly.
fn next_version(last: &mut u64, now: u64) -> u64 {
    *last = now.max(*last + 1);
    *last
}

/// The hour of day (0-23) at `ms` on the clocks of `tz`.
pub(crate) fn local_hour(ms: i64, tz: chrono_tz::Tz) -> u32 {
    use chrono::Timelike;
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .hour()
}

fn row(
    site: &Arc<str>,
    unit: Unit,
    id: Written,
    s: &Stay,
    rule: SiteRule,
    retracted: u8,
    version: u64,
) -> VisitRow {
    let (device, in_view) = unit;
    let dwell_ms = s.last_ms - s.first_ms;
    let visitor = in_view && rule.visitor(s.first_ms, dwell_ms, s.rssi_max);
    VisitRow {
        site: site.clone(),
        day: id.0,
        device,
        visit_id: id.1,
        epoch: s.epoch,
        class: s.class,
        fingerprint: s.fingerprint,
        first_ms: s.first_ms,
        last_ms: s.last_ms,
        dwell_secs: u32::try_from(dwell_ms / 1000).unwrap_or(u32::MAX),
        rssi_max: s.rssi_max,
        sightings: u32::try_from(s.sightings.len()).unwrap_or(u32::MAX),
        kind: if visitor { VISITOR } else { PASSER_BY },
        retracted,
        version,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    const MIN: i64 = 60_000;
    /// The version clock: versions rise strictly whatever it says.
    const NOW_US: u64 = 1_700_000_000_000_000;

    fn rules() -> Rules {
        Rules {
            calibrations: FxHashMap::default(),
            sites: FxHashMap::from_iter([(
                "board".to_owned(),
                SiteRule {
                    board: true,
                    rssi_threshold_dbm: -75,
                    min_dwell_secs: 0,
                    open_hour: 0,
                    close_hour: 24,
                    tz: chrono_tz::UTC,
                    capture_rate: None,
                },
            )]),
            default: SiteRule {
                board: false,
                rssi_threshold_dbm: -70,
                min_dwell_secs: 180,
                open_hour: 8,
                close_hour: 20,
                tz: chrono_tz::UTC,
                capture_rate: None,
            },
            store_gap_ms: 10 * MIN,
            board_gap_ms: 30 * MIN,
            max_devices_per_site: usize::MAX,
            generation: 0,
        }
    }

    fn seen(site: &str, device: u64, key: u64, first: i64, last: i64, rssi: i8) -> Seen {
        Seen {
            site: site.into(),
            device,
            link: device,
            epoch: 1,
            class: 0,
            fingerprint: 7,
            first_ms: first,
            last_ms: last,
            rssi_max: rssi,
            is_final: true,
            key,
            tainted: false,
            written: None,
            reopened: false,
            received_ms: 0,
        }
    }

    /// The stays as a batch computation would find them: sort by start, chain over gaps.
    fn naive(input: &[Seen], rules: &Rules) -> Vec<(String, u64, i64, i64, i8, usize)> {
        let mut v = input.to_vec();
        v.sort_by_key(|s| {
            (
                s.site.clone(),
                s.device,
                rules.site(&s.site).in_view(s.rssi_max),
                s.first_ms,
            )
        });
        let mut out: Vec<(String, u64, i64, i64, i8, HashSet<u64>)> = Vec::new();
        for s in v {
            let gap = rules.gap_ms(rules.site(&s.site));
            match out.last_mut() {
                Some(c)
                    if *c.0 == *s.site
                        && c.1 == s.device
                        && rules.site(&c.0).in_view(c.4)
                            == rules.site(&s.site).in_view(s.rssi_max)
                        && s.first_ms <= c.3 + gap =>
                {
                    c.3 = c.3.max(s.last_ms);
                    c.4 = c.4.max(s.rssi_max);
                    c.5.insert(s.key);
                }
                _ => out.push((
                    s.site.to_string(),
                    s.device,
                    s.first_ms,
                    s.last_ms,
                    s.rssi_max,
                    HashSet::from([s.key]),
                )),
            }
        }
        let mut v: Vec<_> = out
            .into_iter()
            .map(|c| (c.0, c.1, c.2, c.3, c.4, c.5.len()))
            .collect();
        v.sort();
        v
    }

    /// The table as FINAL with retracted = 0 would read it.
    fn table(rows: &[VisitRow]) -> Vec<(String, u64, i64, i64, i8, usize)> {
        let mut latest: HashMap<(String, u16, u64, u64), &VisitRow> = HashMap::new();
        for r in rows {
            let k = (r.site.to_string(), r.day, r.device, r.visit_id);
            if latest.get(&k).is_none_or(|o| o.version < r.version) {
                latest.insert(k, r);
            }
        }
        let mut v: Vec<_> = latest
            .values()
            .filter(|r| r.retracted == 0)
            .map(|r| {
                (
                    r.site.to_string(),
                    r.device,
                    r.first_ms,
                    r.last_ms,
                    r.rssi_max,
                    r.sightings as usize,
                )
            })
            .collect();
        v.sort();
        v
    }

    /// A deterministic shuffle, so the test needs no RNG crate.
    fn shuffle<T>(v: &mut [T], seed: u64) {
        let mut next = testkit::xorshift(seed);
        for i in (1..v.len()).rev() {
            v.swap(i, next(i as u64 + 1) as usize);
        }
    }

    fn workload(seed: u64) -> Vec<Seen> {
        let mut draw = testkit::xorshift(seed);
        let mut next = move |m: i64| draw(m as u64) as i64;
        let mut v = Vec::new();
        for key in 0..400u64 {
            let site = ["store-a", "store-b", "board"][next(3) as usize];
            let first = 8 * 60 * MIN + next(6 * 60) * MIN + next(60_000);
            let last = first + next(20) * MIN;
            let s = seen(site, next(5) as u64, key, first, last, -90 + next(40) as i8);
            // An interim version (shorter) and a redelivered duplicate of some sightings.
            if next(4) == 0 {
                let mut interim = s.clone();
                interim.last_ms = first + (last - first) / 2;
                v.push(interim);
            }
            if next(5) == 0 {
                v.push(s.clone());
            }
            v.push(s);
        }
        v
    }

    #[test]
    fn stays_do_not_depend_on_arrival_order_duplicates_or_lateness() {
        let r = rules();
        for seed in 1..20u64 {
            let mut input = workload(seed);
            let want = naive(&input, &r);
            shuffle(&mut input, seed * 7919);
            let mut v = Visits::new(i64::MIN);
            let mut rows = Vec::new();
            // A watermark that runs ahead of part of the data: the rest arrives late.
            for (i, s) in input.iter().enumerate() {
                assert!(v.insert(s, &r, 0));
                if i % 37 == 0 {
                    v.emit(Some(s.last_ms), 48 * 60 * MIN, &r, NOW_US, &mut rows);
                }
            }
            v.emit(None, 48 * 60 * MIN, &r, NOW_US, &mut rows);
            assert_eq!(table(&rows), want, "seed {seed}");
            assert_eq!(v.stays(), want.len(), "seed {seed}: the stays gauge");
            // The same in batches of 1 to 97 sightings, the three sites' mixed within each
            // chunk a batch is looked up by.
            let (mut v, mut rows) = (Visits::new(i64::MIN), Vec::new());
            let (mut rest, mut n) = (&input[..], seed);
            while let Some(last) = rest.last() {
                n = n * 31 % 97 + 1;
                let (batch, tail) = rest.split_at((n as usize).min(rest.len()));
                v.insert_all(batch, &r, 0, |s| panic!("not too late: {s:?}"));
                v.emit(Some(last.last_ms), 48 * 60 * MIN, &r, NOW_US, &mut rows);
                rest = tail;
            }
            v.emit(None, 48 * 60 * MIN, &r, NOW_US, &mut rows);
            assert_eq!(table(&rows), want, "seed {seed}, in batches");
        }
    }

    #[test]
    fn a_batch_tells_the_sightings_too_late_in_order() {
        let r = rules();
        let floor = 11 * 60 * MIN;
        let input = workload(3);
        let mut v = Visits::new(floor);
        let mut late = Vec::new();
        v.insert_all(&input, &r, 0, |s| late.push(s.key));
        let want: Vec<u64> = (input.iter())
            .filter(|s| s.last_ms < floor)
            .map(|s| s.key)
            .collect();
        assert!(!want.is_empty());
        assert_eq!(late, want);
        assert_eq!(v.too_late, want.len() as u64);
    }

    #[test]
    fn the_queue_gives_the_units_due_before_the_watermark_in_order() {
        let mut q = Queue::default();
        let dues = [
            5 * MIN + 1,
            2 * MIN - 1,
            61_000,
            2 * MIN,
            3 * MIN + 30_000,
            59_999,
            -1,
        ];
        for (i, &due) in dues.iter().enumerate() {
            q.push((due, 0, i as u64, false));
        }
        let mut take = |w: Option<i64>| {
            let mut out = Vec::new();
            q.take_due(w, &mut out);
            out.into_iter().map(|e| e.0).collect::<Vec<_>>()
        };
        // At a slot's start (the stream's watermark moves by minutes): the slots before it.
        assert_eq!(take(Some(2 * MIN)), [-1, 59_999, 61_000, 2 * MIN - 1]);
        assert_eq!(take(Some(2 * MIN)), [] as [i64; 0]);
        // Within a slot: its part before the watermark, the rest later.
        assert_eq!(take(Some(3 * MIN + 30_000)), [2 * MIN]);
        assert_eq!(take(Some(3 * MIN + 30_001)), [3 * MIN + 30_000]);
        // The input's end: all that is left.
        assert_eq!(take(None), [5 * MIN + 1]);
        assert_eq!(take(None), [] as [i64; 0]);
    }

    #[test]
    fn late_data_that_joins_two_visits_retracts_one() {
        let r = rules();
        let mut v = Visits::new(i64::MIN);
        let mut rows = Vec::new();
        let t = 10 * 60 * MIN;
        v.insert(&seen("s", 1, 1, t, t + 2 * MIN, -60), &r, 0);
        v.insert(&seen("s", 1, 2, t + 20 * MIN, t + 24 * MIN, -60), &r, 0);
        v.emit(Some(t + 60 * MIN), 48 * 60 * MIN, &r, NOW_US, &mut rows);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|x| x.retracted == 0));
        let (first, second) = (rows[0].clone(), rows[1].clone());
        // A sensor's spool drains: the sighting in between arrives an hour late.
        v.insert(&seen("s", 1, 3, t + 9 * MIN, t + 15 * MIN, -65), &r, 0);
        v.emit(Some(t + 61 * MIN), 48 * 60 * MIN, &r, NOW_US, &mut rows);
        let late = &rows[2..];
        let joined = late
            .iter()
            .find(|x| x.retracted == 0)
            .expect("the joined visit");
        assert_eq!((joined.first_ms, joined.last_ms), (t, t + 24 * MIN));
        assert_eq!(
            joined.visit_id, first.visit_id,
            "keeps the first visit's identity"
        );
        assert!(joined.version > first.version);
        assert_eq!(joined.kind, VISITOR);
        assert_eq!(joined.sightings, 3);
        let gone = late
            .iter()
            .find(|x| x.retracted == 1)
            .expect("a retraction");
        assert_eq!(gone.visit_id, second.visit_id);
        assert_eq!(table(&rows).len(), 1);
    }

    #[test]
    fn a_restart_retracts_visits_written_before_it_that_late_data_superseded() {
        let r = rules();
        let t = 10 * 60 * MIN;
        let a = seen("s", 1, 1, t + 20 * MIN, t + 24 * MIN, -60);
        let mut before = Visits::new(i64::MIN);
        let mut rows = Vec::new();
        before.insert(&a, &r, 0);
        before.emit(Some(t + 60 * MIN), 48 * 60 * MIN, &r, NOW_US, &mut rows);
        let written = rows[0].clone();
        // A crash; the late sighting was committed to the table but its effect not written.
        // The next run's clock is later.
        let late = seen("s", 1, 2, t + 12 * MIN, t + 15 * MIN, -60);
        let mut after = Visits::new(i64::MIN);
        let mut marker = seen("s", 1, 0, written.first_ms, written.last_ms, i8::MIN);
        marker.written = Some((written.day, written.visit_id));
        for s in [&marker, &a, &late] {
            after.insert(s, &r, 0);
        }
        after.emit(None, 48 * 60 * MIN, &r, NOW_US + 2_000, &mut rows);
        let t = table(&rows);
        assert_eq!(t.len(), 1, "{rows:?}");
        assert_eq!((t[0].2, t[0].3, t[0].5), (late.first_ms, a.last_ms, 2));
    }

    #[test]
    fn classification_follows_the_site_rules() {
        let r = rules();
        let mut v = Visits::new(i64::MIN);
        let mut rows = Vec::new();
        let h = 60 * MIN;
        let cases = [
            // (site, first, last, rssi, visitor?)
            ("store", 9 * h, 9 * h + 3 * MIN, -70, true),
            ("store", 9 * h, 9 * h + 3 * MIN - 1000, -70, false), // too short
            ("store", 9 * h, 9 * h + 30 * MIN, -71, false),       // too weak
            ("store", 21 * h, 21 * h + 30 * MIN, -50, false),     // after closing
            ("board", 22 * h, 22 * h, -75, true),                 // a qualifying pass
            ("board", 22 * h, 22 * h + 5 * MIN, -76, false),
        ];
        for (i, c) in cases.iter().enumerate() {
            v.insert(&seen(c.0, i as u64, 1, c.1, c.2, c.3), &r, 0);
        }
        v.emit(None, 0, &r, NOW_US, &mut rows);
        for (i, c) in cases.iter().enumerate() {
            let got = rows.iter().find(|x| x.device == i as u64).expect("a row");
            assert_eq!(got.kind == VISITOR, c.4, "case {i}: {c:?}");
        }
    }

    #[test]
    fn opening_hours_are_the_sites_local_time() {
        let mut r = rules();
        let mut ny = r.default;
        ny.tz = chrono_tz::America::New_York; // UTC-5 in January 1970, the clock here
        r.sites.insert("ny".to_owned(), ny);
        let mut v = Visits::new(i64::MIN);
        let mut rows = Vec::new();
        let h = 60 * MIN;
        let cases = [
            // (site, first, visitor?): open 8-20 local.
            ("ny", 12 * h, false),    // 07:00 in New York
            ("ny", 13 * h, true),     // 08:00
            ("ny", 23 * h, true),     // 18:00 (after closing in UTC)
            ("store", 23 * h, false), // the same instant at a UTC store
        ];
        for (i, c) in cases.iter().enumerate() {
            v.insert(&seen(c.0, i as u64, 1, c.1, c.1 + 30 * MIN, -50), &r, 0);
        }
        v.emit(None, 0, &r, NOW_US, &mut rows);
        for (i, c) in cases.iter().enumerate() {
            let got = rows.iter().find(|x| x.device == i as u64).expect("a row");
            assert_eq!(got.kind == VISITOR, c.2, "case {i}: {c:?}");
        }
    }

    #[test]
    fn a_sites_rule_read_after_the_start_decides_its_stays_from_then_on() {
        // A site not in the inventory yet has the default rule (open 8-20 UTC); then the
        // inventory is read again with its own (the same hours in New York).
        let mut r = rules();
        let mut v = Visits::new(i64::MIN);
        let mut rows = Vec::new();
        let h = 60 * MIN;
        v.insert(&seen("ny", 1, 1, 12 * h, 12 * h + 30 * MIN, -50), &r, 0);
        v.emit(Some(20 * h), 48 * h, &r, NOW_US, &mut rows);
        let mut ny = r.default;
        ny.tz = chrono_tz::America::New_York;
        r.sites.insert("ny".to_owned(), ny);
        r.generation += 1;
        // 12:00 UTC a day later: 07:00 in New York, before opening.
        v.insert(&seen("ny", 2, 2, 36 * h, 36 * h + 30 * MIN, -50), &r, 0);
        v.emit(Some(40 * h), 48 * h, &r, NOW_US, &mut rows);
        let kind = |device| {
            rows.iter()
                .find(|x| x.device == device)
                .expect("a row")
                .kind
        };
        assert_eq!(kind(1), VISITOR, "12:00 UTC under the default rule");
        assert_ne!(kind(2), VISITOR, "07:00 in New York under the site's own");
    }

    #[test]
    fn too_late_data_is_counted_not_merged_and_tainted_stays_are_not_written() {
        let r = rules();
        let mut v = Visits::new(i64::MIN);
        let mut rows = Vec::new();
        let t = 100 * 60 * MIN;
        v.insert(&seen("s", 1, 1, t, t + MIN, -60), &r, 0);
        v.emit(
            Some(t + 48 * 60 * MIN + 2 * 60 * MIN),
            48 * 60 * MIN,
            &r,
            NOW_US,
            &mut rows,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(v.stays(), 0, "forgotten behind the horizon");
        assert!(!v.insert(&seen("s", 1, 2, t, t + 2 * MIN, -60), &r, 0));
        assert_eq!(v.too_late, 1);
        let mut tainted = seen("s", 2, 3, t + 60 * 60 * MIN, t + 61 * 60 * MIN, -60);
        tainted.tainted = true;
        v.insert(&tainted, &r, 0);
        v.emit(None, 48 * 60 * MIN, &r, NOW_US, &mut rows);
        assert_eq!(rows.len(), 1, "a tainted stay is state only");
    }

    #[test]
    fn after_a_restart_data_behind_the_floor_read_back_is_too_late_before_any_watermark() {
        let r = rules();
        let t = 100 * 60 * MIN;
        let mut v = Visits::new(t);
        assert!(!v.insert(&seen("s", 1, 1, t - 20 * MIN, t - MIN, -60), &r, 0));
        assert_eq!(
            v.too_late, 1,
            "left to a recompute, not made a visit of its own"
        );
        assert!(v.insert(&seen("s", 2, 2, t - 20 * MIN, t, -60), &r, 0));
        assert_eq!(v.stays(), 1);
    }

    #[test]
    fn a_recomputes_stays_behind_the_floor_are_written_then_forgotten_once_its_records_are_in() {
        let r = rules();
        let horizon = 6 * 60 * MIN;
        let mut v = Visits::new(i64::MIN);
        let mut rows = Vec::new();
        let t = 100 * 60 * MIN;
        // Device 1's visit, written, then forgotten behind the horizon.
        let first = seen("s", 1, 1, t, t + 5 * MIN, -60);
        v.insert(&first, &r, 0);
        v.emit(Some(t + 30 * MIN), horizon, &r, NOW_US, &mut rows);
        assert_eq!(rows.len(), 1);
        let written = rows[0].clone();
        // Device 2's, later: written and held for the horizon.
        let w = t + horizon + 60 * MIN;
        v.insert(&seen("s", 2, 2, w - 30 * MIN, w - 25 * MIN, -60), &r, 0);
        v.emit(Some(w), horizon, &r, NOW_US + 1, &mut rows);
        assert_eq!((rows.len(), v.stays()), (2, 1), "device 1's stay forgotten");
        // A sighting that extends device 1's visit comes too late...
        let late = seen("s", 1, 3, t + 10 * MIN, t + 20 * MIN, -60);
        assert!(!v.insert(&late, &r, w as u64));
        // ... and the recompute reads the site's sightings and visits back, fed at `w`.
        let mut marker = seen("s", 1, 0, written.first_ms, written.last_ms, -60);
        marker.written = Some((written.day, written.visit_id));
        for mut s in [first, late, marker] {
            s.reopened = true;
            assert!(v.insert(&s, &r, w as u64));
        }
        v.emit(Some(w), horizon, &r, NOW_US + 2, &mut rows);
        v.release(w as u64, &r);
        let again = &rows[2..];
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(
            (again[0].visit_id, again[0].last_ms, again[0].sightings),
            (written.visit_id, t + 20 * MIN, 2),
            "the visit extended"
        );
        assert_eq!(v.stays(), 2, "held while records fed at w may still come");
        v.release(w as u64 + 1, &r);
        assert_eq!(
            (rows.len(), v.stays()),
            (3, 1),
            "the rebuilt stay forgotten, device 2's held"
        );
    }

    #[test]
    fn a_full_site_refuses_new_devices_and_keeps_its_own() {
        let r = Rules {
            max_devices_per_site: 2,
            generation: 0,
            ..rules()
        };
        let mut v = Visits::new(i64::MIN);
        let t = 100 * 60 * MIN;
        for device in 1..=5 {
            assert!(v.insert(&seen("s", device, device, t, t + MIN, -60), &r, 0));
        }
        assert_eq!(v.refused, 3, "devices 3, 4 and 5");
        // A device already held goes on; another site has its own room.
        v.insert(&seen("s", 1, 9, t + 2 * MIN, t + 3 * MIN, -60), &r, 0);
        v.insert(&seen("other", 7, 7, t, t + MIN, -60), &r, 0);
        assert_eq!(v.refused, 3);
        let mut rows = Vec::new();
        v.emit(None, 48 * 60 * MIN, &r, NOW_US, &mut rows);
        let mut got: Vec<(String, u64, i64)> = rows
            .iter()
            .map(|row| (row.site.to_string(), row.device, row.last_ms))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("other".to_owned(), 7, t + MIN),
                ("s".to_owned(), 1, t + 3 * MIN),
                ("s".to_owned(), 2, t + MIN)
            ]
        );
    }
}
