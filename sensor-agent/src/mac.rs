//! The raw device address: the one value that must never leave this process.
//!
//! [`RawMac`] is private to the crate and implements neither `Debug`, `Display` nor
//! `Serialize`, so it cannot reach a log line, a file or a message by accident; the only
//! thing done with it is [`crate::identity::Hasher::key`], which turns it into a keyed hash.

/// A 48-bit 802.11 address as captured.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RawMac([u8; 6]);

impl RawMac {
    pub(crate) fn from_slice(b: &[u8]) -> Option<RawMac> {
        Some(RawMac(b.get(..6)?.try_into().ok()?))
    }

    /// Locally administered (U/L bit set): randomized or private.
    pub(crate) fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    pub(crate) fn octets(&self) -> &[u8; 6] {
        &self.0
    }
}
