use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use testkit::assert_success;
use testkit::ClickHouse;

pub const COLLECTOR: &str = env!("CARGO_BIN_EXE_footfall-collector");

/// A collector configuration for `ch`'s database `db`, in `dir`.
pub fn config(dir: &Path, ch: &ClickHouse, db: &str) -> PathBuf {
    let path = dir.join(format!("{db}.toml"));
    std::fs::write(
        &path,
        format!(
            "version = 1\n[clickhouse]\nurl = \"{}\"\ndatabase = \"{db}\"\n",
            ch.url()
        ),
    )
    .expect("write config");
    path
}

pub fn collector(args: &[&str], config: &Path) -> Output {
    let mut c = Command::new(COLLECTOR);
    c.args(["--log", "warn"])
        .arg(args[0])
        .arg("--config")
        .arg(config);
    c.args(&args[1..]).output().expect("run footfall-collector")
}
