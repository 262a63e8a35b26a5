//! The configuration as written: serde types mirroring the TOML, before validation.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Config, ConfigError, DEFAULTS};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub version: u32,
    pub sensor: RawSensor,
    pub capture: RawCapture,
    pub sightings: RawSightings,
    pub identity: RawIdentity,
    pub mqtt: RawMqtt,
    pub spool: RawSpool,
    /// Directory that relative paths are resolved against (the config file's).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSensor {
    pub id: String,
    pub site: String,
    pub site_kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    pub interface: String,
    pub channel_plan: String,
    pub channels: Vec<u16>,
    pub hop_dwell_ms: u64,
    pub rssi_floor_dbm: i32,
    pub fcs_policy: String,
    pub snaplen_bytes: u32,
    pub buffer_bytes: u64,
    pub clock_sync_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSightings {
    pub gap_secs: u64,
    pub interim_secs: u64,
    pub max_devices: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    pub keys_file: Option<PathBuf>,
    pub epoch_days: u32,
    pub bridge_days: u32,
    pub opt_out_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    pub url: String,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub keepalive_secs: u64,
    pub batch_max_sightings: usize,
    pub batch_max_age_secs: u64,
    pub max_inflight: u16,
    pub status_interval_secs: u64,
    pub keep_acked_secs: u64,
    pub encoding: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpool {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub memory_max_bytes: u64,
    pub fsync: String,
    pub fsync_interval_ms: u64,
}

/// Keys where the file's choice of one replaces the defaults' choice of the other.
const EXCLUSIVE: &[(&str, &[&str])] = &[("identity", &["secret_file", "secret_env", "keys_file"])];

impl RawConfig {
    /// Parses `text` layered over [`DEFAULTS`]; relative paths will resolve against `base_dir`.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<RawConfig, ConfigError> {
        let parse = |t: &str, what: &str| {
            t.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
                message: format!("{what}: {e}"),
            })
        };
        let mut merged = parse(DEFAULTS, "embedded defaults")?;
        let file = parse(text, "config file")?;
        for (table, keys) in EXCLUSIVE {
            let file_sets = file
                .get(*table)
                .and_then(toml::Value::as_table)
                .is_some_and(|t| keys.iter().any(|k| t.contains_key(*k)));
            if let (true, Some(toml::Value::Table(d))) = (file_sets, merged.get_mut(*table)) {
                for k in *keys {
                    d.remove(*k);
                }
            }
        }
        merge(&mut merged, file);
        let mut raw: RawConfig =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    message: e.to_string().trim_end().to_owned(),
                })?;
        raw.base_dir = base_dir.to_owned();
        Ok(raw)
    }

    /// Checks every field; see [`Config`].
    pub fn validate(self) -> Result<Config, ConfigError> {
        Config::from_raw(self)
    }
}

/// Merges `over` into `base`: tables key by key, anything else (arrays included) replaced.
/// Shared with other TOML files layered over defaults (the simulator's scenarios).
pub fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A server part's configuration: the file's `text` over the binary's `defaults` (both
/// TOML), read into its raw type `T` (whose serde attributes refuse unknown fields). The
/// error says which file is not TOML or which field has the wrong type.
pub fn over_defaults<T: serde::de::DeserializeOwned>(
    defaults: &str,
    text: &str,
) -> Result<T, ConfigError> {
    let parse = |t: &str| {
        t.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
            message: e.to_string(),
        })
    };
    let mut merged = parse(defaults)?;
    merge(&mut merged, parse(text)?);
    toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            message: e.to_string(),
        })
}

/// A configuration file's text; the error names the file.
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}
