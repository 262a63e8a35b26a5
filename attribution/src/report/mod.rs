//! The report: the model ([`build`]: every number of a campaign's report), and its
//! presentations, written by [`write`]: `report.json`, CSV tables ([`csv`]), and
//! `report.html` ([`html`]), a self-contained page with inline SVG charts ([`svg`]) for a
//! media planner.

mod csv;
mod html;
mod svg;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::data::Inputs;
use crate::design::{self, Design, Params, PassClass, DAY_MS};
use crate::estimate::geo::Geo;
use crate::estimate::{self, BoardRow, WindowResult};
use crate::stats::Interval;
use crate::units::joined;

#[derive(Serialize)]
pub struct CampaignInfo {
    pub id: String,
    pub brand: String,
    pub creative: String,
    pub boards: usize,
    pub start: String,
    pub end: String,
    pub spend: f64,
    pub currency: String,
    pub loop_secs: i64,
}

#[derive(Serialize)]
pub struct Report {
    pub campaign: CampaignInfo,
    pub params: Params,
    /// "ok", "underpowered" or "insufficient_data" ([`status`]).
    pub status: String,
    pub data_end: String,
    /// Who passed and who was compared or set aside, small counts suppressed.
    pub totals: Totals,
    /// linkable / passers; None when either is suppressed.
    pub linkable_share: Option<f64>,
    pub placebo_brand: Option<String>,
    /// The published windows: the primary always (a primary under k fails the gates, and
    /// the report says it is not for publication), the others unless small.
    pub windows: Vec<WindowResult>,
    /// Windows left out because an arm has fewer than k devices or converters, or their
    /// converters differ by fewer than k from those of a published window over the same
    /// devices (the difference would be a small cell).
    pub suppressed_windows: Vec<u32>,
    pub boards: Vec<BoardRow>,
    /// (hours since t0, exposed, control) over the primary window; null where a point
    /// would give away fewer than k converters ([`estimate::curves`]).
    pub curves: Vec<(f64, Option<f64>, Option<f64>)>,
    /// (date, exposed passes, control passes): days under k passes suppressed (null), with
    /// complements in each arm so that its total (the passes by class) minus the shown days
    /// reveals no small figure.
    pub daily: Vec<(String, Option<u64>, Option<u64>)>,
    /// Minimum detectable effect for the exposed devices found (80 % power).
    pub mde_pp: Option<f64>,
    /// Epoch boundaries (device keys changed) inside the period the report reads, and
    /// whether it followed devices across them ([`crate::data::Boundary`]).
    pub epoch_boundaries: Vec<ShownBoundary>,
    /// The store-level estimate from everyone the store sensors counted
    /// ([`estimate::geo`]), and how it compares with the device comparison's.
    pub geo: Geo,
    pub agreement: Agreement,
}

/// An epoch boundary as published ([`crate::data::Boundary`]): its pairs are devices, so
/// fewer than k are not shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShownBoundary {
    pub epoch: u32,
    pub day: String,
    pub pairs: Option<u64>,
    pub bridged: bool,
}

/// How the two estimators' 95 % intervals compare: the device comparison's headline (the
/// primary window) and the store-level one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Agreement {
    /// Both exclude 0, on the same side.
    BothFindAnEffect,
    /// Both include 0.
    NeitherFindsAnEffect,
    /// One excludes 0, the other includes it: not in conflict, one is less precise.
    OnlyOneFindsAnEffect,
    /// Both exclude 0, on opposite sides: they disagree.
    Opposite,
    /// The store-level estimate has no interval.
    GeoUnavailable,
}

impl Agreement {
    fn of(device: Interval, geo: Option<Interval>) -> Agreement {
        let side = |i: Interval| {
            if i.lo > 0.0 {
                1
            } else if i.hi < 0.0 {
                -1
            } else {
                0
            }
        };
        let Some(geo) = geo else {
            return Agreement::GeoUnavailable;
        };
        match (side(device), side(geo)) {
            (0, 0) => Agreement::NeitherFindsAnEffect,
            (a, b) if a == b => Agreement::BothFindAnEffect,
            (0, _) | (_, 0) => Agreement::OnlyOneFindsAnEffect,
            _ => Agreement::Opposite,
        }
    }
}

/// The report's totals; None where a count is small (k devices; passes count like devices),
/// with complements in each group whose total is published: passers are linkable or not;
/// linkable passers were exposed, control, staff, already inside, or had no clean pass.
#[derive(Serialize)]
pub struct Totals {
    pub passers: Option<u64>,
    pub linkable_passers: Option<u64>,
    pub exposed_devices: Option<u64>,
    pub control_devices: Option<u64>,
    pub staff_devices: Option<u64>,
    pub already_inside_devices: Option<u64>,
    pub devices_without_a_clean_pass: Option<u64>,
    /// Passes of linkable devices in the flight, by class.
    pub passes: BTreeMap<PassClass, Option<u64>>,
}

