//! Typed sensor configuration, validated before anything runs.
//!
//! A configuration file is TOML with `version = 1`, layered over the embedded
//! [`DEFAULTS`]. It is read as a [`RawConfig`] (serde, unknown fields rejected), then
//! [`RawConfig::validate`] turns it into a [`Config`], whose fields can only be read: an
//! invalid configuration cannot exist past start-up. Every [`ConfigError`] names the field
//! and the offending value.
//!
//! Secrets ([`Secret`]) are referenced by the configuration (a 0600 file or an environment
//! variable) and loaded by [`SecretSource::load`]; they never appear in `Debug` output.

mod error;
mod keys;
mod opt_out;
mod raw;
mod secret;
mod validated;

pub use error::ConfigError;
pub use keys::{KeySource, Keys, MIN_SECRET_BYTES};
pub use opt_out::read_opt_out;
pub use raw::{merge as merge_toml, over_defaults, read_file, RawConfig};
pub use secret::{secret, Secret, SecretSource};
pub use validated::{
    mqtt_endpoint, refuse_plaintext_credentials, Capture, ChannelPlan, Config, FcsPolicy,
    FsyncPolicy, Identity, Mqtt, MqttTls, MqttTlsFiles, Sensor, Sightings, SiteKind, Spool,
};

/// The default configuration, every field with its default and a comment.
pub const DEFAULTS: &str = include_str!("defaults.toml");

/// The configuration file version this build understands.
pub const VERSION: u32 = 1;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn defaults_validate() {
        let cfg = Config::from_toml_str("", Path::new("/")).expect("defaults are valid");
        assert_eq!(cfg.sensor().id, "sensor-01");
        assert_eq!(cfg.sightings().gap_secs, 60);
        assert_eq!(cfg.identity().epoch_days, 45);
        assert_eq!(cfg.identity().bridge_days, 30);
        assert!(matches!(cfg.capture().fcs_policy, FcsPolicy::Verify));
    }

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let cfg = Config::from_toml_str(
            "version = 1\n[sensor]\nid = \"b-9\"\nsite_kind = \"billboard\"\n",
            Path::new("/"),
        )
        .expect("valid");
        assert_eq!(cfg.sensor().id, "b-9");
        assert_eq!(cfg.sensor().site, "store-001");
        assert_eq!(cfg.sensor().site_kind, SiteKind::Billboard);
    }

    fn invalid(toml: &str) -> String {
        Config::from_toml_str(toml, Path::new("/"))
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn errors_name_the_field_and_value() {
        let cases = [
            ("version = 2", "version"),
            ("[sensor]\nid = \"a/b\"", "sensor.id"),
            ("[sensor]\nsite_kind = \"mall\"", "site_kind"),
            ("[capture]\nchannels = [1, 200]", "capture.channels"),
            ("[capture]\nchannels = []", "capture.channels"),
            ("[capture]\nrssi_floor_dbm = 20", "capture.rssi_floor_dbm"),
            ("[capture]\nhop_dwell_ms = 0", "capture.hop_dwell_ms"),
            ("[sightings]\ngap_secs = 0", "sightings.gap_secs"),
            ("[sightings]\ninterim_secs = 10", "sightings.interim_secs"),
            ("[identity]\nepoch_days = 0", "identity.epoch_days"),
            ("[identity]\nepoch_days = 7", "identity.bridge_days"),
            (
                "[identity]\nkeys_file = \"/e\"\nsecret_file = \"/k\"",
                "identity.keys_file",
            ),
            (
                "[identity]\nsecret_env = \"X\"\nsecret_file = \"/k\"",
                "identity.secret_file",
            ),
            ("[mqtt]\nurl = \"http://x\"", "mqtt.url"),
            ("[mqtt]\nurl = \"mqtt://host:99999\"", "mqtt.url"),
            (
                "[mqtt]\nbatch_max_sightings = 0",
                "mqtt.batch_max_sightings",
            ),
            ("[mqtt]\ncert_file = \"/c.pem\"", "use an mqtts:// url"),
            (
                "[mqtt]\nurl = \"mqtts://b\"\nca_file = \"/ca\"\ncert_file = \"/c\"",
                "mqtt.key_file",
            ),
            ("[mqtt]\nurl = \"mqtts://b\"", "mqtt.ca_file"),
            ("[spool]\nmax_bytes = 10", "spool.max_bytes"),
            ("[spool]\nmemory_max_bytes = 10", "spool.memory_max_bytes"),
            ("[mqtt]\nkeep_acked_secs = 86400", "mqtt.keep_acked_secs"),
            ("[mqtt]\nencoding = \"cbor\"", "mqtt.encoding"),
            ("[spool]\nfsync = \"sometimes\"", "fsync"),
            ("[sensor]\ncolour = \"red\"", "colour"),
        ];
        for (toml, field) in cases {
            let msg = invalid(toml);
            assert!(msg.contains(field), "{toml:?} gave {msg:?}, wanted {field}");
        }
    }

    #[test]
    fn the_value_is_quoted_in_the_error() {
        let msg = invalid("[capture]\nrssi_floor_dbm = 20");
        assert!(msg.contains("20"), "{msg}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let cfg = Config::from_toml_str("[spool]\ndir = \"spool\"", Path::new("/etc/footfall"))
            .expect("valid");
        assert_eq!(cfg.spool().dir, Path::new("/etc/footfall/spool"));
    }
}
