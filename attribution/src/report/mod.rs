//! The report: the model ([`build`]: every number of a campaign's report), and its
//! presentations, written by [`write`]: `report.json`, CSV tables ([`csv`]), and
//! `report.html` ([`html`]), a self-contained page with inline SVG charts ([`svg`]) for a
//! media planner.

mod csv;
mod html;
mod svg;

use std::path::Path;

use serde::Serialize;

use crate::data::Inputs;
use crate::design::{self, Design, Exclusions, Params, DAY_MS};
use crate::estimate::{self, BoardRow, WindowResult};

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
    /// "ok", or "insufficient_data" when the primary window fails a gate.
    pub status: String,
    pub data_end: String,
    pub passers: u64,
    pub linkable_passers: u64,
    pub linkable_share: f64,
    pub exposed_devices: u64,
    pub control_devices: u64,
    pub exclusions: Exclusions,
    pub placebo_brand: Option<String>,
    pub windows: Vec<WindowResult>,
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
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

pub fn build(inp: &Inputs, p: &Params) -> Report {
    let design: Design = design::design(inp, p);
    let windows: Vec<WindowResult> = (0..p.windows.len())
        .map(|wi| estimate::window(&design, inp, p, wi))
        .collect();
    let primary = windows.iter().find(|w| w.primary).expect("primary window");
    let status = if primary.gate.passed {
        "ok"
    } else {
        "insufficient_data"
    };
    let c = &inp.campaign;
    let hidden = |arm: &dyn Fn(&(u16, u64, u64)) -> u64| {
        let cells: Vec<Vec<u64>> = inp.daily.iter().map(|d| vec![arm(d)]).collect();
        disclosure::hide(&cells, &[p.k_devices], true)
    };
    let (hide_e, hide_c) = (hidden(&|d| d.1), hidden(&|d| d.2));
    let daily = inp
        .daily
        .iter()
        .zip(hide_e.into_iter().zip(hide_c))
        .map(|(&(day, e, ctl), (he, hc))| {
            (
                iso(i64::from(day) * DAY_MS)[..10].to_owned(),
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
        passers: inp.passers,
        linkable_passers: inp.linkable_passers,
        linkable_share: crate::stats::ratio(inp.linkable_passers, inp.passers),
        exposed_devices: design.units.iter().filter(|u| u.exposed).count() as u64,
        control_devices: design.units.iter().filter(|u| !u.exposed).count() as u64,
        placebo_brand: inp.placebo_brand.clone(),
        boards: estimate::by_board(&design, inp, p),
        curves: estimate::curves(&design, inp, p),
        daily,
        mde_pp,
        windows,
        exclusions: design.exclusions,
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
