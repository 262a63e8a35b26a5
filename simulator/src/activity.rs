//! What each person does each day: trips past boards and shop fronts, store visits (baseline
//! hazard, plus the campaign's effect after a first exposure), shifts for staff, receipts.

use crate::plays::Plays;
use crate::rng::{hash, Stream, Tag};
use crate::scenario::Scenario;
use crate::world::{Micros, Route, SiteKind, World, DAY, HOUR, SEC};

/// Why a device was near a sensor; frames carry it so the truth can tell visits apart.
pub mod kind {
    pub const PASS: u8 = 1;
    pub const FRONTAGE: u8 = 2;
    pub const VISIT: u8 = 4;
    pub const EXTRA_VISIT: u8 = 8;
    pub const STAFF: u8 = 16;
}

#[derive(Clone, Copy, Debug)]
pub enum Geometry {
    /// Moving past in a straight line, closest at `t_closest`.
    Line {
        closest_m: f32,
        speed: f32,
        t_closest: Micros,
    },
    /// Staying at a distance.
    Still { dist_m: f32 },
}

impl Geometry {
    pub fn distance_m(&self, t: Micros) -> f64 {
        match *self {
            Geometry::Line {
                closest_m,
                speed,
                t_closest,
            } => {
                let along = f64::from(speed) * (t - t_closest) as f64 / SEC as f64;
                (f64::from(closest_m).powi(2) + along * along).sqrt()
            }
            Geometry::Still { dist_m } => f64::from(dist_m),
        }
    }
}

/// A device's owner near a site for a while.
#[derive(Clone, Copy, Debug)]
pub struct Presence {
    pub site: u32,
    pub start: Micros,
    pub end: Micros,
    pub geom: Geometry,
    /// The person is inside the site (no wall between device and sensor).
    pub indoor: bool,
    pub kind: u8,
    /// Index into the day's visits, for visits.
    pub visit: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct Visit {
    pub person: u32,
    pub store: u32,
    pub brand: u16,
    pub start: Micros,
    pub end: Micros,
    /// The campaign whose effect caused it, for extra visits.
    pub extra: Option<u16>,
    /// A sensor of the store captured at least one frame from one of the person's devices.
    pub seen: bool,
    pub receipt: Option<Receipt>,
}

#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    pub id: u64,
    pub at: Micros,
    pub cents: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassClass {
    /// Our creative was on screen for >= 1 s of the time the board was in view.
    Exposed,
    /// The campaign ran on the board then, but our creative was not on screen.
    Control,
    /// Our creative was on screen for less than a second.
    Ambiguous,
    /// In view for longer than a loop: saw every creative.
    Long,
}

impl PassClass {
    pub fn as_str(self) -> &'static str {
        match self {
            PassClass::Exposed => "exposed",
            PassClass::Control => "control",
            PassClass::Ambiguous => "ambiguous",
            PassClass::Long => "long",
        }
    }
}

/// A person in view of a board while a campaign ran on it.
#[derive(Clone, Copy, Debug)]
pub struct CampaignPass {
    pub person: u32,
    pub campaign: u16,
    pub board: u32,
    pub start: Micros,
    pub end: Micros,
    pub overlap: Micros,
    pub class: PassClass,
}

/// A passer-by of a store front.
#[derive(Clone, Copy, Debug)]
pub struct Frontage {
    pub person: u32,
    pub store: u32,
    pub at: Micros,
}

/// State a person carries from day to day.
#[derive(Clone, Debug, Default)]
pub struct PersonState {
    /// First exposure to each campaign's creative.
    pub exposed_at: Vec<Option<Micros>>,
    /// Extra visits the campaign's effect scheduled: (time, store, brand, campaign).
    pending: Vec<(Micros, u32, u16, u16)>,
}

