//! Delivery through a real Mosquitto: exactness, outages, crashes, torn spools.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{assert_gapless, assert_success, capture, mkfifo, open_fifo, Sensor};

const SIGHTINGS: &str = "footfall/v1/+/+/sightings";

#[test]
fn a_subscriber_receives_exactly_what_replay_out_writes() {
    let broker = testkit::Mosquitto::start();
    let sub = broker.subscribe(SIGHTINGS, "exact");
    let pcap = capture("fryza/position_2_2024-02-08.pcap");
    let (expected, _) = Sensor::new(&broker.url(), "").replay_to_file(&pcap);
    assert!(expected.len() > 100);

    let sensor = Sensor::new(&broker.url(), "");
    let o = sensor.replay(&pcap).output().expect("run agent");
    assert_success(&o);
    let got = sub.wait_for_lines(expected.len(), Duration::from_secs(30));
    assert_eq!(got, expected, "same envelopes, same bytes, same order");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!(
            "{} acknowledged by the broker (0 published again after a reconnect), 0 left",
            expected.len()
        )),
        "{stderr}"
    );
}

#[test]
fn status_is_retained_and_the_last_will_marks_a_killed_sensor_offline() {
    let broker = testkit::Mosquitto::start();
    let sensor = Sensor::new(&broker.url(), "");
    let fifo = sensor.path("in.pcap");
    mkfifo(&fifo);
    let mut agent = sensor
        .replay(&fifo)
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent");
    let mut w = open_fifo(&fifo, &mut agent);
    let records = testkit::PcapRecords::read(&capture("misc/aircrack-test1-3antenna.pcap"));
    records.write_to(&mut w, &records.records).expect("write");
    // Retained: a subscriber arriving later still gets the online status.
    let watch = broker.subscribe("footfall/v1/lab/s-1/status", "status-watch");
    let online = watch.wait_for_lines(1, Duration::from_secs(20));
    let s: wire::Status = serde_json::from_str(&online[0]).expect("a status");
    assert!(s.online);
    assert_eq!((s.sensor.as_str(), s.site.as_str()), ("s-1", "lab"));

    agent.kill().expect("SIGKILL");
    agent.wait().expect("reaped");
    drop(w);
    let lines = testkit::wait_for(Duration::from_secs(60), || {
        let l = watch.lines();
        l.iter()
            .any(|l| l.contains("\"online\":false"))
            .then_some(l)
    })
    .expect("the Last Will arrives after the keepalive expires");
    let last: wire::Status = serde_json::from_str(lines.last().expect("line")).expect("status");
    assert!(!last.online);
}

#[test]
fn batches_spooled_while_the_broker_is_down_all_arrive_gapless() {
    let mut broker = testkit::Mosquitto::start();
    // Register a persistent subscriber session, then take the broker down.
    drop(broker.subscribe(SIGHTINGS, "outage"));
    broker.stop();

    let pcap = capture("fryza/position_2_2024-02-08.pcap");
    let (expected, _) = Sensor::new(&broker.url(), "").replay_to_file(&pcap);
    let sensor = Sensor::new(&broker.url(), "");
    // The capture spans ~8 h; at 10000x it replays in ~3 s.
    let agent = sensor
        .replay(&pcap)
        .args(["--speed", "10000"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        std::fs::read_dir(sensor.spool()).expect("spool").count() > 0,
        "the agent spools while the broker is down"
    );
    broker.launch();
    let sub = broker.subscribe(SIGHTINGS, "outage");
    let o = agent.wait_with_output().expect("agent exits");
    assert_success(&o);
    let got = sub.wait_for_lines(expected.len(), Duration::from_secs(60));
    let max = assert_gapless(&got);
    assert_eq!(max as usize, expected.len());
}

/// Streams `records` into a FIFO read by a fresh agent, in chunks, and returns the agent.
fn feed(
    sensor: &Sensor,
    fifo: &Path,
    records: &testkit::PcapRecords,
    part: &[Vec<u8>],
) -> (Child, std::fs::File) {
    let mut agent = sensor
        .replay(fifo)
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent");
    let mut w = open_fifo(fifo, &mut agent);
    w.write_all(&records.header).expect("header");
    for chunk in part.chunks(500) {
        for r in chunk {
            w.write_all(r).expect("record");
        }
        w.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(30));
    }
    (agent, w)
}

#[test]
fn an_agent_killed_mid_run_and_restarted_leaves_no_seq_missing() {
    let broker = testkit::Mosquitto::start();
    let sub = broker.subscribe(SIGHTINGS, "crash");
    let sensor = Sensor::new(&broker.url(), "[mqtt]\nbatch_max_sightings = 20\n");
    let fifo = sensor.path("in.pcap");
    mkfifo(&fifo);
    let records = testkit::PcapRecords::read(&capture("fryza/position_1_2022-11-15.pcap"));
    let half = records.records.len() / 2;

    let (mut first, w) = feed(&sensor, &fifo, &records, &records.records[..half]);
    let delivered = sub.wait_for_lines(5, Duration::from_secs(30)).len();
    assert!(delivered >= 5);
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    drop(w);

    let (second, w) = feed(&sensor, &fifo, &records, &records.records[half..]);
    drop(w); // end of input: the agent drains and exits
    let o = second.wait_with_output().expect("agent exits");
    assert_success(&o);
    let got = sub.settle(Duration::from_secs(2), Duration::from_secs(60));
    let max = assert_gapless(&got);
    assert!(
        max as usize > delivered,
        "the restarted agent continued the sequence"
    );
}

