use std::path::PathBuf;

use thiserror::Error;

/// Why a configuration was refused. Every variant names the field; the process should
/// print the error and exit with EX_CONFIG (78).
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read: check the path and permissions.
    #[error("failed to read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for the schema (unknown field, wrong type): fix the file.
    #[error("invalid config: {message}")]
    Parse { message: String },
    /// A field has a value outside its domain: fix the named field.
    #[error("invalid config: {field} = {value}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// A referenced secret could not be loaded: fix the file, its mode, or the variable.
    #[error("invalid config: {field}: {reason}")]
    Secret { field: &'static str, reason: String },
}

impl ConfigError {
    /// A field with a value outside its domain.
    pub fn invalid(
        field: &'static str,
        value: impl std::fmt::Debug,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            field,
            value: format!("{value:?}"),
            reason: reason.into(),
        }
    }
}
