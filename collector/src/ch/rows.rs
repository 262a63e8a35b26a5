//! Every row the collector writes or reads, one type per table (or per query shape), with
//! the helpers that define their key columns ([`day_of`], [`fnv64`]). Field order is the
//! table's column order: the client writes RowBinary.

use std::hash::Hasher;
use std::sync::Arc;

use clickhouse::Row;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

/// A row of the `sightings` table.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub struct SightingRow {
    /// Shared by the rows of a message (and the stream stage's records): one allocation per
    /// message, not per sighting.
    pub site: Arc<str>,
    pub day: u16,
    pub sensor: Arc<str>,
    pub seq: u64,
    pub idx: u16,
    pub epoch: u32,
    pub device: u64,
    /// 0: the sighting came without a link (contract version 1).
    pub link: u64,
    pub class: i8,
    pub fingerprint: u32,
    pub first_ms: i64,
    pub last_ms: i64,
    pub frames: u32,
    pub rssi_max: i8,
    pub rssi_mean: f32,
    pub r#final: u8,
    pub sent_ms: i64,
    pub received_ms: i64,
}

impl SightingRow {
    /// Sorts `rows` into the sightings table's ORDER BY (site, day, sensor, seq, idx), with
    /// strings compared as ClickHouse does (byte by byte).
    ///
    /// Sorts runs, not rows: the rows of a message come together, in `idx` order, so a
    /// batch is a few runs of rows alike in (site, day, sensor, seq). Each run gets one
    /// small key (the site's and the sensor's rank among the batch's distinct strings, day,
    /// seq, first idx); the runs are sorted and the rows moved once, a run at a time.
    /// Sorting the rows themselves moved and compared 100-byte rows O(n log n) times, and a
    /// key per row still cost a sort of every row and a random read of each (6 % of the
    /// collector's CPU at city scale). Where two runs alike in (site, day, sensor, seq)
    /// overlap in `idx` (a message's rows twice in a batch), the rows are sorted one by one
    /// instead, ties in arrival order.
    pub fn sort_table_order(rows: &mut Vec<SightingRow>) {
        let mut runs = {
            let sites = Ranks::new(rows.iter().map(|r| &r.site));
            let sensors = Ranks::new(rows.iter().map(|r| &r.sensor));
            let (mut site, mut sensor) = (sites.cursor(), sensors.cursor());
            let mut runs: Vec<Run> = Vec::new();
            for (i, r) in rows.iter().enumerate() {
                let head = site(&r.site) << 40 | u64::from(r.day) << 24 | sensor(&r.sensor);
                match runs.last_mut() {
                    Some(run) if (run.head, run.seq) == (head, r.seq) && run.last_idx < r.idx => {
                        run.last_idx = r.idx;
                        run.len += 1;
                    }
                    _ => runs.push(Run {
                        head,
                        seq: r.seq,
                        first_idx: r.idx,
                        last_idx: r.idx,
                        at: i as u32,
                        len: 1,
                    }),
                }
            }
            runs
        };
        let mut order = Run::order(&runs);
        let apart = order.windows(2).all(|w| {
            let (a, b) = (&runs[w[0]], &runs[w[1]]);
            (a.head, a.seq) != (b.head, b.seq) || a.last_idx < b.first_idx
        });
        if !apart {
            // Every row a run of its own.
            runs = (runs.iter())
                .flat_map(|r| (r.at..r.at + r.len).map(move |at| (r, at)))
                .map(|(r, at)| {
                    let idx = rows[at as usize].idx;
                    Run {
                        first_idx: idx,
                        last_idx: idx,
                        at,
                        len: 1,
                        ..*r
                    }
                })
                .collect();
            order = Run::order(&runs);
        }
        let mut slots: Vec<Option<SightingRow>> = rows.drain(..).map(Some).collect();
        for r in order.into_iter().map(|i| &runs[i]) {
            let run = &mut slots[r.at as usize..][..r.len as usize];
            rows.extend(run.iter_mut().map(|s| s.take().expect("each row once")));
        }
    }
}

