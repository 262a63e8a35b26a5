//! Epoch keys distributed to sensors instead of the tenant secret (`footfall-fleet keys`).
//!
//! A sensor that holds the tenant secret can derive every past and future epoch's key: one
//! stolen sensor would let its thief hash any address for any date, and so recognise a phone
//! in every table. A sensor that holds only the current and next epochs' keys can do that for
//! those two epochs only; the keys of the next rotation are sent before the current epoch
//! ends. The device keys are the same either way ([`epoch_key`] is the derivation).
//!
//! The file is text, secret, mode 0600:
//!
//! ```text
//! # comments
//! epoch_days 45
//! 429 3f0c...(64 hex digits)
//! 430 91d2...
//! ```

use std::collections::BTreeMap;
use std::fmt;

use crate::{epoch_key, Epochs};

/// Epoch keys for some epochs of one tenant calendar.
#[derive(Clone, PartialEq, Eq)]
pub struct EpochKeys {
    epoch_days: u32,
    keys: BTreeMap<u32, [u8; 32]>,
}

impl fmt::Debug for EpochKeys {
    /// The epochs held, never a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKeys")
            .field("epoch_days", &self.epoch_days)
            .field("epochs", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EpochKeys {
    /// The keys of the epoch containing `at_ms` and of the `ahead` epochs after it, derived
    /// from the tenant `secret` on a calendar of `epoch_days`.
    pub fn derive(secret: &[u8], epoch_days: u32, at_ms: i64, ahead: u32) -> EpochKeys {
        let first = Epochs::new(epoch_days, 0).epoch_of(at_ms);
        let keys = (first..=first.saturating_add(ahead))
            .map(|e| (e, epoch_key(secret, e)))
            .collect();
        EpochKeys { epoch_days, keys }
    }

    /// Reads the file format above; the error names the line.
    pub fn parse(text: &str) -> Result<EpochKeys, String> {
        let mut epoch_days = None;
        let mut keys = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}", n + 1);
            let (a, b) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected two fields"))?;
            let b = b.trim();
            if a == "epoch_days" {
                let d: u32 = b.parse().map_err(|_| bad("epoch_days is not a number"))?;
                crate::check_epoch_days(d).map_err(|e| bad(&format!("epoch_days {e}")))?;
                epoch_days = Some(d);
                continue;
            }
            let epoch: u32 = a.parse().map_err(|_| bad("the epoch is not a number"))?;
            let key = unhex(b).ok_or_else(|| bad("the key is not 64 hex digits"))?;
            if keys.insert(epoch, key).is_some() {
                return Err(bad("the epoch is listed twice"));
            }
        }
        let epoch_days = epoch_days.ok_or("no epoch_days line")?;
        if keys.is_empty() {
            return Err("no keys".into());
        }
        Ok(EpochKeys { epoch_days, keys })
    }

    /// The file's text (secret: write it mode 0600).
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "# Footfall epoch keys (footfall-fleet keys). Secret: mode 0600, never logged.\n\
             epoch_days {}\n",
            self.epoch_days
        );
        for (e, k) in &self.keys {
            s.push_str(&format!("{e} "));
            for b in k {
                s.push_str(&format!("{b:02x}"));
            }
            s.push('\n');
        }
        s
    }

    /// The calendar the keys belong to.
    pub fn epoch_days(&self) -> u32 {
        self.epoch_days
    }

    /// The key of `epoch`, if held.
    pub fn get(&self, epoch: u32) -> Option<&[u8; 32]> {
        self.keys.get(&epoch)
    }

    /// The epochs held, in order.
    pub fn epochs(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn derived_keys_are_the_tenant_derivation_and_survive_the_file() {
        let k = EpochKeys::derive(b"tenant-secret-0123456789", 45, 429 * 45 * DAY + 5, 1);
        assert_eq!(k.epochs().collect::<Vec<_>>(), [429, 430]);
        assert_eq!(
            k.get(430),
            Some(&epoch_key(b"tenant-secret-0123456789", 430))
        );
        assert_eq!(k.get(431), None);
        assert_eq!(EpochKeys::parse(&k.to_text()), Ok(k.clone()));
        assert_eq!(
            format!("{k:?}"),
            "EpochKeys { epoch_days: 45, epochs: [429, 430] }"
        );
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line() {
        let key = "ab".repeat(32);
        for (text, why) in [
            (
                format!("epoch_days 45\n7 {}\n", &key[2..]),
                "line 2: the key is not 64 hex",
            ),
            (
                format!("epoch_days 45\nx {key}\n"),
                "line 2: the epoch is not a number",
            ),
            (
                format!("epoch_days 45\n7 {key}\n7 {key}\n"),
                "line 3: the epoch is listed twice",
            ),
            (format!("7 {key}\n"), "no epoch_days"),
            ("epoch_days 45\n".to_owned(), "no keys"),
            (
                format!("epoch_days 0\n7 {key}\n"),
                "line 1: epoch_days must be 1-366",
            ),
        ] {
            let e = EpochKeys::parse(&text).expect_err(&text);
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
