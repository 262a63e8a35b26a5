//! The validated configuration. Only [`Config::from_raw`] builds one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::raw::RawConfig;
use crate::{ConfigError, KeySource, SecretSource, VERSION};

/// A configuration that passed validation. Sections are read through accessors.
#[derive(Clone, Debug)]
pub struct Config {
    version: u32,
    sensor: Sensor,
    capture: Capture,
    sightings: Sightings,
    identity: Identity,
    mqtt: Mqtt,
    spool: Spool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    Store,
    Billboard,
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Sensor {
    pub id: String,
    pub site: String,
    pub site_kind: SiteKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelPlan {
    Fixed(u16),
    Hop { channels: Vec<u16>, dwell: Duration },
}

/// What to do with the 802.11 frame check sequence when radiotap says one is present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FcsPolicy {
    /// Compute the CRC-32 and drop frames whose FCS does not match.
    Verify,
    /// Drop only frames flagged bad-FCS by the driver; strip the FCS unchecked.
    TrustFlag,
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Capture {
    pub interface: String,
    pub channel_plan: ChannelPlan,
    pub rssi_floor_dbm: i8,
    pub fcs_policy: FcsPolicy,
    pub snaplen_bytes: u32,
    pub buffer_bytes: u32,
    /// A file that exists while the system clock is synchronised; `None`: do not wait.
    pub clock_sync_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Sightings {
    pub gap_secs: u32,
    pub interim_secs: u32,
    pub max_devices: usize,
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Identity {
    /// The epoch keys file, or the tenant secret.
    pub keys: KeySource,
    pub epoch_days: u32,
    /// The last days of each epoch in which sightings also carry the next epoch's key (wire
    /// crate docs, "Epoch bridges"); 0: none.
    pub bridge_days: u32,
    pub opt_out_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MqttTls {
    pub ca_file: PathBuf,
    /// Client certificate and key, for mutual TLS.
    pub client_auth: Option<(PathBuf, PathBuf)>,
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Mqtt {
    pub host: String,
    pub port: u16,
    pub tls: Option<MqttTls>,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    pub keepalive: Duration,
    pub batch_max_sightings: usize,
    pub batch_max_age: Duration,
    pub max_inflight: u16,
    pub status_interval: Duration,
    /// How long an acknowledged batch is kept for a resend after a reconnect.
    pub keep_acked: Duration,
    /// How envelopes are encoded on the wire.
    pub encoding: wire::Encoding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    EveryBatch,
    Interval(Duration),
    Never,
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Spool {
    pub dir: PathBuf,
    pub max_bytes: u64,
    /// Batches the disk refuses wait in memory up to this many bytes.
    pub memory_max_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml_str(&text, base)
    }

    /// Parses and validates TOML text; relative paths resolve against `base_dir`.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        RawConfig::from_toml_str(text, base_dir)?.validate()
    }

    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn sensor(&self) -> &Sensor {
        &self.sensor
    }
    pub fn capture(&self) -> &Capture {
        &self.capture
    }
    pub fn sightings(&self) -> &Sightings {
        &self.sightings
    }
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
    pub fn mqtt(&self) -> &Mqtt {
        &self.mqtt
    }
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    pub(crate) fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        use ConfigError as E;
        if raw.version != VERSION {
            return Err(E::invalid(
                "version",
                raw.version,
                format!("this build reads version {VERSION}"),
            ));
        }
        let abs = |p: PathBuf| {
            if p.is_absolute() {
                p
            } else {
                raw.base_dir.join(p)
            }
        };

        let s = raw.sensor;
        wire::validate_id(&s.id).map_err(|e| E::invalid("sensor.id", &s.id, e.to_string()))?;
        wire::validate_id(&s.site)
            .map_err(|e| E::invalid("sensor.site", &s.site, e.to_string()))?;
        let site_kind = match s.site_kind.as_str() {
            "store" => SiteKind::Store,
            "billboard" => SiteKind::Billboard,
            other => {
                return Err(E::invalid(
                    "sensor.site_kind",
                    other,
                    "expected \"store\" or \"billboard\"",
                ))
            }
        };
        let sensor = Sensor {
            id: s.id,
            site: s.site,
            site_kind,
        };

        let c = raw.capture;
        if c.interface.is_empty() {
            return Err(E::invalid("capture.interface", &c.interface, "is empty"));
        }
        if c.channels.is_empty() {
            return Err(E::invalid("capture.channels", &c.channels, "is empty"));
        }
        if let Some(bad) = c.channels.iter().find(|ch| !valid_channel(**ch)) {
            return Err(E::invalid(
                "capture.channels",
                &c.channels,
                format!("{bad} is not a 2.4 GHz (1-14) or 5 GHz (32-177) channel"),
            ));
        }
        let channel_plan = match c.channel_plan.as_str() {
            "fixed" => ChannelPlan::Fixed(c.channels[0]),
            "hop" => {
                if !(20..=60_000).contains(&c.hop_dwell_ms) {
                    return Err(E::invalid(
                        "capture.hop_dwell_ms",
                        c.hop_dwell_ms,
                        "must be 20-60000",
                    ));
                }
                ChannelPlan::Hop {
                    channels: c.channels,
                    dwell: Duration::from_millis(c.hop_dwell_ms),
                }
            }
            other => {
                return Err(E::invalid(
                    "capture.channel_plan",
                    other,
                    "expected \"fixed\" or \"hop\"",
                ))
            }
        };
        if !(-128..=0).contains(&c.rssi_floor_dbm) {
            return Err(E::invalid(
                "capture.rssi_floor_dbm",
                c.rssi_floor_dbm,
                "must be a dBm value from -128 to 0",
            ));
        }
        let fcs_policy = match c.fcs_policy.as_str() {
            "verify" => FcsPolicy::Verify,
            "trust-flag" => FcsPolicy::TrustFlag,
            other => {
                return Err(E::invalid(
                    "capture.fcs_policy",
                    other,
                    "expected \"verify\" or \"trust-flag\"",
                ))
            }
        };
        if !(128..=65_535).contains(&c.snaplen_bytes) {
            return Err(E::invalid(
                "capture.snaplen_bytes",
                c.snaplen_bytes,
                "must be 128-65535",
            ));
        }
        let buffer_bytes = u32::try_from(c.buffer_bytes)
            .ok()
            .filter(|b| (65_536..=1 << 30).contains(b))
            .ok_or_else(|| {
                E::invalid(
                    "capture.buffer_bytes",
                    c.buffer_bytes,
                    "must be 64 KiB to 1 GiB",
                )
            })?;
        let clock_sync_file = match c.clock_sync_file.as_str() {
            "" => None,
            p if Path::new(p).is_absolute() => Some(PathBuf::from(p)),
            p => {
                return Err(E::invalid(
                    "capture.clock_sync_file",
                    p,
                    "must be an absolute path, or \"\" not to wait for a synchronised clock",
                ))
            }
        };
        let capture = Capture {
            interface: c.interface,
            channel_plan,
            rssi_floor_dbm: c.rssi_floor_dbm as i8,
            fcs_policy,
            snaplen_bytes: c.snaplen_bytes,
            buffer_bytes,
            clock_sync_file,
        };

        let g = raw.sightings;
        let gap_secs = u32::try_from(g.gap_secs)
            .ok()
            .filter(|g| (1..=86_400).contains(g))
            .ok_or_else(|| E::invalid("sightings.gap_secs", g.gap_secs, "must be 1-86400"))?;
        let interim_secs = u32::try_from(g.interim_secs)
            .ok()
            .filter(|i| (gap_secs..=86_400).contains(i))
            .ok_or_else(|| {
                E::invalid(
                    "sightings.interim_secs",
                    g.interim_secs,
                    format!("must be from gap_secs ({gap_secs}) to 86400"),
                )
            })?;
        if !(16..=10_000_000).contains(&g.max_devices) {
            return Err(E::invalid(
                "sightings.max_devices",
                g.max_devices,
                "must be 16-10000000",
            ));
        }
        let sightings = Sightings {
            gap_secs,
            interim_secs,
            max_devices: g.max_devices,
        };

        let i = raw.identity;
        let keys = match (i.keys_file, i.secret_file, i.secret_env) {
            (Some(k), None, None) => KeySource::EpochKeys(abs(k)),
            (None, Some(f), None) => KeySource::Tenant(SecretSource::File(abs(f))),
            (None, None, Some(v)) if !v.is_empty() => KeySource::Tenant(SecretSource::Env(v)),
            (None, None, Some(v)) => return Err(E::invalid("identity.secret_env", v, "is empty")),
            (None, None, None) => return Err(E::invalid(
                "identity.keys_file",
                "",
                "set identity.keys_file (or, in development, identity.secret_file or secret_env)",
            )),
            (k, _, _) => {
                let field = if k.is_some() {
                    "identity.keys_file"
                } else {
                    "identity.secret_file"
                };
                return Err(E::invalid(
                    field,
                    "",
                    "set one of identity.keys_file, identity.secret_file, identity.secret_env",
                ));
            }
        };
        if let Err(reason) = device_id::check_epoch_days(i.epoch_days) {
            return Err(E::invalid("identity.epoch_days", i.epoch_days, reason));
        }
        if i.bridge_days >= i.epoch_days {
            return Err(E::invalid(
                "identity.bridge_days",
                i.bridge_days,
                "must be less than identity.epoch_days (a key is never published an epoch ahead)",
            ));
        }
        let identity = Identity {
            keys,
            epoch_days: i.epoch_days,
            bridge_days: i.bridge_days,
            opt_out_file: i.opt_out_file.map(abs),
        };

        let m = raw.mqtt;
        let (host, port, tls) = mqtt_endpoint(
            &m.url,
            m.ca_file.map(abs),
            m.cert_file.map(abs),
            m.key_file.map(abs),
        )?;
        let password = match (m.password_file, m.password_env) {
            (None, None) => None,
            (Some(f), None) => Some(SecretSource::File(abs(f))),
            (None, Some(v)) => Some(SecretSource::Env(v)),
            (Some(f), Some(_)) => {
                return Err(E::invalid(
                    "mqtt.password_file",
                    f,
                    "set either mqtt.password_file or mqtt.password_env, not both",
                ))
            }
        };
        if password.is_some() && m.username.is_none() {
            return Err(E::invalid(
                "mqtt.username",
                "",
                "a password is configured without a username",
            ));
        }
        refuse_plaintext_credentials("mqtt.url", &host, tls.is_some(), password.is_some())?;
        let client_id = m
            .client_id
            .unwrap_or_else(|| format!("footfall-{}", sensor.id));
        if client_id.is_empty() || client_id.len() > 128 {
            return Err(E::invalid(
                "mqtt.client_id",
                client_id,
                "must be 1-128 characters",
            ));
        }
        let keepalive = secs_in("mqtt.keepalive_secs", m.keepalive_secs, 5, 3600)?;
        if !(1..=10_000).contains(&m.batch_max_sightings) {
            return Err(E::invalid(
                "mqtt.batch_max_sightings",
                m.batch_max_sightings,
                "must be 1-10000",
            ));
        }
        let batch_max_age = secs_in("mqtt.batch_max_age_secs", m.batch_max_age_secs, 1, 3600)?;
        if !(1..=1000).contains(&m.max_inflight) {
            return Err(E::invalid(
                "mqtt.max_inflight",
                m.max_inflight,
                "must be 1-1000",
            ));
        }
        let status_interval = secs_in(
            "mqtt.status_interval_secs",
            m.status_interval_secs,
            1,
            86_400,
        )?;
        let keep_acked = secs_in("mqtt.keep_acked_secs", m.keep_acked_secs, 0, 3600)?;
        let encoding = m
            .encoding
            .parse()
            .map_err(|reason: String| E::invalid("mqtt.encoding", &m.encoding, reason))?;
        let mqtt = Mqtt {
            host,
            port,
            tls,
            client_id,
            username: m.username,
            password,
            keepalive,
            batch_max_sightings: m.batch_max_sightings,
            batch_max_age,
            max_inflight: m.max_inflight,
            status_interval,
            keep_acked,
            encoding,
        };

        let p = raw.spool;
        if !(1 << 20..=1 << 40).contains(&p.max_bytes) {
            return Err(E::invalid(
                "spool.max_bytes",
                p.max_bytes,
                "must be 1 MiB to 1 TiB",
            ));
        }
        if !(64 << 10..=1 << 30).contains(&p.memory_max_bytes) {
            return Err(E::invalid(
                "spool.memory_max_bytes",
                p.memory_max_bytes,
                "must be 64 KiB to 1 GiB",
            ));
        }
        let fsync = match p.fsync.as_str() {
            "every-batch" => FsyncPolicy::EveryBatch,
            "never" => FsyncPolicy::Never,
            "interval" => {
                if !(10..=60_000).contains(&p.fsync_interval_ms) {
                    return Err(E::invalid(
                        "spool.fsync_interval_ms",
                        p.fsync_interval_ms,
                        "must be 10-60000",
                    ));
                }
                FsyncPolicy::Interval(Duration::from_millis(p.fsync_interval_ms))
            }
            other => {
                return Err(E::invalid(
                    "spool.fsync",
                    other,
                    "expected \"every-batch\", \"interval\" or \"never\"",
                ))
            }
        };
        let spool = Spool {
            dir: abs(p.dir),
            max_bytes: p.max_bytes,
            memory_max_bytes: p.memory_max_bytes,
            fsync,
        };

        Ok(Config {
            version: raw.version,
            sensor,
            capture,
            sightings,
            identity,
            mqtt,
            spool,
        })
    }
}

fn valid_channel(ch: u16) -> bool {
    (1..=14).contains(&ch) || (32..=177).contains(&ch)
}

fn secs_in(field: &'static str, v: u64, lo: u64, hi: u64) -> Result<Duration, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(Duration::from_secs(v))
    } else {
        Err(ConfigError::invalid(field, v, format!("must be {lo}-{hi}")))
    }
}

/// The broker of an `mqtt://` or `mqtts://` url and its TLS files (`mqtt.ca_file`,
/// `mqtt.cert_file`, `mqtt.key_file`): shared by the agent's and the collector's
/// configurations.
pub fn mqtt_endpoint(
    url: &str,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
) -> Result<(String, u16, Option<MqttTls>), ConfigError> {
    use ConfigError as E;
    let (tls_on, host, port) = parse_mqtt_url(url)?;
    let tls = match (tls_on, ca_file, cert_file, key_file) {
        (false, None, None, None) => None,
        (false, ..) => {
            return Err(E::invalid(
                "mqtt.url",
                url,
                "TLS files are set: use an mqtts:// url",
            ))
        }
        (true, None, ..) => {
            return Err(E::invalid(
                "mqtt.ca_file",
                "",
                "an mqtts:// url needs the broker's CA certificate",
            ))
        }
        (true, Some(ca), Some(cert), Some(key)) => Some(MqttTls {
            ca_file: ca,
            client_auth: Some((cert, key)),
        }),
        (true, Some(ca), None, None) => Some(MqttTls {
            ca_file: ca,
            client_auth: None,
        }),
        (true, Some(_), cert, _) => {
            let missing = if cert.is_some() {
                "mqtt.key_file"
            } else {
                "mqtt.cert_file"
            };
            return Err(E::invalid(
                missing,
                "",
                "mqtt.cert_file and mqtt.key_file go together",
            ));
        }
    };
    Ok((host, port, tls))
}

/// A password sent without TLS can be read on the way, except on the machine itself:
/// refused unless `host` is a loopback address. `field` names the URL in the error.
pub fn refuse_plaintext_credentials(
    field: &'static str,
    host: &str,
    tls: bool,
    password: bool,
) -> Result<(), ConfigError> {
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    if password && !tls && !loopback {
        return Err(ConfigError::invalid(
            field,
            host,
            "a password would cross the network in plain text: use TLS (or a loopback server)",
        ));
    }
    Ok(())
}

impl MqttTls {
    /// Reads the CA certificate and the client certificate and key, naming the field of a
    /// file that cannot be read.
    pub fn read(&self) -> Result<MqttTlsFiles, ConfigError> {
        let read = |field: &'static str, p: &Path| {
            std::fs::read(p).map_err(|e| ConfigError::Secret {
                field,
                reason: format!("cannot read {}: {e}", p.display()),
            })
        };
        let client_auth = match &self.client_auth {
            Some((cert, key)) => Some((read("mqtt.cert_file", cert)?, read("mqtt.key_file", key)?)),
            None => None,
        };
        Ok(MqttTlsFiles {
            ca: read("mqtt.ca_file", &self.ca_file)?,
            client_auth,
        })
    }
}

/// The TLS files' contents (PEM): the CA, and the client certificate and key.
pub struct MqttTlsFiles {
    pub ca: Vec<u8>,
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
}

fn parse_mqtt_url(url: &str) -> Result<(bool, String, u16), ConfigError> {
    let bad = |why: &str| ConfigError::invalid("mqtt.url", url, why);
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(bad("expected mqtt://host[:port] or mqtts://host[:port]"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (rest, None),
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(bad("the host is missing or contains a path"));
    }
    let port = match port {
        None => {
            if tls {
                8883
            } else {
                1883
            }
        }
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("the port must be 1-65535"))?,
    };
    Ok((tls, host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mqtt_urls() {
        let ok = |u: &str| parse_mqtt_url(u).expect(u);
        assert_eq!(ok("mqtt://broker"), (false, "broker".into(), 1883));
        assert_eq!(ok("mqtts://broker:9000"), (true, "broker".into(), 9000));
        assert_eq!(
            ok("mqtt://127.0.0.1:1884/"),
            (false, "127.0.0.1".into(), 1884)
        );
        assert_eq!(ok("mqtt://[::1]:1884"), (false, "::1".into(), 1884));
        for bad in [
            "tcp://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:x",
            "mqtt://h/p",
        ] {
            assert!(parse_mqtt_url(bad).is_err(), "{bad}");
        }
    }
}
