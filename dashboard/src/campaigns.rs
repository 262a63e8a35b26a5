//! The Campaigns page: every campaign of the user's brands (table `campaigns`) with its
//! report's status and headline lift, read from the attribution's report.json in the reports
//! directory (`<dir>/<campaign id>/report.json`, beside its report.html, which the page
//! links to).

use std::path::Path;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// The campaigns; bound: nothing. Sorted outside the FINAL read: 18.16 refuses ORDER BY
/// beside FINAL on a Distributed table without a WHERE ("Cannot find column imported_ms").
pub const CAMPAIGNS_SQL: &str =
    "SELECT * FROM (SELECT campaign_id, brand, creative_id, length(boards) AS n_boards, \
    start_ms, end_ms, spend, currency FROM campaigns FINAL) ORDER BY start_ms DESC, campaign_id";

#[derive(Debug, Row, Deserialize)]
struct CampaignRow {
    campaign_id: String,
    brand: String,
    creative_id: String,
    boards: u64,
    start_ms: i64,
    end_ms: i64,
    spend: f64,
    currency: String,
}

/// A campaign as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CampaignFigures {
    pub id: String,
    pub brand: String,
    pub creative: String,
    pub boards: u64,
    /// UTC dates of the flight.
    pub start: String,
    pub end: String,
    pub spend: f64,
    pub currency: String,
    /// The report's status (`ok`, `underpowered`, ...), or `no report`.
    pub status: String,
    /// The primary window's absolute lift and its 95 % headline interval, in percentage
    /// points.
    pub window_days: Option<u64>,
    pub lift_pp: Option<f64>,
    pub lo_pp: Option<f64>,
    pub hi_pp: Option<f64>,
    /// Whether report.html is there to open.
    pub has_report: bool,
}

/// A campaign id that can name a folder: letters, digits, `-`, `_`, `.` (not leading).
pub fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Reads the campaigns of `brands` (empty: every brand) and their reports under `reports`.
pub async fn load(
    db: &clickhouse::Client,
    brands: &[String],
    reports: &Path,
) -> Result<Vec<CampaignFigures>, clickhouse::error::Error> {
    let rows: Vec<CampaignRow> = crate::db::fetch_all(db.query(CAMPAIGNS_SQL)).await?;
    Ok(rows
        .into_iter()
        .filter(|r| brands.is_empty() || brands.contains(&r.brand))
        .map(|r| figures(r, reports))
        .collect())
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
}

/// What the page reads of the attribution's report.json (serde skips the rest).
#[derive(Deserialize)]
struct ReportHead {
    status: String,
    windows: Vec<WindowHead>,
}

#[derive(Deserialize)]
struct WindowHead {
    window_days: u64,
    primary: bool,
    /// The interval the report leads with (the cluster bootstrap's or Newcombe's); reports
    /// written before it existed have Newcombe's only, in `comparison`.
    headline: Option<HeadlineHead>,
    comparison: Option<ComparisonHead>,
}

#[derive(Deserialize)]
struct HeadlineHead {
    interval: Option<Interval>,
}

#[derive(Deserialize)]
struct ComparisonHead {
    difference: Option<f64>,
    newcombe: Option<Interval>,
}

#[derive(Deserialize)]
struct Interval {
    lo: Option<f64>,
    hi: Option<f64>,
}

fn figures(r: CampaignRow, reports: &Path) -> CampaignFigures {
    let dir = safe_id(&r.campaign_id).then(|| reports.join(&r.campaign_id));
    let report: Option<ReportHead> = dir
        .as_ref()
        .and_then(|d| std::fs::read(d.join("report.json")).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let primary = report
        .as_ref()
        .and_then(|j| j.windows.iter().find(|w| w.primary));
    let c = primary.and_then(|w| w.comparison.as_ref());
    let interval = primary
        .and_then(|w| w.headline.as_ref())
        .and_then(|h| h.interval.as_ref())
        .or(c.and_then(|c| c.newcombe.as_ref()));
    let pp = |v: Option<f64>| v.map(|x| 100.0 * x);
    CampaignFigures {
        status: report
            .as_ref()
            .map_or("no report", |j| j.status.as_str())
            .to_owned(),
        window_days: primary.map(|w| w.window_days),
        lift_pp: pp(c.and_then(|c| c.difference)),
        lo_pp: pp(interval.and_then(|i| i.lo)),
        hi_pp: pp(interval.and_then(|i| i.hi)),
        has_report: dir.is_some_and(|d| d.join("report.html").is_file()),
        id: r.campaign_id,
        brand: r.brand,
        creative: r.creative_id,
        boards: r.boards,
        start: date(r.start_ms),
        end: date(r.end_ms),
        spend: r.spend,
        currency: r.currency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_gives_the_status_and_the_primary_windows_lift() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("spring")).expect("mkdir");
        std::fs::write(
            dir.path().join("spring/report.json"),
            r#"{"status": "ok", "windows": [
                {"window_days": 1, "primary": true,
                 "headline": {"method": "cluster_bootstrap", "estimate": 0.0142, "interval": {"lo": 0.0011, "hi": 0.0291}},
                 "comparison": {"difference": 0.0142, "newcombe": {"lo": 0.0015, "hi": 0.0267}}},
                {"window_days": 3, "primary": false, "comparison": {"difference": 0.5}}]}"#,
        )
        .expect("write");
        // A report written before the headline existed: Newcombe's interval.
        std::fs::create_dir(dir.path().join("winter")).expect("mkdir");
        std::fs::write(
            dir.path().join("winter/report.json"),
            r#"{"status": "ok", "windows": [
                {"window_days": 1, "primary": true, "comparison": {"difference": 0.0142, "newcombe": {"lo": 0.0015, "hi": 0.0267}}}]}"#,
        )
        .expect("write");
        let row = |id: &str| CampaignRow {
            campaign_id: id.into(),
            brand: "acme".into(),
            creative_id: "c".into(),
            boards: 8,
            start_ms: 1_773_014_400_000,
            end_ms: 1_773_619_200_000,
            spend: 1.0,
            currency: "EUR".into(),
        };
        let f = figures(row("spring"), dir.path());
        assert_eq!((f.status.as_str(), f.window_days), ("ok", Some(1)));
        assert!((f.lift_pp.expect("lift") - 1.42).abs() < 1e-9);
        assert!((f.hi_pp.expect("hi") - 2.91).abs() < 1e-9);
        let old = figures(row("winter"), dir.path());
        assert!((old.hi_pp.expect("hi") - 2.67).abs() < 1e-9);
        assert!(!f.has_report, "no report.html");
        assert_eq!(
            (f.start.as_str(), f.end.as_str()),
            ("2026-03-09", "2026-03-16")
        );
        let none = figures(row("summer"), dir.path());
        assert_eq!((none.status.as_str(), none.lift_pp), ("no report", None));
        // An id that could leave the directory is never read.
        assert!(!safe_id("../spring") && !safe_id("a/b") && !safe_id("") && safe_id("q1-2026_x.y"));
    }
}
