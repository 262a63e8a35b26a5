//! `footfall-collector occupancy` and `calibrate` on real labelled lab days (pcaps/fryza):
//! the agent replays the day's capture (its library, as `footfall-agent replay --out`), the
//! collector's binary estimates, the labels judge.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sensor_agent::{Loaded, ReplayOptions, ReplayOutput};
use testkit::{assert_success, FryzaDay};
use tokio_util::sync::CancellationToken;

use crate::util::COLLECTOR;

const WINDOW_MS: i64 = 15 * 60_000;

/// The agent's envelopes of a day's capture, in `dir`, in `encoding`.
fn replay(dir: &Path, day: &FryzaDay, encoding: wire::Encoding) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("tenant.key");
    std::fs::write(&key, "collector-test-tenant-secret-0123456789").expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[sensor]\nid = \"lab\"\nsite = \"lab\"\nsite_kind = \"store\"\n\
             [identity]\nsecret_file = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\
             client_id = \"t\"\n[spool]\ndir = \"{}\"\n",
            key.display(),
            dir.join("spool").display()
        ),
    )
    .expect("agent config");
    let out = dir.join(format!("{}.{encoding:?}", day.name));
    let loaded = Loaded::from_config(firmware_config::Config::load(&config).expect("config"))
        .expect("loads");
    let opts = ReplayOptions {
        pcap: day.pcap.clone(),
        output: ReplayOutput::File(out.clone(), encoding),
        speed: None,
        count_devices: false,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(sensor_agent::replay(loaded, opts, CancellationToken::new()))
        .expect("replay");
    out
}

fn collector(args: &[&str]) -> Output {
    Command::new(COLLECTOR)
        .args(["--log", "warn"])
        .args(args)
        .output()
        .expect("run footfall-collector")
}

/// (window start ms, people, lo, hi) rows of the occupancy CSV.
fn occupancy(args: &[&str]) -> Vec<(i64, f64, f64, f64)> {
    occupancy_said(args).0
}

/// The rows of the occupancy CSV, and what the command said on stderr.
fn occupancy_said(args: &[&str]) -> (Vec<(i64, f64, f64, f64)>, String) {
    let o = collector(&[&["occupancy"], args].concat());
    assert_success(&o);
    let text = String::from_utf8(o.stdout).expect("UTF-8");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("window_start,people,lo,hi"));
    let rows = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let start = chrono::DateTime::parse_from_rfc3339(f[0]).expect("RFC 3339");
            let n = |i: usize| f[i].parse::<f64>().expect("a number");
            (start.timestamp_millis(), n(1), n(2), n(3))
        })
        .collect();
    (rows, String::from_utf8_lossy(&o.stderr).into_owned())
}

fn mae(truth: &BTreeMap<i64, f64>, est: impl Fn(i64) -> f64) -> f64 {
    truth.iter().map(|(w, t)| (est(*w) - t).abs()).sum::<f64>() / truth.len() as f64
}

