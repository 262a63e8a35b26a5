//! The report: `report.json` (every number), CSV tables, and `report.html`, a
//! self-contained page with inline SVG charts for a media planner.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::analysis::{self, BoardRow, Design, Exclusions, Params, WindowResult, DAY_MS};
use crate::data::Inputs;

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
    /// (hours since t0, exposed, control) over the primary window.
    pub curves: Vec<(f64, f64, f64)>,
    /// (date, exposed passes, control passes), cells under k devices suppressed (null).
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
    let design: Design = analysis::design(inp, p);
    let windows: Vec<WindowResult> = (0..p.windows.len())
        .map(|wi| analysis::window(&design, inp, p, wi))
        .collect();
    let primary = windows.iter().find(|w| w.primary).expect("primary window");
    let status = if primary.gate.passed {
        "ok"
    } else {
        "insufficient_data"
    };
    let c = &inp.campaign;
    let k = p.k_devices;
    let daily = inp
        .daily
        .iter()
        .map(|&(day, e, ctl)| {
            (
                iso(i64::from(day) * DAY_MS)[..10].to_owned(),
                (e >= k).then_some(e),
                (ctl >= k).then_some(ctl),
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
        boards: analysis::by_board(&design, inp, p),
        curves: analysis::curves(&design, inp, p),
        daily,
        mde_pp,
        windows,
        exclusions: design.exclusions,
    }
}

/// Writes report.json, report.html and the CSV tables into `dir`.
pub fn write(r: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let put = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    put(
        "report.json",
        serde_json::to_string_pretty(r).context("serializing the report")? + "\n",
    )?;
    put("windows.csv", windows_csv(r))?;
    put("boards.csv", boards_csv(r))?;
    put("daily.csv", daily_csv(r))?;
    put("curves.csv", curves_csv(r))?;
    put("report.html", html(r))?;
    Ok(())
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        String::new()
    }
}

fn windows_csv(r: &Report) -> String {
    let mut s = String::from(
        "window_days,primary,gate_passed,n_exposed,converters_exposed,n_control,converters_control,\
         p_exposed,p_control,difference,newcombe_lo,newcombe_hi,risk_ratio,katz_lo,katz_hi,p_value,\
         stratified,bootstrap_lo,bootstrap_hi,design_effect,cuped,cuped_lo,cuped_hi,\
         incremental_converters,attributed_converters,incremental_revenue,iroas\n",
    );
    for w in &r.windows {
        let c = &w.comparison;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            w.window_days,
            w.primary,
            w.gate.passed,
            c.exposed.devices,
            c.exposed.converters,
            c.control.devices,
            c.control.converters,
            num(c.exposed.rate),
            num(c.control.rate),
            num(c.difference),
            num(c.newcombe.lo),
            num(c.newcombe.hi),
            c.risk_ratio.map_or(String::new(), num),
            c.katz.map_or(String::new(), |k| num(k.lo)),
            c.katz.map_or(String::new(), |k| num(k.hi)),
            num(c.p_value),
            w.stratified.map_or(String::new(), |e| num(e.estimate)),
            w.bootstrap.map_or(String::new(), |e| num(e.interval.lo)),
            w.bootstrap.map_or(String::new(), |e| num(e.interval.hi)),
            w.design_effect.map_or(String::new(), num),
            w.cuped.map_or(String::new(), |e| num(e.estimate)),
            w.cuped.map_or(String::new(), |e| num(e.interval.lo)),
            w.cuped.map_or(String::new(), |e| num(e.interval.hi)),
            num(w.incremental_converters.estimate),
            w.attributed_converters,
            num(w.revenue.incremental.estimate),
            w.revenue.iroas.map_or(String::new(), |e| num(e.estimate)),
        );
    }
    s
}

fn boards_csv(r: &Report) -> String {
    let mut s = String::from(
        "board,suppressed,n_exposed,converters_exposed,n_control,converters_control,difference,lo,hi\n",
    );
    for b in &r.boards {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{}",
            b.board,
            b.suppressed,
            b.exposed.map_or(String::new(), |e| e.1.to_string()),
            b.exposed.map_or(String::new(), |e| e.0.to_string()),
            b.control.map_or(String::new(), |e| e.1.to_string()),
            b.control.map_or(String::new(), |e| e.0.to_string()),
            b.difference.map_or(String::new(), |d| num(d.estimate)),
            b.difference.map_or(String::new(), |d| num(d.interval.lo)),
            b.difference.map_or(String::new(), |d| num(d.interval.hi)),
        );
    }
    s
}

