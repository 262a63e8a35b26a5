use collector::migrate::{plan, statements, MIGRATIONS};
use testkit::{ClickHouse, ZooKeeper};

use crate::util::{assert_success, collector, config};

const TABLES: [&str; 19] = [
    "ad_plays",
    "batches",
    "bridges",
    "campaigns",
    "links",
    "occupancy",
    "quarantine",
    "receipts",
    "rejected",
    "sensor_latest",
    "sensor_status",
    "sensors",
    "sightings",
    "site_calibrations",
    "sites",
    "stream_checkpoints",
    "traffic",
    "visit_epochs",
    "visits",
];

#[test]
fn migrations_apply_once_and_history_is_append_only() {
    let ch = ClickHouse::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &ch, "footfall_test");
    let first = collector(&["migrate"], &cfg);
    assert_success(&first);
    assert!(
        String::from_utf8_lossy(&first.stdout).contains(
            "14 migration(s) applied: 0001_schema.sql, 0002_stream_checkpoints.sql, \
                 0003_occupancy.sql, 0004_site_calibrations.sql, 0005_links.sql, \
                 0006_site_time_zones.sql, 0007_traffic.sql, 0008_sensor_latest.sql, \
                 0009_bridges.sql, 0010_quarantine.sql, 0011_calibrated_fixture_hours.sql, \
                 0012_settled.sql, 0013_visit_epochs.sql, 0014_batches.sql"
        ),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let again = collector(&["migrate"], &cfg);
    assert_success(&again);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 migration(s) applied"));
    let tables = ch.query("SHOW TABLES FROM footfall_test");
    for t in TABLES {
        assert!(tables.lines().any(|l| l == t), "{t} missing: {tables}");
    }
    assert_eq!(
        ch.query("SELECT count() FROM footfall_test.schema_migrations FINAL")
            .trim(),
        "14"
    );
    assert_eq!(
        ch.query(
            "SELECT table, name, type FROM system.columns WHERE database = 'footfall_test' \
             AND name IN ('link', 'unlinked_devices', 'tz', 'capture_rate', 'fixture_hours', \
             'settled_ms') AND table != 'traffic' ORDER BY table, name"
        ),
        "occupancy\tunlinked_devices\tFloat64\nsightings\tlink\tUInt64\n\
         site_calibrations\tfixture_hours\tUInt8\n\
         sites\tcapture_rate\tFloat32\nsites\ttz\tString\n\
         stream_checkpoints\tsettled_ms\tInt64\n"
    );

    // A database from before migration 8, with heartbeats in it.
    ch.query("DROP TABLE footfall_test.sensor_latest_mv");
    ch.query("TRUNCATE TABLE footfall_test.sensor_latest");
    let status = |at_ms: i64, batches: u32| {
        ch.query(&format!(
            "INSERT INTO footfall_test.sensor_status (sensor, day, at_ms, site, spool_batches) \
             VALUES ('s-1', '2026-03-02', {at_ms}, 'a', {batches})"
        ))
    };
    status(2, 20);
    status(1, 10);
    // And from before migration 13, with visits in it: epoch 3 retained from 20 ms on (an
    // earlier version of it retracted), and epoch 4 only retracted.
    ch.query("DROP TABLE footfall_test.visit_epochs_mv");
    ch.query("TRUNCATE TABLE footfall_test.visit_epochs");
    let visit = |epoch: u32, day: &str, first_ms: i64, retracted: u8| {
        ch.query(&format!(
            "INSERT INTO footfall_test.visits (site, day, device, epoch, first_ms, retracted) \
             VALUES ('a', '{day}', 7, {epoch}, {first_ms}, {retracted})"
        ))
    };
    visit(3, "2026-03-02", 20, 0);
    visit(3, "2026-03-02", 10, 1);
    visit(4, "2026-03-03", 30, 1);
    // And from before migration 14, with sightings in it: batch 7 received an hour ago (two
    // sightings, opened 40 days before it was sent), batch 2 three days ago.
    ch.query("DROP TABLE footfall_test.batches");
    let sighting = |seq: u32, idx: u32, received_ago_secs: u32| {
        ch.query(&format!(
            "INSERT INTO footfall_test.sightings (site, day, sensor, seq, idx, sent_ms, \
             received_ms) VALUES ('a', '2026-03-02', 's-1', {seq}, {idx}, 1776000000000, \
             toInt64(toUInt64(now()) - {received_ago_secs}) * 1000)"
        ))
    };
    sighting(7, 0, 3600);
    sighting(7, 1, 3600);
    sighting(2, 0, 3 * 86400);
    let batches = || {
        ch.query(
            "SELECT sensor, seq, toString(day), count() FROM footfall_test.batches FINAL \
             GROUP BY sensor, seq, day ORDER BY seq",
        )
    };
    // Each epoch's days, and the first start on its first day.
    let epochs = || {
        ch.query(
            "SELECT epoch, min(day), max(day), argMin(first, day) FROM (SELECT epoch, day, \
             minMerge(first_ms) AS first FROM footfall_test.visit_epochs GROUP BY epoch, day) \
             GROUP BY epoch ORDER BY epoch",
        )
    };
    let latest = || {
        ch.query(
            "SELECT sensor, max(at_ms), argMax(spool_batches, at_ms) \
             FROM footfall_test.sensor_latest GROUP BY sensor",
        )
    };

    // Every statement can be applied again (a migration cut short before its ledger row),
    // the columns an ALTER adds included: ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS.
    ch.query("DROP TABLE footfall_test.schema_migrations");
    let replayed = collector(&["migrate"], &cfg);
    assert_success(&replayed);
    assert!(String::from_utf8_lossy(&replayed.stdout).contains("14 migration(s) applied"));
    // Migration 8 copied the sensor's heartbeats, and its view keeps the latest from then on.
    assert_eq!(latest(), "s-1\t2\t20\n");
    status(3, 30);
    assert_eq!(latest(), "s-1\t3\t30\n");
    // Migration 13 copied the retained visits' epoch, day and start, and its view adds
    // those written from then on.
    assert_eq!(epochs(), "3\t2026-03-02\t2026-03-02\t20\n");
    visit(5, "2026-03-04", 50, 0);
    visit(5, "2026-03-04", 40, 0);
    visit(5, "2026-03-06", 60, 0);
    visit(6, "2026-03-05", 70, 1);
    assert_eq!(
        epochs(),
        "3\t2026-03-02\t2026-03-02\t20\n5\t2026-03-04\t2026-03-06\t40\n"
    );
    // Migration 14 copied the batches received in the last two days, one row a batch, on
    // the day they were sent (2026-04-12 UTC, not the sightings' day).
    assert_eq!(batches(), "s-1\t7\t2026-04-12\t1\n");

    // A database whose ledger says migration 1 had other text is refused, naming it.
    ch.query("CREATE DATABASE tampered");
    ch.query(
        "CREATE TABLE tampered.schema_migrations (version UInt32, name String, checksum String, \
         applied_ms Int64) ENGINE = ReplacingMergeTree ORDER BY version",
    );
    ch.query("INSERT INTO tampered.schema_migrations VALUES (1, '0001_schema.sql', 'abc', 0)");
    let refused = collector(&["migrate"], &config(dir.path(), &ch, "tampered"));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("0001_schema.sql was changed after it was applied"),
        "{err}"
    );
}

