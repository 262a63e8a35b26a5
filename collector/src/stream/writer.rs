//! The stage's writer: the workers' visit, occupancy and traffic rows into ClickHouse, in
//! batches, then the checkpoint.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::clock::watermark_ms;
use super::recompute::{reopen, Late, Span};
use super::settle::Unsettled;
use super::{Feed, Handed, Out, StageError};
use crate::ch;
use crate::ch::rows::{CheckpointRow, OccupancyRow, TrafficRow, VisitRow};
use crate::metrics::Metrics;
use crate::occupancy::Counted;
use crate::visits::Rules;

/// Commits visit rows in batches (by size and age), retrying the same rows while
/// ClickHouse refuses them, and with each commit the checkpoint: the least frontier of
/// this process's workers, up to which every visit is committed, and the receive time up to
/// which every sighting is settled ([`super::settle`]). Rows a crash loses are rebuilt from
/// the checkpoint at the next start.
pub(super) struct Writer {
    pub(super) db: clickhouse::Client,
    pub(super) max_rows: usize,
    pub(super) max_age: Duration,
    pub(super) metrics: Arc<Metrics>,
    pub(super) shutdown: CancellationToken,
    pub(super) process: usize,
    /// Per local worker, the frontier of the rows received so far.
    pub(super) frontiers: Vec<Option<u64>>,
    pub(super) checkpoint: Option<u64>,
    pub(super) bucket_ms: i64,
    pub(super) rules: Arc<RwLock<Rules>>,
    pub(super) horizon_ms: i64,
    /// Sites whose visits wait for a recompute, since sightings after the horizon came.
    pub(super) late: Late,
    /// The recompute running, if any (one at a time), and the earliest receive time of
    /// the late sightings whose records it has not handed over yet (`i64::MAX`: none; kept
    /// if it gives up).
    pub(super) recomputing: Option<(tokio::task::JoinHandle<()>, Arc<AtomicI64>)>,
    /// The stage's input, for the recomputes: weak, so it closes when the ingest drops its
    /// end.
    pub(super) feed: mpsc::WeakSender<Handed>,
    /// The batches handed to the stage and not yet settled.
    pub(super) unsettled: Unsettled,
    /// The receive time the last checkpoint settled.
    pub(super) settled: Option<i64>,
}

/// A recompute waits until sightings after the horizon stop coming for this long (a
/// drained backlog comes in many batches).
const LATE_QUIET: Duration = Duration::from_secs(5);

/// The rows of one commit.
#[derive(Default)]
struct Batch {
    visits: Vec<VisitRow>,
    occupancy: Vec<OccupancyRow>,
    traffic: Vec<TrafficRow>,
}

impl Batch {
    fn len(&self) -> usize {
        self.visits.len() + self.occupancy.len() + self.traffic.len()
    }
}

