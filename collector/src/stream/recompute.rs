//! Visits after an outage longer than the horizon. A sighting that ends behind the stage's
//! floor (watermark - `horizon_hours`) is too late for the state the stage holds: it is in
//! the sightings table, and once such sightings stop coming for a while the writer has its
//! site's sightings from [`PAD_MS`] before them on, and the visits written there, read back
//! into the dataflow marked `reopened` ([`crate::visits::Seen::reopened`]): merged whatever
//! the floor, so the stays around them are rebuilt whole, joined with the stays the stage
//! still holds, written again, and the visits they supersede retracted.
//!
//! A stay that may begin before the range read (a sighting within a gap of its start) is
//! rebuilt but not written: a stay longer than [`PAD_MS`] that a too-late sighting extends
//! keeps its old row. A recompute still waiting when the collector stops is not done (the
//! sightings are counted in `footfall_visits_too_late`).

use std::collections::HashMap;
use std::sync::Arc;

use tracing::info;

use super::recover::{read_back, Scope};
use super::{Feed, StageError};

/// How far around the too-late sightings a recompute reads.
pub(super) const PAD_MS: i64 = 6 * 3_600_000;

/// Sites with too-late sightings, and the event time they span: (first, last).
#[derive(Default)]
pub(super) struct Late(HashMap<Arc<str>, (i64, i64)>);

impl Late {
    pub(super) fn add(&mut self, site: &Arc<str>, first_ms: i64, last_ms: i64) {
        let span = self.0.entry(site.clone()).or_insert((first_ms, last_ms));
        *span = (span.0.min(first_ms), span.1.max(last_ms));
    }

    pub(super) fn merge(&mut self, other: Late) {
        for (site, (first, last)) in other.0 {
            self.add(&site, first, last);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn take(&mut self) -> Vec<(Arc<str>, (i64, i64))> {
        self.0.drain().collect()
    }
}

/// Reads `site`'s sightings from [`PAD_MS`] before `span` on, and its visits written there,
/// back into the dataflow through `feed`, marked reopened. Returns the sightings read.
pub(super) async fn reopen(
    db: &clickhouse::Client,
    gap_ms: i64,
    site: &str,
    span: (i64, i64),
    feed: &Feed,
) -> Result<u64, StageError> {
    let from_ms = span.0 - PAD_MS;
    let scope = Scope {
        site: Some(site),
        from_ms,
        taint_below: from_ms + gap_ms,
    };
    let n = read_back(db, &scope, |mut batch| {
        for s in &mut batch {
            s.reopened = true;
        }
        feed.push(batch)
    })
    .await?;
    info!(
        site = %site,
        sightings = n,
        "visits recomputed around sightings that came after the horizon"
    );
    Ok(n)
}
