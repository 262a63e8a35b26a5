//! The per-device work of a report, on the rows [`crate::data`] reads once from ClickHouse:
//! each pass of the flight classified against the creative's plays ([`Plays::classify`]),
//! one arm per linkable device from its first clean pass ([`flight`]), and each arm's
//! outcomes and the staff rule from its stays ([`outcomes`], [`staff`]).
//!
//! These ran as SQL over the session's temporary tables until a month of a city showed what
//! that cost: a join of 3 M passes with the plays by minute, in a statement per day, and the
//! staff and outcome statements each over 3.4 M stays, 7 s of a 15.9-s report whose rows
//! ClickHouse reads in 2.2 s. Here they are one sort and one pass each over rows in memory
//! (about 40 bytes a pass or stay).

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

pub const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// Device keys are hashes: their top bit cuts a set of devices into two halves of about one
/// size, every device of the lower half below every one of the upper. The per-device work
/// runs on the halves at once, on the two cores ClickHouse leaves idle meanwhile.
const UPPER: u64 = 1 << 63;

/// `a()` on another thread and `b()` on this one, at once.
pub(crate) fn at_once<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = b();
        (joined(a), b)
    })
}

/// A scoped thread's result; its panic goes on in the thread that joins it.
pub(crate) fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// `f` of the lower and the upper half of `items` by device ([`UPPER`]), at once: `items`
/// is reordered, the lower half first.
fn by_halves<T: Send, R: Send>(
    items: &mut [T],
    device: impl Fn(&T) -> u64,
    f: impl Fn(&mut [T]) -> R + Sync,
) -> (R, R) {
    let mut lower = 0;
    for i in 0..items.len() {
        if device(&items[i]) < UPPER {
            items.swap(lower, i);
            lower += 1;
        }
    }
    let (lo, hi) = items.split_at_mut(lower);
    let (upper, lower) = at_once(|| f(hi), || f(lo));
    (lower, upper)
}

/// How the queries classify passes and define visits (ATTRIBUTION.md's defaults).
#[derive(Clone, Debug)]
pub struct Rules {
    pub pad_ms: i64,
    pub pre_ms: i64,
    pub staff_ms_per_day: i64,
    pub staff_days_per_week: u32,
    pub windows_days: Vec<u32>,
}

/// How a pass compares with the creative's plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PassClass {
    Exposed,
    Control,
    /// Overlaps the creative by less than 1 s.
    Ambiguous,
    /// Longer than a loop: saw every creative.
    Long,
    /// The creative was not in the board's rotation then.
    OutOfRotation,
}

/// One linkable device with an arm, and its outcomes ([`outcomes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct UnitRow {
    pub device: u64,
    pub exposed: u8,
    pub t0: i64,
    pub board: String,
    /// Visits to the brand's stores in the pre-period.
    pub pre: u64,
    /// Inside a brand store at t0.
    pub inside: u8,
    /// The first visit to a brand store after t0 (0: none).
    pub first_after: i64,
    /// The same for the placebo brand.
    pub placebo_after: i64,
    /// Per window of the report: a brand visit in (t0, t0 + W].
    pub converted: Vec<u8>,
    /// Per window: the placebo brand.
    pub placebo: Vec<u8>,
}

/// A visit at one of the campaign's boards whose first sighting is in the flight, under its
/// key after the epoch bridge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pass {
    pub device: u64,
    pub epoch: u32,
    /// Its index in the campaign's boards.
    pub board: u32,
    pub first_ms: i64,
    pub last_ms: i64,
    /// A global address or a loyalty link: its visits can be followed.
    pub linkable: bool,
}

/// A play of the campaign's creative at one of its boards (the index in its boards).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Play {
    pub board: u32,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// The creative's plays per board, sorted by start.
pub struct Plays {
    by_board: Vec<Board>,
}

