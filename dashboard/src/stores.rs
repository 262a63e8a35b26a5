//! The Stores page's figures: every store with its visitors, passers-by, capture rate and
//! dwell over a period, and the changes against the previous period and against the same
//! weekday a week before the period's last day. From the `traffic` table (people, per local
//! hour) and the inventory (`sites`).

use chrono::NaiveDate;

use crate::period::Period;
use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// The period asked for, and the filters.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub period: Period,
    pub brand: Option<String>,
    pub sort: Sort,
    pub descending: bool,
}

/// The columns the table sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    Store,
    Visitors,
    PassersBy,
    Capture,
    Change,
}

impl Sort {
    pub const ALL: [(&'static str, Sort); 5] = [
        ("store", Sort::Store),
        ("visitors", Sort::Visitors),
        ("passers_by", Sort::PassersBy),
        ("capture", Sort::Capture),
        ("change", Sort::Change),
    ];

    pub fn name(self) -> &'static str {
        Sort::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("store", |(n, _)| n)
    }
}

impl Query {
    /// Reads the URL's parameters (absent: the last 7 days to `today`, every brand, by
    /// store); a bad one is an error naming it, for a 400.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        brand: Option<&str>,
        sort: Option<&str>,
        order: Option<&str>,
        today: NaiveDate,
    ) -> Result<Query, String> {
        let period = Period::parse(from, to, today)?;
        let sort = match sort {
            None => Sort::Store,
            Some(v) => Sort::ALL
                .iter()
                .find(|(n, _)| *n == v)
                .map(|(_, s)| *s)
                .ok_or_else(|| {
                    let names: Vec<&str> = Sort::ALL.iter().map(|(n, _)| *n).collect();
                    format!("sort: {v:?} is not one of {}", names.join(", "))
                })?,
        };
        let descending = match order {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(v) => return Err(format!("order: {v:?} is not asc or desc")),
        };
        Ok(Query {
            period,
            brand: brand.filter(|b| !b.is_empty()).map(str::to_owned),
            sort,
            descending,
        })
    }

    /// This query's parameters as a URL query string (shareable; `sort` and `order` as given).
    pub fn url_query(&self, sort: Sort, descending: bool) -> String {
        let mut q = format!("from={}&to={}", self.period.from, self.period.to);
        if let Some(b) = &self.brand {
            q.push_str("&brand=");
            q.push_str(&percent(b));
        }
        q.push_str(&format!(
            "&sort={}&order={}",
            sort.name(),
            if descending { "desc" } else { "asc" }
        ));
        q
    }
}