#[test]
fn the_schema_also_runs_on_a_current_clickhouse() {
    // chdb-core embeds ClickHouse 26.x; run every migration statement there, then check
    // the tables and a de-duplicating read.
    let mut setup: Vec<String> = MIGRATIONS
        .iter()
        .flat_map(|(_, _, sql)| statements(sql))
        .collect();
    setup.push(
        "INSERT INTO sightings (site, day, sensor, seq, idx, device) VALUES \
         ('a', '2026-03-02', 's', 1, 0, 7), ('a', '2026-03-02', 's', 1, 0, 7)"
            .to_owned(),
    );
    let lines = testkit::chdb_queries(
        &setup,
        &[
            "SHOW TABLES".to_owned(),
            "SELECT count() FROM sightings FINAL".to_owned(),
        ],
    );
    for t in TABLES {
        assert!(
            lines[0].split(';').any(|l| l == t),
            "{t} missing: {}",
            lines[0]
        );
    }
    assert_eq!(lines[1], "1", "a redelivered sighting is read once");
}

#[test]
fn the_cluster_schema_also_runs_on_a_current_clickhouse() {
    // What a server of a cluster runs of the migrations on ClickHouse 26.x. A distributed
    // DDL statement runs on each server without its ON CLUSTER, so here without it, as one
    // replica of shard 2, with a real ZooKeeper (a replicated table's creation writes its
    // nodes there). chdb runs no replication: its replicated tables stay read-only. So this
    // runs what a cluster adds to one server's schema (the replicated tables, the
    // Distributed ones, the views between the shards' tables), and checks that its ALTERs
    // are one server's, which the test above runs on 26.x. Replication, the DDL queue and
    // the backfills (INSERT ... SELECT through the Distributed tables, which read the
    // other servers) are not run on 26.x here.
    let zk = ZooKeeper::start();
    let plan_for = |cluster: Option<&str>| {
        plan(
            &warehouse::ClickHouseConfig::from_raw(warehouse::RawClickHouse {
                url: "http://127.0.0.1:8123".into(),
                database: "footfall".into(),
                compression: "none".into(),
                cluster: cluster.map(str::to_owned),
                ..Default::default()
            })
            .expect("a configuration"),
        )
    };
    let (cluster, one) = (plan_for(Some("fleet")), plan_for(None).migrations.concat());
    let all: Vec<String> = std::iter::once(cluster.database)
        .chain(cluster.ledger)
        .chain(cluster.migrations.concat())
        .collect();
    assert!(
        all.iter()
            .all(|s| s.starts_with("INSERT") || s.contains(" ON CLUSTER fleet")),
        "every DDL statement runs on the whole cluster"
    );
    let (alters, setup): (Vec<String>, Vec<String>) = all
        .iter()
        .filter(|s| !s.starts_with("INSERT"))
        .map(|s| s.replace(" ON CLUSTER fleet", ""))
        .partition(|s| s.starts_with("ALTER"));
    assert!(!alters.is_empty());
    for alter in &alters {
        let (table, op) = alter
            .strip_prefix("ALTER TABLE footfall.")
            .and_then(|rest| rest.split_once("_local "))
            .unwrap_or_else(|| panic!("an ALTER of a shard's table: {alter}"));
        let single = format!("ALTER TABLE {table} {op}");
        assert!(one.contains(&single), "{alter}: not one server's");
    }
    let config = format!(
        "<zookeeper><node><host>127.0.0.1</host><port>{}</port></node></zookeeper>\n\
         <macros><shard>2</shard><replica>r1</replica></macros>\n\
         <remote_servers><fleet><shard><replica><host>127.0.0.1</host><port>9000</port>\
         </replica></shard></fleet></remote_servers>",
        zk.port
    );
    let lines = testkit::chdb_queries_configured(
        &config,
        &setup,
        &[
            "SELECT name, engine FROM system.tables WHERE database = 'footfall'".to_owned(),
            "SELECT table, zookeeper_path, replica_name FROM system.replicas \
             WHERE database = 'footfall'"
                .to_owned(),
            "SELECT engine_full FROM system.tables WHERE database = 'footfall' \
             AND name = 'visits'"
                .to_owned(),
        ],
    );
    let tables: Vec<&str> = lines[0].split(';').collect();
    let replicas: Vec<&str> = lines[1].split(';').collect();
    for t in TABLES.iter().chain(&["schema_migrations"]) {
        assert!(
            tables.contains(&format!("{t}\tDistributed").as_str()),
            "{t}: {tables:?}"
        );
        let local = format!("{t}_local\tReplicated");
        assert!(
            tables
                .iter()
                .any(|l| l.starts_with(&local) && l.ends_with("MergeTree")),
            "{t}_local: {tables:?}"
        );
        let replica = format!("{t}_local\t/clickhouse/tables/2/footfall/{t}\tr1");
        assert!(
            replicas.contains(&replica.as_str()),
            "{replica}: {replicas:?}"
        );
    }
    assert!(
        lines[2].contains("visits_local") && lines[2].contains("cityHash64(site)"),
        "visits sharded by site: {}",
        lines[2]
    );
}