/// Everything one person-day produced, appended to by each person of a shard.
#[derive(Default)]
pub struct DayOut {
    pub presences: Vec<Presence>,
    pub visits: Vec<Visit>,
    pub passes: Vec<CampaignPass>,
    pub frontage: Vec<Frontage>,
    /// (person, campaign, time) of first exposures.
    pub exposures: Vec<(u32, u16, Micros)>,
}

pub struct Activity<'a> {
    pub s: &'a Scenario,
    pub w: &'a World,
    pub plays: &'a Plays<'a>,
}

/// Opening-time arithmetic for a brand open `[open, close)` hours every day.
struct OpenClock {
    open: Micros,
    len: Micros,
}

impl OpenClock {
    fn new(open_hour: u32, close_hour: u32) -> Self {
        OpenClock {
            open: Micros::from(open_hour) * HOUR,
            len: Micros::from(close_hour - open_hour) * HOUR,
        }
    }

    /// Opening time elapsed since 1970 at wall time `t`.
    fn to_open(&self, t: Micros) -> Micros {
        let day = t.div_euclid(DAY);
        day * self.len + (t.rem_euclid(DAY) - self.open).clamp(0, self.len)
    }

    fn to_wall(&self, o: Micros) -> Micros {
        o.div_euclid(self.len) * DAY + self.open + o.rem_euclid(self.len)
    }
}

