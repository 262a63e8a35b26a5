use std::fs;
use std::process::Command;

use testkit::deploy;

/// The limits: the agent needs raw capture and channel control; servers need
/// nothing but their sockets.
fn limit(unit: &str) -> f64 {
    if unit == "footfall-agent.service" {
        3.0
    } else {
        2.0
    }
}

/// Every shipped unit, installed with the shared sandbox drop-in into a scratch root, is
/// scored by `systemd-analyze security --offline=true` within its limit.
#[test]
fn every_shipped_unit_is_sandboxed_within_its_exposure_limit() {
    let root = tempfile::tempdir().expect("tempdir");
    let units_dir = root.path().join("etc/systemd/system");
    let dropins = units_dir.join("footfall-.service.d");
    fs::create_dir_all(&dropins).expect("mkdir");
    let shipped = deploy("systemd");
    for e in fs::read_dir(shipped.join("footfall-.service.d")).expect("the drop-in dir") {
        let e = e.expect("entry");
        fs::copy(e.path(), dropins.join(e.file_name())).expect("copy");
    }
    let mut units: Vec<String> = fs::read_dir(&shipped)
        .expect("deploy/systemd")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".service"))
        .collect();
    units.sort();
    assert_eq!(
        units,
        [
            "footfall-agent.service",
            "footfall-collector.service",
            "footfall-dashboard.service"
        ]
    );
    let mut scores = Vec::new();
    for unit in &units {
        fs::copy(shipped.join(unit), units_dir.join(unit)).expect("copy");
        let o = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--root={}", root.path().display()))
            .arg(unit)
            .output()
            .expect("systemd-analyze is installed (deploy/setup.sh)");
        let text = String::from_utf8_lossy(&o.stdout);
        let line = format!("Overall exposure level for {unit}: ");
        let score: f64 = text
            .lines()
            .find_map(|l| l.split(&line).nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no score for {unit}: {text}{}",
                    String::from_utf8_lossy(&o.stderr)
                )
            });
        scores.push((unit.clone(), score));
        assert!(
            score <= limit(unit),
            "{unit}: exposure {score} above {}:\n{text}",
            limit(unit)
        );
    }
    eprintln!("exposure: {scores:?}");
    // What the score does not see: no core files (raw MACs in memory), private files.
    let sandbox =
        fs::read_to_string(shipped.join("footfall-.service.d/sandbox.conf")).expect("sandbox.conf");
    for line in ["LimitCORE=0", "UMask=0077", "NoNewPrivileges=yes"] {
        assert!(
            sandbox.lines().any(|l| l == line),
            "sandbox.conf lacks {line}"
        );
        let key = line.split('=').next().expect("key");
        for unit in &units {
            let text = fs::read_to_string(shipped.join(unit)).expect("unit");
            assert!(
                !text.lines().any(|l| l.starts_with(&format!("{key}="))),
                "{unit} overrides the sandbox's {key}"
            );
        }
    }
}
