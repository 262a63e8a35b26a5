//! Charts as inline SVG, drawn here so that pages need no script and no CDN (and pass the
//! Content-Security-Policy, which allows no inline style: colours are presentation
//! attributes and classes in style.css). A missing value (no data, or suppressed) is a gap
//! in a line, a hatched bar, a blank heatmap cell: never drawn as zero.

use std::fmt::Write as _;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;

/// One line of a [`lines`] chart.
pub struct Series<'a> {
    pub name: &'a str,
    /// A class of style.css (its colour).
    pub class: &'a str,
    pub values: &'a [Option<f64>],
}

/// A 95 % interval around a line: its ends at each point.
pub struct Band<'a> {
    pub lo: &'a [Option<f64>],
    pub hi: &'a [Option<f64>],
}

/// Text for SVG and HTML (the charts' labels come from the inventory).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The axis' top: the smallest 1, 2 or 5 x 10^k at or above `max` (1 when nothing is above 0).
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let step = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * step)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * step)
}

fn number(v: f64) -> String {
    if v.abs() >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The frame: the svg element, its title, the y axis with four grid lines up to `top`, and
/// the x labels at their positions.
fn open(out: &mut String, id: &str, title: &str, top: f64, x_labels: &[(f64, String)]) {
    let _ = write!(
        out,
        "<svg id=\"{id}\" class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title)
    );
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let y = y_of(v, top);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            number(v)
        );
    }
    for (x, label) in x_labels {
        // A label at the right edge ends there rather than running off it.
        let anchor = if *x > WIDTH - RIGHT - 30.0 {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
            HEIGHT - BOTTOM + 16.0,
            escape(label)
        );
    }
}

fn y_of(v: f64, top: f64) -> f64 {
    TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - v / top)
}

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

/// Lines over `n` evenly spaced points (gaps where a value is missing), an optional 95 %
/// band (`lo`, `hi`) behind them, labels at the given point indices, and a legend.
pub fn lines(
    id: &str,
    title: &str,
    series: &[Series],
    band: Option<Band>,
    labels: &[(usize, String)],
) -> String {
    let n = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .chain(band.iter().flat_map(|b| b.hi.iter().flatten()))
        .fold(0.0f64, |a, &b| a.max(b));
    let top = nice_max(max);
    let x_of = |i: usize| {
        if n <= 1 {
            LEFT + plot_width() / 2.0
        } else {
            LEFT + plot_width() * i as f64 / (n - 1) as f64
        }
    };
    let mut out = String::new();
    let x_labels: Vec<(f64, String)> = labels.iter().map(|(i, l)| (x_of(*i), l.clone())).collect();
    open(&mut out, id, title, top, &x_labels);
    if let Some(Band { lo, hi }) = band {
        // One polygon per run of points that have both ends.
        let mut run: Vec<(f64, f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64, f64)>, out: &mut String| {
            if run.len() > 1 {
                let mut d = String::new();
                for (x, _, h) in run.iter() {
                    let _ = write!(d, "{x:.1},{:.1} ", y_of(*h, top));
                }
                for (x, l, _) in run.iter().rev() {
                    let _ = write!(d, "{x:.1},{:.1} ", y_of(*l, top));
                }
                let _ = write!(out, "<polygon class=\"band\" points=\"{}\"/>", d.trim_end());
            }
            run.clear();
        };
        for i in 0..n {
            match (lo.get(i).copied().flatten(), hi.get(i).copied().flatten()) {
                (Some(l), Some(h)) => run.push((x_of(i), l, h)),
                _ => flush(&mut run, &mut out),
            }
        }
        flush(&mut run, &mut out);
    }
    for s in series {
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        x_of(i),
                        y_of(*v, top)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if s.values.iter().filter(|v| v.is_some()).count() == 1 {
            // A lone point has no line: a dot.
            if let Some((i, Some(v))) = s.values.iter().enumerate().find(|(_, v)| v.is_some()) {
                let _ = write!(
                    out,
                    "<circle class=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"/>",
                    s.class,
                    x_of(i),
                    y_of(*v, top)
                );
            }
        }
        let _ = write!(
            out,
            "<path class=\"line {}\" d=\"{}\"><title>{}</title></path>",
            s.class,
            d.trim_end(),
            escape(s.name)
        );
    }
    legend(&mut out, series.iter().map(|s| (s.name, s.class)));
    out.push_str("</svg>");
    out
}

fn legend<'a>(out: &mut String, items: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut x = LEFT;
    for (name, class) in items {
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{}\" width=\"10\" height=\"10\"/>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{}\">{}</text>",
            HEIGHT - 14.0,
            x + 14.0,
            HEIGHT - 5.0,
            escape(name)
        );
        x += 24.0 + 7.0 * name.chars().count() as f64;
    }
}

