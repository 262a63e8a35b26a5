//! The ingest path against real processes: Mosquitto, ClickHouse 18.16, the collector
//! binary, and `mosquitto_pub` (a client we did not write) as the publisher.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use simulator::scenario::Scenario;
use testkit::{free_port, wait_for, ClickHouse, KillOnDrop, Mosquitto};

use crate::util::{assert_success, collector, first_store, import_calibration, COLLECTOR};

/// A collector process, killed if a failed test leaves it running.
struct Collector {
    child: KillOnDrop,
    metrics_port: u16,
}

impl Collector {
    fn start(config: &Path, metrics_port: u16) -> Collector {
        let child = Command::new(COLLECTOR)
            .args(["--log", "info", "run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the collector");
        Collector {
            child: KillOnDrop(child),
            metrics_port,
        }
    }

    /// A collector of database `name` on `ch`, reading the broker at `mqtt_port`, with
    /// `extra` after its `[mqtt]` lines (more of them, or further sections); started, and
    /// subscribed. Its configuration lives in the directory returned.
    fn subscribed(
        ch: &ClickHouse,
        name: &str,
        mqtt_port: u16,
        extra: &str,
    ) -> (Collector, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics_port = free_port();
        let cfg = dir.path().join("collector.toml");
        std::fs::write(
            &cfg,
            format!(
                "version = 1\n[clickhouse]\nurl = \"{}\"\ndatabase = \"{name}\"\n\
                 [mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\nclient_id = \"collector-{name}\"\n\
                 {extra}\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
                ch.url()
            ),
        )
        .expect("config");
        let run = Collector::start(&cfg, metrics_port);
        run.wait_subscribed(Duration::from_secs(30));
        (run, dir)
    }

    fn metrics(&self) -> String {
        testkit::metrics_text(self.metrics_port).unwrap_or_default()
    }

    /// Waits until the collector's subscriptions are in place, as its metrics say.
    fn wait_subscribed(&self, within: Duration) {
        wait_for(within, || {
            self.metrics()
                .contains("\nfootfall_mqtt_subscribed 1\n")
                .then_some(())
        })
        .unwrap_or_else(|| panic!("the collector did not subscribe:\n{}", self.metrics()));
    }

    fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        wait_for(Duration::from_secs(20), || {
            self.child.try_wait().ok().flatten()
        })
        .expect("the collector stops on SIGTERM")
    }
}

/// What mosquitto_pub sends: each line of a file, one message, or a file as one message.
enum Source<'a> {
    Lines(&'a Path),
    Message(&'a str),
    File(&'a Path),
}

fn publish(broker: &Mosquitto, topic: &str, source: Source) {
    publish_with(broker, &[], topic, source);
}

/// As [`publish`], with further mosquitto_pub arguments `extra` (TLS files).
fn publish_with(broker: &Mosquitto, extra: &[String], topic: &str, source: Source) {
    let mut c = Command::new("mosquitto_pub");
    c.args(extra);
    c.args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port.to_string(),
        "-q",
        "1",
        "-t",
        topic,
    ]);
    match source {
        Source::Lines(path) => c
            .arg("-l")
            .stdin(std::fs::File::open(path).expect("envelopes")),
        Source::Message(m) => c.args(["-m", m]),
        Source::File(path) => c.arg("-f").arg(path),
    };
    assert_success(
        &c.output()
            .expect("mosquitto_pub is installed (deploy/setup.sh)"),
    );
}

/// The tiny preset's city (envelopes) of `seed` in `dir/city`.
fn tiny_city(dir: &Path, seed: u64) -> (std::path::PathBuf, simulator::Summary) {
    let city = dir.join("city");
    let s = Scenario::from_overlay(
        "preset = \"tiny\"\n[output]\nmode = \"envelopes\"\n",
        "test",
    )
    .expect("scenario");
    let truth = simulator::generate(&s, seed, &city, 2, &mut |_| {}).expect("generate");
    (city, truth)
}

/// (sensor, site) of every sensor in an inventory file.
fn inventory_sensors(inventory: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(inventory)
        .expect("inventory")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_owned(), f[1].to_owned())
        })
        .collect()
}

/// Each sensor's batch numbers missing between its first and last stored (as the dashboard's
/// Sensors page counts them, over all time).
const HOLES: &str = "SELECT sensor, max(seq) - min(seq) + 1 - uniqExact(seq) AS missing \
    FROM ingest.batches GROUP BY sensor";

fn count(ch: &ClickHouse, sql: &str) -> u64 {
    ch.query(sql)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("a count from {sql}"))
}

