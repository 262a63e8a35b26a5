//! `footfall-collector`: MQTT ingest, schema migrations, imports. Arguments, tracing, the
//! runtime and the exit code; the service is [`collector::run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use collector::config::Config;
use collector::counting::{self, Calibration, FitError};
use collector::import::Kind;
use collector::offline::{self, OfflineError};
use collector::reason::Reason;
use collector::{purge, quarantine};
use firmware_config::ConfigError;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "footfall-collector", version, about = "Footfall collector")]
struct Cli {
    /// Log filter (tracing env-filter syntax).
    #[arg(long, default_value = "info")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Ingests: MQTT sightings and status into ClickHouse until SIGTERM/SIGINT (then drains:
    /// commits and acknowledges what it has read).
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Creates the database if needed and applies the missing schema migrations.
    Migrate {
        #[arg(long)]
        config: PathBuf,
    },
    /// Imports a file the simulator (or a real system) writes; bad rows are reported with
    /// FILE:LINE and the reason, good rows are all imported. Exit 65 if any row was bad.
    Import {
        #[arg(long)]
        config: PathBuf,
        kind: Kind,
        file: PathBuf,
    },
    /// People per window at one site, from its agents' envelopes (JSON lines or binary, as
    /// `footfall-agent replay --out` writes them): CSV `window_start,people,lo,hi` on stdout,
    /// one row per window from the first sighting's to the last's. The estimator the
    /// collector runs (`counting`); calibrated with --calibration, else uncalibrated.
    Occupancy {
        #[arg(long)]
        envelopes: PathBuf,
        /// Window length; windows are aligned to multiples of it since the Unix epoch.
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=1440))]
        window_mins: u32,
        /// A calibrations CSV (as `calibrate` writes it): the row of the envelopes' site.
        #[arg(long)]
        calibration: Option<PathBuf>,
    },
    /// Fits a site's calibration from its envelopes and the true number of people in some
    /// windows (CSV `window_start,people`): a calibrations CSV on stdout, for `import
    /// calibrations` and `occupancy --calibration`.
    Calibrate {
        #[arg(long)]
        envelopes: PathBuf,
        #[arg(long)]
        truth: PathBuf,
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=1440))]
        window_mins: u32,
    },
    /// Replays held messages (the quarantine) after the fix: a sensor added to the inventory
    /// or moved, clock bounds widened, the collector upgraded. The running collector decodes
    /// them again and commits them like new messages; this waits for it and says what
    /// became of them. Exit 0 when all were replayed, 65 when some were refused again (held
    /// with the new reason), 75 when no collector took them in --wait-secs.
    Requeue {
        #[arg(long)]
        config: PathBuf,
        /// Only messages held for this reason (repeatable): unknown_sensor, site_mismatch,
        /// clock_skew, unsupported_version.
        #[arg(long, value_parser = held_reason)]
        reason: Vec<Reason>,
        /// Only messages of this sensor.
        #[arg(long)]
        sensor: Option<String>,
        #[arg(long, default_value_t = 120)]
        wait_secs: u64,
    },
    /// The opt-out purge: removes every row of the device keys in --keys (an opt-out list,
    /// as `footfall-fleet opt-out` prints it) from every table that holds keys, and waits
    /// until ClickHouse has applied it. Update the sensors' lists first.
    Purge {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        keys: PathBuf,
        #[arg(long, default_value_t = 600)]
        wait_secs: u64,
    },
    /// Drops each table's months past its retention (`[retention]`), and compacts the
    /// settled months of the tables reports read, once; the running collector does both at
    /// start and every hour.
    Retention {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validates a configuration file (secrets included).
    CheckConfig { file: PathBuf },
    /// Prints the default configuration, every field commented.
    PrintDefaultConfig,
}

/// A reason messages are held for (`--reason`).
fn held_reason(name: &str) -> Result<Reason, String> {
    let held: Vec<&str> = Reason::ALL
        .into_iter()
        .filter(|r| r.held())
        .map(Reason::as_str)
        .collect();
    match Reason::parse(name) {
        Some(r) if r.held() => Ok(r),
        _ => Err(format!(
            "no message is held for {name:?}; held reasons: {}",
            held.join(", ")
        )),
    }
}

