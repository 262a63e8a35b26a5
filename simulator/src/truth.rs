//! The ground truth: per campaign, the arms and the lift at the people level (what happened)
//! and at the device level (what a faithful pipeline can measure from the sensors).
//!
//! People level: every non-staff person in view of a campaign board while the campaign ran.
//! A pass is exposed if our creative was on screen >= 1 s while the board was in view, control
//! if it was not on screen at all, and excluded if ambiguous (< 1 s) or longer than a loop.
//! A person's arm comes from their first exposed-or-control pass (t0 = its start). Outcomes
//! are visits to the brand's stores in (t0, t0 + window]: `y1` with the campaign's extra
//! visits (what happened), `y0` without them (the counterfactual from the same random draws).
//!
//! Device level: globally addressed, non-staff devices, as the sensors saw them. A pass is a
//! run of board sightings with RSSI >= the board threshold, split by gaps > pass_gap; its
//! interval padded by pad_secs is classified as above. A visit is a stay (store sightings
//! merged over gaps <= visit_gap) lasting >= min_dwell with RSSI >= the store threshold that
//! starts in opening hours. `y1`/`y0` as above, from sensed visits.
//!
//! In both, `target_lift_pp` = mean(y1 - y0 | exposed arm) - mean(y1 - y0 | control arm): the
//! contrast the exposed-vs-control comparison estimates (the second term is the effect that
//! control-arm people got from later exposures). `observed_lift_pp` = p_e - p_c in this
//! realization. `realized_effect_pp` (people) = mean(y1 - y0) over everyone exposed, in the
//! effect window after their first exposure: the configured `true_lift_pp`, realized.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::activity::{kind, CampaignPass, PassClass, Visit};
use crate::plays::Plays;
use crate::scenario::Scenario;
use crate::world::{Micros, SiteKind, World, DAY, SEC};

/// A board or store sighting of a linkable device (millisecond times).
#[derive(Clone, Copy, Debug)]
pub struct DeviceSighting {
    pub device: u32,
    pub site: u32,
    pub first_ms: i64,
    pub last_ms: i64,
    pub rssi_max: i8,
    pub kinds: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    Exposed,
    Control,
}

/// Conversion windows the truth reports (ATTRIBUTION.md: primary 14 d; 1/3/7/30 d), plus
/// the campaign's own.
pub const WINDOWS: [u32; 5] = [1, 3, 7, 14, 30];

/// One unit (person or device) in a campaign's study. Bit `i` of the masks is window `i`
/// of the campaign's windows.
#[derive(Clone, Debug)]
pub struct Unit {
    pub id: u32,
    pub arm: Arm,
    pub t0: Micros,
    pub board: u32,
    /// Converted, converted without the campaign's extra visits, and followed up for the
    /// whole window before the simulation ended.
    pub y1: u32,
    pub y0: u32,
    pub full: u32,
}

