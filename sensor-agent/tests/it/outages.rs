//! Outages end to end, with real processes: agents replay real captures at a steady pace (one
//! of them in the binary encoding)
//! through Mosquitto (with the shipped file's persistence and queue settings) to a
//! collector and ClickHouse, while one part after another fails. Afterwards every sighting
//! the agents' summaries say they produced is in the `sightings` table exactly once (every
//! batch number, no two versions of one row), and in exactly one visit.
//!
//! The outages here last seconds. `benches/outages.sh` runs these same tests with the
//! durations of a real incident (`FOOTFALL_OUTAGES=full`: the broker down 10 min, ClickHouse
//! down 10 min, the collector down 30 min); its figures are in benches/README.md.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{free_port, wait_for, ClickHouse, KillOnDrop, Mosquitto};

use crate::util::{assert_success, capture, Sensor};

/// How long each outage lasts.
struct Durations {
    broker_down: Duration,
    clickhouse_down: Duration,
    collector_down: Duration,
}

fn durations() -> Durations {
    match std::env::var("FOOTFALL_OUTAGES").as_deref() {
        Ok("full") => Durations {
            broker_down: Duration::from_secs(600),
            clickhouse_down: Duration::from_secs(600),
            collector_down: Duration::from_secs(1800),
        },
        _ => Durations {
            broker_down: Duration::from_secs(20),
            clickhouse_down: Duration::from_secs(20),
            collector_down: Duration::from_secs(30),
        },
    }
}

/// The captures the agents replay, one each.
const CAPTURES: [&str; 3] = [
    "fryza/position_1_2022-11-15.pcap",
    "fryza/position_2_2024-02-08.pcap",
    "fryza/position_1_2024-03-14.pcap",
];

/// The shipped broker file's persistence, queue and size settings (its listeners and
/// identities are tested in fleet/tests/it/broker.rs).
fn shipped_broker_settings() -> String {
    testkit::shipped_broker_settings(&["persistence ", "autosave_interval "])
        + &testkit::Mosquitto::shipped_limits()
}

struct Agent {
    sensor: Sensor,
    id: String,
    proc: KillOnDrop,
}

struct Fleet {
    dir: tempfile::TempDir,
    ch: ClickHouse,
    broker: Mosquitto,
    config: PathBuf,
    collector: Option<KillOnDrop>,
    agents: Vec<Agent>,
    started: Instant,
}

impl Fleet {
    fn start() -> Fleet {
        let ch = ClickHouse::start();
        let settings = shipped_broker_settings();
        let broker = Mosquitto::start_with(|_| settings);
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("collector.toml");
        std::fs::write(
            &config,
            format!(
                "version = 1\n[clickhouse]\nurl = \"{}\"\ndatabase = \"outages\"\n\
                 [mqtt]\nurl = \"{}\"\nclient_id = \"collector-outages\"\nkeepalive_secs = 10\n\
                 [ingest]\nbatch_max_age_ms = 200\nmax_age_days = 3650\ninventory_refresh_secs = 5\n\
                 [metrics]\nlisten = \"127.0.0.1:{}\"\n",
                ch.url(),
                broker.url(),
                free_port()
            ),
        )
        .expect("collector config");
        let sites = dir.path().join("sites.csv");
        std::fs::write(
            &sites,
            format!(
                "site_id,kind,brand,lat,lon,tz,capture_rate,open_hour,close_hour,\
                 rssi_threshold_dbm,min_dwell_secs\n{}",
                (1..=CAPTURES.len())
                    .map(|i| format!("lab-{i},store,acme,49.2,16.6,Europe/Prague,,0,24,-70,180\n"))
                    .collect::<String>()
            ),
        )
        .expect("sites");
        let sensors = dir.path().join("sensors.csv");
        let rows: String = (1..=CAPTURES.len())
            .map(|i| format!("s-{i},lab-{i},store,49.2,16.6\n"))
            .collect();
        std::fs::write(&sensors, format!("sensor_id,site_id,kind,lat,lon\n{rows}"))
            .expect("sensors");
        for (kind, file) in [("sites", &sites), ("sensors", &sensors)] {
            let o = Command::new(collector_bin())
                .args(["--log", "warn", "import", "--config"])
                .arg(&config)
                .arg(kind)
                .arg(file)
                .output()
                .expect("footfall-collector import");
            assert_success(&o);
        }
        let mut fleet = Fleet {
            dir,
            ch,
            broker,
            config,
            collector: None,
            agents: Vec::new(),
            started: Instant::now(),
        };
        fleet.start_collector();
        fleet
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .expect("log file")
    }

