//! The Store page: one store over a period, in its local time. Visitors and passers-by per
//! day and per hour, the hour-of-day profile and its peaks, a weekday x hour heatmap, the
//! dwell buckets (all from `traffic`), occupancy per 15 minutes on the period's last day and
//! at its latest 5-minute window (from `occupancy`), and new against returning visitors for
//! the devices that can be followed from visit to visit (global addresses, from `visits`).
//! Every figure obeys the thresholds of [`crate::privacy`].

use chrono::{Datelike, NaiveDate, TimeZone};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::period::{start_ms, Period};
use crate::privacy::{suppress, Thresholds};
use crate::stores::{self, StoreFigures};

/// The store and the period asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreQuery {
    pub site: String,
    pub period: Period,
}

/// How far before the period a visit makes its device a returning visitor.
pub const LOOKBACK_DAYS: u64 = 28;

impl StoreQuery {
    /// Reads the URL's parameters; a bad one is an error naming it, for a 400.
    pub fn parse(
        site: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        today: NaiveDate,
    ) -> Result<StoreQuery, String> {
        let site = site
            .filter(|s| !s.is_empty())
            .ok_or("site: missing (which store?)")?;
        Ok(StoreQuery {
            site: site.to_owned(),
            period: Period::parse(from, to, today)?,
        })
    }
}

/// A traffic row of the store ([`HOURS_SQL`], its columns in this order).
#[derive(Debug, Row, Deserialize)]
struct HourRow {
    date: String,
    local_hour: u8,
    visitors: f64,
    passers_by: f64,
    visitor_devices: u32,
    passer_by_devices: u32,
    dwell_under_5: u32,
    dwell_5_20: u32,
    dwell_20_60: u32,
    dwell_over_60: u32,
}

/// The store's hours in the period; bound: site, from, to.
pub const HOURS_SQL: &str = "SELECT toString(day) AS date, local_hour, visitors, passers_by, \
    visitor_devices, passer_by_devices, dwell_under_5, dwell_5_20, dwell_20_60, dwell_over_60 \
    FROM traffic FINAL WHERE site = ? AND day >= toDate(?) AND day <= toDate(?) \
    ORDER BY day, hour_ms";

/// An occupancy window ([`WINDOWS_SQL`], [`LATEST_SQL`]).
#[derive(Debug, Row, Deserialize)]
struct WindowRow {
    start_ms: i64,
    people: f64,
    lo: f64,
    hi: f64,
}

/// The store's windows of a length in [start, end) ms; bound: site, window minutes, the
/// UTC dates around the range (first, last), start, end.
pub const WINDOWS_SQL: &str =
    "SELECT start_ms, people, lo, hi FROM occupancy FINAL WHERE site = ? AND window_mins = ? \
    AND day >= toDate(?) AND day <= toDate(?) AND start_ms >= ? AND start_ms < ? \
    ORDER BY start_ms";

/// The store's latest 5-minute window before an instant; bound as [`WINDOWS_SQL`].
pub const LATEST_SQL: &str =
    "SELECT start_ms, people, lo, hi FROM occupancy FINAL WHERE site = ? AND window_mins = ? \
    AND day >= toDate(?) AND day <= toDate(?) AND start_ms >= ? AND start_ms < ? \
    ORDER BY start_ms DESC LIMIT 1";

/// Visitor devices with global addresses, by visits in the period (5: five or more) and
/// whether they visited in the lookback before it; bound: period start ms (twice), site,
/// the UTC dates around the lookback and the period, lookback start ms, period end ms.
pub const RETURNING_SQL: &str = "SELECT least(n_in, 5) AS visits_in, \
    toUInt8(n_before > 0) AS returning, count() AS devices FROM (\
    SELECT device, countIf(first_ms >= ?) AS n_in, countIf(first_ms < ?) AS n_before \
    FROM visits FINAL WHERE site = ? AND class = 'global' AND kind = 'visitor' \
    AND retracted = 0 AND day >= toDate(?) AND day <= toDate(?) \
    AND first_ms >= ? AND first_ms < ? GROUP BY device) \
    WHERE n_in > 0 GROUP BY visits_in, returning";

#[derive(Debug, Row, Deserialize)]
struct ReturningRow {
    visits_in: u64,
    returning: u8,
    devices: u64,
}

