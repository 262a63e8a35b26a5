//! Faults: the collector SIGKILLed (and SIGTERMed) again and again during a sustained publish, and
//! ClickHouse stopped for a minute mid-run. Either way the final tables equal those of an
//! undisturbed collector that ran beside it (its own database, its own MQTT session).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use simulator::scenario::Scenario;
use testkit::{free_port, sent_at, wait_for, ClickHouse, KillOnDrop, Mosquitto};

use crate::util::{assert_success, collector, first_store, import_calibration, COLLECTOR};

/// (topic, envelope) pairs.
type Messages = Vec<(String, String)>;

struct Setup {
    ch: ClickHouse,
    broker: Mosquitto,
    dir: tempfile::TempDir,
    /// (topic, envelope) in publishing order.
    messages: Messages,
    sightings: u64,
}

fn setup() -> Setup {
    setup_on(Mosquitto::start())
}

/// The city, a ClickHouse, and `broker`.
fn setup_on(broker: Mosquitto) -> Setup {
    let ch = ClickHouse::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let city = dir.path().join("city");
    let s = Scenario::from_overlay(
        "preset = \"tiny\"\n[population]\npeople = 1500\n[stores]\nsensors_per_store = 2\n\
         [output]\nmode = \"envelopes\"\n",
        "test",
    )
    .expect("scenario");
    let truth = simulator::generate(&s, 5, &city, 2, &mut |_| {}).expect("generate");
    let messages = testkit::city_envelopes(&city);
    Setup {
        ch,
        broker,
        dir,
        messages,
        sightings: truth.sightings,
    }
}

impl Setup {
    /// A configuration for collector `name` writing to database `db`; `mqtt` adds lines to
    /// its [mqtt] section, `extra` whole sections.
    fn config_for(&self, name: &str, db: &str, mqtt: &str, extra: &str) -> PathBuf {
        self.config_on(&self.ch.url(), name, db, mqtt, extra)
    }

