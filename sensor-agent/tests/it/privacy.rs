//! The privacy invariant: no raw MAC leaves the agent's memory, in any spelling.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::util::{assert_success, capture, Sensor};

/// Every common spelling of a MAC, as byte strings to search for.
fn spellings(mac: &str) -> Vec<Vec<u8>> {
    let octets: Vec<u8> = mac
        .split(':')
        .map(|o| u8::from_str_radix(o, 16).expect("hex octet"))
        .collect();
    let hex: Vec<String> = octets.iter().map(|o| format!("{o:02x}")).collect();
    let mut out = Vec::new();
    for sep in [":", "-", "", "."] {
        let s = if sep == "." {
            format!(
                "{}{}.{}{}.{}{}",
                hex[0], hex[1], hex[2], hex[3], hex[4], hex[5]
            )
        } else {
            hex.join(sep)
        };
        out.push(s.to_uppercase().into_bytes());
        out.push(s.into_bytes());
    }
    out.push(octets);
    out
}

fn all_files(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(std::fs::read(&p).expect("readable"));
        }
    }
    out
}

/// Names of the haystacks that contain any spelling of any of `macs`: one pass over each
/// haystack per spelling length, with every needle of that length in a set.
fn find_leaks(haystacks: &[(&str, &[u8])], macs: &HashSet<String>) -> Vec<String> {
    let mut by_len: std::collections::BTreeMap<usize, HashSet<Vec<u8>>> = Default::default();
    for needle in macs.iter().flat_map(|m| spellings(m)) {
        by_len.entry(needle.len()).or_default().insert(needle);
    }
    let mut leaks = Vec::new();
    for (name, hay) in haystacks {
        for (len, needles) in &by_len {
            if hay.windows(*len).any(|w| needles.contains(w)) {
                leaks.push(format!(
                    "{name} contains a {len}-byte spelling of a captured MAC"
                ));
            }
        }
    }
    leaks
}

#[test]
fn no_raw_mac_reaches_logs_spool_files_or_published_payloads() {
    let broker = testkit::Mosquitto::start();
    let sub = broker.subscribe("footfall/#", "privacy-watch");
    let files = [
        "fryza/position_2_2024-02-08.pcap",
        "baccichet/iPhoneXR-L_anonymized.pcap",
        "baccichet/OppoFindX3Neo-A_anonymized.pcap",
        "misc/aircrack-test1-3antenna.pcap",
        "misc/tcpdump-ieee802.11_exthdr.pcap",
        "pintor/B-ts-2021-Jun-03-h14-m28-s59-modeA-ch-11-th-60.pcap",
    ];
    let mut macs = HashSet::new();
    let mut expected_batches = 0;
    for f in files {
        let pcap = capture(f);
        let (_, found) = testkit::tshark_probes(&pcap);
        assert!(!found.is_empty(), "{f} has probe requests");
        macs.extend(found);

        let sensor = Sensor::new(&broker.url(), "");
        let (lines, _) = Sensor::new(&broker.url(), "").replay_to_file(&pcap);
        expected_batches += lines.len();
        let o = sensor
            .replay(&pcap)
            .arg("--summary")
            .arg(sensor.path("summary.json"))
            .env("RUST_LOG", "trace")
            .stdin(Stdio::null())
            .output()
            .expect("run agent");
        assert_success(&o);
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("TRACE")
                || String::from_utf8_lossy(&o.stderr).contains("DEBUG"),
            "verbose logging was on"
        );
        let mut hay: Vec<(&str, Vec<u8>)> = vec![("stdout", o.stdout), ("stderr", o.stderr)];
        // The spool as left after delivery, and a spool kept undelivered (broker absent).
        hay.extend(
            all_files(sensor.dir.path())
                .into_iter()
                .map(|b| ("sensor dir", b)),
        );
        let offline = Sensor::new("mqtt://127.0.0.1:1", "");
        let mut child = offline
            .replay(&pcap)
            .stderr(Stdio::null())
            .spawn()
            .expect("run agent");
        testkit::wait_for(Duration::from_secs(20), || {
            let n = std::fs::read_dir(offline.spool()).ok()?.count();
            (n > 0).then_some(())
        })
        .expect("the offline agent spools");
        std::thread::sleep(Duration::from_millis(500));
        child.kill().expect("kill");
        child.wait().expect("wait");
        hay.extend(
            all_files(&offline.spool())
                .into_iter()
                .map(|b| ("undelivered spool", b)),
        );
        let refs: Vec<(&str, &[u8])> = hay.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        let leaks = find_leaks(&refs, &macs);
        assert!(leaks.is_empty(), "{f}: {leaks:?}");
    }
    let published = sub
        .wait_for_lines(expected_batches, Duration::from_secs(30))
        .join("\n");
    let leaks = find_leaks(&[("published payloads", published.as_bytes())], &macs);
    assert!(leaks.is_empty(), "{leaks:?}");
    assert!(
        published.contains("\"device\""),
        "the payloads were searched, and they carry device keys"
    );
}