/// One day of the store.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayFigures {
    pub date: String,
    pub weekday: &'static str,
    pub visitors: Option<f64>,
    pub passers_by: Option<f64>,
    /// The visitors' 95 % interval ([`stores::interval`]), where they are shown.
    pub visitors_interval: Option<[f64; 2]>,
}

/// One local hour of one day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HourFigures {
    pub date: String,
    pub hour: u8,
    pub visitors: Option<f64>,
    pub passers_by: Option<f64>,
}

/// Visitors by dwell.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DwellBucket {
    pub minutes: &'static str,
    /// Visitor stays (devices, not corrected for capture).
    pub stays: Option<f64>,
    /// Their share of the visitor stays.
    pub share: Option<f64>,
}

/// An occupancy window, on the store's clocks: an estimate of the people present, with its
/// 95 % interval. Not suppressed: a modelled count of people in a public place, with no
/// attribute of anyone (the thresholds guard counts of stays and followed devices).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Window {
    pub start: String,
    pub people: f64,
    pub lo: f64,
    pub hi: f64,
}

/// New and returning visitors among the devices that can be followed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Returning {
    /// Visitor devices with a global (stable) address in the period.
    pub linkable_devices: u64,
    /// Their share of all the period's visitor devices.
    pub share: Option<f64>,
    /// Of them, not seen at the store in the lookback before the period.
    pub new: Option<u64>,
    /// Seen at the store in the lookback.
    pub returning: Option<u64>,
    /// Devices by visits in the period: 1, 2, 3, 4, 5 or more.
    pub frequency: Vec<(&'static str, Option<u64>)>,
}

/// Everything the Store page shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoreDetail {
    pub from: String,
    pub to: String,
    pub thresholds: Thresholds,
    /// The store's row of the Stores page.
    pub figures: StoreFigures,
    pub days: Vec<DayFigures>,
    pub hours: Vec<HourFigures>,
    /// Visitors per day in each local hour (0-23), over the period.
    pub hour_profile: Vec<Option<f64>>,
    /// The hours with the most visitors per day, busiest first (up to three).
    pub peak_hours: Vec<u8>,
    /// Visitors per day by weekday (Monday first) and local hour.
    pub weekday_hours: Vec<Vec<Option<f64>>>,
    pub dwell: Vec<DwellBucket>,
    /// Occupancy per 15 minutes on the period's last day.
    pub occupancy: Vec<Window>,
    /// The period's latest 5-minute window.
    pub occupancy_latest: Option<Window>,
    /// `None` when the linkable devices are under the threshold.
    pub returning: Option<Returning>,
}

pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const BUCKETS: [&str; 4] = ["under 5", "5-20", "20-60", "over 60"];
const VISITS: [&str; 5] = ["1", "2", "3", "4", "5+"];

/// Why a store's page cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("site: {0:?} is not a store you can see")]
    Unknown(String),
    #[error(transparent)]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// Reads the page's figures, and the names of the stores `brands` (empty: every brand) let
