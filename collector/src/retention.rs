//! Retention: each table's rows are kept `retention.<table>_days`, then dropped a calendar
//! month at a time. The tables are partitioned by `toYYYYMM(day)` and ClickHouse 18.16 has no
//! TTL, so a month's partition goes once its last day is older than the retention: dropping
//! a partition is immediate and rewrites nothing. Process 0 of the collector applies it at
//! start and every hour; `footfall-collector retention` applies it once.

use std::time::Duration;

use chrono::NaiveDate;
use tracing::{info, warn};

use crate::ch::{QueryError, What};

/// How often the collector applies the retention.
pub const EVERY: Duration = Duration::from_secs(3600);

/// The months of `table` whose last day is before `today - days`: partition ids (YYYYMM).
fn expired(partitions: &[u32], today: NaiveDate, days: u32) -> Vec<u32> {
    let cutoff = today - chrono::Days::new(u64::from(days));
    partitions
        .iter()
        .copied()
        .filter(|&p| {
            let (y, m) = ((p / 100) as i32, p % 100);
            // The first day of the next month.
            let next = if m == 12 {
                NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(y, m + 1, 1)
            };
            next.is_some_and(|n| n <= cutoff)
        })
        .collect()
}

/// Drops the expired months of every table in `retention` ((table, days)); returns the
/// (table, month) pairs dropped.
pub async fn apply(
    db: &clickhouse::Client,
    ch: &warehouse::ClickHouseConfig,
    retention: &[(&'static str, u32)],
) -> Result<Vec<(&'static str, u32)>, QueryError> {
    let today = chrono::Utc::now().date_naive();
    let mut dropped = Vec::new();
    for &(table, days) in retention {
        let partitions: Vec<String> = db
            .query(&format!(
                "SELECT DISTINCT partition FROM {} WHERE database = ? AND table = ? AND active",
                ch.system_table("parts")
            ))
            .bind(ch.database())
            .bind(ch.part_table(table))
            .fetch_all()
            .await
            .what(|| format!("listing the months of {table}"))?;
        let months: Vec<u32> = partitions.iter().filter_map(|p| p.parse().ok()).collect();
        for month in expired(&months, today, days) {
            // A partition id is bound like any value: the month is a number.
            db.query(&format!(
                "ALTER TABLE {} DROP PARTITION ?",
                ch.local_table(table)
            ))
            .bind(month)
            .execute()
            .await
            .what(|| format!("dropping {table}'s month {month}"))?;
            info!(
                table,
                month, days, "retention: dropped a month past its retention"
            );
            dropped.push((table, month));
        }
    }
    Ok(dropped)
}

/// Applies the retention now and every [`EVERY`] until `shutdown`; a failure is logged and
/// tried again at the next round.
pub async fn run(
    db: clickhouse::Client,
    ch: warehouse::ClickHouseConfig,
    retention: Vec<(&'static str, u32)>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = apply(&db, &ch, &retention).await {
            warn!(error = %e, "retention not applied; trying again in an hour");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_goes_once_its_last_day_is_past_the_retention() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).expect("date");
        let months = [202510, 202511, 202512, 202601, 202611, 202612];
        // 30 days: the cutoff is 2026-11-03; November 2026 still has days after it.
        assert_eq!(
            expired(&months, today, 30),
            [202510, 202511, 202512, 202601]
        );
        // 400 days: the cutoff is 2025-10-29; October 2025 ends after it.
        assert_eq!(expired(&months, today, 400), Vec::<u32>::new());
        assert_eq!(
            expired(&months, today, 2),
            [202510, 202511, 202512, 202601, 202611]
        );
    }
}