/// One bar per label; a missing value is a hatched bar marked as not shown.
pub fn bars(id: &str, title: &str, labels: &[String], values: &[Option<f64>]) -> String {
    let top = nice_max(values.iter().flatten().fold(0.0f64, |a, &b| a.max(b)));
    let n = labels.len().max(1) as f64;
    let slot = plot_width() / n;
    let width = (slot * 0.7).max(1.0);
    let x_labels: Vec<(f64, String)> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (LEFT + slot * (i as f64 + 0.5), l.clone()))
        .collect();
    let mut out = String::new();
    open(&mut out, id, title, top, &x_labels);
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - width) / 2.0;
        match values.get(i).copied().flatten() {
            Some(v) => {
                let y = y_of(v, top);
                let _ = write!(
                    out,
                    "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" \
                     height=\"{:.1}\"><title>{}: {}</title></rect>",
                    y_of(0.0, top) - y,
                    escape(label),
                    number(v)
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<rect class=\"suppressed\" x=\"{x:.1}\" y=\"{TOP}\" width=\"{width:.1}\" \
                     height=\"{:.1}\"><title>{}: not shown</title></rect>",
                    y_of(0.0, top) - TOP,
                    escape(label)
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

/// A grid of cells shaded by value (rows top to bottom, columns left to right); a missing
/// value is left blank.
pub fn heatmap(
    id: &str,
    title: &str,
    rows: &[&str],
    columns: &[String],
    cells: &[Vec<Option<f64>>],
) -> String {
    let max = cells
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f64, |a, &b| a.max(b));
    let cw = plot_width() / columns.len().max(1) as f64;
    let ch = (HEIGHT - TOP - BOTTOM) / rows.len().max(1) as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg id=\"{id}\" class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title)
    );
    for (r, name) in rows.iter().enumerate() {
        let y = TOP + ch * r as f64;
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 4.0,
            y + ch / 2.0 + 4.0,
            escape(name)
        );
        for (c, column) in columns.iter().enumerate() {
            let x = LEFT + cw * c as f64;
            match cells.get(r).and_then(|row| row.get(c)).copied().flatten() {
                Some(v) => {
                    // From pale to deep blue, by the share of the largest cell.
                    let t = if max > 0.0 { v / max } else { 0.0 };
                    let shade = |from: f64, to: f64| (from + (to - from) * t).round();
                    let _ = write!(
                        out,
                        "<rect class=\"cell\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cw:.1}\" \
                         height=\"{ch:.1}\" fill=\"rgb({},{},{})\"><title>{} {}: {}</title></rect>",
                        shade(238.0, 24.0),
                        shade(243.0, 78.0),
                        shade(250.0, 150.0),
                        escape(name),
                        escape(column),
                        number(v)
                    );
                }
                None => {
                    let _ = write!(
                        out,
                        "<rect class=\"suppressed\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cw:.1}\" \
                         height=\"{ch:.1}\"><title>{} {}: not shown</title></rect>",
                        escape(name),
                        escape(column)
                    );
                }
            }
        }
    }
    for (c, column) in columns.iter().enumerate() {
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            LEFT + cw * (c as f64 + 0.5),
            HEIGHT - BOTTOM + 16.0,
            escape(column)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(10.0), 10.0);
        assert_eq!(nice_max(11.0), 20.0);
        assert_eq!(nice_max(420.0), 500.0);
        assert_eq!(nice_max(0.03), 0.05);
    }

    #[test]
    fn a_missing_value_is_a_gap_not_a_zero() {
        let values = [Some(1.0), Some(4.0), None, Some(2.0), Some(3.0)];
        let svg = lines(
            "c",
            "t",
            &[Series {
                name: "visitors",
                class: "visitors",
                values: &values,
            }],
            None,
            &[],
        );
        let d = svg.split(" d=\"").nth(1).expect("a path");
        let d = &d[..d.find('"').expect("end")];
        // Two runs, each starting with a move; no point at the bottom of the plot.
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 2, "{d}");
        assert!(!d.contains(&format!(",{:.1}", y_of(0.0, 5.0))), "{d}");
        let b = bars("b", "t", &["a".into(), "b".into()], &[Some(2.0), None]);
        assert_eq!(b.matches("class=\"bar\"").count(), 1);
        assert_eq!(b.matches("class=\"suppressed\"").count(), 1);
    }

    #[test]
    fn labels_from_the_inventory_are_escaped() {
        let svg = heatmap("h", "<b>", &["Mon"], &["a&b".into()], &[vec![Some(1.0)]]);
        assert!(svg.contains("&lt;b&gt;") && svg.contains("a&amp;b"));
        assert!(!svg.contains("<b>"));
    }
}
