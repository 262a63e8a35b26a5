//! The Compare page: several stores over one period, or one store over two periods, side
//! by side: the Stores page's figures per column and visitors per day of each.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::period::Period;
use crate::privacy::suppress;
use crate::stores::{self, StoreFigures};

/// The most columns a comparison shows.
pub const MAX_COLUMNS: usize = 6;

/// What to compare: each column a store and a period.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareQuery {
    pub columns: Vec<(String, Period)>,
}

impl CompareQuery {
    /// `stores` (comma-separated) over `from`-`to`; or, with `from2`/`to2`, one store over
    /// both periods. A bad parameter is an error naming it, for a 400.
    pub fn parse(
        stores: Option<&str>,
        period: Period,
        second: Option<Period>,
    ) -> Result<CompareQuery, String> {
        let names: Vec<String> = stores
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Err("stores: missing (which stores? comma-separated)".into());
        }
        let columns: Vec<(String, Period)> = match second {
            Some(p2) if names.len() == 1 => {
                vec![(names[0].clone(), period), (names[0].clone(), p2)]
            }
            Some(_) => {
                return Err(format!(
                    "stores: two periods compare one store, not {}",
                    names.len()
                ))
            }
            None => names.into_iter().map(|n| (n, period)).collect(),
        };
        if columns.len() > MAX_COLUMNS {
            return Err(format!(
                "stores: at most {MAX_COLUMNS} side by side, not {}",
                columns.len()
            ));
        }
        Ok(CompareQuery { columns })
    }
}

/// Visitors per store and day; bound: the stores (an array), from, to.
pub const DAILY_SQL: &str = "SELECT site, toString(day) AS date, sum(visitors) AS s_visitors, \
    sum(visitor_devices) AS s_devices FROM traffic FINAL \
    WHERE has(?, site) AND day >= toDate(?) AND day <= toDate(?) GROUP BY site, day";

#[derive(Debug, Row, Deserialize)]
struct DailyRow {
    site: String,
    date: String,
    visitors: f64,
    devices: u64,
}

/// One column.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Column {
    pub store: String,
    pub from: String,
    pub to: String,
    pub figures: StoreFigures,
    /// Visitors on each day of the period, in order (`None`: no data, or suppressed).
    pub days: Vec<Option<f64>>,
}

/// Reads the columns (one query of each kind per period); a store the user cannot see is an
/// error naming it.
pub async fn load(
    db: &clickhouse::Client,
    q: &CompareQuery,
    brands: &[String],
    k: u32,
) -> Result<Result<Vec<Column>, String>, clickhouse::error::Error> {
    let mut periods: Vec<Period> = q.columns.iter().map(|(_, p)| *p).collect();
    periods.dedup();
    let mut figures = Vec::new();
    let mut daily = Vec::new();
    for period in &periods {
        let names: Vec<String> = q
            .columns
            .iter()
            .filter(|(_, p)| p == period)
            .map(|(s, _)| s.clone())
            .collect();
        let query = stores::Query {
            period: *period,
            brand: None,
            sort: stores::Sort::Store,
            descending: false,
        };
        figures.push(stores::load(db, &query, brands, &names, k).await?);
        let rows: Vec<DailyRow> = crate::db::fetch_all(
            db.query(DAILY_SQL)
                .bind(&names)
                .bind(period.from.to_string())
                .bind(period.to.to_string()),
        )
        .await?;
        daily.push(rows);
    }
    let mut out = Vec::new();
    for (store, period) in &q.columns {
        let i = periods.iter().position(|p| p == period).unwrap_or(0);
        let Some(f) = figures[i].iter().find(|f| f.store == *store) else {
            return Ok(Err(format!("stores: {store:?} is not a store you can see")));
        };
        let cells: Vec<Option<(f64, u64)>> = period
            .dates()
            .map(|d| {
                let date = d.to_string();
                daily[i]
                    .iter()
                    .find(|r| r.site == *store && r.date == date)
                    .map(|r| (r.visitors, r.devices))
            })
            .collect();
        let shown = suppress(
            &cells
                .iter()
                .map(|c| c.unwrap_or((0.0, 0)))
                .collect::<Vec<_>>(),
            u64::from(k),
        );
        out.push(Column {
            store: store.clone(),
            from: period.from.to_string(),
            to: period.to.to_string(),
            figures: f.clone(),
            // A day without data is no data, not zero.
            days: shown
                .into_iter()
                .zip(&cells)
                .map(|(v, c)| v.filter(|_| c.is_some()))
                .collect(),
        });
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(from: &str, to: &str) -> Period {
        Period::parse(
            Some(from),
            Some(to),
            chrono::NaiveDate::from_ymd_opt(2026, 4, 1).expect("date"),
        )
        .expect("period")
    }

    #[test]
    fn stores_side_by_side_or_one_store_over_two_periods() {
        let p = period("2026-03-01", "2026-03-07");
        let q = CompareQuery::parse(Some("a, b,,c"), p, None).expect("three stores");
        let names: Vec<&str> = q.columns.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let p2 = period("2026-03-08", "2026-03-14");
        let q = CompareQuery::parse(Some("a"), p, Some(p2)).expect("two periods");
        assert_eq!(q.columns, vec![("a".into(), p), ("a".into(), p2)]);
        for (stores, second, msg) in [
            (None, None, "stores: missing"),
            (
                Some("a,b"),
                Some(p2),
                "stores: two periods compare one store, not 2",
            ),
            (
                Some("a,b,c,d,e,f,g"),
                None,
                "stores: at most 6 side by side, not 7",
            ),
        ] {
            let e = CompareQuery::parse(stores, p, second).expect_err(msg);
            assert!(e.starts_with(msg), "{e}");
        }
    }
}
