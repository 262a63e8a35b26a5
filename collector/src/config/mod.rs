//! The collector's configuration, in two phases: the file as written ([`raw`]: TOML over
//! the embedded defaults, unknown fields refused), then [`Config::from_raw`], which
//! validates each section into a type with private fields and units in its accessors. A
//! `Config` that exists is valid; every error names its field and value.

mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use firmware_config::{secret, ConfigError, MqttTls, Secret};
pub use warehouse::ClickHouseConfig;

use self::raw::{RawConfig, RawIngest, RawMetrics, RawMqtt, RawRetention, RawTimely, RawVisits};

pub const DEFAULTS: &str = include_str!("defaults.toml");

/// A valid configuration; sections are read through accessors.
#[derive(Debug, Clone)]
pub struct Config {
    clickhouse: ClickHouseConfig,
    mqtt: MqttConfig,
    ingest: IngestConfig,
    visits: VisitsConfig,
    timely: TimelyConfig,
    metrics_listen: SocketAddr,
    retention: Vec<(&'static str, u32)>,
}

impl Config {
    /// Reads `path` over the defaults and validates it (secrets included).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::parse(&firmware_config::read_file(path)?)
    }

    /// Validates `text` over the defaults (secrets included).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = firmware_config::over_defaults(DEFAULTS, text)?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.version != 1 {
            return Err(ConfigError::invalid(
                "version",
                raw.version.to_string(),
                "this collector reads version 1",
            ));
        }
        let ingest = IngestConfig::from_raw(raw.ingest)?;
        // Never less than the age of the rows the collector still accepts: a month it may
        // yet receive rows for is not dropped.
        let accepted_days = (ingest.max_age_ms() / 86_400_000) as u32;
        let retention = retention(raw.retention)?
            .into_iter()
            .map(|(table, days)| (table, days.max(accepted_days)))
            .collect();
        Ok(Config {
            clickhouse: ClickHouseConfig::from_raw(raw.clickhouse)?,
            mqtt: MqttConfig::from_raw(raw.mqtt)?,
            ingest,
            visits: VisitsConfig::from_raw(raw.visits)?,
            timely: TimelyConfig::from_raw(raw.timely)?,
            metrics_listen: metrics_listen(raw.metrics)?,
            retention,
        })
    }

    pub fn clickhouse(&self) -> &ClickHouseConfig {
        &self.clickhouse
    }

    pub fn mqtt(&self) -> &MqttConfig {
        &self.mqtt
    }

    pub fn ingest(&self) -> &IngestConfig {
        &self.ingest
    }

    pub fn visits(&self) -> &VisitsConfig {
        &self.visits
    }

    pub fn timely(&self) -> &TimelyConfig {
        &self.timely
    }

    /// Where the Prometheus endpoint listens.
    /// (table, days its rows are kept: at least `ingest.max_age_days`); tables kept for
    /// ever are not listed.
    pub fn retention(&self) -> &[(&'static str, u32)] {
        &self.retention
    }

    pub fn metrics_listen(&self) -> SocketAddr {
        self.metrics_listen
    }
}

/// The broker and the subscription.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    host: String,
    port: u16,
    /// `mqtts://`: the broker's CA, and the collector's client certificate and key.
    tls: Option<MqttTls>,
    client_id: String,
    shared_group: Option<String>,
    username: Option<String>,
    password: Option<Secret>,
    keepalive: Duration,
    connect_timeout: Duration,
    silence_reconnect: Option<Duration>,
}