#[test]
fn occupancy_counts_people_not_addresses_on_a_real_lab_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let day = FryzaDay::load("position_2_2024-03-14");
    let env = replay(dir.path(), &day, wire::Encoding::Json);
    let env = env.to_str().expect("UTF-8 path");
    let rows = occupancy(&["--envelopes", env]);
    // The same envelopes in the binary encoding: the same estimates.
    let binary = replay(dir.path(), &day, wire::Encoding::Binary);
    assert_eq!(
        occupancy(&["--envelopes", binary.to_str().expect("UTF-8 path")]),
        rows
    );

    // One row per 15-min window (aligned to :00/:15/:30/:45 UTC), empty ones included, from
    // the first frame's window to the last's.
    let first = day.frames.iter().map(|f| f.ms).min().expect("frames");
    let last = day.frames.iter().map(|f| f.ms).max().expect("frames");
    assert_eq!(rows[0].0, first.div_euclid(WINDOW_MS) * WINDOW_MS);
    assert_eq!(
        rows.last().expect("rows").0,
        last.div_euclid(WINDOW_MS) * WINDOW_MS
    );
    assert!(rows.windows(2).all(|p| p[1].0 - p[0].0 == WINDOW_MS));
    assert!(rows.iter().all(|r| r.2 <= r.1 && r.1 <= r.3));

    // Closer to the people in the room than saying nobody, and than counting device keys
    // (one per randomized address).
    let truth = day.truth(WINDOW_MS);
    let est: BTreeMap<i64, f64> = rows.iter().map(|r| (r.0, r.1)).collect();
    let ours = mae(&truth, |w| est.get(&w).copied().unwrap_or(0.0));
    let zero = mae(&truth, |_| 0.0);
    let mut keys: BTreeMap<i64, HashSet<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(env).expect("envelopes").lines() {
        let e: wire::Envelope = serde_json::from_str(line).expect("an envelope");
        for s in e.sightings {
            keys.entry(s.first_seen.0.div_euclid(WINDOW_MS) * WINDOW_MS)
                .or_default()
                .insert(s.device.to_string());
        }
    }
    let by_keys = mae(&truth, |w| keys.get(&w).map_or(0.0, |k| k.len() as f64));
    assert!(
        ours < 0.6 * zero && ours < 0.2 * by_keys,
        "MAE {ours:.2} people; always zero {zero:.2}, device keys {by_keys:.2}"
    );

    // The same day from an agent of contract version 1 (no links): every randomized address
    // is a device of its own, so more people, and stderr says why.
    let old = dir.path().join("v1.jsonl");
    let v1: String = std::fs::read_to_string(env)
        .expect("envelopes")
        .lines()
        .map(|l| {
            let mut e: wire::Envelope = serde_json::from_str(l).expect("an envelope");
            e.v = 1;
            e.sightings.iter_mut().for_each(|s| s.link = None);
            serde_json::to_string(&e).expect("serializable") + "\n"
        })
        .collect();
    std::fs::write(&old, v1).expect("write");
    let o = collector(&["occupancy", "--envelopes", old.to_str().expect("UTF-8")]);
    assert_success(&o);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("sightings came without a link"), "{said}");
    let sum = |rows: &[(i64, f64, f64, f64)]| rows.iter().map(|r| r.1).sum::<f64>();
    let unlinked: Vec<(i64, f64, f64, f64)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<f64> = l
                .split(',')
                .skip(1)
                .map(|x| x.parse().expect("a number"))
                .collect();
            (0, f[0], f[1], f[2])
        })
        .collect();
    assert!(
        sum(&unlinked) > 1.2 * sum(&rows),
        "person-windows: {:.1} without links, {:.1} with",
        sum(&unlinked),
        sum(&rows)
    );

    // 5-min windows: three per 15 min.
    let fine = occupancy(&["--envelopes", env, "--window-mins", "5"]);
    assert!(
        fine.len().abs_diff(3 * rows.len()) <= 2,
        "{} vs {}",
        fine.len(),
        rows.len()
    );
}

#[test]
fn a_calibration_fitted_on_a_labelled_day_is_used_and_said() {
    let dir = tempfile::tempdir().expect("tempdir");
    let day = FryzaDay::load("position_1_2024-03-14");
    let env = replay(dir.path(), &day, wire::Encoding::Json);
    let env = env.to_str().expect("UTF-8 path");
    let truth_csv = dir.path().join("truth.csv");
    std::fs::write(&truth_csv, day.truth_csv(WINDOW_MS)).expect("truth");
    let cal = dir.path().join("calibrations.csv");
    let o = collector(&[
        "calibrate",
        "--envelopes",
        env,
        "--truth",
        truth_csv.to_str().expect("UTF-8"),
    ]);
    assert_success(&o);
    std::fs::write(&cal, &o.stdout).expect("calibration");
    // A calibrations CSV for the envelopes' site, as `import calibrations` reads it.
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "site_id,rssi_min_dbm,people_per_device,fixture_hours,windows,mae",
        "{text}"
    );
    assert!(lines[1].starts_with("lab,") && lines.len() == 2, "{text}");

    let truth = day.truth(WINDOW_MS);
    let score = |rows: &[(i64, f64, f64, f64)]| {
        let est: BTreeMap<i64, f64> = rows.iter().map(|r| (r.0, r.1)).collect();
        mae(&truth, |w| est.get(&w).copied().unwrap_or(0.0))
    };
    let (uncalibrated, said) = occupancy_said(&["--envelopes", env]);
    assert!(said.contains("min, uncalibrated ("), "{said}");
    let with_calibration = || {
        occupancy_said(&[
            "--envelopes",
            env,
            "--calibration",
            cal.to_str().expect("UTF-8"),
        ])
    };
    let (calibrated, said) = with_calibration();
    let fixture_hours = lines[1].split(',').nth(3).expect("fixture_hours");
    assert!(
        said.contains("min, calibrated (")
            && said.contains(&format!("fixtures heard in {fixture_hours} hours")),
        "{said}"
    );
    // Fitted on this very day: it must do better than the defaults here.
    let (calibrated, uncal) = (score(&calibrated), score(&uncalibrated));
    assert!(
        calibrated < uncal,
        "calibrated {calibrated:.2}, uncalibrated {uncal:.2}"
    );
    // A calibrations CSV written before the fixture rule was fitted: read with the 4 hours
    // it was fitted with.
    let old: String = text
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(3);
            f.join(",") + "\n"
        })
        .collect();
    std::fs::write(&cal, old).expect("an older calibration");
    let (_, said) = with_calibration();
    assert!(
        said.contains("min, calibrated (") && said.contains("fixtures heard in 4 hours"),
        "{said}"
    );
}

