//! The Footfall sensor agent: monitor-mode capture to durable MQTT sightings.
//!
//! Stages, one module each: [`capture`] (libpcap, live or replay) -> `parse` (radiotap,
//! 802.11) -> `identity` (keyed hash; the raw address never leaves `mac`) -> `sessionize`
//! -> [`pipeline`] (policy, batches) -> [`spool`] (durable) -> [`publish`] (MQTT QoS 1).
//! [`run`] is the live sensor, [`replay`] processes a capture file deterministically.
//! Both take a shutdown token so tests drive the real thing.

pub mod capture;
mod error;
pub mod identity;
mod mac;
mod parse;
pub mod pipeline;
pub mod publish;
mod sessionize;
pub mod sink;
pub mod spool;
pub mod telemetry;

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use firmware_config::{Config, ConfigError, Keys, Secret, SecretSource};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;
use wire::{DeviceKey, Millis};

pub use error::Error;
pub use parse::Reject;
use pipeline::{BatchSink, Pipeline, PipelineSettings, Summary};
use publish::{Delivered, Lifecycle, Publisher};
use sink::{FileSink, Origin, SpoolSink};
use spool::Spool;
use telemetry::Telemetry;

/// Upper bound of one sighting's JSON, for the MQTT packet size limit.
const MAX_SIGHTING_JSON: usize = 320;
/// How long a stopping sensor keeps delivering before leaving the rest in the spool.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);

/// Everything a process needs beyond the configuration file, loaded at start-up.
pub struct Loaded {
    pub config: Config,
    /// The epoch keys, or the tenant secret.
    pub keys: Keys,
    pub opt_out: HashSet<DeviceKey>,
    /// A new opt-out list read on SIGHUP, for the capture loop to apply.
    reload: Arc<OptOutReload>,
    /// The MQTT password, when the configuration names one.
    pub mqtt_password: Option<Secret>,
}

impl Loaded {
    /// Reads the keys and the opt-out list that `config` refers to.
    pub fn from_config(config: Config) -> Result<Loaded, ConfigError> {
        let identity = config.identity();
        let keys = identity.keys.load(identity.epoch_days)?;
        let opt_out = match &config.identity().opt_out_file {
            Some(p) => firmware_config::read_opt_out(p, "identity.opt_out_file")?,
            None => HashSet::new(),
        };
        let mqtt_password = match &config.mqtt().password {
            Some(src) => {
                let field = field_of(src, "mqtt.password_file", "mqtt.password_env");
                let p = src.load(field, 1)?;
                if std::str::from_utf8(p.expose()).is_err() {
                    return Err(ConfigError::Secret {
                        field,
                        reason: "the MQTT password is not UTF-8".into(),
                    });
                }
                Some(p)
            }
            None => None,
        };
        Ok(Loaded {
            config,
            keys,
            opt_out,
            reload: Arc::default(),
            mqtt_password,
        })
    }

    /// Re-reads the opt-out list on every SIGHUP, until the returned task is aborted; a list
    /// that cannot be read is logged and the last one stays.
    fn watch_opt_out(&self) -> tokio::task::JoinHandle<()> {
        let (path, reload) = (
            self.config.identity().opt_out_file.clone(),
            self.reload.clone(),
        );
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                let Some(path) = &path else {
                    tracing::warn!(
                        "SIGHUP: no identity.opt_out_file is configured, nothing to reload"
                    );
                    continue;
                };
                match firmware_config::read_opt_out(path, "identity.opt_out_file") {
                    Ok(list) => {
                        let keys = list.len();
                        *reload.list.lock().expect("not poisoned") = Some(list);
                        reload.pending.store(true, Relaxed);
                        // Logged once the next frame will apply it (a test waits for the
                        // line, then sends that frame).
                        info!(keys, "opt-out list read again (SIGHUP)");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the opt-out list was not read again; the last one stays");
                    }
                }
            }
        })
    }

    fn pipeline(&self, count_devices: bool) -> Pipeline {
        Pipeline::new(
            PipelineSettings::from_config(&self.config, self.opt_out.clone()),
            self.keys.clone(),
            count_devices,
        )
    }

    fn origin(&self) -> Origin {
        Origin {
            sensor: self.config.sensor().id.clone(),
            site: self.config.sensor().site.clone(),
        }
    }
}

