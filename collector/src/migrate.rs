//! Versioned schema migrations (`collector/migrations/`), applied in order, each once.
//! Every statement is idempotent, so a migration cut short is simply applied again. An
//! applied migration whose text changed since is refused: schema history is append-only.

mod cluster;

use sha2::{Digest, Sha256};

use crate::ch::rows::Migration;
use crate::ch::{self, QueryError, What};
use crate::config::ClickHouseConfig;

/// (version, file name, text), in order.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "0001_schema.sql",
        include_str!("../migrations/0001_schema.sql"),
    ),
    (
        2,
        "0002_stream_checkpoints.sql",
        include_str!("../migrations/0002_stream_checkpoints.sql"),
    ),
    (
        3,
        "0003_occupancy.sql",
        include_str!("../migrations/0003_occupancy.sql"),
    ),
    (
        4,
        "0004_site_calibrations.sql",
        include_str!("../migrations/0004_site_calibrations.sql"),
    ),
    (
        5,
        "0005_links.sql",
        include_str!("../migrations/0005_links.sql"),
    ),
    (
        6,
        "0006_site_time_zones.sql",
        include_str!("../migrations/0006_site_time_zones.sql"),
    ),
    (
        7,
        "0007_traffic.sql",
        include_str!("../migrations/0007_traffic.sql"),
    ),
    (
        8,
        "0008_sensor_latest.sql",
        include_str!("../migrations/0008_sensor_latest.sql"),
    ),
    (
        9,
        "0009_bridges.sql",
        include_str!("../migrations/0009_bridges.sql"),
    ),
    (
        10,
        "0010_quarantine.sql",
        include_str!("../migrations/0010_quarantine.sql"),
    ),
    (
        11,
        "0011_calibrated_fixture_hours.sql",
        include_str!("../migrations/0011_calibrated_fixture_hours.sql"),
    ),
    (
        12,
        "0012_settled.sql",
        include_str!("../migrations/0012_settled.sql"),
    ),
    (
        13,
        "0013_visit_epochs.sql",
        include_str!("../migrations/0013_visit_epochs.sql"),
    ),
    (
        14,
        "0014_batches.sql",
        include_str!("../migrations/0014_batches.sql"),
    ),
];

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32, name String, checksum String, applied_ms Int64
) ENGINE = ReplacingMergeTree ORDER BY version";

/// The statements of a migration: `--` comment lines dropped, split at `;`.
pub fn statements(sql: &str) -> Vec<String> {
    let body: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    body.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The (table, column) of an `ALTER TABLE t ADD COLUMN c ...` statement: ClickHouse 18.16
/// has no `IF NOT EXISTS` there, so the migrator checks for the column itself.
fn added_column(stmt: &str) -> Option<(&str, &str)> {
    let words: Vec<&str> = stmt.split_whitespace().take(9).collect();
    match words[..] {
        ["ALTER", "TABLE", table, "ADD", "COLUMN", column, ..]
        | ["ALTER", "TABLE", table, "ON", "CLUSTER", _, "ADD", "COLUMN", column, ..] => {
            // A cluster's statements name the database too.
            Some((table.rsplit('.').next().unwrap_or(table), column))
        }
        _ => None,
    }
}

fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The server is down or refuses the user: start it, or fix `[clickhouse]`.
    #[error("cannot reach ClickHouse at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: QueryError,
    },
    /// A statement was refused: the server is older than the schema needs, or the tables
    /// were changed by hand.
    #[error("migration {name} failed")]
    Failed {
        name: &'static str,
        #[source]
        source: QueryError,
    },
    /// Schema history is append-only: restore the file and add a new migration.
    #[error(
        "migration {name} was changed after it was applied to {database} (checksum {applied} \
         there, {here} here); add a new migration instead"
    )]
    Changed {
        name: &'static str,
        database: String,
        applied: String,
        here: String,
    },
    /// The ledger table could not be read or written.
    #[error(transparent)]
    Ledger(#[from] QueryError),
}

/// The statements that bring a database to the schema, for one server or, when the
/// configuration names a cluster, for its shards and replicas ([`cluster`]).
pub struct Plan {
    /// Creates the database.
    pub database: String,
    /// Creates the ledger of applied migrations, `schema_migrations`.
    pub ledger: Vec<String>,
    /// Each migration's statements, in [`MIGRATIONS`]' order.
    pub migrations: Vec<Vec<String>>,
}

