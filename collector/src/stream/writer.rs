//! The stage's writer: the workers' visit, occupancy and traffic rows into ClickHouse, in
//! batches, then the checkpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Out;
use crate::ch;
use crate::ch::rows::{CheckpointRow, OccupancyRow, TrafficRow, VisitRow};
use crate::metrics::Metrics;
use crate::occupancy::Counted;

/// Commits visit rows in batches (by size and age), retrying the same rows while
/// ClickHouse refuses them, and after each commit the checkpoint: the least frontier of
/// this process's workers, up to which every visit is committed. Rows a crash loses are
/// rebuilt from the checkpoint at the next start.
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
}

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
        loop {
            let deadline = opened.map(|t| t + self.max_age);
            let more = tokio::select! {
                r = rx.recv() => r,
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
                Some(Out::Frontier(worker, t)) => {
                    self.frontiers[worker] = Some(t);
                    opened.get_or_insert_with(Instant::now);
                }
                None => break,
            }
        }
        self.commit(&mut batch).await;
    }

    /// Writes the rows, then the checkpoint they complete; gives up only on shutdown.
    async fn commit(&mut self, batch: &mut Batch) {
        // The rows received so far cover every time before `least`.
        let least = self.frontiers.iter().copied().min().flatten();
        let checkpoint = match least {
            Some(t) if Some(t) > self.checkpoint => Some(CheckpointRow {
                process: u16::try_from(self.process).unwrap_or(u16::MAX),
                watermark_ms: i64::try_from(t).unwrap_or(0) * self.bucket_ms,
                at_ms: wire::Millis::now().0,
            }),
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
    }
}
