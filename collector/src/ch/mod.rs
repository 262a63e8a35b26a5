//! ClickHouse: the one way rows are written ([`insert`], [`retry`]), and every row type
//! ([`rows`]). The client comes from `warehouse` (the configured [`warehouse::ClickHouseConfig`]).

pub mod rows;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use prometheus_client::metrics::counter::Counter;

/// A ClickHouse request that failed, and what it was for. The server is down, refused the
/// statement, or the table is not what the code expects: check the server and the schema.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct QueryError {
    pub what: String,
    #[source]
    pub source: clickhouse::error::Error,
}

/// `.what(...)`: names what a ClickHouse request was for.
pub trait What<T> {
    fn what(self, what: impl FnOnce() -> String) -> Result<T, QueryError>;
}

impl<T> What<T> for Result<T, clickhouse::error::Error> {
    fn what(self, what: impl FnOnce() -> String) -> Result<T, QueryError> {
        self.map_err(|source| QueryError {
            what: what(),
            source,
        })
    }
}

/// Runs one statement; the error says which.
pub async fn execute(client: &clickhouse::Client, sql: &str) -> Result<(), QueryError> {
    client
        .query(sql)
        .execute()
        .await
        .what(|| format!("ClickHouse refused: {}", sql.lines().next().unwrap_or("")))
}

pub use warehouse::insert;

/// Runs `write` until it succeeds (the same rows each time), counting each failure in
/// `errors` and logging it, with a [`Backoff`] from 100 ms to 5 s. Returns false if
/// `shutdown` came first.
pub async fn retry<F, Fut>(
    errors: &Counter,
    shutdown: &CancellationToken,
    what: &str,
    rows: usize,
    mut write: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), clickhouse::error::Error>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let Err(e) = write().await else {
            return true;
        };
        errors.inc();
        warn!(error = %e, rows, what, "ClickHouse write failed; retrying the same rows");
        if !backoff.wait(shutdown).await {
            return false;
        }
    }
}

/// The waits between tries of a request ClickHouse failed: from a first delay, doubling
/// up to a longest.
pub struct Backoff {
    next: Duration,
    longest: Duration,
}

impl Backoff {
    pub fn new(first: Duration, longest: Duration) -> Backoff {
        Backoff {
            next: first,
            longest,
        }
    }

    /// Waits the next delay; false if `shutdown` came first (the caller gives up).
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(self.longest);
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}