impl Totals {
    fn new(inp: &Inputs, design: &Design, k: u64) -> Totals {
        let shown = |group: &[u64]| -> Vec<Option<u64>> {
            disclosure::hide_counts(group, k)
                .into_iter()
                .zip(group)
                .map(|(hidden, &n)| (!hidden).then_some(n))
                .collect()
        };
        let small_total = |n: u64| n > 0 && n < k;
        let ex = &design.exclusions;
        let arm = |e: bool| design.units.iter().filter(|u| u.exposed == e).count() as u64;
        let passers = shown(&[
            inp.linkable_passers,
            inp.passers.saturating_sub(inp.linkable_passers),
        ]);
        let linkable = if small_total(inp.passers) {
            None
        } else {
            passers[0]
        };
        let devices = shown(&[
            arm(true),
            arm(false),
            ex.staff_devices,
            ex.already_inside_devices,
            ex.devices_without_a_clean_pass,
        ]);
        // A small linkable total hides its whole group (each part is then small too).
        let device = |i: usize| if linkable.is_some() { devices[i] } else { None };
        Totals {
            passers: (!small_total(inp.passers)).then_some(inp.passers),
            linkable_passers: linkable,
            exposed_devices: device(0),
            control_devices: device(1),
            staff_devices: device(2),
            already_inside_devices: device(3),
            devices_without_a_clean_pass: device(4),
            // No total of all passes is published: each class stands alone.
            passes: ex
                .passes
                .iter()
                .map(|(&class, &n)| (class, (!small_total(n)).then_some(n)))
                .collect(),
        }
    }
}

/// The windows to leave out (by index): a non-primary window with an arm under k devices
/// or k converters, and then, among the rest over the same devices (equal arms: the
/// followed-up devices of a longer window are a subset), one whose converters differ by
/// fewer than k from the next published window's in an arm.
fn small_windows(windows: &[WindowResult], p: &Params) -> Vec<bool> {
    let counts = |w: &WindowResult| {
        let c = &w.comparison;
        [
            c.exposed.devices,
            c.exposed.converters,
            c.control.devices,
            c.control.converters,
        ]
    };
    let (kd, kc) = (p.k_devices, p.k_converters);
    let mut hidden: Vec<bool> = windows
        .iter()
        .map(|w| {
            let c = counts(w);
            let empty = c[0] == 0 && c[2] == 0;
            !w.primary && !empty && (c[0] < kd || c[1] < kc || c[2] < kd || c[3] < kc)
        })
        .collect();
    // Windows are in increasing length; compare each published one with the next
    // published one, hiding the non-primary of a pair that differs by a small cell.
    loop {
        let shown: Vec<usize> = (0..windows.len()).filter(|&i| !hidden[i]).collect();
        let leak = shown.windows(2).find_map(|pair| {
            let (a, b) = (counts(&windows[pair[0]]), counts(&windows[pair[1]]));
            let same_devices = a[0] == b[0] && a[2] == b[2] && a[0] + a[2] > 0;
            let small = |j: usize| a[j].abs_diff(b[j]) < kc;
            (same_devices && (small(1) || small(3))).then(|| {
                if windows[pair[0]].primary {
                    pair[1]
                } else {
                    pair[0]
                }
            })
        });
        match leak {
            Some(i) => hidden[i] = true,
            None => return hidden,
        }
    }
}