impl MqttConfig {
    fn from_raw(m: RawMqtt) -> Result<MqttConfig, ConfigError> {
        let (host, port, tls) =
            firmware_config::mqtt_endpoint(&m.url, m.ca_file, m.cert_file, m.key_file)?;
        if m.client_id.is_empty() || m.client_id.len() > 64 {
            return Err(ConfigError::invalid(
                "mqtt.client_id",
                &m.client_id,
                "1-64 characters",
            ));
        }
        if let Some(g) = &m.shared_group {
            wire::validate_id(g)
                .map_err(|e| ConfigError::invalid("mqtt.shared_group", g, e.to_string()))?;
        }
        if m.keepalive_secs < 5 {
            return Err(ConfigError::invalid(
                "mqtt.keepalive_secs",
                m.keepalive_secs.to_string(),
                "at least 5",
            ));
        }
        if m.connect_timeout_secs < 5 {
            return Err(ConfigError::invalid(
                "mqtt.connect_timeout_secs",
                m.connect_timeout_secs.to_string(),
                "at least 5",
            ));
        }
        if (1..5).contains(&m.silence_reconnect_secs) {
            return Err(ConfigError::invalid(
                "mqtt.silence_reconnect_secs",
                m.silence_reconnect_secs.to_string(),
                "0 (never) or at least 5",
            ));
        }
        let password = secret(
            m.password_file,
            m.password_env,
            ("mqtt.password_file", "mqtt.password_env"),
        )?;
        firmware_config::refuse_plaintext_credentials(
            "mqtt.url",
            &host,
            tls.is_some(),
            password.is_some(),
        )?;
        Ok(MqttConfig {
            host,
            port,
            tls,
            client_id: m.client_id,
            shared_group: m.shared_group,
            username: m.username,
            password,
            keepalive: Duration::from_secs(u64::from(m.keepalive_secs)),
            connect_timeout: Duration::from_secs(u64::from(m.connect_timeout_secs)),
            silence_reconnect: (m.silence_reconnect_secs > 0)
                .then(|| Duration::from_secs(u64::from(m.silence_reconnect_secs))),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn tls(&self) -> Option<&MqttTls> {
        self.tls.as_ref()
    }

    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    pub fn keepalive(&self) -> Duration {
        self.keepalive
    }

    /// How long a CONNECT may wait for the broker's answer.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long the broker may send nothing, while the collector can read, before it
    /// reconnects (none: never).
    pub fn silence_reconnect(&self) -> Option<Duration> {
        self.silence_reconnect
    }

    /// The topic filters to subscribe to (sightings and status of every sensor).
    pub fn filters(&self) -> [String; 2] {
        let prefix = match &self.shared_group {
            Some(g) => format!("$share/{g}/"),
            None => String::new(),
        };
        [
            format!("{prefix}{}/+/+/sightings", wire::topic::PREFIX),
            format!("{prefix}{}/+/+/status", wire::topic::PREFIX),
        ]
    }
}

/// Batching and validation bounds.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    max_payload_bytes: usize,
    batch_max_rows: usize,
    batch_max_age: Duration,
    max_future_ms: i64,
    max_age_ms: i64,
    inventory_refresh: Duration,
    quarantine_max_bytes_per_day: u64,
    rejected_max_bytes_per_day: u64,
}

impl IngestConfig {
    fn from_raw(i: RawIngest) -> Result<IngestConfig, ConfigError> {
        Ok(IngestConfig {
            max_payload_bytes: within(
                "ingest.max_payload_bytes",
                i.max_payload_bytes,
                1024,
                16 << 20,
            )? as usize,
            batch_max_rows: within("ingest.batch_max_rows", i.batch_max_rows, 1, 10_000_000)?
                as usize,
            batch_max_age: Duration::from_millis(within(
                "ingest.batch_max_age_ms",
                i.batch_max_age_ms,
                1,
                600_000,
            )? as u64),
            max_future_ms: within("ingest.max_future_secs", i.max_future_secs, 0, 86_400 * 7)?
                * 1000,
            max_age_ms: within("ingest.max_age_days", i.max_age_days, 1, 3650)? * 86_400_000,
            inventory_refresh: Duration::from_secs(within(
                "ingest.inventory_refresh_secs",
                i.inventory_refresh_secs,
                1,
                86_400,
            )? as u64),
            quarantine_max_bytes_per_day: within(
                "ingest.quarantine_max_mib_per_day",
                i.quarantine_max_mib_per_day,
                0,
                1 << 20,
            )? as u64
                * (1 << 20),
            rejected_max_bytes_per_day: within(
                "ingest.rejected_max_mib_per_day",
                i.rejected_max_mib_per_day,
                0,
                1 << 20,
            )? as u64
                * (1 << 20),
        })
    }

    /// Larger payloads are rejected (`payload_too_large`).
    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }

    /// A batch is committed at this many rows (or messages)...
    pub fn batch_max_rows(&self) -> usize {
        self.batch_max_rows
    }

    /// ... or this long after it opened.
    pub fn batch_max_age(&self) -> Duration {
        self.batch_max_age
    }

    /// How far past its receipt a sighting may end (sensor clocks run ahead).
    pub fn max_future_ms(&self) -> i64 {
        self.max_future_ms
    }

    /// How long before its receipt a sighting may start.
    pub fn max_age_ms(&self) -> i64 {
        self.max_age_ms
    }

    /// How often the inventory is read again.
    pub fn inventory_refresh(&self) -> Duration {
        self.inventory_refresh
    }

    /// Bytes of payload one process holds in the quarantine per day (UTC); past it a
    /// refused message keeps only its `rejected` row.
    pub fn quarantine_max_bytes_per_day(&self) -> u64 {
        self.quarantine_max_bytes_per_day
    }

    /// Bytes of refused payload (4 KiB at most each) one process keeps in `rejected` per day;
    /// past it a rejection is kept without its payload.
    pub fn rejected_max_bytes_per_day(&self) -> u64 {
        self.rejected_max_bytes_per_day
    }
}

/// The stream stage's rules and clocks.
#[derive(Debug, Clone)]
pub struct VisitsConfig {
    store_gap_ms: i64,
    board_gap_ms: i64,
    rssi_threshold_dbm: i8,
    min_dwell_secs: u32,
    bucket_ms: i64,
    lateness_ms: i64,
    max_devices_per_site: usize,
    horizon_ms: i64,
}

impl VisitsConfig {
    fn from_raw(v: RawVisits) -> Result<VisitsConfig, ConfigError> {
        Ok(VisitsConfig {
            store_gap_ms: within("visits.store_gap_secs", v.store_gap_secs, 1, 86_400)? * 1000,
            board_gap_ms: within("visits.board_gap_secs", v.board_gap_secs, 1, 86_400)? * 1000,
            rssi_threshold_dbm: v.rssi_threshold_dbm,
            min_dwell_secs: within("visits.min_dwell_secs", v.min_dwell_secs, 0, 86_400)? as u32,
            bucket_ms: within("visits.bucket_secs", v.bucket_secs, 1, 3600)? * 1000,
            lateness_ms: within("visits.lateness_secs", v.lateness_secs, 0, 86_400)? * 1000,
            max_devices_per_site: within(
                "visits.max_devices_per_site",
                v.max_devices_per_site,
                1,
                100_000_000,
            )? as usize,
            horizon_ms: within("visits.horizon_hours", v.horizon_hours, 1, 24 * 60)? * 3_600_000,
        })
    }