fn daily_csv(r: &Report) -> String {
    let mut s = String::from("date,exposed_passes,control_passes\n");
    for (d, e, c) in &r.daily {
        let f = |x: &Option<u64>| x.map_or(String::new(), |v| v.to_string());
        let _ = writeln!(s, "{d},{},{}", f(e), f(c));
    }
    s
}

fn curves_csv(r: &Report) -> String {
    let mut s = String::from("hours_since_t0,exposed,control\n");
    for (h, e, c) in &r.curves {
        let _ = writeln!(s, "{h},{},{}", num(*e), num(*c));
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pp(x: f64) -> String {
    format!("{:+.2} pp", 100.0 * x)
}

const W: f64 = 640.0;
const H: f64 = 240.0;
const M: f64 = 44.0;

/// Maps a value in [lo, hi] to a y pixel.
fn y_of(v: f64, lo: f64, hi: f64) -> f64 {
    H - M / 2.0 - (v - lo) / (hi - lo).max(1e-12) * (H - M)
}

fn svg_open(title: &str) -> String {
    format!(
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" class=\"chart\">",
        esc(title)
    )
}

fn axis_y(s: &mut String, lo: f64, hi: f64, fmt: &dyn Fn(f64) -> String) {
    for k in 0..=4 {
        let v = lo + (hi - lo) * f64::from(k) / 4.0;
        let y = y_of(v, lo, hi);
        let _ = write!(
            s,
            "<line x1=\"{M}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
            W - 8.0,
            M - 4.0,
            y + 4.0,
            esc(&fmt(v))
        );
    }
}

/// Cumulative conversion of both arms over the window.
fn curves_svg(r: &Report) -> String {
    let mut s = svg_open("Cumulative conversion of exposed and control devices");
    let hi = r
        .curves
        .iter()
        .map(|c| c.1.max(c.2))
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.1;
    axis_y(&mut s, 0.0, hi, &|v| format!("{:.1}%", 100.0 * v));
    let tmax = r.curves.last().map_or(1.0, |c| c.0).max(1.0);
    let x_of = |t: f64| M + t / tmax * (W - M - 12.0);
    for (i, class) in [(1, "exposed"), (2, "control")] {
        let pts: Vec<String> = r
            .curves
            .iter()
            .map(|c| {
                let v = if i == 1 { c.1 } else { c.2 };
                format!("{:.1},{:.1}", x_of(c.0), y_of(v, 0.0, hi))
            })
            .collect();
        let _ = write!(
            s,
            "<polyline points=\"{}\" class=\"{class}\" fill=\"none\"/>",
            pts.join(" ")
        );
    }
    let unit = if tmax <= 72.0 { "hours" } else { "days" };
    let scale = if tmax <= 72.0 { 1.0 } else { 24.0 };
    for k in 0..=4 {
        let t = tmax * f64::from(k) / 4.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{:.0}</text>",
            x_of(t),
            H - 4.0,
            t / scale
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"12\" class=\"tick\" text-anchor=\"end\">x: {unit} after the first pass</text></svg>",
        W - 8.0,
    );
    s
}

/// Point estimates with interval bars, one per row.
/// A labelled estimate with its interval; `None` when suppressed or empty.
type Bar = (String, Option<analysis::Estimate>);

/// `missing` labels a row without an estimate.
fn intervals_svg(title: &str, rows: &[Bar], missing: &str) -> String {
    let mut s = svg_open(title);
    let vals: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.1)
        .flat_map(|e| [e.estimate, e.interval.lo, e.interval.hi])
        .filter(|v| v.is_finite())
        .collect();
    let lo = vals.iter().copied().fold(0.0, f64::min);
    let hi = vals.iter().copied().fold(0.0, f64::max);
    let pad = ((hi - lo) * 0.1).max(1e-4);
    let (lo, hi) = (lo - pad, hi + pad);
    axis_y(&mut s, lo, hi, &|v| format!("{:+.1}", 100.0 * v));
    let zero = y_of(0.0, lo, hi);
    let _ = write!(
        s,
        "<line x1=\"{M}\" x2=\"{}\" y1=\"{zero:.1}\" y2=\"{zero:.1}\" class=\"zero\"/>",
        W - 8.0
    );
    let n = rows.len().max(1) as f64;
    for (i, (label, v)) in rows.iter().enumerate() {
        let x = M + (i as f64 + 0.5) * (W - M - 12.0) / n;
        match v {
            Some(est) => {
                let (e, l, h) = (&est.estimate, &est.interval.lo, &est.interval.hi);
                let _ = write!(
                    s,
                    "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" class=\"bar\"/>\
                     <circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"4\" class=\"point\"/>",
                    y_of(*l, lo, hi),
                    y_of(*h, lo, hi),
                    y_of(*e, lo, hi)
                );
            }
            None => {
                let _ = write!(
                    s,
                    "<text x=\"{x:.1}\" y=\"{zero:.1}\" class=\"tick\" text-anchor=\"middle\">{missing}</text>"
                );
            }
        }
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
            H - 4.0,
            esc(label)
        );
    }
    s.push_str("</svg>");
    s
}

