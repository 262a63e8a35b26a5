//! The Footfall MQTT contract, version 3.
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
//! {"v":3,"sensor":"s-01","site":"store-7","seq":42,"epoch":437,
//!  "sent_at":"2022-11-15T10:00:05.120Z",
//!  "sightings":[{"device":"9f86d081884c7d65","link":"0b1e55edc0ffee00","class":"global",
//!                "fingerprint":"1a2b3c4d",   (in an epoch's bridge also "next":"...", after link)
//!                "first_seen":"2022-11-15T09:59:01.003Z","last_seen":"2022-11-15T09:59:58.870Z",
//!                "frames":12,"rssi_max":-51,"rssi_mean":-63.4,"final":true}]}
//! ```
//! Invariants:
//! - `seq` rises strictly per sensor, across restarts; `(sensor, seq)` identifies a batch, and
//!   a redelivered batch is byte-identical to the first delivery. The agent numbers its
//!   batches one after another, so a number the collector never stored is a batch missing
//!   (the dashboard's Sensors page counts them): dropped by a full spool, refused whole, or
//!   lost on the way.
//! - `device` is 16 lowercase hex digits (a `u64` keyed hash: JSON numbers lose precision
//!   past 2^53). All sightings of an envelope belong to the envelope's `epoch`.
//! - Times are UTC with millisecond precision; `first_seen <= last_seen`.
//! - A sighting with `final: false` is an interim update of a sighting still open; a later
//!   message carries the same `(device, first_seen)` with larger `last_seen`/`frames`, and the
//!   last one for that key has `final: true`. Consumers keep the latest.
//!
//! # Binary encoding
//! A sensor may send its envelopes in a binary layout instead of JSON ([`Encoding`], the
//! agent's `mqtt.encoding`): the same fields and the same contract version, on the same
//! topic. It exists for cost. A sighting is about 230 bytes of JSON and 38 bytes here (46
//! with a link, as every current agent sends, 54 with a `next` key too), which matters on a
//! billboard's metered cellular link, and decoding it costs the collector a small fraction
//! of parsing JSON (benches/README.md).
//! It is not compressed: sensors are Raspberry-Pi-class, and the keys are random bytes that
//! do not compress.
//!
//! Little-endian, fixed width:
//! ```text
//! magic      FF 46 46           (0xFF never occurs in UTF-8: no JSON payload starts so)
//! format     u8 = 1             (the layout's own version, BINARY_FORMAT)
//! v          u8                 (the contract version, as in JSON)
//! sensor     u8 length, UTF-8
//! site       u8 length, UTF-8
//! seq u64, epoch u32, sent_at i64 (ms since the epoch, UTC), count u32
//! count x sighting:
//!   flags u8        bit 0 final, bit 1 class local, bit 2 link follows, bit 3 next follows;
//!                   other bits must be 0
//!   device u64, [link u64], [next u64], fingerprint u32,
//!   first_seen i64, last_seen i64 (ms), frames u32, rssi_max i8, rssi_mean f32
//! ```
//! Nothing may follow the last sighting. A consumer refuses a payload that breaks the layout
//! (reason `malformed_binary`, naming the field and the byte offset) and applies every other
//! rule exactly as to JSON. Status messages stay JSON: they are few and retained for people
//! to read.
//!
//! # Files of envelopes
//! `footfall-agent replay --out FILE` writes the envelopes it would have published, and the
//! offline tools (`footfall-collector occupancy` and `calibrate`) read them ([`file`]): one
//! JSON envelope per line (`--encoding json`), or binary envelopes back to back with nothing
//! between them (`--encoding binary`: each one's layout says where it ends). A reader tells
//! the two apart by the file's first byte, as a consumer tells payloads apart.
//!
//! # Versions
//! - **1**: the layout above without `link`.
//! - **2**: every sighting carries `link`. Consumers accept both; a sighting
//!   without a link (a version 1 agent) is counted as a device of its own and flagged.
//! - **3** (current): a sighting in the last days of its epoch also carries `next`, the
//!   device key under the next epoch's key ("Epoch bridges"). Consumers accept 1-3; `next`
//!   in a version 1 or 2 envelope is a schema mismatch.
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

//! # Epoch bridges
//! Device keys change with the epoch (45 days by default), so a phone followed across a
//! boundary would be two devices: a campaign whose flight, follow-up window or look-back
//! crosses it (about half of them) would lose the conversions after it and count its
//! passers twice. So in the last `bridge_days` of an epoch (30 by default: the longest
//! attribution window), the sensor also publishes each sighting's `next` key, the device key
//! the same address will have in the next epoch. The collector keeps the pairs (table
//! `bridges`), and a report whose period crosses a boundary follows a device across it as one
//! unit.
//!
//! The privacy trade, and its bounds:
//! - While both epochs' data are kept, a device seen in the bridge can be followed across
//!   the boundary: two epochs, up to 90 days, instead of one. That is the point.
//! - Not further: a key is never published before the last `bridge_days` of the epoch before
//!   its own (a sensor derives only the current and the next epoch's keys), and the
//!   collector drops an epoch's pairs once sightings of two epochs later arrive, so no
//!   stored pair links a key to one more than an epoch away, and reports bridge one
//!   boundary at a time, never chaining epochs into a longer history.
//! - `next` is a device key like any other: keyed, irreversible without the tenant secret,
//!   never the address. A randomized address's `next` key is as short-lived as the address.
//! - A report run after its boundary's pairs were dropped (more than an epoch after it)
//!   splits devices at the boundary again, and says so (`bridged_boundaries`).

mod binary;
mod envelope;
pub mod file;
mod status;
mod time;
pub mod topic;

pub use binary::{is_binary, version_of, BinaryError, BINARY_FORMAT, MAGIC};
pub use envelope::{DeviceKey, Envelope, Fingerprint, IdentityClass, LinkKey, Sighting};
pub use status::Status;
pub use time::Millis;
pub use topic::{validate_id, InvalidId};

/// The contract version carried in every message as `v`.
pub const VERSION: u32 = 3;
/// The oldest version consumers still accept.
pub const MIN_VERSION: u32 = 1;

/// How a sensor encodes its envelopes (see "Binary encoding"). Consumers read both, telling
/// them apart by the first byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The JSON layout: readable with any MQTT client, about 230 bytes a sighting.
    #[default]
    Json,
    /// The binary layout: 38-54 bytes a sighting, and a fraction of JSON's CPU to encode and
    /// decode.
    Binary,
}

impl std::str::FromStr for Encoding {
    type Err = String;

    /// `json` or `binary`, as configurations and command lines name them.
    fn from_str(s: &str) -> Result<Encoding, String> {
        match s {
            "json" => Ok(Encoding::Json),
            "binary" => Ok(Encoding::Binary),
            _ => Err("expected \"json\" or \"binary\"".into()),
        }
    }
}

impl Envelope {
    /// The envelope as a message payload in `encoding`.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(encoding, &mut out);
        out
    }

    /// The envelope as a message payload in `encoding`, appended to `out`.
    pub fn encode_into(&self, encoding: Encoding, out: &mut Vec<u8>) {
        match encoding {
            Encoding::Json => serde_json::to_writer(out, self).expect("an envelope serializes"),
            Encoding::Binary => self.encode_binary(out),
        }
    }
}

/// Whether a consumer of this build reads messages of contract version `v`.
pub fn readable(v: u32) -> bool {
    (MIN_VERSION..=VERSION).contains(&v)
}
