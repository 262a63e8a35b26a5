//! `footfall-fleet`: enrols sensors and collectors (README, "Deploying a fleet").

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use device_id::EpochKeys;
use firmware_config::{SecretSource, SiteKind, MIN_SECRET_BYTES};
use fleet::enrol::{self, SensorEnrolment};
use fleet::pki::{self, Use};

#[derive(Parser)]
#[command(
    name = "footfall-fleet",
    version,
    about = "Enrols Footfall sensors and collectors"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Creates the fleet CA (ca.crt, ca.key mode 0600) in --ca. Keep ca.key offline.
    Ca {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long, default_value = "footfall-fleet-ca")]
        name: String,
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issues the broker's server certificate (broker.crt, broker.key) into --out, with the
    /// CA's certificate revocation list (ca.crl) and, unless there, the access rules of a
    /// fleet with no client yet (dynamic-security.json).
    Broker {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Host names or IP addresses the sensors and collectors reach it at (repeatable).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Enrols a sensor: its client certificate, the fleet CA, its epoch keys and agent.toml
    /// in --out (install as /etc/footfall, owned by footfall-agent).
    Sensor {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        site: String,
        #[arg(long)]
        sensor: String,
        #[arg(long, value_enum, default_value_t = Kind::Store)]
        site_kind: Kind,
        /// The fleet broker, mqtts://host:port.
        #[arg(long)]
        broker: String,
        /// The epoch keys to install (footfall-fleet keys).
        #[arg(long)]
        keys: PathBuf,
        #[arg(long, default_value_t = 30)]
        bridge_days: u32,
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// The broker's access rules (dynamic-security.json), where the sensor gets its
        /// role; restart the broker after.
        #[arg(long)]
        access: PathBuf,
    },
    /// Enrols a collector: its client certificate in --out, and its read-only role in the
    /// broker's access rules (restart the broker after).
    Collector {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        name: String,
        /// The broker's access rules (dynamic-security.json).
        #[arg(long)]
        access: PathBuf,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Revokes every certificate issued to an identity (a stolen sensor: `<site>/<sensor>`;
    /// a collector: `collector-<name>`) and writes the CA's revocation list to --crl. Copy it
    /// to the broker (/etc/mosquitto/footfall/ca.crl) and restart the broker.
    Revoke {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        identity: String,
        #[arg(long)]
        crl: PathBuf,
    },
    /// Derives the epoch keys sensors hold (the epoch containing --at and the next) from the
    /// tenant secret, into --out (mode 0600). Run it before each epoch ends and send the file
    /// to every sensor: that is the rotation.
    Keys {
        /// The tenant secret (mode 0600); it never leaves this machine.
        #[arg(long)]
        secret_file: PathBuf,
        #[arg(long, default_value_t = 45)]
        epoch_days: u32,
        /// RFC 3339 time in the first epoch to cover (default: now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Prints the opt-out list of device addresses read from standard input (one per line,
    /// never on the command line): their device keys in every epoch from --from to --to, for
    /// the sensors' identity.opt_out_file and `footfall-collector purge --keys`.
    OptOut {
        /// The tenant secret (mode 0600).
        #[arg(long)]
        secret_file: PathBuf,
        #[arg(long, default_value_t = 45)]
        epoch_days: u32,
        /// RFC 3339 time in the first epoch to cover: as far back as the tables keep rows.
        #[arg(long)]
        from: String,
        /// RFC 3339 time in the last epoch to cover (default: now; the sensors also need
        /// the next epoch's keys before it begins).
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Store,
    Billboard,
}

fn main() -> ExitCode {
    match run(Cli::parse().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("footfall-fleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// An RFC 3339 time given as `flag`, or now.
fn time_or_now(flag: &str, t: Option<String>) -> anyhow::Result<i64> {
    match t {
        Some(t) => Ok(chrono::DateTime::parse_from_rfc3339(&t)
            .with_context(|| format!("{flag} {t}: not an RFC 3339 time"))?
            .timestamp_millis()),
        None => Ok(chrono::Utc::now().timestamp_millis()),
    }
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Ca { ca, name, days } => pki::create_ca(&ca, &name, days),
        Cmd::Broker {
            ca,
            out,
            hosts,
            days,
        } => {
            pki::issue(
                &ca,
                &out,
                "broker",
                "footfall-broker",
                Use::Server(&hosts),
                days,
            )?;
            pki::write_crl(&ca, &out.join("ca.crl"))?;
            fleet::dynsec::create(&out.join("dynamic-security.json"))
        }
        Cmd::Revoke { ca, identity, crl } => {
            let n = pki::revoke(&ca, &identity)?;
            pki::write_crl(&ca, &crl)?;
            eprintln!(
                "footfall-fleet: revoked {n} certificate(s) of {identity}; {} lists them: copy \
                 it to the broker's crlfile and restart the broker",
                crl.display()
            );
            Ok(())
        }
        Cmd::Sensor {
            ca,
            out,
            site,
            sensor,
            site_kind,
            broker,
            keys,
            bridge_days,
            days,
            access,
        } => {
            let text = std::fs::read_to_string(&keys)
                .with_context(|| format!("reading {}", keys.display()))?;
            let keys = EpochKeys::parse(&text)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{}", keys.display()))?;
            let site_kind = match site_kind {
                Kind::Store => SiteKind::Store,
                Kind::Billboard => SiteKind::Billboard,
            };
            let e = SensorEnrolment {
                site: &site,
                sensor: &sensor,
                site_kind,
                broker: &broker,
                keys: &keys,
                bridge_days,
                days,
                access: &access,
            };
            enrol::sensor(&ca, &out, &e)
        }
        Cmd::Collector {
            ca,
            out,
            name,
            access,
            days,
        } => enrol::collector(&ca, &out, &name, &access, days),
        Cmd::Keys {
            secret_file,
            epoch_days,
            at,
            out,
        } => {
            let secret = SecretSource::File(secret_file).load("--secret-file", MIN_SECRET_BYTES)?;
            let at_ms = time_or_now("--at", at)?;
            device_id::check_epoch_days(epoch_days)
                .map_err(|e| anyhow::anyhow!("--epoch-days {epoch_days}: {e}"))?;
            let keys = EpochKeys::derive(secret.expose(), epoch_days, at_ms, 1);
            pki::write_private(&out, keys.to_text().as_bytes())
        }
        Cmd::OptOut {
            secret_file,
            epoch_days,
            from,
            to,
        } => {
            device_id::check_epoch_days(epoch_days)
                .map_err(|e| anyhow::anyhow!("--epoch-days {epoch_days}: {e}"))?;
            let secret = SecretSource::File(secret_file).load("--secret-file", MIN_SECRET_BYTES)?;
            let span = (time_or_now("--from", Some(from))?, time_or_now("--to", to)?);
            if span.1 < span.0 {
                anyhow::bail!("--to is before --from");
            }
            let mut input = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
                .context("reading the addresses from standard input")?;
            let macs = fleet::opt_out::parse_macs(&input)
                .map_err(|e| anyhow::anyhow!("standard input, {e}"))?;
            let epochs = device_id::Epochs::new(epoch_days, 0);
            print!(
                "{}",
                fleet::opt_out::list(secret.expose(), epochs, span, &macs)
            );
            Ok(())
        }
    }
}
