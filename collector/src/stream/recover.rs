//! Recovery: the sightings table is the log the visits are derived from.

use tracing::info;

use super::{Feed, StageError, RECOVER_BATCH};
use crate::ch::rows::{RecoveredSighting, RecoveredVisit};
use crate::ch::What;
use crate::config::Config;
use crate::visits::{sighting_key, Rules, Seen};

/// Reads the sightings from `horizon` before the checkpoint back into the dataflow, so the
/// stays held before a restart (or a crash) are rebuilt and the visits a crash kept from
/// being written are written. Returns the number of sightings read.
pub async fn recover(
    db: &clickhouse::Client,
    cfg: &Config,
    rules: &Rules,
    feed: &Feed,
) -> Result<u64, StageError> {
    // The least checkpoint of the processes: every visit closed before it is committed.
    let (checkpoint, processes): (i64, u64) = db
        .query(
            "SELECT min(w), count() FROM (SELECT process, argMax(watermark_ms, at_ms) AS w \
             FROM stream_checkpoints GROUP BY process)",
        )
        .fetch_one()
        .await
        .what(|| "reading the stream checkpoints".into())?;
    // Without a checkpoint (no visit committed yet), every sighting is read back.
    let floor = if processes == 0 {
        0
    } else {
        checkpoint - cfg.visits().horizon_ms()
    };
    // A stay that starts within a gap of the floor may have begun before it: rebuilt as
    // state, so later sightings join it, but not written again.
    let scope = Scope {
        site: None,
        from_ms: floor,
        to_ms: None,
        gap_ms: rules.store_gap_ms.max(rules.board_gap_ms),
    };
    let n = read_back(db, &scope, |batch| feed.push(batch)).await?;
    info!(sightings = n, "stays rebuilt from the sightings table");
    Ok(n)
}

/// What to read back: the sightings (and written visits) of one site or all that end at or
/// after `from_ms` (and start at or before `to_ms`, if given). Those within `gap_ms` of
/// either end may belong to a stay that reaches out of the scope: rebuilt, not written.
pub(super) struct Scope<'a> {
    pub(super) site: Option<&'a str>,
    pub(super) from_ms: i64,
    pub(super) to_ms: Option<i64>,
    pub(super) gap_ms: i64,
}

/// Reads the sightings in `scope` back as records, then the visits written there (not
/// retracted), so the stays they make retract those that data committed since superseded.
/// Hands them to `push` in batches; returns the number of sightings.
pub(super) async fn read_back<P, F>(
    db: &clickhouse::Client,
    scope: &Scope<'_>,
    mut push: P,
) -> Result<u64, StageError>
where
    P: FnMut(Vec<Seen>) -> F,
    F: std::future::Future<Output = Result<(), StageError>>,
{
    // Rows are partitioned by the day of their start: from the day before the range's.
    let day = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string()
    };
    let since = day(scope.from_ms - 86_400_000);
    let until = scope.to_ms.map(|to| (day(to), to));
    // One site's rows by the tables' primary key (site first). Written as `(? = '' OR site
    // = ?)`, ClickHouse 18.16 read every site's: a recompute of one site of a city's month
    // took 8.9 s instead of 0.05, and a few hundred of them after an outage stalled ingest.
    let one = if scope.site.is_some() {
        "AND site = ?"
    } else {
        ""
    };
    let before = if until.is_some() {
        "AND day <= toDate(?) AND first_ms <= ?"
    } else {
        ""
    };
    let select = |sql: &str| {
        let mut q = db.query(sql).bind(&since).bind(scope.from_ms);
        if let Some((day, to)) = &until {
            q = q.bind(day).bind(*to);
        }
        match scope.site {
            Some(site) => q.bind(site),
            None => q,
        }
    };
    let tainted = |first_ms: i64, last_ms: i64| {
        first_ms < scope.from_ms + scope.gap_ms
            || scope.to_ms.is_some_and(|to| last_ms > to - scope.gap_ms)
    };
    let mut cursor = select(&format!(
        "SELECT site, sensor, epoch, device, link, class, fingerprint, first_ms, last_ms, \
         rssi_max, final AS is_final FROM sightings WHERE day >= toDate(?) AND last_ms >= ? \
         {before} {one}"
    ))
    .fetch::<RecoveredSighting>()
    .what(|| "reading the sightings back".into())?;
    let mut n = 0u64;
    let mut batch = Vec::with_capacity(RECOVER_BATCH);
    while let Some(r) = cursor
        .next()
        .await
        .what(|| "reading the sightings back".into())?
    {
        batch.push(Seen {
            key: sighting_key(&r.sensor, r.first_ms),
            site: r.site.into(),
            device: r.device,
            link: r.link,
            epoch: r.epoch,
            class: r.class,
            fingerprint: r.fingerprint,
            first_ms: r.first_ms,
            last_ms: r.last_ms,
            rssi_max: r.rssi_max,
            is_final: r.is_final != 0,
            tainted: tainted(r.first_ms, r.last_ms),
            written: None,
            reopened: false,
        });
        n += 1;
        if batch.len() == RECOVER_BATCH {
            push(std::mem::take(&mut batch)).await?;
        }
    }
    let mut cursor = select(&format!(
        "SELECT site, device, day, visit_id, epoch, class, fingerprint, first_ms, last_ms, \
         rssi_max FROM visits FINAL WHERE day >= toDate(?) AND last_ms >= ? {before} {one} \
         AND retracted = 0"
    ))
    .fetch::<RecoveredVisit>()
    .what(|| "reading the written visits back".into())?;
    while let Some(v) = cursor
        .next()
        .await
        .what(|| "reading the written visits back".into())?
    {
        batch.push(Seen {
            site: v.site.into(),
            device: v.device,
            link: 0,
            epoch: v.epoch,
            class: v.class,
            fingerprint: v.fingerprint,
            first_ms: v.first_ms,
            last_ms: v.last_ms,
            // Its sightings' strongest: in view of a board or not, as they are.
            rssi_max: v.rssi_max,
            is_final: true,
            key: 0,
            tainted: tainted(v.first_ms, v.last_ms),
            written: Some((v.day, v.visit_id)),
            reopened: false,
        });
        if batch.len() == RECOVER_BATCH {
            push(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        push(batch).await?;
    }
    Ok(n)
}

/// The highest version of the rows the stage writes (visits, occupancy, traffic): versions
/// after a restart start above it ([`super::clock::Versions`]).
pub async fn version_floor(db: &clickhouse::Client) -> Result<u64, StageError> {
    db.query(
        "SELECT greatest(greatest((SELECT max(version) FROM visits), \
         (SELECT max(version) FROM occupancy)), (SELECT max(version) FROM traffic))",
    )
    .fetch_one::<u64>()
    .await
    .what(|| "reading the highest version written".into())
    .map_err(StageError::from)
}
