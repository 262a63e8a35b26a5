//! The pages' charts, drawn from the figures the JSON endpoints serve (so that what a chart
//! shows and what the endpoints say cannot differ).

use crate::store::{StoreDetail, WEEKDAYS};
use crate::svg::{self, Band, Series};

/// The Store page's charts, as inline SVG.
pub struct StoreCharts {
    pub days: String,
    /// Per hour over the period, when it is at most [`HOURLY_DAYS`] long.
    pub hours: Option<String>,
    pub profile: String,
    pub heatmap: String,
    pub occupancy: String,
    pub dwell: String,
}

/// The longest period whose every hour is drawn.
pub const HOURLY_DAYS: usize = 31;

/// Up to `most` labels, evenly spaced over `n` points.
fn every(n: usize, most: usize, label: impl Fn(usize) -> String) -> Vec<(usize, String)> {
    let step = n.div_ceil(most.max(1)).max(1);
    (0..n).step_by(step).map(|i| (i, label(i))).collect()
}

pub fn store(d: &StoreDetail) -> StoreCharts {
    let visitors: Vec<Option<f64>> = d.days.iter().map(|x| x.visitors).collect();
    let passers_by: Vec<Option<f64>> = d.days.iter().map(|x| x.passers_by).collect();
    let (lo, hi): (Vec<Option<f64>>, Vec<Option<f64>>) = d
        .days
        .iter()
        .map(|x| {
            (
                x.visitors_interval.map(|i| i[0]),
                x.visitors_interval.map(|i| i[1]),
            )
        })
        .unzip();
    let day_label = |i: usize| {
        d.days
            .get(i)
            .map_or(String::new(), |x| format!("{} {}", x.weekday, &x.date[5..]))
    };
    let days = svg::lines(
        "chart-days",
        "Visitors (with their 95 % interval) and passers-by per day",
        &[
            Series {
                name: "visitors",
                class: "visitors",
                values: &visitors,
            },
            Series {
                name: "passers-by",
                class: "passers",
                values: &passers_by,
            },
        ],
        Some(Band { lo: &lo, hi: &hi }),
        &every(d.days.len(), 8, day_label),
    );
    let hours = (d.days.len() <= HOURLY_DAYS).then(|| {
        let v: Vec<Option<f64>> = d.hours.iter().map(|h| h.visitors).collect();
        let p: Vec<Option<f64>> = d.hours.iter().map(|h| h.passers_by).collect();
        let labels: Vec<(usize, String)> = every(d.days.len(), 8, day_label)
            .into_iter()
            .map(|(i, l)| (24 * i, l))
            .collect();
        svg::lines(
            "chart-hours",
            "Visitors and passers-by per hour",
            &[
                Series {
                    name: "visitors",
                    class: "visitors",
                    values: &v,
                },
                Series {
                    name: "passers-by",
                    class: "passers",
                    values: &p,
                },
            ],
            None,
            &labels,
        )
    });
    let hour_names: Vec<String> = (0..24).map(|h| format!("{h}")).collect();
    let profile = svg::bars(
        "chart-profile",
        "Visitors per day by hour of the day",
        &hour_names,
        &d.hour_profile,
    );
    let heatmap = svg::heatmap(
        "chart-heatmap",
        "Visitors per day by weekday and hour",
        &WEEKDAYS,
        &hour_names,
        &d.weekday_hours,
    );
    let people: Vec<Option<f64>> = d.occupancy.iter().map(|w| Some(w.people)).collect();
    let lo: Vec<Option<f64>> = d.occupancy.iter().map(|w| Some(w.lo)).collect();
    let hi: Vec<Option<f64>> = d.occupancy.iter().map(|w| Some(w.hi)).collect();
    let occupancy = svg::lines(
        "chart-occupancy",
        "People present per 15 minutes, with the 95 % interval",
        &[Series {
            name: "people",
            class: "visitors",
            values: &people,
        }],
        Some(Band { lo: &lo, hi: &hi }),
        &every(d.occupancy.len(), 12, |i| {
            d.occupancy
                .get(i)
                .map_or(String::new(), |w| w.start.clone())
        }),
    );
    let dwell = svg::bars(
        "chart-dwell",
        "Visitors by dwell (minutes)",
        &d.dwell
            .iter()
            .map(|b| b.minutes.to_owned())
            .collect::<Vec<_>>(),
        &d.dwell
            .iter()
            .map(|b| b.share.map(|s| 100.0 * s))
            .collect::<Vec<_>>(),
    );
    StoreCharts {
        days,
        hours,
        profile,
        heatmap,
        occupancy,
        dwell,
    }
}

/// The Compare page's chart: visitors per day of each column, by day of its period.
pub fn compare(
    columns: &[crate::compare::Column],
    title: &dyn Fn(&crate::compare::Column) -> String,
) -> String {
    const CLASSES: [&str; 6] = ["visitors", "passers", "c3", "c4", "c5", "c6"];
    let names: Vec<String> = columns.iter().map(title).collect();
    let series: Vec<Series> = columns
        .iter()
        .zip(&names)
        .zip(CLASSES)
        .map(|((c, name), class)| Series {
            name,
            class,
            values: &c.days,
        })
        .collect();
    let n = columns.iter().map(|c| c.days.len()).max().unwrap_or(0);
    svg::lines(
        "chart-compare",
        "Visitors per day",
        &series,
        None,
        &every(n, 8, |i| format!("day {}", i + 1)),
    )
}