/// Retention drops a table's months once their last day is past `retention.<table>_days`,
/// and keeps the rest; a table kept for ever (0) keeps everything.
#[test]
fn retention_drops_the_months_past_it_and_keeps_the_rest() {
    let ch = ClickHouse::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &ch, "kept");
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        format!(
            "{text}[retention]\nsightings_days = 30\nrejected_days = 30\ntraffic_days = 0\n\
             visits_days = 30\n"
        ),
    )
    .expect("config");
    assert_success(&collector(&["migrate"], &cfg));
    let today = ch.query("SELECT today()").trim().to_owned();
    for day in ["2020-01-15", "2020-02-29", today.as_str()] {
        ch.query(&format!(
            "INSERT INTO kept.sightings (site, day, sensor, seq) VALUES ('s', '{day}', 'x', 1)"
        ));
        // The batches of the sightings (migration 14) go with them.
        ch.query(&format!(
            "INSERT INTO kept.batches (site, day, sensor, seq) VALUES ('s', '{day}', 'x', 1)"
        ));
        ch.query(&format!(
            "INSERT INTO kept.rejected (day, reason, topic) VALUES ('{day}', 'bad_topic', 't')"
        ));
        ch.query(&format!(
            "INSERT INTO kept.traffic (site, day, hour_ms) VALUES ('s', '{day}', 1)"
        ));
        // The days each epoch has visits on (migration 13) go with the visits.
        ch.query(&format!(
            "INSERT INTO kept.visits (site, day, device) VALUES ('s', '{day}', 1)"
        ));
    }
    let o = collector(&["retention"], &cfg);
    assert_success(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("sightings: dropped 202001"), "{out}");
    assert!(out.contains("10 month(s) dropped"), "{out}");
    for table in ["sightings", "batches", "rejected", "visits", "visit_epochs"] {
        assert_eq!(
            ch.query(&format!("SELECT toString(day) FROM kept.{table}"))
                .trim(),
            today,
            "{table} keeps this month only"
        );
    }
    assert_eq!(ch.query("SELECT count() FROM kept.traffic").trim(), "3");
    // Applied again: nothing more to drop.
    let again = collector(&["retention"], &cfg);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 month(s) dropped"));
}

