//! The collector's configuration: TOML, typed, validated, every error naming its field.

use std::path::{Path, PathBuf};

use firmware_config::{ConfigError, Secret, SecretSource};
use serde::Deserialize;

pub const DEFAULTS: &str = include_str!("defaults.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    version: u32,
    clickhouse: RawClickHouse,
    mqtt: RawMqtt,
    ingest: Ingest,
    visits: VisitsConfig,
    timely: RawTimely,
    metrics: RawMetrics,
}

/// The stream stage's rules and clocks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitsConfig {
    pub store_gap_secs: u32,
    pub board_gap_secs: u32,
    pub rssi_threshold_dbm: i8,
    pub min_dwell_secs: u32,
    pub bucket_secs: u32,
    pub lateness_secs: u32,
    pub horizon_hours: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimely {
    workers: usize,
    hostfile: Option<PathBuf>,
    process: Option<usize>,
}

/// The timely workers: this process's threads, and the cluster it belongs to, if any.
#[derive(Debug, Clone)]
pub struct TimelyConfig {
    pub workers: usize,
    /// (this process's index, every process's host:port)
    pub cluster: Option<(usize, Vec<String>)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    url: String,
    client_id: String,
    shared_group: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    keepalive_secs: u16,
}

/// The broker and the subscription.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub shared_group: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub keepalive_secs: u16,
}

impl MqttConfig {
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingest {
    pub max_payload_bytes: usize,
    pub batch_max_rows: usize,
    pub batch_max_age_ms: u64,
    pub max_future_secs: i64,
    pub max_age_days: i64,
    pub inventory_refresh_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClickHouse {
    url: String,
    database: String,
    user: String,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    compression: String,
}

/// Where the tables live.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: Option<Secret>,
    /// LZ4 on the wire (inserts and results), or none.
    pub lz4: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub clickhouse: ClickHouseConfig,
    pub mqtt: MqttConfig,
    pub ingest: Ingest,
    pub visits: VisitsConfig,
    pub timely: TimelyConfig,
    /// Where the Prometheus endpoint listens.
    pub metrics_listen: std::net::SocketAddr,
}

fn secret(
    file: Option<PathBuf>,
    env: Option<String>,
    fields: (&'static str, &'static str),
) -> Result<Option<Secret>, ConfigError> {
    match (file, env) {
        (Some(_), Some(_)) => Err(invalid(
            fields.0,
            "",
            &format!("set {} or {}, not both", fields.0, fields.1),
        )),
        (Some(f), None) => Ok(Some(SecretSource::File(f).load(fields.0, 1)?)),
        (None, Some(v)) => Ok(Some(SecretSource::Env(v).load(fields.1, 1)?)),
        (None, None) => Ok(None),
    }
}

fn invalid(field: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        field,
        value: format!("{value:?}"),
        reason: reason.to_string(),
    }
}

