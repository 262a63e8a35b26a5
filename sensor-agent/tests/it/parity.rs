//! The parser against tshark, an independent 802.11 dissector, on every real capture.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::util::{capture, Sensor};

#[test]
fn probe_requests_and_distinct_sources_equal_tsharks_on_every_capture() {
    let files = testkit::captures_under(&testkit::pcaps_dir());
    assert!(
        files.len() >= 6,
        "expected the shared captures, found {files:?}"
    );
    let queue = Mutex::new(files);
    let failures = Mutex::new(Vec::<String>::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(f): Option<PathBuf> = queue.lock().expect("queue").pop() else {
                    break;
                };
                let (probes, macs) = testkit::tshark_probes(&f);
                let local = macs
                    .iter()
                    .filter(|m| u8::from_str_radix(&m[..2], 16).is_ok_and(|b| b & 2 != 0))
                    .count() as u64;
                let (_, sum) = Sensor::new("mqtt://127.0.0.1:1", "").replay_to_file(&f);
                let ours = (
                    sum["probe_requests"].as_u64().expect("count"),
                    sum["devices"]["global"].as_u64().expect("count")
                        + sum["devices"]["local"].as_u64().expect("count"),
                    sum["devices"]["local"].as_u64().expect("count"),
                );
                if ours != (probes, macs.len() as u64, local) {
                    failures.lock().expect("failures").push(format!(
                        "{}: ours (probes, sources, local) = {ours:?}, tshark = {:?}",
                        f.display(),
                        (probes, macs.len(), local)
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().expect("failures");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_three_antenna_header_reports_the_combined_signal() {
    // tshark's first radiotap.dbm_antsignal of each probe is the combined one.
    let f = capture("misc/aircrack-test1-3antenna.pcap");
    let tshark_max: i64 = testkit::tshark_probe_fields(&f, &["radiotap.dbm_antsignal"])
        .iter()
        .map(|l| l.parse::<i64>().expect("a dBm value"))
        .max()
        .expect("probes");
    let (lines, _) = Sensor::new("mqtt://127.0.0.1:1", "").replay_to_file(&f);
    let ours_max = final_sightings(&lines)
        .iter()
        .map(|s| s["rssi_max"].as_i64().expect("rssi"))
        .max()
        .expect("sightings");
    assert_eq!(ours_max, tshark_max);
}

#[test]
fn fcs_verify_drops_frames_whose_fcs_the_anonymizer_broke() {
    let f = capture("baccichet/OppoFindX3Neo-A_anonymized.pcap");
    let sensor = Sensor::new("mqtt://127.0.0.1:1", "");
    sensor.edit_config("fcs_policy = \"trust-flag\"", "fcs_policy = \"verify\"");
    let (lines, sum) = sensor.replay_to_file(&f);
    assert_eq!(sum["dropped"]["bad_fcs"], 1185);
    assert_eq!(sum["sightings"], 0);
    assert!(lines.is_empty());
}

#[test]
fn replay_is_deterministic() {
    let f = capture("fryza/position_2_2024-02-08.pcap");
    let a = Sensor::new("mqtt://127.0.0.1:1", "").replay_to_file(&f);
    let b = Sensor::new("mqtt://127.0.0.1:1", "").replay_to_file(&f);
    assert!(a.0.len() > 10);
    assert_eq!(a, b);
}

#[test]
fn sightings_respect_the_gap_and_the_rssi_floor() {
    let f = capture("fryza/position_2_2024-02-08.pcap");
    let loose = Sensor::new("mqtt://127.0.0.1:1", "").replay_to_file(&f).1;
    let strict = Sensor::new("mqtt://127.0.0.1:1", "");
    strict.edit_config("rssi_floor_dbm = -128", "rssi_floor_dbm = -70");
    let strict = strict.replay_to_file(&f).1;
    let below = strict["dropped"]["below_rssi_floor"]
        .as_u64()
        .expect("count");
    assert!(below > 0, "a -70 dBm floor drops some of this capture");
    assert!(strict["sightings"].as_u64() < loose["sightings"].as_u64());
}

#[test]
fn probe_requests_by_frequency_equal_tsharks() {
    for rel in [
        "fryza/position_1_2022-11-15.pcap",
        "fryza/position_2_2024-02-08.pcap",
        "misc/aircrack-test1-3antenna.pcap",
        "baccichet/iPhoneXR-L_anonymized.pcap",
    ] {
        let f = capture(rel);
        let mut tshark = std::collections::BTreeMap::<String, u64>::new();
        for l in testkit::tshark_probe_fields(&f, &["radiotap.channel.freq"]) {
            *tshark.entry(l).or_default() += 1;
        }
        let (_, sum) = Sensor::new("mqtt://127.0.0.1:1", "").replay_to_file(&f);
        let ours: std::collections::BTreeMap<String, u64> = sum["probe_requests_by_freq_mhz"]
            .as_object()
            .expect("map")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
            .collect();
        assert_eq!(ours, tshark, "{rel}");
    }
}

#[test]
fn an_opted_out_device_is_dropped_and_counted() {
    let f = capture("misc/aircrack-test1-3antenna.pcap");
    let before = Sensor::new("mqtt://127.0.0.1:1", "");
    let (lines, _) = before.replay_to_file(&f);
    let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
    let victim = first["sightings"][0]["device"]
        .as_str()
        .expect("key")
        .to_owned();

    let sensor = Sensor::new(
        "mqtt://127.0.0.1:1",
        "[identity]\nopt_out_file = \"opt-out.txt\"\n",
    );
    std::fs::write(
        sensor.path("opt-out.txt"),
        format!("# device keys of epoch {}\n{victim}\n", first["epoch"]),
    )
    .expect("write opt-out list");
    let (after, sum) = sensor.replay_to_file(&f);
    assert!(sum["dropped"]["opt_out"].as_u64() > Some(0));
    assert!(
        !after.join("\n").contains(&victim),
        "the opted-out key is gone"
    );
    assert_eq!(
        sum["sightings"].as_u64(),
        Some(4),
        "the other four devices remain"
    );

    std::fs::write(sensor.path("opt-out.txt"), "not-a-key\n").expect("write");
    let o = sensor.check_config();
    assert_eq!(o.status.code(), Some(78));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("identity.opt_out_file") && err.contains(":1"),
        "{err}"
    );
}

#[test]
fn the_same_transmission_captured_twice_counts_once() {
    // The Baccichet iPhone capture merges several radios: one transmission often appears on
    // two channels microseconds apart, with the same transmitter and sequence number.
    let f = capture("baccichet/iPhoneXR-L_anonymized.pcap");
    let rows = testkit::tshark_probe_fields(&f, &["wlan.sa", "wlan.seq"]);
    let repeats = rows.windows(2).filter(|w| w[0] == w[1]).count() as u64;
    assert!(repeats > 100, "the capture has repeated transmissions");
    let (lines, sum) = Sensor::new("mqtt://127.0.0.1:1", "").replay_to_file(&f);
    assert_eq!(sum["dropped"]["duplicate_frame"].as_u64(), Some(repeats));
    let frames: u64 = final_sightings(&lines)
        .iter()
        .map(|s| s["frames"].as_u64().expect("frames"))
        .sum();
    assert_eq!(
        frames,
        rows.len() as u64 - repeats,
        "sightings count each transmission once"
    );
}

/// The final sightings of every envelope line.
fn final_sightings(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .flat_map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("envelope JSON");
            match v["sightings"].take() {
                serde_json::Value::Array(a) => a,
                other => panic!("sightings is not an array: {other}"),
            }
        })
        .filter(|s| s["final"] == true)
        .collect()
}
