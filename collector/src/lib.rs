//! The Footfall collector: MQTT sightings and sensor status into ClickHouse, at least once
//! ([`ingest`], [`decode`]); the schema ([`migrate`]); importers of the fleet inventory,
//! proof-of-play logs, campaigns, receipts and device-loyalty links ([`import`]);
//! Prometheus metrics ([`metrics`]). (The timely stage that merges sightings into site visits
//! is issue 4's next part.)

pub mod ch;
pub mod config;
pub mod decode;
pub mod import;
pub mod ingest;
pub mod metrics;
pub mod migrate;