/// The statements for the server or cluster `c` names.
pub fn plan(c: &ClickHouseConfig) -> Plan {
    let on_cluster = c
        .cluster()
        .map_or(String::new(), |name| format!(" ON CLUSTER {name}"));
    // The tables created so far, for a cluster's views.
    let mut tables = Vec::new();
    let mut for_server = |stmt: &str| match c.cluster() {
        Some(_) => cluster::rewrite(stmt, c, &mut tables),
        None => vec![stmt.to_owned()],
    };
    Plan {
        database: format!("CREATE DATABASE IF NOT EXISTS {}{on_cluster}", c.database()),
        ledger: for_server(LEDGER),
        migrations: MIGRATIONS
            .iter()
            .map(|m| statements(m.2).iter().flat_map(|s| for_server(s)).collect())
            .collect(),
    }
}

/// Creates the database if needed and applies the missing migrations; returns the names of
/// those applied now.
pub async fn migrate(c: &ClickHouseConfig) -> Result<Vec<&'static str>, MigrateError> {
    let (db, server) = c.clients();
    // A DDL statement's errors in its status, not a connection cut mid-response (a
    // cluster's statements stream each server's result as it comes).
    let (db, server) = (
        db.with_setting("wait_end_of_query", "1"),
        server.with_setting("wait_end_of_query", "1"),
    );
    let plan = plan(c);
    ch::execute(&server, &plan.database)
        .await
        .map_err(|source| MigrateError::Unreachable {
            url: c.url().to_owned(),
            source,
        })?;
    for stmt in &plan.ledger {
        ch::execute(&db, stmt).await?;
    }
    let applied: Vec<Migration> = db
        .query("SELECT ?fields FROM schema_migrations FINAL ORDER BY version")
        .fetch_all()
        .await
        .what(|| "cannot read schema_migrations".into())?;
    let mut now_applied = Vec::new();
    for (&(version, name, sql), stmts) in MIGRATIONS.iter().zip(&plan.migrations) {
        let sum = checksum(sql);
        if let Some(a) = applied.iter().find(|a| a.version == version) {
            if a.checksum != sum {
                return Err(MigrateError::Changed {
                    name,
                    database: c.database().to_owned(),
                    applied: a.checksum.clone(),
                    here: sum,
                });
            }
            continue;
        }
        for stmt in stmts {
            if let Some((table, column)) = added_column(stmt) {
                let there: u64 = db
                    .query(
                        "SELECT count() FROM system.columns \
                         WHERE database = currentDatabase() AND table = ? AND name = ?",
                    )
                    .bind(table)
                    .bind(column)
                    .fetch_one()
                    .await
                    .what(|| format!("cannot read the columns of {table}"))?;
                if there > 0 {
                    continue;
                }
            }
            ch::execute(&db, stmt)
                .await
                .map_err(|source| MigrateError::Failed { name, source })?;
        }
        let applied = Migration {
            version,
            name: name.to_string(),
            checksum: sum,
            applied_ms: wire::Millis::now().0,
        };
        ch::insert(&db, "schema_migrations", &[applied])
            .await
            .what(|| format!("cannot record migration {name}"))?;
        tracing::info!(migration = name, "applied");
        now_applied.push(name);
    }
    Ok(now_applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_column_an_alter_adds() {
        assert_eq!(
            added_column("ALTER TABLE sightings ADD COLUMN link UInt64 DEFAULT 0 AFTER device"),
            Some(("sightings", "link"))
        );
        assert_eq!(added_column("ALTER TABLE sightings DROP COLUMN link"), None);
        assert_eq!(added_column("CREATE TABLE t (a UInt8)"), None);
        let every: Vec<String> = MIGRATIONS.iter().flat_map(|m| statements(m.2)).collect();
        let alters = every.iter().filter(|s| s.starts_with("ALTER")).count();
        let found = every.iter().filter_map(|s| added_column(s)).count();
        assert_eq!(found, alters, "every ALTER of the migrations adds a column");
    }
}
