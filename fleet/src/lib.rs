//! Provisioning a Footfall fleet (`footfall-fleet`; README, "Deploying a fleet").
//!
//! - [`pki`]: the fleet CA and its certificates (openssl).
//! - [`enrol`]: a sensor's bundle (client certificate, epoch keys, `agent.toml`) and a
//!   collector's certificate, each with its entry in the broker's access rules. Identities
//!   are certificates' common names: `<site>/<sensor>` for a sensor, `collector-<name>` for a
//!   collector; the broker (`deploy/mosquitto/`) takes them as usernames and client ids.
//! - [`dynsec`]: the broker's access rules (Mosquitto's dynamic security plugin): a sensor
//!   writes its own two topics and reads nothing, a collector reads and writes nothing else.
//! - Epoch keys: [`device_id::EpochKeys`], derived from the tenant secret on the machine
//!   that holds it, never on a sensor.

pub mod dynsec;
pub mod enrol;
pub mod opt_out;
pub mod pki;
