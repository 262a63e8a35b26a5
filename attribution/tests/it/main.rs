//! Integration tests of `footfall-attribution`: the CLI's statistics, and a report from a
//! simulated city run through the real collector and ClickHouse, checked against the truth.

mod cli;
mod epochs;
mod modern;
mod pipeline;
