//! `footfall-attribution`: campaign lift reports from ClickHouse, and the interval and
//! power calculations behind them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use attribution::design::Params;
use attribution::{data, report, stats};
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser)]
#[command(name = "footfall-attribution", version, about = "Footfall attribution")]
struct Cli {
    /// Log filter (tracing env-filter syntax).
    #[arg(long, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Computes a campaign's lift report from ClickHouse into DIR (report.html,
    /// report.json, CSV tables) and prints the headline.
    Report(Box<ReportArgs>),
    /// Interval statistics for two arms' counts, as JSON.
    Compare {
        /// Converters/devices of the exposed arm, e.g. 288/12000.
        #[arg(long, value_parser = counts)]
        exposed: (u64, u64),
        #[arg(long, value_parser = counts)]
        control: (u64, u64),
        #[arg(long, default_value_t = 0.95)]
        confidence: f64,
    },
    /// Exposed devices needed to detect a lift (80 % and 90 % power), and the minimum
    /// detectable effect for a given number of exposed devices, as JSON.
    Plan {
        /// The control arm's conversion rate, e.g. 0.02.
        #[arg(long)]
        baseline: f64,
        /// The lift to detect, percentage points.
        #[arg(long)]
        lift_pp: f64,
        /// Control devices per exposed device.
        #[arg(long, default_value_t = 1.0)]
        ratio: f64,
        /// Exposed devices expected (for the minimum detectable effect).
        #[arg(long)]
        n: Option<u64>,
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
    },
}

/// `report`'s arguments.
#[derive(clap::Args)]
struct ReportArgs {
    #[arg(long)]
    campaign: String,
    #[arg(long)]
    out: PathBuf,
    /// The ClickHouse HTTP interface.
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    clickhouse_url: String,
    #[arg(long, default_value = "footfall")]
    database: String,
    #[arg(long, default_value = "default")]
    user: String,
    /// The name of an environment variable holding the password.
    #[arg(long)]
    password_env: Option<String>,
    /// For an https:// URL: the CA certificate (PEM) that signed the server's.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// The ClickHouse cluster the tables are spread over (as the collector's
    /// `clickhouse.cluster`).
    #[arg(long)]
    cluster: Option<String>,
    /// The primary window in days [the campaign's window_days].
    #[arg(long)]
    window_days: Option<u32>,
    /// Bootstrap replicates (at least 2000 for a published report).
    #[arg(long, default_value_t = 2000)]
    bootstrap: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Padding of a pass on each side, seconds (half the median probe interval).
    #[arg(long, default_value_t = 15)]
    pad_secs: u32,
    /// The lift the campaign was planned to detect, percentage points: with an interval
    /// that includes 0 and a minimum detectable lift above it, the report says
    /// `underpowered`.
    #[arg(long, default_value_t = 0.4, value_parser = positive)]
    target_lift_pp: f64,
    /// The share of passers the board sensors see, as VALUE:SE (for people-scale figures).
    #[arg(long, value_parser = capture)]
    board_capture: Option<(f64, f64)>,
    /// The share of store visitors the store sensors see, as VALUE:SE.
    #[arg(long, value_parser = capture)]
    store_capture: Option<(f64, f64)>,
    /// The store-level estimate's treated stores: those within this many metres of one
    /// of the campaign's boards (the others are its control stores).
    #[arg(long, default_value_t = 1000.0, value_parser = positive)]
    geo_radius_m: f64,
}