impl Config {
    /// Reads `path` over the defaults and validates it (secrets included).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let parse = |t: &str| {
            t.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
                message: e.to_string(),
            })
        };
        let mut merged = parse(DEFAULTS)?;
        firmware_config::merge_toml(&mut merged, parse(text)?);
        let raw: Raw = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                message: e.to_string(),
            })?;
        if raw.version != 1 {
            return Err(invalid(
                "version",
                &raw.version.to_string(),
                "this collector reads version 1",
            ));
        }
        let c = raw.clickhouse;
        if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
            return Err(invalid(
                "clickhouse.url",
                &c.url,
                "must be an http:// or https:// URL (the HTTP interface, port 8123 by default)",
            ));
        }
        if c.database.is_empty()
            || !c
                .database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(invalid(
                "clickhouse.database",
                &c.database,
                "must be letters, digits and _",
            ));
        }
        let lz4 = match c.compression.as_str() {
            "lz4" => true,
            "none" => false,
            other => {
                return Err(invalid(
                    "clickhouse.compression",
                    other,
                    "must be \"lz4\" or \"none\"",
                ))
            }
        };
        let password = secret(
            c.password_file,
            c.password_env,
            ("clickhouse.password_file", "clickhouse.password_env"),
        )?;
        let m = raw.mqtt;
        let Some(addr) = m.url.strip_prefix("mqtt://") else {
            return Err(invalid("mqtt.url", &m.url, "must be mqtt://host:port"));
        };
        let (host, port) = match addr.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse::<u16>()
                    .map_err(|_| invalid("mqtt.url", &m.url, "the port is not a number"))?,
            ),
            None => (addr.to_owned(), 1883),
        };
        if host.is_empty() {
            return Err(invalid("mqtt.url", &m.url, "no host"));
        }
        if m.client_id.is_empty() || m.client_id.len() > 64 {
            return Err(invalid("mqtt.client_id", &m.client_id, "1-64 characters"));
        }
        if let Some(g) = &m.shared_group {
            wire::validate_id(g).map_err(|e| invalid("mqtt.shared_group", g, &e.to_string()))?;
        }
        if m.keepalive_secs < 5 {
            return Err(invalid(
                "mqtt.keepalive_secs",
                &m.keepalive_secs.to_string(),
                "at least 5",
            ));
        }
        let mqtt_password = secret(
            m.password_file,
            m.password_env,
            ("mqtt.password_file", "mqtt.password_env"),
        )?;
        let i = raw.ingest;
        let bounds: [(&'static str, i64, i64, i64); 6] = [
            (
                "ingest.max_payload_bytes",
                i.max_payload_bytes as i64,
                1024,
                16 << 20,
            ),
            (
                "ingest.batch_max_rows",
                i.batch_max_rows as i64,
                1,
                10_000_000,
            ),
            (
                "ingest.batch_max_age_ms",
                i.batch_max_age_ms as i64,
                1,
                600_000,
            ),
            ("ingest.max_future_secs", i.max_future_secs, 0, 86_400 * 7),
            ("ingest.max_age_days", i.max_age_days, 1, 3650),
            (
                "ingest.inventory_refresh_secs",
                i.inventory_refresh_secs as i64,
                1,
                86_400,
            ),
        ];
        for (field, v, lo, hi) in bounds {
            if !(lo..=hi).contains(&v) {
                return Err(invalid(
                    field,
                    &v.to_string(),
                    &format!("must be within [{lo}, {hi}]"),
                ));
            }
        }
        let v = &raw.visits;
        let vbounds: [(&'static str, i64, i64, i64); 6] = [
            ("visits.store_gap_secs", v.store_gap_secs.into(), 1, 86_400),
            ("visits.board_gap_secs", v.board_gap_secs.into(), 1, 86_400),
            ("visits.min_dwell_secs", v.min_dwell_secs.into(), 0, 86_400),
            ("visits.bucket_secs", v.bucket_secs.into(), 1, 3600),
            ("visits.lateness_secs", v.lateness_secs.into(), 0, 86_400),
            ("visits.horizon_hours", v.horizon_hours.into(), 1, 24 * 60),
        ];
        for (field, x, lo, hi) in vbounds {
            if !(lo..=hi).contains(&x) {
                return Err(invalid(
                    field,
                    &x.to_string(),
                    &format!("must be within [{lo}, {hi}]"),
                ));
            }
        }
        let t = raw.timely;
        if !(1..=256).contains(&t.workers) {
            return Err(invalid(
                "timely.workers",
                &t.workers.to_string(),
                "must be within [1, 256]",
            ));
        }
        let cluster = match (t.hostfile, t.process) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(invalid(
                    "timely.hostfile",
                    "",
                    "set timely.hostfile and timely.process together",
                ))
            }
            (Some(path), Some(process)) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
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
                    return Err(invalid(
                        "timely.hostfile",
                        bad,
                        "every line must be host:port",
                    ));
                }
                if process >= hosts.len() {
                    return Err(invalid(
                        "timely.process",
                        &process.to_string(),
                        &format!("the hostfile lists {} processes", hosts.len()),
                    ));
                }
                Some((process, hosts))
            }
        };
        Ok(Config {
            visits: raw.visits,
            timely: TimelyConfig {
                workers: t.workers,
                cluster,
            },
            clickhouse: ClickHouseConfig {
                url: c.url,
                database: c.database,
                user: c.user,
                password,
                lz4,
            },
            mqtt: MqttConfig {
                host,
                port,
                client_id: m.client_id,
                shared_group: m.shared_group,
                username: m.username,
                password: mqtt_password,
                keepalive_secs: m.keepalive_secs,
            },
            ingest: i,
            metrics_listen: raw.metrics.listen.parse().map_err(|_| {
                invalid(
                    "metrics.listen",
                    &raw.metrics.listen,
                    "must be host:port, e.g. 127.0.0.1:9464",
                )
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        let c = Config::parse("").expect("defaults");
        assert_eq!(c.clickhouse.database, "footfall");
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            ("version = 2", "version"),
            ("[clickhouse]\nurl = \"tcp://x:9000\"", "clickhouse.url"),
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
            ("[mqtt]\nurl = \"tcp://x\"", "mqtt.url"),
            ("[mqtt]\nshared_group = \"a/b\"", "mqtt.shared_group"),
            ("[ingest]\nbatch_max_rows = 0", "ingest.batch_max_rows"),
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