/// The report's status: `insufficient_data` when the primary window fails a gate;
/// `underpowered` when its headline interval includes 0 while the minimum detectable lift
/// (80 % power) is above the planned target (a miss that says nothing of the effect);
/// `ok` otherwise (detected, or precise enough that the target would have been).
fn status(
    gate_passed: bool,
    interval: Interval,
    mde_pp: Option<f64>,
    target_pp: f64,
) -> &'static str {
    if !gate_passed {
        "insufficient_data"
    } else if interval.contains(0.0) && mde_pp.is_none_or(|m| m > target_pp) {
        "underpowered"
    } else {
        "ok"
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

pub fn build(inp: &Inputs, p: &Params) -> Report {
    let design: Design = design::design(inp, p);
    // The windows are independent (each with its own seeds), and so is the store-level
    // estimate: each on a thread of its own, the primary's permutation test, the others'
    // bootstraps and the geo's randomization at once.
    let (all, geo): (Vec<WindowResult>, _) = std::thread::scope(|s| {
        let design = &design;
        let geo = s.spawn(|| estimate::geo::of_campaign(inp, p));
        let threads: Vec<_> = (0..p.windows.len())
            .map(|wi| s.spawn(move || estimate::window(design, inp, p, wi)))
            .collect();
        (threads.into_iter().map(joined).collect(), joined(geo))
    });
    let hidden = small_windows(&all, p);
    let suppressed_windows: Vec<u32> = all
        .iter()
        .zip(&hidden)
        .filter(|(_, h)| **h)
        .map(|(w, _)| w.window_days)
        .collect();
    let windows: Vec<WindowResult> = all
        .into_iter()
        .zip(hidden)
        .filter(|(_, h)| !h)
        .map(|(w, _)| w)
        .collect();
    let primary = windows.iter().find(|w| w.primary).expect("primary window");
    let totals = Totals::new(inp, &design, p.k_devices);
    // The shorter published windows over the primary's devices: points of its curve.
    let arms = |w: &WindowResult| (w.comparison.exposed.devices, w.comparison.control.devices);
    let anchor_days: Vec<u32> = windows
        .iter()
        .filter(|w| w.window_days < primary.window_days && arms(w) == arms(primary))
        .map(|w| w.window_days)
        .collect();

    let c = &inp.campaign;
    let hidden = |arm: &dyn Fn(&(u16, u64, u64)) -> u64| {
        let passes: Vec<u64> = inp.daily.iter().map(arm).collect();
        disclosure::hide_counts(&passes, p.k_devices)
    };
    let (hide_e, hide_c) = (hidden(&|d| d.1), hidden(&|d| d.2));
    let daily = inp
        .daily
        .iter()
        .zip(hide_e.into_iter().zip(hide_c))
        .map(|(&(day, e, ctl), (he, hc))| {
            (
                crate::data::iso_day(i64::from(day) * DAY_MS),
                (!he).then_some(e),
                (!hc).then_some(ctl),
            )
        })
        .collect();
    let (ne, nc) = (
        primary.comparison.exposed.devices,
        primary.comparison.control.devices,
    );
    let mde_pp = (ne > 0 && nc > 0).then(|| {
        100.0
            * crate::stats::minimum_detectable(
                primary.comparison.control.rate.max(1e-6),
                ne,
                nc as f64 / ne as f64,
                1.0 - p.confidence,
                0.8,
            )
    });
    let agreement = Agreement::of(primary.headline.interval, geo.interval);
    let status = status(
        primary.gate.passed,
        primary.headline.interval,
        mde_pp,
        p.target_lift_pp,
    );
    Report {
        campaign: CampaignInfo {
            id: c.campaign_id.clone(),
            brand: c.brand.clone(),
            creative: c.creative_id.clone(),
            boards: c.boards.len(),
            start: iso(c.start_ms),
            end: iso(c.end_ms),
            spend: c.spend,
            currency: c.currency.clone(),
            loop_secs: c.loop_ms() / 1000,
        },
        params: p.clone(),
        status: status.to_owned(),
        data_end: iso(inp.data_end_ms),
        linkable_share: totals
            .passers
            .zip(totals.linkable_passers)
            .map(|(n, l)| crate::stats::ratio(l, n)),
        totals,
        placebo_brand: inp.placebo_brand.clone(),
        boards: estimate::by_board(&design, inp, p),
        curves: estimate::curves(&design, inp, p, &anchor_days),
        daily,
        mde_pp,
        windows,
        suppressed_windows,
        epoch_boundaries: inp
            .boundaries
            .iter()
            .map(|b| ShownBoundary {
                epoch: b.epoch,
                day: b.day.clone(),
                pairs: (b.pairs >= p.k_devices).then_some(b.pairs),
                bridged: b.bridged,
            })
            .collect(),
        geo,
        agreement,
    }
}

/// Why the report's files could not be written: the directory is not writable, or the disk
/// is full.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {file}")]
    Encode {
        file: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Writes report.json, report.html and the CSV tables into `dir`.
pub fn write(r: &Report, dir: &Path) -> Result<(), WriteError> {
    std::fs::create_dir_all(dir).map_err(|source| WriteError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let put = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| WriteError::Io { path, source })
    };
    let json = serde_json::to_string_pretty(r).map_err(|e| WriteError::Encode {
        file: "report.json",
        source: e.into(),
    })?;
    put("report.json", json + "\n")?;
    let encoded = |file: &'static str, text: Result<String, ::csv::Error>| {
        text.map_err(|e| WriteError::Encode {
            file,
            source: e.into(),
        })
    };
    put("windows.csv", encoded("windows.csv", csv::windows(r))?)?;
    put("boards.csv", encoded("boards.csv", csv::boards(r))?)?;
    put("daily.csv", encoded("daily.csv", csv::daily(r))?)?;
    put("curves.csv", encoded("curves.csv", csv::curves(r))?)?;
    put(
        "geo_stores.csv",
        encoded("geo_stores.csv", csv::geo_stores(r))?,
    )?;
    put("report.html", html::page(r))?;
    Ok(())
}

/// Escapes text for HTML (element content and quoted attributes): the one escaping helper
/// of the page and its charts.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_underpowered_only_when_the_target_was_out_of_reach() {
        let around_zero = Interval {
            lo: -0.002,
            hi: 0.004,
        };
        let above_zero = Interval {
            lo: 0.001,
            hi: 0.004,
        };
        // Gates first.
        assert_eq!(
            status(false, above_zero, Some(0.3), 0.4),
            "insufficient_data"
        );
        // Includes 0, and a 0.4 pp lift was beyond reach (MDE 0.9 pp): underpowered.
        assert_eq!(status(true, around_zero, Some(0.9), 0.4), "underpowered");
        // Includes 0, though 0.4 pp would have been detected: a real null result.
        assert_eq!(status(true, around_zero, Some(0.3), 0.4), "ok");
        // Detected, whatever the power.
        assert_eq!(status(true, above_zero, Some(0.9), 0.4), "ok");
    }
}