fn counts(s: &str) -> Result<(u64, u64), String> {
    let (x, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected CONVERTERS/DEVICES, e.g. 288/12000"))?;
    let x: u64 = x
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {x:?} is not a count"))?;
    let n: u64 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {n:?} is not a count"))?;
    if n == 0 || x > n {
        return Err(format!(
            "{s:?}: need 0 <= converters <= devices and devices > 0"
        ));
    }
    Ok((x, n))
}

fn capture(s: &str) -> Result<(f64, f64), String> {
    let (v, se) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected VALUE:SE, e.g. 0.43:0.03"))?;
    let v: f64 = v
        .parse()
        .map_err(|_| format!("{s:?}: {v:?} is not a number"))?;
    let se: f64 = se
        .parse()
        .map_err(|_| format!("{s:?}: {se:?} is not a number"))?;
    if !(v > 0.0 && v <= 1.0 && se >= 0.0) {
        return Err(format!("{s:?}: need 0 < VALUE <= 1 and SE >= 0"));
    }
    Ok((v, se))
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?}: expected a number above 0")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("footfall-attribution: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Compare {
            exposed,
            control,
            confidence,
        } => {
            if !(confidence > 0.5 && confidence < 1.0) {
                bail!("--confidence must be in (0.5, 1), not {confidence}");
            }
            let c = stats::compare(exposed.0, exposed.1, control.0, control.1, confidence);
            println!("{}", serde_json::to_string_pretty(&c)?);
        }
        Cmd::Plan {
            baseline,
            lift_pp,
            ratio,
            n,
            alpha,
        } => {
            let lift = lift_pp / 100.0;
            if !(baseline > 0.0 && baseline < 1.0) {
                bail!("--baseline must be a rate in (0, 1), not {baseline}");
            }
            if !(lift > 0.0 && baseline + lift < 1.0) {
                bail!("--lift-pp must be > 0 with baseline + lift < 100 %");
            }
            if !(ratio > 0.0 && alpha > 0.0 && alpha < 1.0) {
                bail!("--ratio must be > 0 and --alpha in (0, 1)");
            }
            let needed = |power| stats::exposed_needed(baseline, lift, ratio, alpha, power);
            let (n80, n90) = (needed(0.8), needed(0.9));
            let out = json!({
                "baseline": baseline,
                "lift_pp": lift_pp,
                "ratio": ratio,
                "alpha": alpha,
                "exposed_needed_80": n80,
                "control_needed_80": (n80 as f64 * ratio).ceil(),
                "exposed_needed_90": n90,
                "control_needed_90": (n90 as f64 * ratio).ceil(),
                "n_exposed": n,
                "minimum_detectable_pp_80": n.map(|n| 100.0 * stats::minimum_detectable(baseline, n, ratio, alpha, 0.8)),
                "minimum_detectable_pp_90": n.map(|n| 100.0 * stats::minimum_detectable(baseline, n, ratio, alpha, 0.9)),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Cmd::Report(args) => {
            let ReportArgs {
                campaign,
                out,
                clickhouse_url,
                database,
                user,
                password_env,
                ca_file,
                cluster,
                window_days,
                bootstrap,
                seed,
                pad_secs,
                target_lift_pp,
                board_capture,
                store_capture,
                geo_radius_m,
            } = *args;
            // The same checks as a configuration file's [clickhouse] section.
            let ch = warehouse::ClickHouseConfig::from_raw(warehouse::RawClickHouse {
                url: clickhouse_url,
                database,
                user,
                password_file: None,
                password_env,
                compression: "lz4".into(),
                ca_file,
                cluster,
                timeout_secs: None,
            })?;
            let (db, _) = ch.clients();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("a tokio runtime")?;
            let c = runtime.block_on(data::campaign(&db, &campaign))?;
            let mut p = match window_days {
                Some(w) => Params::defaults(w),
                None => Params::for_campaign(&c),
            };
            p.bootstrap = bootstrap;
            p.seed = seed;
            p.pad_secs = pad_secs;
            p.target_lift_pp = target_lift_pp;
            p.board_capture = board_capture;
            p.store_capture = store_capture;
            p.geo_radius_m = geo_radius_m;
            let inputs = runtime.block_on(data::load(&ch, c, &p.rules()))?;
            let r = report::build(&inputs, &p);
            report::write(&r, &out)?;
            let w = r.windows.iter().find(|w| w.primary).expect("primary");
            let c = &w.comparison;
            println!(
                "{}: {} within {} d: exposed {}/{} ({:.2} %), control {}/{} ({:.2} %); lift {:+.2} pp \
                 (95 % {:+.2} to {:+.2}, {}), p = {:.4}{}",
                r.campaign.id,
                r.status,
                w.window_days,
                c.exposed.converters,
                c.exposed.devices,
                100.0 * c.exposed.rate,
                c.control.converters,
                c.control.devices,
                100.0 * c.control.rate,
                100.0 * w.headline.estimate,
                100.0 * w.headline.interval.lo,
                100.0 * w.headline.interval.hi,
                w.headline.method.label(),
                c.p_value,
                if w.gate.passed {
                    String::new()
                } else {
                    format!(" [{}]", w.gate.reasons.join("; "))
                }
            );
            let g = &r.geo;
            println!(
                "store-level: {} treated / {} control stores within {} m; {}",
                g.treated.len(),
                g.control.len(),
                g.radius_m,
                match (g.lift, g.interval) {
                    (Some(l), Some(i)) => format!(
                        "visitors {:+.1} % (95 % {:+.1} to {:+.1} %), p = {:.4}",
                        100.0 * l,
                        100.0 * i.lo,
                        100.0 * i.hi,
                        g.p_value.unwrap_or(f64::NAN)
                    ),
                    _ => format!("no interval ({:?})", g.status),
                }
            );
            println!("report: {}", out.join("report.html").display());
        }
    }
    Ok(())
}