/// One board's plays, and where a pass looks for those that meet it.
#[derive(Clone, Default)]
struct Board {
    /// (start, end) of each play, by start.
    plays: Vec<(i64, i64)>,
    /// The minute of the first play's start.
    first_minute: i64,
    /// Per minute from `first_minute` on, the first play that can reach into it: the first
    /// whose start is at most the longest play's length before the minute. (A binary search
    /// for it, in a month of a city's plays, was a cache miss at each step: 90 % of the
    /// classification's time.)
    from: Vec<u32>,
}

impl Board {
    /// The plays that can meet the minutes from `lo` (a minute's start) on.
    fn from(&self, lo: i64) -> &[(i64, i64)] {
        let minute = lo.div_euclid(MINUTE_MS) - self.first_minute;
        let i = match usize::try_from(minute) {
            Err(_) => 0,
            Ok(m) => self.from.get(m).map_or(self.plays.len(), |&i| i as usize),
        };
        &self.plays[i..]
    }
}

impl Plays {
    /// The plays of a campaign with `boards` boards; a play of another board is left out.
    pub fn new(boards: usize, plays: impl IntoIterator<Item = Play>) -> Plays {
        let mut by_board = vec![Board::default(); boards];
        for p in plays {
            if let Some(b) = by_board.get_mut(p.board as usize) {
                b.plays.push((p.start_ms, p.end_ms));
            }
        }
        for b in &mut by_board {
            b.plays.sort_unstable();
            let (Some(first), Some(last)) = (b.plays.first(), b.plays.last()) else {
                continue;
            };
            let longest = b.plays.iter().map(|(s, e)| e - s).max().unwrap_or(0);
            b.first_minute = first.0.div_euclid(MINUTE_MS);
            let minutes = (last.0 + longest).div_euclid(MINUTE_MS) - b.first_minute + 1;
            let mut i = 0;
            b.from = (0..minutes)
                .map(|m| {
                    let t = (b.first_minute + m) * MINUTE_MS - longest;
                    while i < b.plays.len() && b.plays[i].0 < t {
                        i += 1;
                    }
                    i as u32
                })
                .collect();
        }
        Plays { by_board }
    }

    /// The class of `pass` (ATTRIBUTION.md, "Exposure"), from the plays whose minutes meet
    /// the pass's first minutes, `first - max(pad, loop)` to `first + loop` (a pass that is
    /// not long ends by then, and a long one is classified by rotation alone):
    /// - out of rotation: no play starts within a loop of the pass's start;
    /// - long: the pass, padded by `pad_ms` either side, is longer than a loop;
    /// - exposed: the padded pass overlaps the creative's plays by 1 s or more; control: by
    ///   nothing; ambiguous: in between.
    pub fn classify(&self, pass: &Pass, pad_ms: i64, loop_ms: i64) -> PassClass {
        let reach = pad_ms.max(loop_ms);
        let Some(board) = self.by_board.get(pass.board as usize) else {
            return PassClass::OutOfRotation;
        };
        // The plays whose minutes meet the pass's: a start before the end of its last minute,
        // an end in or after its first.
        let lo = (pass.first_ms - reach).div_euclid(MINUTE_MS) * MINUTE_MS;
        let hi = ((pass.first_ms + loop_ms).div_euclid(MINUTE_MS) + 1) * MINUTE_MS;
        let (mut overlap, mut rotation) = (0, 0u32);
        for &(start, end) in board.from(lo).iter().take_while(|(start, _)| *start < hi) {
            if end < lo {
                continue;
            }
            overlap += (end.min(pass.last_ms + pad_ms) - start.max(pass.first_ms - pad_ms)).max(0);
            if (pass.first_ms - loop_ms..=pass.first_ms + loop_ms).contains(&start) {
                rotation += 1;
            }
        }
        if rotation == 0 {
            PassClass::OutOfRotation
        } else if pass.last_ms - pass.first_ms + 2 * pad_ms > loop_ms {
            PassClass::Long
        } else if overlap >= 1000 {
            PassClass::Exposed
        } else if overlap == 0 {
            PassClass::Control
        } else {
            PassClass::Ambiguous
        }
    }
}