/// the user see; a store that does not exist, is not a store, or is of a brand `brands`
/// leaves out, is [`StoreError::Unknown`].
pub async fn load(
    db: &clickhouse::Client,
    q: &StoreQuery,
    brands: &[String],
    t: Thresholds,
) -> Result<(StoreDetail, Vec<String>), StoreError> {
    let stores_query = stores::Query {
        period: q.period,
        brand: None,
        sort: stores::Sort::Store,
        descending: false,
    };
    let names: Vec<String> = stores::sites(db, brands)
        .await?
        .into_iter()
        .map(|s| s.site_id)
        .collect();
    if !names.contains(&q.site) {
        return Err(StoreError::Unknown(q.site.clone()));
    }
    let figures = stores::load(
        db,
        &stores_query,
        brands,
        std::slice::from_ref(&q.site),
        t.counts,
    )
    .await?
    .into_iter()
    .next()
    .ok_or_else(|| StoreError::Unknown(q.site.clone()))?;
    let tz: chrono_tz::Tz = figures.tz.parse().unwrap_or(chrono_tz::UTC);
    let (from, to) = (q.period.from.to_string(), q.period.to.to_string());
    let hours: Vec<HourRow> =
        crate::db::fetch_all(db.query(HOURS_SQL).bind(&q.site).bind(&from).bind(&to)).await?;

    // Occupancy on the period's last day, and its latest 5-minute window.
    let last = Period {
        from: q.period.to,
        to: q.period.to,
    };
    let windows = fetch_windows(db, WINDOWS_SQL, &q.site, 15, last.utc_ms(tz)).await?;
    let latest = fetch_windows(db, LATEST_SQL, &q.site, 5, q.period.utc_ms(tz)).await?;

    let (start, end) = q.period.utc_ms(tz);
    let lookback = start_ms(q.period.from - chrono::Days::new(LOOKBACK_DAYS), tz);
    let returning: Vec<ReturningRow> = crate::db::fetch_all(
        db.query(RETURNING_SQL)
            .bind(start)
            .bind(start)
            .bind(&q.site)
            .bind(utc_date(lookback))
            .bind(utc_date(end))
            .bind(lookback)
            .bind(end),
    )
    .await?;

    let k = u64::from(t.counts);
    let window = |w: &WindowRow, format: &str| Window {
        start: local(w.start_ms, tz, format),
        people: w.people,
        lo: w.lo,
        hi: w.hi,
    };
    let visitor_devices: u64 = hours.iter().map(|h| u64::from(h.visitor_devices)).sum();
    let profile = hour_profile(&q.period, &hours, k);
    let detail = StoreDetail {
        from,
        to,
        thresholds: t,
        days: days(&q.period, &hours, k),
        hours: hour_figures(&q.period, &hours, k),
        peak_hours: peak_hours(&profile),
        hour_profile: profile,
        weekday_hours: weekday_hours(&q.period, &hours, k),
        dwell: dwell(&hours, k),
        occupancy: windows.iter().map(|w| window(w, "%H:%M")).collect(),
        occupancy_latest: latest.first().map(|w| window(w, "%Y-%m-%d %H:%M")),
        returning: returning_figures(&returning, visitor_devices, u64::from(t.followed)),
        figures,
    };
    Ok((detail, names))
}

async fn fetch_windows(
    db: &clickhouse::Client,
    sql: &str,
    site: &str,
    minutes: u16,
    (start, end): (i64, i64),
) -> Result<Vec<WindowRow>, clickhouse::error::Error> {
    crate::db::fetch_all(
        db.query(sql)
            .bind(site)
            .bind(minutes)
            .bind(utc_date(start))
            .bind(utc_date(end))
            .bind(start)
            .bind(end),
    )
    .await
}

/// The UTC date of an instant, for the tables' `day` partitions.
fn utc_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(String::new, |t| t.date_naive().to_string())
}

fn local(ms: i64, tz: chrono_tz::Tz, format: &str) -> String {
    tz.timestamp_millis_opt(ms)
        .single()
        .map_or_else(String::new, |t| t.format(format).to_string())
}

/// The hours' rows by date.
fn by_date<'a>(hours: &'a [HourRow], date: &str) -> impl Iterator<Item = &'a HourRow> {
    let date = date.to_owned();
    hours.iter().filter(move |h| h.date == date)
}

fn days(period: &Period, hours: &[HourRow], k: u64) -> Vec<DayFigures> {
    let sums: Vec<((f64, u64), (f64, u64))> = period
        .dates()
        .map(|d| {
            by_date(hours, &d.to_string()).fold(((0.0, 0), (0.0, 0)), |(v, p), h| {
                (
                    (v.0 + h.visitors, v.1 + u64::from(h.visitor_devices)),
                    (p.0 + h.passers_by, p.1 + u64::from(h.passer_by_devices)),
                )
            })
        })
        .collect();
    let visitors = suppress(&sums.iter().map(|s| s.0).collect::<Vec<_>>(), k);
    let passers_by = suppress(&sums.iter().map(|s| s.1).collect::<Vec<_>>(), k);
    period
        .dates()
        .zip(visitors.into_iter().zip(passers_by))
        .zip(&sums)
        .map(|((d, (visitors, passers_by)), &((v, n), _))| DayFigures {
            date: d.to_string(),
            weekday: WEEKDAYS[d.weekday().num_days_from_monday() as usize],
            visitors,
            passers_by,
            visitors_interval: visitors.and(stores::interval(v, n)),
        })
        .collect()
}

