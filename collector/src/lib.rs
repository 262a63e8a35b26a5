//! The Footfall collector: MQTT sightings and sensor status into ClickHouse, at least once
//! ([`ingest`], [`decode`]); the schema ([`migrate`]); importers of the fleet inventory,
//! proof-of-play logs, campaigns, receipts and device-loyalty links ([`import`]);
//! Prometheus metrics ([`metrics`]); the timely dataflow stage that merges a site's sightings
//! into visits ([`stream`], [`visits`]).

pub mod ch;
pub mod config;
pub mod decode;
pub mod import;
pub mod ingest;
pub mod metrics;
pub mod migrate;
pub mod stream;
pub mod visits;