/// A settled month of a table the report reads (its last day more than `max_age_days` ago)
/// is merged into one part, so it holds one row per key and is read without FINAL; the
/// month sightings can still reach is left to ClickHouse's own merges.
#[test]
fn settled_months_of_the_reported_tables_are_compacted_once() {
    let ch = ClickHouse::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &ch, "compacted");
    assert_success(&collector(&["migrate"], &cfg));
    // A month that ended at least 90 days ago (within the visits' 400 days), and this one.
    let days = ch.query("SELECT today() - 120, toYYYYMM(today() - 120), today()");
    let [old, month, today]: [&str; 3] = days
        .trim()
        .split('\t')
        .collect::<Vec<_>>()
        .try_into()
        .expect("three values");
    // Two versions of one visit, in two inserts (two parts), in the old month and in this one.
    for day in [old, today] {
        for version in [1, 2] {
            ch.query(&format!(
                "INSERT INTO compacted.visits (site, day, device, visit_id, last_ms, version) \
                 VALUES ('s', '{day}', 7, 1, {version}, {version})"
            ));
        }
    }
    let rows = |cond: &str| {
        ch.query(&format!(
            "SELECT count(), max(last_ms) FROM compacted.visits WHERE {cond}"
        ))
        .trim()
        .to_owned()
    };
    let (before, after) = (format!("day <= '{old}'"), format!("day > '{old}'"));
    assert_eq!(rows(&before), "2\t2");
    let o = collector(&["retention"], &cfg);
    assert_success(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("visits: compacted {month}")), "{out}");
    assert!(out.contains("1 partition(s) compacted"), "{out}");
    // Read plainly, the old month holds the latest version alone; this month is as it was.
    assert_eq!(rows(&before), "1\t2");
    assert_eq!(rows(&after), "2\t2");
    let again = collector(&["retention"], &cfg);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 partition(s) compacted"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

/// A settled month whose parts a merge holds (here another `OPTIMIZE`, as a background
/// merge would): ClickHouse answers the collector's `OPTIMIZE` at once having done nothing,
/// so `retention` waits for that merge and says the month is compacted only once it is one
/// part, as the report then reads it.
#[test]
fn compaction_waits_for_a_merge_that_holds_the_months_parts() {
    let ch = ClickHouse::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &ch, "merging");
    assert_success(&collector(&["migrate"], &cfg));
    let old = ch.query("SELECT today() - 120").trim().to_owned();
    // 6 M visits in parts of at most a million (an insert's block): their merge takes a
    // second or more.
    for part in 0..2 {
        ch.query(&format!(
            "INSERT INTO merging.visits (site, day, device, visit_id, first_ms, last_ms, version) \
             SELECT concat('s', toString(number % 50)), toDate('{old}'), number * 2 + {part}, \
             number, number, number + 60000, 1 FROM system.numbers LIMIT 3000000"
        ));
    }
    let parts = || {
        ch.query(&format!(
            "SELECT count() FROM system.parts WHERE database = 'merging' AND table = 'visits' \
             AND active AND partition = toString(toYYYYMM(toDate('{old}')))"
        ))
        .trim()
        .parse::<u32>()
        .expect("a count")
    };
    assert!(parts() > 1);
    let other = std::thread::scope(|s| {
        let other = s.spawn(|| ch.query("OPTIMIZE TABLE merging.visits FINAL"));
        let merging = || ch.query("SELECT count() FROM system.merges WHERE database = 'merging'");
        let t = std::time::Instant::now();
        while merging().trim() == "0" {
            assert!(
                t.elapsed().as_secs() < 30,
                "the other OPTIMIZE never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let o = collector(&["retention"], &cfg);
        assert_success(&o);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("1 partition(s) compacted"), "{out}");
        assert_eq!(
            parts(),
            1,
            "retention said compacted with the merge still running"
        );
        other.join().expect("the other OPTIMIZE")
    });
    assert_eq!(other.trim(), "");
}