    /// As [`Setup::config_for`], on the ClickHouse at `clickhouse` (lines of the
    /// [clickhouse] section may follow the URL).
    fn config_on(
        &self,
        clickhouse: &str,
        name: &str,
        db: &str,
        mqtt: &str,
        extra: &str,
    ) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "version = 1\n[clickhouse]\nurl = \"{clickhouse}\"\ndatabase = \"{db}\"\n\
                 [mqtt]\nurl = \"{}\"\nclient_id = \"collector-{name}\"\nkeepalive_secs = 10\n{mqtt}\n\
                 [ingest]\nbatch_max_age_ms = 100\nmax_age_days = 3650\ninventory_refresh_secs = 1\n\
                 [metrics]\nlisten = \"127.0.0.1:{}\"\n{extra}\n",
                self.broker.url(),
                free_port()
            ),
        )
        .expect("config");
        for (kind, file) in [("sites", "sites.csv"), ("sensors", "sensors.csv")] {
            let inventory = self.dir.path().join("city/inventory").join(file);
            assert_success(&collector(
                &["import", kind, inventory.to_str().expect("utf-8")],
                &path,
            ));
        }
        path
    }

    /// The value of the collector's metric `name` (a counter's `_total`), from the metrics
    /// port its configuration `config` names; `None` while it does not answer.
    fn metric<T: std::str::FromStr>(&self, config: &Path, name: &str) -> Option<T> {
        let text = std::fs::read_to_string(config).expect("config");
        let port: u16 = text
            .split("listen = \"127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|p| p.parse().ok())
            .expect("the metrics port");
        testkit::metric(&testkit::metrics_text(port)?, name)
    }

    fn config(&self, db: &str) -> PathBuf {
        self.config_for(db, db, "", "")
    }

    fn start(&self, config: &Path, db: &str) -> KillOnDrop {
        let before = self
            .broker
            .log()
            .matches(&format!("SUBSCRIBE from collector-{db}"))
            .count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{db}.log")))
            .expect("log file");
        let child = Command::new(COLLECTOR)
            .args(["--log", "info", "run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the collector");
        if before == 0 {
            // Generous: under the whole suite's load on two cores, a start (migrations, the
            // inventory, the broker) once took more than 20 s.
            let subscribed = wait_for(Duration::from_secs(60), || {
                self.broker
                    .log()
                    .contains(&format!("SUBSCRIBE from collector-{db}"))
                    .then_some(())
            });
            if subscribed.is_none() {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{db}.log")));
                panic!(
                    "collector {db} did not subscribe within 60 s; its log:\n{}",
                    log.unwrap_or_default()
                );
            }
        }
        KillOnDrop(child)
    }

    /// Publishes every message with mosquitto_pub, in `chunks` pieces `pause` apart.
    fn publish(&self, chunks: usize, pause: Duration) -> std::thread::JoinHandle<()> {
        self.publish_these(self.messages.clone(), chunks, pause)
    }

    fn publish_these(
        &self,
        messages: Messages,
        chunks: usize,
        pause: Duration,
    ) -> std::thread::JoinHandle<()> {
        let port = self.broker.port;
        let dir = self.dir.path().to_path_buf();
        std::thread::spawn(move || {
            testkit::mosquitto_pub_lines(port, &dir, &messages, chunks, pause)
        })
    }

    /// The sightings table as the pipeline defines it (received_ms aside).
    fn table(&self, db: &str) -> String {
        self.ch.query(&format!(
            "SELECT sensor, seq, idx, device, class, fingerprint, first_ms, last_ms, frames, rssi_max, \
             rssi_mean, final, sent_ms FROM {db}.sightings FINAL ORDER BY sensor, seq, idx"
        ))
    }

    /// The visits table as readers see it (FINAL, not retracted; versions aside).
    fn visits(&self, db: &str) -> String {
        visits_in(&self.ch, db)
    }

    /// Stays computed from the sightings table in one pass, independently of the collector:
    /// (site, device, first_ms, last_ms, rssi_max, distinct sightings), sorted.
    fn stays_from_sightings(&self, db: &str) -> String {
        // Board -> RSSI threshold: at a board, sightings in view and out of view chain apart
        // (a sighting's final version decides).
        let boards: std::collections::HashMap<String, i64> = self
            .ch
            .query(&format!(
                "SELECT site_id, rssi_threshold_dbm FROM {db}.sites FINAL WHERE kind = 'billboard'"
            ))
            .lines()
            .map(|l| {
                let (site, t) = l.split_once('\t').expect("two columns");
                (site.to_owned(), t.parse().expect("threshold"))
            })
            .collect();
        let rows = self.ch.query(&format!(
            "SELECT site, device, first_ms, max(last_ms), max(rssi_max), sensor \
             FROM {db}.sightings FINAL GROUP BY site, device, sensor, first_ms"
        ));
        let mut lines: Vec<(String, u64, bool, i64, i64, i64)> = rows
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                let rssi = f[4].parse::<i64>().expect("rssi");
                (
                    f[0].to_owned(),
                    f[1].parse::<u64>().expect("device"),
                    boards.get(f[0]).is_none_or(|t| rssi >= *t),
                    f[2].parse::<i64>().expect("first"),
                    f[3].parse::<i64>().expect("last"),
                    rssi,
                )
            })
            .collect();
        lines.sort();
        let mut out: Vec<(String, u64, bool, i64, i64, i64, u32)> = Vec::new();
        for (site, device, view, first, last, rssi) in lines {
            let gap = if boards.contains_key(&site) {
                1_800_000
            } else {
                600_000
            };
            match out.last_mut() {
                Some(c) if c.0 == site && c.1 == device && c.2 == view && first <= c.4 + gap => {
                    c.4 = c.4.max(last);
                    c.5 = c.5.max(rssi);
                    c.6 += 1;
                }
                _ => out.push((site, device, view, first, last, rssi, 1)),
            }
        }
        out.sort_by_key(|c| (c.0.clone(), c.1, c.3));
        out.iter()
            .map(|c| format!("{}\t{}\t{}\t{}\t{}\t{}\n", c.0, c.1, c.3, c.4, c.5, c.6))
            .collect()
    }

    /// The same columns from the visits table.
    fn stays_from_visits(&self, db: &str) -> String {
        self.ch.query(&format!(
            "SELECT site, device, first_ms, last_ms, rssi_max, sightings FROM {db}.visits FINAL \
             WHERE retracted = 0 ORDER BY site, device, first_ms"
        ))
    }

    fn wait_complete(&self, db: &str, timeout: Duration) {
        let want = self.sightings.to_string();
        let done = wait_for(timeout, || {
            (self
                .ch
                .query(&format!("SELECT count() FROM {db}.sightings FINAL"))
                .trim()
                == want)
                .then_some(())
        });
        if done.is_none() {
            let log = std::fs::read_to_string(self.dir.path().join(format!("{db}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "{db}: {} of {want} sightings; the end of its log:\n{}",
                self.ch
                    .query(&format!("SELECT count() FROM {db}.sightings FINAL"))
                    .trim(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// Asserts two table dumps are equal, showing the lines only one of them has.
/// The current visits of database `db` on `ch`, one line each, in a fixed order.
fn visits_in(ch: &ClickHouse, db: &str) -> String {
    let v = ch.query(&format!(
        "SELECT site, day, device, visit_id, epoch, class, fingerprint, first_ms, last_ms, \
             dwell_secs, rssi_max, sightings, kind FROM {db}.visits FINAL WHERE retracted = 0 \
             ORDER BY site, device, first_ms"
    ));
    assert!(
        v.lines().count() > 100,
        "{db}: only {} visits",
        v.lines().count()
    );
    v
}

fn assert_same(left: &str, right: &str, what: &str) {
    if left == right {
        return;
    }
    let (l, r): (
        std::collections::BTreeSet<&str>,
        std::collections::BTreeSet<&str>,
    ) = (left.lines().collect(), right.lines().collect());
    let only = |a: &std::collections::BTreeSet<&str>, b: &std::collections::BTreeSet<&str>| {
        a.difference(b)
            .take(400)
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    };
    panic!(
        "{what} differ ({} vs {} lines)\nonly left:\n{}\nonly right:\n{}",
        left.lines().count(),
        right.lines().count(),
        only(&l, &r),
        only(&r, &l)
    );
}

fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

impl Setup {
    /// Stops collector `name` with SIGTERM; it must drain and exit 0.
    fn term(&self, child: &mut Child, name: &str) {
        self.term_all(&mut [(child, name)]);
    }

    /// Sends SIGTERM to every collector, then waits for each: the processes of a timely
    /// cluster stop together.
    fn term_all(&self, children: &mut [(&mut Child, &str)]) {
        for (child, _) in children.iter() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for (child, name) in children {
            let status = wait_for(Duration::from_secs(30), || child.try_wait().ok().flatten());
            let log = || std::fs::read_to_string(self.dir.path().join(format!("{name}.log")));
            let status =
                status.unwrap_or_else(|| panic!("{name} ignores SIGTERM; log:\n{:?}", log()));
            assert!(status.success(), "{name}: {status:?}; log:\n{:?}", log());
        }
    }
}

#[test]
fn a_collector_killed_or_stopped_again_and_again_ends_with_the_undisturbed_tables() {
    let s = setup();
    let (calm_cfg, hit_cfg) = (s.config("calm"), s.config("hit"));
    let mut calm = s.start(&calm_cfg, "calm");
    let mut hit = s.start(&hit_cfg, "hit");
    let publisher = s.publish(20, Duration::from_millis(400));
    // SIGKILL six times, and SIGTERM twice (a drain with commits in flight: it must exit 0).
    for round in 0..8 {
        std::thread::sleep(Duration::from_millis(900));
        if round % 3 == 2 {
            s.term(&mut hit, "hit");
        } else {
            kill9(&mut hit);
        }
        std::thread::sleep(Duration::from_millis(200));
        hit = s.start(&hit_cfg, "hit");
    }
    publisher.join().expect("publisher");
    s.wait_complete("calm", Duration::from_secs(60));
    s.wait_complete("hit", Duration::from_secs(60));
    assert_eq!(s.table("hit"), s.table("calm"));
    // Stopped, each writes the stays it still holds: the visits match too.
    s.term(&mut hit, "hit");
    s.term(&mut calm, "calm");
    assert_same(&s.visits("hit"), &s.visits("calm"), "visits");
}

#[test]
fn clickhouse_down_for_a_minute_loses_nothing_and_the_collector_recovers_by_itself() {
    let mut s = setup();
    let cfg = s.config("outage");
    let mut run = s.start(&cfg, "outage");
    let publisher = s.publish(6, Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(600));
    s.ch.stop();
    publisher.join().expect("publisher");
    std::thread::sleep(Duration::from_secs(60));
    assert!(
        run.try_wait().expect("status").is_none(),
        "the collector waits for ClickHouse, it does not exit"
    );
    s.ch.launch();
    s.wait_complete("outage", Duration::from_secs(90));
    // An undisturbed collector reading the same (retained in its session) messages now.
    let calm_cfg = s.config("calm");
    let mut calm = s.start(&calm_cfg, "calm");
    // It subscribed after the publish: publish again for it (the outage db is unaffected:
    // the same keys collapse). In chunks, as before: sightings more than visits.horizon_hours
    // behind the newest are too late for visits, and one chunk would hold whole days of one
    // sensor before the next sensor's first.
    s.publish(6, Duration::ZERO).join().expect("publisher");
    s.wait_complete("calm", Duration::from_secs(60));
    assert_eq!(s.table("outage"), s.table("calm"));
    s.term(&mut run, "outage");
    s.term(&mut calm, "calm");
    assert_same(&s.visits("outage"), &s.visits("calm"), "visits");
}

/// A broker that sends without bound (no in-flight limit; Mosquitto 2.0.11 does not keep to
/// its own once acknowledgements flow) while ClickHouse is down: the collector reads no more
/// than its processor's channel, a batch and what it holds (`ingest.batch_max_rows`
/// messages), and the broker keeps the rest; back up, everything lands.
#[test]
fn a_broker_without_an_in_flight_limit_does_not_fill_the_collector() {
    let mut s = setup_on(Mosquitto::start_with(|_| {
        "max_inflight_messages 0\n".to_owned()
    }));
    let cfg = s.config("held");
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        text.replace("[ingest]\n", "[ingest]\nbatch_max_rows = 50\n"),
    )
    .expect("config");
    let received = |s: &Setup| s.metric::<u64>(&cfg, "footfall_mqtt_messages_total");
    let mut run = s.start(&cfg, "held");
    s.ch.stop();
    // The city, then its smallest envelope again and again: 6,000 messages more.
    let mut messages = s.messages.clone();
    let smallest = s
        .messages
        .iter()
        .min_by_key(|(_, m)| m.len())
        .expect("messages");
    messages.extend(std::iter::repeat_n(smallest.clone(), 6000));
    let total = messages.len() as u64;
    s.publish_these(messages, 1, Duration::ZERO)
        .join()
        .expect("publisher");
    // The processor's channel (4,096), the batch it commits and the one it fills (50 each),
    // and what the MQTT task holds (50).
    let bound = 4096 + 3 * 50;
    let settled = wait_for(Duration::from_secs(10), || {
        let n = received(&s)?;
        std::thread::sleep(Duration::from_millis(500));
        (received(&s)? == n).then_some(n)
    })
    .expect("the collector's count of received messages settles");
    assert!(
        settled <= bound,
        "with ClickHouse down the collector read {settled} of {total} messages (at most {bound})"
    );
    s.ch.launch();
    s.wait_complete("held", Duration::from_secs(120));
    let all = wait_for(Duration::from_secs(60), || {
        received(&s).filter(|&n| n >= total)
    });
    assert!(
        all.is_some(),
        "{:?} of {total} messages received",
        received(&s)
    );
    s.term(&mut run, "held");
}

/// An inventory refresh (every second here) that meets a ClickHouse outage keeps the last
/// inventory: the collector goes on, and what arrived meanwhile lands once ClickHouse is back.
#[test]
fn an_inventory_refresh_during_an_outage_keeps_the_last_inventory() {
    let mut s = setup();
    let cfg = s.config("refresh");
    let mut run = s.start(&cfg, "refresh");
    s.publish(1, Duration::ZERO).join().expect("publisher");
    s.wait_complete("refresh", Duration::from_secs(60));
    s.ch.stop();
    // Idle past the refresh interval, then a message: it is decoded (and the refresh tried)
    // while ClickHouse is down.
    std::thread::sleep(Duration::from_secs(2));
    s.publish(1, Duration::ZERO).join().expect("publisher");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        run.try_wait().expect("status").is_none(),
        "the collector keeps its last inventory, it does not exit"
    );
    s.ch.launch();
    s.wait_complete("refresh", Duration::from_secs(60));
    s.term(&mut run, "refresh");
}

/// A calibration imported while the collector runs is used from the next read of the
/// inventory on: the windows estimated after it (those of later sightings, and those of
/// earlier ones that later sightings changed) are scaled by it, and say so.
#[test]
fn a_calibration_imported_while_the_collector_runs_scales_the_windows_after_it() {
    let s = setup();
    let cfg = s.config("recal");
    let mut run = s.start(&cfg, "recal");
    let half = s.messages.len() / 2;
    (s.publish_these(s.messages[..half].to_vec(), 1, Duration::ZERO))
        .join()
        .expect("publisher");
    let site = first_store(&s.dir.path().join("city"));
    // Every version written so far, each checked to be scaled as it says; how many are
    // uncalibrated windows with devices. (Read before the import as well as after: by the
    // end the first half's windows are all estimated again, calibrated, and a merge may
    // already have dropped the versions before.)
    let versions = || {
        let rows = s.ch.query(&format!(
            "SELECT calibrated, people, global_devices + randomized_devices \
             FROM recal.occupancy WHERE site = '{site}'"
        ));
        let mut uncalibrated = 0;
        for line in rows.lines() {
            let v: Vec<f64> = line
                .split('\t')
                .map(|x| x.parse().expect("a number"))
                .collect();
            let (calibrated, people, devices) = (v[0] == 1.0, v[1], v[2]);
            let scale = if calibrated { 3.0 } else { 1.0 };
            assert!(
                (people - scale * devices).abs() < 1e-6,
                "calibrated {calibrated}: {people} people for {devices} devices"
            );
            uncalibrated += usize::from(!calibrated && devices > 0.0);
        }
        uncalibrated
    };
    let before = wait_for(Duration::from_secs(60), || {
        Some(versions()).filter(|&n| n > 0)
    });
    assert!(
        before.is_some(),
        "no window with devices written from the first half"
    );
    import_calibration(s.dir.path(), &cfg, &site, "-65,3,4,96,0.5");
    // Past `inventory_refresh_secs`: the next message reads the inventory again.
    std::thread::sleep(Duration::from_millis(1500));
    (s.publish_these(s.messages[half..].to_vec(), 1, Duration::ZERO))
        .join()
        .expect("publisher");
    s.wait_complete("recal", Duration::from_secs(60));
    s.term(&mut run, "recal");
    versions();
    // The windows as they stand: those of the second half estimated under the calibration
    // (and those of the first that later sightings changed).
    let after = s.ch.query(&format!(
        "SELECT countIf(calibrated = 1 AND people > 0), countIf(calibrated = 0 AND people > 0) \
         FROM recal.occupancy FINAL WHERE site = '{site}' AND start_ms >= {}",
        chrono::DateTime::parse_from_rfc3339(sent_at(&s.messages[half].1))
            .expect("RFC 3339")
            .timestamp_millis()
    ));
    assert_eq!(
        after
            .split('\t')
            .map(|x| x.trim() != "0")
            .collect::<Vec<_>>(),
        [true, false],
        "windows after the import with people, calibrated and not: {after}"
    );
}

/// Versions rise from what the tables hold, not from the wall clock alone: after a clock
/// stepped back (here, a row already written far in the future), a new row still wins.
#[test]
fn row_versions_start_above_the_tables_highest() {
    let s = setup();
    let cfg = s.config("versions");
    const FUTURE: u64 = 4_000_000_000_000_000; // 2096, in µs
    s.ch.query(&format!(
        "INSERT INTO versions.visits (site, day, device, visit_id, version) \
         VALUES ('elsewhere', '2026-01-01', 1, 1, {FUTURE})"
    ));
    let mut run = s.start(&cfg, "versions");
    s.publish(1, Duration::ZERO).join().expect("publisher");
    s.wait_complete("versions", Duration::from_secs(60));
    s.term(&mut run, "versions");
    let below: u64 =
        s.ch.query(&format!(
            "SELECT count() FROM versions.visits WHERE site != 'elsewhere' AND version <= {FUTURE}"
        ))
        .trim()
        .parse()
        .expect("a count");
    let written: u64 =
        s.ch.query("SELECT count() FROM versions.visits WHERE site != 'elsewhere'")
            .trim()
            .parse()
            .expect("a count");
    assert!(written > 0, "visits were written");
    assert_eq!(
        below, 0,
        "{below} of {written} rows written under the tables' highest version"
    );
}

#[test]
fn visits_are_the_same_with_one_two_or_three_workers_and_as_a_two_process_cluster() {
    let s = setup();
    let hostfile = s.dir.path().join("hosts");
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .expect("hostfile");
    // Long enough a horizon for a sensor whose spool drains days later.
    let late = "[visits]\nhorizon_hours = 480\n";
    let cluster = |p: usize| {
        format!(
            "{late}[timely]\nworkers = 1\nhostfile = \"{}\"\nprocess = {p}\n",
            hostfile.display()
        )
    };
    let shared = "shared_group = \"collectors\"";
    let runs = [
        ("w1", "w1", "", format!("{late}[timely]\nworkers = 1\n")),
        ("w2", "w2", "", format!("{late}[timely]\nworkers = 2\n")),
        ("w3", "w3", "", format!("{late}[timely]\nworkers = 3\n")),
        ("one", "fleet", shared, cluster(0)),
        ("two", "fleet", shared, cluster(1)),
    ];
    let configs: Vec<PathBuf> = runs
        .iter()
        .map(|(name, db, mqtt, extra)| s.config_for(name, db, mqtt, extra))
        .collect();
    let mut children: Vec<KillOnDrop> = runs
        .iter()
        .zip(&configs)
        .map(|((name, ..), c)| s.start(c, name))
        .collect();
    // One store sensor is cut off and its spool drains after everything else: its sightings
    // arrive days behind the watermark and must join the visits the other sensor's made.
    let (held, prompt): (Vec<_>, Vec<_>) = s
        .messages
        .iter()
        .cloned()
        .partition(|(topic, _)| topic.contains("/acme-001-s2/"));
    assert!(!held.is_empty());
    let prompt_sightings: usize = prompt
        .iter()
        .map(|(_, envelope)| {
            let v: serde_json::Value = serde_json::from_str(envelope).expect("an envelope");
            v["sightings"].as_array().expect("sightings").len()
        })
        .sum();
    s.publish_these(prompt, 8, Duration::from_millis(100))
        .join()
        .expect("publisher");
    // Before the held sensor's data comes, w1 (whose tables are checked) has taken in all the
    // rest and written visits at its store: the late data must change written visits.
    wait_for(Duration::from_secs(60), || {
        let sightings = s.ch.query("SELECT count() FROM w1.sightings FINAL");
        let visits =
            s.ch.query("SELECT count() FROM w1.visits WHERE site = 'acme-001'");
        (sightings.trim() == prompt_sightings.to_string() && visits.trim() != "0").then_some(())
    })
    .expect("w1 has every prompt sighting and visits at acme-001 before the late data");
    // The versions the late data writes are counted below in the raw rows: a background
    // merge would collapse them.
    s.ch.query("SYSTEM STOP MERGES w1.visits");
    s.publish_these(held, 2, Duration::from_millis(100))
        .join()
        .expect("publisher");
    for db in ["w1", "w2", "w3", "fleet"] {
        s.wait_complete(db, Duration::from_secs(60));
    }
    // The broker split the messages between the cluster's two processes.
    let log = s.broker.log();
    let received = |n: &str| {
        log.matches(&format!("Sending PUBLISH to collector-{n}"))
            .count()
    };
    assert!(received("one") > 10 && received("two") > 10);
    assert_eq!(received("one") + received("two"), s.messages.len());
    let mut all: Vec<(&mut Child, &str)> = children
        .iter_mut()
        .zip(&runs)
        .map(|(c, (name, ..))| (&mut c.0, *name))
        .collect();
    s.term_all(&mut all);
    let w1 = s.visits("w1");
    for db in ["w2", "w3", "fleet"] {
        assert_same(&s.visits(db), &w1, db);
    }
    // And they are the stays a batch computation finds in the sightings table.
    assert_same(
        &s.stays_from_visits("w1"),
        &s.stays_from_sightings("w1"),
        "visits and stays from sightings",
    );
    // The late sensor's data joined visits already written: they were retracted or updated.
    let updated = s.ch.query(
        "SELECT countIf(retracted = 1), count() - uniqExact(site, day, device, visit_id) \
         FROM w1.visits WHERE site = 'acme-001'",
    );
    let f: Vec<u64> = updated
        .split_whitespace()
        .map(|x| x.parse().expect("count"))
        .collect();
    assert!(f[0] > 0 && f[1] > 0, "retractions, versions: {updated}");
    // Visitors and passers-by both occur, at stores; boards have qualifying passes.
    let kinds = s.ch.query(
        "SELECT site IN (SELECT site_id FROM w1.sites FINAL WHERE kind = 'billboard') AS board, \
         kind, count() FROM w1.visits FINAL WHERE retracted = 0 \
         GROUP BY board, kind ORDER BY board, kind",
    );
    assert_eq!(kinds.lines().count(), 4, "{kinds}");
}

/// A sensor whose day arrives after the horizon (offline longer than `horizon_hours`): its
/// sightings are behind the stage's state, so the visits of its site around them are
/// recomputed from the sightings table. The visits end as the stays the sightings make.
#[test]
fn sightings_that_come_after_the_horizon_recompute_their_visits() {
    let s = setup();
    let cfg = s.config_for("behind", "behind", "", "[visits]\nhorizon_hours = 1\n");
    let mut run = s.start(&cfg, "behind");
    let late_topic = s.late_topic();
    // Its first day's messages (the city lasts days): a recompute reads its site's
    // sightings up to a few hours after them, not the days after.
    let day = |e: &str| sent_at(e).get(..10).expect("a date").to_owned();
    let first_day = day(&s.messages[0].1);
    let (late, early): (Vec<_>, Vec<_>) = s
        .messages
        .iter()
        .cloned()
        .partition(|(t, e)| *t == late_topic && day(e) == first_day);
    s.publish_behind("behind", early, late);
    // Recomputed while the collector runs, once the late sightings stop coming.
    let log = || s.log("behind");
    wait_for(Duration::from_secs(30), || {
        log()
            .contains("visits recomputed around sightings that came after the horizon")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no recompute; log:\n{}", log()));
    let too_late = s.metric::<u64>(&cfg, "footfall_visits_too_late_total");
    assert!(
        too_late.is_some_and(|n| n > 0),
        "the late sightings are counted: {too_late:?}"
    );
    s.term(&mut run, "behind");
    assert_same(
        &s.stays_from_visits("behind"),
        &s.stays_from_sightings("behind"),
        "stays in visits and from the sightings",
    );
}

/// A collector told to stop while it retries a recompute that ClickHouse refuses stops in
/// time, and its next start makes the recompute. (The retrying recompute held the stage's
/// input open, and the stop waited for the input to close: a bench's collector ignored
/// SIGTERM for a quarter of an hour after its ClickHouse went away.)
#[test]
fn a_stop_while_a_recompute_is_refused_ends_and_the_next_start_recomputes() {
    let s = setup();
    let cfg = s.config_for("held", "held", "", "[visits]\nhorizon_hours = 1\n");
    let mut run = s.start(&cfg, "held");
    let (late, early) = s.late_and_early();
    s.publish_behind("held", early, late);
    // The recompute waits 5 s for late sightings to stop coming, then reads the sightings
    // table: gone by then, it is refused, and retried.
    s.ch.query("RENAME TABLE held.sightings TO held.sightings_away");
    let log = || s.log("held");
    let retrying = wait_for(Duration::from_secs(60), || {
        log()
            .contains("cannot recompute the visits yet")
            .then_some(())
    });
    let _ = Command::new("kill")
        .args(["-TERM", &run.0.id().to_string()])
        .status();
    let status = wait_for(Duration::from_secs(30), || run.0.try_wait().ok().flatten());
    s.ch.query("RENAME TABLE held.sightings_away TO held.sightings");
    retrying.unwrap_or_else(|| panic!("the recompute was not refused; log:\n{}", log()));
    let status = status.unwrap_or_else(|| panic!("the stop waited 30 s; log:\n{}", log()));
    assert!(status.success(), "{status:?}; log:\n{}", log());
    let before = log();
    assert!(
        !before.contains("visits recomputed around"),
        "the premise: nothing was recomputed before the stop; log:\n{before}"
    );
    let mut run = s.start(&cfg, "held");
    let after = || s.log("held")[before.len()..].to_owned();
    wait_for(Duration::from_secs(60), || {
        after()
            .contains("visits recomputed around sightings that came after the horizon")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no recompute after the start; log:\n{}", after()));
    s.term(&mut run, "held");
    assert_same(
        &s.stays_from_visits("held"),
        &s.stays_from_sightings("held"),
        "stays in visits and from the sightings",
    );
}

impl Setup {
    /// Publishes `early` and waits until its sightings are in `db`'s table; then `late`, and
    /// waits until every sighting is in: the late ones come behind the stage's horizon.
    fn publish_behind(&self, db: &str, early: Messages, late: Messages) {
        let early_sightings: usize = early
            .iter()
            .map(|(_, e)| e.matches("\"first_seen\"").count())
            .sum();
        self.publish_these(early, 1, Duration::ZERO)
            .join()
            .expect("publisher");
        wait_for(Duration::from_secs(60), || {
            (self
                .ch
                .query(&format!("SELECT count() FROM {db}.sightings FINAL"))
                .trim()
                == early_sightings.to_string())
            .then_some(())
        })
        .expect("the other sensors' sightings land");
        self.publish_these(late, 1, Duration::ZERO)
            .join()
            .expect("publisher");
        self.wait_complete(db, Duration::from_secs(60));
    }

    /// The messages of [`Setup::late_topic`]'s sensor, and the others.
    fn late_and_early(&self) -> (Messages, Messages) {
        let late_topic = self.late_topic();
        self.messages
            .iter()
            .cloned()
            .partition(|(t, _)| *t == late_topic)
    }

    /// The topic of a store's sensor whose store has another, whose stays its sightings
    /// extend and join: the sensor the recompute tests hold back.
    fn late_topic(&self) -> String {
        let site_of = |t: &str| t.split('/').nth(2).unwrap_or("").to_owned();
        self.messages
            .iter()
            .map(|(t, _)| t)
            .find(|t| {
                self.messages
                    .iter()
                    .any(|(o, _)| o != *t && site_of(o) == site_of(t))
            })
            .expect("a site with two sensors")
            .clone()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// A collector SIGKILLed while sightings that came after the horizon wait for their
/// recompute (it waits until they stop coming, and they still come). Their messages were
/// acknowledged and they are behind the horizon the next start reads back, so only the
/// checkpoint's `settled_ms` says their visits are still to be made: the next start
/// recomputes them, beside the visits around the late sightings that come after it. The
/// visits end as the stays the sightings make.
#[test]
fn late_sightings_whose_recompute_a_kill_cut_short_are_recomputed_at_the_next_start() {
    let s = setup();
    // Buckets of 5 s: the frontier passes what was fed within seconds of the wall clock.
    let cfg = s.config_for(
        "cut",
        "cut",
        "",
        "[visits]\nhorizon_hours = 1\nbucket_secs = 5\n",
    );
    let mut run = s.start(&cfg, "cut");
    let (late, early) = s.late_and_early();
    let count = |e: &str| e.matches("\"first_seen\"").count();
    let early_sightings: usize = early.iter().map(|(_, e)| count(e)).sum();
    let late_sightings: usize = late.iter().map(|(_, e)| count(e)).sum();
    let landed = || {
        s.ch.query("SELECT count() FROM cut.sightings FINAL")
            .trim()
            .parse::<usize>()
            .expect("a count")
    };
    s.publish_these(early, 1, Duration::ZERO)
        .join()
        .expect("publisher");
    wait_for(Duration::from_secs(60), || {
        (landed() == early_sightings).then_some(())
    })
    .expect("the other sensors' sightings land");
    // The late sensor's days, in order, a piece every quarter of a second.
    let publisher = s.publish_these(late, 40, Duration::from_millis(250));
    wait_for(Duration::from_secs(60), || {
        (landed() >= early_sightings + late_sightings / 3).then_some(())
    })
    .expect("a third of the late sightings land");
    kill9(&mut run.0);
    let before = s.log("cut");
    assert!(
        !before.contains("visits recomputed around"),
        "the premise: nothing was recomputed before the kill; log:\n{before}"
    );
    publisher.join().expect("publisher");
    let mut run = s.start(&cfg, "cut");
    s.wait_complete("cut", Duration::from_secs(60));
    let after = || s.log("cut")[before.len()..].to_owned();
    // Every late sighting is in; the recomputes wait until no more come for 5 s. The stop
    // waits for them once started (a recompute not started would wait for the next start):
    // so the test waits until none has started for 7 s.
    let recomputes = || after().matches("visits recomputed around").count();
    let (mut seen, mut quiet) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while quiet < 7 {
        assert!(
            std::time::Instant::now() < deadline,
            "no recompute after the start; log:\n{}",
            after()
        );
        std::thread::sleep(Duration::from_secs(1));
        let now = recomputes();
        quiet = if now > 0 && now == seen { quiet + 1 } else { 0 };
        seen = now;
    }
    // Everything is merged or recomputed: the checkpoint settles up to about now (else the
    // next start would read the late sightings again).
    let behind = || {
        let settled: f64 = s.metric(&cfg, "footfall_settled_seconds")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        Some(now - settled)
    };
    let settled = wait_for(Duration::from_secs(60), || behind().filter(|&b| b < 15.0));
    assert!(
        settled.is_some(),
        "the checkpoint settles no later than {:?} s ago",
        behind()
    );
    s.term(&mut run, "cut");
    assert_same(
        &s.stays_from_visits("cut"),
        &s.stays_from_sightings("cut"),
        "stays in visits and from the sightings",
    );
    assert!(
        after().contains("their visits are recomputed"),
        "the start found the late sightings unsettled; log:\n{}",
        after()
    );
}

/// The collector's peak resident memory (VmHWM), bytes.
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// Abuse beside real traffic: a stolen sensor floods its site with made-up device keys and
/// repeats one envelope, an unknown sensor floods, and oversized messages come. The city's
/// sightings all land, the flooded site's state stops at `max_devices_per_site` (the rest
/// counted), and the collector's peak memory stays bounded.
#[test]
fn floods_of_made_up_keys_unknown_sensors_duplicates_and_oversized_messages_stay_bounded() {
    let s = setup();
    let cfg = s.config_for(
        "flood",
        "flood",
        "",
        "[visits]\nmax_devices_per_site = 2000\n",
    );
    let stolen = s.dir.path().join("stolen.csv");
    std::fs::write(
        &stolen,
        "sensor_id,site_id,kind,lat,lon\nstolen-s1,stolen,store,52.0,13.0\n",
    )
    .expect("write");
    assert_success(&collector(
        &["import", "sensors", stolen.to_str().expect("utf-8")],
        &cfg,
    ));
    let mut run = s.start(&cfg, "flood");
    let at = sent_at(&s.messages[0].1).to_owned();
    // 40 envelopes of 500 made-up keys each: 20,000 devices at one site.
    let mut draw = testkit::xorshift(0x9e37_79b9_7f4a_7c15);
    let mut key = move || draw(u64::MAX);
    let envelope = |sensor: &str, site: &str, seq: u64, keys: &mut dyn FnMut() -> u64| {
        let sightings: Vec<String> = (0..500)
            .map(|_| {
                format!(
                    r#"{{"device":"{:016x}","class":"local","fingerprint":"0000abcd","first_seen":"{at}","last_seen":"{at}","frames":1,"rssi_max":-60,"rssi_mean":-60.0,"final":true}}"#,
                    keys()
                )
            })
            .collect();
        format!(
            r#"{{"v":1,"sensor":"{sensor}","site":"{site}","seq":{seq},"epoch":455,"sent_at":"{at}","sightings":[{}]}}"#,
            sightings.join(",")
        )
    };
    let mut flood = Vec::new();
    for seq in 1..=40 {
        flood.push((
            "footfall/v1/stolen/stolen-s1/sightings".to_owned(),
            envelope("stolen-s1", "stolen", seq, &mut key),
        ));
    }
    let repeated = flood[0].clone();
    flood.extend(std::iter::repeat_n(repeated, 200));
    for seq in 1..=200 {
        flood.push((
            "footfall/v1/nowhere/ghost/sightings".to_owned(),
            envelope("ghost", "nowhere", seq, &mut key),
        ));
    }
    // Over ingest.max_payload_bytes, within the client's packet limit (the shipped broker
    // refuses anything larger before it reaches a collector).
    let oversized = format!("{{\"v\":1,\"pad\":\"{}\"}}", "x".repeat((1 << 20) + 1024));
    flood.extend(std::iter::repeat_n(
        (
            "footfall/v1/stolen/stolen-s1/sightings".to_owned(),
            oversized,
        ),
        5,
    ));
    let abuse = s.publish_these(flood, 4, Duration::from_millis(200));
    s.publish(4, Duration::from_millis(200))
        .join()
        .expect("publisher");
    abuse.join().expect("publisher");
    let city = || {
        s.ch.query("SELECT count() FROM flood.sightings FINAL WHERE site != 'stolen'")
            .trim()
            .to_owned()
    };
    wait_for(Duration::from_secs(120), || {
        (city() == s.sightings.to_string()).then_some(())
    })
    .unwrap_or_else(|| panic!("{} of {} city sightings", city(), s.sightings));
    let stolen_rows = wait_for(Duration::from_secs(60), || {
        let n: u64 =
            s.ch.query("SELECT count() FROM flood.sightings FINAL WHERE site = 'stolen'")
                .trim()
                .parse()
                .expect("count");
        (n == 20_000).then_some(n)
    });
    assert_eq!(
        stolen_rows,
        Some(20_000),
        "every made-up sighting is kept, once"
    );
    let peak = peak_rss(run.id());
    s.term(&mut run, "flood");
    let devices = |site: &str| -> u64 {
        s.ch.query(&format!(
            "SELECT uniqExact(device) FROM flood.visits FINAL WHERE site = '{site}' AND retracted = 0"
        ))
        .trim()
        .parse()
        .expect("count")
    };
    assert_eq!(
        devices("stolen"),
        2000,
        "the flooded site's state is capped"
    );
    let rejected = s
        .ch
        .query("SELECT reason, count() FROM flood.rejected FINAL GROUP BY reason ORDER BY reason");
    assert_eq!(
        rejected, "payload_too_large\t1\nunknown_sensor\t200\n",
        "{rejected}"
    );
    eprintln!("flood: the collector's peak RSS was {} MiB", peak >> 20);
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
}

/// The same city into one ClickHouse and into a ClickHouse cluster (2 shards of 2 replicas
/// on ZooKeeper, `clickhouse.cluster`), the cluster's through two collector processes (a
/// timely cluster sharing the subscription) writing the Distributed tables, while one
/// replica is SIGKILLed mid-ingest and started again: the cluster holds every sighting, the
/// same visits and the same occupancy as the one server, and the killed replica catches up.
#[test]
fn a_clickhouse_cluster_holds_what_one_server_holds_through_a_replica_crash() {
    let s = setup();
    let mut cluster = testkit::ClickHouseCluster::start(2, 2);
    let hostfile = s.dir.path().join("cluster-hosts");
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .expect("hostfile");
    let timely = |p: usize| {
        format!(
            "[timely]\nworkers = 1\nhostfile = \"{}\"\nprocess = {p}\n",
            hostfile.display()
        )
    };
    let shared = "shared_group = \"cluster\"";
    let on = |node: usize| {
        format!(
            "{}\"\ncluster = \"{}",
            cluster.nodes[node].url(),
            cluster.name
        )
    };
    let single = s.config("single");
    // Each process talks to a different shard's first replica.
    let first = s.config_on(&on(0), "first", "fleet", shared, &timely(0));
    let second = s.config_on(&on(2), "second", "fleet", shared, &timely(1));
    let mut children = [
        s.start(&single, "single"),
        s.start(&first, "first"),
        s.start(&second, "second"),
    ];
    let publishing = s.publish(8, Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(900));
    // Shard 1's second replica dies with inserts in flight, and comes back.
    cluster.nodes[1].kill();
    std::thread::sleep(Duration::from_secs(3));
    cluster.nodes[1].launch();
    publishing.join().expect("publisher");
    s.wait_complete("single", Duration::from_secs(60));
    let count = |node: usize, table: &str| -> u64 {
        cluster.nodes[node]
            .query(&format!("SELECT count() FROM fleet.{table} FINAL"))
            .trim()
            .parse()
            .expect("a count")
    };
    let all = wait_for(Duration::from_secs(90), || {
        (count(0, "sightings") == s.sightings).then_some(())
    });
    assert!(
        all.is_some(),
        "the cluster holds {} of {} sightings",
        count(0, "sightings"),
        s.sightings
    );
    let mut all: Vec<(&mut Child, &str)> = children
        .iter_mut()
        .zip(["single", "first", "second"])
        .map(|(c, name)| (&mut c.0, name))
        .collect();
    s.term_all(&mut all);
    assert_same(
        &visits_in(&cluster.nodes[0], "fleet"),
        &s.visits("single"),
        "visits on the cluster and on one server",
    );
    let occupancy = |ch: &ClickHouse, db: &str| {
        ch.query(&format!(
            "SELECT site, window_mins, start_ms, people, lo, hi, fixtures FROM {db}.occupancy \
             FINAL ORDER BY site, window_mins, start_ms"
        ))
    };
    let one = occupancy(&s.ch, "single");
    assert!(one.lines().count() > 100, "{} windows", one.lines().count());
    assert_same(
        &occupancy(&cluster.nodes[2], "fleet"),
        &one,
        "occupancy on the cluster and on one server",
    );
    // The campaign's report from the cluster (the attribution reads the Distributed tables,
    // joining devices across shards) is the one server's, figure for figure.
    for config in [&single, &first] {
        for (kind, file) in [
            ("ad-plays", "ad_plays.csv"),
            ("campaigns", "campaigns.jsonl"),
            ("receipts", "receipts.csv"),
            ("links", "links.csv"),
        ] {
            let path = s.dir.path().join("city").join(file);
            assert_success(&collector(
                &["import", kind, path.to_str().expect("utf-8")],
                config,
            ));
        }
    }
    // The report's tables, and the partitions it read without FINAL (its log).
    let report = |url: &str, db: &str, cluster: &[&str], out: &str| {
        let out = s.dir.path().join(out);
        let run = Command::new(testkit::workspace_bin("footfall-attribution"))
            .env("NO_COLOR", "1")
            .args(["--log", "info", "report", "--campaign", "acme-tiny"])
            .args([
                "--bootstrap",
                "400",
                "--clickhouse-url",
                url,
                "--database",
                db,
            ])
            .args(cluster)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("footfall-attribution runs");
        assert_success(&run);
        let log = String::from_utf8_lossy(&run.stderr);
        let plain = log
            .lines()
            .find_map(|l| l.split("read without FINAL partitions=").nth(1))
            .map(str::to_owned);
        let tables = ["windows.csv", "boards.csv", "daily.csv"]
            .map(|t| std::fs::read_to_string(out.join(t)).expect("the report's tables"))
            .concat();
        (
            tables,
            plain.unwrap_or_else(|| panic!("no compaction line: {log}")),
        )
    };
    let on_cluster = ["--cluster", cluster.name];
    let (one, _) = report(&s.ch.url(), "single", &[], "report-single");
    let (spread, _) = report(
        &cluster.nodes[3].url(),
        "fleet",
        &on_cluster,
        "report-cluster",
    );
    // Not an empty comparison: devices passed the boards on both sides.
    let windows = std::fs::read_to_string(s.dir.path().join("report-single/windows.csv"))
        .expect("windows.csv");
    let header: Vec<&str> = windows
        .lines()
        .next()
        .expect("a header")
        .split(',')
        .collect();
    let column = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (exposed, control) = (column("n_exposed"), column("n_control"));
    assert!(
        windows.lines().skip(1).any(|row| {
            let f: Vec<&str> = row.split(',').collect();
            f[exposed] != "0" && f[control] != "0"
        }),
        "{windows}"
    );
    assert_same(&spread, &one, "the report on the cluster and on one server");
    // Once its months are settled and compacted (here by a collector that takes nothing
    // older than a day, and keeps every table), one server's report reads them without
    // FINAL, and says the same. A cluster's are not compacted (18.16, see
    // collector::retention::compact): its report reads with FINAL what is not one part.
    for (config, compacted) in [
        (&single, "links: compacted tuple()"),
        (&first, "0 partition(s)"),
    ] {
        let text = std::fs::read_to_string(config).expect("config");
        let settled = config.with_extension("settled.toml");
        std::fs::write(
            &settled,
            text.replace("max_age_days = 3650", "max_age_days = 1")
                + "[retention]\nsightings_days = 0\nvisits_days = 0\nsensor_status_days = 0\n\
                   rejected_days = 0\nquarantine_days = 0\noccupancy_days = 0\ntraffic_days = 0\n",
        )
        .expect("config");
        let o = collector(&["retention"], &settled);
        assert_success(&o);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(compacted), "{out}");
    }
    let (tables, plain) = report(&s.ch.url(), "single", &[], "compacted-single");
    assert!(plain.contains("visits 2026"), "read plainly: {plain}");
    assert_same(&tables, &one, "the report from compacted months");
    let (tables, _) = report(
        &cluster.nodes[1].url(),
        "fleet",
        &on_cluster,
        "again-cluster",
    );
    assert_same(&tables, &one, "the report on the cluster, again");
    // The sightings are spread over both shards, and each shard's replicas converge, the
    // killed one included.
    let shards: Vec<u64> = [0, 2]
        .iter()
        .map(|&n| count(n, "sightings_local"))
        .collect();
    assert!(shards.iter().all(|&n| n > 0), "{shards:?}");
    assert_eq!(shards.iter().sum::<u64>(), s.sightings);
    for (replica, of) in [(1, 0), (3, 2)] {
        let caught_up = wait_for(Duration::from_secs(60), || {
            (count(replica, "sightings_local") == count(of, "sightings_local")
                && count(replica, "visits_local") == count(of, "visits_local"))
            .then_some(())
        });
        assert!(
            caught_up.is_some(),
            "replica {replica}: {} sightings, {} visits; its twin {} and {}",
            count(replica, "sightings_local"),
            count(replica, "visits_local"),
            count(of, "sightings_local"),
            count(of, "visits_local")
        );
    }
}

/// One `UInt64` row of the stall test's table.
#[derive(clickhouse::Row, serde::Serialize)]
struct Number {
    x: u64,
}

/// A ClickHouse that stops answering (SIGSTOP: connections are accepted, nothing more is read
/// or answered, as on a connection that died silently) fails a write in the middle of its
/// rows, and a read, within `clickhouse.timeout_secs` instead of holding the caller for ever
/// (a visits INSERT held 10 minutes stopped a city's ingest); the same rows sent again land
/// once it answers, each once.
#[test]
fn requests_clickhouse_stops_answering_fail_in_time_and_a_write_lands_when_sent_again() {
    let ch = ClickHouse::start();
    // Keyed like the collector's tables: rows sent twice collapse.
    ch.query("CREATE TABLE default.numbers (x UInt64) ENGINE = ReplacingMergeTree ORDER BY x");
    let (db, _) = warehouse::ClickHouseConfig::from_raw(warehouse::RawClickHouse {
        url: ch.url(),
        database: "default".into(),
        user: "default".into(),
        password_file: None,
        password_env: None,
        compression: "none".into(),
        ca_file: None,
        cluster: None,
        timeout_secs: Some(2),
    })
    .expect("config")
    .clients();
    // Megabytes: more than the sockets' buffers hold, so the rows wait to be sent.
    let rows: Vec<Number> = (0..1_000_000).map(|x| Number { x }).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pid = ch.pid().expect("running");
    // Within 30 s, or the request waited for ever.
    let guarded = |what: &str, result: Result<Result<(), clickhouse::error::Error>, _>| {
        let failed = result.unwrap_or_else(|_| panic!("{what} did not give up by itself in 30 s"));
        assert!(failed.is_err(), "{what} nobody answered succeeded");
    };
    testkit::signal(pid, "-STOP");
    let (write, read) = rt.block_on(async {
        let guard = Duration::from_secs(30);
        let write = tokio::time::timeout(guard, warehouse::insert(&db, "numbers", &rows)).await;
        let read = tokio::time::timeout(
            guard,
            db.query("SELECT count() FROM numbers").fetch_one::<u64>(),
        )
        .await;
        (write, read.map(|r| r.map(|_| ())))
    });
    testkit::signal(pid, "-CONT");
    guarded("an INSERT", write);
    guarded("a SELECT", read);
    rt.block_on(warehouse::insert(&db, "numbers", &rows))
        .expect("sent again, it lands");
    assert_eq!(
        ch.query("SELECT count() FROM default.numbers FINAL").trim(),
        "1000000",
        "each row once (the abandoned INSERT may have written some, as a broken connection's \
         may: the same rows again collapse)"
    );
}
