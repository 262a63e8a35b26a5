//! The Footfall MQTT contract, version 1.
//!
//! Everything that crosses the broker is defined here: [`topic`] names, the batch
//! [`Envelope`] of [`Sighting`]s, and the retained [`Status`] heartbeat. Sensors produce
//! these types, the collector consumes them; neither side hand-writes JSON.
//!
//! # Topics
//! - `footfall/v1/{site}/{sensor}/sightings`, QoS 1, not retained: one [`Envelope`] per message.
//! - `footfall/v1/{site}/{sensor}/status`, QoS 1, retained: a [`Status`]; the sensor's MQTT
//!   Last Will publishes a `Status` with `online: false` on the same topic.
//!
//! Site and sensor ids are 1-64 characters of `[A-Za-z0-9_.-]` ([`validate_id`]), so they can
//! never inject MQTT wildcards or extra topic levels.
//!
//! # Envelope layout (JSON, one object per message)
//! ```json
//! {"v":1,"sensor":"s-01","site":"store-7","seq":42,"epoch":437,
//!  "sent_at":"2022-11-15T10:00:05.120Z",
//!  "sightings":[{"device":"9f86d081884c7d65","class":"global","fingerprint":"1a2b3c4d",
//!                "first_seen":"2022-11-15T09:59:01.003Z","last_seen":"2022-11-15T09:59:58.870Z",
//!                "frames":12,"rssi_max":-51,"rssi_mean":-63.4,"final":true}]}
//! ```
//! Invariants:
//! - `seq` rises strictly per sensor, across restarts; `(sensor, seq)` identifies a batch, and
//!   a redelivered batch is byte-identical to the first delivery.
//! - `device` is 16 lowercase hex digits (a `u64` keyed hash: JSON numbers lose precision
//!   past 2^53). All sightings of an envelope belong to the envelope's `epoch`.
//! - Times are UTC with millisecond precision; `first_seen <= last_seen`.
//! - A sighting with `final: false` is an interim update of a sighting still open; a later
//!   message carries the same `(device, first_seen)` with larger `last_seen`/`frames`, and the
//!   last one for that key has `final: true`. Consumers keep the latest.

mod envelope;
mod status;
mod time;
pub mod topic;

pub use envelope::{DeviceKey, Envelope, Fingerprint, IdentityClass, Sighting};
pub use status::Status;
pub use time::Millis;
pub use topic::{validate_id, InvalidId};

/// The contract version carried in every message as `v`.
pub const VERSION: u32 = 1;