/// A run of a batch's rows alike in site, day, sensor and seq, with `idx` rising: `len`
/// rows from `at`.
#[derive(Clone, Copy)]
struct Run {
    /// The site's rank, day and sensor's rank, packed.
    head: u64,
    seq: u64,
    first_idx: u16,
    last_idx: u16,
    at: u32,
    len: u32,
}

impl Run {
    /// The runs' indices in table order (ties: in arrival order).
    fn order(runs: &[Run]) -> Vec<usize> {
        let mut keys: Vec<(u64, u64, u16, u32)> = (runs.iter().enumerate())
            .map(|(i, r)| (r.head, r.seq, r.first_idx, i as u32))
            .collect();
        keys.sort_unstable();
        keys.into_iter().map(|k| k.3 as usize).collect()
    }
}

/// The rank of each of a batch's distinct strings in byte order (at most 2^24 of them: a
/// batch holds at most 10 M messages).
struct Ranks<'a>(FxHashMap<&'a str, u64>);

impl<'a> Ranks<'a> {
    fn new(all: impl Iterator<Item = &'a Arc<str>>) -> Ranks<'a> {
        let mut distinct: FxHashSet<&str> = FxHashSet::default();
        let mut last: Option<&Arc<str>> = None;
        for s in all {
            // Rows of one message share their string: most rows repeat the last one.
            if last.is_none_or(|l| !Arc::ptr_eq(l, s)) {
                distinct.insert(s);
                last = Some(s);
            }
        }
        let mut sorted: Vec<&str> = distinct.into_iter().collect();
        // `str`'s order is its bytes'.
        sorted.sort_unstable();
        assert!(
            sorted.len() <= 1 << 24,
            "at most 2^24 sites or sensors a batch"
        );
        Ranks(sorted.into_iter().zip(0..).collect())
    }

    /// Looks ranks up, remembering the last string (rows of a message come together, and
    /// share one).
    fn cursor(&self) -> impl FnMut(&Arc<str>) -> u64 + '_ {
        let mut last: Option<(*const u8, u64)> = None;
        move |s| match last {
            Some((at, rank)) if at == s.as_ptr() => rank,
            _ => {
                let rank = self.0[&**s];
                last = Some((s.as_ptr(), rank));
                rank
            }
        }
    }
}

/// A row of the `batches` table: a message of sightings stored, on the day it was sent.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub struct BatchRow {
    pub site: Arc<str>,
    pub day: u16,
    pub sensor: Arc<str>,
    pub seq: u64,
    pub sent_ms: i64,
}

impl BatchRow {
    /// The batch of a message's stored sightings (none if it has none).
    pub fn of(rows: &[SightingRow]) -> Option<BatchRow> {
        rows.first().map(|r| BatchRow {
            site: r.site.clone(),
            day: day_of(r.sent_ms),
            sensor: r.sensor.clone(),
            seq: r.seq,
            sent_ms: r.sent_ms,
        })
    }
}

/// A row of the `bridges` table: a device key and its key in the next epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Row, Serialize, Deserialize)]
pub struct BridgeRow {
    pub epoch: u32,
    pub device: u64,
    pub next: u64,
}

/// A row of the `sensor_status` table.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub struct StatusRow {
    pub sensor: String,
    pub day: u16,
    pub at_ms: i64,
    pub site: String,
    pub online: u8,
    pub uptime_secs: u64,
    pub frames_captured: u64,
    pub frames_dropped: u64,
    pub frames_malformed: u64,
    pub spool_batches: u64,
    pub spool_bytes: u64,
    pub spool_dropped_batches: u64,
    pub config_version: u32,
    pub clock_synced: u8,
    pub received_ms: i64,
}

/// A row of the `rejected` table.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub struct RejectedRow {
    pub day: u16,
    pub reason: String,
    pub topic: String,
    pub payload_hash: u64,
    pub received_ms: i64,
    pub detail: String,
    /// The payload's first bytes, as received (a binary envelope is not text).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub payload_bytes: u32,
}

