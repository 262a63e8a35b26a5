//! Footfall attribution: the offline lift of outdoor campaigns (ATTRIBUTION.md).
//!
//! - [`data`]: the queries; ClickHouse does the per-device work and returns one row per
//!   assigned device ([`data::Inputs`]).
//! - [`design`]: the method's settings ([`design::Params`]) and the design built from the
//!   rows: arms, strata, clusters, exclusions.
//! - [`estimate`]: the estimates per window, one module per estimator.
//! - [`stats`]: intervals, tests, power, percentiles and the seeded generator.
//! - [`report`]: the model ([`report::build`]) and its presentations: JSON, CSV, HTML with
//!   inline SVG charts.

pub mod data;
pub mod design;
pub mod estimate;
pub mod report;
pub mod stats;
