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
//! at the input's current time and update the visits they belong to. (A timestamp is the
//! bucket and, below it, a step: the input steps on after a recompute's batch, so the
//! frontier passes the batch within the bucket: [`clock::STEP_BITS`].)
//!
//! The sightings table is the durable log: the visits are derived from it. At start, process
//! 0 reads the last `horizon_hours` of sightings back into the dataflow to rebuild the stays
//! it held (including those whose rows a crash kept from being written). When the input
//! ends (SIGTERM), every stay still open is written as it stands; the next run updates it.

mod clock;
mod recompute;
mod recover;
mod settle;
mod writer;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandle, ProbeHandle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::clock::wall_clock_us;
use self::clock::{watermark_ms, Clock, Versions, STEP_BITS, STEP_MASK};
pub use self::recover::{recover, Resume};
pub use self::settle::Ticket;
use self::settle::Unsettled;
use self::writer::Writer;
use crate::ch::rows::{fnv64, SightingRow, VisitRow};
use crate::config::Config;
use crate::metrics::{Metrics, Share};
use crate::occupancy::{Counted, Occupancy};
use crate::visits::{Rules, Seen, Visits};

/// Batches of sightings queued for the dataflow.
const FEED: usize = 64;
/// Records read back at start-up are fed in batches of this many.
const RECOVER_BATCH: usize = 10_000;
/// How long an idle feeding worker waits for data before moving the clock on.
const PARK: Duration = Duration::from_millis(50);

