//! Footfall attribution: the offline lift of outdoor campaigns (ATTRIBUTION.md). [`data`]
//! reads a campaign's rows from ClickHouse, [`analysis`] builds the arms and the estimates,
//! [`report`] writes report.html, report.json and CSV tables; [`stats`] holds the interval
//! and power calculations.

pub mod analysis;
pub mod data;
pub mod report;
pub mod stats;
