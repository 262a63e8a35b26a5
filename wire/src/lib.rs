//! The Footfall MQTT contract, version 2.
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
//! {"v":2,"sensor":"s-01","site":"store-7","seq":42,"epoch":437,
//!  "sent_at":"2022-11-15T10:00:05.120Z",
//!  "sightings":[{"device":"9f86d081884c7d65","link":"0b1e55edc0ffee00","class":"global",
//!                "fingerprint":"1a2b3c4d",
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
//!
//! # Versions
//! - **1**: the layout above without `link`.
//! - **2** (current): every sighting carries `link`. Consumers accept both; a sighting
//!   without a link (a version 1 agent) is counted as a device of its own and flagged.
//!
//! # Links
//! Most phones randomize their address, per burst or every few minutes, so one phone makes
//! many device keys. The sensor links the addresses of one device (`device_id::link`): a new
//! randomized address continues the chain of an address that went quiet shortly before,
//! with the same probe fingerprint, when its 802.11 sequence number carries on where the
//! chain's left off (phones keep one counter across address changes), or, for devices that
//! draw a new counter with each address, when it comes within seconds of the chain's last
//! frame at a similar signal. Every address of a chain carries the chain's `link`.
//!
//! What a link allows: counting devices, not addresses, at one sensor, and (through the
//! device keys two sensors share) at one site; a device's stay across its address changes.
//!
//! What it does not:
//! - It lives as long as its chain: a chain left without a new address for 10 minutes ends,
//!   and a chain never continues past midnight UTC. A device that comes back later, or
//!   tomorrow, has a new link.
//! - It is the sensor's: two sensors link independently. It does not link across sites
//!   (unless the address is global: a global address's link is its device key, which is the
//!   same everywhere within an epoch).
//! - It is keyed like the device key: `HMAC-SHA256(epoch key, "footfall/link" || UTC day ||
//!   the chain's first address)`, first 8 bytes. Without the tenant secret it cannot be
//!   reversed to an address, and it changes with the epoch and the day.
//! - A link is an inference: two phones of one model crossing paths can swap or merge
//!   chains. It is good for counting; it is not an identity.

mod envelope;
mod status;
mod time;
pub mod topic;

pub use envelope::{DeviceKey, Envelope, Fingerprint, IdentityClass, LinkKey, Sighting};
pub use status::Status;
pub use time::Millis;
pub use topic::{validate_id, InvalidId};

/// The contract version carried in every message as `v`.
pub const VERSION: u32 = 2;
/// The oldest version consumers still accept.
pub const MIN_VERSION: u32 = 1;

/// Whether a consumer of this build reads messages of contract version `v`.
pub fn readable(v: u32) -> bool {
    (MIN_VERSION..=VERSION).contains(&v)
}
