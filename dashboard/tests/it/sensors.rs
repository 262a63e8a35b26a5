//! The Sensors page against a real ClickHouse: offline sensors first (silent too long, or
//! their Last Will), spool depth, frames dropped, clock sync, refusals of the last day.

use crate::util::{clickhouse, get, sign_in, start};

#[test]
fn offline_sensors_come_first_with_their_health_and_refusals() {
    let ch = clickhouse();
    let dir = tempfile::tempdir().expect("tempdir");
    ch.query(
        "INSERT INTO footfall.sites (site_id, kind, brand, lat, lon, open_hour, close_hour, \
         rssi_threshold_dbm, min_dwell_secs, imported_ms) VALUES \
         ('acme-1', 'store', 'acme', 0, 0, 8, 21, -70, 180, 1), \
         ('bolt-1', 'store', 'bolt-cola', 0, 0, 8, 21, -70, 180, 1)",
    );
    ch.query(
        "INSERT INTO footfall.sensors (sensor_id, site_id, kind, lat, lon, imported_ms) VALUES \
         ('s-a', 'acme-1', 'store', 0, 0, 1), ('s-b', 'bolt-1', 'store', 0, 0, 1), \
         ('s-c', 'acme-1', 'store', 0, 0, 1), ('s-d', 'acme-1', 'store', 0, 0, 1)",
    );
    // s-a: a minute ago, online, a spool of 3 batches; s-b: online, but two hours ago;
    // s-c: its Last Will a minute ago (an earlier status said online); s-d: never.
    let status = |sensor: &str, ago_secs: u32, online: u8, spool: u32, synced: u8| {
        format!(
            "('{sensor}', today(), toUInt64(now()) * 1000 - {ago_secs}000, 'x', {online}, 100, \
             5000, 7, 0, {spool}, {}, 0, 1, {synced}, 0)",
            spool * 2048
        )
    };
    ch.query(&format!(
        "INSERT INTO footfall.sensor_status (sensor, day, at_ms, site, online, uptime_secs, \
         frames_captured, frames_dropped, frames_malformed, spool_batches, spool_bytes, \
         spool_dropped_batches, config_version, clock_synced, received_ms) VALUES {}",
        [
            status("s-a", 60, 1, 3, 1),
            status("s-b", 7200, 1, 0, 0),
            status("s-c", 600, 1, 0, 1),
            status("s-c", 60, 0, 0, 1),
        ]
        .join(", ")
    ));
    // Refused from s-a: two malformed messages this hour, one two days ago (not counted).
    ch.query(
        "INSERT INTO footfall.rejected (day, reason, topic, payload_hash, received_ms, detail, \
         payload, payload_bytes) VALUES \
         (today(), 'malformed_json', 'footfall/v1/acme-1/s-a/sightings', 1, toUInt64(now()) * 1000 - 60000, '', '', 3), \
         (today(), 'malformed_json', 'footfall/v1/acme-1/s-a/sightings', 2, toUInt64(now()) * 1000 - 120000, '', '', 3), \
         (today() - 2, 'malformed_json', 'footfall/v1/acme-1/s-a/sightings', 3, toUInt64(now()) * 1000 - 172800000, '', '', 3)",
    );
    let d = start(dir.path(), &ch);
    let ana = sign_in(&d.base, "ana", "ana's long password");
    let (status, res) = get(&format!("{}/sensors.csv", d.base), Some(&ana));
    assert_eq!(status, 200);
    let csv = res.into_string().expect("body");
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let order: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[2])).collect();
    assert_eq!(
        order,
        [
            ("s-b", "false"),
            ("s-c", "false"),
            ("s-d", "false"),
            ("s-a", "true")
        ],
        "{csv}"
    );
    let a = &rows[3];
    assert_eq!(
        (a[7], a[8], a[10], a[11]),
        ("3", "6144", "true", "malformed_json=2")
    );
    assert_eq!(rows[0][10], "false", "s-b's clock");
    assert_eq!(rows[2][3], "", "s-d never sent a status");
    let (_, res) = get(&format!("{}/sensors", d.base), Some(&ana));
    let html = res.into_string().expect("body");
    assert!(html.contains("Sensors: 3 offline of 4"), "{html}");
    // A user limited to bolt-cola sees its sensor only.
    let bo = sign_in(&d.base, "bo", "bo's long password!");
    let (_, res) = get(&format!("{}/sensors.json", d.base), Some(&bo));
    let json: serde_json::Value =
        serde_json::from_str(&res.into_string().expect("body")).expect("json");
    assert_eq!(json["sensors"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["sensors"][0]["sensor"], "s-b");
}