/// A linkable device's first clean (exposed or control) pass: its arm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arm {
    pub device: u64,
    pub epoch: u32,
    pub exposed: bool,
    pub t0: i64,
    pub board: u32,
}

/// What the flight's passes say.
#[derive(Debug, Default, PartialEq)]
pub struct Flight {
    /// Passes of linkable devices, by class.
    pub pass_classes: BTreeMap<PassClass, u64>,
    /// Devices that passed, and the linkable ones.
    pub passers: u64,
    pub linkable_passers: u64,
    /// Per UTC day (days since 1970): exposed and control passes of linkable devices.
    pub daily: Vec<(u16, u64, u64)>,
    /// One per linkable device with a clean pass (intention to treat), by device.
    pub arms: Vec<Arm>,
}

/// Classifies the flight's passes and assigns the arms. `passes` is sorted in place (by
/// device and time: of two passes at the same instant, the one at the board listed first
/// makes the arm).
pub fn flight(passes: &mut [Pass], plays: &Plays, pad_ms: i64, loop_ms: i64) -> Flight {
    let (lower, upper) = by_halves(
        passes,
        |p| p.device,
        |half| flight_of(half, plays, pad_ms, loop_ms),
    );
    lower.and(upper)
}

impl Flight {
    /// This flight's devices' and `upper`'s, whose devices all come after these.
    fn and(mut self, upper: Flight) -> Flight {
        for (class, n) in upper.pass_classes {
            *self.pass_classes.entry(class).or_default() += n;
        }
        self.passers += upper.passers;
        self.linkable_passers += upper.linkable_passers;
        let mut daily: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
        for (d, e, c) in self.daily.into_iter().chain(upper.daily) {
            let day = daily.entry(d).or_default();
            (day.0, day.1) = (day.0 + e, day.1 + c);
        }
        self.daily = daily.into_iter().map(|(d, (e, c))| (d, e, c)).collect();
        self.arms.extend(upper.arms);
        self
    }
}

/// [`flight`] of some of the devices' passes, all of each device's.
fn flight_of(passes: &mut [Pass], plays: &Plays, pad_ms: i64, loop_ms: i64) -> Flight {
    passes.sort_unstable_by_key(|p| (p.device, p.first_ms, p.board, p.last_ms, p.epoch));
    let mut f = Flight::default();
    let mut daily: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    for one in passes.chunk_by(|a, b| a.device == b.device) {
        f.passers += 1;
        let mut linkable = false;
        let mut arm = None;
        for p in one.iter().filter(|p| p.linkable) {
            linkable = true;
            let class = plays.classify(p, pad_ms, loop_ms);
            *f.pass_classes.entry(class).or_default() += 1;
            let day = daily
                .entry(u16::try_from(p.first_ms.div_euclid(DAY_MS)).unwrap_or(u16::MAX))
                .or_default();
            match class {
                PassClass::Exposed => day.0 += 1,
                PassClass::Control => day.1 += 1,
                _ => continue,
            }
            arm.get_or_insert(Arm {
                device: p.device,
                epoch: p.epoch,
                exposed: class == PassClass::Exposed,
                t0: p.first_ms,
                board: p.board,
            });
        }
        f.linkable_passers += u64::from(linkable);
        f.arms.extend(arm);
    }
    f.daily = daily.into_iter().map(|(d, (e, c))| (d, e, c)).collect();
    f
}

/// A stay of an arm's device at a store, under its key after the epoch bridge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stay {
    pub device: u64,
    /// Its index in the stores the report reads.
    pub store: u32,
    /// The UTC day of the visit's row (days since 1970).
    pub day: u16,
    pub visitor: bool,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Sorts the stays as [`outcomes`] and [`staff`] read them: by device, store and day.
pub fn sort_stays(stays: &mut [Stay]) {
    by_halves(
        stays,
        |s| s.device,
        |half| half.sort_unstable_by_key(|s| (s.device, s.store, s.day, s.first_ms, s.last_ms)),
    );
}

