//! Visits after an outage longer than the horizon. A sighting that ends behind the stage's
//! floor (watermark - `horizon_hours`) is too late for the state the stage holds: it is in
//! the sightings table, and once such sightings stop coming for a while the writer has its
//! site's sightings around them ([`PAD_MS`] before and after), and the visits written there,
//! read back into the dataflow marked `reopened` ([`crate::visits::Seen::reopened`]): merged
//! whatever the floor, so the stays around them are rebuilt whole, joined with the stays the
//! stage still holds, written again, and the visits they supersede retracted.
//!
//! Memory stays bounded by one site's sightings over one span of late ones, whatever the
//! outage: one recompute runs at a time, site by site, and span by span (late sightings
//! apart by more than two pads are recomputed apart, their ranges apart); each is fed in
//! one batch, at one time of the stage's input, the input then steps on within its bucket,
//! and the stays the batch rebuilt behind the floor are forgotten once they are written and
//! the frontier is past its time; one process alone waits for that before the next batch.
//! (Read from each site's earliest late sighting on to its newest sighting, and held for
//! the horizon after, the recomputes after a broker outage held 23.7 M stays of a city's
//! month, and the collector was killed for memory: benches/README.md, run 16b. Released
//! only when the watermark moved, they held 4.7 M when ingest had stopped and the
//! watermark moved with the clock: run 17.) A span is not cut in
//! pieces: pieces overlap, and the records one reads at its edge (tainted) would keep the
//! stays another rebuilt from being written.
//!
//! A stay that may reach past the range read (a sighting within a gap of either end) is
//! rebuilt but not written: a stay longer than [`PAD_MS`] that a too-late sighting extends
//! keeps its old row. A recompute still waiting when the collector stops is done at the
//! next start: the late sightings keep the checkpoint unsettled until then
//! ([`super::settle`]).

use std::collections::HashMap;
use std::sync::Arc;

use tracing::info;

use super::recover::{read_back, Scope};
use super::{Feed, StageError};
use crate::visits::Seen;

/// How far around the too-late sightings a recompute reads.
pub(super) const PAD_MS: i64 = 6 * 3_600_000;

/// A span of too-late sightings at a site: their event time, and the earliest time the
/// collector received one of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Span {
    pub(super) first_ms: i64,
    pub(super) last_ms: i64,
    pub(super) received_ms: i64,
}

/// Sites with too-late sightings: per site, disjoint spans, apart by more than two pads.
#[derive(Default)]
pub(super) struct Late(HashMap<Arc<str>, Vec<Span>>);

impl Late {
    pub(super) fn add(&mut self, site: &Arc<str>, span: Span) {
        let spans = self.0.entry(site.clone()).or_default();
        let mut span = Span {
            last_ms: span.last_ms.max(span.first_ms),
            ..span
        };
        if let Some(within) = spans
            .iter_mut()
            .find(|o| o.first_ms <= span.first_ms && span.last_ms <= o.last_ms)
        {
            within.received_ms = within.received_ms.min(span.received_ms);
            return;
        }
        // The spans within two pads of this one join it. (One pass is enough: the spans
        // are apart by more than that, so one the union reaches, this one reaches.)
        spans.retain(|o| {
            let near =
                o.first_ms <= span.last_ms + 2 * PAD_MS && span.first_ms <= o.last_ms + 2 * PAD_MS;
            if near {
                span = Span {
                    first_ms: span.first_ms.min(o.first_ms),
                    last_ms: span.last_ms.max(o.last_ms),
                    received_ms: span.received_ms.min(o.received_ms),
                };
            }
            !near
        });
        spans.push(span);
    }

    pub(super) fn merge(&mut self, other: Late) {
        for (site, spans) in other.0 {
            for span in spans {
                self.add(&site, span);
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The earliest time a sighting waiting for its recompute was received.
    pub(super) fn received_ms(&self) -> Option<i64> {
        self.0.values().flatten().map(|s| s.received_ms).min()
    }

    /// The recomputes to run: each site's spans.
    pub(super) fn take(&mut self) -> Vec<(Arc<str>, Span)> {
        self.0
            .drain()
            .flat_map(|(site, spans)| spans.into_iter().map(move |span| (site.clone(), span)))
            .collect()
    }
}

/// Reads `site`'s sightings from [`PAD_MS`] before `span` to [`PAD_MS`] after it, and its
/// visits written there, back into the dataflow through `feed`, marked reopened, in one
/// batch (unsettled, as the span's sightings, until the stage has taken it). When the
/// range's end is not a gap behind `floor_ms` (the stage's floor, if known), where the
/// stage may hold stays that reach it, the read goes on to the newest sighting instead.
/// Returns the sightings read.
pub(super) async fn reopen(
    db: &clickhouse::Client,
    gap_ms: i64,
    site: &str,
    span: Span,
    floor_ms: Option<i64>,
    feed: &Feed,
) -> Result<u64, StageError> {
    let from_ms = span.first_ms - PAD_MS;
    let to_ms = Some(span.last_ms + PAD_MS).filter(|&to| floor_ms.is_some_and(|f| to + gap_ms < f));
    let scope = Scope {
        site: Some(site),
        from_ms,
        to_ms,
        gap_ms,
    };
    let mut all = Vec::new();
    let n = read_back(db, &scope, |batch| {
        all.extend(batch.into_iter().map(|s| Seen {
            reopened: true,
            ..s
        }));
        std::future::ready(Ok(()))
    })
    .await?;
    if !all.is_empty() {
        feed.push(all, Some(span.received_ms)).await?;
    }
    let ms = |ms: i64| wire::Millis(ms).to_string();
    info!(
        site = %site,
        sightings = n,
        from = %ms(from_ms),
        to = %to_ms.map_or_else(|| "the newest".to_owned(), ms),
        "visits recomputed around sightings that came after the horizon"
    );
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn pieces(late: &mut Late) -> Vec<(i64, i64, i64)> {
        let mut p: Vec<_> = late
            .take()
            .into_iter()
            .map(|(_, s)| (s.first_ms, s.last_ms, s.received_ms))
            .collect();
        p.sort_unstable();
        p
    }

    fn span(first_ms: i64, last_ms: i64, received_ms: i64) -> Span {
        Span {
            first_ms,
            last_ms,
            received_ms,
        }
    }

    #[test]
    fn late_sightings_apart_are_recomputed_apart() {
        let a: Arc<str> = "a".into();
        let mut late = Late::default();
        // Within two pads of each other: one range. Further: two. Each keeps the earliest
        // time one of its sightings was received.
        late.add(&a, span(10 * H, 11 * H, 7));
        late.add(&a, span(20 * H, 21 * H, 5));
        late.add(&a, span(100 * H, 101 * H, 9));
        late.add(&a, span(100 * H + 5, 100 * H + 6, 3));
        assert_eq!(late.received_ms(), Some(3));
        assert_eq!(
            pieces(&mut late),
            [(10 * H, 21 * H, 5), (100 * H, 101 * H, 3)]
        );
        assert!(late.is_empty());
        assert_eq!(late.received_ms(), None);
        // A sighting between two spans joins them (merged from another worker's).
        late.add(&a, span(0, H, 4));
        late.add(&a, span(20 * H, 21 * H, 6));
        assert_eq!(late.0[&a].len(), 2);
        let mut other = Late::default();
        other.add(&a, span(10 * H, 11 * H, 2));
        late.merge(other);
        assert_eq!(pieces(&mut late), [(0, 21 * H, 2)]);
    }
}
