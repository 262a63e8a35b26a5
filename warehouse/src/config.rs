//! The `[clickhouse]` section every server part's configuration has, in two phases: as
//! written ([`RawClickHouse`]), then validated ([`ClickHouseConfig`]).

use std::path::PathBuf;
use std::time::Duration;

use firmware_config::{secret, ConfigError, Secret};
use serde::Deserialize;

use crate::{clients, Target, DEFAULT_TIMEOUT};

/// The section as written (TOML over the binary's defaults); checked only for its types.
/// Its `Default` is all empty, for a section built in code.
#[derive(Debug, Default, Deserialize)]
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
    /// The ClickHouse cluster (a `remote_servers` name) the tables are spread over, if any.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Seconds a request may make no progress before it fails ([`crate::DEFAULT_TIMEOUT`]
    /// when absent).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// Letters, digits and `_`, at least one: a name safe to write into a statement.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
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
    cluster: Option<String>,
    timeout: Duration,
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
        if !plain_name(&c.database) {
            return Err(ConfigError::invalid(
                "clickhouse.database",
                &c.database,
                "must be letters, digits and _",
            ));
        }
        if let Some(cluster) = &c.cluster {
            if !plain_name(cluster) {
                return Err(ConfigError::invalid(
                    "clickhouse.cluster",
                    cluster,
                    "must be letters, digits and _ (a name in the servers' remote_servers)",
                ));
            }
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
        let timeout = match c.timeout_secs {
            None => DEFAULT_TIMEOUT,
            Some(0) => {
                return Err(ConfigError::invalid(
                    "clickhouse.timeout_secs",
                    0,
                    "must be at least 1 (seconds a request may wait without progress)",
                ))
            }
            Some(secs) => Duration::from_secs(secs),
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
            cluster: c.cluster,
            timeout,
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

    /// The cluster the tables are spread over (see [`ClickHouseConfig::clients`]); letters,
    /// digits and `_` only.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// The table that holds `table`'s rows on each node, for statements a Distributed table
    /// does not take (mutations, DROP PARTITION): `table`, or on a cluster
    /// `table_local ON CLUSTER name`.
    pub fn local_table(&self, table: &str) -> String {
        match &self.cluster {
            // Named with the database: the other servers run it in their default one.
            Some(c) => format!("{}.{table}_local ON CLUSTER {c}", self.database),
            None => table.to_owned(),
        }
    }

    /// A system table of every node the tables live on: `system.name`, or on a cluster
    /// `cluster(name, system, table)` (its rows from one replica of each shard). Compare
    /// its `database` with a bound [`ClickHouseConfig::database`]: `currentDatabase()` is
    /// the remote node's default there.
    pub fn system_table(&self, table: &str) -> String {
        match &self.cluster {
            Some(c) => format!("cluster({c}, system, {table})"),
            None => format!("system.{table}"),
        }
    }

    /// The name the parts of `table` have on each node (in `system.parts`).
    pub fn part_table(&self, table: &str) -> String {
        match &self.cluster {
            Some(_) => format!("{table}_local"),
            None => table.to_owned(),
        }
    }

    /// LZ4 on the wire (inserts and results), or none.
    pub fn lz4(&self) -> bool {
        self.lz4
    }

    /// A client for the configured database, and one for the server (to create the
    /// database). On a cluster, each table is a `Distributed` table over its replicated
    /// shards (`<table>_local`), so the clients also: wait for an insert to reach its shard
    /// (`insert_distributed_sync`: a committed batch is on its shard, not in a queue of the
    /// node that took it), and read a distributed table inside a query's IN or JOIN once,
    /// on the node that runs the query, sending the result to the shards
    /// (`distributed_product_mode = 'global'`: a device's passes and visits live on
    /// different shards, so each shard must see all of the other side).
    pub fn clients(&self) -> (clickhouse::Client, clickhouse::Client) {
        self.clients_within(self.timeout)
    }

    /// [`ClickHouseConfig::clients`] whose requests may make no progress for `timeout`: for
    /// a statement that answers only once a long job is done (a month's merge).
    pub fn clients_within(&self, timeout: Duration) -> (clickhouse::Client, clickhouse::Client) {
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
            cluster: self.cluster.is_some(),
            timeout,
        })
    }
}
