//! The Footfall collector: MQTT sightings and sensor status into ClickHouse, at least once,
//! and the site visits derived from them.
//!
//! [`run`] is the service: it wires the parts below and is what `footfall-collector run`
//! and the tests drive.
//! - [`ingest`]: MQTT -> batches -> commit -> acknowledge; [`decode`] turns one message into
//!   rows or a rejection ([`reason`]).
//! - [`inventory`]: the sensors' sites and the sites' rules, refreshed.
//! - [`stream`]: the timely dataflow stage that merges a site's sightings into visits
//!   ([`visits`] is its pure state machine), its writer and its recovery.
//! - [`ch`]: the ClickHouse client, the one insert and retry, every row type;
//!   [`migrate`] applies the schema (`collector/migrations/`).
//! - [`purge`]: the opt-out purge of device keys from every table.
//! - [`retention`]: each table's months dropped past their retention.
//! - [`quarantine`]: refused messages held until the operator's fix, and their replay.
//! - [`import`]: the fleet inventory, proof-of-play logs, campaigns, receipts and
//!   device-loyalty links.
//! - [`metrics`]: Prometheus text on `metrics.listen`; [`config`]: the configuration.

pub mod ch;
pub mod config;
pub mod counting;
pub mod decode;
pub mod import;
pub mod ingest;
pub mod inventory;
pub mod metrics;
pub mod migrate;
pub mod occupancy;
pub mod offline;
pub mod purge;
pub mod quarantine;
pub mod reason;
pub mod retention;
pub mod stream;
pub mod traffic;
pub mod visits;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::ch::QueryError;
use crate::config::Config;
use crate::ingest::IngestError;
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::migrate::MigrateError;
use crate::stream::{Stage, StageError};

/// Why the collector stopped. What it had read and not committed stays unacknowledged at
/// the broker and is redelivered to the next start; visits not written are rebuilt then.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the configuration names (the MQTT TLS files) cannot be read.
    #[error(transparent)]
    Config(#[from] firmware_config::ConfigError),
    /// Another process holds the port: change `metrics.listen`.
    #[error("metrics.listen: cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("cannot read the inventory")]
    Inventory(#[source] QueryError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Runs the collector until `shutdown`: serves the metrics, applies the migrations, reads
/// the inventory, starts the stream stage (process 0 of a cluster first rebuilds its state
/// from the sightings table), and ingests. On `shutdown` it commits and acknowledges what
/// it has read, then the stage writes every stay it holds.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let tls = cfg
        .mqtt()
        .tls()
        .map(firmware_config::MqttTls::read)
        .transpose()?;
    let metrics = Arc::new(Metrics::default());
    let addr = cfg.metrics_listen();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    tokio::spawn(metrics::serve(listener, metrics.clone(), shutdown.clone()));
    migrate::migrate(cfg.clickhouse()).await?;
    let (db, _) = cfg.clickhouse().clients();
    let inventory = Inventory::load(db.clone(), &cfg)
        .await
        .map_err(Error::Inventory)?;
    let rules = inventory.rules();
    let resume = stream::Resume::read(&db, &cfg).await?;
    let floor_ms = resume.floor_ms;
    let stage = Stage::start(
        &cfg,
        resume,
        rules.clone(),
        db.clone(),
        metrics.clone(),
        shutdown.clone(),
    )?;
    let feed = stage.feed();
    if cfg.timely().process() == 0 {
        let current = rules.read().expect("not poisoned").clone();
        stream::recover(&db, floor_ms, &current, &feed).await?;
        tokio::spawn(retention::run(
            db.clone(),
            cfg.clickhouse().clone(),
            cfg.retention().to_vec(),
            retention::settle_days(&cfg),
            shutdown.clone(),
        ));
    }
    ingest::run(&cfg, tls, db, inventory, feed, metrics, shutdown).await?;
    // The stream stage writes the stays it holds.
    stage.finish().await?;
    info!("stopped");
    Ok(())
}
