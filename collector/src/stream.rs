//! The stream stage: committed sightings -> timely dataflow -> site visits in ClickHouse.
//!
//! The ingest path hands every committed batch of sightings to this stage before it
//! acknowledges the MQTT messages. In each process one worker feeds the batches into the
//! dataflow; the records are exchanged by site (a stable hash, the same in every process),
//! so one worker owns a site and all of its state ([`crate::visits::Visits`]).
//!
//! Event time runs in buckets of `visits.bucket_secs`: the feeding worker advances its input
//! to the bucket of (newest sighting - `lateness_secs`), and while no data comes, with the
//! clock. The dataflow's frontier, the least of every process's input, is the watermark:
//! a stay is written when the watermark has passed its end by the gap. Late records are fed
//! at the input's current time and update the visits they belong to.
//!
//! The sightings table is the durable log: the visits are derived from it. At start, process
//! 0 reads the last `horizon_hours` of sightings back into the dataflow to rebuild the stays
//! it held (including those whose rows a crash kept from being written). When the input
//! ends (SIGTERM), every stay still open is written as it stands; the next run updates it.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandle, ProbeHandle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::decode::{fnv64, SightingRow};
use crate::metrics::Metrics;
use crate::visits::{sighting_key, Rules, Seen, SiteRule, VisitRow, Visits};

/// Batches of sightings queued for the dataflow.
const FEED: usize = 64;
/// Records read back at start-up are fed in batches of this many.
const RECOVER_BATCH: usize = 10_000;
/// How long an idle feeding worker waits for data before moving the clock on.
const PARK: Duration = Duration::from_millis(50);

#[derive(Row, Deserialize)]
struct SiteRow {
    site_id: String,
    kind: i8,
    rssi_threshold_dbm: i8,
    min_dwell_secs: u32,
    open_hour: u8,
    close_hour: u8,
}

/// The sites' rules from the inventory, over the configured defaults.
pub async fn load_rules(db: &clickhouse::Client, cfg: &Config) -> anyhow::Result<Rules> {
    let rows: Vec<SiteRow> = db
        .query(
            "SELECT site_id, kind, rssi_threshold_dbm, min_dwell_secs, open_hour, close_hour \
             FROM sites FINAL",
        )
        .fetch_all()
        .await
        .context("cannot read the sites' rules (table sites)")?;
    let v = &cfg.visits;
    Ok(Rules {
        sites: rows
            .into_iter()
            .map(|r| {
                let rule = SiteRule {
                    board: r.kind == 2,
                    rssi_threshold_dbm: r.rssi_threshold_dbm,
                    min_dwell_secs: r.min_dwell_secs,
                    open_hour: r.open_hour,
                    close_hour: r.close_hour,
                };
                (r.site_id, rule)
            })
            .collect(),
        default: SiteRule {
            board: false,
            rssi_threshold_dbm: v.rssi_threshold_dbm,
            min_dwell_secs: v.min_dwell_secs,
            open_hour: 0,
            close_hour: 24,
        },
        store_gap_ms: i64::from(v.store_gap_secs) * 1000,
        board_gap_ms: i64::from(v.board_gap_secs) * 1000,
    })
}

/// The running stage: feed it, then [`Stage::finish`].
pub struct Stage {
    feed: mpsc::Sender<Vec<Seen>>,
    workers: std::thread::JoinHandle<anyhow::Result<()>>,
    writer: tokio::task::JoinHandle<()>,
}

/// A clone of the stage's input, for the ingest path.
#[derive(Clone)]
pub struct Feed(mpsc::Sender<Vec<Seen>>);

impl Feed {
    /// Hands committed sightings to the dataflow (waits while it is behind: backpressure).
    pub async fn send(&self, rows: &[SightingRow]) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.push(rows.iter().map(|r| Seen::new(r, false)).collect())
            .await
    }

    /// Hands records to the dataflow, waiting while it is behind.
    async fn push(&self, batch: Vec<Seen>) -> anyhow::Result<()> {
        self.0
            .send(batch)
            .await
            .map_err(|_| anyhow::anyhow!("the stream stage has stopped"))
    }
}

