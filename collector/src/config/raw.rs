//! The configuration file as written: TOML over the embedded defaults, every field present
//! (the defaults supply what the file leaves out), unknown fields refused. Nothing here is
//! checked beyond its type; [`super::Config::from_raw`] validates it.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub version: u32,
    pub clickhouse: warehouse::RawClickHouse,
    pub mqtt: RawMqtt,
    pub ingest: RawIngest,
    pub visits: RawVisits,
    pub timely: RawTimely,
    pub metrics: RawMetrics,
    pub retention: RawRetention,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    pub sightings_days: i64,
    pub visits_days: i64,
    pub sensor_status_days: i64,
    pub rejected_days: i64,
    pub quarantine_days: i64,
    pub occupancy_days: i64,
    pub traffic_days: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMqtt {
    pub url: String,
    pub client_id: String,
    pub shared_group: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub keepalive_secs: u16,
    pub connect_timeout_secs: u32,
    pub silence_reconnect_secs: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIngest {
    pub max_payload_bytes: i64,
    pub batch_max_rows: i64,
    pub batch_max_age_ms: i64,
    pub max_future_secs: i64,
    pub max_age_days: i64,
    pub inventory_refresh_secs: i64,
    pub quarantine_max_mib_per_day: i64,
    pub rejected_max_mib_per_day: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVisits {
    pub store_gap_secs: i64,
    pub board_gap_secs: i64,
    pub rssi_threshold_dbm: i8,
    pub min_dwell_secs: i64,
    pub bucket_secs: i64,
    pub lateness_secs: i64,
    pub max_devices_per_site: i64,
    pub horizon_hours: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimely {
    pub workers: i64,
    pub hostfile: Option<PathBuf>,
    pub process: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: String,
}
