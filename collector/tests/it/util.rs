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

/// The first store in a simulated city's inventory.
pub fn first_store(city: &Path) -> String {
    std::fs::read_to_string(city.join("inventory/sites.csv"))
        .expect("sites")
        .lines()
        .find(|l| l.contains(",store,"))
        .and_then(|l| l.split(',').next())
        .expect("a store")
        .to_owned()
}

/// Writes a calibrations CSV of one row in `dir`, `site` and then `fields` (floor, people
/// per device, fixture hours, windows, MAE, as `calibrate` writes them), and imports it into
/// the inventory of the collector `config` names; returns the CSV's path.
pub fn import_calibration(dir: &Path, config: &Path, site: &str, fields: &str) -> PathBuf {
    let path = dir.join("calibrations.csv");
    std::fs::write(
        &path,
        format!(
            "site_id,rssi_min_dbm,people_per_device,fixture_hours,windows,mae\n{site},{fields}\n"
        ),
    )
    .expect("calibrations");
    assert_success(&collector(
        &["import", "calibrations", path.to_str().expect("utf-8")],
        config,
    ));
    path
}