    /// Sightings at a store join a stay across gaps up to this.
    pub fn store_gap_ms(&self) -> i64 {
        self.store_gap_ms
    }

    /// At a board (the pass gap).
    pub fn board_gap_ms(&self) -> i64 {
        self.board_gap_ms
    }

    /// For a site the inventory does not list.
    pub fn rssi_threshold_dbm(&self) -> i8 {
        self.rssi_threshold_dbm
    }

    /// For a site the inventory does not list.
    pub fn min_dwell_secs(&self) -> u32 {
        self.min_dwell_secs
    }

    /// Event time advances in buckets of this.
    pub fn bucket_ms(&self) -> i64 {
        self.bucket_ms
    }

    /// The watermark trails the newest sighting by this.
    pub fn lateness_ms(&self) -> i64 {
        self.lateness_ms
    }

    /// Devices one site's state may hold in each stage (visits, occupancy); past it new
    /// devices' sightings are refused by the stage and counted.
    pub fn max_devices_per_site(&self) -> usize {
        self.max_devices_per_site
    }

    /// Stays are held this long behind the watermark.
    pub fn horizon_ms(&self) -> i64 {
        self.horizon_ms
    }
}

/// The timely workers: this process's threads, and the cluster it belongs to, if any.
#[derive(Debug, Clone)]
pub struct TimelyConfig {
    workers: usize,
    /// (this process's index, every process's host:port)
    cluster: Option<(usize, Vec<String>)>,
}

impl TimelyConfig {
    fn from_raw(t: RawTimely) -> Result<TimelyConfig, ConfigError> {
        let workers = within("timely.workers", t.workers, 1, 256)? as usize;
        let cluster = match (t.hostfile, t.process) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "timely.hostfile",
                    "",
                    "set timely.hostfile and timely.process together",
                ))
            }
            (Some(path), Some(process)) => Some((process, hostfile(&path, process)?)),
        };
        Ok(TimelyConfig { workers, cluster })
    }

    /// Worker threads of this process.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// This process's index and every process's `host:port`, in a cluster.
    pub fn cluster(&self) -> Option<(usize, &[String])> {
        self.cluster
            .as_ref()
            .map(|(p, hosts)| (*p, hosts.as_slice()))
    }

    /// This process's index (0 alone).
    pub fn process(&self) -> usize {
        self.cluster.as_ref().map_or(0, |c| c.0)
    }
}