/// Every local hour of every day of the period (an hour without a row has no data: `None`).
fn hour_figures(period: &Period, hours: &[HourRow], k: u64) -> Vec<HourFigures> {
    let mut out = Vec::new();
    for d in period.dates() {
        let date = d.to_string();
        let mut cells = [((0.0, 0u64), (0.0, 0u64), false); 24];
        for h in by_date(hours, &date) {
            let c = &mut cells[usize::from(h.local_hour.min(23))];
            c.0 .0 += h.visitors;
            c.0 .1 += u64::from(h.visitor_devices);
            c.1 .0 += h.passers_by;
            c.1 .1 += u64::from(h.passer_by_devices);
            c.2 = true;
        }
        let visitors = suppress(&cells.iter().map(|c| c.0).collect::<Vec<_>>(), k);
        let passers_by = suppress(&cells.iter().map(|c| c.1).collect::<Vec<_>>(), k);
        for (hour, c) in cells.iter().enumerate() {
            out.push(HourFigures {
                date: date.clone(),
                hour: hour as u8,
                visitors: visitors[hour].filter(|_| c.2),
                passers_by: passers_by[hour].filter(|_| c.2),
            });
        }
    }
    out
}

/// Sums visitors and their devices per local hour over the dates `keep` accepts, divided by
/// how many of the period's dates it accepts.
fn per_hour(
    period: &Period,
    hours: &[HourRow],
    keep: impl Fn(NaiveDate) -> bool,
    k: u64,
) -> Vec<Option<f64>> {
    let dates: Vec<String> = period
        .dates()
        .filter(|d| keep(*d))
        .map(|d| d.to_string())
        .collect();
    let mut cells = vec![(0.0, 0u64); 24];
    for h in hours.iter().filter(|h| dates.contains(&h.date)) {
        let c = &mut cells[usize::from(h.local_hour.min(23))];
        c.0 += h.visitors;
        c.1 += u64::from(h.visitor_devices);
    }
    let n = dates.len().max(1) as f64;
    suppress(&cells, k)
        .into_iter()
        .map(|v| v.map(|v| v / n))
        .collect()
}

fn hour_profile(period: &Period, hours: &[HourRow], k: u64) -> Vec<Option<f64>> {
    per_hour(period, hours, |_| true, k)
}

fn weekday_hours(period: &Period, hours: &[HourRow], k: u64) -> Vec<Vec<Option<f64>>> {
    (0..7)
        .map(|w| {
            per_hour(
                period,
                hours,
                |d| d.weekday().num_days_from_monday() == w,
                k,
            )
        })
        .collect()
}

fn peak_hours(profile: &[Option<f64>]) -> Vec<u8> {
    let mut hours: Vec<(u8, f64)> = profile
        .iter()
        .enumerate()
        .filter_map(|(h, v)| v.filter(|v| *v > 0.0).map(|v| (h as u8, v)))
        .collect();
    hours.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    hours.into_iter().take(3).map(|(h, _)| h).collect()
}

fn dwell(hours: &[HourRow], k: u64) -> Vec<DwellBucket> {
    let counts: Vec<u64> = [
        |h: &HourRow| h.dwell_under_5,
        |h: &HourRow| h.dwell_5_20,
        |h: &HourRow| h.dwell_20_60,
        |h: &HourRow| h.dwell_over_60,
    ]
    .iter()
    .map(|f| hours.iter().map(|h| u64::from(f(h))).sum())
    .collect();
    let total: u64 = counts.iter().sum();
    let shown = suppress(
        &counts.iter().map(|&n| (n as f64, n)).collect::<Vec<_>>(),
        k,
    );
    BUCKETS
        .iter()
        .zip(shown)
        .map(|(minutes, stays)| DwellBucket {
            minutes,
            stays,
            share: stays.filter(|_| total > 0).map(|n| n / total as f64),
        })
        .collect()
}

