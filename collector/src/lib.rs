//! The Footfall collector: ClickHouse schema migrations and importers of the fleet inventory,
//! proof-of-play logs, campaigns, receipts and device-loyalty links. (MQTT ingest and the
//! timely stream stage are issue 4's next part.)

pub mod ch;
pub mod config;
pub mod import;
pub mod migrate;
