//! Enrolment: what a sensor or a collector needs to join the fleet, and the broker's record
//! of what it may do.

use std::path::Path;

use anyhow::{bail, Context};
use device_id::EpochKeys;
use firmware_config::{Config, KeySource, SiteKind};

use crate::dynsec;
use crate::pki::{self, Use};

/// A sensor's MQTT identity: the certificate's common name, which the broker takes as its
/// username and client id (`use_identity_as_username`, `use_username_as_clientid`), and the
/// name of its role in the broker's access rules.
pub fn sensor_identity(site: &str, sensor: &str) -> anyhow::Result<String> {
    wire::validate_id(site).context("the site")?;
    wire::validate_id(sensor).context("the sensor")?;
    Ok(format!("{site}/{sensor}"))
}

/// A collector's MQTT identity. It has no `/`, so the sensors' write pattern gives it no
/// topic any collector subscribes to.
pub fn collector_identity(name: &str) -> anyhow::Result<String> {
    wire::validate_id(name).context("the collector's name")?;
    Ok(format!("collector-{name}"))
}

/// What `footfall-fleet sensor` writes.
pub struct SensorEnrolment<'a> {
    pub site: &'a str,
    pub sensor: &'a str,
    pub site_kind: SiteKind,
    /// `mqtts://host:port` of the fleet's broker.
    pub broker: &'a str,
    pub keys: &'a EpochKeys,
    pub bridge_days: u32,
    pub days: u32,
    /// The broker's access rules ([`crate::dynsec`]), where the sensor gets its role.
    pub access: &'a Path,
}

/// Writes a sensor's bundle into `out` (to install as /etc/footfall): its client
/// certificate and key, the fleet CA, its epoch keys and an `agent.toml` that names them by
/// relative path. The configuration is validated (and its keys loaded) before this returns.
pub fn sensor(ca_dir: &Path, out: &Path, e: &SensorEnrolment<'_>) -> anyhow::Result<()> {
    let identity = sensor_identity(e.site, e.sensor)?;
    if !e.broker.starts_with("mqtts://") {
        bail!(
            "--broker {}: a fleet broker is reached over TLS (mqtts://host:port)",
            e.broker
        );
    }
    if out.join("sensor.key").exists() {
        bail!("{} already holds a sensor's identity", out.display());
    }
    pki::issue(ca_dir, out, "sensor", &identity, Use::Client, e.days)?;
    dynsec::add_sensor(e.access, &identity)?;
    let keys = out.join("epoch.keys");
    pki::write_private(&keys, e.keys.to_text().as_bytes())?;
    let kind = match e.site_kind {
        SiteKind::Store => "store",
        SiteKind::Billboard => "billboard",
    };
    let text = format!(
        "# Written by footfall-fleet sensor for {identity}; the files it names sit beside it.\n\
         version = 1\n\n[sensor]\nid = \"{sensor}\"\nsite = \"{site}\"\nsite_kind = \"{kind}\"\n\n\
         [identity]\n# The current and next epochs' keys, not the tenant secret: replace the file \
         before the\n# next epoch begins (footfall-fleet keys), then systemctl reload-or-restart.\n\
         keys_file = \"epoch.keys\"\nepoch_days = {epoch_days}\nbridge_days = {bridge}\n\n\
         [mqtt]\nurl = \"{broker}\"\nca_file = \"ca.crt\"\ncert_file = \"sensor.crt\"\n\
         key_file = \"sensor.key\"\n",
        sensor = e.sensor,
        site = e.site,
        epoch_days = e.keys.epoch_days(),
        bridge = e.bridge_days,
        broker = e.broker,
    );
    let config = Config::from_toml_str(&text, out).context("the sensor's configuration")?;
    config
        .identity()
        .keys
        .load(config.identity().epoch_days)
        .context("the sensor's epoch keys")?;
    debug_assert!(matches!(config.identity().keys, KeySource::EpochKeys(_)));
    pki::write_private(&out.join("agent.toml"), text.as_bytes())
}

/// Issues a collector's client certificate into `out` and gives it the collectors' role in
/// the broker's access rules `access`. Refuses a collector whose files are in `out`.
pub fn collector(
    ca_dir: &Path,
    out: &Path,
    name: &str,
    access: &Path,
    days: u32,
) -> anyhow::Result<()> {
    let identity = collector_identity(name)?;
    if out.join("collector.key").exists() {
        bail!("{identity} is already enrolled ({})", out.display());
    }
    pki::issue(ca_dir, out, "collector", &identity, Use::Client, days)?;
    dynsec::add_collector(access, &identity)
}