#[test]
fn a_torn_spool_tail_is_skipped_and_the_rest_delivered() {
    let pcap = capture("fryza/position_2_2024-02-08.pcap");
    let sensor = Sensor::new("mqtt://127.0.0.1:1", "");
    let (expected, _) = Sensor::new("mqtt://127.0.0.1:1", "").replay_to_file(&pcap);
    // No broker: everything is spooled, then the agent dies.
    let mut agent = sensor
        .replay(&pcap)
        .stderr(Stdio::null())
        .spawn()
        .expect("agent");
    let seg_bytes = || -> u64 {
        std::fs::read_dir(sensor.spool())
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    testkit::wait_for(Duration::from_secs(30), || {
        let a = seg_bytes();
        std::thread::sleep(Duration::from_millis(300));
        (a > 0 && a == seg_bytes()).then_some(())
    })
    .expect("spooling finishes");
    agent.kill().expect("SIGKILL");
    agent.wait().expect("reaped");

    // Tear the newest segment mid-record, as a power cut during a write would.
    let mut segs: Vec<_> = std::fs::read_dir(sensor.spool())
        .expect("spool")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ffs"))
        .collect();
    segs.sort();
    let newest = segs.last().expect("a segment");
    let len = std::fs::metadata(newest).expect("meta").len();
    OpenOptions::new()
        .write(true)
        .open(newest)
        .expect("open")
        .set_len(len - 7)
        .expect("truncate");

    let broker = testkit::Mosquitto::start();
    let sub = broker.subscribe(SIGHTINGS, "torn");
    sensor.edit_config("mqtt://127.0.0.1:1", &broker.url());
    // An empty capture: the agent only delivers what the spool holds.
    let empty = sensor.path("empty.pcap");
    let records = testkit::PcapRecords::read(&pcap);
    records
        .write_to(std::fs::File::create(&empty).expect("create"), &[])
        .expect("write");
    let o = sensor.replay(&empty).output().expect("agent");
    assert_success(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("skipped corrupt or torn spool records"),
        "{stderr}"
    );
    let got = sub.settle(Duration::from_secs(1), Duration::from_secs(30));
    let max = assert_gapless(&got);
    assert_eq!(
        max as usize,
        expected.len() - 1,
        "all but the torn last batch"
    );
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }
}

#[test]
fn delivers_over_tls_with_username_and_password() {
    let tls_port = testkit::free_port();
    let broker = testkit::Mosquitto::start_with_listeners(|dir| {
        testkit::make_test_pki(dir);
        let passwd = dir.join("passwd");
        let ok = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&passwd)
            .args(["sensor-s-1", "correct horse"])
            .status()
            .expect("mosquitto_passwd");
        assert!(ok.success());
        format!(
            "listener {tls_port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\n\
             keyfile {d}/server.key\npassword_file {p}\nallow_anonymous false\n",
            d = dir.display(),
            p = passwd.display()
        )
    });
    // The subscriber uses the plain listener; the sensor only the TLS one.
    let sub = broker.subscribe(SIGHTINGS, "tls-watch");
    let pki = tempfile::tempdir().expect("tempdir");
    testkit::make_test_pki(pki.path());
    let broker_ca = broker.dir().join("ca.crt");

    let sensor_for = |password: &str, ca: &Path| {
        let s = Sensor::new(
            &format!("mqtts://127.0.0.1:{tls_port}"),
            &format!(
                "[mqtt]\nca_file = \"{}\"\nusername = \"sensor-s-1\"\npassword_file = \"mqtt.pass\"\n",
                ca.display()
            ),
        );
        let pass = s.path("mqtt.pass");
        std::fs::write(&pass, password).expect("write password");
        std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        s
    };
    let pcap = capture("misc/aircrack-test1-3antenna.pcap");

    // Right CA, right password: delivered.
    let good = sensor_for("correct horse", &broker_ca);
    let o = good.replay(&pcap).output().expect("agent");
    assert_success(&o);
    let (expected, _) = good.replay_to_file(&pcap);
    assert_eq!(
        sub.wait_for_lines(expected.len(), Duration::from_secs(20)),
        expected
    );

    // A wrong password or an untrusted CA never delivers: the batches stay in the spool.
    for (why, s) in [
        ("wrong password", sensor_for("battery staple", &broker_ca)),
        (
            "untrusted CA",
            sensor_for("correct horse", &pki.path().join("ca.crt")),
        ),
    ] {
        let mut agent = s
            .replay(&pcap)
            .stderr(Stdio::null())
            .spawn()
            .expect("agent");
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            agent.try_wait().expect("status").is_none(),
            "{why}: still trying"
        );
        agent.kill().expect("kill");
        agent.wait().expect("reaped");
        assert_eq!(
            sub.lines().len(),
            expected.len(),
            "{why}: nothing delivered"
        );
    }
}
