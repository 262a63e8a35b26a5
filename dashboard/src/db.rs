//! Every query the pages run goes through [`fetch_all`]: it times the query, adds the time to
//! the request's ClickHouse time (reported in the response's `Server-Timing` header, beside
//! the rest of the request's time: see [`timing`]), and logs it at debug level with its SQL.

use std::cell::Cell;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use clickhouse::query::Query;
use clickhouse::{RowOwned, RowRead};
use tracing::debug;

tokio::task_local! {
    /// The current request's time in ClickHouse so far.
    static DB_TIME: Cell<Duration>;
}

/// Runs `q` and returns its rows.
pub async fn fetch_all<T>(q: Query) -> Result<Vec<T>, clickhouse::error::Error>
where
    T: RowOwned + RowRead,
{
    let sql = q.sql_display().to_string();
    let start = Instant::now();
    let rows = q.fetch_all::<T>().await;
    let took = start.elapsed();
    let _ = DB_TIME.try_with(|t| t.set(t.get() + took));
    debug!(ms = took.as_secs_f64() * 1e3, rows = rows.as_ref().map_or(0, Vec::len), sql = %sql, "query");
    rows
}

/// Middleware: `Server-Timing: db;dur=…, app;dur=…` (milliseconds in ClickHouse, and the
/// rest of the request: decoding, computing, rendering).
pub async fn timing(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let (db, mut res) = DB_TIME
        .scope(Cell::new(Duration::ZERO), async {
            let res = next.run(req).await;
            (DB_TIME.with(Cell::get), res)
        })
        .await;
    let app = start.elapsed().saturating_sub(db);
    let value = format!(
        "db;dur={:.2};desc=\"ClickHouse\", app;dur={:.2}",
        db.as_secs_f64() * 1e3,
        app.as_secs_f64() * 1e3
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().insert("server-timing", v);
    }
    res
}