/// A row of the `quarantine` table: a whole message held until `requeue`.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub struct QuarantineRow {
    pub day: u16,
    pub topic: String,
    pub payload_hash: u64,
    pub received_ms: i64,
    pub reason: String,
    pub detail: String,
    /// The whole payload, byte for byte: `requeue` decodes it again.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub state: u8,
    /// The version of the `requeue` that asked for it last (0: none).
    pub requested: u64,
    pub version: u64,
}

/// A row of the `visits` table.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub struct VisitRow {
    pub site: Arc<str>,
    pub day: u16,
    pub device: u64,
    pub visit_id: u64,
    pub epoch: u32,
    pub class: i8,
    pub fingerprint: u32,
    pub first_ms: i64,
    pub last_ms: i64,
    pub dwell_secs: u32,
    pub rssi_max: i8,
    pub sightings: u32,
    /// 1 passer-by, 2 visitor.
    pub kind: i8,
    pub retracted: u8,
    pub version: u64,
}

/// A row of the `occupancy` table: people at a site in one window.
#[derive(Clone, Debug, PartialEq, Row, Serialize)]
pub struct OccupancyRow {
    pub site: Arc<str>,
    pub day: u16,
    pub window_mins: u16,
    pub start_ms: i64,
    pub people: f64,
    pub lo: f64,
    pub hi: f64,
    pub global_devices: f64,
    pub randomized_devices: f64,
    pub unlinked_devices: f64,
    pub fixtures: u32,
    pub estimator: &'static str,
    pub calibrated: u8,
    pub version: u64,
}

/// A row of the `traffic` table: a site's visitors and passers-by in one local hour
/// ([`crate::traffic`]).
#[derive(Clone, Debug, PartialEq, Row, Serialize)]
pub struct TrafficRow {
    pub site: Arc<str>,
    /// The hour's date on the site's clocks.
    pub day: u16,
    pub local_hour: u8,
    pub hour_ms: i64,
    pub visitors: f64,
    pub passers_by: f64,
    pub visitor_devices: u32,
    pub passer_by_devices: u32,
    pub addresses: u32,
    pub unlinked_devices: u32,
    pub fixtures: u32,
    pub dwell_under_5: u32,
    pub dwell_5_20: u32,
    pub dwell_20_60: u32,
    pub dwell_over_60: u32,
    /// 0: not corrected for capture.
    pub capture_rate: f32,
    pub estimator: &'static str,
    pub calibrated: u8,
    pub version: u64,
}

pub const PASSER_BY: i8 = 1;
pub const VISITOR: i8 = 2;

/// The `day` column: days since the Unix epoch (UTC) of a time in ms, the tables' partition.
pub fn day_of(ms: i64) -> u16 {
    ms.div_euclid(86_400_000).clamp(0, i64::from(u16::MAX)) as u16
}

/// FNV-1a 64 over the concatenation of `parts`, without building it: the stable hash behind
/// the stored identities (`visit_id`, `payload_hash`) and the exchange of records by site,
/// the same in every process and every release.
pub fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h = fnv::FnvHasher::default();
    for p in parts {
        h.write(p);
    }
    h.finish()
}

/// A stream-stage checkpoint (`stream_checkpoints`): every visit of `process` closed before
/// `watermark_ms` is committed, and every sighting it was handed that was received before
/// `settled_ms` is in its state or recomputed.
#[derive(Row, Serialize)]
pub struct CheckpointRow {
    pub process: u16,
    pub watermark_ms: i64,
    pub at_ms: i64,
    pub settled_ms: i64,
}

/// A sighting read back at recovery.
#[derive(Row, Deserialize)]
pub struct RecoveredSighting {
    pub site: String,
    pub sensor: String,
    pub epoch: u32,
    pub device: u64,
    pub link: u64,
    pub class: i8,
    pub fingerprint: u32,
    pub first_ms: i64,
    pub last_ms: i64,
    pub rssi_max: i8,
    pub is_final: u8,
}