impl Activity<'_> {
    /// Simulates person `pid` on day `d`, appending to `out`.
    pub fn person_day(&self, pid: u32, d: u32, state: &mut PersonState, out: &mut DayOut) {
        let (s, w) = (self.s, self.w);
        let person = &w.people[pid as usize];
        if state.exposed_at.len() != s.campaigns.len() {
            state.exposed_at = vec![None; s.campaigns.len()];
        }
        let mut r = Stream::new(w.seed, Tag::Day, u64::from(pid), u64::from(d));
        let day0 = w.day_start(d);
        let weekday = w.weekday(d);
        let weekend = weekday >= 5;
        let visits_from = out.visits.len();
        let passes_from = out.passes.len();

        // Trips.
        let hours = |h: f64| day0 + (h * HOUR as f64) as Micros;
        let travel =
            |route: &Route| (f64::from(route.length_m / person.speed_mps) * SEC as f64) as Micros;
        if let Some(store) = person.staff_at {
            if !person.days_off.contains(&weekday) {
                let site = &w.sites[store as usize];
                let (open, close) = (f64::from(site.open_hour), f64::from(site.close_hour));
                let (from, to) = if r.chance(0.5) {
                    (open, (open + 8.0).min(close))
                } else {
                    ((close - 8.0).max(open), close)
                };
                let (a, b) = (hours(from), hours(to));
                let route = &person.routes[0];
                self.traverse(pid, route, true, a - travel(route), out);
                out.presences.push(Presence {
                    site: store,
                    start: a,
                    end: b,
                    geom: Geometry::Still {
                        dist_m: r.range(2.0, 8.0) as f32,
                    },
                    indoor: true,
                    kind: kind::STAFF,
                    visit: None,
                });
                self.traverse(pid, route, false, b, out);
            }
        } else if person.employed && !weekend {
            let route = &person.routes[0];
            let leave = hours((8.0 + 0.75 * r.normal()).clamp(5.5, 11.0));
            self.traverse(pid, route, true, leave, out);
            let back = hours((17.5 + r.normal()).clamp(13.0, 22.0));
            self.traverse(pid, route, false, back, out);
        }
        let trips = r.poisson(s.population.leisure_trips_per_day * if weekend { 1.5 } else { 1.0 });
        for _ in 0..trips {
            let route = &person.routes[1 + r.below(3) as usize];
            let leave = hours(r.range(9.0, 20.0));
            let stay = (r.range(0.5, 2.0) * HOUR as f64) as Micros;
            self.traverse(pid, route, true, leave, out);
            self.traverse(pid, route, false, leave + travel(route) + stay, out);
        }

        // Exposures in today's passes schedule the campaign's extra visits.
        for p in &out.passes[passes_from..] {
            let c = usize::from(p.campaign);
            if p.overlap >= SEC && state.exposed_at[c].is_none_or(|t| p.start < t) {
                state.exposed_at[c] = Some(p.start);
            }
        }
        for (c, camp) in s.campaigns.iter().enumerate() {
            let Some(tx) = state.exposed_at[c] else {
                continue;
            };
            // Scheduled once, on the day of the first exposure.
            if !(day0..day0 + DAY).contains(&tx) || person.staff_at.is_some() {
                continue;
            }
            let bi = s
                .brands
                .iter()
                .position(|b| b.name == camp.brand)
                .expect("validated");
            out.exposures.push((pid, c as u16, tx));
            let mut rx = Stream::new(w.seed, Tag::Extra, u64::from(pid), c as u64);
            let days = f64::from(camp.effect_days);
            let p0 = 1.0 - (-f64::from(person.rates[bi]) * days).exp();
            let q = (camp.true_lift_pp / 100.0 / (1.0 - p0)).min(1.0);
            let mean = if q >= 1.0 { 8.0 } else { -(1.0 - q).ln() };
            let br = &s.brands[bi];
            let clock = OpenClock::new(br.open_hour, br.close_hour);
            let o0 = clock.to_open(tx);
            for _ in 0..rx.poisson(mean) {
                // Uniform over the opening time in (tx, tx + effect_days].
                let o = o0
                    + 1
                    + rx.below((clock.len * Micros::from(camp.effect_days)) as u64) as Micros;
                let store = w.choose_store(&mut rx, bi, person.home);
                state
                    .pending
                    .push((clock.to_wall(o), store, bi as u16, c as u16));
            }
        }

        // Baseline visits: a Poisson number a day per brand, uniform over opening hours,
        // which makes them a Poisson process in opening time at the person's rate.
        if person.staff_at.is_none() {
            for (bi, br) in s.brands.iter().enumerate() {
                for _ in 0..r.poisson(f64::from(person.rates[bi])) {
                    let clock = OpenClock::new(br.open_hour, br.close_hour);
                    let at = day0 + clock.open + r.below(clock.len as u64) as Micros;
                    let store = w.choose_store(&mut r, bi, person.home);
                    self.visit(pid, store, bi as u16, at, None, out);
                }
            }
        }
        let mut i = 0;
        while i < state.pending.len() {
            let (at, store, bi, c) = state.pending[i];
            if at < day0 + DAY {
                state.pending.swap_remove(i);
                self.visit(pid, store, bi, at, Some(c), out);
            } else {
                i += 1;
            }
        }
        // Keep the order of visits independent of the pending list's order.
        out.visits[visits_from..].sort_by_key(|v| (v.start, v.store, v.extra));
        for (vi, v) in out.visits.iter().enumerate().skip(visits_from) {
            out.presences.push(Presence {
                site: v.store,
                start: v.start,
                end: v.end,
                geom: Geometry::Still {
                    dist_m: Stream::new(w.seed, Tag::Place, u64::from(pid), v.start as u64).range(
                        s.stores.visitor_distance_m[0],
                        s.stores.visitor_distance_m[1],
                    ) as f32,
                },
                indoor: true,
                kind: if v.extra.is_some() {
                    kind::EXTRA_VISIT
                } else {
                    kind::VISIT
                },
                visit: Some(vi),
            });
        }
    }

    fn visit(
        &self,
        pid: u32,
        store: u32,
        brand: u16,
        at: Micros,
        extra: Option<u16>,
        out: &mut DayOut,
    ) {
        let br = &self.s.brands[usize::from(brand)];
        let mut r = Stream::new(self.w.seed, Tag::Receipt, u64::from(pid), at as u64);
        let close = at - at.rem_euclid(DAY) + Micros::from(br.close_hour) * HOUR;
        let dwell =
            (r.lognormal(br.dwell_median_mins, br.dwell_sigma) * 60.0 * SEC as f64) as Micros;
        let end = (at + dwell.max(30 * SEC)).min(close).max(at + SEC);
        let receipt = r.chance(br.purchase_share).then(|| Receipt {
            id: hash(&[self.w.seed, Tag::Receipt as u64, u64::from(pid), at as u64]),
            at: end - r.below(90_000_000) as Micros,
            cents: (r.lognormal(br.basket_median, br.basket_sigma) * 100.0)
                .round()
                .max(1.0) as u64,
        });
        out.visits.push(Visit {
            person: pid,
            store,
            brand,
            start: at,
            end,
            extra,
            seen: false,
            receipt,
        });
    }

    /// Walks or drives `route` (forward: home -> place), leaving at `leave`.
    fn traverse(&self, pid: u32, route: &Route, forward: bool, leave: Micros, out: &mut DayOut) {
        let person = &self.w.people[pid as usize];
        let speed = person.speed_mps;
        let view = self.s.billboards.view_radius_m;
        for near in &route.near {
            let along = if forward {
                near.along_m
            } else {
                route.length_m - near.along_m
            };
            let tc = leave + (f64::from(along / speed) * SEC as f64) as Micros;
            let d = f64::from(near.closest_m);
            let half = |radius: f64| {
                ((radius * radius - d * d).max(0.0).sqrt() / f64::from(speed) * SEC as f64)
                    as Micros
            };
            let site = &self.w.sites[near.site as usize];
            let hear = half(self.w.hear_m);
            let geom = Geometry::Line {
                closest_m: near.closest_m,
                speed,
                t_closest: tc,
            };
            let board = site.kind == SiteKind::Billboard;
            out.presences.push(Presence {
                site: near.site,
                start: tc - hear,
                end: tc + hear,
                geom,
                indoor: false,
                kind: if board { kind::PASS } else { kind::FRONTAGE },
                visit: None,
            });
            if board && d <= view {
                let hv = half(view);
                self.classify(pid, near.site, tc - hv, tc + hv, out);
            } else if !board && d <= self.s.stores.frontage_m {
                out.frontage.push(Frontage {
                    person: pid,
                    store: near.site,
                    at: tc,
                });
            }
        }
    }

    /// Records a pass in view of a board for every campaign running there.
    fn classify(&self, pid: u32, board: u32, a: Micros, b: Micros, out: &mut DayOut) {
        for c in 0..self.s.campaigns.len() {
            if !(self.plays.runs(c, board, a) && self.plays.playing(a)) {
                continue;
            }
            let overlap = self.plays.overlap(c, board, a, b.max(a + 1));
            let class = if b - a > self.plays.loop_len() {
                PassClass::Long
            } else if overlap >= SEC {
                PassClass::Exposed
            } else if overlap > 0 {
                PassClass::Ambiguous
            } else {
                PassClass::Control
            };
            out.passes.push(CampaignPass {
                person: pid,
                campaign: c as u16,
                board,
                start: a,
                end: b,
                overlap,
                class,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_time_maps_back_and_forth() {
        let c = OpenClock::new(8, 21);
        let day = 20_000 * DAY;
        assert_eq!(c.to_open(day + 9 * HOUR), 20_000 * 13 * HOUR + HOUR);
        assert_eq!(
            c.to_open(day + 3 * HOUR),
            c.to_open(day + 8 * HOUR),
            "closed before opening"
        );
        assert_eq!(
            c.to_open(day + 23 * HOUR),
            c.to_open(day + DAY + 8 * HOUR),
            "closed after closing"
        );
        for t in [day + 8 * HOUR, day + 12 * HOUR + 7, day + 21 * HOUR - 1] {
            assert_eq!(c.to_wall(c.to_open(t)), t);
        }
    }
}