impl Stage {
    /// Starts the timely workers (joining the cluster, if configured) and the visits writer.
    pub fn start(
        cfg: &Config,
        rules: Arc<RwLock<Rules>>,
        db: clickhouse::Client,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Stage> {
        let (feed, rx) = mpsc::channel::<Vec<Seen>>(FEED);
        let (out, visits_rx) = mpsc::channel::<Out>(FEED);
        let t = &cfg.timely;
        let writer = tokio::spawn(
            Writer {
                db,
                max_rows: cfg.ingest.batch_max_rows,
                max_age: Duration::from_millis(cfg.ingest.batch_max_age_ms),
                metrics: metrics.clone(),
                shutdown,
                process: t.cluster.as_ref().map_or(0, |c| c.0),
                frontiers: vec![None; t.workers],
                checkpoint: None,
                bucket_ms: i64::from(cfg.visits.bucket_secs) * 1000,
            }
            .run(visits_rx),
        );
        let config = match &t.cluster {
            None if t.workers == 1 => timely::Config::thread(),
            None => timely::Config::process(t.workers),
            Some((process, hosts)) => timely::Config {
                communication: timely::CommunicationConfig::Cluster {
                    threads: t.workers,
                    process: *process,
                    addresses: hosts.clone(),
                    report: false,
                    zerocopy: false,
                },
                worker: timely::WorkerConfig::default(),
            },
        };
        let env = WorkerEnv {
            clock: Clock {
                bucket_ms: i64::from(cfg.visits.bucket_secs) * 1000,
                lateness_ms: i64::from(cfg.visits.lateness_secs) * 1000,
                high_ms: None,
                at: Instant::now(),
            },
            horizon_ms: i64::from(cfg.visits.horizon_hours) * 3_600_000,
            rules,
            out,
            metrics,
        };
        let threads = t.workers;
        let rx = Mutex::new(Some(rx));
        let workers = std::thread::Builder::new()
            .name("timely".into())
            .spawn(move || {
                let guards = timely::execute(config, move |worker| {
                    // Workers are numbered process by process.
                    let local = worker.index() % threads;
                    let feeder = if local == 0 {
                        rx.lock().expect("not poisoned").take()
                    } else {
                        None
                    };
                    run_worker(worker, local, feeder, env.clone())
                })
                .map_err(|e| anyhow::anyhow!("cannot start the timely workers: {e}"))?;
                for r in guards.join() {
                    r.map_err(|e| anyhow::anyhow!("a timely worker failed: {e}"))?;
                }
                Ok(())
            })
            .context("cannot start the timely thread")?;
        Ok(Stage {
            feed,
            workers,
            writer,
        })
    }

    pub fn feed(&self) -> Feed {
        Feed(self.feed.clone())
    }

    /// Ends the input: the workers write every stay still open, the writer commits them.
    pub async fn finish(self) -> anyhow::Result<()> {
        drop(self.feed);
        let workers = self.workers;
        tokio::task::spawn_blocking(move || workers.join())
            .await
            .context("joining the timely thread")?
            .map_err(|_| anyhow::anyhow!("the timely thread panicked"))??;
        self.writer.await.context("the visits writer panicked")
    }
}

/// The input's event-time clock: the newest sighting seen, moving on with the wall clock
/// while no data comes, minus the allowed lateness, in buckets.
#[derive(Clone)]
struct Clock {
    bucket_ms: i64,
    lateness_ms: i64,
    high_ms: Option<i64>,
    at: Instant,
}

impl Clock {
    fn now_ms(&self) -> Option<i64> {
        self.high_ms
            .map(|h| h + i64::try_from(self.at.elapsed().as_millis()).unwrap_or(i64::MAX / 2))
    }

    fn saw(&mut self, newest_ms: i64) {
        let high = self.now_ms().map_or(newest_ms, |h| h.max(newest_ms));
        self.high_ms = Some(high);
        self.at = Instant::now();
    }

