//! Faults: the collector SIGKILLed again and again during a sustained publish, and
//! ClickHouse stopped for a minute mid-run. Either way the final tables equal those of an
//! undisturbed collector that ran beside it (its own database, its own MQTT session).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use simulator::scenario::Scenario;
use testkit::{free_port, wait_for, ClickHouse, Mosquitto};

use crate::util::{assert_success, collector, COLLECTOR};

struct Setup {
    ch: ClickHouse,
    broker: Mosquitto,
    dir: tempfile::TempDir,
    /// (topic, envelope) in publishing order.
    messages: Vec<(String, String)>,
    sightings: u64,
}

fn setup() -> Setup {
    let ch = ClickHouse::start();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let city = dir.path().join("city");
    let s = Scenario::from_overlay(
        "preset = \"tiny\"\n[population]\npeople = 1500\n[output]\nmode = \"envelopes\"\n",
        "test",
    )
    .expect("scenario");
    let truth = simulator::generate(&s, 5, &city, 2, &mut |_| {}).expect("generate");
    let mut messages = Vec::new();
    for line in std::fs::read_to_string(city.join("inventory/sensors.csv"))
        .expect("inventory")
        .lines()
        .skip(1)
    {
        let f: Vec<&str> = line.split(',').collect();
        let topic = format!("footfall/v1/{}/{}/sightings", f[1], f[0]);
        for env in std::fs::read_to_string(city.join("envelopes").join(format!("{}.jsonl", f[0])))
            .expect("envelopes")
            .lines()
        {
            messages.push((topic.clone(), env.to_owned()));
        }
    }
    // Interleave the sensors as they would arrive.
    messages.sort_by_key(|(_, e)| {
        serde_json::from_str::<wire::Envelope>(e)
            .expect("envelope")
            .sent_at
    });
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
    /// its [mqtt] section.
    fn config_for(&self, name: &str, db: &str, mqtt: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "version = 1\n[clickhouse]\nurl = \"{}\"\ndatabase = \"{db}\"\n\
                 [mqtt]\nurl = \"{}\"\nclient_id = \"collector-{name}\"\nkeepalive_secs = 10\n{mqtt}\n\
                 [ingest]\nbatch_max_age_ms = 100\nmax_age_days = 3650\n\
                 [metrics]\nlisten = \"127.0.0.1:{}\"\n",
                self.ch.url(),
                self.broker.url(),
                free_port()
            ),
        )
        .expect("config");
        let inventory = self.dir.path().join("city/inventory/sensors.csv");
        assert_success(&collector(
            &["import", "sensors", inventory.to_str().expect("utf-8")],
            &path,
        ));
        path
    }

    fn config(&self, db: &str) -> PathBuf {
        self.config_for(db, db, "")
    }

    fn start(&self, config: &Path, db: &str) -> Child {
        let before = self
            .broker
            .log()
            .matches(&format!("SUBSCRIBE from collector-{db}"))
            .count();
        let child = Command::new(COLLECTOR)
            .args(["--log", "warn", "run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the collector");
        if before == 0 {
            wait_for(Duration::from_secs(20), || {
                self.broker
                    .log()
                    .contains(&format!("SUBSCRIBE from collector-{db}"))
                    .then_some(())
            })
            .expect("the collector subscribes");
        }
        child
    }

    /// Publishes every message with mosquitto_pub, in `chunks` pieces `pause` apart.
    fn publish(&self, chunks: usize, pause: Duration) -> std::thread::JoinHandle<()> {
        let port = self.broker.port;
        let dir = self.dir.path().to_path_buf();
        let messages = self.messages.clone();
        std::thread::spawn(move || {
            let per = messages.len().div_ceil(chunks);
            for (k, chunk) in messages.chunks(per).enumerate() {
                // One mosquitto_pub per topic in the chunk, its lines on stdin, in order.
                let mut topics: Vec<&str> = chunk.iter().map(|(t, _)| t.as_str()).collect();
                topics.sort_unstable();
                topics.dedup();
                for (i, topic) in topics.into_iter().enumerate() {
                    let lines: Vec<&str> = chunk
                        .iter()
                        .filter(|(t, _)| t == topic)
                        .map(|(_, e)| e.as_str())
                        .collect();
                    let file = dir.join(format!("chunk-{k}-{i}.jsonl"));
                    std::fs::write(&file, lines.join("\n") + "\n").expect("write");
                    let out = Command::new("mosquitto_pub")
                        .args([
                            "-h",
                            "127.0.0.1",
                            "-p",
                            &port.to_string(),
                            "-q",
                            "1",
                            "-t",
                            topic,
                            "-l",
                        ])
                        .stdin(std::fs::File::open(&file).expect("chunk"))
                        .output()
                        .expect("mosquitto_pub");
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                std::thread::sleep(pause);
            }
        })
    }

    /// The sightings table as the pipeline defines it (received_ms aside).
    fn table(&self, db: &str) -> String {
        self.ch.query(&format!(
            "SELECT sensor, seq, idx, device, class, fingerprint, first_ms, last_ms, frames, rssi_max, \
             rssi_mean, final, sent_ms FROM {db}.sightings FINAL ORDER BY sensor, seq, idx"
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
        assert!(
            done.is_some(),
            "{db}: {} of {want} sightings",
            self.ch
                .query(&format!("SELECT count() FROM {db}.sightings FINAL"))
                .trim()
        );
    }
}

fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn term(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_for(Duration::from_secs(30), || child.try_wait().ok().flatten())
        .expect("stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_collector_killed_again_and_again_ends_with_the_undisturbed_tables() {
    let s = setup();
    let (calm_cfg, hit_cfg) = (s.config("calm"), s.config("hit"));
    let mut calm = s.start(&calm_cfg, "calm");
    let mut hit = s.start(&hit_cfg, "hit");
    let publisher = s.publish(12, Duration::from_millis(400));
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(900));
        kill9(&mut hit);
        std::thread::sleep(Duration::from_millis(200));
        hit = s.start(&hit_cfg, "hit");
    }
    publisher.join().expect("publisher");
    s.wait_complete("calm", Duration::from_secs(60));
    s.wait_complete("hit", Duration::from_secs(60));
    assert_eq!(s.table("hit"), s.table("calm"));
    term(&mut hit);
    term(&mut calm);
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
    // the same keys collapse).
    s.publish(1, Duration::ZERO).join().expect("publisher");
    s.wait_complete("calm", Duration::from_secs(60));
    assert_eq!(s.table("outage"), s.table("calm"));
    term(&mut run);
    term(&mut calm);
}

#[test]
fn two_collectors_share_one_subscription_and_write_every_sighting_once() {
    let s = setup();
    let shared = "shared_group = \"collectors\"";
    let configs = [
        s.config_for("one", "fleet", shared),
        s.config_for("two", "fleet", shared),
    ];
    let mut runs: Vec<Child> = ["one", "two"]
        .iter()
        .zip(&configs)
        .map(|(n, c)| s.start(c, n))
        .collect();
    s.publish(8, Duration::from_millis(100))
        .join()
        .expect("publisher");
    s.wait_complete("fleet", Duration::from_secs(60));
    // The broker split the messages between the two members of the group.
    let log = s.broker.log();
    for n in ["one", "two"] {
        let received = log
            .matches(&format!("Sending PUBLISH to collector-{n}"))
            .count();
        assert!(received > 10, "collector-{n} received {received} messages");
    }
    let total: usize = ["one", "two"]
        .iter()
        .map(|n| {
            log.matches(&format!("Sending PUBLISH to collector-{n}"))
                .count()
        })
        .sum();
    assert_eq!(total, s.messages.len(), "each message went to one member");
    for r in &mut runs {
        term(r);
    }
}
