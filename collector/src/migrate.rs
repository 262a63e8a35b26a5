//! Versioned schema migrations (`collector/migrations/`), applied in order, each once.
//! Every statement is idempotent, so a migration cut short is simply applied again. An
//! applied migration whose text changed since is refused: schema history is append-only.

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use crate::ch;
use crate::ch::rows::Migration;
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

fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates the database if needed and applies the missing migrations; returns the names of
/// those applied now.
pub async fn migrate(c: &ClickHouseConfig) -> anyhow::Result<Vec<&'static str>> {
    let (db, server) = ch::clients(c);
    ch::execute(
        &server,
        &format!("CREATE DATABASE IF NOT EXISTS {}", c.database()),
    )
    .await
    .with_context(|| format!("cannot reach ClickHouse at {}", c.url()))?;
    ch::execute(&db, LEDGER).await?;
    let applied: Vec<Migration> = db
        .query("SELECT ?fields FROM schema_migrations FINAL ORDER BY version")
        .fetch_all()
        .await
        .context("cannot read schema_migrations")?;
    let mut now_applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS {
        let sum = checksum(sql);
        if let Some(a) = applied.iter().find(|a| a.version == version) {
            if a.checksum != sum {
                bail!(
                    "migration {name} was changed after it was applied to {} (checksum {} there, {sum} here); \
                     add a new migration instead",
                    c.database(),
                    a.checksum
                );
            }
            continue;
        }
        for stmt in statements(sql) {
            ch::execute(&db, &stmt)
                .await
                .with_context(|| format!("migration {name} failed"))?;
        }
        let applied = Migration {
            version,
            name: name.to_string(),
            checksum: sum,
            applied_ms: wire::Millis::now().0,
        };
        ch::insert(&db, "schema_migrations", &[applied])
            .await
            .with_context(|| format!("cannot record migration {name}"))?;
        tracing::info!(migration = name, "applied");
        now_applied.push(name);
    }
    Ok(now_applied)
}
