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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClickHouse {
    url: String,
    database: String,
    user: String,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
}

/// Where the tables live.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub clickhouse: ClickHouseConfig,
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
        let password = match (c.password_file, c.password_env) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "clickhouse.password_file",
                    "",
                    "set password_file or password_env, not both",
                ))
            }
            (Some(f), None) => Some(SecretSource::File(f).load("clickhouse.password_file", 1)?),
            (None, Some(v)) => Some(SecretSource::Env(v).load("clickhouse.password_env", 1)?),
            (None, None) => None,
        };
        Ok(Config {
            clickhouse: ClickHouseConfig {
                url: c.url,
                database: c.database,
                user: c.user,
                password,
            },
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
        ] {
            let err = Config::parse(text).expect_err(text).to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }
}
