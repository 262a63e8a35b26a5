use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use device_id::EpochKeys;

const FLEET: &str = env!("CARGO_BIN_EXE_footfall-fleet");

/// `footfall-fleet keys` writes the current and next epochs' keys of the tenant secret, mode
/// 0600, and refuses a secret others can read; `sensor` turns them into a bundle whose
/// configuration holds no secret; `revoke` lists its certificate in the CA's revocation
/// list. Paths are relative, as a person types them.
#[test]
fn keys_and_a_sensor_bundle_from_the_command_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let secret = tmp.path().join("tenant.key");
    fs::write(&secret, "test-tenant-secret-0123456789\n").expect("write");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod");
    let keys = tmp.path().join("epoch.keys");
    let run = |args: &[&str]| {
        Command::new(FLEET)
            .current_dir(tmp.path())
            .args(args)
            .output()
            .expect("run")
    };
    let keys_cmd = [
        "keys",
        "--secret-file",
        secret.to_str().expect("utf-8"),
        "--at",
        "2026-11-30T12:00:00Z",
        "--out",
        keys.to_str().expect("utf-8"),
    ];
    let o = run(&keys_cmd);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--secret-file") && err.contains("0644"),
        "{err}"
    );
    assert!(!keys.exists(), "nothing written from a readable secret");

    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
    let o = run(&keys_cmd);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        fs::metadata(&keys).expect("keys").permissions().mode() & 0o777,
        0o600
    );
    let written = EpochKeys::parse(&fs::read_to_string(&keys).expect("keys")).expect("parses");
    // 2026-11-30T12:00Z is 1,796,040,000 s after 1970: epoch 461 of 45 days.
    assert_eq!(
        written,
        EpochKeys::derive(b"test-tenant-secret-0123456789", 45, 1_796_040_000_000, 1)
    );
    assert_eq!(written.epochs().collect::<Vec<_>>(), [461, 462]);

    let o = run(&["ca", "--ca", "ca", "--days", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "broker",
        "--ca",
        "ca",
        "--out",
        "broker",
        "--host",
        "127.0.0.1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bundle = tmp.path().join("bundle");
    let mut sensor = vec![
        "sensor",
        "--ca",
        "ca",
        "--out",
        "bundle",
        "--site",
        "store-7",
        "--sensor",
        "s-01",
        "--keys",
        keys.to_str().expect("utf-8"),
        "--access",
        "broker/dynamic-security.json",
    ];
    let o = run(&[&sensor[..], &["--broker", "mqtt://broker:1883"]].concat());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--broker") && err.contains("TLS"),
        "{err}"
    );
    sensor.extend(["--broker", "mqtts://broker:8883"]);
    let o = run(&sensor);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let toml = fs::read_to_string(bundle.join("agent.toml")).expect("agent.toml");
    assert!(
        toml.contains("keys_file = \"epoch.keys\"") && !toml.contains("secret_"),
        "{toml}"
    );
    assert_eq!(
        fs::read(bundle.join("epoch.keys")).ok(),
        fs::read(&keys).ok()
    );
    // Its role in the broker's access rules: its own two topics.
    let rules = fs::read_to_string(tmp.path().join("broker/dynamic-security.json")).expect("rules");
    assert!(
        rules.contains("\"username\": \"store-7/s-01\"")
            && rules.contains("\"footfall/v1/store-7/s-01/sightings\""),
        "{rules}"
    );
    let cert = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(bundle.join("sensor.crt"))
        .output()
        .expect("openssl");
    let subject = String::from_utf8_lossy(&cert.stdout);
    assert!(subject.contains("CN = store-7/s-01"), "{subject}");

    let o = run(&[
        "revoke",
        "--ca",
        "ca",
        "--identity",
        "store-7/s-01",
        "--crl",
        "ca.crl",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let serial = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(bundle.join("sensor.crt"))
        .output()
        .expect("openssl");
    let serial = String::from_utf8_lossy(&serial.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_owned();
    let crl = Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(tmp.path().join("ca.crl"))
        .output()
        .expect("openssl");
    let crl = String::from_utf8_lossy(&crl.stdout);
    assert!(
        crl.contains(&format!("Serial Number: {serial}")),
        "{serial} not in\n{crl}"
    );
}

/// `footfall-fleet opt-out` reads addresses from standard input and prints their keys in
/// each epoch of the period: the keys the sensors compute (the same derivation).
#[test]
fn opt_out_prints_an_address_key_in_each_epoch_and_never_echoes_an_address() {
    use std::io::Write;
    use std::process::Stdio;

    let tmp = tempfile::tempdir().expect("tempdir");
    let secret = tmp.path().join("tenant.key");
    fs::write(&secret, "test-tenant-secret-0123456789\n").expect("write");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = |stdin: &str| {
        let mut child = Command::new(FLEET)
            .args(["opt-out", "--secret-file"])
            .arg(&secret)
            .args([
                "--from",
                "2026-11-30T00:00:00Z",
                "--to",
                "2026-12-05T00:00:00Z",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write");
        child.wait_with_output().expect("output")
    };
    let o = run("A4:5E:60:01:02:03\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let mac = [0xa4, 0x5e, 0x60, 0x01, 0x02, 0x03];
    // 2026-12-03 begins epoch 462 of 45 days.
    let want = [461, 462]
        .map(|e| {
            let key = device_id::epoch_key(b"test-tenant-secret-0123456789", e);
            device_id::device_key(&key, &mac).to_string()
        })
        .to_vec();
    let keys: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(keys, want, "{out}");
    assert!(
        out.contains("# epoch 462: 2026-12-03 to 2027-01-16"),
        "{out}"
    );
    let o = run("a4:5e:60:01:02:03\na4:5e:60:01:02:0g\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("line 2"), "{err}");
    assert!(!err.contains("a4:5e") && o.stdout.is_empty(), "{err}");
}
