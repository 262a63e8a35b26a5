//! The fleet's deployment against real processes: the shipped broker configuration on a real
//! Mosquitto with certificates footfall-fleet issued, and the shipped systemd units scored by
//! systemd-analyze.

mod broker;
mod cli;
mod systemd;

use std::path::PathBuf;

/// A file of the repository's `deploy/`.
fn deploy(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel)
}