#[test]
fn the_search_finds_a_mac_where_there_is_one() {
    // Guards the test above against searching wrongly and finding nothing.
    let macs: HashSet<String> = ["3c:22:fb:0a:1b:2c".to_owned()].into();
    for hay in [
        "x 3C-22-FB-0A-1B-2C y",
        "3c22fb0a1b2c",
        "3c22.fb0a.1b2c",
        "3c:22:fb:0a:1b:2c",
    ] {
        assert!(
            !find_leaks(&[("t", hay.as_bytes())], &macs).is_empty(),
            "{hay}"
        );
    }
    let raw = [0u8, 0x3c, 0x22, 0xfb, 0x0a, 0x1b, 0x2c, 0];
    assert!(!find_leaks(&[("t", &raw)], &macs).is_empty());
}

/// A deployed sensor holds epoch keys (`footfall-fleet keys`), not the tenant secret: it
/// publishes the very device keys the secret gives, and drops (counted) what falls in an
/// epoch it holds no key for.
#[test]
fn a_sensor_holding_only_epoch_keys_publishes_the_keys_the_tenant_secret_gives() {
    let capture = crate::util::capture("fryza/position_2_2024-02-08.pcap");
    let (expected, expected_sum) = Sensor::new("mqtt://127.0.0.1:1", "").replay_to_file(&capture);
    assert!(expected_sum["sightings"].as_u64() > Some(10));
    let envelope: wire::Envelope = serde_json::from_str(&expected[0]).expect("an envelope");
    let first_ms = envelope.sightings[0].first_seen.0;
    let secret = std::fs::read_to_string(Sensor::new("mqtt://127.0.0.1:1", "").path("tenant.key"))
        .expect("secret");
    let secret = secret.trim_end().as_bytes();

    let with_keys = |keys: device_id::EpochKeys| {
        let sensor = Sensor::new("mqtt://127.0.0.1:1", "");
        std::fs::remove_file(sensor.path("tenant.key")).expect("the secret is not on the sensor");
        let file = sensor.path("epoch.keys");
        std::fs::write(&file, keys.to_text()).expect("write keys");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        sensor.edit_config("secret_file = \"tenant.key\"", "keys_file = \"epoch.keys\"");
        sensor.replay_to_file(&capture)
    };
    // The current and the next epoch, as `footfall-fleet keys` writes them.
    let (got, sum) = with_keys(device_id::EpochKeys::derive(secret, 45, first_ms, 1));
    assert_eq!(got, expected, "the same envelopes, device keys included");
    assert_eq!(sum["dropped"]["no_epoch_key"], 0);

    // Keys of the next two epochs only: nothing of the capture's epoch can be hashed.
    let later = first_ms + 45 * 86_400_000;
    let (got, sum) = with_keys(device_id::EpochKeys::derive(secret, 45, later, 1));
    assert!(got.is_empty(), "nothing published without the epoch's key");
    let dropped = |what: &str| expected_sum["dropped"][what].as_u64().expect(what);
    let hashed = expected_sum["probe_requests"].as_u64().expect("probes")
        - dropped("duplicate_frame")
        - dropped("below_rssi_floor")
        - dropped("no_signal");
    assert_eq!(
        sum["dropped"]["no_epoch_key"].as_u64(),
        Some(hashed),
        "every probe that would have been hashed is counted: {sum}"
    );
}

