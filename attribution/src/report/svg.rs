//! The report's charts as inline SVG: no script, no CDN; the page works offline.

use std::fmt::Write as _;

use super::{esc, Report};
use crate::estimate::Estimate;

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
pub(super) fn curves_svg(r: &Report) -> String {
    let mut s = svg_open("Cumulative conversion of exposed and control devices");
    let hi = r
        .curves
        .iter()
        .flat_map(|c| [c.1, c.2])
        .flatten()
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
            .filter_map(|c| {
                let v = if i == 1 { c.1 } else { c.2 };
                v.map(|v| format!("{:.1},{:.1}", x_of(c.0), y_of(v, 0.0, hi)))
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
pub(super) type Bar = (String, Option<Estimate>);

/// `missing` labels a row without an estimate.
pub(super) fn intervals_svg(title: &str, rows: &[Bar], missing: &str) -> String {
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
pub(super) fn daily_svg(r: &Report) -> String {
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