/// The hosts of a timely hostfile (one `host:port` a line, `#` comments), checked against
/// this process's index.
fn hostfile(path: &PathBuf, process: usize) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let hosts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if let Some(bad) = hosts.iter().find(|h| {
        h.rsplit_once(':')
            .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    }) {
        return Err(ConfigError::invalid(
            "timely.hostfile",
            bad,
            "every line must be host:port",
        ));
    }
    if process >= hosts.len() {
        return Err(ConfigError::invalid(
            "timely.process",
            process.to_string(),
            format!("the hostfile lists {} processes", hosts.len()),
        ));
    }
    Ok(hosts)
}

fn metrics_listen(m: RawMetrics) -> Result<SocketAddr, ConfigError> {
    m.listen.parse().map_err(|_| {
        ConfigError::invalid(
            "metrics.listen",
            &m.listen,
            "must be host:port, e.g. 127.0.0.1:9464",
        )
    })
}

fn retention(r: RawRetention) -> Result<Vec<(&'static str, u32)>, ConfigError> {
    let days = [
        ("sightings", "retention.sightings_days", r.sightings_days),
        // The batches of the sightings (migration 14) go with them.
        ("batches", "retention.sightings_days", r.sightings_days),
        ("visits", "retention.visits_days", r.visits_days),
        // The days each epoch has visits on (migration 13) go with the visits.
        ("visit_epochs", "retention.visits_days", r.visits_days),
        (
            "sensor_status",
            "retention.sensor_status_days",
            r.sensor_status_days,
        ),
        ("rejected", "retention.rejected_days", r.rejected_days),
        ("quarantine", "retention.quarantine_days", r.quarantine_days),
        ("occupancy", "retention.occupancy_days", r.occupancy_days),
        ("traffic", "retention.traffic_days", r.traffic_days),
    ];
    let mut out = Vec::new();
    for (table, field, d) in days {
        let d = within(field, d, 0, 36_500)?;
        if d > 0 {
            out.push((table, d as u32));
        }
    }
    Ok(out)
}

