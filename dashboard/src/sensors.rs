//! The Sensors page's rows: every sensor of the inventory with its last heartbeat (table
//! `sensor_latest`, the latest of `sensor_status`: the agent's status every minute, and its
//! Last Will, `online = 0`, when it drops off the broker), spool depth, frames dropped, clock
//! sync, the messages the collector refused from it in the last day, by reason (table
//! `rejected`), and the batches it sent in the last day that never came (table `batches`).
//! Offline sensors first.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// A sensor's last status (none if it never sent one).
#[derive(Debug, Row, Deserialize)]
struct Latest {
    sensor_id: String,
    site_id: String,
    at_ms: i64,
    online: u8,
    uptime_secs: u64,
    frames_captured: u64,
    frames_dropped: u64,
    spool_batches: u64,
    spool_bytes: u64,
    spool_dropped_batches: u64,
    clock_synced: u8,
}

/// Every sensor with its latest status (a sensor never heard: zeros, as a LEFT JOIN gives
/// them), from `sensor_latest` (kept by a materialized view of `sensor_status`: a row per
/// sensor once merged; argMax covers the parts not merged yet). (One join: ClickHouse 18.16
/// takes no more; the sites' brands are read apart. Aliases differ from the columns, which
/// ClickHouse would otherwise resolve to the aliases inside the aggregates.)
pub const LATEST_SQL: &str = "SELECT s.sensor_id, s.site_id, t.l_at, t.l_online, t.l_uptime, \
    t.l_captured, t.l_dropped, t.l_batches, t.l_bytes, t.l_spool_dropped, t.l_synced \
    FROM (SELECT sensor_id, site_id FROM sensors FINAL) AS s \
    ANY LEFT JOIN (SELECT sensor AS sensor_id, max(at_ms) AS l_at, \
        argMax(online, at_ms) AS l_online, argMax(uptime_secs, at_ms) AS l_uptime, \
        argMax(frames_captured, at_ms) AS l_captured, \
        argMax(frames_dropped, at_ms) AS l_dropped, \
        argMax(spool_batches, at_ms) AS l_batches, argMax(spool_bytes, at_ms) AS l_bytes, \
        argMax(spool_dropped_batches, at_ms) AS l_spool_dropped, \
        argMax(clock_synced, at_ms) AS l_synced \
        FROM sensor_latest GROUP BY sensor) AS t USING sensor_id";

/// Batch numbers missing per sensor among the batches sent since a time (ms; the sensor's
/// clock): between the first and the last stored (table `batches`, a row for each message
/// of sightings the collector stored), those not stored. A sensor's `seq` rises by one a
/// batch, across restarts (the agent's spool), so a hole is a batch lost in the sensor's
/// spool (its `spool_dropped_batches`), refused whole (its refusals), or dropped on the way
/// (a broker's loss shows nowhere else). A batch's day is its sent_at's, so a spool emptied
/// late fills the holes it left.
pub const MISSING_SQL: &str = "SELECT sensor, \
    toUInt64(max(seq) - min(seq) + 1 - uniqExact(seq)) AS missing \
    FROM batches WHERE day >= toDate(?) AND sent_ms >= ? GROUP BY sensor";

#[derive(Debug, Row, Deserialize)]
struct Refused {
    sensor: String,
    reason: String,
    n: u64,
}

/// Refused messages per sensor (the topic's fourth level) and reason since a time (ms).
pub const REFUSED_SQL: &str = "SELECT splitByChar('/', topic)[4] AS sensor, reason, count() AS n \
    FROM rejected FINAL WHERE day >= toDate(?) AND received_ms >= ? GROUP BY sensor, reason";

/// One sensor, as every output shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SensorRow {
    pub sensor: String,
    pub site: String,
    pub online: bool,
    /// The last status's time, ms since the epoch (none: never heard).
    pub last_heartbeat_ms: Option<i64>,
    pub uptime_secs: u64,
    pub frames_captured: u64,
    pub frames_dropped: u64,
    pub spool_batches: u64,
    pub spool_bytes: u64,
    pub spool_dropped_batches: u64,
    pub clock_synced: bool,
    /// Messages refused in the last day, by reason.
    pub refused: BTreeMap<String, u64>,
    /// Batches sent in the last day that never came ([`MISSING_SQL`]).
    pub batches_missing: u64,
}

