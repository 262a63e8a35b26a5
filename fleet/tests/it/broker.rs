use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use device_id::EpochKeys;
use firmware_config::SiteKind;
use fleet::enrol::{self, SensorEnrolment};
use fleet::pki::{self, Use};
use testkit::{wait_for, Mosquitto};

/// A client's certificate: its directory and file stem.
struct Id {
    dir: PathBuf,
    stem: &'static str,
}

impl Id {
    fn args(&self, m: &Mosquitto) -> Vec<String> {
        let f = |ext: &str| {
            self.dir
                .join(format!("{}.{ext}", self.stem))
                .display()
                .to_string()
        };
        vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            m.port.to_string(),
            "--cafile".into(),
            self.dir.join("ca.crt").display().to_string(),
            "--cert".into(),
            f("crt"),
            "--key".into(),
            f("key"),
        ]
    }
}

fn publish(m: &Mosquitto, who: &Id, extra: &[&str], topic: &str, payload: &str) -> Output {
    let mut args = who.args(m);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    publish_as(args, topic, payload)
}

/// mosquitto_pub with connection arguments `args`, QoS 1.
fn publish_as(args: Vec<String>, topic: &str, payload: &str) -> Output {
    Command::new("mosquitto_pub")
        .args(args)
        .args(["-q", "1", "-t", topic, "-m", payload])
        .output()
        .expect("mosquitto_pub is installed")
}

fn lines(p: &Path) -> Vec<String> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A fleet CA, the broker's files, and two enrolled sensors: site-a/s1 and site-b/s2 (their
/// bundles in `s1/` and `s2/`). Returns (temp dir, CA dir, broker dir).
fn fleet_of_two_sensors() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ca, broker_dir) = (tmp.path().join("ca"), tmp.path().join("broker"));
    pki::create_ca(&ca, "test-fleet-ca", 2).expect("the CA");
    testkit::prepare_fleet_broker(&ca, &broker_dir);
    let keys = EpochKeys::derive(b"test-tenant-secret-0123456789", 45, 1_796_000_000_000, 1);
    for (site, sensor) in [("site-a", "s1"), ("site-b", "s2")] {
        let e = SensorEnrolment {
            site,
            sensor,
            site_kind: SiteKind::Store,
            broker: "mqtts://127.0.0.1:8883",
            keys: &keys,
            bridge_days: 30,
            days: 2,
            access: &broker_dir.join("dynamic-security.json"),
        };
        enrol::sensor(&ca, &tmp.path().join(sensor), &e).expect("enrol a sensor");
    }
    (tmp, ca, broker_dir)
}

