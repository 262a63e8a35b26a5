//! The keys a sensor hashes addresses with: epoch keys distributed by `footfall-fleet keys`
//! (production), or the tenant secret they derive from (development, the simulator, replay).

use std::path::PathBuf;

use device_id::{epoch_key, EpochKeys};

use crate::{ConfigError, Secret, SecretSource};

/// Minimum tenant secret length: 128 bits.
pub const MIN_SECRET_BYTES: usize = 16;

/// Where the keys come from (`[identity]`): exactly one of `keys_file`, `secret_file`,
/// `secret_env`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The tenant secret: every epoch's key derives from it.
    Tenant(SecretSource),
    /// A file of epoch keys (mode 0600): only the epochs it lists can be hashed.
    EpochKeys(PathBuf),
}

/// Loaded keys. `Debug` never shows a key.
#[derive(Clone, Debug)]
pub enum Keys {
    Tenant(Secret),
    Epochs(EpochKeys),
}

impl KeySource {
    /// Reads the keys; an epoch keys file must be for a calendar of `epoch_days`.
    pub fn load(&self, epoch_days: u32) -> Result<Keys, ConfigError> {
        match self {
            KeySource::Tenant(src) => {
                let field = match src {
                    SecretSource::File(_) => "identity.secret_file",
                    SecretSource::Env(_) => "identity.secret_env",
                };
                Ok(Keys::Tenant(src.load(field, MIN_SECRET_BYTES)?))
            }
            KeySource::EpochKeys(path) => {
                const FIELD: &str = "identity.keys_file";
                let bytes = SecretSource::File(path.clone()).load(FIELD, 1)?;
                let err = |reason: String| ConfigError::Secret {
                    field: FIELD,
                    reason: format!("{}: {reason}", path.display()),
                };
                let text =
                    std::str::from_utf8(bytes.expose()).map_err(|_| err("not text".into()))?;
                let keys = EpochKeys::parse(text).map_err(err)?;
                if keys.epoch_days() != epoch_days {
                    return Err(err(format!(
                        "the keys are for epochs of {} days, identity.epoch_days is {epoch_days}",
                        keys.epoch_days()
                    )));
                }
                Ok(Keys::Epochs(keys))
            }
        }
    }
}

impl Keys {
    /// The key of `epoch`: derived from the tenant secret, or looked up (`None` when the
    /// file does not hold it: that epoch's addresses cannot be hashed).
    pub fn epoch_key(&self, epoch: u32) -> Option<[u8; 32]> {
        match self {
            Keys::Tenant(s) => Some(epoch_key(s.expose(), epoch)),
            Keys::Epochs(k) => k.get(epoch).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn an_epoch_keys_file_for_another_calendar_or_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("epoch.keys");
        let keys = EpochKeys::derive(b"tenant-secret-0123456789", 30, 1_700_000_000_000, 1);
        std::fs::write(&path, keys.to_text()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let src = KeySource::EpochKeys(path.clone());
        let loaded = src.load(30).expect("the calendar it was made for");
        assert_eq!(loaded.epoch_key(655), keys.get(655).copied());
        assert_eq!(loaded.epoch_key(654), None, "an epoch it does not hold");
        let e = src.load(45).expect_err("another calendar").to_string();
        assert!(
            e.contains("identity.keys_file") && e.contains("30 days"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = src.load(30).expect_err("group-readable").to_string();
        assert!(
            e.contains("identity.keys_file") && e.contains("0640"),
            "{e}"
        );
    }
}