/// Percent-encodes a query value (everything but unreserved characters and `/`, which a
/// query may hold as it is).
pub fn percent(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A store of the inventory.
#[derive(Debug, Row, Deserialize)]
pub struct SiteRow {
    pub site_id: String,
    pub brand: String,
    pub tz: String,
}

/// A store's traffic sums over the query's days ([`TRAFFIC_SQL`], its columns in this order;
/// the aliases differ from the table's columns, which ClickHouse would otherwise resolve to
/// the aliases inside the sums).
#[derive(Debug, Default, Row, Deserialize)]
pub struct TrafficSums {
    pub site: String,
    pub visitors: f64,
    pub passers_by: f64,
    pub visitor_devices: u64,
    pub passer_by_devices: u64,
    pub previous_visitors: f64,
    pub previous_devices: u64,
    pub last_day: f64,
    pub last_day_devices: u64,
    pub week_before: f64,
    pub week_before_devices: u64,
    /// Visitor stays by dwell bucket (an Array in ClickHouse).
    pub dwell: Vec<u64>,
    pub capture_rate: f32,
}

/// The traffic sums per store; bound: from, to, previous from, previous to, the last day
/// (three times, for its own, a week before, and the scan's start), and which stores:
/// every one (1, and any non-empty array), or those in the array (0, the array). (`has` on
/// every row costs as many comparisons as the array is long: 760 stores made the page 17
/// times slower; and 18.16 refuses it on an empty array.)
pub const TRAFFIC_SQL: &str = "SELECT site, \
    sumIf(visitors, day >= toDate(?) AND day <= toDate(?)) AS s_visitors, \
    sumIf(passers_by, day >= toDate(?) AND day <= toDate(?)) AS s_passers_by, \
    sumIf(visitor_devices, day >= toDate(?) AND day <= toDate(?)) AS s_visitor_devices, \
    sumIf(passer_by_devices, day >= toDate(?) AND day <= toDate(?)) AS s_passer_by_devices, \
    sumIf(visitors, day >= toDate(?) AND day <= toDate(?)) AS s_previous_visitors, \
    sumIf(visitor_devices, day >= toDate(?) AND day <= toDate(?)) AS s_previous_devices, \
    sumIf(visitors, day = toDate(?)) AS s_last_day, \
    sumIf(visitor_devices, day = toDate(?)) AS s_last_day_devices, \
    sumIf(visitors, day = toDate(?) - 7) AS s_week_before, \
    sumIf(visitor_devices, day = toDate(?) - 7) AS s_week_before_devices, \
    [sumIf(dwell_under_5, day >= toDate(?) AND day <= toDate(?)), \
     sumIf(dwell_5_20, day >= toDate(?) AND day <= toDate(?)), \
     sumIf(dwell_20_60, day >= toDate(?) AND day <= toDate(?)), \
     sumIf(dwell_over_60, day >= toDate(?) AND day <= toDate(?))] AS s_dwell, \
    max(capture_rate) AS s_capture_rate \
    FROM traffic FINAL \
    WHERE day >= least(toDate(?), toDate(?) - 7) AND day <= toDate(?) \
    AND (? OR has(?, site)) \
    GROUP BY site";

/// The stores of `brands` (empty: every brand), by name.
pub async fn sites(
    db: &clickhouse::Client,
    brands: &[String],
) -> Result<Vec<SiteRow>, clickhouse::error::Error> {
    let sites: Vec<SiteRow> =
        crate::db::fetch_all(db.query(
            "SELECT site_id, brand, tz FROM sites FINAL WHERE kind = 'store' ORDER BY site_id",
        ))
        .await?;
    Ok(sites
        .into_iter()
        .filter(|s| brands.is_empty() || brands.contains(&s.brand))
        .collect())
}

/// Reads the figures of `q` for the stores of `brands` (empty: every brand), and of those
/// only the stores in `only` (empty: all of them).
pub async fn load(
    db: &clickhouse::Client,
    q: &Query,
    brands: &[String],
    only: &[String],
    min_devices: u32,
) -> Result<Vec<StoreFigures>, clickhouse::error::Error> {
    let sites: Vec<SiteRow> = sites(db, brands)
        .await?
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(&s.site_id))
        .filter(|s| q.brand.as_ref().is_none_or(|b| *b == s.brand))
        .collect();
    if sites.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<&str> = if only.is_empty() {
        vec![""]
    } else {
        only.iter().map(String::as_str).collect()
    };
    let previous = q.period.previous();
    let (from, to, pf, pt) = (
        q.period.from.to_string(),
        q.period.to.to_string(),
        previous.from.to_string(),
        previous.to.to_string(),
    );
    let mut sql = db.query(TRAFFIC_SQL);
    for _ in 0..4 {
        sql = sql.bind(&from).bind(&to);
    }
    sql = sql.bind(&pf).bind(&pt).bind(&pf).bind(&pt);
    for _ in 0..4 {
        sql = sql.bind(&to);
    }
    for _ in 0..4 {
        sql = sql.bind(&from).bind(&to);
    }
    sql = sql
        .bind(&pf)
        .bind(&to)
        .bind(&to)
        .bind(u8::from(only.is_empty()))
        .bind(&wanted);
    let sums: Vec<TrafficSums> = crate::db::fetch_all(sql).await?;
    let mut by_site: std::collections::HashMap<String, TrafficSums> =
        sums.into_iter().map(|s| (s.site.clone(), s)).collect();
    let mut rows: Vec<StoreFigures> = sites
        .into_iter()
        .map(|s| {
            let t = by_site.remove(&s.site_id).unwrap_or_default();
            StoreFigures::new(s, &t, min_devices)
        })
        .collect();
    sort(&mut rows, q.sort, q.descending);
    Ok(rows)
}

