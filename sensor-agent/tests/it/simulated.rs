//! The agent against the simulator: a simulated city's captures, replayed through the real
//! binary, give exactly the sightings (links included) the simulator's fast mode writes for
//! the same seed,
//! and the agent's counters match the simulator's truth.

use std::collections::BTreeSet;

use simulator::scenario::Scenario;

use crate::util::Sensor;

/// (key, link, class, fingerprint, first, last, frames, rssi max, rssi mean x 10) of final
/// sightings.
type Row = (String, String, String, String, i64, i64, u32, i8, i64);

fn rows(lines: &[String]) -> BTreeSet<Row> {
    let mut out = BTreeSet::new();
    for line in lines {
        let e: wire::Envelope = serde_json::from_str(line).expect("an envelope");
        for s in e.sightings.into_iter().filter(|s| s.is_final) {
            let class = serde_json::to_string(&s.class).expect("class");
            out.insert((
                s.device.to_string(),
                s.link.map(|l| l.to_string()).unwrap_or_default(),
                class,
                format!("{:08x}", s.fingerprint.0),
                s.first_seen.0,
                s.last_seen.0,
                s.frames,
                s.rssi_max,
                (f64::from(s.rssi_mean) * 10.0).round() as i64,
            ));
        }
    }
    out
}

#[test]
fn replayed_simulated_captures_give_the_simulators_sightings() {
    let generate = |overlay: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Scenario::from_overlay(overlay, "test").expect("scenario");
        let summary = simulator::generate(&s, 4, dir.path(), 2, &mut |_| {}).expect("generate");
        (dir, summary)
    };
    let (pcaps, truth) = generate("preset = \"tiny\"\n");
    let (fast, _) = generate("preset = \"tiny\"\n[output]\nmode = \"envelopes\"\n");
    let secret = std::fs::read(pcaps.path().join("tenant.key")).expect("tenant.key");
    let inventory =
        std::fs::read_to_string(pcaps.path().join("inventory/sensors.csv")).expect("inventory");
    let truth_counts =
        std::fs::read_to_string(pcaps.path().join("truth/sensors.csv")).expect("truth");
    let mut compared = 0;
    for line in inventory.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (sensor, site, kind) = (f[0], f[1], f[2]);
        let agent = Sensor::new("mqtt://127.0.0.1:1", "");
        std::fs::write(agent.path("tenant.key"), &secret).expect("secret");
        agent.edit_config("id = \"s-1\"", &format!("id = \"{sensor}\""));
        agent.edit_config(
            "site = \"lab\"",
            &format!("site = \"{site}\"\nsite_kind = \"{kind}\""),
        );
        agent.edit_config("rssi_floor_dbm = -128", "rssi_floor_dbm = -90");
        agent.edit_config("fcs_policy = \"trust-flag\"", "fcs_policy = \"verify\"");
        let (lines, summary) =
            agent.replay_to_file(&pcaps.path().join("captures").join(format!("{sensor}.pcap")));

        let want = std::fs::read_to_string(
            fast.path()
                .join("envelopes")
                .join(format!("{sensor}.jsonl")),
        )
        .expect("fast mode envelopes");
        let want: Vec<String> = want.lines().map(str::to_owned).collect();
        let (got, want) = (rows(&lines), rows(&want));
        assert!(!want.is_empty());
        assert_eq!(got.len(), want.len(), "{sensor}: sighting counts differ");
        assert_eq!(
            got, want,
            "{sensor}: the agent's sightings differ from the simulator's"
        );
        compared += got.len();

        let counts: Vec<u64> = truth_counts
            .lines()
            .find(|l| l.starts_with(&format!("{sensor},")))
            .expect("truth row")
            .split(',')
            .skip(1)
            .map(|x| x.parse().expect("count"))
            .collect();
        // Damaged frames are dropped before they count as probe requests.
        let n = |v: &serde_json::Value| v.as_u64().expect("a count");
        assert_eq!(
            n(&summary["dropped"]["bad_fcs"]),
            counts[1],
            "{sensor}: damaged frames"
        );
        assert_eq!(
            n(&summary["probe_requests"]) + counts[1],
            counts[0],
            "{sensor}: probe requests"
        );
        let malformed: u64 = summary["malformed"]
            .as_object()
            .expect("malformed by reason")
            .values()
            .map(|v| v.as_u64().expect("a count"))
            .sum();
        assert_eq!(malformed, 0, "{sensor}: {}", summary["malformed"]);
    }
    assert_eq!(compared as u64, truth.sightings);
}