/// An opt-out list read again, waiting for the capture loop (one atomic load per frame).
#[derive(Default)]
struct OptOutReload {
    pending: AtomicBool,
    list: Mutex<Option<HashSet<DeviceKey>>>,
}

impl OptOutReload {
    /// Gives `pipeline` the list read again, if one waits.
    fn apply(&self, pipeline: &mut Pipeline) {
        // A plain load first: the swap, a locked write, only when a list waits.
        if !self.pending.load(Relaxed) || !self.pending.swap(false, Relaxed) {
            return;
        }
        if let Some(list) = self.list.lock().expect("not poisoned").take() {
            let dropped = pipeline.set_opt_out(list);
            info!(
                dropped_sightings = dropped,
                "opt-out list applied: its devices' open sightings are dropped"
            );
        }
    }
}

/// The cargo-fuzz entry point: parses `data` as a captured frame under both FCS policies,
/// truncated or not, and fingerprints any probe request found. Must never panic.
#[cfg(feature = "fuzzing")]
pub fn fuzz_frame(data: &[u8]) {
    for fcs in [
        firmware_config::FcsPolicy::Verify,
        firmware_config::FcsPolicy::TrustFlag,
    ] {
        for truncated in [false, true] {
            if let Ok(f) = parse::parse(data, truncated, fcs) {
                if let Some(p) = f.probe {
                    std::hint::black_box(parse::fingerprint(p.ies));
                }
            }
        }
    }
}

/// The configuration field that named a secret, for its errors.
fn field_of(src: &SecretSource, file: &'static str, env: &'static str) -> &'static str {
    match src {
        SecretSource::File(_) => file,
        SecretSource::Env(_) => env,
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where `replay` sends its batches.
#[derive(Clone, Debug)]
pub enum ReplayOutput {
    /// A file of envelopes (wire docs, "Files of envelopes") in this encoding, or stdout
    /// for `-`.
    File(PathBuf, wire::Encoding),
    /// Through the spool to the configured broker, returning once all is delivered.
    Broker,
}

/// Options of `footfall-agent replay`.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub pcap: PathBuf,
    pub output: ReplayOutput,
    /// Replay at this multiple of real time; `None`: as fast as possible.
    pub speed: Option<f64>,
    /// Keep the set of distinct device keys for [`Summary::devices`] (costs memory).
    pub count_devices: bool,
}

/// Replays a capture file (or FIFO) in event time. Deterministic: the same capture and
/// configuration give byte-identical output.
pub async fn replay(
    loaded: Loaded,
    opts: ReplayOptions,
    shutdown: CancellationToken,
) -> Result<(Summary, Option<Delivered>), Error> {
    let loaded = Arc::new(loaded);
    let _watch = AbortOnDrop(loaded.watch_opt_out());
    match opts.output.clone() {
        ReplayOutput::File(path, encoding) => {
            let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
                Box::new(std::io::BufWriter::new(std::io::stdout()))
            } else {
                Box::new(std::io::BufWriter::new(
                    std::fs::File::create(&path).map_err(|source| Error::Create {
                        path: path.clone(),
                        source,
                    })?,
                ))
            };
            let l = loaded.clone();
            let summary = tokio::task::spawn_blocking(move || {
                let mut sink = FileSink::new(l.origin(), encoding, out);
                let s = replay_into(&l, &opts, &mut sink, &shutdown)?;
                sink.flush()?;
                Ok::<_, Error>(s)
            })
            .await
            .map_err(|_| Error::Panicked("replay thread"))??;
            Ok((summary, None))
        }
        ReplayOutput::Broker => {
            let (delivered, summary) =
                with_publisher(&loaded, None, shutdown.clone(), move |l, sink, _| {
                    replay_into(l, &opts, sink, &shutdown)
                })
                .await?;
            Ok((summary, Some(delivered)))
        }
    }
}

