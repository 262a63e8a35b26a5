//! tshark, an independent 802.11 dissector: the parser's oracle.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};

/// One line per probe request in `pcap` with tshark's values of `fields` (comma-separated,
/// first occurrence of each), e.g. `["wlan.sa", "wlan.seq"]`.
pub fn tshark_probe_fields(pcap: &Path, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", "wlan.fc.type_subtype == 4", "-T", "fields"])
        .args(["-E", "occurrence=f", "-E", "separator=,"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .stderr(Stdio::null())
        .output()
        .expect("tshark is installed (deploy/setup.sh)");
    assert!(out.status.success(), "tshark failed on {}", pcap.display());
    String::from_utf8(out.stdout)
        .expect("tshark prints UTF-8")
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

/// tshark's count of probe requests and their distinct source addresses (lowercase
/// `aa:bb:cc:dd:ee:ff`).
pub fn tshark_probes(pcap: &Path) -> (u64, HashSet<String>) {
    let lines = tshark_probe_fields(pcap, &["wlan.sa"]);
    let macs = lines.iter().map(|l| l.to_lowercase()).collect();
    (lines.len() as u64, macs)
}