impl Writer {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Out>) {
        let mut batch = Batch::default();
        let mut opened: Option<Instant> = None;
        let mut late_at = Instant::now();
        loop {
            let deadline = opened.map(|t| t + self.max_age);
            let more = tokio::select! {
                r = rx.recv() => r,
                _ = tokio::time::sleep_until((late_at + LATE_QUIET).into()), if !self.late.is_empty() => {
                    if self.recomputing.as_ref().is_some_and(|(r, _)| !r.is_finished()) {
                        late_at = Instant::now();
                    } else {
                        self.recompute();
                    }
                    continue;
                }
                _ = async { tokio::time::sleep_until(deadline.expect("guarded").into()).await }, if deadline.is_some() => {
                    self.commit(&mut batch).await;
                    opened = None;
                    continue;
                }
            };
            match more {
                Some(Out::Rows(rows)) => {
                    batch.visits.extend(rows);
                    opened.get_or_insert_with(Instant::now);
                    if batch.len() >= self.max_rows {
                        self.commit(&mut batch).await;
                        opened = None;
                    }
                }
                Some(Out::Counted(rows)) => {
                    for row in rows {
                        match row {
                            Counted::Occupancy(r) => batch.occupancy.push(r),
                            Counted::Traffic(r) => batch.traffic.push(r),
                        }
                    }
                    opened.get_or_insert_with(Instant::now);
                    if batch.len() >= self.max_rows {
                        self.commit(&mut batch).await;
                        opened = None;
                    }
                }
                Some(Out::Late(late)) => {
                    self.late.merge(late);
                    late_at = Instant::now();
                }
                Some(Out::Frontier(worker, t)) => {
                    self.frontiers[worker] = Some(t);
                    opened.get_or_insert_with(Instant::now);
                }
                None => break,
            }
        }
        self.commit(&mut batch).await;
    }

    /// Has the stays around the sightings that came after the horizon rebuilt: the sites'
    /// sightings read back into the dataflow (by a task: the writer goes on taking rows,
    /// which the workers need to go on), one range after another. Retried while ClickHouse
    /// cannot answer, until the input closes or the collector stops (a stop waits for a
    /// recompute that goes on, not for one ClickHouse refuses).
    fn recompute(&mut self) {
        let Some(tx) = self.feed.upgrade() else {
            return; // stopping
        };
        let unsettled = self.unsettled.clone();
        let (db, metrics, shutdown) =
            (self.db.clone(), self.metrics.clone(), self.shutdown.clone());
        // The stage's floor: every visit behind it is written, and no stay held reaches it.
        let floor = self
            .frontiers
            .iter()
            .copied()
            .min()
            .flatten()
            .map(|t| watermark_ms(t, self.bucket_ms) - self.horizon_ms);
        let gaps: Vec<_> = {
            let rules = self.rules.read().expect("not poisoned");
            self.late
                .take()
                .into_iter()
                .map(|(site, span)| (rules.gap_ms(rules.site(&site)), site, span))
                .collect()
        };
        // The earliest receive time of the spans from the `i`th on, which are not handed
        // over yet: for the checkpoint.
        let from = |gaps: &[(i64, Arc<str>, Span)], i: usize| {
            gaps[i..]
                .iter()
                .map(|(_, _, s)| s.received_ms)
                .min()
                .unwrap_or(i64::MAX)
        };
        let left = Arc::new(AtomicI64::new(from(&gaps, 0)));
        let task_left = left.clone();
        let task = tokio::spawn(async move {
            let feed = Feed { tx, unsettled };
            for (i, &(gap, ref site, span)) in gaps.iter().enumerate() {
                let mut backoff =
                    ch::Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
                loop {
                    match reopen(&db, gap, site, span, floor, &feed).await {
                        Ok(_) => break,
                        Err(StageError::Stopped) => return,
                        Err(e) => {
                            metrics.clickhouse_errors.inc();
                            warn!(error = %e, site = %site, "cannot recompute the visits yet; retrying");
                            // Not retried after a shutdown: this task holds the stage's input
                            // open, and the stop waits for the input to close. What it did not
                            // hand over stays unsettled, for the next start.
                            if !backoff.wait(&shutdown).await {
                                return;
                            }
                        }
                    }
                }
                metrics.visits_recomputed.inc();
                // Handed over: unsettled as a batch from here.
                task_left.store(from(&gaps, i + 1), Ordering::Release);
            }
        });
        self.recomputing = Some((task, left));
    }

    /// Writes the rows, then the checkpoint they complete; gives up only on shutdown.
    async fn commit(&mut self, batch: &mut Batch) {
        // The rows received so far cover every time before `least`, and every late
        // sighting fed before it is in `late` or recomputing (its report comes before the
        // frontier).
        let least = self.frontiers.iter().copied().min().flatten();
        let recomputing = self
            .recomputing
            .as_ref()
            .map(|(_, left)| left.load(Ordering::Acquire))
            .filter(|&left| left < i64::MAX);
        let pending = self.late.received_ms().into_iter().chain(recomputing).min();
        let settled = least.map(|t| self.unsettled.settle(t, pending));
        let checkpoint = match (least, settled) {
            (Some(t), Some(settled))
                if Some(t) > self.checkpoint || Some(settled) != self.settled =>
            {
                Some(CheckpointRow {
                    process: u16::try_from(self.process).unwrap_or(u16::MAX),
                    watermark_ms: watermark_ms(t, self.bucket_ms),
                    at_ms: wire::Millis::now().0,
                    settled_ms: settled,
                })
            }
            _ => None,
        };
        let (db, rows, checkpoint) = (&self.db, &*batch, &checkpoint);
        let written = ch::retry(
            &self.metrics.clickhouse_errors,
            &self.shutdown,
            "visits",
            rows.len(),
            || async move {
                ch::insert(db, "visits", &rows.visits).await?;
                ch::insert(db, "occupancy", &rows.occupancy).await?;
                ch::insert(db, "traffic", &rows.traffic).await?;
                match checkpoint {
                    Some(row) => {
                        ch::insert(db, "stream_checkpoints", std::slice::from_ref(row)).await
                    }
                    None => Ok(()),
                }
            },
        )
        .await;
        if !written {
            warn!(
                rows = batch.len(),
                "stopping with unwritten visits; the next start rebuilds them"
            );
            return;
        }
        self.metrics.rows_written("visits", batch.visits.len());
        self.metrics
            .rows_written("occupancy", batch.occupancy.len());
        self.metrics.rows_written("traffic", batch.traffic.len());
        batch.visits.clear();
        batch.occupancy.clear();
        batch.traffic.clear();
        self.checkpoint = self.checkpoint.max(least);
        if let Some(row) = &checkpoint {
            self.settled = Some(row.settled_ms);
            self.metrics.settled(row.settled_ms);
        }
    }
}