fn replay_into(
    loaded: &Loaded,
    opts: &ReplayOptions,
    sink: &mut dyn BatchSink,
    shutdown: &CancellationToken,
) -> Result<Summary, Error> {
    let mut pipeline = loaded.pipeline(opts.count_devices);
    let reader = capture::ReadAhead::open(&opts.pcap, pipeline.fcs_policy())?;
    let started = Instant::now();
    let mut first_ts = None;
    loop {
        let chunk = match reader.next(Duration::from_millis(250)) {
            capture::Next::Chunk(c) => c,
            capture::Next::End => break,
            // Nothing to read (a quiet FIFO): a shutdown still stops the replay. The reader,
            // blocked in the FIFO, ends with the process.
            capture::Next::Waiting if shutdown.is_cancelled() => {
                return finish(pipeline, sink, None)
            }
            capture::Next::Waiting => continue,
        };
        for (ts, frame) in chunk.frames() {
            if let Some(speed) = opts.speed {
                let t0 = *first_ts.get_or_insert(ts);
                let due = Duration::from_millis(((ts - t0).max(0) as f64 / speed) as u64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            loaded.reload.apply(&mut pipeline);
            pipeline.on_parsed(ts, frame, sink)?;
        }
        reader.recycle(chunk);
        if shutdown.is_cancelled() {
            return finish(pipeline, sink, None);
        }
    }
    let input_error = reader.finish()?;
    if let Some(msg) = &input_error {
        tracing::error!(error = %msg, "stopped reading the capture");
    }
    finish(pipeline, sink, input_error)
}

/// Closes every open sighting, delivers the last batch and sums up.
fn finish(
    mut pipeline: Pipeline,
    sink: &mut dyn BatchSink,
    input_error: Option<String>,
) -> Result<Summary, Error> {
    pipeline.finish(sink)?;
    Ok(Summary {
        input_error,
        ..pipeline.summary()
    })
}

/// Runs `produce` on a blocking thread feeding the spool, beside the publisher; returns when
/// the producer has finished and the publisher has drained (or timed out).
async fn with_publisher<T: Send + 'static>(
    loaded: &Arc<Loaded>,
    drain_timeout: Option<Duration>,
    stop: CancellationToken,
    produce: impl FnOnce(&Loaded, &mut dyn BatchSink, &Telemetry) -> Result<T, Error> + Send + 'static,
) -> Result<(Delivered, T), Error> {
    let cfg = &loaded.config;
    let (mut spool, recovery) =
        Spool::open(&cfg.spool().dir, cfg.spool().max_bytes, cfg.spool().fsync)?;
    spool.set_memory_max(cfg.spool().memory_max_bytes);
    spool.set_keep_acked(cfg.mqtt().keep_acked);
    info!(
        next_seq = spool.next_seq(),
        pending = recovery.pending,
        "spool open"
    );
    let spool = Arc::new(Mutex::new(spool));
    let wake = Arc::new(Notify::new());
    let telemetry = Arc::new(Telemetry::new(cfg.capture().clock_sync_file.clone()));
    let publisher = Publisher::new(
        cfg,
        loaded.mqtt_password.as_ref(),
        cfg.mqtt().batch_max_sightings * MAX_SIGHTING_JSON + 512,
    )?;
    let life = Lifecycle {
        producer_done: CancellationToken::new(),
        drain_timeout,
        stop: CancellationToken::new(),
    };
    let publishing =
        tokio::spawn(publisher.run(spool.clone(), wake.clone(), telemetry.clone(), life.clone()));
    let (l, t) = (loaded.clone(), telemetry.clone());
    let mut sink = SpoolSink {
        origin: loaded.origin(),
        encoding: cfg.mqtt().encoding,
        spool,
        wake: wake.clone(),
    };
    let producing = tokio::task::spawn_blocking(move || {
        let r = produce(&l, &mut sink, &t);
        sink.spool.lock().expect("spool lock").sync();
        r
    });
    let produced = producing
        .await
        .map_err(|_| Error::Panicked("capture thread"));
    life.producer_done.cancel();
    wake.notify_one();
    // A second signal while draining stops at once; the spool keeps the rest.
    let stop_watch = {
        let life = life.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            if life.producer_done.is_cancelled() {
                life.stop.cancel();
            }
        })
    };
    let delivered = publishing
        .await
        .map_err(|_| Error::Panicked("publisher"))??;
    stop_watch.abort();
    Ok((delivered, produced??))
}