/// Arms' devices with a week, at one store, of a day longer than the rule's hours or of at
/// least its days (weeks from Monday, UTC days). `stays` sorted by [`sort_stays`].
pub fn staff(stays: &[Stay], rules: &Rules) -> HashSet<u64> {
    let (long, days) = (rules.staff_ms_per_day, rules.staff_days_per_week);
    let mut staff = HashSet::new();
    for one in stays.chunk_by(|a, b| (a.device, a.store) == (b.device, b.store)) {
        if staff.contains(&one[0].device) {
            continue;
        }
        // (Monday, longest day, days) of the week in hand; the stays come by day.
        let mut week = (i64::MIN, 0, 0);
        for day in one.chunk_by(|a, b| a.day == b.day) {
            let stay: i64 = day.iter().map(|s| s.last_ms - s.first_ms).sum();
            let d = i64::from(day[0].day);
            // Day 0 (1970-01-01) was a Thursday.
            let monday = d - (d + 3).rem_euclid(7);
            if week.0 != monday {
                week = (monday, 0, 0);
            }
            week.1 = week.1.max(stay);
            week.2 += 1;
            if week.1 > long || week.2 >= days {
                staff.insert(one[0].device);
                break;
            }
        }
    }
    staff
}

/// Each arm's outcomes (both by device) from its stays (sorted by [`sort_stays`]) that meet
/// the report's period `[lo, hi)`: its brand visits in the pre-period, inside a brand store
/// at t0, its first brand and placebo visit after t0, and per window whether it made one.
/// `brand` and `placebo` say which stores are the brand's and the placebo brand's;
/// `boards` names the boards.
pub fn outcomes(
    arms: &[Arm],
    stays: &[Stay],
    brand: &[bool],
    placebo: &[bool],
    boards: &[String],
    rules: &Rules,
    (lo, hi): (i64, i64),
) -> Vec<UnitRow> {
    let windows: Vec<i64> = rules
        .windows_days
        .iter()
        .map(|&w| i64::from(w) * DAY_MS)
        .collect();
    let is = |flags: &[bool], s: &Stay| flags.get(s.store as usize).copied().unwrap_or(false);
    // Each of `arms`' rows, from `stays`, which hold (at least) all of theirs.
    let of = |arms: &[Arm], stays: &[Stay]| -> Vec<UnitRow> {
        let mut rest = stays;
        arms.iter()
            .map(|a| {
                // A walk, not a binary search: both come by device, and an arm's stays are
                // a few rows on, where a search of the millions left would miss the cache
                // at each step.
                let start = rest.iter().take_while(|s| s.device < a.device).count();
                let end = start
                    + rest[start..]
                        .iter()
                        .take_while(|s| s.device == a.device)
                        .count();
                let (mine, after) = (&rest[start..end], &rest[end..]);
                rest = after;
                let mut u = UnitRow {
                    device: a.device,
                    exposed: u8::from(a.exposed),
                    t0: a.t0,
                    board: boards.get(a.board as usize).cloned().unwrap_or_default(),
                    pre: 0,
                    inside: 0,
                    first_after: 0,
                    placebo_after: 0,
                    converted: vec![0; windows.len()],
                    placebo: vec![0; windows.len()],
                };
                let visits = mine
                    .iter()
                    .filter(|s| s.visitor && s.last_ms >= lo && s.first_ms < hi);
                for s in visits {
                    let t = s.first_ms;
                    let (ours, theirs) = (is(brand, s), is(placebo, s));
                    if ours {
                        u.pre += u64::from(t >= a.t0 - rules.pre_ms && t < a.t0);
                        u.inside |= u8::from(t <= a.t0 && s.last_ms >= a.t0);
                    }
                    if t <= a.t0 {
                        continue;
                    }
                    for (flag, first, converted) in [
                        (ours, &mut u.first_after, &mut u.converted),
                        (theirs, &mut u.placebo_after, &mut u.placebo),
                    ] {
                        if !flag {
                            continue;
                        }
                        if *first == 0 || t < *first {
                            *first = t;
                        }
                        for (c, w) in converted.iter_mut().zip(&windows) {
                            *c |= u8::from(t <= a.t0 + w);
                        }
                    }
                }
                u
            })
            .collect()
    };
    // The arms come by device, as the stays do: each half of the devices at once.
    let (a, s) = (
        arms.partition_point(|a| a.device < UPPER),
        stays.partition_point(|s| s.device < UPPER),
    );
    let (upper, mut units) = at_once(
        || of(&arms[a..], &stays[s..]),
        || of(&arms[..a], &stays[..s]),
    );
    units.extend(upper);
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 1_772_959_980_000; // the start of a minute
    const PAD: i64 = 15_000;
    const LOOP: i64 = 60_000;

    fn s(secs: f64) -> i64 {
        M + (secs * 1000.0) as i64
    }

    fn pass(device: u64, first_ms: i64, last_ms: i64) -> Pass {
        Pass {
            device,
            epoch: 0,
            board: 0,
            first_ms,
            last_ms,
            linkable: true,
        }
    }

    fn play(start_ms: i64, end_ms: i64) -> Play {
        Play {
            board: 0,
            start_ms,
            end_ms,
        }
    }

    /// The creative on board 0 at M+55..65 s, M+175..185 s and M+850..860 s (another
    /// brand's plays are not read).
    fn plays() -> Plays {
        Plays::new(
            1,
            [
                play(s(175.0), s(185.0)),
                play(s(55.0), s(65.0)),
                play(s(850.0), s(860.0)),
            ],
        )
    }

    #[test]
    fn each_pass_is_classified_by_the_plays_around_it() {
        let cases = [
            // Padded, it meets the play across a minute's end by 600 ms: ambiguous, though
            // the two share two minutes (1.2 s would make it exposed).
            (s(30.0), s(40.6), PassClass::Ambiguous),
            (s(30.0), s(41.2), PassClass::Exposed),
            // In rotation (a play starts 55 s after it), overlapping none.
            (s(120.0), s(130.0), PassClass::Control),
            (s(170.0), s(400.0), PassClass::Long),
            // Long, with a play inside it but none starting within a loop of its start.
            (s(400.0), s(900.0), PassClass::OutOfRotation),
            // No play for hours.
            (s(7200.0), s(7205.0), PassClass::OutOfRotation),
            (s(178.0), s(190.0), PassClass::Exposed),
            // In rotation by the play 35 s before it, overlapping none.
            (s(90.0), s(92.0), PassClass::Control),
        ];
        for (first, last, want) in cases {
            assert_eq!(
                plays().classify(&pass(1, first, last), PAD, LOOP),
                want,
                "pass {}..{} s",
                (first - M) as f64 / 1000.0,
                (last - M) as f64 / 1000.0
            );
        }
        // A play of several minutes that started long before the pass overlaps it.
        let long_play = Plays::new(1, [play(s(-600.0), s(300.0))]);
        assert_eq!(
            long_play.classify(&pass(1, s(100.0), s(110.0)), PAD, LOOP),
            PassClass::OutOfRotation,
            "no start within a loop"
        );
        let both = Plays::new(1, [play(s(-600.0), s(300.0)), play(s(150.0), s(160.0))]);
        assert_eq!(
            both.classify(&pass(1, s(100.0), s(110.0)), PAD, LOOP),
            PassClass::Exposed,
            "the long play overlaps it"
        );
    }

    #[test]
    fn a_device_gets_the_arm_of_its_first_clean_pass() {
        let mut passes = vec![
            // Device 2: an ambiguous pass, then a control one, then an exposed one.
            pass(2, s(30.0), s(40.6)),
            pass(2, s(178.0) + DAY_MS, s(190.0) + DAY_MS),
            pass(2, s(120.0), s(130.0)),
            // Device 1: exposed; device 3: not linkable; device 4: long only.
            pass(1, s(178.0), s(190.0)),
            Pass {
                linkable: false,
                ..pass(3, s(178.0), s(190.0))
            },
            pass(4, s(170.0), s(400.0)),
        ];
        let day_plays = Plays::new(
            1,
            [play(s(55.0), s(65.0)), play(s(175.0), s(185.0))]
                .into_iter()
                .chain([play(s(175.0) + DAY_MS, s(185.0) + DAY_MS)]),
        );
        let f = flight(&mut passes, &day_plays, PAD, LOOP);
        let arm = |device, exposed, t0| Arm {
            device,
            epoch: 0,
            exposed,
            t0,
            board: 0,
        };
        assert_eq!(
            f.arms,
            [arm(1, true, s(178.0)), arm(2, false, s(120.0))],
            "device 2's first clean pass is the control one, the ambiguous one before it does not count"
        );
        assert_eq!((f.passers, f.linkable_passers), (4, 3));
        assert_eq!(
            f.pass_classes,
            BTreeMap::from([
                (PassClass::Exposed, 2),
                (PassClass::Control, 1),
                (PassClass::Ambiguous, 1),
                (PassClass::Long, 1),
            ])
        );
        let day = (M.div_euclid(DAY_MS)) as u16;
        assert_eq!(f.daily, [(day, 1, 1), (day + 1, 1, 0)]);
    }

    fn rules() -> Rules {
        Rules {
            pad_ms: PAD,
            pre_ms: 7 * DAY_MS,
            staff_ms_per_day: 4 * 3_600_000,
            staff_days_per_week: 5,
            windows_days: vec![1, 7],
        }
    }

    fn stay(device: u64, store: u32, first_ms: i64, minutes: i64) -> Stay {
        Stay {
            device,
            store,
            day: first_ms.div_euclid(DAY_MS) as u16,
            visitor: true,
            first_ms,
            last_ms: first_ms + minutes * MINUTE_MS,
        }
    }

    #[test]
    fn devices_of_both_halves_are_one_flight_and_one_set_of_outcomes() {
        // Devices either side of the halves' cut, interleaved, two passes each (one exposed,
        // one in the control's plays), on the same days.
        let devices = [UPPER + 3, 2, UPPER, 9, u64::MAX, 0];
        let mut passes: Vec<Pass> = devices
            .iter()
            .flat_map(|&d| [pass(d, s(176.0), s(177.0)), pass(d, s(300.0), s(301.0))])
            .collect();
        let mut whole = passes.clone();
        let f = flight(&mut passes, &plays(), PAD, 60_000);
        // As one thread makes it.
        assert_eq!(f, flight_of(&mut whole, &plays(), PAD, 60_000));
        assert_eq!(passes, whole, "sorted as one sort sorts them");
        assert_eq!((f.passers, f.linkable_passers), (6, 6));
        let arms: Vec<u64> = f.arms.iter().map(|a| a.device).collect();
        assert_eq!(arms, [0, 2, 9, UPPER, UPPER + 3, u64::MAX]);
        // Each arm converts on a day of its own: the halves' outcomes are each arm's own.
        let mut stays: Vec<Stay> = (f.arms.iter().zip(1..))
            .map(|(a, days)| stay(a.device, 0, a.t0 + days * DAY_MS - 60_000, 10))
            .collect();
        stays.reverse();
        sort_stays(&mut stays);
        let of = |arms: &[Arm]| {
            let boards = ["b-0".to_owned()];
            outcomes(
                arms,
                &stays,
                &[true],
                &[false],
                &boards,
                &rules(),
                (0, i64::MAX),
            )
        };
        let one_by_one: Vec<UnitRow> = f.arms.iter().flat_map(|a| of(&[*a])).collect();
        let units = of(&f.arms);
        assert_eq!(units, one_by_one);
        let converted: Vec<&[u8]> = units.iter().map(|u| u.converted.as_slice()).collect();
        assert_eq!(
            converted,
            [[1, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0, 1]],
            "within a day only the first"
        );
    }

    #[test]
    fn an_arms_outcomes_come_from_its_stays() {
        let t0 = M;
        let arms = [
            Arm {
                device: 1,
                epoch: 0,
                exposed: true,
                t0,
                board: 0,
            },
            Arm {
                device: 5,
                epoch: 0,
                exposed: false,
                t0,
                board: 1,
            },
        ];
        // Stores: 0 the brand's, 1 the placebo brand's, 2 another's.
        let mut stays = vec![
            stay(1, 0, t0 - 2 * DAY_MS, 10), // pre-period
            stay(1, 0, t0 - 9 * DAY_MS, 10), // before it
            stay(1, 2, t0 + 3_600_000, 10),  // another brand: nothing
            stay(1, 0, t0 + 3 * DAY_MS, 10), // converted in 7 days, not in 1
            stay(1, 0, t0 + 2 * DAY_MS, 10), // the first after
            stay(1, 1, t0 + 3_600_000, 10),  // placebo within a day
            Stay {
                visitor: false, // a passer-by's stay is no visit
                ..stay(1, 0, t0 + 60_000, 1)
            },
            stay(5, 0, t0 - 60_000, 5), // inside at t0
            stay(9, 0, t0 + 60_000, 5), // no arm
        ];
        sort_stays(&mut stays);
        let boards = ["b-0".to_owned(), "b-1".to_owned()];
        let units = outcomes(
            &arms,
            &stays,
            &[true, false, false],
            &[false, true, false],
            &boards,
            &rules(),
            (t0 - 8 * DAY_MS, t0 + 8 * DAY_MS),
        );
        let u = &units[0];
        assert_eq!((u.device, u.exposed, u.board.as_str()), (1, 1, "b-0"));
        assert_eq!(
            u.pre, 1,
            "the stay 9 days before is outside the report's period"
        );
        assert_eq!(u.inside, 0);
        assert_eq!(u.first_after, t0 + 2 * DAY_MS);
        assert_eq!(u.placebo_after, t0 + 3_600_000);
        assert_eq!(u.converted, [0, 1]);
        assert_eq!(u.placebo, [1, 1]);
        let v = &units[1];
        assert_eq!((v.device, v.inside, v.pre), (5, 1, 1));
        assert_eq!((v.first_after, v.converted.as_slice()), (0, &[0, 0][..]));
        assert_eq!(units.len(), 2);
    }

    #[test]
    fn staff_stay_long_days_or_many_days_a_week() {
        let monday = 20_521 * DAY_MS; // 2026-03-09, a Monday
        let hour = 60;
        let mut stays = vec![
            // Device 1: two stays of 2.5 h on one day at store 0: over 4 h that day.
            stay(1, 0, monday + 8 * 3_600_000, 150),
            stay(1, 0, monday + 12 * 3_600_000, 150),
            // Device 2: 5 days of one week, an hour each.
            stay(2, 0, monday, hour),
            stay(2, 0, monday + DAY_MS, hour),
            stay(2, 0, monday + 2 * DAY_MS, hour),
            stay(2, 0, monday + 3 * DAY_MS, hour),
            stay(2, 0, monday + 4 * DAY_MS, hour),
            // Device 3: 5 days, but split across a Sunday and the next week.
            stay(3, 0, monday + 4 * DAY_MS, hour),
            stay(3, 0, monday + 5 * DAY_MS, hour),
            stay(3, 0, monday + 6 * DAY_MS, hour),
            stay(3, 0, monday + 7 * DAY_MS, hour),
            stay(3, 0, monday + 8 * DAY_MS, hour),
            // Device 4: 3 h at store 0 and 3 h at store 1 on one day: at no one store over 4.
            stay(4, 0, monday, 3 * hour),
            stay(4, 1, monday + 4 * 3_600_000, 3 * hour),
        ];
        sort_stays(&mut stays);
        assert_eq!(staff(&stays, &rules()), HashSet::from([1, 2]));
    }
}