/// `v` if it lies within `[lo, hi]`, else an error naming `field`.
fn within(field: &'static str, v: i64, lo: i64, hi: i64) -> Result<i64, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::invalid(
            field,
            v.to_string(),
            format!("must be within [{lo}, {hi}]"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        let c = Config::parse("").expect("defaults");
        assert_eq!(c.clickhouse().database(), "footfall");
    }

    #[test]
    fn units_are_converted_once_at_validation() {
        let c = Config::parse(
            "[visits]\nstore_gap_secs = 90\nhorizon_hours = 2\n[ingest]\nbatch_max_age_ms = 250\n\
             max_age_days = 3\n[mqtt]\nurl = \"mqtt://broker:1884\"\nkeepalive_secs = 7\n\
             connect_timeout_secs = 90",
        )
        .expect("valid");
        assert_eq!(c.visits().store_gap_ms(), 90_000);
        assert_eq!(c.visits().horizon_ms(), 2 * 3_600_000);
        assert_eq!(c.ingest().batch_max_age(), Duration::from_millis(250));
        assert_eq!(c.ingest().max_age_ms(), 3 * 86_400_000);
        assert_eq!((c.mqtt().host(), c.mqtt().port()), ("broker", 1884));
        assert_eq!(c.mqtt().keepalive(), Duration::from_secs(7));
        assert_eq!(c.mqtt().connect_timeout(), Duration::from_secs(90));
        assert_eq!(c.timely().process(), 0);
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            ("version = 2", "version"),
            ("[clickhouse]\nurl = \"tcp://x:9000\"", "clickhouse.url"),
            ("[clickhouse]\nurl = \"https://ch:8443\"", "clickhouse.ca_file"),
            (
                "[clickhouse]\nurl = \"https://ch:8443\"\nca_file = \"/nonexistent/ca.crt\"",
                "cannot be read",
            ),
            (
                "[clickhouse]\nurl = \"https://ch:8443\"\nca_file = \"/etc/hostname\"",
                "holds no PEM certificate",
            ),
            (
                "[clickhouse]\nca_file = \"/etc/hostname\"",
                "is for an https:// URL",
            ),
            (
                "[clickhouse]\nurl = \"http://ch.example:8123\"\npassword_env = \"PATH\"",
                "plain text",
            ),
            (
                "[clickhouse]\ndatabase = \"foot-fall\"",
                "clickhouse.database",
            ),
            (
                "[clickhouse]\npassword_env = \"FOOTFALL_TEST_UNSET_VAR\"",
                "clickhouse.password_env",
            ),
            ("[clickhouse]\nport = 8123", "port"),
            (
                "[clickhouse]\ncompression = \"zstd\"",
                "clickhouse.compression",
            ),
            ("[clickhouse]\ntimeout_secs = 0", "clickhouse.timeout_secs"),
            ("[clickhouse]\ntimeout_secs = -1", "clickhouse.timeout_secs"),
            ("[mqtt]\nurl = \"tcp://x\"", "mqtt.url"),
            ("[mqtt]\nshared_group = \"a/b\"", "mqtt.shared_group"),
            ("[mqtt]\nconnect_timeout_secs = 1", "mqtt.connect_timeout_secs"),
            (
                "[mqtt]\nsilence_reconnect_secs = 2",
                "mqtt.silence_reconnect_secs",
            ),
            ("[mqtt]\nurl = \"mqtts://broker:8883\"", "mqtt.ca_file"),
            ("[mqtt]\nca_file = \"/ca.crt\"", "use an mqtts:// url"),
            (
                "[mqtt]\nurl = \"mqtts://b\"\nca_file = \"/c\"\ncert_file = \"/c\"",
                "mqtt.key_file",
            ),
            (
                "[mqtt]\nurl = \"mqtt://broker.example:1883\"\nusername = \"u\"\npassword_env = \"PATH\"",
                "plain text",
            ),
            ("[ingest]\nbatch_max_rows = 0", "ingest.batch_max_rows"),
            ("[ingest]\nbatch_max_rows = -5", "ingest.batch_max_rows"),
            ("[visits]\nhorizon_hours = -1", "visits.horizon_hours"),
            ("[metrics]\nlisten = \"localhost\"", "metrics.listen"),
            ("[visits]\nbucket_secs = 0", "visits.bucket_secs"),
            ("[timely]\nworkers = 0", "timely.workers"),
            ("[timely]\nprocess = 1", "timely.hostfile"),
            (
                "[ingest]\nmax_payload_bytes = 999999999",
                "ingest.max_payload_bytes",
            ),
        ] {
            let err = Config::parse(text).expect_err(text).to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }
}