fn returning_figures(rows: &[ReturningRow], visitor_devices: u64, k: u64) -> Option<Returning> {
    let linkable: u64 = rows.iter().map(|r| r.devices).sum();
    if linkable < k {
        return None;
    }
    let count = |f: &dyn Fn(&ReturningRow) -> bool| -> u64 {
        rows.iter().filter(|r| f(r)).map(|r| r.devices).sum()
    };
    let pair = |a: u64, b: u64| {
        let shown = suppress(&[(a as f64, a), (b as f64, b)], k);
        (shown[0].map(|v| v as u64), shown[1].map(|v| v as u64))
    };
    let (new, returning) = pair(count(&|r| r.returning == 0), count(&|r| r.returning == 1));
    let by_visits: Vec<(f64, u64)> = (1..=5u64)
        .map(|n| {
            let d = count(&|r| r.visits_in == n);
            (d as f64, d)
        })
        .collect();
    let frequency = VISITS
        .iter()
        .zip(suppress(&by_visits, k))
        .map(|(label, v)| (*label, v.map(|v| v as u64)))
        .collect();
    Some(Returning {
        linkable_devices: linkable,
        share: (visitor_devices > 0).then(|| linkable as f64 / visitor_devices as f64),
        new,
        returning,
        frequency,
    })
}

/// One of the page's tables as CSV (`hours`, `days`, `occupancy`, `weekday_hours`, `dwell`,
/// `returning`); an unknown name is an error naming the parameter.
pub fn csv(d: &StoreDetail, table: &str) -> Result<Result<String, csv::Error>, String> {
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.2}"));
    let mut rows: Vec<Vec<String>> = Vec::new();
    match table {
        "days" => {
            rows.push(
                ["date", "weekday", "visitors", "visitors_lo", "visitors_hi", "passers_by"]
                    .map(String::from)
                    .to_vec(),
            );
            for r in &d.days {
                rows.push(vec![
                    r.date.clone(),
                    r.weekday.into(),
                    f(r.visitors),
                    f(r.visitors_interval.map(|i| i[0])),
                    f(r.visitors_interval.map(|i| i[1])),
                    f(r.passers_by),
                ]);
            }
        }
        "hours" => {
            rows.push(vec!["date".into(), "hour".into(), "visitors".into(), "passers_by".into()]);
            for r in &d.hours {
                rows.push(vec![r.date.clone(), r.hour.to_string(), f(r.visitors), f(r.passers_by)]);
            }
        }
        "occupancy" => {
            rows.push(vec!["start".into(), "people".into(), "lo".into(), "hi".into()]);
            for w in &d.occupancy {
                rows.push(vec![w.start.clone(), f(Some(w.people)), f(Some(w.lo)), f(Some(w.hi))]);
            }
        }
        "weekday_hours" => {
            let mut head = vec!["weekday".to_owned()];
            head.extend((0..24).map(|h| h.to_string()));
            rows.push(head);
            for (w, cells) in WEEKDAYS.iter().zip(&d.weekday_hours) {
                let mut row = vec![(*w).to_owned()];
                row.extend(cells.iter().map(|v| f(*v)));
                rows.push(row);
            }
        }
        "dwell" => {
            rows.push(vec!["minutes".into(), "stays".into(), "share".into()]);
            for b in &d.dwell {
                rows.push(vec![b.minutes.into(), f(b.stays), f(b.share)]);
            }
        }
        "returning" => {
            rows.push(vec!["figure".into(), "devices".into()]);
            if let Some(r) = &d.returning {
                let n = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
                rows.push(vec!["linkable".into(), r.linkable_devices.to_string()]);
                rows.push(vec!["new".into(), n(r.new)]);
                rows.push(vec!["returning".into(), n(r.returning)]);
                for (label, v) in &r.frequency {
                    rows.push(vec![format!("visits {label}"), n(*v)]);
                }
            }
        }
        other => {
            return Err(format!(
                "table: {other:?} is not one of days, hours, occupancy, weekday_hours, dwell, returning"
            ))
        }
    }
    Ok(write_csv(&rows))
}

