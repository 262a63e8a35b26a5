//! Opt-out lists: the device keys of people who asked not to be counted. Sensors drop their
//! frames (`identity.opt_out_file`, reloaded on SIGHUP); the collector purges their rows
//! (`footfall-collector purge`). Device keys change every epoch, so a list names the keys of
//! the epochs it covers (`footfall-fleet opt-out` derives them).

use std::collections::HashSet;
use std::path::Path;

use wire::DeviceKey;

use crate::ConfigError;

/// Reads an opt-out list: one 16-hex-digit device key per line, `#` comments. `field`: the
/// setting or argument that named the file, for the errors (which name the line).
pub fn read_opt_out(path: &Path, field: &'static str) -> Result<HashSet<DeviceKey>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Secret {
        field,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    let mut keys = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let key = line
            .parse::<DeviceKey>()
            .map_err(|e| ConfigError::Invalid {
                field,
                value: format!("{}:{}", path.display(), i + 1),
                reason: e,
            })?;
        keys.insert(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_comments_are_read_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("opt-out");
        std::fs::write(
            &path,
            "# epoch 455\n00000000000000ff  # a phone\n\n0123456789abcdef\n",
        )
        .expect("write");
        let keys = read_opt_out(&path, "x").expect("a list");
        assert_eq!(keys.len(), 2);
        assert!(keys.contains(&"00000000000000ff".parse().expect("key")));
        std::fs::write(&path, "00000000000000ff\nnot-a-key\n").expect("write");
        let e = read_opt_out(&path, "identity.opt_out_file").expect_err("a bad line");
        let msg = e.to_string();
        assert!(
            msg.contains("identity.opt_out_file") && msg.contains("opt-out:2"),
            "{msg}"
        );
    }
}
