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
    /// For an `https://` URL: the CA certificate(s) (PEM) that signed the server's.
    pub ca_file: Option<PathBuf>,
}

/// Where the tables live.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    url: String,
    database: String,
    user: String,
    password: Option<Secret>,
    lz4: bool,
    /// The CA (PEM) of an `https://` server, read and checked at start.
    ca_pem: Option<Vec<u8>>,
}

impl ClickHouseConfig {
    /// Validates the section; an error names the field.
    pub fn from_raw(c: RawClickHouse) -> Result<ClickHouseConfig, ConfigError> {
        let (rest, tls) = match (
            c.url.strip_prefix("http://"),
            c.url.strip_prefix("https://"),
        ) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => return Err(ConfigError::invalid(
                "clickhouse.url",
                &c.url,
                "must be an http:// or https:// URL (the HTTP interface: 8123, or 8443 with TLS)",
            )),
        };
        let ca_pem = match (&c.ca_file, tls) {
            (Some(path), true) => Some(crate::tls::read_ca(path)?),
            (Some(_), false) => {
                return Err(ConfigError::invalid(
                    "clickhouse.ca_file",
                    &c.url,
                    "is for an https:// URL; this one is http://",
                ))
            }
            (None, true) => {
                return Err(ConfigError::invalid(
                    "clickhouse.ca_file",
                    "(none)",
                    "an https:// URL needs the CA that signed the server's certificate",
                ))
            }
            (None, false) => None,
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
            tls,
            password.is_some(),
        )?;
        Ok(ClickHouseConfig {
            url: c.url,
            database: c.database,
            user: c.user,
            password,
            lz4,
            ca_pem,
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
            ca_pem: self.ca_pem.as_deref(),
        })
    }
}
