//! Retention: each table's rows are kept `retention.<table>_days`, then dropped a calendar
//! month at a time. The tables are partitioned by `toYYYYMM(day)` and ClickHouse 18.16 has no
//! TTL, so a month's partition goes once its last day is older than the retention: dropping
//! a partition is immediate and rewrites nothing.
//!
//! Compaction: a month of the tables the report reads ([`warehouse::parts::REPORTED`]) that
//! no sighting can reach any more (its last day more than `ingest.max_age_days` and a day
//! ago) is merged into one part on each node (`OPTIMIZE ... FINAL`), once, and again if rows
//! come to it later (a recomputation, an import): the report reads such a month without
//! `FINAL` (warehouse's `parts`).
//!
//! Process 0 of the collector applies both at start and every hour; `footfall-collector
//! retention` applies both once.

use std::time::Duration;

use chrono::NaiveDate;
use tracing::{info, warn};
use warehouse::parts::{Compacted, REPORTED};

use crate::ch::{QueryError, What};

/// How often the collector applies the retention.
pub const EVERY: Duration = Duration::from_secs(3600);

/// How long a month's merge may go without an answer (ClickHouse sends none until it is
/// done): a round's length.
const MERGE_TIMEOUT: Duration = EVERY;

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

/// Days after its last day that a month is settled: no sighting reaches it any more
/// (`ingest.max_age_days`, and a day for the clocks).
pub fn settle_days(cfg: &crate::config::Config) -> u32 {
    u32::try_from(cfg.ingest().max_age_ms() / 86_400_000 + 1).unwrap_or(u32::MAX)
}

/// Merges each settled month of the [`REPORTED`] tables that is not one merged part into
/// one: settled, its last day before `today - settle_days`. An unpartitioned table is merged
/// whole. Not on a cluster (below). Returns the (table, partition) pairs merged.
pub async fn compact(
    ch: &warehouse::ClickHouseConfig,
    settle_days: u32,
) -> Result<Vec<(&'static str, String)>, QueryError> {
    if ch.cluster().is_some() {
        // 18.16 refuses `OPTIMIZE ... ON CLUSTER` on the non-leader replicas of a replicated
        // table ("Unknown log entry type: 0"): a cluster's months are left to ClickHouse's
        // own merges, and read with FINAL until each is one part on every node.
        return Ok(Vec::new());
    }
    // `OPTIMIZE ... FINAL` answers only once its merge is done: minutes for a city's month.
    // Without `optimize_throw_if_noop` it answers at once, having done nothing, when one of
    // the partition's parts is in a background merge (seen on a city's month just ingested:
    // eight parts left, and the report read the month with FINAL, 1.6 times as long).
    let (db, _) = ch.clients_within(MERGE_TIMEOUT);
    let db = &db.clone().with_setting("optimize_throw_if_noop", "1");
    let today = chrono::Utc::now().date_naive();
    let listed = Compacted::read(db, ch, REPORTED)
        .await
        .what(|| "listing the parts of the tables reports read".into())?;
    let mut compacted = Vec::new();
    for &table in REPORTED {
        let pending = listed.not_compacted(table);
        let months: Vec<u32> = pending.iter().filter_map(|p| p.parse().ok()).collect();
        let mut due: Vec<String> = expired(&months, today, settle_days)
            .iter()
            .map(u32::to_string)
            .collect();
        if pending.contains(&"tuple()") {
            due.push("tuple()".into());
        }
        for partition in due {
            let which = match partition.as_str() {
                "tuple()" => String::new(),
                month => format!(" PARTITION {month}"),
            };
            let t = std::time::Instant::now();
            let sql = format!("OPTIMIZE TABLE {}{which} FINAL", ch.local_table(table));
            optimize(db, ch, table, &partition, &sql).await?;
            info!(
                table,
                partition,
                secs = t.elapsed().as_secs_f64(),
                "compacted a settled month into one part: reports read it without FINAL"
            );
            compacted.push((table, partition));
        }
    }
    Ok(compacted)
}

/// ClickHouse's answer to an `OPTIMIZE` it could not start (`optimize_throw_if_noop`): some
/// of the partition's parts are being merged.
const CANNOT_ASSIGN_OPTIMIZE: &str = "Code: 388";

/// How often [`optimize`] asks whether the partition's merges are done, and how many times
/// it sends the `OPTIMIZE`: a background merge of a city's month takes about a minute.
const MERGE_POLL: Duration = Duration::from_secs(1);
const ATTEMPTS: u32 = 600;

/// Runs `sql` (an `OPTIMIZE ... FINAL` of `table`'s `partition`), and again while ClickHouse
/// cannot start it because a background merge holds some of the partition's parts: each
/// time once the partition has no merge running, unless that merge made it one part.
async fn optimize(
    db: &clickhouse::Client,
    ch: &warehouse::ClickHouseConfig,
    table: &str,
    partition: &str,
    sql: &str,
) -> Result<(), QueryError> {
    // system.merges names the unpartitioned table's one partition `all`.
    let id = if partition == "tuple()" {
        "all"
    } else {
        partition
    };
    let mut attempt = 1;
    loop {
        match crate::ch::execute(db, sql).await {
            Err(e)
                if attempt < ATTEMPTS && e.source.to_string().contains(CANNOT_ASSIGN_OPTIMIZE) =>
            {
                info!(
                    table,
                    partition,
                    attempt,
                    "a background merge holds parts of the partition: waiting for it"
                );
            }
            done => return done,
        }
        attempt += 1;
        loop {
            tokio::time::sleep(MERGE_POLL).await;
            let merging: u64 = db
                .query(&format!(
                    "SELECT count() FROM {} WHERE database = ? AND table = ? AND partition_id = ?",
                    ch.system_table("merges")
                ))
                .bind(ch.database())
                .bind(ch.part_table(table))
                .bind(id)
                .fetch_one()
                .await
                .what(|| format!("listing the merges of {table}'s partition {partition}"))?;
            if merging == 0 {
                break;
            }
        }
        // The merge that held the parts may have been another OPTIMIZE of the partition.
        let now = Compacted::read(db, ch, &[table])
            .await
            .what(|| format!("listing the parts of {table}"))?;
        if !now.not_compacted(table).contains(&partition) {
            return Ok(());
        }
    }
}

/// Applies the retention and the compaction (of months `settle_days` past) now and every
/// [`EVERY`] until `shutdown`; a failure is logged and tried again at the next round.
pub async fn run(
    db: clickhouse::Client,
    ch: warehouse::ClickHouseConfig,
    retention: Vec<(&'static str, u32)>,
    settle_days: u32,
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
        if let Err(e) = compact(&ch, settle_days).await {
            warn!(error = %e, "settled months not compacted; trying again in an hour");
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