/// The opt-out list is read again on SIGHUP while the sensor runs: from then on its devices
/// are dropped, with their open sightings; a list that cannot be read leaves the last one.
#[test]
fn sighup_reloads_the_opt_out_list_and_drops_the_devices_it_adds() {
    use std::io::{BufRead, Write};

    let pcap = capture("fryza/position_2_2024-02-08.pcap");
    let records = testkit::PcapRecords::read(&pcap);
    let half = records.records.len() / 2;
    let half_ms = testkit::PcapRecords::frame(&records.records[half - 1]).0;
    // Every sighting, without the reload: (device, first_seen, last_seen ms, JSON).
    let sightings = |lines: &[String]| -> Vec<(String, i64, i64, String)> {
        lines
            .iter()
            .flat_map(|l| {
                let env: wire::Envelope = serde_json::from_str(l).expect("an envelope");
                env.sightings
            })
            .map(|s| {
                (
                    s.device.to_string(),
                    s.first_seen.0,
                    s.last_seen.0,
                    serde_json::to_string(&s).expect("json"),
                )
            })
            .collect()
    };
    let reference = sightings(
        &Sensor::new("mqtt://127.0.0.1:1", "")
            .replay_to_file(&pcap)
            .0,
    );
    // A device whose sighting is open across the middle (heard before, and on after), with
    // the most sightings after it.
    let device = reference
        .iter()
        .filter(|s| s.1 <= half_ms && s.2 > half_ms)
        .map(|s| s.0.clone())
        .max_by_key(|d| {
            reference
                .iter()
                .filter(|s| s.0 == *d && s.2 > half_ms)
                .count()
        })
        .expect("a sighting open across the middle of the capture");
    let sensor = Sensor::new(
        "mqtt://127.0.0.1:1",
        "[identity]\nopt_out_file = \"opt-out.txt\"\n",
    );
    let list = sensor.path("opt-out.txt");
    std::fs::write(&list, "# nobody yet\n").expect("write");
    let out = sensor.path("out.jsonl");
    let (mut agent, mut w) = sensor.replay_fifo_to(&out);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = agent.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let wait_line = |what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            if let Ok(line) = rx.recv_timeout(left) {
                if line.contains(what) {
                    return line;
                }
            }
        }
        panic!("no log line with {what:?}");
    };
    records
        .write_to(&mut w, &records.records[..half])
        .expect("write");
    w.flush().expect("flush");
    // Read and processed: the agent is waiting on the FIFO.
    std::thread::sleep(Duration::from_secs(1));
    let hup = || {
        assert_success(
            &std::process::Command::new("kill")
                .args(["-HUP", &agent.id().to_string()])
                .output()
                .expect("kill"),
        )
    };
    std::fs::write(&list, "not a key\n").expect("write");
    hup();
    let bad = wait_line("opt-out list was not read again");
    assert!(bad.contains("opt-out.txt:1"), "{bad}");
    std::fs::write(&list, format!("{device}  # opted out today\n")).expect("write");
    hup();
    wait_line("opt-out list read again");
    // The next frame applies it.
    w.write_all(&records.records[half]).expect("write");
    w.flush().expect("flush");
    wait_line("opt-out list applied");
    w.write_all(&records.records[half + 1..].concat())
        .expect("write");
    drop(w);
    let status = agent.wait().expect("agent");
    assert!(status.success(), "{status:?}");

    let got = sightings(
        &std::fs::read_to_string(&out)
            .expect("out")
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    );
    // Nothing of the device after the reload; every other device as before.
    let others = |s: &[(String, i64, i64, String)]| {
        let mut v: Vec<String> = s
            .iter()
            .filter(|x| x.0 != device)
            .map(|x| x.3.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(others(&got), others(&reference));
    let kept: Vec<&(String, i64, i64, String)> = got.iter().filter(|s| s.0 == device).collect();
    assert!(
        kept.iter().all(|s| s.2 <= half_ms && reference.contains(s)),
        "a sighting of the opted-out device after the reload"
    );
    assert!(kept.len() < reference.iter().filter(|s| s.0 == device).count());
}
