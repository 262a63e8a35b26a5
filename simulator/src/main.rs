//! `footfall-sim`: generate a synthetic city with ground truth.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use simulator::scenario::{Scenario, ScenarioError, PRESETS};

#[derive(Parser)]
#[command(
    name = "footfall-sim",
    version,
    about = "Synthetic Footfall cities with known ground truth"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generates a city: captures or envelopes, importer files, and the truth.
    Generate {
        /// A scenario file (its `preset` field, if any, names the preset it overrides).
        #[arg(long, conflicts_with = "preset", required_unless_present = "preset")]
        config: Option<PathBuf>,
        /// A built-in preset: tiny, demo, city.
        #[arg(long)]
        preset: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Worker threads (default: one per core). The output does not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Validates a scenario file and prints it whole.
    Check { config: PathBuf },
    /// Prints a preset, or the defaults (`defaults`), as a scenario file.
    Preset { name: String },
}

/// Exit code for a bad scenario (EX_CONFIG).
const EX_CONFIG: u8 = 78;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("footfall-sim: {e:#}");
            if e.downcast_ref::<ScenarioError>().is_some() {
                ExitCode::from(EX_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Generate {
            config,
            preset,
            out,
            seed,
            threads,
            quiet,
        } => {
            let scenario = match (config, preset) {
                (Some(path), _) => Scenario::load(&path)?,
                (None, Some(name)) => Scenario::preset(&name)?,
                (None, None) => unreachable!("clap requires one"),
            };
            let started = Instant::now();
            // A bar on a terminal; a line per day in a log.
            let tty = std::io::stderr().is_terminal();
            let bar = if quiet || !tty {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(0).with_style(
                    ProgressStyle::with_template(
                        "[{bar:30}] day {pos}/{len}  {msg}  {elapsed} elapsed, about {eta} left",
                    )
                    .expect("a valid template")
                    .progress_chars("##."),
                )
            };
            let mut progress = |p: simulator::Progress| {
                if quiet {
                    return;
                }
                bar.set_length(u64::from(p.days));
                bar.set_position(u64::from(p.day));
                bar.set_message(format!("{} sightings", p.sightings));
                if !tty {
                    eprintln!(
                        "day {}/{}  {} sightings  {:.0} s",
                        p.day,
                        p.days,
                        p.sightings,
                        started.elapsed().as_secs_f64()
                    );
                }
            };
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1);
            let summary = simulator::generate(&scenario, seed, &out, threads, &mut progress)?;
            bar.finish_and_clear();
            println!(
                "{}: {} people, {} devices, {} sensors, {} probe requests, {} sightings, {} visits \
                 (store capture {:.2}), {} receipts in {:.1} s",
                out.display(),
                summary.people,
                summary.devices,
                summary.sensors,
                summary.probe_requests,
                summary.sightings,
                summary.visits,
                summary.store_capture,
                summary.receipts,
                started.elapsed().as_secs_f64()
            );
            for c in &summary.campaigns {
                println!(
                    "campaign {}: configured +{:.2} pp, realized {:+.2} pp (se {:.2}); people arms {}/{}; \
                     device arms {}/{}, target lift {:+.2} pp",
                    c.id,
                    c.configured_lift_pp,
                    c.realized_effect_pp,
                    c.realized_effect_se_pp,
                    c.people.n_exposed,
                    c.people.n_control,
                    c.devices.n_exposed,
                    c.devices.n_control,
                    c.devices.target_lift_pp
                );
            }
            Ok(())
        }
        Cmd::Check { config } => {
            let s = Scenario::load(&config)?;
            print!("{}", toml::to_string(&s)?);
            Ok(())
        }
        Cmd::Preset { name } => {
            if name == "defaults" {
                print!("{}", simulator::scenario::DEFAULTS);
                return Ok(());
            }
            let (_, text) = PRESETS
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| ScenarioError::UnknownPreset(name.clone()))?;
            print!("preset = {name:?}\n# Overrides of the defaults (`footfall-sim preset defaults`):\n{text}");
            Ok(())
        }
    }
}
