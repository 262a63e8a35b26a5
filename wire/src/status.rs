//! The retained heartbeat of a sensor: the payload of a `.../status` message.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// A sensor's health, published retained on its status topic.
///
/// The same type with `online: false` is the sensor's MQTT Last Will; then only the
/// identity fields and `at` (connect time) are meaningful.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub v: u32,
    pub sensor: String,
    pub site: String,
    pub online: bool,
    /// When this status was produced (sensor clock).
    pub at: Millis,
    pub uptime_secs: u64,
    /// Frames delivered by libpcap to the agent.
    pub frames_captured: u64,
    /// Frames lost before the agent saw them (libpcap's buffer and interface drops).
    pub frames_dropped: u64,
    /// Frames that failed to parse.
    pub frames_malformed: u64,
    /// Batches waiting for the broker's acknowledgement: on disk, or in memory while the
    /// spool's disk refuses them.
    pub spool_batches: u64,
    pub spool_bytes: u64,
    /// Batches the spool had to discard because it was full (on disk, or in memory while its
    /// disk failed).
    pub spool_dropped_batches: u64,
    /// The `version` of the sensor's configuration file.
    pub config_version: u32,
    /// Whether the system clock reports itself synchronised (NTP).
    pub clock_synced: bool,
}