/// A written visit read back at recovery.
#[derive(Row, Deserialize)]
pub struct RecoveredVisit {
    pub site: String,
    pub device: u64,
    pub day: u16,
    pub visit_id: u64,
    pub epoch: u32,
    pub class: i8,
    pub fingerprint: u32,
    pub first_ms: i64,
    pub last_ms: i64,
    pub rssi_max: i8,
}

/// A sensor's site, from the fleet inventory (`sensors`).
#[derive(Row, Deserialize)]
pub struct SensorSite {
    pub sensor_id: String,
    pub site_id: String,
}

/// A site's visit rules, from the inventory (`sites`).
#[derive(Row, Deserialize)]
pub struct SiteRules {
    pub site_id: String,
    pub kind: i8,
    pub tz: String,
    /// 0: not measured.
    pub capture_rate: f32,
    pub rssi_threshold_dbm: i8,
    pub min_dwell_secs: u32,
    pub open_hour: u8,
    pub close_hour: u8,
}

/// A migration applied (`schema_migrations`).
#[derive(Debug, Row, Serialize, Deserialize)]
pub struct Migration {
    pub version: u32,
    pub name: String,
    pub checksum: String,
    pub applied_ms: i64,
}

/// A site of the inventory (`sites`).
#[derive(Row, Serialize)]
pub struct SiteRow {
    pub site_id: String,
    pub kind: i8,
    pub brand: String,
    pub lat: f64,
    pub lon: f64,
    /// IANA time zone name; the opening hours are local time in it.
    pub tz: String,
    /// The share of visitors the site's sensors hear (a manual count at install); 0: not
    /// measured.
    pub capture_rate: f32,
    pub open_hour: u8,
    pub close_hour: u8,
    pub rssi_threshold_dbm: i8,
    pub min_dwell_secs: u32,
    pub imported_ms: i64,
}

/// A sensor of the inventory (`sensors`).
#[derive(Row, Serialize)]
pub struct SensorRow {
    pub sensor_id: String,
    pub site_id: String,
    pub kind: i8,
    pub lat: f64,
    pub lon: f64,
    pub imported_ms: i64,
}

/// A proof-of-play record (`ad_plays`).
#[derive(Row, Serialize)]
pub struct PlayRow {
    pub board_id: String,
    pub day: u16,
    pub start_ms: i64,
    pub end_ms: i64,
    pub creative_id: String,
    pub brand: String,
    pub campaign_id: String,
}

/// A campaign (`campaigns`).
#[derive(Row, Serialize)]
pub struct CampaignRow {
    pub campaign_id: String,
    pub brand: String,
    pub creative_id: String,
    pub boards: Vec<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub spend: f64,
    pub currency: String,
    pub window_days: u16,
    pub slot_secs: u16,
    pub loop_slots: u16,
    pub slots_per_loop: u16,
    pub imported_ms: i64,
}

/// A receipt (`receipts`).
#[derive(Row, Serialize)]
pub struct ReceiptRow {
    pub store_id: String,
    pub day: u16,
    pub receipt_id: String,
    pub at_ms: i64,
    pub amount_cents: i64,
    pub currency: String,
    pub loyalty_id: String,
}

/// A site's counting calibration (`site_calibrations`).
#[derive(Debug, Row, Serialize, Deserialize)]
pub struct SiteCalibrationRow {
    pub site_id: String,
    pub rssi_min_dbm: i8,
    pub people_per_device: f64,
    pub fixture_hours: u8,
    pub windows: u32,
    pub mae: f64,
    pub imported_ms: i64,
}

/// A device-loyalty link (`links`).
#[derive(Row, Serialize)]
pub struct LinkRow {
    pub epoch: u32,
    pub device: u64,
    pub loyalty_id: String,
    pub imported_ms: i64,
}
