//! Secrets referenced by the configuration: the tenant key and the MQTT password.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::ConfigError;

/// Where a secret comes from. Loading is separate from validation so that a configuration
/// can be checked on a machine that does not hold the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A file readable by its owner only (mode 0600 or stricter).
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// Secret bytes. `Debug` shows only the length; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Secret {
    /// The secret bytes, for key derivation.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Builds a secret from bytes (tests, provisioning tools).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }
}

impl SecretSource {
    /// Reads the secret, trimming one trailing newline. `field` names the configuration field
    /// in errors. Refuses group/world-readable files and secrets shorter than `min_len` bytes.
    pub fn load(&self, field: &'static str, min_len: usize) -> Result<Secret, ConfigError> {
        let err = |reason: String| ConfigError::Secret { field, reason };
        let mut bytes = match self {
            SecretSource::File(path) => {
                let meta = std::fs::metadata(path)
                    .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(err(format!(
                        "{} has mode {mode:04o}; it must be readable by its owner only \
                         (chmod 600 {})",
                        path.display(),
                        path.display()
                    )));
                }
                std::fs::read(path)
                    .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?
            }
            SecretSource::Env(var) => std::env::var_os(var)
                .ok_or_else(|| err(format!("environment variable {var} is not set")))?
                .into_encoded_bytes(),
        };
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.len() < min_len {
            return Err(err(format!(
                "the secret is {} bytes; at least {min_len} are required",
                bytes.len()
            )));
        }
        Ok(Secret(bytes))
    }
}

/// A secret that a configuration names by file or by environment variable (one of the two,
/// or neither): `fields` are the two fields' names, for the error.
pub fn secret(
    file: Option<PathBuf>,
    env: Option<String>,
    fields: (&'static str, &'static str),
) -> Result<Option<Secret>, ConfigError> {
    match (file, env) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            fields.0,
            "",
            format!("set {} or {}, not both", fields.0, fields.1),
        )),
        (Some(f), None) => Ok(Some(SecretSource::File(f).load(fields.0, 1)?)),
        (None, Some(v)) => Ok(Some(SecretSource::Env(v).load(fields.1, 1)?)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_world_readable_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        std::fs::write(&path, "0123456789abcdef0123\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let msg = SecretSource::File(path.clone())
            .load("identity.secret_file", 16)
            .expect_err("0644 is refused")
            .to_string();
        assert!(
            msg.contains("identity.secret_file") && msg.contains("0644"),
            "{msg}"
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let s = SecretSource::File(path)
            .load("identity.secret_file", 16)
            .expect("0600 is fine");
        assert_eq!(s.expose(), b"0123456789abcdef0123");
        assert_eq!(format!("{s:?}"), "Secret(20 bytes)");
    }

    #[test]
    fn refuses_a_short_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        std::fs::write(&path, "short").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let msg = SecretSource::File(path)
            .load("identity.secret_file", 16)
            .expect_err("too short")
            .to_string();
        assert!(msg.contains("at least 16"), "{msg}");
    }
}