/// Exposed and control passes per day, side by side.
fn daily_svg(r: &Report) -> String {
    let mut s = svg_open("Exposed and control passes per day");
    let hi = r
        .daily
        .iter()
        .flat_map(|d| [d.1.unwrap_or(0), d.2.unwrap_or(0)])
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    axis_y(&mut s, 0.0, hi, &|v| format!("{v:.0}"));
    let n = r.daily.len().max(1) as f64;
    let slot = (W - M - 12.0) / n;
    for (i, (day, e, c)) in r.daily.iter().enumerate() {
        let x = M + i as f64 * slot;
        for (j, (v, class)) in [(e, "exposed"), (c, "control")].into_iter().enumerate() {
            if let Some(v) = v {
                let y = y_of(*v as f64, 0.0, hi);
                let _ = write!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"{class}-fill\"/>",
                    x + slot * (0.1 + 0.4 * j as f64),
                    slot * 0.38,
                    (H - M / 2.0 - y).max(0.0)
                );
            }
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
            x + slot / 2.0,
            H - 4.0,
            esc(&day[5..])
        );
    }
    s.push_str("</svg>");
    s
}

fn html(r: &Report) -> String {
    let primary = r.windows.iter().find(|w| w.primary).expect("primary");
    let c = &primary.comparison;
    let money = |x: f64| format!("{x:.0} {}", r.campaign.currency);
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Campaign lift: {id}</title><style>\
         body{{font:15px/1.5 system-ui,sans-serif;max-width:760px;margin:2em auto;padding:0 1em;color:#222}}\
         h1{{font-size:1.5em}} h2{{font-size:1.15em;margin-top:2em}}\
         table{{border-collapse:collapse;width:100%;font-size:.9em}} td,th{{padding:.3em .5em;border-bottom:1px solid #ddd;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}} .headline{{font-size:1.3em;background:#f3f6fa;padding:1em;border-radius:6px}}\
         .warn{{background:#fff3cd;padding:1em;border-radius:6px}} .chart{{width:100%;height:auto}}\
         .grid{{stroke:#eee}} .zero{{stroke:#888}} .tick{{font-size:11px;fill:#555}}\
         .exposed{{stroke:#d6562b;stroke-width:2.5}} .control{{stroke:#2b6cd6;stroke-width:2.5}}\
         .exposed-fill{{fill:#d6562b}} .control-fill{{fill:#2b6cd6}} .bar{{stroke:#333;stroke-width:2}} .point{{fill:#d6562b}}\
         .key span{{display:inline-block;width:1em;height:.6em;margin:0 .3em 0 1em}} small{{color:#666}}\
         </style></head><body>\
         <h1>Did the campaign bring people to the stores?</h1>\
         <p><b>{id}</b>: creative <b>{cr}</b> of <b>{brand}</b> on {boards} boards, {start} to {end}; \
         spend {spend}. Data up to {dend}.</p>",
        id = esc(&r.campaign.id),
        cr = esc(&r.campaign.creative),
        brand = esc(&r.campaign.brand),
        boards = r.campaign.boards,
        start = r.campaign.start,
        end = r.campaign.end,
        spend = money(r.campaign.spend),
        dend = r.data_end,
    );
    if r.status == "ok" {
        let _ = write!(
            s,
            "<p class=\"headline\">Devices that passed a board while this creative was on screen visited one of \
             {brand}'s stores within {w} day(s) <b>{d}</b> more often than devices that passed the same boards \
             during other brands' ads (95 % interval {lo} to {hi}; {ce:.2} % vs {cc:.2} %; p = {pv:.3}).</p>",
            brand = esc(&r.campaign.brand),
            w = primary.window_days,
            d = pp(c.difference),
            lo = pp(c.newcombe.lo),
            hi = pp(c.newcombe.hi),
            ce = 100.0 * c.exposed.rate,
            cc = 100.0 * c.control.rate,
            pv = c.p_value
        );
    } else {
        let _ = write!(
            s,
            "<p class=\"warn\"><b>Insufficient data</b> for a published lift in the primary {w}-day window: {}. \
             The figures below are for the analyst, not for publication.</p>",
            esc(&primary.gate.reasons.join("; ")),
            w = primary.window_days
        );
    }
    let _ = write!(
        s,
        "<h2>Who was compared</h2><p>{passers} devices passed the campaign's boards during the flight; \
         {linkable} ({share:.0} %) were linkable across sites (a stable address or a loyalty link), \
         the rest are counted for footfall but cannot be followed to a store. Each linkable device joins \
         one arm at its first clean pass: <b>{ne} exposed</b> (our creative on screen for at least 1 s \
         of the pass) and <b>{nc} control</b> (the same boards, our creative not on screen). \
         Set aside: {amb} ambiguous passes, {long} passes longer than a {loop_s} s loop, {oor} passes while \
         the creative was out of rotation, {staff} staff devices, {inside} devices already inside a store.</p>",
        passers = r.passers,
        linkable = r.linkable_passers,
        share = 100.0 * r.linkable_share,
        ne = r.exposed_devices,
        nc = r.control_devices,
        amb = r
            .exclusions
            .passes
            .get(&analysis::PassClass::Ambiguous)
            .unwrap_or(&0),
        long = r.exclusions.passes.get(&analysis::PassClass::Long).unwrap_or(&0),
        oor = r
            .exclusions
            .passes
            .get(&analysis::PassClass::OutOfRotation)
            .unwrap_or(&0),
        loop_s = r.campaign.loop_secs,
        staff = r.exclusions.staff_devices,
        inside = r.exclusions.already_inside_devices,
    );
    s.push_str("<h2>Conversion over the window</h2><p class=\"key\"><span class=\"exposed-fill\" style=\"background:#d6562b\"></span>exposed<span style=\"background:#2b6cd6\"></span>control</p>");
    s.push_str(&curves_svg(r));
    s.push_str("<h2>Lift by window</h2><p><small>Absolute lift in percentage points with its 95 % Newcombe interval; devices followed up for the whole window.</small></p>");
    let rows: Vec<Bar> = r
        .windows
        .iter()
        .map(|w| {
            let c = &w.comparison;
            let est = analysis::Estimate {
                estimate: c.difference,
                interval: c.newcombe,
            };
            (
                format!("{} d", w.window_days),
                (c.exposed.devices > 0 && c.control.devices > 0).then_some(est),
            )
        })
        .collect();
    s.push_str(&intervals_svg(
        "Lift by window",
        &rows,
        "not yet followed up",
    ));
    s.push_str(
        "<table><tr><th>window</th><th>exposed</th><th>control</th><th>lift</th><th>95 % interval</th>\
         <th>relative</th><th>p</th><th>incremental</th><th>attributed</th></tr>",
    );
    for w in &r.windows {
        let c = &w.comparison;
        if c.exposed.devices == 0 || c.control.devices == 0 {
            let _ = write!(
                s,
                "<tr><td>{} d</td><td colspan=\"8\">not yet followed up for the whole window</td></tr>",
                w.window_days
            );
            continue;
        }
        let _ = write!(
            s,
            "<tr><td>{} d{}</td><td>{}/{}</td><td>{}/{}</td><td>{}</td><td>{} to {}</td><td>{}</td>\
             <td>{:.3}</td><td>{:.0}</td><td>{}</td></tr>",
            w.window_days,
            if w.primary { " (primary)" } else { "" },
            c.exposed.converters,
            c.exposed.devices,
            c.control.converters,
            c.control.devices,
            pp(c.difference),
            pp(c.newcombe.lo),
            pp(c.newcombe.hi),
            c.relative_lift
                .map_or("n/a".to_owned(), |l| format!("{:+.0} %", 100.0 * l)),
            c.p_value,
            w.incremental_converters.estimate,
            w.attributed_converters,
        );
    }
    s.push_str("</table>");
    let _ = write!(
        s,
        "<p><small><b>Incremental</b> converters are the visits the campaign caused among sensed exposed \
         devices (n<sub>e</sub> × lift); <b>attributed</b> are all exposed converters, most of whom would \
         have come anyway.</small></p>"
    );
    s.push_str("<h2>Robustness (primary window)</h2><table>");
    let est = |e: Option<analysis::Estimate>| {
        e.map_or("n/a".to_owned(), |e| {
            format!(
                "{} ({} to {})",
                pp(e.estimate),
                pp(e.interval.lo),
                pp(e.interval.hi)
            )
        })
    };
    let _ = write!(
        s,
        "<tr><td>Newcombe (primary)</td><td>{}</td></tr>\
         <tr><td>Day-cluster bootstrap (board-day, B = {b}, {cl} clusters)</td><td>{}</td></tr>\
         <tr><td>Design effect</td><td>{}</td></tr>\
         <tr><td>Stratified (board × weekday × hour block)</td><td>{}</td></tr>\
         <tr><td>CUPED (pre-period {pre} d visits)</td><td>{}</td></tr>\
         <tr><td>Randomization inference p</td><td>{}</td></tr>\
         <tr><td>Pre-period visits, exposed vs control</td><td>{:.3} vs {:.3} (difference {:+.3}, {:+.3} to {:+.3})</td></tr>\
         <tr><td>Placebo brand ({})</td><td>{}</td></tr>\
         <tr><td>Minimum detectable lift (80 % power)</td><td>{}</td></tr></table>",
        est(Some(analysis::Estimate {
            estimate: c.difference,
            interval: c.newcombe
        })),
        est(primary.bootstrap),
        primary
            .design_effect
            .map_or("n/a".to_owned(), |d| format!("{d:.2}")),
        est(primary.stratified),
        est(primary.cuped),
        primary
            .randomization_p
            .map_or("n/a".to_owned(), |p| format!("{p:.3}")),
        primary.pre_period_exposed,
        primary.pre_period_control,
        primary.pre_period_difference.estimate,
        primary.pre_period_difference.interval.lo,
        primary.pre_period_difference.interval.hi,
        esc(r.placebo_brand.as_deref().unwrap_or("none")),
        primary.placebo_brand.as_ref().map_or("n/a".to_owned(), |p| format!(
            "{} ({} to {})",
            pp(p.difference),
            pp(p.newcombe.lo),
            pp(p.newcombe.hi)
        )),
        r.mde_pp.map_or("n/a".to_owned(), |m| format!("{m:.2} pp")),
        b = r.params.bootstrap,
        cl = primary.clusters,
        pre = r.params.pre_days,
    );
    let rv = &primary.revenue;
    let _ = write!(
        s,
        "<h2>Revenue</h2><p>Loyalty-linked receipts at {brand} stores within the window, per device \
         (winsorized at {cap:.2}): exposed {re:.2}, control {rc:.2}. Incremental revenue {inc} \
         (95 % bootstrap interval {lo} to {hi}); iROAS {iroas}.{people}</p>",
        brand = esc(&r.campaign.brand),
        cap = rv.winsorized_at,
        re = rv.per_device_exposed,
        rc = rv.per_device_control,
        inc = money(rv.incremental.estimate),
        lo = money(rv.incremental.interval.lo),
        hi = money(rv.incremental.interval.hi),
        iroas = rv.iroas.map_or("n/a".to_owned(), |i| format!(
            "{:.2} ({:.2} to {:.2})",
            i.estimate, i.interval.lo, i.interval.hi
        )),
        people = primary.people.as_ref().map_or(
            " People-scale figures need the board and store capture rates (--board-capture, --store-capture).".to_owned(),
            |p| format!(
                " At people scale (corrected for capture): {:.0} incremental visitors ({:.0} to {:.0}); cost per incremental visitor {}.",
                p.incremental_visitors.estimate,
                p.incremental_visitors.interval.lo,
                p.incremental_visitors.interval.hi,
                p.cost_per_incremental_visitor.map_or("n/a".to_owned(), money)
            )
        ),
    );
    s.push_str("<h2>Lift by board</h2><p><small>Primary window; boards with fewer than 50 devices or 10 converters in an arm are suppressed (and one more when only one would be).</small></p>");
    let rows: Vec<Bar> = r
        .boards
        .iter()
        .map(|b| (b.board.clone(), b.difference))
        .collect();
    s.push_str(&intervals_svg("Lift by board", &rows, "suppressed"));
    s.push_str("<h2>Daily exposures</h2><p class=\"key\"><span style=\"background:#d6562b\"></span>exposed passes<span style=\"background:#2b6cd6\"></span>control passes</p>");
    s.push_str(&daily_svg(r));
    let _ = write!(
        s,
        "<h2>Method</h2><p><small>Exposed and control are passers-by of the same boards, told apart only \
         by the creative on screen during their pass (a natural experiment, see ATTRIBUTION.md). \
         A pass is an in-view stay at a board (RSSI at or above the board's threshold, new after a 30-min gap), \
         padded by {pad} s; a visit is a stay at a store of at least its minimum dwell and RSSI threshold in \
         opening hours. Sensed-device figures are primary; the tables in report.json and the CSV files hold \
         every number.</small></p></body></html>",
        pad = r.params.pad_secs
    );
    s
}
