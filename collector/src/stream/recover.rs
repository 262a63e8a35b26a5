//! Recovery: the sightings table is the log the visits are derived from.

use tracing::info;

use super::recompute::{Late, Span, PAD_MS};
use super::{Feed, StageError, RECOVER_BATCH};
use crate::ch::rows::{RecoveredSighting, RecoveredVisit};
use crate::ch::What;
use crate::config::Config;
use crate::visits::{sighting_key, Rules, Seen};

/// Where a start resumes, read in every process before the stage starts.
pub struct Resume {
    /// The highest version of the rows the stage writes (visits, occupancy, traffic):
    /// versions after a restart start above it ([`super::clock::Versions`]).
    pub(super) version_floor: u64,
    /// The sightings read back end at or after this (the least checkpoint of the
    /// processes, minus the horizon; 0 without one): those that end before it are too late
    /// from the start.
    pub floor_ms: i64,
    /// Sightings too late for the state that a stop left before their visits were
    /// recomputed (read by process 0): recomputed first.
    pub(super) late: Late,
}

impl Resume {
    pub async fn read(db: &clickhouse::Client, cfg: &Config) -> Result<Resume, StageError> {
        let version_floor = version_floor(db).await?;
        // The least checkpoint of the processes: every visit closed before it is committed,
        // and every sighting received before `settled` is in the state or recomputed.
        let (checkpoint, settled, processes): (i64, i64, u64) = db
            .query(
                "SELECT min(w), min(s), count() FROM (SELECT process, \
                 argMax(watermark_ms, at_ms) AS w, argMax(settled_ms, at_ms) AS s \
                 FROM stream_checkpoints GROUP BY process)",
            )
            .fetch_one()
            .await
            .what(|| "reading the stream checkpoints".into())?;
        // Without a checkpoint (no visit committed yet), every sighting is read back.
        if processes == 0 {
            return Ok(Resume {
                version_floor,
                floor_ms: 0,
                late: Late::default(),
            });
        }
        let floor_ms = checkpoint - cfg.visits().horizon_ms();
        let mut late = Late::default();
        if cfg.timely().process() == 0 && settled < i64::MAX {
            // Per site and pad of event time, to be joined as the stage joins them. (A
            // sighting starts no more than `ingest.max_age_days` before its receipt: the
            // days to read.)
            let spans: Vec<(String, i64, i64, i64, i64)> = db
                .query(
                    "SELECT site, intDiv(first_ms, ?) AS piece, min(first_ms), max(last_ms), \
                     min(received_ms) FROM sightings WHERE day >= toDate(?) \
                     AND day <= toDate(?) AND received_ms >= ? AND last_ms < ? \
                     GROUP BY site, piece",
                )
                .bind(PAD_MS)
                .bind(date(settled - cfg.ingest().max_age_ms()))
                .bind(date(floor_ms))
                .bind(settled)
                .bind(floor_ms)
                .fetch_all()
                .await
                .what(|| "reading the sightings a stop left unsettled".into())?;
            for (site, _, first_ms, last_ms, received_ms) in &spans {
                let span = Span {
                    first_ms: *first_ms,
                    last_ms: *last_ms,
                    received_ms: *received_ms,
                };
                late.add(&site.as_str().into(), span);
            }
            if !spans.is_empty() {
                info!(
                    since = %wire::Millis(settled),
                    pieces = spans.len(),
                    "sightings received since the last checkpoint settled are behind its \
                     horizon: their visits are recomputed"
                );
            }
        }
        Ok(Resume {
            version_floor,
            floor_ms,
            late,
        })
    }
}

/// Reads the sightings from `floor_ms` ([`Resume::floor_ms`]) on back into the dataflow, so
/// the stays held before a restart (or a crash) are rebuilt and the visits a crash kept
/// from being written are written. Returns the number of sightings read.
pub async fn recover(
    db: &clickhouse::Client,
    floor_ms: i64,
    rules: &Rules,
    feed: &Feed,
) -> Result<u64, StageError> {
    // A stay that starts within a gap of the floor may have begun before it: rebuilt as
    // state, so later sightings join it, but not written again.
    let scope = Scope {
        site: None,
        from_ms: floor_ms,
        to_ms: None,
        gap_ms: rules.store_gap_ms.max(rules.board_gap_ms),
    };
    let n = read_back(db, &scope, |batch| feed.push(batch, None)).await?;
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
    let since = date(scope.from_ms - 86_400_000);
    let until = scope.to_ms.map(|to| (date(to), to));
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
            received_ms: i64::MAX,
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
            received_ms: i64::MAX,
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

/// The UTC date of `ms`, as ClickHouse reads a date.
fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// The highest version of the rows the stage writes (visits, occupancy, traffic).
async fn version_floor(db: &clickhouse::Client) -> Result<u64, StageError> {
    db.query(
        "SELECT greatest(greatest((SELECT max(version) FROM visits), \
         (SELECT max(version) FROM occupancy)), (SELECT max(version) FROM traffic))",
    )
    .fetch_one::<u64>()
    .await
    .what(|| "reading the highest version written".into())
    .map_err(StageError::from)
}
