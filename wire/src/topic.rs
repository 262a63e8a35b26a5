//! Topic names of the contract and the id rules that keep them well-formed.

use thiserror::Error;

/// Prefix of every Footfall topic, with the contract version.
pub const PREFIX: &str = "footfall/v1";

/// `footfall/v1/{site}/{sensor}/sightings`
pub fn sightings(site: &str, sensor: &str) -> String {
    format!("{PREFIX}/{site}/{sensor}/sightings")
}

/// `footfall/v1/{site}/{sensor}/status`
pub fn status(site: &str, sensor: &str) -> String {
    format!("{PREFIX}/{site}/{sensor}/status")
}

/// What a topic names, when it is one of the contract's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    Sightings { site: &'a str, sensor: &'a str },
    Status { site: &'a str, sensor: &'a str },
}

/// Splits a contract topic into its parts; `None` for anything else.
pub fn parse(topic: &str) -> Option<Parsed<'_>> {
    let rest = topic.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (site, sensor, kind) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || validate_id(site).is_err() || validate_id(sensor).is_err() {
        return None;
    }
    match kind {
        "sightings" => Some(Parsed::Sightings { site, sensor }),
        "status" => Some(Parsed::Status { site, sensor }),
        _ => None,
    }
}

/// A site or sensor id that cannot be used in a topic.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{id:?} is not a valid id: use 1-64 characters of A-Z a-z 0-9 _ . -")]
pub struct InvalidId {
    pub id: String,
}

/// Checks that `id` is 1-64 characters of `[A-Za-z0-9_.-]`.
pub fn validate_id(id: &str) -> Result<(), InvalidId> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidId { id: id.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_topics() {
        let t = sightings("store-7", "s-01");
        assert_eq!(t, "footfall/v1/store-7/s-01/sightings");
        assert_eq!(
            parse(&t),
            Some(Parsed::Sightings {
                site: "store-7",
                sensor: "s-01"
            })
        );
        assert_eq!(
            parse(&status("b", "c")),
            Some(Parsed::Status {
                site: "b",
                sensor: "c"
            })
        );
    }

    #[test]
    fn rejects_foreign_and_malformed_topics() {
        for t in [
            "footfall/v2/a/b/sightings",
            "footfall/v1/a/b/c/sightings",
            "footfall/v1/a/b/other",
            "footfall/v1/a+/b/status",
            "footfall/v1//b/status",
        ] {
            assert_eq!(parse(t), None, "{t}");
        }
    }

    #[test]
    fn ids_cannot_carry_wildcards_or_levels() {
        for bad in ["", "a/b", "a+", "#", "x y", &"a".repeat(65)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        validate_id("store_7.a-1").expect("valid id");
    }
}
