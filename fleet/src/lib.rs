//! Provisioning a Footfall fleet (`footfall-fleet`; README, "Deploying a fleet").
//!
//! - [`pki`]: the fleet CA and its certificates (openssl).
//! - [`enrol`]: a sensor's bundle (client certificate, epoch keys, `agent.toml`) and a
//!   collector's certificate and broker ACL entry. Identities are certificates' common
//!   names: `<site>/<sensor>` for a sensor, `collector-<name>` for a collector; the broker
//!   (`deploy/mosquitto/`) takes them as usernames and client ids, and its ACL lets a sensor
//!   write its own two topics and read nothing, and a collector read and write nothing.
//! - Epoch keys: [`device_id::EpochKeys`], derived from the tenant secret on the machine
//!   that holds it, never on a sensor.

pub mod enrol;
pub mod opt_out;
pub mod pki;
