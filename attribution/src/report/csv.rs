//! The report's tables as CSV (the `csv` crate, serde rows): one file per table, numbers
//! with 6 decimals, an empty cell where a figure is missing or suppressed.

use serde::{Serialize, Serializer};

use super::Report;
use crate::estimate::HeadlineMethod;

/// A figure: 6 decimals; empty when not finite or absent.
#[derive(Clone, Copy, Default)]
struct Num(Option<f64>);

impl From<f64> for Num {
    fn from(x: f64) -> Num {
        Num(Some(x))
    }
}

impl From<Option<f64>> for Num {
    fn from(x: Option<f64>) -> Num {
        Num(x)
    }
}

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(x) if x.is_finite() => s.serialize_str(&format!("{x:.6}")),
            _ => s.serialize_str(""),
        }
    }
}

/// `rows` as CSV with a header of the row type's fields (written for an empty table too).
fn table<R: Serialize + Default>(rows: &[R]) -> Result<String, ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        // The header, from a row that is then left out.
        w.serialize(R::default())?;
    }
    for r in rows {
        w.serialize(r)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ::csv::Error::from(e.into_error()))?;
    // The fields are Rust strings and numbers: UTF-8 by construction.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(if rows.is_empty() {
        text.lines().next().unwrap_or("").to_owned() + "\n"
    } else {
        text
    })
}

#[derive(Serialize, Default)]
struct WindowRow {
    window_days: u32,
    /// Left out by k-anonymity: every other cell of the row is empty.
    suppressed: bool,
    primary: bool,
    gate_passed: bool,
    n_exposed: u64,
    converters_exposed: u64,
    n_control: u64,
    converters_control: u64,
    p_exposed: Num,
    p_control: Num,
    difference: Num,
    headline_method: Option<HeadlineMethod>,
    headline_lo: Num,
    headline_hi: Num,
    newcombe_lo: Num,
    newcombe_hi: Num,
    risk_ratio: Num,
    katz_lo: Num,
    katz_hi: Num,
    p_value: Num,
    stratified: Num,
    stratified_lo: Num,
    stratified_hi: Num,
    sparse_strata: Option<usize>,
    one_arm_strata_devices: Option<u64>,
    bootstrap_lo: Num,
    bootstrap_hi: Num,
    design_effect: Num,
    cuped: Num,
    cuped_lo: Num,
    cuped_hi: Num,
    incremental_converters: Num,
    attributed_converters: u64,
    incremental_revenue: Num,
    iroas: Num,
    loyalty_linked_exposed: Option<u64>,
    loyalty_linked_control: Option<u64>,
    purchases_per_device_exposed: Num,
    purchases_per_device_control: Num,
    purchases_difference: Num,
    purchases_difference_lo: Num,
    purchases_difference_hi: Num,
    mean_check_exposed: Num,
    mean_check_control: Num,
    mean_check_difference: Num,
    mean_check_difference_lo: Num,
    mean_check_difference_hi: Num,
}

/// windows.csv: every window's estimates.
pub(super) fn windows(r: &Report) -> Result<String, ::csv::Error> {
    let mut rows: Vec<WindowRow> = r
        .windows
        .iter()
        .map(|w| {
            let c = &w.comparison;
            let l = w.loyalty.as_ref();
            let check = l.and_then(|l| l.check_difference);
            WindowRow {
                window_days: w.window_days,
                suppressed: false,
                primary: w.primary,
                gate_passed: w.gate.passed,
                n_exposed: c.exposed.devices,
                converters_exposed: c.exposed.converters,
                n_control: c.control.devices,
                converters_control: c.control.converters,
                p_exposed: c.exposed.rate.into(),
                p_control: c.control.rate.into(),
                difference: c.difference.into(),
                headline_method: Some(w.headline.method),
                headline_lo: w.headline.interval.lo.into(),
                headline_hi: w.headline.interval.hi.into(),
                newcombe_lo: c.newcombe.lo.into(),
                newcombe_hi: c.newcombe.hi.into(),
                risk_ratio: c.risk_ratio.into(),
                katz_lo: c.katz.map(|k| k.lo).into(),
                katz_hi: c.katz.map(|k| k.hi).into(),
                p_value: c.p_value.into(),
                stratified: w.stratified.map(|e| e.estimate).into(),
                stratified_lo: w.stratified.map(|e| e.interval.lo).into(),
                stratified_hi: w.stratified.map(|e| e.interval.hi).into(),
                sparse_strata: w.strata.map(|s| s.sparse),
                one_arm_strata_devices: w.strata.map(|s| s.excluded_devices),
                bootstrap_lo: w.bootstrap.map(|e| e.interval.lo).into(),
                bootstrap_hi: w.bootstrap.map(|e| e.interval.hi).into(),
                design_effect: w.design_effect.into(),
                cuped: w.cuped.map(|e| e.estimate).into(),
                cuped_lo: w.cuped.map(|e| e.interval.lo).into(),
                cuped_hi: w.cuped.map(|e| e.interval.hi).into(),
                incremental_converters: w.incremental_converters.estimate.into(),
                attributed_converters: w.attributed_converters,
                incremental_revenue: w.revenue.incremental.estimate.into(),
                iroas: w.revenue.iroas.map(|e| e.estimate).into(),
                loyalty_linked_exposed: l.map(|l| l.linked_exposed),
                loyalty_linked_control: l.map(|l| l.linked_control),
                purchases_per_device_exposed: l.map(|l| l.frequency_exposed).into(),
                purchases_per_device_control: l.map(|l| l.frequency_control).into(),
                purchases_difference: l.map(|l| l.frequency_difference.estimate).into(),
                purchases_difference_lo: l.map(|l| l.frequency_difference.interval.lo).into(),
                purchases_difference_hi: l.map(|l| l.frequency_difference.interval.hi).into(),
                mean_check_exposed: l.map(|l| l.check_exposed).into(),
                mean_check_control: l.map(|l| l.check_control).into(),
                mean_check_difference: check.map(|d| d.estimate).into(),
                mean_check_difference_lo: check.map(|d| d.interval.lo).into(),
                mean_check_difference_hi: check.map(|d| d.interval.hi).into(),
            }
        })
        .collect();
    rows.extend(r.suppressed_windows.iter().map(|&window_days| WindowRow {
        window_days,
        suppressed: true,
        ..WindowRow::default()
    }));
    rows.sort_by_key(|w| w.window_days);
    table(&rows)
}