/// EX_TEMPFAIL: no collector replayed the requested messages in time.
const EX_TEMPFAIL: u8 = 75;
/// EX_CONFIG: a bad configuration.
const EX_CONFIG: u8 = 78;
/// EX_DATAERR: an import had bad rows (the good ones were imported), or an offline input
/// (envelopes, truth) is malformed.
const EX_DATAERR: u8 = 65;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli.cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("footfall-collector: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some()
                || matches!(
                    e.downcast_ref::<collector::Error>(),
                    Some(collector::Error::Config(_))
                )
                || matches!(
                    e.downcast_ref::<OfflineError>(),
                    Some(OfflineError::Calibration { .. })
                )
            {
                ExitCode::from(EX_CONFIG)
            } else if e.downcast_ref::<OfflineError>().is_some()
                || e.downcast_ref::<FitError>().is_some()
            {
                ExitCode::from(EX_DATAERR)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Run { config } => {
            let c = Config::load(&config)?;
            let shutdown = CancellationToken::new();
            tokio::spawn({
                let shutdown = shutdown.clone();
                async move {
                    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
                    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    tracing::info!("stopping: draining the current batch");
                    shutdown.cancel();
                }
            });
            collector::run(c, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Migrate { config } => {
            let c = Config::load(&config)?;
            let applied = collector::migrate::migrate(c.clickhouse()).await?;
            println!(
                "{}: {} migration(s) applied{}",
                c.clickhouse().database(),
                applied.len(),
                if applied.is_empty() {
                    String::new()
                } else {
                    format!(": {}", applied.join(", "))
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Import { config, kind, file } => {
            let c = Config::load(&config)?;
            collector::migrate::migrate(c.clickhouse()).await?;
            let (db, _) = c.clickhouse().clients();
            let report = collector::import::import(&db, kind, &file).await?;
            println!("{}: {report}", file.display());
            Ok(if report.bad_rows == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EX_DATAERR)
            })
        }
        Cmd::Requeue {
            config,
            reason,
            sensor,
            wait_secs,
        } => {
            let c = Config::load(&config)?;
            collector::migrate::migrate(c.clickhouse()).await?;
            let (db, _) = c.clickhouse().clients();
            let filter = quarantine::Filter {
                reasons: reason,
                sensor,
            };
            let (version, n) = quarantine::request(&db, &filter).await?;
            println!("{n} held message(s) requested");
            if n == 0 {
                return Ok(ExitCode::SUCCESS);
            }
            let o = quarantine::wait(&db, version, Duration::from_secs(wait_secs)).await?;
            println!("{} replayed", o.replayed);
            for (reason, k) in &o.held {
                println!("{k} refused again and held: {reason}");
            }
            Ok(if o.pending > 0 {
                eprintln!(
                    "footfall-collector: {} message(s) still wait: no collector replayed them \
                     within {wait_secs} s (is one running against this database?); they stay \
                     requested",
                    o.pending
                );
                ExitCode::from(EX_TEMPFAIL)
            } else if o.held.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EX_DATAERR)
            })
        }
        Cmd::Purge {
            config,
            keys,
            wait_secs,
        } => {
            let c = Config::load(&config)?;
            let keys = firmware_config::read_opt_out(&keys, "--keys")?;
            collector::migrate::migrate(c.clickhouse()).await?;
            let (db, _) = c.clickhouse().clients();
            let done =
                purge::purge(&db, c.clickhouse(), &keys, Duration::from_secs(wait_secs)).await?;
            for (table, n) in &done.rows {
                println!("{table}: {n} row(s) removed");
            }
            println!("quarantine: {} held message(s) rewritten", done.held);
            println!("{} key(s) purged", keys.len());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Retention { config } => {
            let c = Config::load(&config)?;
            collector::migrate::migrate(c.clickhouse()).await?;
            let (db, _) = c.clickhouse().clients();
            let dropped = collector::retention::apply(&db, c.clickhouse(), c.retention()).await?;
            for (table, month) in &dropped {
                println!("{table}: dropped {month}");
            }
            println!("{} month(s) dropped", dropped.len());
            let settle = collector::retention::settle_days(&c);
            let compacted = collector::retention::compact(c.clickhouse(), settle).await?;
            for (table, partition) in &compacted {
                println!("{table}: compacted {partition}");
            }
            println!("{} partition(s) compacted", compacted.len());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckConfig { file } => {
            let c = Config::load(&file)?;
            println!(
                "{}: ok (ClickHouse {} database {})",
                file.display(),
                c.clickhouse().url(),
                c.clickhouse().database()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Occupancy {
            envelopes,
            window_mins,
            calibration,
        } => {
            let (site, sightings) = offline::read_envelopes(&envelopes)?;
            let cal = match calibration {
                Some(path) => offline::read_calibration(&path, &site)?,
                None => Calibration::uncalibrated(),
            };
            let windows = counting::estimate(&sightings, i64::from(window_mins) * 60_000, &cal);
            offline::write_occupancy(std::io::stdout().lock(), &windows)?;
            eprintln!(
                "{}: {} windows of {window_mins} min, {} ({}: floor {} dBm, {:.2} people per \
                 device, fixtures heard in {} hours of their day)",
                envelopes.display(),
                windows.len(),
                cal.kind(),
                counting::VERSION,
                cal.rssi_min_dbm,
                cal.people_per_device,
                cal.fixture_hours
            );
            let unlinked = sightings.iter().filter(|s| s.link == 0).count();
            if unlinked > 0 {
                eprintln!(
                    "{}: {unlinked} of {} sightings came without a link (contract version 1): \
                     each of their addresses counted as a device",
                    envelopes.display(),
                    sightings.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Calibrate {
            envelopes,
            truth,
            window_mins,
        } => {
            let window_ms = i64::from(window_mins) * 60_000;
            let (site, sightings) = offline::read_envelopes(&envelopes)?;
            let truth = offline::read_truth(&truth, window_ms)?;
            let cal = counting::fit(&[(&sightings, &truth)], window_ms)?;
            offline::write_calibration(std::io::stdout().lock(), &site, &cal)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::PrintDefaultConfig => {
            print!("{}", collector::config::DEFAULTS);
            Ok(ExitCode::SUCCESS)
        }
    }
}