/// Why the stream stage stopped or could not start. The visits it had not written are
/// rebuilt from the sightings table at the next start.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Its input is closed: the stage failed before (see the error it returned).
    #[error("the stream stage has stopped")]
    Stopped,
    /// timely could not start (in a cluster: a peer in the hostfile did not answer).
    #[error("cannot start the timely workers: {0}")]
    Start(String),
    #[error("cannot start the timely thread")]
    Thread(#[source] std::io::Error),
    #[error("a timely worker failed: {0}")]
    Worker(String),
    #[error("the timely thread panicked")]
    Panicked,
    #[error("the visits writer panicked")]
    Writer(#[source] tokio::task::JoinError),
    /// Reading the sightings back at start failed (ClickHouse).
    #[error("cannot rebuild the stays from the sightings table")]
    Recover(#[from] crate::ch::QueryError),
}

/// The running stage: feed it, then [`Stage::finish`].
pub struct Stage {
    feed: Feed,
    workers: std::thread::JoinHandle<Result<(), StageError>>,
    writer: tokio::task::JoinHandle<()>,
}

/// A batch for the dataflow, and its ticket if it is unsettled ([`settle`]).
type Handed = (Option<Ticket>, Vec<Seen>);

/// A clone of the stage's input, for the ingest path.
#[derive(Clone)]
pub struct Feed {
    tx: mpsc::Sender<Handed>,
    unsettled: Unsettled,
}

impl Feed {
    /// The receive time of a message going into the batch `ticket` opens (opened with the
    /// first): `at` for a held message replayed, else now. The batch is unsettled from then
    /// on ([`settle`]).
    pub fn receive(&self, ticket: &mut Option<Ticket>, at: Option<i64>) -> i64 {
        match ticket {
            None => {
                let (t, received_ms) = self.unsettled.open(at);
                *ticket = Some(t);
                received_ms
            }
            // The ticket's time is no later than now: only a replay's can be earlier.
            Some(t) => match at {
                Some(received_ms) => {
                    self.unsettled.received(t, received_ms);
                    received_ms
                }
                None => wire::Millis::now().0,
            },
        }
    }

    /// Hands committed sightings, of the batch `ticket` opened, to the dataflow (waits
    /// while it is behind: backpressure).
    pub async fn send(
        &self,
        rows: &[SightingRow],
        ticket: Option<Ticket>,
    ) -> Result<(), StageError> {
        if rows.is_empty() {
            return Ok(()); // the ticket, dropped, settles nothing
        }
        self.hand((ticket, rows.iter().map(|r| Seen::new(r, false)).collect()))
            .await
    }

    /// Hands records read back from the table to the dataflow, waiting while it is behind;
    /// unsettled until taken if they stand for sightings received at `received_ms`.
    pub(crate) async fn push(
        &self,
        batch: Vec<Seen>,
        received_ms: Option<i64>,
    ) -> Result<(), StageError> {
        let ticket = received_ms.map(|at| self.unsettled.open(Some(at)).0);
        self.hand((ticket, batch)).await
    }

    async fn hand(&self, handed: Handed) -> Result<(), StageError> {
        self.tx.send(handed).await.map_err(|_| StageError::Stopped)
    }
}

impl Stage {
    /// Starts the timely workers (joining the cluster, if configured) and the visits writer.
    pub fn start(
        cfg: &Config,
        resume: Resume,
        rules: Arc<RwLock<Rules>>,
        db: clickhouse::Client,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Stage, StageError> {
        let (tx, rx) = mpsc::channel::<Handed>(FEED);
        let unsettled = Unsettled::default();
        let (out, visits_rx) = mpsc::channel::<Out>(FEED);
        let t = cfg.timely();
        let writer = tokio::spawn(
            Writer {
                db,
                max_rows: cfg.ingest().batch_max_rows(),
                max_age: cfg.ingest().batch_max_age(),
                metrics: metrics.clone(),
                shutdown,
                process: t.process(),
                frontiers: vec![None; t.workers()],
                checkpoint: None,
                bucket_ms: cfg.visits().bucket_ms(),
                rules: rules.clone(),
                horizon_ms: cfg.visits().horizon_ms(),
                late: resume.late,
                recomputing: None,
                feed: tx.downgrade(),
                unsettled: unsettled.clone(),
                settled: None,
            }
            .run(visits_rx),
        );
        let config = match t.cluster() {
            None if t.workers() == 1 => timely::Config::thread(),
            None => timely::Config::process(t.workers()),
            Some((process, hosts)) => timely::Config {
                communication: timely::CommunicationConfig::Cluster {
                    threads: t.workers(),
                    process,
                    addresses: hosts.to_vec(),
                    report: false,
                    zerocopy: false,
                },
                worker: timely::WorkerConfig::default(),
            },
        };
        let env = WorkerEnv {
            version_floor: resume.version_floor,
            floor_ms: resume.floor_ms,
            unsettled: unsettled.clone(),
            clock: Clock {
                bucket_ms: cfg.visits().bucket_ms(),
                lateness_ms: cfg.visits().lateness_ms(),
                high_ms: None,
                at: Instant::now(),
            },
            horizon_ms: cfg.visits().horizon_ms(),
            rules,
            out,
            metrics,
            alone: t.cluster().is_none(),
        };
        let threads = t.workers();
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
                .map_err(StageError::Start)?;
                for r in guards.join() {
                    r.map_err(StageError::Worker)?;
                }
                Ok(())
            })
            .map_err(StageError::Thread)?;
        Ok(Stage {
            feed: Feed { tx, unsettled },
            workers,
            writer,
        })
    }

    pub fn feed(&self) -> Feed {
        self.feed.clone()
    }

    /// Ends the input: the workers write every stay still open, the writer commits them.
    pub async fn finish(self) -> Result<(), StageError> {
        drop(self.feed);
        let workers = self.workers;
        tokio::task::spawn_blocking(move || workers.join())
            .await
            .map_err(|_| StageError::Panicked)?
            .map_err(|_| StageError::Panicked)??;
        self.writer.await.map_err(StageError::Writer)
    }
}

/// One worker: builds the dataflow; the feeding worker then pumps the channel into it.
/// What every worker gets.
#[derive(Clone)]
struct WorkerEnv {
    clock: Clock,
    /// The highest version in the tables at start.
    version_floor: u64,
    /// Sightings that end before this are too late from the start: the recovery floor.
    floor_ms: i64,
    /// The feeding worker's record of what it fed when.
    unsettled: Unsettled,
    horizon_ms: i64,
    rules: Arc<RwLock<Rules>>,
    out: mpsc::Sender<Out>,
    metrics: Arc<Metrics>,
    /// One process, not a cluster.
    alone: bool,
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    local: usize,
    feeder: Option<mpsc::Receiver<Handed>>,
    env: WorkerEnv,
) {
    let WorkerEnv {
        mut clock,
        version_floor,
        floor_ms,
        unsettled,
        horizon_ms,
        rules,
        out,
        metrics,
        alone,
    } = env;
    let mut input: InputHandle<u64, CapacityContainerBuilder<Vec<Seen>>> = InputHandle::new();
    let probe = ProbeHandle::new();
    let bucket_ms = clock.bucket_ms;
    let max_gap = {
        let r = rules.read().expect("not poisoned");
        r.store_gap_ms.max(r.board_gap_ms)
    };
    let op_metrics = metrics.clone();
    let occupancy_out = out.clone();
    let late_out = out.clone();
    // An operator's rows go out at its capability, which then follows the input's frontier
    // (and is dropped when the input ends).
    macro_rules! hand_over {
        ($cap:ident, $output:ident, $rows:ident, $frontier:ident) => {
            if let Some(c) = $cap.as_mut() {
                if !$rows.is_empty() {
                    $output.session(&*c).give_container(&mut $rows);
                    $rows.clear();
                }
                match $frontier {
                    Some(t) => c.downgrade(&t),
                    None => $cap = None,
                }
            }
        };
    }
    let occupancy_rules = rules.clone();
    let op_metrics_occupancy = metrics.clone();
    let max_per_site = rules.read().expect("not poisoned").max_devices_per_site;
    worker.dataflow::<u64, _, _>(|scope| {
        let seen = input.to_stream(scope);
        // People per window, beside the visits: the same exchange by site, the same
        // watermark (crate::occupancy).
        seen.clone()
            .unary_frontier(
                Exchange::new(|s: &Seen| fnv64(&[s.site.as_bytes()])),
                "Occupancy",
                move |cap, _info| {
                    let mut cap = Some(cap);
                    let mut occupancy = Occupancy::new(max_per_site, floor_ms);
                    let mut versions = Versions::after(version_floor);
                    let mut rows = Vec::new();
                    let mut seen_watermark: Option<i64> = None;
                    let mut held = Share::of(&op_metrics_occupancy.occupancy_sightings);
                    move |(input, frontier), output| {
                        let frontier = frontier.frontier().first().copied();
                        let watermark = frontier.map(|t| watermark_ms(t, bucket_ms));
                        let refused = occupancy.refused;
                        input.for_each(|_time, data| {
                            occupancy.insert_all(data, watermark, horizon_ms);
                            data.clear();
                        });
                        op_metrics_occupancy
                            .stage_refused("occupancy", occupancy.refused - refused);
                        if watermark != seen_watermark {
                            seen_watermark = watermark;
                            let rules = occupancy_rules.read().expect("not poisoned");
                            occupancy.emit(
                                watermark,
                                horizon_ms,
                                &rules,
                                versions.next(wall_clock_us()),
                                &mut rows,
                            );
                            held.set(occupancy.held());
                        }
                        hand_over!(cap, output, rows, frontier);
                    }
                },
            )
            .container::<Vec<Counted>>()
            .probe_with(&probe)
            .sink(Pipeline, "WriteOccupancy", move |(input, _frontier)| {
                input.for_each(|_, data| {
                    let _ = occupancy_out.blocking_send(Out::Counted(std::mem::take(data)));
                });
            });
        seen.unary_frontier(
            Exchange::new(|s: &Seen| fnv64(&[s.site.as_bytes()])),
            "Visits",
            move |cap, _info| {
                let mut cap = Some(cap);
                let mut visits = Visits::new(floor_ms);
                let mut versions = Versions::after(version_floor);
                let mut rows = Vec::new();
                let mut seen_frontier: Option<u64> = None;
                let mut held = Share::of(&op_metrics.visit_stays);
                move |(input, frontier), output| {
                    let rules = rules.read().expect("not poisoned");
                    let frontier = frontier.frontier().first().copied();
                    let watermark = frontier.map(|t| watermark_ms(t, bucket_ms));
                    let mut late = false;
                    let refused = visits.refused;
                    let too_late_before = visits.too_late;
                    let mut too_late = recompute::Late::default();
                    input.for_each(|time, data| {
                        // Our input stamps every record (else: the frontier, a lower bound).
                        let fed = time.least().copied().or(frontier).unwrap_or(u64::MAX);
                        late |=
                            watermark.is_some_and(|w| data.iter().any(|s| s.last_ms + max_gap < w));
                        visits.insert_all(data, &rules, fed, |s| {
                            too_late.add(
                                &s.site,
                                recompute::Span {
                                    first_ms: s.first_ms,
                                    last_ms: s.last_ms,
                                    received_ms: s.received_ms,
                                },
                            );
                        });
                        data.clear();
                    });
                    op_metrics.stage_refused("visits", visits.refused - refused);
                    op_metrics
                        .visits_too_late
                        .inc_by(visits.too_late - too_late_before);
                    if !too_late.is_empty() {
                        let _ = late_out.blocking_send(Out::Late(too_late));
                    }
                    if frontier != seen_frontier || late {
                        seen_frontier = frontier;
                        let version = versions.next(wall_clock_us());
                        visits.emit(watermark, horizon_ms, &rules, version, &mut rows);
                        if let Some(t) = frontier {
                            visits.release(t, &rules);
                        }
                        held.set(visits.stays());
                    }
                    hand_over!(cap, output, rows, frontier);
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
                Ok((ticket, batch)) => {
                    fed += batch.len();
                    if let Some(newest) = batch.iter().map(|s| s.last_ms).max() {
                        clock.saw(newest);
                    }
                    let reopened = batch.first().is_some_and(|s| s.reopened);
                    for s in batch {
                        input.send(s);
                    }
                    if let Some(ticket) = ticket {
                        unsettled.fed(ticket, *input.time());
                    }
                    if reopened {
                        // A recompute's batch: a step on, so the frontier passes it and the
                        // stays it rebuilt are forgotten, without event time moving on (no
                        // step is left in the bucket: at the next). Alone, wait for that:
                        // one batch's stays at a time. (In a cluster the frontier waits for
                        // every process's input, and the stays for the next bucket.)
                        let next = *input.time() + 1;
                        if next & STEP_MASK != 0 {
                            input.advance_to(next);
                            while alone && probe.less_than(&next) {
                                worker.step();
                            }
                        }
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
            metrics.watermark(watermark_ms(t, bucket_ms));
        }
        // Do not run more than a bucket ahead of the dataflow.
        while probe.less_than(&input.time().saturating_sub(1 << STEP_BITS)) {
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

/// What the workers hand the writer: visit rows, occupancy and traffic rows, and each local
/// worker's frontier (every visit row of an earlier time has been handed over; occupancy and
/// traffic rows a crash loses are rebuilt from the sightings read back at start-up, as the
/// visits are).
enum Out {
    Rows(Vec<VisitRow>),
    /// Sites with sightings that came after the horizon: their visits are recomputed.
    Late(recompute::Late),
    Counted(Vec<Counted>),
    Frontier(usize, u64),
}
