//! The command line: configuration errors, defaults, refusing non-monitor interfaces.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::util::{assert_success, Sensor, AGENT};

#[test]
fn a_bad_config_exits_78_naming_the_field() {
    let sensor = Sensor::new("mqtt://127.0.0.1:1", "[sightings]\ngap_secs = 0\n");
    let o = sensor.check_config();
    assert_eq!(o.status.code(), Some(78));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("sightings.gap_secs") && err.contains('0'),
        "{err}"
    );
}

#[test]
fn a_world_readable_secret_is_refused_with_exit_78() {
    let sensor = Sensor::new("mqtt://127.0.0.1:1", "");
    std::fs::set_permissions(
        sensor.path("tenant.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let o = sensor.check_config();
    assert_eq!(o.status.code(), Some(78));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("identity.secret_file") && err.contains("0644"),
        "{err}"
    );
    assert!(
        !err.contains("test-tenant-secret"),
        "the secret is never printed"
    );
}

#[test]
fn the_printed_default_config_is_accepted_by_check_config() {
    let o = Command::new(AGENT)
        .arg("print-default-config")
        .output()
        .expect("run");
    assert!(o.status.success());
    let dir = tempfile::tempdir().expect("tempdir");
    let text = String::from_utf8(o.stdout).expect("utf-8").replace(
        "secret_file = \"/etc/footfall/tenant.key\"",
        "secret_env = \"FOOTFALL_TEST_SECRET\"",
    );
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).expect("write");
    let o = Command::new(AGENT)
        .arg("check-config")
        .arg(&path)
        .env("FOOTFALL_TEST_SECRET", "a-long-enough-tenant-secret")
        .output()
        .expect("run");
    testkit::assert_success(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok"));
}

#[test]
fn an_interface_that_is_not_in_monitor_mode_is_refused_with_a_hint() {
    let sensor = Sensor::new("mqtt://127.0.0.1:1", "[capture]\ninterface = \"lo\"\n");
    let o = Command::new(AGENT)
        .args(["run", "--config"])
        .arg(&sensor.config)
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let root = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if root {
        assert!(
            err.contains("not 802.11 radiotap") && err.contains("monitor mode"),
            "{err}"
        );
    } else {
        assert!(err.contains("CAP_NET_RAW"), "{err}");
    }
}

#[test]
fn a_capture_that_is_not_radiotap_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("eth.pcap");
    // An Ethernet (link type 1) capture with one frame.
    let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    let frame = [0u8; 60];
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    h.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    h.extend_from_slice(&frame);
    std::fs::write(&path, h).expect("write");
    let sensor = Sensor::new("mqtt://127.0.0.1:1", "");
    let o = sensor
        .replay(&path)
        .arg("--out")
        .arg("-")
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("EN10MB") || err.contains("(1)"), "{err}");
}

#[test]
fn a_capture_cut_mid_record_is_processed_up_to_the_cut_then_reported() {
    let records =
        testkit::PcapRecords::read(&crate::util::capture("fryza/position_2_2024-02-08.pcap"));
    let dir = tempfile::tempdir().expect("tempdir");
    let n = records.records.len();
    // The intact prefix, and the same prefix followed by half of the next record.
    let prefix = dir.path().join("prefix.pcap");
    records
        .write_to(
            std::fs::File::create(&prefix).expect("create"),
            &records.records[..n - 1],
        )
        .expect("write");
    let cut = dir.path().join("cut.pcap");
    let mut bytes = std::fs::read(&prefix).expect("read");
    let last = &records.records[n - 1];
    bytes.extend_from_slice(&last[..last.len() / 2]);
    std::fs::write(&cut, bytes).expect("write");

    let (expected, expected_sum) = Sensor::new("mqtt://127.0.0.1:1", "").replay_to_file(&prefix);
    let sensor = Sensor::new("mqtt://127.0.0.1:1", "");
    let out = sensor.path("out.jsonl");
    let summary = sensor.path("summary.json");
    let o = sensor
        .replay(&cut)
        .arg("--out")
        .arg(&out)
        .arg("--summary")
        .arg(&summary)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "damage is an error");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cut.pcap is damaged after frame"), "{err}");
    let got: Vec<String> = std::fs::read_to_string(&out)
        .expect("out")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, expected, "everything before the damage is delivered");
    let sum: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).expect("summary")).expect("json");
    assert_eq!(sum["frames"], expected_sum["frames"]);
    assert!(sum["input_error"]
        .as_str()
        .is_some_and(|e| e.contains("damaged")));
}

#[test]
fn replay_writes_the_same_envelopes_in_the_binary_encoding_when_asked() {
    let pcap = crate::util::capture("fryza/position_2_2024-02-08.pcap");
    let sensor = Sensor::new("mqtt://127.0.0.1:1", "");
    let (json, _) = sensor.replay_to_file(&pcap);
    let json: Vec<wire::Envelope> = json
        .iter()
        .map(|l| serde_json::from_str(l).expect("an envelope"))
        .collect();
    let read = |path: &std::path::Path| -> Vec<wire::Envelope> {
        let file = std::io::BufReader::new(std::fs::File::open(path).expect("out"));
        wire::file::records(file)
            .collect::<Result<_, _>>()
            .expect("a file of envelopes")
    };

    // Asked on the command line.
    let out = sensor.path("out.bin");
    let o = sensor
        .replay(&pcap)
        .args(["--encoding", "binary", "--out"])
        .arg(&out)
        .output()
        .expect("run");
    assert_success(&o);
    let bytes = std::fs::read(&out).expect("out");
    assert!(wire::is_binary(&bytes));
    assert_eq!(read(&out), json);
    let json_len = std::fs::metadata(sensor.path("out.jsonl"))
        .expect("json")
        .len();
    assert!(
        bytes.len() as u64 * 4 < json_len,
        "{} bytes binary, {json_len} JSON",
        bytes.len()
    );

    // The sensor's own encoding by default.
    let binary_sensor = Sensor::new("mqtt://127.0.0.1:1", "[mqtt]\nencoding = \"binary\"\n");
    let out = binary_sensor.path("default.bin");
    assert_success(
        &binary_sensor
            .replay(&pcap)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run"),
    );
    assert_eq!(read(&out), json);

    let o = sensor
        .replay(&pcap)
        .args(["--encoding", "cbor", "--out", "-"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--encoding") && err.contains("binary"),
        "{err}"
    );
}

#[test]
fn sigterm_stops_a_replay_waiting_on_a_quiet_fifo_and_keeps_what_it_read() {
    let sensor = Sensor::new("mqtt://127.0.0.1:1", "");
    let out = sensor.path("out.jsonl");
    let (mut agent, mut w) = sensor.replay_fifo_to(&out);
    let records =
        testkit::PcapRecords::read(&crate::util::capture("fryza/position_2_2024-02-08.pcap"));
    records
        .write_to(&mut w, &records.records[..300])
        .expect("write");
    // The writer stays open and quiet, as a live capture's would.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let term = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let exited = testkit::wait_for(std::time::Duration::from_secs(10), || {
        agent.try_wait().expect("status")
    });
    drop(w);
    let status = exited.unwrap_or_else(|| {
        agent.kill().expect("kill");
        panic!("the agent still waited on its FIFO 10 s after SIGTERM")
    });
    assert!(status.success(), "{status}");
    let envelopes: Vec<wire::Envelope> = std::fs::read_to_string(&out)
        .expect("out")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an envelope"))
        .collect();
    assert!(
        envelopes.iter().map(|e| e.sightings.len()).sum::<usize>() > 0,
        "the frames read before SIGTERM were sessionized and written"
    );
}
