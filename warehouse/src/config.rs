//! The `[clickhouse]` section every server part's configuration has, in two phases: as
//! written ([`RawClickHouse`]), then validated ([`ClickHouseConfig`]).

use std::path::PathBuf;

use firmware_config::{secret, ConfigError, Secret};
use serde::Deserialize;

use crate::{clients, Target};

/// The section as written (TOML over the binary's defaults); checked only for its types.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClickHouse {
    pub url: String,
    pub database: String,
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub compression: String,
}

/// Where the tables live.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    url: String,
    database: String,
    user: String,
    password: Option<Secret>,
    lz4: bool,
}

impl ClickHouseConfig {
    /// Validates the section; an error names the field.
    pub fn from_raw(c: RawClickHouse) -> Result<ClickHouseConfig, ConfigError> {
        let Some(rest) = c.url.strip_prefix("http://") else {
            let why = if c.url.starts_with("https://") {
                "https:// is not supported by this build (no TLS connector): reach ClickHouse \
                 on this host or a private network, or through a TLS proxy on loopback"
            } else {
                "must be an http:// URL (the HTTP interface, port 8123 by default)"
            };
            return Err(ConfigError::invalid("clickhouse.url", &c.url, why));
        };
        if c.database.is_empty()
            || !c
                .database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ConfigError::invalid(
                "clickhouse.database",
                &c.database,
                "must be letters, digits and _",
            ));
        }
        let lz4 = match c.compression.as_str() {
            "lz4" => true,
            "none" => false,
            other => {
                return Err(ConfigError::invalid(
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
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        firmware_config::refuse_plaintext_credentials(
            "clickhouse.url",
            host,
            false,
            password.is_some(),
        )?;
        Ok(ClickHouseConfig {
            url: c.url,
            database: c.database,
            user: c.user,
            password,
            lz4,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Letters, digits and `_` only: safe to name in a statement.
    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// LZ4 on the wire (inserts and results), or none.
    pub fn lz4(&self) -> bool {
        self.lz4
    }

    /// A client for the configured database, and one for the server (to create the
    /// database).
    pub fn clients(&self) -> (clickhouse::Client, clickhouse::Client) {
        let password = self
            .password
            .as_ref()
            .map(|p| String::from_utf8_lossy(p.expose()).into_owned());
        clients(&Target {
            url: &self.url,
            user: &self.user,
            password: password.as_deref(),
            database: &self.database,
            lz4: self.lz4,
        })
    }
}
