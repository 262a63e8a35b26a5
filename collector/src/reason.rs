//! Why a message was refused: the `rejected` table's `reason` column and the label of
//! `footfall_rejected_total`.

/// Why a message was refused; the `rejected` table's `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    PayloadTooLarge,
    BadTopic,
    MalformedJson,
    MalformedBinary,
    UnsupportedVersion,
    SchemaMismatch,
    TopicMismatch,
    UnknownSensor,
    SiteMismatch,
    ClockSkew,
    InvalidSighting,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::PayloadTooLarge,
        Reason::BadTopic,
        Reason::MalformedJson,
        Reason::MalformedBinary,
        Reason::UnsupportedVersion,
        Reason::SchemaMismatch,
        Reason::TopicMismatch,
        Reason::UnknownSensor,
        Reason::SiteMismatch,
        Reason::ClockSkew,
        Reason::InvalidSighting,
    ];

    /// Refused for a reason the operator can fix (the inventory, the clock bounds, the
    /// collector's version): the whole message is held in the quarantine for `requeue`.
    pub fn held(self) -> bool {
        matches!(
            self,
            Reason::UnknownSensor
                | Reason::SiteMismatch
                | Reason::ClockSkew
                | Reason::UnsupportedVersion
        )
    }

    /// The reason named `name` (as the `rejected` table writes it).
    pub fn parse(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PayloadTooLarge => "payload_too_large",
            Reason::BadTopic => "bad_topic",
            Reason::MalformedJson => "malformed_json",
            Reason::MalformedBinary => "malformed_binary",
            Reason::UnsupportedVersion => "unsupported_version",
            Reason::SchemaMismatch => "schema_mismatch",
            Reason::TopicMismatch => "topic_mismatch",
            Reason::UnknownSensor => "unknown_sensor",
            Reason::SiteMismatch => "site_mismatch",
            Reason::ClockSkew => "clock_skew",
            Reason::InvalidSighting => "invalid_sighting",
        }
    }
}
