//! The opt-out purge: every row of the listed device keys removed from each table that holds
//! device keys (DESIGN.md, "Opt-out"). `sightings` (device or link), `visits`, `bridges`
//! (either key), `links` and `rejected` (a payload naming a key) lose their rows; in
//! `quarantine` the keys are overwritten with zeros, so a held message keeps its other
//! sightings and a replay refuses the purged ones ([`crate::decode`]). Aggregates
//! (`occupancy`, `traffic`) hold no keys and are kept. ClickHouse applies the deletions as
//! mutations, in the background; [`purge`] waits for them and checks nothing is left.

use std::collections::HashSet;
use std::time::Duration;

use wire::DeviceKey;

use crate::ch::{QueryError, What};

/// What a key becomes in a held payload.
pub const PURGED: &str = "0000000000000000";

/// (table, the condition its rows of the keys meet, with `?` for the key list or pattern).
const TABLES: [(&str, &str); 5] = [
    ("sightings", "has(?, device) OR has(?, link)"),
    ("visits", "has(?, device)"),
    ("bridges", "has(?, device) OR has(?, next)"),
    ("links", "has(?, device)"),
    ("rejected", "match(payload, ?)"),
];

/// Rows removed, per table, and the held messages rewritten.
#[derive(Debug, Default)]
pub struct Purged {
    pub rows: Vec<(&'static str, u64)>,
    pub held: u64,
}

/// Why a purge did not finish.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(
        "the deletions were not applied within {0:?}; ClickHouse goes on with them (see system.mutations) and a second purge checks again"
    )]
    Timeout(Duration),
    #[error("{left} row(s) of the keys are still in {table} after the deletion")]
    Left { table: &'static str, left: u64 },
}

/// Removes every row of `keys`, waiting up to `timeout` for ClickHouse to apply it.
pub async fn purge(
    db: &clickhouse::Client,
    ch: &warehouse::ClickHouseConfig,
    keys: &HashSet<DeviceKey>,
    timeout: Duration,
) -> Result<Purged, PurgeError> {
    let mut ids: Vec<u64> = keys.iter().map(|k| k.0).collect();
    ids.sort_unstable();
    let mut hex: Vec<String> = keys.iter().map(ToString::to_string).collect();
    hex.sort_unstable();
    // Keys are 16 hex digits: nothing to escape in the pattern.
    let pattern = hex.join("|");
    // Every `?` of a statement is the key list, or, in a statement that matches payloads,
    // the pattern.
    let bind = |sql: &str| {
        let mut q = db.query(sql);
        for _ in 0..sql.matches('?').count() {
            q = if sql.contains("match(") {
                q.bind(pattern.as_str())
            } else {
                q.bind(ids.as_slice())
            };
        }
        q
    };
    let count = |table: &'static str, cond: &str| {
        let sql = format!("SELECT count() FROM {table} WHERE {cond}");
        let q = bind(&sql);
        async move {
            q.fetch_one::<u64>()
                .await
                .what(|| format!("counting the keys' rows in {table}"))
        }
    };
    let mut out = Purged::default();
    for (table, cond) in TABLES {
        let n = count(table, cond).await?;
        out.rows.push((table, n));
        if n > 0 {
            bind(&format!(
                "ALTER TABLE {} DELETE WHERE {cond}",
                ch.local_table(table)
            ))
            .execute()
            .await
            .what(|| format!("deleting the keys' rows from {table}"))?;
        }
    }
    let held_cond = "match(payload, ?)";
    out.held = count("quarantine", held_cond).await?;
    if out.held > 0 {
        bind(&format!(
            "ALTER TABLE {} UPDATE payload = replaceRegexpAll(payload, ?, '{PURGED}') \
             WHERE {held_cond}",
            ch.local_table("quarantine")
        ))
        .execute()
        .await
        .what(|| "overwriting the keys in the held messages (quarantine)".into())?;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let pending = db
            .query(&format!(
                "SELECT count() FROM {} WHERE database = ? AND is_done = 0",
                ch.system_table("mutations")
            ))
            .bind(ch.database())
            .fetch_one::<u64>()
            .await
            .what(|| "reading the progress of the deletions (system.mutations)".into())?;
        if pending == 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PurgeError::Timeout(timeout));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (table, cond) in TABLES.into_iter().chain([("quarantine", held_cond)]) {
        let left = count(table, cond).await?;
        if left > 0 {
            return Err(PurgeError::Left { table, left });
        }
    }
    Ok(out)
}