    /// The input's time (a bucket number); 0 before any data.
    fn time(&self) -> u64 {
        self.now_ms().map_or(0, |h| {
            u64::try_from((h - self.lateness_ms).div_euclid(self.bucket_ms)).unwrap_or(0)
        })
    }
}

/// One worker: builds the dataflow; the feeding worker then pumps the channel into it.
/// What every worker gets.
#[derive(Clone)]
struct WorkerEnv {
    clock: Clock,
    horizon_ms: i64,
    rules: Arc<RwLock<Rules>>,
    out: mpsc::Sender<Out>,
    metrics: Arc<Metrics>,
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    local: usize,
    feeder: Option<mpsc::Receiver<Vec<Seen>>>,
    env: WorkerEnv,
) {
    let WorkerEnv {
        mut clock,
        horizon_ms,
        rules,
        out,
        metrics,
    } = env;
    let mut input: InputHandle<u64, CapacityContainerBuilder<Vec<Seen>>> = InputHandle::new();
    let probe = ProbeHandle::new();
    let bucket_ms = clock.bucket_ms;
    let max_gap = {
        let r = rules.read().expect("not poisoned");
        r.store_gap_ms.max(r.board_gap_ms)
    };
    let op_metrics = metrics.clone();
    worker.dataflow::<u64, _, _>(|scope| {
        input
            .to_stream(scope)
            .unary_frontier(
                Exchange::new(|s: &Seen| fnv64(s.site.as_bytes())),
                "Visits",
                move |cap, _info| {
                    let mut cap = Some(cap);
                    let mut visits = Visits::new();
                    let mut rows = Vec::new();
                    let mut seen_frontier: Option<u64> = None;
                    let mut held = 0i64;
                    move |(input, frontier), output| {
                        let rules = rules.read().expect("not poisoned");
                        let frontier = frontier.frontier().first().copied();
                        let watermark = frontier.map(|t| (t as i64).saturating_mul(bucket_ms));
                        let mut late = false;
                        input.for_each(|_time, data| {
                            for s in data.drain(..) {
                                late |= watermark.is_some_and(|w| s.last_ms + max_gap < w);
                                visits.insert(&s, &rules);
                            }
                        });
                        if frontier != seen_frontier || late {
                            seen_frontier = frontier;
                            let before = visits.too_late;
                            visits.emit(watermark, horizon_ms, &rules, &mut rows);
                            op_metrics.visits_too_late.add(visits.too_late - before);
                            let now = visits.stays() as i64;
                            op_metrics.visit_stays.add(now - held);
                            held = now;
                        }
                        if let Some(c) = cap.as_mut() {
                            if !rows.is_empty() {
                                output.session(&*c).give_container(&mut rows);
                                rows.clear();
                            }
                            match frontier {
                                Some(t) => c.downgrade(&t),
                                None => cap = None,
                            }
                        }
                    }
                },
            )
            .container::<Vec<VisitRow>>()
            .probe_with(&probe)
            .sink(Pipeline, "WriteVisits", {
                let mut reported = Some(0u64);
                move |(input, frontier)| {
                    // Blocks while the writer is behind (ClickHouse down): backpressure.
                    input.for_each(|_, data| {
                        let _ = out.blocking_send(Out::Rows(std::mem::take(data)));
                    });
                    let now = frontier.frontier().first().copied();
                    if now != reported {
                        reported = now;
                        if let Some(t) = now {
                            let _ = out.blocking_send(Out::Frontier(local, t));
                        }
                    }
                }
            });
    });
    let Some(mut rx) = feeder else {
        drop(input);
        while worker.step_or_park(Some(PARK)) {}
        return;
    };
    loop {
        let mut closed = false;
        let mut fed = 0;
        // Take what is queued, a bounded amount per round so the dataflow keeps up.
        while fed < 100_000 {
            match rx.try_recv() {
                Ok(batch) => {
                    fed += batch.len();
                    if let Some(newest) = batch.iter().map(|s| s.last_ms).max() {
                        clock.saw(newest);
                    }
                    for s in batch {
                        input.send(s);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            break;
        }
        let t = clock.time();
        if t > *input.time() {
            input.advance_to(t);
            metrics
                .watermark_ms
                .set(i64::try_from(t).unwrap_or(0) * bucket_ms);
        }
        // Do not run more than a bucket ahead of the dataflow.
        while probe.less_than(&input.time().saturating_sub(1)) {
            worker.step();
        }
        worker.step_or_park(if fed > 0 {
            Some(Duration::ZERO)
        } else {
            Some(PARK)
        });
    }
    drop(input);
    while worker.step_or_park(Some(PARK)) {}
}

/// What the workers hand the writer: visit rows, and each local worker's frontier (every
/// row of an earlier time has been handed over).
pub enum Out {
    Rows(Vec<VisitRow>),
    Frontier(usize, u64),
}

#[derive(Row, Serialize)]
struct CheckpointRow {
    process: u16,
    watermark_ms: i64,
    at_ms: i64,
}

/// Commits visit rows in batches (by size and age), retrying the same rows while
/// ClickHouse refuses them, and after each commit the checkpoint: the least frontier of
/// this process's workers, up to which every visit is committed. Rows a crash loses are
/// rebuilt from the checkpoint at the next start.
struct Writer {
    db: clickhouse::Client,
    max_rows: usize,
    max_age: Duration,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    process: usize,
    /// Per local worker, the frontier of the rows received so far.
    frontiers: Vec<Option<u64>>,
    checkpoint: Option<u64>,
    bucket_ms: i64,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Out>) {
        let mut batch: Vec<VisitRow> = Vec::new();
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
                    batch.extend(rows);
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
    async fn commit(&mut self, batch: &mut Vec<VisitRow>) {
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
        let written = crate::ingest::retry(
            &self.metrics,
            &self.shutdown,
            "visits",
            rows.len(),
            || async move {
                crate::ingest::insert(db, "visits", rows).await?;
                match checkpoint {
                    Some(row) => {
                        crate::ingest::insert(db, "stream_checkpoints", std::slice::from_ref(row))
                            .await
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
        self.metrics.rows_written("visits", batch.len());
        batch.clear();
        self.checkpoint = self.checkpoint.max(least);
    }
}

#[derive(Row, Deserialize)]
struct Recovered {
    site: String,
    sensor: String,
    epoch: u32,
    device: u64,
    class: i8,
    fingerprint: u32,
    first_ms: i64,
    last_ms: i64,
    rssi_max: i8,
    is_final: u8,
}

#[derive(Row, Deserialize)]
struct Written {
    site: String,
    device: u64,
    day: u16,
    visit_id: u64,
    epoch: u32,
    class: i8,
    fingerprint: u32,
    first_ms: i64,
    last_ms: i64,
    rssi_max: i8,
}

/// Reads the sightings from `horizon` before the checkpoint back into the dataflow, so the
/// stays held before a restart (or a crash) are rebuilt and the visits a crash kept from
/// being written are written. Returns the number of sightings read.
pub async fn recover(
    db: &clickhouse::Client,
    cfg: &Config,
    rules: &Rules,
    feed: &Feed,
) -> anyhow::Result<u64> {
    // The least checkpoint of the processes: every visit closed before it is committed.
    let (checkpoint, processes): (i64, u64) = db
        .query(
            "SELECT min(w), count() FROM (SELECT process, argMax(watermark_ms, at_ms) AS w \
             FROM stream_checkpoints GROUP BY process)",
        )
        .fetch_one()
        .await
        .context("reading the stream checkpoints")?;
    // Without a checkpoint (no visit committed yet), every sighting is read back.
    let floor = if processes == 0 {
        0
    } else {
        checkpoint - i64::from(cfg.visits.horizon_hours) * 3_600_000
    };
    // A stay that starts within a gap of the floor may have begun before it: rebuilt as
    // state, so later sightings join it, but not written again.
    let taint_below = floor + rules.store_gap_ms.max(rules.board_gap_ms);
    // The day before the floor's: rows are partitioned by the day of their start.
    let since = chrono::DateTime::from_timestamp_millis(floor - 86_400_000)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    let mut cursor = db
        .query(
            "SELECT site, sensor, epoch, device, class, fingerprint, first_ms, last_ms, rssi_max, \
             final AS is_final FROM sightings WHERE day >= toDate(?) AND last_ms >= ?",
        )
        .bind(&since)
        .bind(floor)
        .fetch::<Recovered>()?;
    let mut n = 0u64;
    let mut batch = Vec::with_capacity(RECOVER_BATCH);
    while let Some(r) = cursor.next().await? {
        batch.push(Seen {
            key: sighting_key(&r.sensor, r.first_ms),
            site: r.site.into(),
            device: r.device,
            epoch: r.epoch,
            class: r.class,
            fingerprint: r.fingerprint,
            first_ms: r.first_ms,
            last_ms: r.last_ms,
            rssi_max: r.rssi_max,
            is_final: r.is_final != 0,
            tainted: r.first_ms < taint_below,
            written: None,
        });
        n += 1;
        if batch.len() == RECOVER_BATCH {
            feed.push(std::mem::take(&mut batch)).await?;
        }
    }
    // The visits already written there, so the rebuilt stays retract those that data
    // committed before the restart superseded.
    let mut cursor = db
        .query(
            "SELECT site, device, day, visit_id, epoch, class, fingerprint, first_ms, last_ms, \
             rssi_max FROM visits FINAL WHERE day >= toDate(?) AND last_ms >= ? AND retracted = 0",
        )
        .bind(since)
        .bind(floor)
        .fetch::<Written>()?;
    while let Some(v) = cursor.next().await? {
        batch.push(Seen {
            site: v.site.into(),
            device: v.device,
            epoch: v.epoch,
            class: v.class,
            fingerprint: v.fingerprint,
            first_ms: v.first_ms,
            last_ms: v.last_ms,
            // Its sightings' strongest: in view of a board or not, as they are.
            rssi_max: v.rssi_max,
            is_final: true,
            key: 0,
            tainted: v.first_ms < taint_below,
            written: Some((v.day, v.visit_id)),
        });
        if batch.len() == RECOVER_BATCH {
            feed.push(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        feed.push(batch).await?;
    }
    info!(sightings = n, "stays rebuilt from the sightings table");
    Ok(n)
}