/// The live sensor: capture from the configured monitor interface until `shutdown`, then
/// close open sightings, deliver for up to 10 s, and leave the rest in the spool.
pub async fn run(loaded: Loaded, shutdown: CancellationToken) -> Result<(), Error> {
    let loaded = Arc::new(loaded);
    let _watch = AbortOnDrop(loaded.watch_opt_out());
    let mut cap = capture::open_live(loaded.config.capture())?;
    let stop_capture = Arc::new(AtomicBool::new(false));
    let hopper = capture::spawn_channel_hopper(
        loaded.config.capture().interface.clone(),
        loaded.config.capture().channel_plan.clone(),
        stop_capture.clone(),
    )
    .map_err(Error::Hopper)?;
    let watcher = {
        let (stop, token) = (stop_capture.clone(), shutdown.clone());
        tokio::spawn(async move {
            token.cancelled().await;
            stop.store(true, Relaxed);
        })
    };
    info!(interface = %loaded.config.capture().interface, filter = capture::BPF_FILTER, "capturing");
    let stop = stop_capture.clone();
    let (delivered, ()) = with_publisher(
        &loaded,
        Some(SHUTDOWN_DRAIN),
        shutdown,
        move |l, sink, telemetry| {
            let mut pipeline = l.pipeline(false);
            let mut last_report = Instant::now();
            // Checked at start and every second after.
            let mut clock_synced = None;
            let mut check_clock = |pipeline: &mut Pipeline| {
                let synced = telemetry.clock_synced();
                if clock_synced.replace(synced) == Some(synced) {
                    return;
                }
                pipeline.set_clock_synced(synced);
                if synced {
                    info!("the system clock is synchronised: frames are hashed and stamped");
                } else {
                    tracing::warn!(
                        marker = ?l.config.capture().clock_sync_file,
                        "the system clock is not synchronised: frames are dropped (counted as \
                         clock_unsynced) until it is"
                    );
                }
            };
            check_clock(&mut pipeline);
            while !stop.load(Relaxed) {
                l.reload.apply(&mut pipeline);
                match cap.next_packet() {
                    Ok(p) => {
                        let truncated = p.header.caplen < p.header.len;
                        pipeline.on_frame(capture::ts_ms(p.header), p.data, truncated, sink)?;
                    }
                    Err(pcap::Error::TimeoutExpired) => {
                        pipeline.advance(Millis::now().0, sink)?;
                    }
                    Err(e) => return Err(Error::Capture(e)),
                }
                if last_report.elapsed() >= Duration::from_secs(1) {
                    last_report = Instant::now();
                    check_clock(&mut pipeline);
                    pipeline.advance(Millis::now().0, sink)?;
                    telemetry.frames_captured.store(pipeline.frames(), Relaxed);
                    telemetry
                        .frames_malformed
                        .store(pipeline.malformed(), Relaxed);
                    if let Some(d) = capture::drops(&mut cap) {
                        telemetry.frames_dropped.store(d, Relaxed);
                    }
                }
            }
            pipeline.finish(sink)
        },
    )
    .await?;
    watcher.abort();
    stop_capture.store(true, Relaxed);
    let _ = hopper.join();
    info!(
        acked = delivered.acked_batches,
        left_in_spool = delivered.left_in_spool,
        "stopped"
    );
    Ok(())
}