#[test]
fn published_envelopes_land_once_and_bad_messages_are_rejected_with_their_reasons() {
    let ch = ClickHouse::start();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (city, truth) = tiny_city(dir.path(), 9);

    let metrics_port = free_port();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[clickhouse]\nurl = \"{}\"\ndatabase = \"ingest\"\n\
             [mqtt]\nurl = \"{}\"\nclient_id = \"collector-test\"\n\
             [ingest]\nbatch_max_age_ms = 200\nmax_payload_bytes = 65536\nmax_age_days = 3650\n\
             [visits]\nbucket_secs = 1\nlateness_secs = 0\nstore_gap_secs = 1\nboard_gap_secs = 1\n\
             horizon_hours = 1440\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            ch.url(),
            broker.url()
        ),
    )
    .expect("config");
    let inventory = city.join("inventory/sensors.csv");
    assert_success(&collector(
        &["import", "sensors", inventory.to_str().expect("utf-8")],
        &cfg,
    ));
    // One store calibrated (imported into the inventory as `calibrate` writes it): its
    // windows are estimated with its floor, scale and fixture rule (a device heard in 2
    // hours of its day), the others uncalibrated.
    let calibrated_site = first_store(&city);
    let calibrations = import_calibration(dir.path(), &cfg, &calibrated_site, "-70,2.5,2,96,0.8");
    let run = Collector::start(&cfg, metrics_port);
    wait_for(Duration::from_secs(20), || {
        broker.log().contains("collector-test").then_some(())
    })
    .expect("the collector connects");
    run.wait_subscribed(Duration::from_secs(10));
    assert!(broker.log().contains("SUBSCRIBE from collector-test"));

    // Every sensor's envelopes, twice (a spool replay), through mosquitto_pub. The first
    // time, the last sensor's second batch is lost on the way: its hole shows until the
    // second time fills it.
    let sensors = inventory_sensors(&inventory);
    let (lossy, _) = sensors.last().expect("sensors");
    let lines = std::fs::read_to_string(city.join("envelopes").join(format!("{lossy}.jsonl")))
        .expect("envelopes");
    let lost: wire::Envelope =
        serde_json::from_str(lines.lines().nth(1).expect("a second batch")).expect("envelope");
    assert!(lines.lines().count() > 2, "the lost batch is not the last");
    let without = dir.path().join("without-one.jsonl");
    let kept: Vec<&str> = (lines.lines().enumerate())
        .filter_map(|(i, l)| (i != 1).then_some(l))
        .collect();
    std::fs::write(&without, kept.join("\n") + "\n").expect("write");
    for pass in 0..2 {
        for (sensor, site) in &sensors {
            let topic = format!("footfall/v1/{site}/{sensor}/sightings");
            let file = city.join("envelopes").join(format!("{sensor}.jsonl"));
            let lossy_now = pass == 0 && sensor == lossy;
            publish(
                &broker,
                &topic,
                Source::Lines(if lossy_now { &without } else { &file }),
            );
        }
        if pass == 0 {
            let short = truth.sightings - lost.sightings.len() as u64;
            wait_for(Duration::from_secs(60), || {
                (count(&ch, "SELECT count() FROM ingest.sightings FINAL") == short).then_some(())
            })
            .expect("all but the lost batch's sightings");
            assert_eq!(
                ch.query(&format!("{HOLES} HAVING missing > 0")),
                format!("{lossy}\t1\n"),
                "one batch of {lossy} missing"
            );
        }
    }
    // Bad messages, one per reason.
    let (sensor, site) = &sensors[0];
    let good = std::fs::read_to_string(city.join("envelopes").join(format!("{sensor}.jsonl")))
        .expect("envelopes")
        .lines()
        .next()
        .expect("an envelope")
        .to_owned();
    let topic = format!("footfall/v1/{site}/{sensor}/sightings");
    publish(&broker, &topic, Source::Message("{\"v\":1, not json"));
    publish(
        &broker,
        &topic,
        Source::Message(&good.replacen(&format!("\"v\":{}", wire::VERSION), "\"v\":9", 1)),
    );
    publish(
        &broker,
        &format!("footfall/v1/{site}/nobody/sightings"),
        Source::Message(&good.replacen(sensor, "nobody", 1)),
    );
    publish(
        &broker,
        &format!("footfall/v1/{site}/{}/sightings", sensors[1].0),
        Source::Message(&good),
    );
    let big = dir.path().join("big.txt");
    std::fs::write(&big, "x".repeat(100_000)).expect("write");
    publish(&broker, &topic, Source::File(&big));

    let want = truth.sightings;
    let got = wait_for(Duration::from_secs(60), || {
        let n = count(&ch, "SELECT count() FROM ingest.sightings FINAL");
        let r = count(&ch, "SELECT count() FROM ingest.rejected FINAL");
        (n == want && r == 5).then_some(n)
    });
    assert_eq!(
        got,
        Some(want),
        "sightings {} of {want}, rejected: {}",
        ch.query("SELECT count() FROM ingest.sightings FINAL"),
        ch.query("SELECT reason, count() FROM ingest.rejected FINAL GROUP BY reason")
    );
    assert_eq!(
        ch.query("SELECT reason FROM ingest.rejected FINAL ORDER BY reason"),
        "malformed_json\npayload_too_large\ntopic_mismatch\nunknown_sensor\nunsupported_version\n"
    );
    // Stored bytes of what was refused: truncated, with the size and the topic.
    assert_eq!(
        ch.query("SELECT payload_bytes, length(payload), topic FROM ingest.rejected FINAL WHERE reason = 'payload_too_large'"),
        format!("100000\t4096\t{topic}\n")
    );
    // Each sighting once per (sensor, seq, idx), whatever the redeliveries.
    assert_eq!(
        count(&ch, "SELECT count() FROM (SELECT sensor, seq, idx FROM ingest.sightings FINAL GROUP BY sensor, seq, idx)"),
        want
    );
    // One row a batch (message) stored: every sensor's numbers run without a hole (the
    // Sensors page's batches missing are 0).
    let envelopes: usize = sensors
        .iter()
        .map(|(sensor, _)| {
            std::fs::read_to_string(city.join("envelopes").join(format!("{sensor}.jsonl")))
                .expect("envelopes")
                .lines()
                .count()
        })
        .sum();
    assert_eq!(
        count(&ch, "SELECT count() FROM ingest.batches FINAL"),
        envelopes as u64
    );
    // The same (sensor, seq, sent_at) as the sightings'.
    assert_eq!(
        count(
            &ch,
            "SELECT uniqExact(sensor, seq, sent_ms) FROM (SELECT sensor, seq, sent_ms FROM \
             ingest.batches UNION ALL SELECT sensor, seq, sent_ms FROM ingest.sightings)"
        ),
        envelopes as u64
    );
    assert_eq!(ch.query(&format!("{HOLES} HAVING missing > 0")), "");
    // The tiny city's days are in the last 30 of epoch 455: every sighting carried its next
    // key, and the collector kept one pair per device.
    let pairs = count(&ch, "SELECT count() FROM ingest.bridges FINAL");
    assert!(pairs > 0);
    assert_eq!(
        pairs,
        count(&ch, "SELECT uniqExact(epoch, device) FROM ingest.sightings")
    );
    // Published twice, every envelope was decoded and written once: the second copies were
    // taken for what they are, repeats (after a reconnection the broker sends hundreds of
    // thousands so at city scale).
    let written = format!("\nfootfall_rows_written_total{{table=\"sightings\"}} {want}\n");
    let batches = format!("\nfootfall_rows_written_total{{table=\"batches\"}} {envelopes}\n");
    // (All but the batch lost the first time.)
    let repeats = format!("\nfootfall_mqtt_repeats_total {}\n", envelopes - 1);
    // (The counters follow the commit that made the rows visible.)
    let metrics = wait_for(Duration::from_secs(10), || {
        let m = run.metrics();
        (m.contains(&written) && m.contains(&batches) && m.contains(&repeats)).then_some(m)
    })
    .unwrap_or_else(|| {
        panic!(
            "{want} sightings written once each, {envelopes} repeats: {}",
            run.metrics()
        )
    });
    assert!(
        metrics.contains("footfall_rejected_total{reason=\"unknown_sensor\"} 1"),
        "{metrics}"
    );
    // The simulated agents link their addresses: no sighting came without a link.
    assert!(
        metrics.contains("\nfootfall_sightings_unlinked_total 0\n"),
        "{metrics}"
    );
    // The input is idle now: the watermark moves on with the clock, so even the newest stay
    // closes and is written while the collector runs (1-s buckets and gaps, no lateness).
    let newest = count(
        &ch,
        "SELECT max(last_ms) FROM ingest.sightings WHERE final = 1",
    );
    wait_for(Duration::from_secs(30), || {
        let sql = format!("SELECT count() FROM ingest.visits FINAL WHERE last_ms = {newest}");
        (count(&ch, &sql) > 0).then_some(())
    })
    .expect("the newest stay is written while the input is idle");
    let watermark: f64 =
        testkit::metric(&run.metrics(), "footfall_watermark_seconds").expect("the watermark gauge");
    assert!(watermark * 1000.0 > newest as f64, "{watermark}");
    let status = run.stop();
    assert!(status.success(), "{status:?}");

    // People per site and 15-min window, from the stage (the sensors published one after
    // another: most of it arrived late, and rewrote windows), are what the offline estimate
    // over each site's envelopes says.
    let mut by_site: std::collections::BTreeMap<&str, Vec<collector::counting::Sensed>> =
        Default::default();
    for (sensor, site) in &sensors {
        let file = city.join("envelopes").join(format!("{sensor}.jsonl"));
        by_site.entry(site).or_default().extend(
            collector::offline::read_envelopes(&file)
                .expect("envelopes")
                .1,
        );
    }
    let mut offline = std::collections::BTreeMap::new();
    for (site, sensed) in &by_site {
        let cal = if *site == calibrated_site {
            collector::offline::read_calibration(&calibrations, site).expect("calibration")
        } else {
            collector::counting::Calibration::uncalibrated()
        };
        for w in collector::counting::estimate(sensed, 15 * 60_000, &cal) {
            offline.insert((site.to_string(), w.start_ms), w.people);
        }
    }
    let stored: std::collections::BTreeMap<(String, i64), f64> = ch
        .query(&format!(
            "SELECT site, start_ms, people FROM ingest.occupancy FINAL WHERE window_mins = 15 \
             AND estimator = '{}'",
            collector::counting::VERSION
        ))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let n = |i: usize| f[i].parse::<f64>().expect("a number");
            ((f[0].to_owned(), n(1) as i64), n(2))
        })
        .collect();
    // Said in every row: calibrated for that store only.
    assert_eq!(
        ch.query(
            "SELECT site, max(calibrated) FROM ingest.occupancy FINAL GROUP BY site \
             HAVING max(calibrated) = 1",
        ),
        format!("{calibrated_site}\t1\n")
    );
    let occupied = offline.iter().filter(|(_, p)| **p > 0.0).count();
    assert!(occupied > 50, "{occupied} occupied windows");
    for (key, people) in &offline {
        let got = stored.get(key).copied();
        assert!(
            got.map_or(*people == 0.0, |g| (g - people).abs() < 1e-6),
            "{key:?}: stored {got:?}, offline {people}"
        );
    }
    for (key, people) in &stored {
        assert!(
            offline.contains_key(key),
            "{key:?} ({people}) is not an offline window"
        );
    }

    // Traffic per site and hour, from the stage, is what the same code says offline over
    // each site's envelopes (the sites are not in the inventory: the [visits] defaults).
    let mut rules = collector::visits::Rules::defaults(
        collector::config::Config::load(&cfg)
            .expect("config")
            .visits(),
    );
    rules.calibrations.insert(
        calibrated_site.clone(),
        collector::offline::read_calibration(&calibrations, &calibrated_site).expect("calibration"),
    );
    let mut offline = std::collections::BTreeMap::new();
    for (site, sensed) in &by_site {
        let (from, to) = (
            sensed.iter().map(|s| s.first_ms).min().expect("sightings"),
            sensed.iter().map(|s| s.last_ms).max().expect("sightings"),
        );
        let setting = collector::traffic::Setting::of(&rules, site);
        let (fixed, identities) =
            collector::counting::known(sensed, setting.calibration.fixture_hours);
        let hours =
            collector::traffic::hours_between(sensed, &fixed, &identities, &setting, from, to);
        for h in hours {
            let row = format!(
                "{}\t{:.3}\t{:.3}\t{}\t{}\t{}\t{}",
                h.visitor_devices,
                h.visitors,
                h.passers_by,
                h.passer_by_devices,
                h.addresses,
                h.dwell.map(|d| d.to_string()).join(","),
                u8::from(*site == calibrated_site),
            );
            offline.insert((site.to_string(), h.start_ms), row);
        }
    }
    let stored: std::collections::BTreeMap<(String, i64), String> = ch
        .query(
            "SELECT site, hour_ms, visitor_devices, round(visitors, 3), round(passers_by, 3), \
             passer_by_devices, addresses, \
             arrayStringConcat([toString(dwell_under_5), toString(dwell_5_20), \
             toString(dwell_20_60), toString(dwell_over_60)], ','), calibrated \
             FROM ingest.traffic FINAL",
        )
        .lines()
        .map(|l| {
            let (site, rest) = l.split_once('\t').expect("site");
            let (hour, rest) = rest.split_once('\t').expect("hour");
            let fix = |v: &str| format!("{:.3}", v.parse::<f64>().expect("a number"));
            let f: Vec<String> = rest
                .split('\t')
                .enumerate()
                .map(|(i, v)| {
                    if i == 1 || i == 2 {
                        fix(v)
                    } else {
                        v.to_owned()
                    }
                })
                .collect();
            ((site.to_owned(), hour.parse().expect("ms")), f.join("\t"))
        })
        .collect();
    assert_eq!(stored.len(), offline.len());
    // Not a comparison of empty hours: stays counted (visitors and passers-by; with this
    // test's 1-s gap, most are passers-by; the calibrated store's 2-hour fixture rule
    // takes 66 of the 551 the default's 4 hours leaves for fixtures).
    let stays: u32 = offline
        .values()
        .map(|r| {
            let f: Vec<&str> = r.split('\t').collect();
            f[0].parse::<u32>().unwrap_or(0) + f[3].parse::<u32>().unwrap_or(0)
        })
        .sum();
    assert!(stays > 400, "{stays} stays");
    for (key, row) in &offline {
        assert_eq!(stored.get(key), Some(row), "{key:?}");
    }

    // The first run acknowledged every message it took before it stopped: the broker, which
    // keeps the session, sends the next run none of them again.
    let run = Collector::start(&cfg, metrics_port);
    run.wait_subscribed(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    let again = testkit::metric::<u64>(&run.metrics(), "footfall_mqtt_messages_total");
    assert_eq!(again, Some(0), "messages sent again after a clean stop");

    // The pairs of epoch 455 stay while epoch 456's sightings may come, and go once a
    // sighting of epoch 457 arrives: no stored pair links keys two boundaries apart.
    let later = |epoch: u32, seq: u64| {
        let first = good.find("\"seq\":").expect("a seq") + 6;
        let end = first + good[first..].find(',').expect("a comma");
        let e = good.find("\"epoch\":").expect("an epoch") + 8;
        let e_end = e + good[e..].find(',').expect("a comma");
        format!(
            "{}{seq}{}{epoch}{}",
            &good[..first],
            &good[end..e],
            &good[e_end..]
        )
    };
    publish(&broker, &topic, Source::Message(&later(456, 1_000_001)));
    wait_for(Duration::from_secs(30), || {
        (count(
            &ch,
            "SELECT count() FROM ingest.sightings WHERE epoch = 456",
        ) > 0)
            .then_some(())
    })
    .expect("the epoch 456 sightings land");
    let of = |epoch: u32| {
        count(
            &ch,
            &format!("SELECT count() FROM ingest.bridges FINAL WHERE epoch = {epoch}"),
        )
    };
    assert_eq!(of(455), pairs);
    publish(&broker, &topic, Source::Message(&later(457, 1_000_002)));
    wait_for(Duration::from_secs(30), || {
        (of(455) == 0 && of(456) > 0).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "epoch 455's pairs dropped, 456's kept: {}",
            ch.query("SELECT epoch, count() FROM ingest.bridges GROUP BY epoch")
        )
    });
    assert!(run.stop().success());
}