    fn start_collector(&mut self) {
        let subscribed = self
            .broker
            .log()
            .matches("SUBSCRIBE from collector-outages")
            .count();
        let child = Command::new(collector_bin())
            .args(["--log", "info", "run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(self.log("collector"))
            .spawn()
            .expect("start the collector");
        self.collector = Some(KillOnDrop(child));
        if subscribed == 0 {
            wait_for(Duration::from_secs(60), || {
                self.broker
                    .log()
                    .contains("SUBSCRIBE from collector-outages")
                    .then_some(())
            })
            .unwrap_or_else(|| {
                panic!(
                    "the collector did not subscribe:\n{}",
                    self.tail("collector")
                )
            });
        }
    }

    fn kill_collector(&mut self) {
        drop(self.collector.take());
    }

    fn collector(&self) -> &Child {
        &self.collector.as_ref().expect("the collector runs").0
    }

    /// Starts one agent per capture, each replaying it over `run` (as a sensor would see
    /// its day, sped up). With `namespace`, each runs as `unshare -rm sh -c namespace
    /// <sensor dir> <agent> <args>`: in a mount namespace of its own, set up by the script.
    fn start_agents(&mut self, run: Duration, namespace: Option<&str>) {
        for (i, name) in CAPTURES.iter().enumerate() {
            let id = format!("s-{}", i + 1);
            // The second agent sends the binary encoding: the collector takes both at once.
            let encoding = if i == 1 { "binary" } else { "json" };
            let sensor = Sensor::new(
                &self.broker.url(),
                &format!("[mqtt]\nbatch_max_sightings = 20\nencoding = \"{encoding}\"\n"),
            );
            sensor.edit_config("id = \"s-1\"", &format!("id = \"{id}\""));
            sensor.edit_config("site = \"lab\"", &format!("site = \"lab-{}\"", i + 1));
            let pcap = capture(name);
            let times: Vec<i64> = testkit::PcapRecords::read(&pcap)
                .records
                .iter()
                .map(|r| testkit::PcapRecords::frame(r).0)
                .collect();
            let span = (times[times.len() - 1] - times[0]) as f64;
            let speed = span / run.as_millis() as f64;
            let replay = sensor.replay(&pcap);
            let mut cmd = match namespace {
                None => Command::new(replay.get_program()),
                Some(script) => {
                    let mut c = Command::new("unshare");
                    c.args(["-rm", "sh", "-c", script])
                        .arg(sensor.dir.path())
                        .arg(replay.get_program());
                    c
                }
            };
            cmd.args(replay.get_args())
                .args(["--speed", &format!("{speed:.3}"), "--summary"])
                .arg(sensor.path("summary.json"))
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(self.log(&id));
            let child = cmd.spawn().expect("start the agent");
            self.agents.push(Agent {
                sensor,
                id,
                proc: KillOnDrop(child),
            });
        }
        self.started = Instant::now();
    }

    /// Sleeps until `at` after the agents started.
    fn at(&self, at: Duration) {
        if let Some(wait) = at.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }

    fn whole_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    fn tail(&self, name: &str) -> String {
        let log = self.whole_log(name);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits for every agent to finish its capture and drain its spool.
    fn wait_agents(&mut self, timeout: Duration) {
        for a in &mut self.agents {
            let status = wait_for(timeout, || a.proc.0.try_wait().ok().flatten());
            let status =
                status.unwrap_or_else(|| panic!("agent {} still runs after {timeout:?}", a.id));
            assert!(status.success(), "agent {}: {status:?}", a.id);
        }
        for a in &self.agents {
            eprintln!("{}", self.tail(&a.id).lines().last().unwrap_or_default());
        }
    }

    fn query(&self, sql: &str) -> String {
        self.ch.query(sql).trim().to_owned()
    }

    /// Every sighting each agent produced is in `sightings` exactly once, and in exactly
    /// one visit.
    fn assert_exactly_once(&self) {
        for a in &self.agents {
            let summary: serde_json::Value = serde_json::from_slice(
                &std::fs::read(a.sensor.path("summary.json")).expect("the agent's summary"),
            )
            .expect("summary JSON");
            let figure = |k: &str| summary[k].as_u64().expect("a count");
            let (sightings, batches) = (figure("sightings"), figure("batches"));
            assert!(batches > 50, "{summary}");
            // A row per version sent: interim updates, then the final one.
            let rows = sightings + figure("interim_updates");
            let want = format!("{rows}\t{sightings}\t{batches}\t{batches}");
            let sql = format!(
                "SELECT count(), countIf(final = 1), uniqExact(seq), max(seq) \
                 FROM outages.sightings FINAL WHERE sensor = '{}'",
                a.id
            );
            let got = wait_for(Duration::from_secs(240), || {
                let got = self.query(&sql);
                (got == want).then_some(got)
            });
            assert!(
                got.is_some(),
                "agent {}: (rows, final sightings, distinct batches, last batch) in the table \
                 {} against its summary's {want}; the collector's log:\n{}",
                a.id,
                self.query(&sql),
                self.tail("collector")
            );
        }
        // Redelivered copies may sit beside each other until ClickHouse merges them, but
        // they are copies: no row has two different contents.
        assert_eq!(
            self.query(
                "SELECT count() FROM (SELECT sensor, seq, idx FROM outages.sightings \
                 GROUP BY sensor, seq, idx HAVING uniqExact(device, first_ms, last_ms, frames) > 1)"
            ),
            "0",
            "two versions of one row"
        );
        // A stay is written once it is closed, so the visits are checked for the devices
        // last seen an hour (event time) before their site's last sighting.
        let gone = "(site, device) IN (SELECT site, device FROM (SELECT site, device, \
                    max(last_ms) AS seen FROM outages.sightings FINAL GROUP BY site, device) \
                    ANY INNER JOIN (SELECT site, max(last_ms) AS end FROM outages.sightings FINAL \
                    GROUP BY site) USING site WHERE seen < end - 3600000)";
        let distinct = self.query(&format!(
            "SELECT uniqExact(site, device, sensor, first_ms) FROM outages.sightings FINAL \
             WHERE {gone}"
        ));
        let in_visits = format!(
            "SELECT sum(sightings) FROM outages.visits FINAL WHERE retracted = 0 AND {gone}"
        );
        assert!(
            distinct.parse::<u64>().expect("a count") > 1000,
            "{distinct}"
        );
        let counted = wait_for(Duration::from_secs(120), || {
            let v = self.query(&in_visits);
            (v == distinct).then_some(v)
        });
        if counted.is_none() {
            // Where the visits fall short: per site and hour of event time, the sightings
            // of the devices gone against those their visits count (a visit by its start).
            let by_hour = self.query(&format!(
                "SELECT site, hour, s, v FROM (SELECT site, intDiv(first_ms, 3600000) AS hour, \
                 uniqExact(device, sensor, first_ms) AS s FROM outages.sightings FINAL \
                 WHERE {gone} GROUP BY site, hour) ALL LEFT JOIN (SELECT site, \
                 intDiv(first_ms, 3600000) AS hour, sum(sightings) AS v FROM outages.visits \
                 FINAL WHERE retracted = 0 AND {gone} GROUP BY site, hour) USING (site, hour) \
                 ORDER BY site, hour"
            ));
            panic!(
                "{distinct} distinct sightings of the devices gone, {} counted in their visits; \
                 per site and hour (sightings, counted in visits):\n{by_hour}\n\
                 the collector's log:\n{}",
                self.query(&in_visits),
                self.tail("collector")
            );
        }
    }
}

fn collector_bin() -> PathBuf {
    testkit::workspace_bin("footfall-collector")
}

#[test]
fn a_broker_killed_with_acknowledged_messages_queued_and_then_down_loses_nothing() {
    let d = durations();
    let mut f = Fleet::start();
    let run = Duration::from_secs(40) + d.broker_down;
    f.start_agents(run, None);
    // The collector stops taking messages: the broker queues them for its session, and
    // acknowledges each to its agent. Then the broker is killed 8 s later: what it queued
    // since its last save (every 5 s) is gone from it; the agents still have it.
    f.at(Duration::from_secs(6));
    testkit::signal(f.collector().id(), "-STOP");
    f.at(Duration::from_secs(14));
    f.broker.kill();
    f.at(Duration::from_secs(16));
    f.broker.launch();
    testkit::signal(f.collector().id(), "-CONT");
    // Then the broker is down a while (a clean stop) and the agents spool.
    f.at(Duration::from_secs(24));
    f.broker.stop();
    f.at(Duration::from_secs(24) + d.broker_down);
    f.broker.launch();
    f.wait_agents(run + Duration::from_secs(180));
    f.assert_exactly_once();
}

#[test]
fn clickhouse_down_then_the_collector_down_loses_nothing() {
    let d = durations();
    let mut f = Fleet::start();
    let run = Duration::from_secs(30) + d.clickhouse_down + d.collector_down;
    f.start_agents(run, None);
    f.at(Duration::from_secs(6));
    f.ch.stop();
    f.at(Duration::from_secs(6) + d.clickhouse_down);
    f.ch.launch();
    let back = Duration::from_secs(12) + d.clickhouse_down;
    f.at(back);
    f.kill_collector();
    f.at(back + d.collector_down);
    f.start_collector();
    f.wait_agents(run + Duration::from_secs(180));
    f.assert_exactly_once();
}

#[test]
fn a_full_disk_under_the_agents_spools_loses_nothing() {
    let mut f = Fleet::start();
    // Each agent's spool directory is a 1 MiB tmpfs in its own mount namespace, which the
    // test fills (through /proc/<pid>/root) while the broker is down, and empties later.
    let run = Duration::from_secs(40);
    f.start_agents(
        run,
        Some("mkdir -p \"$0/spool\" && mount -t tmpfs -o size=1m footfall-spool \"$0/spool\" && exec \"$@\""),
    );
    let filler = |a: &Agent| {
        PathBuf::from(format!("/proc/{}/root", a.proc.0.id()))
            .join(a.sensor.spool().strip_prefix("/").expect("absolute"))
            .join("filler")
    };
    f.at(Duration::from_secs(5));
    for a in &f.agents {
        // Fill the disk: the write stops at ENOSPC.
        let _ = std::fs::write(filler(a), vec![0u8; 2 << 20]);
        let full = std::fs::metadata(filler(a)).expect("the filler").len();
        assert!(full < 1 << 20, "the spool's disk is 1 MiB: {full}");
    }
    f.at(Duration::from_secs(8));
    f.broker.stop();
    f.at(Duration::from_secs(20));
    f.broker.launch();
    f.at(Duration::from_secs(26));
    for a in &f.agents {
        std::fs::remove_file(filler(a)).expect("empty the disk");
    }
    f.wait_agents(run + Duration::from_secs(120));
    for a in &f.agents {
        let log = f.whole_log(&a.id);
        assert!(
            log.contains("the spool's disk refuses batches")
                && log.contains("the spool's disk takes batches again"),
            "agent {}: {log}",
            a.id
        );
    }
    f.assert_exactly_once();
}
