//! Footfall attribution: the offline lift of outdoor campaigns (ATTRIBUTION.md).
//!
//! - [`data`]: the queries; ClickHouse selects the rows a report reads, each once.
//! - [`units`]: the per-device work on them: passes classified, arms, outcomes, staff
//!   ([`data::Inputs`]: one row per assigned device).
//! - [`design`]: the method's settings ([`design::Params`]) and the design built from the
//!   rows: arms, strata, clusters, exclusions.
//! - [`estimate`]: the estimates per window, one module per estimator.
//! - [`stats`]: intervals, tests, power, percentiles and the seeded generator.
//! - [`report`]: the model ([`report::build`]) and its presentations: JSON, CSV, HTML with
//!   inline SVG charts.

pub mod bridge;
pub mod data;
pub mod design;
pub mod estimate;
pub mod report;
pub mod stats;
pub mod units;