/// One store's row, as every output shows it. `None`: no data, or suppressed (built on
/// fewer devices than the k-anonymity threshold).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoreFigures {
    pub store: String,
    pub brand: String,
    pub tz: String,
    pub visitors: Option<f64>,
    pub passers_by: Option<f64>,
    /// visitors / passers-by.
    pub capture_rate: Option<f64>,
    /// The dwell bucket holding the median visitor: "under 5", "5-20", "20-60", "over 60".
    pub median_dwell_min: Option<&'static str>,
    /// The visitors' and passers-by's 95 % intervals ([`interval`]), where they are shown.
    pub visitors_interval: Option<[f64; 2]>,
    pub passers_by_interval: Option<[f64; 2]>,
    /// Against the previous period, relative.
    pub change_previous: Option<f64>,
    /// Visitors on the period's last day (today, by default).
    pub last_day: Option<f64>,
    /// The period's last day against the same weekday a week before, relative.
    pub change_week: Option<f64>,
    /// Whether the people are corrected for the share of visitors the sensors hear.
    pub capture_corrected: bool,
}

const BUCKETS: [&str; 4] = ["under 5", "5-20", "20-60", "over 60"];

impl StoreFigures {
    pub(crate) fn new(s: SiteRow, t: &TrafficSums, k: u32) -> StoreFigures {
        let k = u64::from(k);
        let shown = |v: f64, devices: u64| (devices >= k).then_some(v);
        let visitors = shown(t.visitors, t.visitor_devices);
        let passers_by = shown(t.passers_by, t.passer_by_devices);
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let change = |now: Option<f64>, before: Option<f64>| ratio(now, before).map(|r| r - 1.0);
        let total: u64 = t.dwell.iter().sum();
        let median_dwell_min = (t.visitor_devices >= k && total > 0)
            .then(|| {
                let mut acc = 0;
                t.dwell.iter().position(|&n| {
                    acc += n;
                    2 * acc >= total
                })
            })
            .flatten()
            .and_then(|i| BUCKETS.get(i).copied());
        StoreFigures {
            store: s.site_id,
            brand: s.brand,
            tz: s.tz,
            capture_rate: ratio(visitors, passers_by),
            visitors_interval: visitors.and(interval(t.visitors, t.visitor_devices)),
            passers_by_interval: passers_by.and(interval(t.passers_by, t.passer_by_devices)),
            change_previous: change(visitors, shown(t.previous_visitors, t.previous_devices)),
            last_day: shown(t.last_day, t.last_day_devices),
            change_week: change(
                shown(t.last_day, t.last_day_devices),
                shown(t.week_before, t.week_before_devices),
            ),
            visitors,
            passers_by,
            median_dwell_min,
            capture_corrected: t.capture_rate > 0.0,
        }
    }
}

/// The 95 % interval of `people` estimated from `stays` stays: the stays' Poisson interval
/// ([`intervals::poisson`], as the collector's occupancy windows), scaled as the people are
/// (people per device, capture correction). `None` without stays (nothing to scale).
pub fn interval(people: f64, stays: u64) -> Option<[f64; 2]> {
    (stays > 0).then(|| {
        let scale = people / stays as f64;
        let (lo, hi) = intervals::poisson(stays as f64);
        [lo * scale, hi * scale]
    })
}

fn sort(rows: &mut [StoreFigures], by: Sort, descending: bool) {
    let key = |r: &StoreFigures| match by {
        Sort::Store => None,
        Sort::Visitors => r.visitors,
        Sort::PassersBy => r.passers_by,
        Sort::Capture => r.capture_rate,
        Sort::Change => r.change_previous,
    };
    rows.sort_by(|a, b| {
        let o = match by {
            Sort::Store => a.store.cmp(&b.store),
            // Missing figures last whatever the order.
            _ => match (key(a), key(b)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => return std::cmp::Ordering::Less,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            },
        };
        if descending {
            o.reverse()
        } else {
            o
        }
    });
}

