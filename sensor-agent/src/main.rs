//! `footfall-agent`: arguments, logging, runtime and exit codes; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use firmware_config::{Config, ConfigError};
use sensor_agent::{Loaded, ReplayOptions, ReplayOutput};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// EX_CONFIG from sysexits.h; the systemd unit does not restart on it.
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(name = "footfall-agent", version, about = "Footfall WiFi sensor agent")]
struct Cli {
    /// Log filter, e.g. `info` or `sensor_agent=debug` (RUST_LOG overrides).
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Capture from the configured monitor-mode interface and publish sightings.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Process a pcap/pcapng file or FIFO in event time.
    Replay {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        pcap: PathBuf,
        /// Write the envelopes to this file (`-` for stdout) instead of publishing.
        #[arg(long)]
        out: Option<PathBuf>,
        /// How `--out` encodes them: `json` (one envelope per line) or `binary` (the wire's
        /// binary layout, back to back). Default: the configuration's `mqtt.encoding`.
        #[arg(long, requires = "out")]
        encoding: Option<wire::Encoding>,
        /// Write a JSON summary of what was seen here.
        #[arg(long)]
        summary: Option<PathBuf>,
        /// Pace the replay at this multiple of real time (default: as fast as possible).
        #[arg(long)]
        speed: Option<f64>,
    },
    /// Validate a configuration file (and the secrets it names) and exit.
    CheckConfig { file: PathBuf },
    /// Print the default configuration, with comments.
    PrintDefaultConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("footfall-agent: {e:#}");
            if e.chain().any(|c| c.downcast_ref::<ConfigError>().is_some()) {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Loaded> {
    Ok(Loaded::from_config(Config::load(path)?)?)
}

fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::PrintDefaultConfig => {
            print!("{}", firmware_config::DEFAULTS);
            Ok(())
        }
        Command::CheckConfig { file } => {
            let l = load(&file)?;
            println!(
                "{}: ok (sensor {} at {} {:?}, version {})",
                file.display(),
                l.config.sensor().id,
                l.config.sensor().site,
                l.config.sensor().site_kind,
                l.config.version()
            );
            Ok(())
        }
        Command::Run { config } => {
            let loaded = load(&config)?;
            runtime()?.block_on(async {
                let shutdown = on_signal();
                sensor_agent::run(loaded, shutdown).await
            })?;
            Ok(())
        }
        Command::Replay {
            config,
            pcap,
            out,
            encoding,
            summary,
            speed,
        } => {
            if let Some(s) = speed {
                anyhow::ensure!(
                    s > 0.0 && s.is_finite(),
                    "--speed must be a positive number, got {s}"
                );
            }
            let loaded = load(&config)?;
            let opts = ReplayOptions {
                pcap,
                output: out.map_or(ReplayOutput::Broker, |path| {
                    ReplayOutput::File(path, encoding.unwrap_or(loaded.config.mqtt().encoding))
                }),
                speed,
                count_devices: summary.is_some(),
            };
            let (s, delivered) = runtime()?.block_on(async {
                let shutdown = on_signal();
                sensor_agent::replay(loaded, opts, shutdown).await
            })?;
            if let Some(path) = summary {
                let json = serde_json::to_vec_pretty(&s).context("encode summary")?;
                std::fs::write(&path, json)
                    .with_context(|| format!("failed to write {}", path.display()))?;
            }
            eprintln!(
                "footfall-agent: {} frames, {} probe requests, {} malformed, {} sightings, \
                 {} batches{}",
                s.frames,
                s.probe_requests,
                s.malformed.values().sum::<u64>(),
                s.sightings,
                s.batches,
                delivered
                    .map(|d| format!(
                        ", {} acknowledged by the broker ({} published again after a \
                         reconnect), {} left in the spool",
                        d.acked_batches, d.resent_batches, d.left_in_spool
                    ))
                    .unwrap_or_default()
            );
            match s.input_error {
                // Everything before the damage was processed and delivered; still fail, so
                // that scripts notice.
                Some(e) => anyhow::bail!("{e}"),
                None => Ok(()),
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

/// A token cancelled on SIGINT or SIGTERM (each signal cancels; the library decides how).
fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            t.cancel();
        }
    });
    token
}
