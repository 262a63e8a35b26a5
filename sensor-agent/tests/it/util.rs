use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;
pub use testkit::assert_success;

pub const AGENT: &str = env!("CARGO_BIN_EXE_footfall-agent");

/// A sensor's files in a temp dir: config, 0600 tenant secret, spool.
pub struct Sensor {
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Sensor {
    /// `extra` is appended to the config; `mqtt_url` may be any (unused with `--out`).
    pub fn new(mqtt_url: &str, extra: &str) -> Sensor {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("tenant.key");
        std::fs::write(&key, "test-tenant-secret-0123456789abcdef\n").expect("write key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let config = dir.path().join("agent.toml");
        let base = format!(
            "version = 1\n[sensor]\nid = \"s-1\"\nsite = \"lab\"\n\
             [capture]\nrssi_floor_dbm = -128\nfcs_policy = \"trust-flag\"\n\
             [identity]\nsecret_file = \"tenant.key\"\n\
             [mqtt]\nurl = \"{mqtt_url}\"\nstatus_interval_secs = 1\nkeepalive_secs = 5\n\
             [spool]\ndir = \"spool\"\n"
        );
        std::fs::write(&config, merge_sections(&base, extra)).expect("write config");
        Sensor { dir, config }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces `from` with `to` in the configuration file (which must contain it).
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        assert!(text.contains(from), "config has no {from:?}");
        std::fs::write(&self.config, text.replace(from, to)).expect("config");
    }

    /// `footfall-agent check-config` on this sensor's configuration.
    pub fn check_config(&self) -> Output {
        Command::new(AGENT)
            .arg("check-config")
            .arg(&self.config)
            .output()
            .expect("run agent")
    }

    pub fn spool(&self) -> PathBuf {
        self.path("spool")
    }

    /// `footfall-agent replay` with this sensor's config.
    pub fn replay(&self, pcap: &Path) -> Command {
        let mut c = Command::new(AGENT);
        c.args(["replay", "--config"])
            .arg(&self.config)
            .arg("--pcap")
            .arg(pcap);
        c
    }

    /// `footfall-agent replay --out out` reading a FIFO (`in.pcap` in the sensor's dir), with
    /// its stderr piped: the agent, and the FIFO open for writing.
    pub fn replay_fifo_to(&self, out: &Path) -> (std::process::Child, std::fs::File) {
        let fifo = self.path("in.pcap");
        mkfifo(&fifo);
        let mut agent = self
            .replay(&fifo)
            .arg("--out")
            .arg(out)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("agent");
        let w = open_fifo(&fifo, &mut agent);
        (agent, w)
    }

    /// Replays to a JSON-lines file and returns (envelope lines, summary JSON).
    pub fn replay_to_file(&self, pcap: &Path) -> (Vec<String>, serde_json::Value) {
        let out = self.path("out.jsonl");
        let summary = self.path("summary.json");
        let o = self
            .replay(pcap)
            .arg("--out")
            .arg(&out)
            .arg("--summary")
            .arg(&summary)
            .output()
            .expect("run agent");
        assert_success(&o);
        let lines = std::fs::read_to_string(&out)
            .expect("out file")
            .lines()
            .map(str::to_owned)
            .collect();
        let summary = serde_json::from_slice(&std::fs::read(&summary).expect("summary file"))
            .expect("summary is JSON");
        (lines, summary)
    }
}

/// Inserts each `[section]` block of `extra` under the same header of `base` (TOML forbids
/// a table twice).
fn merge_sections(base: &str, extra: &str) -> String {
    let mut out = base.to_owned();
    let mut section = String::new();
    for line in extra.lines() {
        if line.starts_with('[') {
            section = format!("{line}\n");
            if !out.contains(&section) {
                out.push_str(&section);
            }
        } else if !line.trim().is_empty() {
            let at = out.find(&section).expect("section present") + section.len();
            out.insert_str(at, &format!("{line}\n"));
        }
    }
    out
}

pub fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(ok.success());
}

/// Opens a FIFO for writing once `agent` opens it for reading; fails with the agent's
/// stderr instead of blocking forever if the agent died first.
pub fn open_fifo(fifo: &Path, agent: &mut std::process::Child) -> std::fs::File {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::OpenOptions::new().write(true).open(path));
    });
    loop {
        if let Ok(f) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
            return f.expect("open fifo");
        }
        if let Some(status) = agent.try_wait().expect("agent status") {
            let mut err = String::new();
            if let Some(mut e) = agent.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("the agent exited ({status}) before reading its input:\n{err}");
        }
    }
}

pub fn capture(rel: &str) -> PathBuf {
    testkit::pcaps_dir().join(rel)
}

/// The seq of an envelope line.
pub fn seq_of(line: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(line).expect("envelope JSON");
    v["seq"].as_u64().expect("seq")
}

/// Asserts the received envelopes cover 1..=max with no gap, duplicates byte-identical;
/// returns max.
pub fn assert_gapless(lines: &[String]) -> u64 {
    let mut by_seq = std::collections::BTreeMap::new();
    for l in lines {
        let s = seq_of(l);
        if let Some(prev) = by_seq.insert(s, l.clone()) {
            assert_eq!(
                &prev, l,
                "seq {s} was delivered twice with different content"
            );
        }
    }
    let max = *by_seq.keys().next_back().expect("some envelopes");
    let missing: Vec<u64> = (1..=max).filter(|s| !by_seq.contains_key(s)).collect();
    assert!(missing.is_empty(), "seq missing downstream: {missing:?}");
    max
}
