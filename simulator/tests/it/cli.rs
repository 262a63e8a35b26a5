use std::process::Command;

use crate::util::{files_under, generate, Csv};

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_footfall-sim"))
}

/// `footfall-sim generate --preset tiny --quiet ARGS --out DIR`, which must succeed.
fn generate_tiny(args: &[&str], dir: &std::path::Path) {
    let out = sim()
        .args(["generate", "--preset", "tiny", "--quiet"])
        .args(args)
        .arg("--out")
        .arg(dir)
        .output()
        .expect("run footfall-sim");
    testkit::assert_success(&out);
}

#[test]
fn the_same_seed_gives_byte_identical_files_and_another_seed_does_not() {
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    for (dir, seed) in dirs.iter().zip(["7", "7", "8"]) {
        generate_tiny(&["--seed", seed], dir.path());
    }
    let files = files_under(dirs[0].path());
    assert_eq!(files, files_under(dirs[1].path()));
    for must in [
        "captures/board-001-s1.pcap",
        "truth/summary.json",
        "ad_plays.csv",
        "receipts.csv",
    ] {
        assert!(files.iter().any(|f| f.ends_with(must)), "{must} is written");
    }
    let differs = files.iter().filter(|f| {
        std::fs::read(dirs[0].path().join(f)).expect("read")
            != std::fs::read(dirs[2].path().join(f)).expect("read")
    });
    for f in &files {
        assert_eq!(
            std::fs::read(dirs[0].path().join(f)).expect("read"),
            std::fs::read(dirs[1].path().join(f)).expect("read"),
            "{} differs between two runs with the same seed",
            f.display()
        );
    }
    assert!(differs.count() > 5, "another seed gives another city");
}

#[test]
fn the_thread_count_does_not_change_the_output() {
    let dirs: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    for (dir, threads) in dirs.iter().zip(["1", "3"]) {
        generate_tiny(&["--threads", threads], dir.path());
    }
    let files = files_under(dirs[0].path());
    assert!(files.len() > 10);
    for f in &files {
        assert!(
            std::fs::read(dirs[0].path().join(f)).expect("read")
                == std::fs::read(dirs[1].path().join(f)).expect("read"),
            "{} differs between 1 and 3 threads",
            f.display()
        );
    }
}

#[test]
fn the_fast_mode_and_the_captures_share_one_truth() {
    // The same seed in both modes gives the same people, sightings and campaign truth.
    let (pcap, a) = generate("preset = \"tiny\"\n", 3);
    let (fast, b) = generate("preset = \"tiny\"\n[output]\nmode = \"envelopes\"\n", 3);
    for f in [
        "visits.csv",
        "passes.csv",
        "exposures.csv",
        "identities.csv",
        "campaign-acme-tiny-people.csv",
    ] {
        assert_eq!(
            std::fs::read(pcap.path().join("truth").join(f)).expect("read"),
            std::fs::read(fast.path().join("truth").join(f)).expect("read"),
            "truth/{f} depends on the output mode"
        );
    }
    assert_eq!(a.sightings, b.sightings);
    assert_eq!(
        serde_json::to_string(&a.campaigns).expect("json"),
        serde_json::to_string(&b.campaigns).expect("json")
    );
}

#[test]
fn a_bad_scenario_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "preset = \"tiny\"\n[population]\nemployed_share = 1.7\n",
    )
    .expect("write");
    let out = sim()
        .args(["generate", "--out"])
        .arg(dir.path().join("out"))
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run footfall-sim");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("population.employed_share"), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing is written");

    std::fs::write(&path, "preset = \"tiny\"\n[radio]\nsensitivity = -90\n").expect("write");
    let out = sim()
        .arg("check")
        .arg(&path)
        .output()
        .expect("run footfall-sim");
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sensitivity"));
}

#[test]
fn tshark_reads_every_capture_cleanly_and_counts_the_truths_probe_requests() {
    let (dir, summary) = generate("preset = \"tiny\"\n", 11);
    let sensors = Csv::read(&dir.path().join("truth/sensors.csv"));
    assert_eq!(sensors.rows.len() as u64, summary.sensors);
    let mut total = 0;
    for row in &sensors.rows {
        let pcap = dir
            .path()
            .join("captures")
            .join(format!("{}.pcap", row["sensor_id"]));
        let count = |filter: &str, checksum: bool| {
            let out = Command::new("tshark")
                .args(["-n", "-r"])
                .arg(&pcap)
                .args([
                    "-o",
                    if checksum {
                        "wlan.check_checksum:TRUE"
                    } else {
                        "wlan.check_checksum:FALSE"
                    },
                ])
                .args(["-Y", filter, "-T", "fields", "-e", "frame.number"])
                .output()
                .expect("tshark is installed (deploy/setup.sh)");
            assert!(out.status.success(), "tshark failed on {}", pcap.display());
            String::from_utf8_lossy(&out.stdout).lines().count() as u64
        };
        let want = |k: &str| row[k].parse::<u64>().expect("a count");
        assert_eq!(
            count("_ws.malformed", false),
            0,
            "{} has malformed frames",
            pcap.display()
        );
        assert_eq!(
            count("wlan.fc.type_subtype == 4", false),
            want("probe_requests"),
            "{}",
            pcap.display()
        );
        assert_eq!(
            count("wlan.fcs.status == 0", true),
            want("corrupt_probe_requests"),
            "bad FCS in {}",
            pcap.display()
        );
        assert_eq!(count("wlan.fc.type_subtype == 8", false), want("beacons"));
        assert!(want("probe_requests") > 0 && want("beacons") > 0);
        total += want("probe_requests");
    }
    assert_eq!(total, summary.probe_requests);
}

#[test]
fn the_fast_mode_writes_the_agents_envelopes() {
    let (dir, summary) = generate("preset = \"tiny\"\n[output]\nmode = \"envelopes\"\n", 5);
    let sensors = Csv::read(&dir.path().join("inventory/sensors.csv"));
    let mut sightings = 0;
    for row in &sensors.rows {
        let path = dir
            .path()
            .join("envelopes")
            .join(format!("{}.jsonl", row["sensor_id"]));
        let text = std::fs::read_to_string(&path).expect("envelopes for every sensor");
        let mut last_seq = 0;
        for line in text.lines() {
            let e: wire::Envelope = serde_json::from_str(line).expect("a valid envelope");
            assert_eq!(e.v, wire::VERSION);
            assert_eq!(e.sensor, row["sensor_id"]);
            assert_eq!(e.site, row["site_id"]);
            assert_eq!(e.seq, last_seq + 1, "seq rises by one from 1");
            last_seq = e.seq;
            assert!(!e.sightings.is_empty() && e.sightings.len() <= 500);
            for s in &e.sightings {
                assert!(s.first_seen <= s.last_seen && s.frames > 0 && s.is_final);
                assert!(
                    s.rssi_max >= -90 && f64::from(s.rssi_mean) <= f64::from(s.rssi_max) + 1e-6
                );
            }
            sightings += e.sightings.len() as u64;
        }
    }
    assert_eq!(sightings, summary.sightings);
    assert!(sightings > 100);
}