/// A fleet as deployed: the shipped broker (TLS only, client certificates, ACL), sensors
/// publishing with the certificates `footfall-fleet` issued them, and the collector over
/// `mqtts://` with its own, writing to ClickHouse over HTTPS. Every sighting lands, and the broker knows the collector by its
/// certificate, not by the client id it asked for.
#[test]
fn a_fleet_collector_ingests_over_mqtts_with_its_certificate_into_clickhouse_over_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ch_pki = dir.path().join("ch-pki");
    std::fs::create_dir(&ch_pki).expect("mkdir");
    testkit::make_test_pki(&ch_pki);
    let ch = ClickHouse::start_tls(&ch_pki);
    let (city, truth) = tiny_city(dir.path(), 4);

    let (ca, broker_dir) = (dir.path().join("ca"), dir.path().join("broker"));
    fleet::pki::create_ca(&ca, "test-fleet-ca", 2).expect("the CA");
    testkit::prepare_fleet_broker(&ca, &broker_dir);
    let collector_dir = dir.path().join("collector");
    fleet::enrol::collector(
        &ca,
        &collector_dir,
        "c1",
        &broker_dir.join("dynamic-security.json"),
        2,
    )
    .expect("enrol the collector");
    // The sensors, each with its role in the broker's access rules (read at its start).
    let keys = device_id::EpochKeys::derive(b"unused-in-this-test-0123", 45, 0, 1);
    for (sensor, site) in &inventory_sensors(&city.join("inventory/sensors.csv")) {
        let e = fleet::enrol::SensorEnrolment {
            site,
            sensor,
            site_kind: firmware_config::SiteKind::Store,
            broker: "mqtts://127.0.0.1:8883",
            keys: &keys,
            bridge_days: 30,
            days: 2,
            access: &broker_dir.join("dynamic-security.json"),
        };
        fleet::enrol::sensor(&ca, &dir.path().join("sensors").join(sensor), &e)
            .expect("enrol a sensor");
    }
    let broker = testkit::start_fleet_broker(&broker_dir);

    let metrics_port = free_port();
    let cfg = dir.path().join("collector.toml");
    let file = |name: &str| collector_dir.join(name).display().to_string();
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[clickhouse]\nurl = \"{}\"\ndatabase = \"fleet\"\n\
             ca_file = \"{}\"\n\
             [mqtt]\nurl = \"mqtts://127.0.0.1:{}\"\nclient_id = \"asked-for\"\n\
             ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             [ingest]\nbatch_max_age_ms = 200\nmax_age_days = 3650\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            ch.https_url(),
            ch_pki.join("ca.crt").display(),
            broker.port,
            file("ca.crt"),
            file("collector.crt"),
            file("collector.key"),
        ),
    )
    .expect("config");
    // ClickHouse's certificate is checked: against another CA (the fleet's), nothing is
    // written; without a CA, the configuration is refused, naming the field.
    let text = std::fs::read_to_string(&cfg).expect("config");
    let other = dir.path().join("other-ca.toml");
    std::fs::write(
        &other,
        text.replace(
            &ch_pki.join("ca.crt").display().to_string(),
            &collector_dir.join("ca.crt").display().to_string(),
        ),
    )
    .expect("config");
    let o = collector(&["migrate"], &other);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("invalid peer certificate: UnknownIssuer"),
        "migrated through an untrusted certificate: {err}"
    );
    let no_ca = dir.path().join("no-ca.toml");
    std::fs::write(
        &no_ca,
        text.replacen(
            &format!("ca_file = \"{}\"\n", ch_pki.join("ca.crt").display()),
            "",
            1,
        ),
    )
    .expect("config");
    let o = collector(&["migrate"], &no_ca);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() == Some(78) && err.contains("clickhouse.ca_file"),
        "{err}"
    );
    let inventory = city.join("inventory/sensors.csv");
    assert_success(&collector(
        &["import", "sensors", inventory.to_str().expect("utf-8")],
        &cfg,
    ));
    let run = Collector::start(&cfg, metrics_port);
    run.wait_subscribed(Duration::from_secs(20));
    assert!(
        broker.log().contains("as collector-c1") && !broker.log().contains("as asked-for"),
        "{}",
        broker.log()
    );

    let sensors = inventory_sensors(&inventory);
    for (sensor, site) in &sensors {
        let bundle = dir.path().join("sensors").join(sensor);
        let tls: Vec<String> = [
            ("--cafile", "ca.crt"),
            ("--cert", "sensor.crt"),
            ("--key", "sensor.key"),
        ]
        .into_iter()
        .flat_map(|(flag, f)| [flag.to_owned(), bundle.join(f).display().to_string()])
        .collect();
        publish_with(
            &broker,
            &tls,
            &format!("footfall/v1/{site}/{sensor}/sightings"),
            Source::Lines(&city.join("envelopes").join(format!("{sensor}.jsonl"))),
        );
    }
    let want = truth.sightings;
    let got = wait_for(Duration::from_secs(60), || {
        let n = count(&ch, "SELECT count() FROM fleet.sightings FINAL");
        (n == want).then_some(n)
    });
    assert_eq!(
        got,
        Some(want),
        "sightings {} of {want}",
        ch.query("SELECT count() FROM fleet.sightings FINAL")
    );
    assert!(run.stop().success(), "a clean drain");
}

