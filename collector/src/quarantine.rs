//! The quarantine: whole messages refused for a reason the operator can fix
//! ([`Reason::held`]: a sensor not yet in the inventory or at another site, a clock out of
//! the bounds, a newer contract version), kept until the fix and then replayed.
//!
//! A held message is a `quarantine` row in state [`HELD`], beside its `rejected` row.
//! `footfall-collector requeue` writes a newer version of the matching rows in state
//! [`REQUESTED`]; the running collector (process 0 of a cluster) takes them every few
//! seconds, decodes them again with the inventory and bounds it has then, at the time they
//! were first received, and commits what they make like any message: the rows it makes,
//! the stream stage's visits, and state [`REPLAYED`] (or [`HELD`] again, with the new
//! reason, if the fix did not cover it). Rows are identified by (topic, payload hash), so a
//! replay, like a redelivery, collapses on the tables' keys.

use std::time::Duration;

use serde::Deserialize;

use crate::ch::rows::{day_of, QuarantineRow};
use crate::ch::{QueryError, What};
use crate::reason::Reason;
use crate::stream::wall_clock_us;

pub const HELD: u8 = 0;
pub const REQUESTED: u8 = 1;
pub const REPLAYED: u8 = 2;

/// Messages taken per replay round: at most this many payloads (1 MiB each at the default
/// limit) in memory.
pub const REPLAY_BATCH: u64 = 64;

/// The current version of every row, as a subquery: (topic, payload_hash, the other columns
/// of the newest version). Not `FINAL` with a filter: older servers may filter before
/// collapsing.
const CURRENT: &str = "SELECT topic, payload_hash, argMax(day, version) AS d, \
     argMax(received_ms, version) AS r_ms, argMax(reason, version) AS why, \
     argMax(detail, version) AS what, argMax(payload, version) AS body, \
     argMax(state, version) AS st, argMax(requested, version) AS rq, max(version) AS v \
     FROM quarantine";

/// The row that holds a refused message.
pub fn hold(
    topic: &str,
    payload: &[u8],
    payload_hash: u64,
    received_ms: i64,
    (reason, detail): (Reason, &str),
    version: u64,
) -> QuarantineRow {
    QuarantineRow {
        day: day_of(received_ms),
        topic: topic.to_owned(),
        payload_hash,
        received_ms,
        reason: reason.as_str().to_owned(),
        detail: detail.to_owned(),
        payload: payload.to_vec(),
        state: HELD,
        requested: 0,
        version,
    }
}

/// Which held messages a `requeue` asks for: all, or those of some reasons, or of a sensor.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub reasons: Vec<Reason>,
    pub sensor: Option<String>,
}

/// Marks the held messages that `filter` selects as requested, under one new version.
/// Returns (that version, how many).
pub async fn request(db: &clickhouse::Client, filter: &Filter) -> Result<(u64, u64), QueryError> {
    let version = wall_clock_us();
    // The sensor is the topic's fourth level: footfall/v1/{site}/{sensor}/{kind}.
    let mut sql = format!(
        "INSERT INTO quarantine (day, topic, payload_hash, received_ms, reason, detail, \
         payload, state, requested, version) SELECT d, topic, payload_hash, r_ms, why, what, body, \
         {REQUESTED}, ?, ? \
         FROM ({CURRENT} GROUP BY topic, payload_hash) WHERE st = {HELD}"
    );
    if !filter.reasons.is_empty() {
        sql.push_str(" AND has(?, why)");
    }
    if filter.sensor.is_some() {
        sql.push_str(" AND splitByChar('/', topic)[4] = ?");
    }
    let mut q = db.query(&sql).bind(version).bind(version);
    if !filter.reasons.is_empty() {
        let reasons: Vec<&str> = filter.reasons.iter().map(|r| r.as_str()).collect();
        q = q.bind(reasons);
    }
    if let Some(sensor) = &filter.sensor {
        q = q.bind(sensor.as_str());
    }
    q.execute()
        .await
        .what(|| "marking the held messages requested (table quarantine)".into())?;
    // Messages, not rows: a replay already written carries the request's version too.
    let n = db
        .query("SELECT uniqExact(topic, payload_hash) FROM quarantine WHERE requested = ?")
        .bind(version)
        .fetch_one::<u64>()
        .await
        .what(|| "counting the requested messages".into())?;
    Ok((version, n))
}

/// Up to [`REPLAY_BATCH`] requested messages, for the collector to replay.
pub async fn requested(db: &clickhouse::Client) -> Result<Vec<QuarantineRow>, QueryError> {
    #[derive(clickhouse::Row, Deserialize)]
    struct Current {
        d: u16,
        topic: String,
        payload_hash: u64,
        r_ms: i64,
        why: String,
        what: String,
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
        st: u8,
        rq: u64,
        v: u64,
    }
    let sql = format!(
        "SELECT d, topic, payload_hash, r_ms, why, what, body, st, rq, v FROM ({CURRENT} \
         WHERE (topic, payload_hash) IN (SELECT topic, payload_hash FROM quarantine \
         WHERE state = {REQUESTED}) GROUP BY topic, payload_hash) WHERE st = {REQUESTED} \
         LIMIT {REPLAY_BATCH}"
    );
    let rows: Vec<Current> = db
        .query(&sql)
        .fetch_all()
        .await
        .what(|| "reading the requested messages (table quarantine)".into())?;
    Ok(rows
        .into_iter()
        .map(|c| QuarantineRow {
            day: c.d,
            topic: c.topic,
            payload_hash: c.payload_hash,
            received_ms: c.r_ms,
            reason: c.why,
            detail: c.what,
            payload: c.body,
            state: c.st,
            requested: c.rq,
            version: c.v,
        })
        .collect())
}

/// What became of a request, so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub pending: u64,
    pub replayed: u64,
    /// Held again, by reason: the fix did not cover them.
    pub held: Vec<(String, u64)>,
}

/// What became of the messages requested under `version`.
pub async fn outcome(db: &clickhouse::Client, version: u64) -> Result<Outcome, QueryError> {
    let sql = format!(
        "SELECT st, why, count() FROM ({CURRENT} WHERE (topic, payload_hash) IN \
         (SELECT topic, payload_hash FROM quarantine WHERE requested = ?) \
         GROUP BY topic, payload_hash) WHERE rq = ? GROUP BY st, why ORDER BY st, why"
    );
    let rows: Vec<(u8, String, u64)> = db
        .query(&sql)
        .bind(version)
        .bind(version)
        .fetch_all()
        .await
        .what(|| "reading what became of the requested messages".into())?;
    let mut out = Outcome::default();
    for (state, reason, n) in rows {
        match state {
            REQUESTED => out.pending += n,
            REPLAYED => out.replayed += n,
            _ => out.held.push((reason, n)),
        }
    }
    Ok(out)
}

/// Waits until no message of the request is pending, or `timeout`. The last outcome read.
pub async fn wait(
    db: &clickhouse::Client,
    version: u64,
    timeout: Duration,
) -> Result<Outcome, QueryError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let o = outcome(db, version).await?;
        if o.pending == 0 || tokio::time::Instant::now() >= deadline {
            return Ok(o);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
