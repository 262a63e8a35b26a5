//! The dashboard's configuration, in two phases like the collector's: the file as written
//! (TOML over the embedded defaults, unknown fields refused), then validated into types with
//! private fields. A `Config` that exists is valid; every error names its field and value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use firmware_config::{ConfigError, Secret, SecretSource};
use serde::Deserialize;
use warehouse::{ClickHouseConfig, RawClickHouse};

use crate::privacy::Thresholds;

pub const DEFAULTS: &str = include_str!("defaults.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: u32,
    clickhouse: RawClickHouse,
    http: RawHttp,
    auth: RawAuth,
    sensors: RawSensors,
    reports: RawReports,
    privacy: RawPrivacy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReports {
    dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSensors {
    offline_after_secs: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    users_file: PathBuf,
    session_key_file: PathBuf,
    session_hours: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrivacy {
    min_devices: u32,
    count_min_devices: u32,
}

/// A valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    clickhouse: ClickHouseConfig,
    listen: SocketAddr,
    users_file: PathBuf,
    session_key: Secret,
    session: Duration,
    offline_after: Duration,
    thresholds: Thresholds,
    reports: PathBuf,
}

/// The shortest session key accepted (the cookie signature's key is derived from it).
const MIN_KEY_BYTES: usize = 64;

impl Config {
    /// Reads `path` over the defaults and validates it (the session key included).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::parse(&firmware_config::read_file(path)?)
    }

    /// Validates `text` over the defaults.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = firmware_config::over_defaults(DEFAULTS, text)?;
        if raw.version != 1 {
            return Err(ConfigError::invalid(
                "version",
                raw.version,
                "this dashboard reads version 1",
            ));
        }
        let listen = raw.http.listen.parse().map_err(|_| {
            ConfigError::invalid(
                "http.listen",
                &raw.http.listen,
                "must be host:port, e.g. 127.0.0.1:8080",
            )
        })?;
        if !(1..=24 * 30).contains(&raw.auth.session_hours) {
            return Err(ConfigError::invalid(
                "auth.session_hours",
                raw.auth.session_hours,
                "must be within [1, 720]",
            ));
        }
        if !(60..=86_400).contains(&raw.sensors.offline_after_secs) {
            return Err(ConfigError::invalid(
                "sensors.offline_after_secs",
                raw.sensors.offline_after_secs,
                "must be within [60, 86400]",
            ));
        }
        if raw.privacy.min_devices < 1 {
            return Err(ConfigError::invalid(
                "privacy.min_devices",
                raw.privacy.min_devices,
                "must be at least 1",
            ));
        }
        if !(1..=raw.privacy.min_devices).contains(&raw.privacy.count_min_devices) {
            return Err(ConfigError::invalid(
                "privacy.count_min_devices",
                raw.privacy.count_min_devices,
                "must be within [1, privacy.min_devices]",
            ));
        }
        let session_key = SecretSource::File(raw.auth.session_key_file)
            .load("auth.session_key_file", MIN_KEY_BYTES)?;
        Ok(Config {
            clickhouse: ClickHouseConfig::from_raw(raw.clickhouse)?,
            listen,
            users_file: raw.auth.users_file,
            session_key,
            session: Duration::from_secs(u64::from(raw.auth.session_hours) * 3600),
            offline_after: Duration::from_secs(u64::from(raw.sensors.offline_after_secs)),
            reports: raw.reports.dir,
            thresholds: Thresholds {
                followed: raw.privacy.min_devices,
                counts: raw.privacy.count_min_devices,
            },
        })
    }

    pub fn clickhouse(&self) -> &ClickHouseConfig {
        &self.clickhouse
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The users file (read at start; `add-user` appends to it).
    pub fn users_file(&self) -> &Path {
        &self.users_file
    }

    pub fn session_key(&self) -> &Secret {
        &self.session_key
    }

    pub fn session(&self) -> Duration {
        self.session
    }

    /// A sensor whose last status is older is offline.
    pub fn offline_after(&self) -> Duration {
        self.offline_after
    }

    /// The campaign reports' directory (one folder per campaign).
    pub fn reports(&self) -> &Path {
        &self.reports
    }

    /// Figures built on fewer devices are suppressed.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_key(extra: &str) -> (tempfile::TempDir, Result<Config, ConfigError>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("session.key");
        std::fs::write(&key, [7u8; 64]).expect("key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("mode");
        let text = format!(
            "version = 1\n[auth]\nsession_key_file = \"{}\"\n{extra}",
            key.display()
        );
        let c = Config::parse(&text);
        (dir, c)
    }

    #[test]
    fn the_defaults_with_a_key_are_valid() {
        let (_d, c) = with_key("");
        let c = c.expect("valid");
        assert_eq!(c.listen().port(), 8080);
        assert_eq!(c.session(), Duration::from_secs(12 * 3600));
        assert_eq!(
            c.thresholds(),
            Thresholds {
                followed: 50,
                counts: 5
            }
        );
    }

    #[test]
    fn errors_name_the_field() {
        for (extra, field) in [
            ("[http]\nlisten = \"nowhere\"\n", "http.listen"),
            ("session_hours = 0\n", "auth.session_hours"),
            ("[privacy]\nmin_devices = 0\n", "privacy.min_devices"),
            (
                "[privacy]\nmin_devices = 20\ncount_min_devices = 30\n",
                "privacy.count_min_devices",
            ),
            (
                "[sensors]\noffline_after_secs = 5\n",
                "sensors.offline_after_secs",
            ),
            ("[clickhouse]\nurl = \"ftp://x\"\n", "clickhouse.url"),
        ] {
            let (_d, c) = with_key(extra);
            let e = c.expect_err(extra).to_string();
            assert!(e.contains(field), "{extra}: {e}");
        }
        let e = Config::parse("version = 1\n[auth]\nsession_key_file = \"/nonexistent/key\"\n")
            .expect_err("no key")
            .to_string();
        assert!(e.contains("auth.session_key_file"), "{e}");
    }
}
