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

/// The text of `GET /metrics` on 127.0.0.1:`port` (empty if nothing answers).
pub fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