#[derive(Serialize, Default)]
struct BoardRow {
    board: String,
    suppressed: bool,
    n_exposed: Option<u64>,
    converters_exposed: Option<u64>,
    n_control: Option<u64>,
    converters_control: Option<u64>,
    difference: Num,
    lo: Num,
    hi: Num,
}

/// boards.csv: the lift by board, suppressed rows empty.
pub(super) fn boards(r: &Report) -> Result<String, ::csv::Error> {
    let rows: Vec<BoardRow> = r
        .boards
        .iter()
        .map(|b| BoardRow {
            board: b.board.clone(),
            suppressed: b.suppressed,
            n_exposed: b.exposed.map(|e| e.1),
            converters_exposed: b.exposed.map(|e| e.0),
            n_control: b.control.map(|e| e.1),
            converters_control: b.control.map(|e| e.0),
            difference: b.difference.map(|d| d.estimate).into(),
            lo: b.difference.map(|d| d.interval.lo).into(),
            hi: b.difference.map(|d| d.interval.hi).into(),
        })
        .collect();
    table(&rows)
}

#[derive(Serialize, Default)]
struct DailyRow {
    date: String,
    exposed_passes: Option<u64>,
    control_passes: Option<u64>,
}

/// daily.csv: exposed and control passes per day, small cells suppressed.
pub(super) fn daily(r: &Report) -> Result<String, ::csv::Error> {
    let rows: Vec<DailyRow> = r
        .daily
        .iter()
        .map(|(date, e, c)| DailyRow {
            date: date.clone(),
            exposed_passes: *e,
            control_passes: *c,
        })
        .collect();
    table(&rows)
}

#[derive(Serialize, Default)]
struct CurveRow {
    /// As the hours print (`24`, `1.5`), not as a float serializes (`24.0`).
    hours_since_t0: String,
    exposed: Num,
    control: Num,
}

/// curves.csv: the cumulative conversion of both arms.
pub(super) fn curves(r: &Report) -> Result<String, ::csv::Error> {
    let rows: Vec<CurveRow> = r
        .curves
        .iter()
        .map(|&(h, e, c)| CurveRow {
            hours_since_t0: h.to_string(),
            exposed: e.into(),
            control: c.into(),
        })
        .collect();
    table(&rows)
}

#[derive(Serialize, Default)]
struct GeoStoreRow {
    store: String,
    /// treated (near a campaign board), control, or excluded.
    group: &'static str,
    /// Why an excluded store was left out.
    reason: &'static str,
}

/// The store-level estimate's stores: which group each was in.
pub(super) fn geo_stores(r: &Report) -> Result<String, ::csv::Error> {
    let g = &r.geo;
    let group = |ids: &[String], group: &'static str| {
        ids.iter()
            .map(|store| GeoStoreRow {
                store: store.clone(),
                group,
                reason: "",
            })
            .collect::<Vec<_>>()
    };
    let rows: Vec<GeoStoreRow> = group(&g.treated, "treated")
        .into_iter()
        .chain(group(&g.control, "control"))
        .chain(g.excluded.iter().map(|e| GeoStoreRow {
            store: e.store.clone(),
            group: "excluded",
            reason: e.reason,
        }))
        .collect();
    table(&rows)
}