#[test]
fn bad_offline_inputs_are_named_and_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n).to_str().expect("UTF-8").to_owned();
    std::fs::write(p("env.jsonl"), "\n{\"v\": 1, \"oops\": true}\n").expect("write");
    let o = collector(&["occupancy", "--envelopes", &p("env.jsonl")]);
    assert_eq!(o.status.code(), Some(65));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}: not a file of envelopes", p("env.jsonl")))
            && err.contains("line 2: "),
        "{err}"
    );
    // A binary file cut inside its second envelope.
    let mut cut = Vec::new();
    for seq in 1..=2 {
        wire::file::append_record(
            &wire::Envelope {
                v: wire::VERSION,
                sensor: "lab".into(),
                site: "lab".into(),
                seq,
                epoch: 0,
                sent_at: wire::Millis(0),
                sightings: Vec::new(),
            },
            wire::Encoding::Binary,
            &mut cut,
        );
    }
    let first = cut.len() / 2;
    std::fs::write(p("env.bin"), &cut[..cut.len() - 1]).expect("write");
    let o = collector(&["occupancy", "--envelopes", &p("env.bin")]);
    assert_eq!(o.status.code(), Some(65));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("the envelope at byte {first}: truncated")),
        "{err}"
    );

    std::fs::write(p("empty.jsonl"), "").expect("write");
    // Calibrations with a bad field: refused, naming the file's line and the field.
    for (csv, field) in [
        (
            "site_id,rssi_min_dbm,people_per_device,windows,mae\nlab,-60,-2.0,10,1.0\n",
            "people_per_device",
        ),
        (
            "site_id,rssi_min_dbm,people_per_device,fixture_hours,windows,mae\n\
             lab,-60,0.5,30,10,1.0\n",
            "fixture_hours: 30",
        ),
    ] {
        std::fs::write(p("cal.csv"), csv).expect("write");
        let o = collector(&[
            "occupancy",
            "--envelopes",
            &p("empty.jsonl"),
            "--calibration",
            &p("cal.csv"),
        ]);
        assert_eq!(o.status.code(), Some(78));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("{}:2", p("cal.csv"))) && err.contains(field),
            "{err}"
        );
    }

    let o = collector(&[
        "occupancy",
        "--envelopes",
        &p("empty.jsonl"),
        "--window-mins",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--window-mins"));

    std::fs::write(
        p("truth.csv"),
        "window_start,people\n2024-03-14T10:00:00Z,3\n2024-03-14T10:07:00Z,2\n",
    )
    .expect("write");
    let o = collector(&[
        "calibrate",
        "--envelopes",
        &p("empty.jsonl"),
        "--truth",
        &p("truth.csv"),
    ]);
    assert_eq!(o.status.code(), Some(65));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}:3", p("truth.csv"))) && err.contains("aligned"),
        "{err}"
    );
}