/// The rows as CSV (the same figures as the page; empty cells where the page shows none).
pub fn csv(rows: &[StoreFigures]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "store",
        "brand",
        "visitors",
        "visitors_lo",
        "visitors_hi",
        "passers_by",
        "passers_by_lo",
        "passers_by_hi",
        "capture_rate",
        "median_dwell_min",
        "change_previous",
        "last_day",
        "change_week",
        "capture_corrected",
    ])?;
    let f = |v: Option<f64>, digits: usize| v.map_or(String::new(), |v| format!("{v:.digits$}"));
    for r in rows {
        w.write_record([
            r.store.clone(),
            r.brand.clone(),
            f(r.visitors, 1),
            f(r.visitors_interval.map(|i| i[0]), 1),
            f(r.visitors_interval.map(|i| i[1]), 1),
            f(r.passers_by, 1),
            f(r.passers_by_interval.map(|i| i[0]), 1),
            f(r.passers_by_interval.map(|i| i[1]), 1),
            f(r.capture_rate, 4),
            r.median_dwell_min.unwrap_or("").to_owned(),
            f(r.change_previous, 4),
            f(r.last_day, 1),
            f(r.change_week, 4),
            r.capture_corrected.to_string(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 20).expect("date")
    }

    #[test]
    fn parameters_default_to_the_last_week_and_bad_ones_are_named() {
        let q = Query::parse(None, None, None, None, None, today()).expect("defaults");
        assert_eq!(
            q.period,
            Period::parse(None, None, today()).expect("period")
        );
        assert_eq!((q.sort, q.descending, q.brand), (Sort::Store, false, None));
        for (args, field) in [
            ((Some("2026-02-30"), None, None, None), "from"),
            ((None, None, Some("size"), None), "sort"),
            ((None, None, None, Some("up")), "order"),
        ] {
            let e = Query::parse(args.0, args.1, None, args.2, args.3, today()).expect_err(field);
            assert!(e.starts_with(&format!("{field}: ")), "{e}");
        }
    }

    #[test]
    fn figures_under_the_threshold_are_suppressed_and_changes_follow_the_sums() {
        let site = || SiteRow {
            site_id: "s".into(),
            brand: "b".into(),
            tz: "UTC".into(),
        };
        let t = TrafficSums {
            visitors: 200.0,
            passers_by: 800.0,
            visitor_devices: 80,
            passer_by_devices: 400,
            previous_visitors: 160.0,
            previous_devices: 70,
            last_day: 30.0,
            last_day_devices: 12,
            week_before: 20.0,
            week_before_devices: 8,
            dwell: vec![10, 30, 30, 10],
            capture_rate: 0.43,
            ..TrafficSums::default()
        };
        let f = StoreFigures::new(site(), &t, 50);
        assert_eq!(f.visitors, Some(200.0));
        // 80 stays' Garwood interval (63.435, 99.567; scipy's chi2) times 2.5 people a stay;
        // 400 stays' (361.756, 441.187) times 2.
        let [lo, hi] = f.visitors_interval.expect("shown");
        assert!(
            (lo - 158.59).abs() < 0.05 && (hi - 248.92).abs() < 0.05,
            "{lo}, {hi}"
        );
        let [lo, hi] = f.passers_by_interval.expect("shown");
        assert!(
            (lo - 723.51).abs() < 0.1 && (hi - 882.37).abs() < 0.1,
            "{lo}, {hi}"
        );
        assert_eq!(f.capture_rate, Some(0.25));
        assert!((f.change_previous.expect("shown") - 0.25).abs() < 1e-12);
        assert_eq!(f.change_week, None, "12 and 8 devices are under 50");
        assert_eq!(f.last_day, None);
        assert_eq!(f.median_dwell_min, Some("5-20"));
        assert!(f.capture_corrected);
        let small = StoreFigures::new(site(), &t, 8);
        assert!((small.change_week.expect("shown") - 0.5).abs() < 1e-12);
        assert_eq!(small.last_day, Some(30.0));
        let hidden = StoreFigures::new(site(), &t, 100);
        assert_eq!((hidden.visitors, hidden.median_dwell_min), (None, None));
        assert_eq!(
            hidden.visitors_interval, None,
            "a hidden figure's interval too"
        );
    }
}