impl SensorRow {
    /// The last heartbeat as the page prints it: UTC to the second, or "never".
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat(
            self.last_heartbeat_ms
                .and_then(chrono::DateTime::from_timestamp_millis),
        )
    }
}

/// A last heartbeat, written where the page is rendered (no string of its own).
pub struct Heartbeat(Option<chrono::DateTime<chrono::Utc>>);

impl std::fmt::Display for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S UTC")),
            None => f.write_str("never"),
        }
    }
}

/// The sensors of `brands`' sites (empty: every sensor), offline first, then by id. A
/// sensor is online if its last status says so and came within `offline_after_ms` of `now_ms`.
pub async fn load(
    db: &clickhouse::Client,
    brands: &[String],
    now_ms: i64,
    offline_after_ms: i64,
) -> Result<Vec<SensorRow>, clickhouse::error::Error> {
    let day = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .date_naive()
            .to_string()
    };
    let latest: Vec<Latest> = crate::db::fetch_all(db.query(LATEST_SQL)).await?;
    // Every brand's sensors (an empty `brands`) need no site's brand.
    let brand_of: std::collections::HashMap<String, String> = if brands.is_empty() {
        Default::default()
    } else {
        crate::db::fetch_all::<(String, String)>(db.query("SELECT site_id, brand FROM sites FINAL"))
            .await?
            .into_iter()
            .collect()
    };
    let since = now_ms - 86_400_000;
    let refused: Vec<Refused> =
        crate::db::fetch_all(db.query(REFUSED_SQL).bind(day(since)).bind(since)).await?;
    let mut by_sensor: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in refused {
        by_sensor.entry(r.sensor).or_default().insert(r.reason, r.n);
    }
    let mut missing: std::collections::HashMap<String, u64> =
        crate::db::fetch_all::<(String, u64)>(db.query(MISSING_SQL).bind(day(since)).bind(since))
            .await?
            .into_iter()
            .collect();
    let mut rows: Vec<SensorRow> = latest
        .into_iter()
        .filter(|l| {
            brands.is_empty() || brand_of.get(&l.site_id).is_some_and(|b| brands.contains(b))
        })
        .map(|l| SensorRow {
            online: l.online == 1 && now_ms - l.at_ms <= offline_after_ms,
            last_heartbeat_ms: (l.at_ms > 0).then_some(l.at_ms),
            refused: by_sensor.remove(&l.sensor_id).unwrap_or_default(),
            batches_missing: missing.remove(&l.sensor_id).unwrap_or_default(),
            sensor: l.sensor_id,
            site: l.site_id,
            uptime_secs: l.uptime_secs,
            frames_captured: l.frames_captured,
            frames_dropped: l.frames_dropped,
            spool_batches: l.spool_batches,
            spool_bytes: l.spool_bytes,
            spool_dropped_batches: l.spool_dropped_batches,
            clock_synced: l.clock_synced == 1,
        })
        .collect();
    rows.sort_by(|a, b| (a.online, &a.sensor).cmp(&(b.online, &b.sensor)));
    Ok(rows)
}

/// The rows as CSV (refusals as `reason=n` pairs, `;`-separated).
pub fn csv(rows: &[SensorRow]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "sensor",
        "site",
        "online",
        "last_heartbeat_ms",
        "uptime_secs",
        "frames_captured",
        "frames_dropped",
        "spool_batches",
        "spool_bytes",
        "spool_dropped_batches",
        "clock_synced",
        "refused_last_day",
        "batches_missing_last_day",
    ])?;
    for r in rows {
        let refused: Vec<String> = r.refused.iter().map(|(k, v)| format!("{k}={v}")).collect();
        w.write_record([
            r.sensor.clone(),
            r.site.clone(),
            r.online.to_string(),
            r.last_heartbeat_ms.map_or(String::new(), |t| t.to_string()),
            r.uptime_secs.to_string(),
            r.frames_captured.to_string(),
            r.frames_dropped.to_string(),
            r.spool_batches.to_string(),
            r.spool_bytes.to_string(),
            r.spool_dropped_batches.to_string(),
            r.clock_synced.to_string(),
            refused.join(";"),
            r.batches_missing.to_string(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
