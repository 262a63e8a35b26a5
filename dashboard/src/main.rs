//! `footfall-dashboard`: arguments, tracing, the runtime and the exit code; the service is
//! [`dashboard::serve`].

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dashboard::config::{Config, DEFAULTS};
use firmware_config::ConfigError;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(
    name = "footfall-dashboard",
    version,
    about = "Footfall store-visit dashboards"
)]
struct Cli {
    /// Log filter (tracing env-filter syntax).
    #[arg(long, default_value = "info")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serves the dashboard until SIGTERM/SIGINT.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Adds a user to the users file, the password read from the first line of stdin (at
    /// least 12 characters).
    AddUser {
        #[arg(long)]
        users: PathBuf,
        name: String,
        /// Limit the user to these brands (comma-separated); every brand without.
        #[arg(long, value_delimiter = ',')]
        brands: Vec<String>,
    },
    /// Validates a configuration file (the session key included).
    CheckConfig { file: PathBuf },
    /// Prints the default configuration, every field commented.
    PrintDefaultConfig,
}

/// EX_CONFIG: a bad configuration; EX_DATAERR: a bad users file or user.
const EX_CONFIG: u8 = 78;
const EX_DATAERR: u8 = 65;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("footfall-dashboard: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(EX_CONFIG)
            } else if e.downcast_ref::<dashboard::auth::UsersError>().is_some()
                || matches!(
                    e.downcast_ref::<dashboard::Error>(),
                    Some(dashboard::Error::Users(_))
                )
            {
                ExitCode::from(EX_DATAERR)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Serve { config } => {
            let c = Config::load(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut term = signal(SignalKind::terminate())?;
                let stop = async move {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                };
                dashboard::serve(&c, stop).await?;
                Ok(())
            })
        }
        Cmd::AddUser {
            users,
            name,
            brands,
        } => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            dashboard::auth::add_user(&users, &name, password, &brands)?;
            eprintln!("added {name} to {}", users.display());
            Ok(())
        }
        Cmd::CheckConfig { file } => {
            let c = Config::load(&file)?;
            println!("{}: valid (listens on {})", file.display(), c.listen());
            Ok(())
        }
        Cmd::PrintDefaultConfig => {
            print!("{DEFAULTS}");
            Ok(())
        }
    }
}
