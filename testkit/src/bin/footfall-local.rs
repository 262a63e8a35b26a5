//! `footfall-local`: the servers and tools of the test suite, for scripts (`make demo`, the
//! benches). One way to start Mosquitto and ClickHouse: the scripts run the same code as
//! the tests (testkit), so their configurations cannot drift apart.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use testkit::{ClickHouse, Mosquitto};

#[derive(Parser)]
#[command(
    name = "footfall-local",
    about = "Local servers and tools for Footfall's scripts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Starts the servers asked for with their files under DIR, writes their ports and
    /// process ids as shell assignments to DIR/servers.env (`READY=1` last), and runs until
    /// SIGTERM or SIGINT, then stops them gracefully.
    Servers {
        #[arg(long)]
        dir: PathBuf,
        /// A broker: `quiet` for load (no persistence, errors and warnings logged), `all`
        /// to log every packet (scripts that wait for a SUBSCRIBE in DIR/mosquitto/mosquitto.log).
        #[arg(long, value_enum)]
        mosquitto: Option<Log>,
        /// The broker with the shipped configuration's limits on messages in flight and
        /// queued (deploy/mosquitto/footfall.conf), instead of none.
        #[arg(long, requires = "mosquitto")]
        shipped_limits: bool,
        /// Debian's ClickHouse, data in DIR/clickhouse.
        #[arg(long)]
        clickhouse: bool,
    },
    /// Prints a free TCP port on 127.0.0.1.
    FreePort,
}

#[derive(Clone, Copy, ValueEnum)]
enum Log {
    Quiet,
    All,
}

fn main() {
    match Cli::parse().command {
        Command::Servers {
            dir,
            mosquitto,
            shipped_limits,
            clickhouse,
        } => servers(&dir, mosquitto.map(|log| (log, shipped_limits)), clickhouse),
        Command::FreePort => println!("{}", testkit::free_port()),
    }
}

/// `mosquitto`: the broker's log, and whether it has the shipped limits.
fn servers(dir: &Path, mosquitto: Option<(Log, bool)>, clickhouse: bool) {
    // The servers' configurations name their files by absolute path.
    let dir = &std::path::absolute(dir).expect("the current directory exists");
    let mut signals = Signals::new([SIGTERM, SIGINT]).expect("install signal handlers");
    let env = dir.join("servers.env");
    let _ = fs::remove_file(&env);
    let mut lines = Vec::new();
    let mut broker = mosquitto.map(|(log, limited)| {
        let extra = if limited {
            Mosquitto::shipped_limits()
        } else {
            String::new()
        };
        let m = Mosquitto::start_in(&dir.join("mosquitto"), matches!(log, Log::Quiet), extra);
        lines.push(format!("MOSQUITTO_PORT={}", m.port));
        lines.push(format!("MOSQUITTO_PID={}", m.pid().unwrap_or(0)));
        lines.push(format!(
            "MOSQUITTO_LOG={}",
            m.dir().join("mosquitto.log").display()
        ));
        m
    });
    let mut ch = clickhouse.then(|| {
        let c = ClickHouse::start_in(&dir.join("clickhouse"));
        lines.push(format!("CLICKHOUSE_HTTP_PORT={}", c.http_port));
        lines.push(format!("CLICKHOUSE_TCP_PORT={}", c.tcp_port));
        lines.push(format!("CLICKHOUSE_PID={}", c.pid().unwrap_or(0)));
        c
    });
    lines.push("READY=1".to_owned());
    let mut f = fs::File::create(&env).expect("create servers.env");
    f.write_all((lines.join("\n") + "\n").as_bytes())
        .expect("write servers.env");
    drop(f);
    signals.forever().next();
    if let Some(c) = ch.as_mut() {
        c.stop();
    }
    if let Some(m) = broker.as_mut() {
        m.stop();
    }
}
