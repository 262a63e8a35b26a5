//! How every server part reaches ClickHouse (the collector writes, the attribution and the
//! dashboards read): one builder of the official client, over HTTP or HTTPS (rustls, with
//! the configured CA), without its schema validation (its check sends a setting that
//! Debian's 18.16 rejects; DESIGN.md).
//! The `[clickhouse]` configuration section is here too ([`ClickHouseConfig`]).

mod config;
pub mod parts;
mod tls;

pub use config::{ClickHouseConfig, RawClickHouse};

/// How long an INSERT waits before it fails: to hand ClickHouse each chunk of its rows
/// (`send`), and for ClickHouse's answer once all are sent (`answer`). The client waits for
/// ever by default, and a write that stopped making progress then stopped the collector with
/// it: at city scale a visits INSERT waited 10 minutes with no connection to ClickHouse open,
/// and ingest behind it (benches/README.md, "Run 15"). Failed, the write is retried with the
/// same rows, which the tables' keys collapse.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    pub send: std::time::Duration,
    pub answer: std::time::Duration,
}

/// Every INSERT's patience: far above a healthy server's (a batch's INSERT at city scale
/// takes well under a second; a server that delays inserts for too many parts, about a
/// second each).
pub const PATIENCE: Patience = Patience {
    send: std::time::Duration::from_secs(60),
    answer: std::time::Duration::from_secs(120),
};

/// Writes `rows` into `table` in one INSERT (none when there are no rows), within
/// [`PATIENCE`].
pub async fn insert<T: clickhouse::RowOwned + clickhouse::RowWrite>(
    db: &clickhouse::Client,
    table: &str,
    rows: &[T],
) -> Result<(), clickhouse::error::Error> {
    insert_within(db, table, rows, PATIENCE).await
}

/// [`insert`] with another patience (the tests' is short).
pub async fn insert_within<T: clickhouse::RowOwned + clickhouse::RowWrite>(
    db: &clickhouse::Client,
    table: &str,
    rows: &[T],
    patience: Patience,
) -> Result<(), clickhouse::error::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut ins = db
        .insert::<T>(table)
        .await?
        .with_timeouts(Some(patience.send), Some(patience.answer));
    for r in rows {
        ins.write(r).await?;
    }
    ins.end().await
}

/// Where the tables are and how to reach them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    /// The HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub(crate) url: &'a str,
    pub user: &'a str,
    pub password: Option<&'a str>,
    pub database: &'a str,
    /// LZ4 on the wire (inserts and results); off suits a ClickHouse on the same host.
    pub lz4: bool,
    /// For an `https://` URL: the CA certificate(s), PEM, that signed the server's.
    pub ca_pem: Option<&'a [u8]>,
    /// The tables are spread over a cluster (see [`ClickHouseConfig::clients`]).
    pub cluster: bool,
}

/// A client for the target's database, and one for the server (to create the database).
pub(crate) fn clients(t: &Target) -> (clickhouse::Client, clickhouse::Client) {
    let base = match t.ca_pem {
        Some(pem) => tls::client(pem),
        None => clickhouse::Client::default(),
    };
    let mut server = base
        .with_url(t.url)
        .with_user(t.user)
        .with_validation(false)
        .with_compression(if t.lz4 {
            clickhouse::Compression::Lz4
        } else {
            clickhouse::Compression::None
        });
    if let Some(p) = t.password {
        server = server.with_password(p);
    }
    if t.cluster {
        server = server
            .with_setting("insert_distributed_sync", "1")
            .with_setting("distributed_product_mode", "global");
    }
    (server.clone().with_database(t.database), server)
}
