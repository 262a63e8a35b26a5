//! How every server part reaches ClickHouse (the collector writes, the attribution and the
//! dashboards read): one builder of the official client, over HTTP or HTTPS (rustls, with
//! the configured CA), without its schema validation (its check sends a setting that
//! Debian's 18.16 rejects; DESIGN.md).
//! The `[clickhouse]` configuration section is here too ([`ClickHouseConfig`]).

mod config;
pub mod parts;
mod tls;

use std::time::Duration;

use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub use config::{ClickHouseConfig, RawClickHouse};

/// How long a connection to ClickHouse may make no progress (connecting; a write of the
/// request that the server does not take; no byte of an answer since the last one written or
/// read) before the request fails, unless `clickhouse.timeout_secs` says otherwise. Without
/// one, the client waits for ever on a connection that died silently (a server stopped, a
/// route or NAT entry lost), and a collector waiting so stops: at city scale a visits INSERT
/// waited 10 minutes with no connection to ClickHouse open, and ingest behind it
/// (benches/README.md, "Run 15"). A failed write is retried with the same rows, which the
/// tables' keys collapse. Far above a healthy server's pauses: a batch's INSERT at city scale
/// takes well under a second, a city's report reads for about 15 s in all, and a server that
/// delays inserts for too many parts does so for about a second each.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Writes `rows` into `table` in one INSERT (none when there are no rows).
pub async fn insert<T: clickhouse::RowOwned + clickhouse::RowWrite>(
    db: &clickhouse::Client,
    table: &str,
    rows: &[T],
) -> Result<(), clickhouse::error::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut ins = db.insert::<T>(table).await?;
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
    /// See [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
}

/// The official client over `c`, each connection given up after `timeout` without progress
/// (the reader's clock restarts on every write: an INSERT that sends for minutes is making
/// progress).
fn with_timeout<C>(mut c: TimeoutConnector<C>, timeout: Duration) -> clickhouse::Client
where
    TimeoutConnector<C>: Connect + Clone + Send + Sync + 'static,
{
    c.set_connect_timeout(Some(timeout));
    c.set_write_timeout(Some(timeout));
    c.set_read_timeout(Some(timeout));
    c.set_reset_reader_on_write(true);
    // The server closes idle connections after 3 s (18.16's keep_alive_timeout).
    clickhouse::Client::with_http_client(
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(2))
            .build(c),
    )
}

/// A client for the target's database, and one for the server (to create the database).
pub(crate) fn clients(t: &Target) -> (clickhouse::Client, clickhouse::Client) {
    let mut tcp = HttpConnector::new();
    tcp.set_keepalive(Some(Duration::from_secs(60)));
    let base = match t.ca_pem {
        Some(pem) => with_timeout(TimeoutConnector::new(tls::connector(pem, tcp)), t.timeout),
        None => with_timeout(TimeoutConnector::new(tcp), t.timeout),
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
