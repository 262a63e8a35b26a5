//! The ClickHouse client: the official crate over HTTP, without its schema validation (its
//! check sends a setting that 18.16 rejects; DESIGN.md).

use anyhow::Context;

use crate::config::ClickHouseConfig;

/// A client for the configured database, and one for the server (to create the database).
pub fn clients(c: &ClickHouseConfig) -> (clickhouse::Client, clickhouse::Client) {
    let mut server = clickhouse::Client::default()
        .with_url(&c.url)
        .with_user(&c.user)
        .with_validation(false)
        .with_compression(if c.lz4 {
            clickhouse::Compression::Lz4
        } else {
            clickhouse::Compression::None
        });
    if let Some(p) = &c.password {
        server = server.with_password(String::from_utf8_lossy(p.expose()).into_owned());
    }
    (server.clone().with_database(&c.database), server)
}

/// Runs one statement; the error says which.
pub async fn execute(client: &clickhouse::Client, sql: &str) -> anyhow::Result<()> {
    client
        .query(sql)
        .execute()
        .await
        .with_context(|| format!("ClickHouse refused: {}", sql.lines().next().unwrap_or("")))
}