fn write_csv(rows: &[Vec<String>]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(r)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(date: &str, local_hour: u8, visitors: f64, devices: u32) -> HourRow {
        HourRow {
            date: date.into(),
            local_hour,
            visitors,
            passers_by: 4.0 * visitors,
            visitor_devices: devices,
            passer_by_devices: 4 * devices,
            dwell_under_5: devices / 2,
            dwell_5_20: devices / 2,
            dwell_20_60: 0,
            dwell_over_60: 0,
        }
    }

    fn period() -> Period {
        Period::parse(
            Some("2026-03-16"),
            Some("2026-03-29"),
            NaiveDate::from_ymd_opt(2026, 3, 30).expect("date"),
        )
        .expect("period")
    }

    #[test]
    fn profiles_are_visitors_per_day_and_peaks_follow_them() {
        // Two weeks, Monday to Sunday: 100 visitors at 11:00 every day, 300 at 17:00 on
        // Saturdays only, 10 (5 devices) at 8:00 on one day.
        let mut rows = Vec::new();
        for d in period().dates() {
            let date = d.to_string();
            rows.push(hour(&date, 11, 100.0, 60));
            if d.weekday() == chrono::Weekday::Sat {
                rows.push(hour(&date, 17, 300.0, 150));
            }
        }
        rows.push(hour("2026-03-18", 8, 10.0, 5));
        let k = 50;
        let profile = hour_profile(&period(), &rows, k);
        assert_eq!(profile[11], Some(100.0));
        // 8:00 is built on 5 devices: hidden, and the smallest other hour (17:00) with it.
        assert_eq!((profile[8], profile[17]), (None, None));
        assert_eq!(profile[9], Some(0.0));
        assert_eq!(peak_hours(&profile), vec![11]);
        let without = hour_profile(&period(), &rows[..rows.len() - 1], k);
        assert_eq!(without[17], Some(600.0 / 14.0));
        assert_eq!(peak_hours(&without), vec![11, 17]);
        let grid = weekday_hours(&period(), &rows, k);
        assert_eq!(grid[5][17], Some(300.0), "Saturdays at 17:00");
        assert_eq!(grid[0][17], Some(0.0), "nobody on Mondays at 17:00");
        assert_eq!(grid[0][11], Some(100.0));
        let days = days(&period(), &rows, k);
        assert_eq!(days.len(), 14);
        assert_eq!(days[5].weekday, "Sat");
        assert_eq!(days[5].visitors, Some(400.0));
        assert_eq!(days[2].visitors, Some(110.0), "65 devices on the 18th");
        let hours = hour_figures(&period(), &rows, k);
        assert_eq!(hours.len(), 14 * 24);
        // The 18th: 8:00 hidden, and 11:00 (the only other hour) with it; hours without a
        // row have no data.
        let h18: Vec<_> = hours.iter().filter(|h| h.date == "2026-03-18").collect();
        assert_eq!(
            (h18[8].visitors, h18[11].visitors, h18[12].visitors),
            (None, None, None)
        );
        assert_eq!(hours[11].visitors, Some(100.0));
    }

    #[test]
    fn returning_visitors_need_enough_linkable_devices() {
        let rows = [
            ReturningRow {
                visits_in: 1,
                returning: 0,
                devices: 40,
            },
            ReturningRow {
                visits_in: 2,
                returning: 1,
                devices: 25,
            },
            ReturningRow {
                visits_in: 1,
                returning: 1,
                devices: 30,
            },
        ];
        let r = returning_figures(&rows, 950, 20).expect("95 linkable devices");
        assert_eq!(r.linkable_devices, 95);
        assert_eq!((r.new, r.returning), (Some(40), Some(55)));
        assert!((r.share.expect("share") - 0.1).abs() < 1e-12);
        // Visits 3, 4 and 5+ have no device: shown as 0; 1 and 2 visits as counted.
        assert_eq!(
            r.frequency,
            vec![
                ("1", Some(70)),
                ("2", Some(25)),
                ("3", Some(0)),
                ("4", Some(0)),
                ("5+", Some(0))
            ]
        );
        assert_eq!(returning_figures(&rows, 950, 100), None);
    }

    #[test]
    fn an_unknown_table_is_named() {
        let e = csv(
            &StoreDetail {
                from: String::new(),
                to: String::new(),
                thresholds: Thresholds {
                    followed: 1,
                    counts: 1,
                },
                figures: StoreFigures::new(
                    stores::SiteRow {
                        site_id: "s".into(),
                        brand: "b".into(),
                        tz: "UTC".into(),
                    },
                    &stores::TrafficSums::default(),
                    1,
                ),
                days: vec![],
                hours: vec![],
                hour_profile: vec![],
                peak_hours: vec![],
                weekday_hours: vec![],
                dwell: vec![],
                occupancy: vec![],
                occupancy_latest: None,
                returning: None,
            },
            "weeks",
        )
        .expect_err("unknown");
        assert!(e.starts_with("table: \"weeks\""), "{e}");
    }
}