/// The shipped broker configuration and access rules on a real Mosquitto, with identities
/// footfall-fleet issued: each sensor writes only its own topics and reads nothing, a
/// collector reads and writes nothing else, no client takes another's client id, and no one
/// connects without a certificate from the fleet CA.
#[test]
fn the_shipped_broker_lets_each_identity_do_only_its_own_part() {
    let (tmp, ca, broker_dir) = fleet_of_two_sensors();
    let access = broker_dir.join("dynamic-security.json");
    enrol::collector(&ca, &tmp.path().join("c1"), "c1", &access, 2).expect("enrol a collector");
    enrol::collector(&ca, &tmp.path().join("c1"), "c1", &access, 2)
        .expect_err("an enrolled collector is not enrolled twice");
    enrol::collector(&ca, &tmp.path().join("c2"), "c2", &access, 2).expect("a second collector");
    let m = testkit::start_fleet_broker(&broker_dir);
    let id = |who: &str, stem| Id {
        dir: tmp.path().join(who),
        stem,
    };
    let (s1, s2) = (id("s1", "sensor"), id("s2", "sensor"));
    let (c1, c2) = (id("c1", "collector"), id("c2", "collector"));

    // The collector, as it runs: a shared subscription to every sensor's topics.
    let out = tmp.path().join("collector.out");
    let mut collector: Child = Command::new("mosquitto_sub")
        .args(c1.args(&m))
        .args(["-q", "1", "-v", "-c", "-i", "anything"])
        .args(["-t", "$share/collectors/footfall/v1/+/+/sightings"])
        .args(["-t", "$share/collectors/footfall/v1/+/+/status"])
        .stdout(fs::File::create(&out).expect("out"))
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub");
    wait_for(Duration::from_secs(10), || {
        m.log()
            .contains("Received SUBSCRIBE from collector-c1")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the collector did not subscribe:\n{}", m.log()));
    assert!(
        m.log().contains("as collector-c1"),
        "its client id is its identity, not the one it asked for:\n{}",
        m.log()
    );

    // A sensor reads nothing: not every topic, not another sensor's, and it cannot join the
    // collectors' $share group (where it would take its turn of the messages, lost to all).
    let spied = tmp.path().join("spy.out");
    let mut spy: Child = Command::new("mosquitto_sub")
        .args(s2.args(&m))
        .args([
            "-q",
            "1",
            "-v",
            "-t",
            "footfall/#",
            "-t",
            "footfall/v1/site-a/s1/sightings",
        ])
        .stdout(fs::File::create(&spied).expect("out"))
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub");
    let joined = Command::new("mosquitto_sub")
        .args(s2.args(&m))
        .args(["-q", "1", "-W", "3", "-d"])
        .args(["-t", "$share/collectors/footfall/v1/+/+/sightings"])
        .output()
        .expect("mosquitto_sub");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&joined.stdout),
        String::from_utf8_lossy(&joined.stderr)
    );
    assert!(
        said.contains("All subscription requests were denied"),
        "a sensor joined the collectors' group:\n{said}"
    );
    wait_for(Duration::from_secs(10), || {
        m.log()
            .contains("Received SUBSCRIBE from site-b/s2")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the spy did not subscribe:\n{}", m.log()));

    // Allowed: each sensor's own sightings and status.
    let ok = |o: Output| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(publish(
        &m,
        &s1,
        &[],
        "footfall/v1/site-a/s1/sightings",
        "s1-own",
    ));
    ok(publish(
        &m,
        &s1,
        &[],
        "footfall/v1/site-a/s1/status",
        "s1-status",
    ));
    // Refused, whatever the client is told (an MQTT 3.1.1 publisher gets its PUBACK anyway).
    ok(publish(
        &m,
        &s1,
        &[],
        "footfall/v1/site-b/s2/sightings",
        "s1-as-s2",
    ));
    ok(publish(
        &m,
        &s1,
        &[],
        "footfall/v1/site-b/s1/sightings",
        "s1-at-another-site",
    ));
    ok(publish(
        &m,
        &c2,
        &[],
        "footfall/v1/site-a/s1/sightings",
        "collector-writes",
    ));
    // The collector's client id asked for by a sensor: the sensor gets its own, and the
    // collector's session is not taken over.
    ok(publish(
        &m,
        &s1,
        &["-i", "collector-c1"],
        "footfall/v1/site-a/s1/sightings",
        "s1-as-id",
    ));
    // No certificate, or one from another CA: no connection at all.
    let plain: Vec<String> = ["-h", "127.0.0.1", "-p", &m.port.to_string(), "--cafile"]
        .into_iter()
        .map(str::to_owned)
        .chain([s1.dir.join("ca.crt").display().to_string()])
        .collect();
    let anonymous = publish_as(plain, "footfall/v1/site-a/s1/sightings", "anonymous");
    assert!(
        !anonymous.status.success(),
        "a client without a certificate connected"
    );
    let rogue_ca = tmp.path().join("rogue-ca");
    pki::create_ca(&rogue_ca, "rogue", 2).expect("another CA");
    pki::issue(
        &rogue_ca,
        &tmp.path().join("rogue"),
        "sensor",
        "site-a/s1",
        Use::Client,
        2,
    )
    .expect("a certificate from it");
    let rogue = id("rogue", "sensor");
    let mut rogue_args = rogue.args(&m);
    rogue_args[5] = s1.dir.join("ca.crt").display().to_string();
    let o = publish_as(rogue_args, "footfall/v1/site-a/s1/sightings", "rogue");
    assert!(
        !o.status.success(),
        "a certificate from another CA connected"
    );

    ok(publish(
        &m,
        &s1,
        &[],
        "footfall/v1/site-a/s1/sightings",
        "s1-last",
    ));
    let got = wait_for(Duration::from_secs(10), || {
        let l = lines(&out);
        l.iter().any(|l| l.ends_with("s1-last")).then_some(l)
    })
    .unwrap_or_else(|| panic!("the last message did not arrive: {:?}", lines(&out)));
    assert_eq!(
        got,
        [
            "footfall/v1/site-a/s1/sightings s1-own",
            "footfall/v1/site-a/s1/status s1-status",
            "footfall/v1/site-a/s1/sightings s1-as-id",
            "footfall/v1/site-a/s1/sightings s1-last",
        ],
        "exactly the allowed messages reached the collector"
    );
    assert!(
        !m.log().contains("Client collector-c1 disconnected")
            && !m.log().contains("Client collector-c1 already connected"),
        "the collector's session was taken over:\n{}",
        m.log()
    );
    assert_eq!(
        lines(&spied),
        Vec::<String>::new(),
        "a sensor read messages"
    );
    for c in [&mut collector, &mut spy] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A stolen sensor's certificate revoked with footfall-fleet: once the broker has the new
/// list (it reads it at start), that sensor cannot connect, and the others still can.
#[test]
fn a_revoked_sensor_is_refused_and_the_others_still_connect() {
    let (tmp, ca, broker_dir) = fleet_of_two_sensors();
    let mut m = testkit::start_fleet_broker(&broker_dir);
    let id = |who: &str| Id {
        dir: tmp.path().join(who),
        stem: "sensor",
    };
    let (s1, s2) = (id("s1"), id("s2"));
    let topic = |site: &str, sensor: &str| format!("footfall/v1/{site}/{sensor}/status");
    for (who, site, sensor) in [(&s1, "site-a", "s1"), (&s2, "site-b", "s2")] {
        let o = publish(&m, who, &[], &topic(site, sensor), "before");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    let crl = broker_dir.join("ca.crl");
    let o = Command::new(env!("CARGO_BIN_EXE_footfall-fleet"))
        .args(["revoke", "--ca"])
        .arg(&ca)
        .args(["--identity", "site-a/s1", "--crl"])
        .arg(&crl)
        .output()
        .expect("footfall-fleet revoke");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("revoked 1 certificate(s) of site-a/s1"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Revoking again changes nothing and still succeeds; an identity never issued is named.
    assert_eq!(pki::revoke(&ca, "site-a/s1").expect("again"), 1);
    let unknown = pki::revoke(&ca, "site-z/s9").expect_err("never issued");
    assert!(format!("{unknown:#}").contains("site-z/s9"), "{unknown:#}");

    m.stop();
    m.launch();
    let refused = publish(&m, &s1, &[], &topic("site-a", "s1"), "after");
    assert!(
        !refused.status.success(),
        "a revoked certificate connected:\n{}",
        m.log()
    );
    let o = publish(&m, &s2, &[], &topic("site-b", "s2"), "after");
    assert!(
        o.status.success(),
        "the other sensor: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