/// A lift over one window.
#[derive(Clone, Debug, Serialize)]
pub struct WindowLift {
    pub window_days: u32,
    #[serde(flatten)]
    pub lift: Lift,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Lift {
    pub n_exposed: u64,
    pub n_control: u64,
    pub converted_exposed: u64,
    pub converted_control: u64,
    pub p_exposed: f64,
    pub p_control: f64,
    pub observed_lift_pp: f64,
    pub target_lift_pp: f64,
    /// mean(y1 - y0) in the exposed arm.
    pub effect_exposed_pp: f64,
    /// mean(y1 - y0) in the control arm (later exposures).
    pub effect_control_pp: f64,
}

impl Lift {
    /// The lift over window `bit`, among units followed up for all of it.
    pub fn of(units: &[Unit], bit: u32) -> Lift {
        let m = 1 << bit;
        let arm = |a: Arm| units.iter().filter(move |u| u.arm == a && u.full & m != 0);
        let n = |a| arm(a).count() as u64;
        let x = |a| arm(a).filter(|u| u.y1 & m != 0).count() as u64;
        let eff = |a| arm(a).filter(|u| u.y1 & m != 0 && u.y0 & m == 0).count() as f64;
        let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
        let (ne, nc) = (n(Arm::Exposed), n(Arm::Control));
        let (pe, pc) = (
            ratio(x(Arm::Exposed) as f64, ne),
            ratio(x(Arm::Control) as f64, nc),
        );
        let (ee, ec) = (ratio(eff(Arm::Exposed), ne), ratio(eff(Arm::Control), nc));
        Lift {
            n_exposed: ne,
            n_control: nc,
            converted_exposed: x(Arm::Exposed),
            converted_control: x(Arm::Control),
            p_exposed: pe,
            p_control: pc,
            observed_lift_pp: 100.0 * (pe - pc),
            target_lift_pp: 100.0 * (ee - ec),
            effect_exposed_pp: 100.0 * ee,
            effect_control_pp: 100.0 * ec,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CampaignTruth {
    pub id: String,
    pub configured_lift_pp: f64,
    pub effect_days: u32,
    pub window_days: u32,
    /// People exposed at least once (first exposure in the flight).
    pub people_ever_exposed: u64,
    /// mean(y1 - y0) over them, in the effect window after their first exposure.
    pub realized_effect_pp: f64,
    /// Its standard error: sqrt(e (1 - e) / n).
    pub realized_effect_se_pp: f64,
    /// The primary window's lift, then every window's.
    pub people: Lift,
    pub devices: Lift,
    pub people_by_window: Vec<WindowLift>,
    pub devices_by_window: Vec<WindowLift>,
    /// Passes in view while the campaign ran, by class (people level).
    pub passes: BTreeMap<&'static str, u64>,
    #[serde(skip)]
    pub windows: Vec<u32>,
    #[serde(skip)]
    pub people_units: Vec<Unit>,
    #[serde(skip)]
    pub device_units: Vec<Unit>,
}

pub struct Inputs<'a> {
    pub s: &'a Scenario,
    pub w: &'a World,
    pub plays: &'a Plays<'a>,
    pub passes: &'a [CampaignPass],
    pub visits: &'a [Visit],
    pub exposures: &'a [(u32, u16, Micros)],
    pub sightings: &'a [DeviceSighting],
}

/// Visits by person: (start, brand, extra).
fn visits_by_person(visits: &[Visit]) -> HashMap<u32, Vec<(Micros, u16, bool)>> {
    let mut m: HashMap<u32, Vec<(Micros, u16, bool)>> = HashMap::new();
    for v in visits {
        m.entry(v.person)
            .or_default()
            .push((v.start, v.brand, v.extra.is_some()));
    }
    m
}

/// (y1, y0): a visit, and a baseline visit, to `brand` in `(from, to]`.
fn outcomes<'v>(
    visits: impl Iterator<Item = &'v (Micros, u16, bool)>,
    brand: u16,
    from: Micros,
    to: Micros,
) -> (bool, bool) {
    let mut y = (false, false);
    for &(t, b, extra) in visits {
        if b == brand && t > from && t <= to {
            y.0 = true;
            y.1 |= !extra;
        }
    }
    y
}

/// Outcome masks over `windows` for events `(time, counterfactual too)` after `t0`.
fn masks(
    events: impl Iterator<Item = (Micros, bool)> + Clone,
    t0: Micros,
    windows: &[u32],
    end: Micros,
) -> (u32, u32, u32) {
    let (mut y1, mut y0, mut full) = (0, 0, 0);
    for (i, &wd) in windows.iter().enumerate() {
        let to = t0 + Micros::from(wd) * DAY;
        for (t, base) in events.clone() {
            if t > t0 && t <= to {
                y1 |= 1 << i;
                if base {
                    y0 |= 1 << i;
                }
            }
        }
        if to <= end {
            full |= 1 << i;
        }
    }
    (y1, y0, full)
}

pub fn campaigns(inp: &Inputs) -> Vec<CampaignTruth> {
    let (s, w) = (inp.s, inp.w);
    let by_person = visits_by_person(inp.visits);
    let none = Vec::new();
    let stays = stays(inp);
    let device_passes = device_passes(inp);
    s.campaigns
        .iter()
        .enumerate()
        .map(|(c, camp)| {
            let brand = s
                .brands
                .iter()
                .position(|b| b.name == camp.brand)
                .expect("validated") as u16;
            let mut windows: Vec<u32> = WINDOWS.iter().copied().chain([camp.window_days]).collect();
            windows.sort_unstable();
            windows.dedup();
            let primary = windows
                .iter()
                .position(|&x| x == camp.window_days)
                .expect("included") as u32;
            let end = w.day_start(w.days);

            // People.
            let mut passes: Vec<&CampaignPass> = inp
                .passes
                .iter()
                .filter(|p| {
                    usize::from(p.campaign) == c && w.people[p.person as usize].staff_at.is_none()
                })
                .collect();
            passes.sort_by_key(|p| (p.person, p.start, p.board));
            let mut by_class = BTreeMap::new();
            for p in &passes {
                *by_class.entry(p.class.as_str()).or_insert(0) += 1;
            }
            let mut people_units = Vec::new();
            let mut last_person = None;
            for p in passes {
                if last_person == Some(p.person) {
                    continue;
                }
                let arm = match p.class {
                    PassClass::Exposed => Arm::Exposed,
                    PassClass::Control => Arm::Control,
                    _ => continue,
                };
                last_person = Some(p.person);
                let v = by_person.get(&p.person).unwrap_or(&none);
                let events = v.iter().filter(|e| e.1 == brand).map(|e| (e.0, !e.2));
                let (y1, y0, full) = masks(events, p.start, &windows, end);
                people_units.push(Unit {
                    id: p.person,
                    arm,
                    t0: p.start,
                    board: p.board,
                    y1,
                    y0,
                    full,
                });
            }
            let effect = Micros::from(camp.effect_days) * DAY;
            let exposed: Vec<(bool, bool)> = inp
                .exposures
                .iter()
                .filter(|e| usize::from(e.1) == c)
                .map(|&(pid, _, tx)| {
                    outcomes(
                        by_person.get(&pid).unwrap_or(&none).iter(),
                        brand,
                        tx,
                        tx + effect,
                    )
                })
                .collect();
            let n = exposed.len() as f64;
            let e = if n > 0.0 {
                exposed.iter().filter(|(y1, y0)| *y1 && !*y0).count() as f64 / n
            } else {
                0.0
            };

            // Devices.
            let mut device_units = Vec::new();
            for (&device, dp) in &device_passes {
                let first = dp.iter().find_map(|&(board, a, b)| {
                    if !(inp.plays.runs(c, board, a) && inp.plays.playing(a)) {
                        return None;
                    }
                    let pad = Micros::from(s.billboards.pad_secs) * SEC;
                    let (pa, pb) = (a - pad, b + pad);
                    if pb - pa > inp.plays.loop_len() {
                        return None;
                    }
                    let overlap = inp.plays.overlap(c, board, pa, pb);
                    if overlap >= SEC {
                        Some((Arm::Exposed, board, a))
                    } else if overlap == 0 {
                        Some((Arm::Control, board, a))
                    } else {
                        None
                    }
                });
                let Some((arm, board, t0)) = first else {
                    continue;
                };
                let events = stays
                    .get(&device)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|st| {
                        let SiteKind::Store { brand: b } = w.sites[st.site as usize].kind else {
                            return None;
                        };
                        // Without the campaign, a stay remains if it holds baseline-visit frames
                        // or no extra-visit frames.
                        (b == brand).then_some((
                            st.first,
                            st.kinds & kind::EXTRA_VISIT == 0 || st.kinds & kind::VISIT != 0,
                        ))
                    });
                let (y1, y0, full) = masks(events, t0, &windows, end);
                device_units.push(Unit {
                    id: device,
                    arm,
                    t0,
                    board,
                    y1,
                    y0,
                    full,
                });
            }
            device_units.sort_by_key(|u| u.id);

            CampaignTruth {
                id: camp.id.clone(),
                configured_lift_pp: camp.true_lift_pp,
                effect_days: camp.effect_days,
                window_days: camp.window_days,
                people_ever_exposed: exposed.len() as u64,
                realized_effect_pp: 100.0 * e,
                realized_effect_se_pp: if n > 0.0 {
                    100.0 * (e * (1.0 - e) / n).sqrt()
                } else {
                    0.0
                },
                people: Lift::of(&people_units, primary),
                devices: Lift::of(&device_units, primary),
                people_by_window: by_window(&people_units, &windows),
                devices_by_window: by_window(&device_units, &windows),
                windows,
                passes: by_class,
                people_units,
                device_units,
            }
        })
        .collect()
}

fn by_window(units: &[Unit], windows: &[u32]) -> Vec<WindowLift> {
    windows
        .iter()
        .enumerate()
        .map(|(i, &window_days)| WindowLift {
            window_days,
            lift: Lift::of(units, i as u32),
        })
        .collect()
}

/// A device's stay at a store as the sensors saw it (microseconds).
#[derive(Clone, Copy, Debug)]
pub struct Stay {
    pub site: u32,
    pub first: Micros,
    pub last: Micros,
    pub kinds: u8,
}

/// Store visits of linkable devices, by device: stays that pass the visit rule.
pub fn stays(inp: &Inputs) -> HashMap<u32, Vec<Stay>> {
    let (s, w) = (inp.s, inp.w);
    let gap = i64::from(s.stores.visit_gap_mins) * 60_000;
    let mut rows: Vec<&DeviceSighting> = inp
        .sightings
        .iter()
        .filter(|x| matches!(w.sites[x.site as usize].kind, SiteKind::Store { .. }))
        .collect();
    rows.sort_by_key(|x| (x.device, x.site, x.first_ms));
    let mut out: HashMap<u32, Vec<Stay>> = HashMap::new();
    let mut push = |cur: Option<(u32, u32, i64, i64, i8, u8)>| {
        let Some((device, site, first, last, rssi, kinds)) = cur else {
            return;
        };
        let st = &w.sites[site as usize];
        let tod_h = first.rem_euclid(86_400_000) / 3_600_000;
        if last - first >= i64::from(s.stores.min_dwell_secs) * 1000
            && rssi >= s.stores.rssi_threshold_dbm
            && (i64::from(st.open_hour)..i64::from(st.close_hour)).contains(&tod_h)
        {
            out.entry(device).or_default().push(Stay {
                site,
                first: first * 1000,
                last: last * 1000,
                kinds,
            });
        }
    };
    let mut cur: Option<(u32, u32, i64, i64, i8, u8)> = None;
    for x in rows {
        match &mut cur {
            Some(c) if c.0 == x.device && c.1 == x.site && x.first_ms - c.3 <= gap => {
                c.3 = c.3.max(x.last_ms);
                c.4 = c.4.max(x.rssi_max);
                c.5 |= x.kinds;
            }
            _ => {
                push(cur.take());
                cur = Some((x.device, x.site, x.first_ms, x.last_ms, x.rssi_max, x.kinds));
            }
        }
    }
    push(cur);
    for v in out.values_mut() {
        v.sort_by_key(|st| st.first);
    }
    out
}

/// Sensed passes of linkable devices, by device: (board, first, last) in time order.
fn device_passes(inp: &Inputs) -> BTreeMap<u32, Vec<(u32, Micros, Micros)>> {
    let (s, w) = (inp.s, inp.w);
    let gap = i64::from(s.billboards.pass_gap_mins) * 60_000;
    let mut rows: Vec<&DeviceSighting> = inp
        .sightings
        .iter()
        .filter(|x| {
            w.sites[x.site as usize].kind == SiteKind::Billboard
                && x.rssi_max >= s.billboards.rssi_threshold_dbm
        })
        .collect();
    rows.sort_by_key(|x| (x.device, x.site, x.first_ms));
    let mut out: BTreeMap<u32, Vec<(u32, Micros, Micros)>> = BTreeMap::new();
    let mut cur: Option<(u32, u32, i64, i64)> = None;
    let mut push = |c: Option<(u32, u32, i64, i64)>| {
        if let Some((d, site, a, b)) = c {
            out.entry(d).or_default().push((site, a * 1000, b * 1000));
        }
    };
    for x in rows {
        match &mut cur {
            Some(c) if c.0 == x.device && c.1 == x.site && x.first_ms - c.3 <= gap => {
                c.3 = c.3.max(x.last_ms)
            }
            _ => {
                push(cur.take());
                cur = Some((x.device, x.site, x.first_ms, x.last_ms));
            }
        }
    }
    push(cur);
    for v in out.values_mut() {
        v.sort_by_key(|p| (p.1, p.0));
    }
    out
}