/// Runs `requeue` with `args`: (exit code, stdout).
fn requeue(cfg: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["requeue"];
    all.extend_from_slice(args);
    let out = collector(&all, cfg);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A tiny city published through a collector whose inventory lacks one sensor (of a site
/// with only that one): installed, not yet entered, so its messages are held.
struct NotEntered {
    ch: ClickHouse,
    broker: Mosquitto,
    _dir: tempfile::TempDir,
    city: std::path::PathBuf,
    truth: simulator::Summary,
    cfg: std::path::PathBuf,
    inventory: std::path::PathBuf,
    sensors: Vec<(String, String)>,
    late_sensor: String,
    late_site: String,
    late_envelopes: u64,
    late_sightings: u64,
    run: Collector,
}

impl NotEntered {
    fn start(db: &'static str) -> NotEntered {
        let ch = ClickHouse::start();
        let broker = Mosquitto::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let (city, truth) = tiny_city(dir.path(), 5);
        let metrics_port = free_port();
        let cfg = dir.path().join("collector.toml");
        std::fs::write(
            &cfg,
            format!(
                "version = 1\n[clickhouse]\nurl = \"{}\"\ndatabase = \"{db}\"\n\
                 [mqtt]\nurl = \"{}\"\nclient_id = \"collector-{db}\"\n\
                 [ingest]\nbatch_max_age_ms = 200\nmax_age_days = 3650\n\
                 [visits]\nbucket_secs = 1\nlateness_secs = 0\nhorizon_hours = 1440\n\
                 [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
                ch.url(),
                broker.url()
            ),
        )
        .expect("config");
        let inventory = city.join("inventory/sensors.csv");
        let sensors = inventory_sensors(&inventory);
        let (late_sensor, late_site) = sensors
            .iter()
            .find(|(_, site)| sensors.iter().filter(|(_, s)| s == site).count() == 1)
            .expect("a site with one sensor")
            .clone();
        let text = std::fs::read_to_string(&inventory).expect("inventory");
        let partial = dir.path().join("partial.csv");
        std::fs::write(
            &partial,
            text.lines()
                .filter(|l| !l.starts_with(&format!("{late_sensor},")))
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
        )
        .expect("write");
        assert_success(&collector(
            &["import", "sensors", partial.to_str().expect("utf-8")],
            &cfg,
        ));
        let run = Collector::start(&cfg, metrics_port);
        run.wait_subscribed(Duration::from_secs(20));
        for (sensor, site) in &sensors {
            publish(
                &broker,
                &format!("footfall/v1/{site}/{sensor}/sightings"),
                Source::Lines(&city.join("envelopes").join(format!("{sensor}.jsonl"))),
            );
        }
        let late_file = city.join("envelopes").join(format!("{late_sensor}.jsonl"));
        let late_envelopes = std::fs::read_to_string(&late_file)
            .expect("envelopes")
            .lines()
            .count() as u64;
        let late_sightings = collector::offline::read_envelopes(&late_file)
            .expect("envelopes")
            .1
            .len() as u64;
        NotEntered {
            ch,
            broker,
            _dir: dir,
            city,
            truth,
            cfg,
            inventory,
            sensors,
            late_sensor,
            late_site,
            late_envelopes,
            late_sightings,
            run,
        }
    }
}

/// Held messages of database `db` whose current state is `state` and reason `reason`.
fn held_in(ch: &ClickHouse, db: &str, state: u8, reason: &str) -> u64 {
    count(
        ch,
        &format!(
            "SELECT count() FROM (SELECT argMax(state, version) AS st, argMax(reason, version) \
             AS why FROM {db}.quarantine GROUP BY topic, payload_hash) WHERE st = {state} \
             AND why = '{reason}'"
        ),
    )
}

#[test]
fn held_messages_are_replayed_after_the_fix_and_make_their_visits() {
    let NotEntered {
        ch,
        broker,
        _dir,
        city,
        truth,
        cfg,
        inventory,
        sensors,
        late_sensor,
        late_site,
        late_envelopes,
        late_sightings,
        run,
    } = NotEntered::start("held");
    // And one envelope from a sensor whose clock runs a century ahead.
    let (sensor, site) = sensors
        .iter()
        .find(|(s, _)| *s != late_sensor)
        .expect("another sensor");
    let ahead = std::fs::read_to_string(city.join("envelopes").join(format!("{sensor}.jsonl")))
        .expect("envelopes")
        .lines()
        .next()
        .expect("an envelope")
        .replace("\"20", "\"21");
    publish(
        &broker,
        &format!("footfall/v1/{site}/{sensor}/sightings"),
        Source::Message(&ahead),
    );
    let held = |state, reason| held_in(&ch, "held", state, reason);
    let sightings = || count(&ch, "SELECT count() FROM held.sightings FINAL");
    wait_for(Duration::from_secs(60), || {
        (sightings() == truth.sightings - late_sightings
            && held(0, "unknown_sensor") == late_envelopes
            && held(0, "clock_skew") == 1)
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "sightings {} of {}, held: {}",
            sightings(),
            truth.sightings - late_sightings,
            ch.query("SELECT reason, state, count() FROM held.quarantine GROUP BY reason, state")
        )
    });
    // Held whole: the payload as it came, not the rejected table's 4 KiB.
    assert_eq!(
        count(
            &ch,
            "SELECT max(length(payload)) FROM held.quarantine WHERE reason = 'unknown_sensor'"
        ),
        count(
            &ch,
            "SELECT max(payload_bytes) FROM held.rejected WHERE reason = 'unknown_sensor'"
        ),
    );
    assert!(run.metrics().contains(&format!(
        "\nfootfall_quarantined_total {}\n",
        late_envelopes + 1
    )));

    // Before the fix: replayed, and refused again with the reason.
    let (code, out) = requeue(&cfg, &["--reason", "unknown_sensor"]);
    assert_eq!(code, 65, "{out}");
    assert!(
        out.contains(&format!(
            "{late_envelopes} refused again and held: unknown_sensor"
        )),
        "{out}"
    );
    assert_eq!(held(0, "unknown_sensor"), late_envelopes);
    // The fix (the sensor entered), then the requeue: every sighting lands, once.
    assert_success(&collector(
        &["import", "sensors", inventory.to_str().expect("utf-8")],
        &cfg,
    ));
    let (code, out) = requeue(&cfg, &["--reason", "unknown_sensor"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{late_envelopes} replayed")), "{out}");
    assert_eq!(sightings(), truth.sightings);
    assert_eq!(held(2, "unknown_sensor"), late_envelopes);
    // Nothing of that sensor is held any more; the clock-skewed envelope still is.
    assert_eq!(
        requeue(&cfg, &["--sensor", &late_sensor]).1.lines().next(),
        Some("0 held message(s) requested")
    );
    assert_eq!(held(0, "clock_skew"), 1);
    let status = run.stop();
    assert!(status.success(), "{status:?}");
    // The replayed sightings went through the stream stage: every device the late sensor
    // saw has its stays at that site.
    let devices = |table: &str| {
        count(
            &ch,
            &format!("SELECT uniqExact(device) FROM held.{table} WHERE site = '{late_site}'"),
        )
    };
    assert!(devices("sightings") > 0);
    assert_eq!(devices("visits FINAL"), devices("sightings"));
    // No collector running: the request waits, and says so.
    let (code, out) = requeue(&cfg, &["--reason", "clock_skew", "--wait-secs", "2"]);
    assert_eq!(code, 75, "{out}");
    assert!(out.contains("no collector replayed them"), "{out}");
    // A reason nothing is held for is refused with the list.
    let (code, out) = requeue(&cfg, &["--reason", "malformed_json"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(
            "held reasons: unsupported_version, unknown_sensor, site_mismatch, clock_skew"
        ),
        "{out}"
    );
}

/// The opt-out purge: a device's rows leave every table that holds keys, its key is
/// overwritten in the held messages, and their replay refuses its sightings alone.
#[test]
fn an_opt_out_purge_removes_a_device_everywhere_and_held_messages_keep_the_rest() {
    let NotEntered {
        ch,
        _dir,
        city,
        truth,
        cfg,
        inventory,
        sensors,
        late_sensor,
        late_envelopes,
        late_sightings,
        run,
        ..
    } = NotEntered::start("purge");
    let sightings = || count(&ch, "SELECT count() FROM purge.sightings FINAL");
    wait_for(Duration::from_secs(60), || {
        (sightings() == truth.sightings - late_sightings
            && held_in(&ch, "purge", 0, "unknown_sensor") == late_envelopes)
            .then_some(())
    })
    .expect("the entered sensors' sightings land, the other's are held");
    // Every sighting's device, by sensor.
    let devices: Vec<(String, String)> = sensors
        .iter()
        .flat_map(|(sensor, _)| {
            let text =
                std::fs::read_to_string(city.join("envelopes").join(format!("{sensor}.jsonl")))
                    .expect("envelopes");
            text.lines()
                .flat_map(|l| {
                    serde_json::from_str::<wire::Envelope>(l)
                        .expect("an envelope")
                        .sightings
                })
                .map(|s| (sensor.clone(), s.device.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    // A device the held sensor saw that other sensors saw too, with visits and bridges.
    let rows = |table: &str, key: &str| {
        count(
            &ch,
            &format!(
                "SELECT count() FROM purge.{table} WHERE device = reinterpretAsUInt64(reverse(unhex('{key}')))"
            ),
        )
    };
    let key = devices
        .iter()
        .filter(|(s, _)| *s == late_sensor)
        .map(|(_, d)| d.clone())
        .find(|d| rows("sightings", d) > 0 && rows("visits", d) > 0 && rows("bridges", d) > 0)
        .expect("a device of the held sensor seen elsewhere");
    let everywhere = devices.iter().filter(|(_, d)| *d == key).count() as u64;
    let before = sightings();
    let in_table = rows("sightings FINAL", &key);
    let list = _dir.path().join("opt-out.txt");
    std::fs::write(&list, format!("# epoch 455\n{key}\n")).expect("write");
    let o = collector(&["purge", "--keys", list.to_str().expect("utf-8")], &cfg);
    assert_success(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("1 key(s) purged"), "{out}");
    for table in ["sightings", "visits", "bridges"] {
        assert_eq!(rows(table, &key), 0, "{table} still holds the key");
    }
    assert_eq!(
        sightings(),
        before - in_table,
        "only the device's sightings left"
    );
    let held_with = |text: &str| {
        count(
            &ch,
            &format!("SELECT count() FROM purge.quarantine WHERE position(payload, '{text}') > 0"),
        )
    };
    assert_eq!(held_with(&key), 0);
    assert!(held_with("\"device\":\"0000000000000000\"") > 0);
    assert_eq!(
        count(
            &ch,
            &format!("SELECT count() FROM purge.rejected WHERE position(payload, '{key}') > 0")
        ),
        0
    );
    // The sensor entered and its messages replayed: all but the purged device's sightings.
    assert_success(&collector(
        &["import", "sensors", inventory.to_str().expect("utf-8")],
        &cfg,
    ));
    let (code, out) = requeue(&cfg, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(sightings(), truth.sightings - everywhere);
    assert_eq!(rows("sightings", &key), 0);
    assert!(
        count(
            &ch,
            "SELECT count() FROM purge.rejected WHERE detail LIKE '%removed by an opt-out purge%'"
        ) > 0
    );
    assert!(run.stop().success());
}

/// A broker slow to answer a CONNECT (here SIGSTOPped: the kernel accepts the connection,
/// nothing answers it, as a Mosquitto walking millions of in-flight messages before its
/// CONNACK) is waited for past the keepalive, for `mqtt.connect_timeout_secs`: the collector
/// gets in with its first CONNECT once the broker answers. Given up at the keepalive, each
/// new CONNECT would start the broker's walk anew.
#[test]
fn a_broker_slow_to_answer_the_connect_is_waited_for_past_the_keepalive() {
    let ch = ClickHouse::start();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics_port = free_port();
    let keepalive = 5;
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[clickhouse]\nurl = \"{}\"\ndatabase = \"slow\"\n\
             [mqtt]\nurl = \"{}\"\nclient_id = \"collector-slow\"\nkeepalive_secs = {keepalive}\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            ch.url(),
            broker.url()
        ),
    )
    .expect("config");
    let pid = broker.pid().expect("running");
    testkit::signal(pid, "-STOP");
    let run = Collector::start(&cfg, metrics_port);
    wait_for(Duration::from_secs(60), || {
        (connections_to(broker.port) > 0).then_some(())
    })
    .expect("the collector connects to the stopped broker's port");
    // Two keepalives with the CONNECT unanswered.
    std::thread::sleep(Duration::from_secs(2 * keepalive));
    testkit::signal(pid, "-CONT");
    run.wait_subscribed(Duration::from_secs(30));
    let metrics = run.metrics();
    assert_eq!(
        testkit::metric::<u64>(&metrics, "footfall_mqtt_errors_total"),
        Some(0),
        "the collector gave up on a CONNECT the broker answered late:\n{metrics}"
    );
    assert_eq!(
        broker.log().matches("New client connected").count(),
        1,
        "one CONNECT, answered:\n{}",
        broker.log()
    );
    assert!(run.stop().success());
}

/// Established TCP connections (IPv4) to `port` on this machine, from /proc/net/tcp.
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let remote = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields.get(2).is_some_and(|r| r.ends_with(&remote)) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// A TCP relay to the broker that can stop passing what the broker sends on the connections
/// open so far (`mute_open_connections`: read and dropped, as a broker that stops sending to
/// a session while the connection stays up, or a link gone dead), or pass it late
/// (`lag_open_connections`, by `lag`: as bytes queued ahead of it, unread). The connections opened
/// after pass everything at once.
struct Relay {
    port: u16,
    opened: Arc<AtomicUsize>,
    /// Connections numbered below this one pass nothing from the broker.
    mute_below: Arc<AtomicUsize>,
    /// Connections numbered below this one pass the broker's bytes `lag` late.
    lag_below: Arc<AtomicUsize>,
}

impl Relay {
    fn to(broker_port: u16, lag: Duration) -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let relay = Relay {
            port: listener.local_addr().expect("addr").port(),
            opened: Arc::default(),
            mute_below: Arc::default(),
            lag_below: Arc::default(),
        };
        let (count, mute, lag_below) = (
            relay.opened.clone(),
            relay.mute_below.clone(),
            relay.lag_below.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let id = count.fetch_add(1, Ordering::SeqCst);
                let broker =
                    std::net::TcpStream::connect(("127.0.0.1", broker_port)).expect("the broker");
                let (mut c_in, mut b_out) = (
                    client.try_clone().expect("clone"),
                    broker.try_clone().expect("clone"),
                );
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut b_out);
                });
                // The broker's bytes, each with when it is due to the client.
                let (due_tx, due_rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
                let (mut b_in, lags) = (broker, lag_below.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n @ 1..) = b_in.read(&mut buf) {
                        let late = if id < lags.load(Ordering::SeqCst) {
                            lag
                        } else {
                            Duration::ZERO
                        };
                        if due_tx
                            .send((Instant::now() + late, buf[..n].to_vec()))
                            .is_err()
                        {
                            return;
                        }
                    }
                });
                let (mut c_out, mute) = (client, mute.clone());
                std::thread::spawn(move || {
                    for (due, bytes) in due_rx {
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        if id >= mute.load(Ordering::SeqCst) && c_out.write_all(&bytes).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        relay
    }

    /// The broker's bytes stop reaching the connections open now.
    fn mute_open_connections(&self) {
        self.mute_below
            .store(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// The broker's bytes reach the connections open now `lag` late.
    fn lag_open_connections(&self) {
        self.lag_below
            .store(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// ClickHouse, a broker, a [`Relay`] to it (passing the broker's bytes `lag` late when
/// asked) and a collector subscribed through the relay: database `name`, client id
/// `collector-<name>`, `mqtt` added to its `[mqtt]` section.
struct Relayed {
    ch: ClickHouse,
    broker: Mosquitto,
    relay: Relay,
    run: Collector,
    _dir: tempfile::TempDir,
}

impl Relayed {
    fn start(name: &str, lag: Duration, mqtt: &str) -> Relayed {
        let ch = ClickHouse::start();
        let broker = Mosquitto::start();
        let relay = Relay::to(broker.port, lag);
        let (run, dir) = Collector::subscribed(&ch, name, relay.port, mqtt);
        Relayed {
            ch,
            broker,
            relay,
            run,
            _dir: dir,
        }
    }
}

/// A sensor that sends each line written to its stdin as a status message (QoS 1), through
/// `mosquitto_pub -l`; killed with the test.
fn status_sensor(broker: &Mosquitto) -> (KillOnDrop, std::process::ChildStdin) {
    let mut sensor = KillOnDrop(
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1"])
            .args(["-t", "footfall/v1/store-1/s-1/status", "-l"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("mosquitto_pub"),
    );
    let lines = sensor.0.stdin.take().expect("stdin");
    (sensor, lines)
}

/// A broker that stops sending to the collector's session but keeps the connection (as
/// Mosquitto 2.0.11 did at city scale, its count of messages in flight stuck): with the
/// keepalive far off, the collector reconnects after `mqtt.silence_reconnect_secs` of
/// silence, and the message the broker held arrives.
#[test]
fn a_broker_silent_on_a_live_connection_is_reconnected_to() {
    let Relayed {
        ch,
        broker,
        relay,
        run,
        _dir,
    } = Relayed::start(
        "silent",
        Duration::ZERO,
        "keepalive_secs = 120\nsilence_reconnect_secs = 5",
    );
    relay.mute_open_connections();
    let muted_at = Instant::now();
    publish(
        &broker,
        "footfall/v1/store-1/s-1/status",
        Source::Message("{\"not\": \"a status\"}"),
    );
    let metrics = wait_for(Duration::from_secs(30), || {
        let m = run.metrics();
        (testkit::metric::<u64>(&m, "footfall_mqtt_messages_total") == Some(1)).then_some(m)
    })
    .unwrap_or_else(|| panic!("the held message never came:\n{}", run.metrics()));
    // Well before the keepalive would have found anything wrong.
    assert!(muted_at.elapsed() < Duration::from_secs(60));
    assert!(
        testkit::metric::<u64>(&metrics, "footfall_mqtt_silence_reconnects_total")
            .is_some_and(|n| n >= 1),
        "{metrics}"
    );
    assert_eq!(
        testkit::metric::<u64>(&metrics, "footfall_mqtt_errors_total"),
        Some(0),
        "{metrics}"
    );
    // A message the collector cannot commit (ClickHouse stopped) is not acknowledged: the
    // broker rightly waits, and the collector does not reconnect over that silence.
    let pid = ch.pid().expect("running");
    testkit::signal(pid, "-STOP");
    publish(
        &broker,
        "footfall/v1/store-1/s-1/status",
        Source::Message("{\"still\": \"not a status\"}"),
    );
    let reconnects = |m: &str| testkit::metric::<u64>(m, "footfall_mqtt_silence_reconnects_total");
    let before = wait_for(Duration::from_secs(30), || {
        let m = run.metrics();
        (testkit::metric::<u64>(&m, "footfall_mqtt_messages_total") == Some(2))
            .then(|| reconnects(&m))
    })
    .expect("the second message");
    std::thread::sleep(Duration::from_secs(12));
    let held = run.metrics();
    testkit::signal(pid, "-CONT");
    assert_eq!(reconnects(&held), before, "{held}");
    assert!(run.stop().success());
}

/// The broker's answer to a keepalive ping can wait behind messages the collector has not
/// read yet (at city scale, tens of thousands held for a slow ClickHouse: three reconnections
/// in a run, each a takeover after which Mosquitto 2.0.11 dropped messages). Here a relay
/// passes everything the broker sends 1.2 keepalives late, while a sensor sends twice a
/// second: each ping is still unanswered at the next keepalive, yet the broker is heard all
/// along, and the collector keeps its connection. Then the relay passes nothing: the
/// connection is given up within 1.5 keepalives of the last thing heard, and the collector
/// gets in again.
#[test]
fn a_ping_answered_late_keeps_the_connection_and_a_dead_one_is_left() {
    let keepalive = Duration::from_secs(8);
    let Relayed {
        ch: _ch,
        broker,
        relay,
        run,
        _dir,
    } = Relayed::start(
        "late_ping",
        keepalive * 6 / 5,
        &format!("keepalive_secs = {}", keepalive.as_secs()),
    );
    let messages = |m: &str| testkit::metric::<u64>(m, "footfall_mqtt_messages_total");
    let errors = |m: &str| testkit::metric::<u64>(m, "footfall_mqtt_errors_total");
    let (_sensor, mut lines) = status_sensor(&broker);
    let mut sent = 0;
    // n messages, two a second.
    let mut send = |n: u64| {
        for _ in 0..n {
            writeln!(lines, "{{\"not\": \"a status\"}}").expect("to mosquitto_pub");
            std::thread::sleep(Duration::from_millis(500));
        }
        n
    };
    sent += send(4);
    relay.lag_open_connections();
    // Past two pings.
    sent += send(2 * 2 * keepalive.as_secs() + 4);
    let metrics = wait_for(Duration::from_secs(20), || {
        let m = run.metrics();
        (messages(&m) == Some(sent)).then_some(m)
    })
    .unwrap_or_else(|| panic!("{sent} sent:\n{}", run.metrics()));
    assert_eq!(errors(&metrics), Some(0), "{metrics}");
    assert_eq!(relay.opened.load(Ordering::SeqCst), 1, "one connection");
    // Nothing from the broker any more on this connection.
    relay.mute_open_connections();
    let muted_at = Instant::now();
    sent += send(1);
    let metrics = wait_for(Duration::from_secs(40), || {
        let m = run.metrics();
        (messages(&m) == Some(sent)).then_some(m)
    })
    .unwrap_or_else(|| {
        panic!(
            "the message on a dead connection never came:\n{}",
            run.metrics()
        )
    });
    let reconnected_after = muted_at.elapsed();
    assert_eq!(errors(&metrics), Some(1), "{metrics}");
    assert_eq!(relay.opened.load(Ordering::SeqCst), 2, "a new connection");
    assert!(
        reconnected_after <= keepalive * 3 / 2 + Duration::from_secs(3),
        "given up after {reconnected_after:?}"
    );
    assert!(run.stop().success());
}

/// A trickle of messages, each after a pause longer than the one that closes a batch (a few
/// sensors still sending): written in batches of a quarter of `ingest.batch_max_age_ms` or
/// more, not one insert a message, and each message still within about that age.
#[test]
fn a_trickle_of_messages_is_written_in_few_batches_each_within_its_age() {
    let ch = ClickHouse::start();
    let broker = Mosquitto::start();
    let (run, _dir) = Collector::subscribed(
        &ch,
        "trickle",
        broker.port,
        "[ingest]\nbatch_max_age_ms = 1000",
    );
    let (_sensor, mut lines) = status_sensor(&broker);
    // Kept with their reason, a row each in `rejected`: 60 messages 40 ms apart (each
    // different: a message taken already is not written again).
    let sent = 60;
    for n in 0..sent {
        writeln!(lines, "{{\"not\": \"a status\", \"n\": {n}}}").expect("to mosquitto_pub");
        std::thread::sleep(Duration::from_millis(40));
    }
    let last_sent = Instant::now();
    let written =
        |m: &str| testkit::metric::<u64>(m, "footfall_rows_written_total{table=\"rejected\"}");
    let metrics = wait_for(Duration::from_secs(20), || {
        let m = run.metrics();
        (written(&m) == Some(sent)).then_some(m)
    })
    .unwrap_or_else(|| panic!("{sent} sent:\n{}", run.metrics()));
    let took = last_sent.elapsed();
    let batches =
        testkit::metric::<u64>(&metrics, "footfall_batch_seconds_count").expect("batches");
    // 2.4 s of messages in batches of 0.25 s or more: at most 10, and a few more for the
    // scheduler's delays.
    assert!(batches <= 12, "{sent} messages in {batches} batches");
    assert!(
        took <= Duration::from_millis(2500),
        "the last message written after {took:?}"
    );
    drop(lines);
    assert!(run.stop().success());
}
