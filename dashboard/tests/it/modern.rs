//! The dashboard's queries also run on a current ClickHouse: chdb-core embeds 26.x
//! in-process (the other tests run them on 18.16).

use collector::migrate::{statements, MIGRATIONS};
use dashboard::{campaigns, compare, sensors, store, stores};

/// `sql` with its `?` bound, in order, to the literals given (as the client binds them).
fn bound(sql: &str, values: &[&str]) -> String {
    let mut parts = sql.split('?');
    let mut out = parts.next().unwrap_or_default().to_owned();
    for (part, v) in parts.zip(values.iter().chain(std::iter::repeat(&"?"))) {
        out.push_str(v);
        out.push_str(part);
    }
    assert_eq!(sql.matches('?').count(), values.len(), "{sql}");
    out
}

#[test]
fn the_dashboards_queries_run_on_a_current_clickhouse() {
    let schema: Vec<String> = MIGRATIONS
        .iter()
        .flat_map(|(_, _, sql)| statements(sql))
        .collect();
    let rows = [
        "INSERT INTO sites (site_id, kind, brand, lat, lon, tz, open_hour, close_hour, \
         rssi_threshold_dbm, min_dwell_secs, imported_ms) VALUES \
         ('acme-1', 'store', 'acme', 0, 0, 'Europe/Berlin', 8, 21, -70, 180, 1)",
        "INSERT INTO traffic (site, day, local_hour, hour_ms, visitors, passers_by, \
         visitor_devices, passer_by_devices, dwell_5_20, version) VALUES \
         ('acme-1', '2026-03-20', 10, 1773997200000, 60, 240, 30, 120, 30, 1)",
        "INSERT INTO occupancy (site, day, window_mins, start_ms, people, lo, hi, \
         global_devices, randomized_devices, version) VALUES \
         ('acme-1', '2026-03-20', 15, 1773997200000, 12, 9, 15, 5, 20, 1), \
         ('acme-1', '2026-03-20', 5, 1773997200000, 7, 5, 10, 5, 20, 1)",
        "INSERT INTO visits (site, day, device, visit_id, class, first_ms, last_ms, kind, version) \
         VALUES ('acme-1', '2026-03-20', 7, 1, 'global', 1773997200000, 1773997800000, 'visitor', 1), \
         ('acme-1', '2026-03-01', 7, 2, 'global', 1772355600000, 1772356200000, 'visitor', 1)",
        "INSERT INTO sensors (sensor_id, site_id, kind, lat, lon, imported_ms) VALUES \
         ('s-a', 'acme-1', 'store', 0, 0, 1)",
        "INSERT INTO sensor_status (sensor, day, at_ms, site, online, spool_batches) VALUES \
         ('s-a', '2026-03-20', 1773997200000, 'acme-1', 1, 3)",
        "INSERT INTO rejected (day, reason, topic, payload_hash, received_ms) VALUES \
         ('2026-03-20', 'malformed_json', 'footfall/v1/acme-1/s-a/sightings', 1, 1773997200000)",
        // Batches 1, 2 and 4 of s-a: 3 is missing.
        "INSERT INTO batches (site, day, sensor, seq, sent_ms) VALUES \
         ('acme-1', '2026-03-20', 's-a', 1, 1773997200000), \
         ('acme-1', '2026-03-20', 's-a', 2, 1773997260000), \
         ('acme-1', '2026-03-20', 's-a', 4, 1773997380000)",
        "INSERT INTO campaigns (campaign_id, brand, creative_id, boards, start_ms, end_ms, spend, \
         currency, imported_ms) VALUES ('spring', 'acme', 'c', ['b-1', 'b-2'], 1, 2, 100, 'EUR', 1)",
    ];
    let (from, to) = ("'2026-03-14'", "'2026-03-20'");
    let (start, end) = ("1773442800000", "1774047600000");
    let queries = [
        bound(
            stores::TRAFFIC_SQL,
            &[
                from,
                to,
                from,
                to,
                from,
                to,
                from,
                to,
                "'2026-03-07'",
                "'2026-03-13'",
                "'2026-03-07'",
                "'2026-03-13'",
                to,
                to,
                to,
                to,
                from,
                to,
                from,
                to,
                from,
                to,
                from,
                to,
                "'2026-03-07'",
                to,
                to,
                "0",
                "['acme-1']",
            ],
        ),
        bound(store::HOURS_SQL, &["'acme-1'", from, to]),
        bound(
            store::WINDOWS_SQL,
            &["'acme-1'", "15", "'2026-03-13'", to, start, end],
        ),
        bound(
            store::LATEST_SQL,
            &["'acme-1'", "5", "'2026-03-13'", to, start, end],
        ),
        bound(
            store::RETURNING_SQL,
            &[
                start,
                start,
                "'acme-1'",
                "'2026-02-14'",
                to,
                "1771023600000",
                end,
            ],
        ),
        bound(compare::DAILY_SQL, &["['acme-1']", from, to]),
        campaigns::CAMPAIGNS_SQL.to_owned(),
        sensors::LATEST_SQL.to_owned(),
        bound(sensors::REFUSED_SQL, &["'2026-03-19'", "1773900000000"]),
        bound(sensors::MISSING_SQL, &["'2026-03-19'", "1773900000000"]),
    ];
    let setup: Vec<String> = schema
        .into_iter()
        .chain(rows.iter().map(|r| (*r).to_owned()))
        .collect();
    let out = testkit::chdb_queries(&setup, &queries);
    let first =
        |i: usize| -> Vec<&str> { out[i].split(';').next().unwrap_or("").split('\t').collect() };
    assert_eq!(&first(0)[..3], ["acme-1", "60", "240"], "{}", out[0]);
    assert_eq!(
        &first(1)[..4],
        ["2026-03-20", "10", "60", "240"],
        "{}",
        out[1]
    );
    assert_eq!(
        &first(2)[..4],
        ["1773997200000", "12", "9", "15"],
        "{}",
        out[2]
    );
    assert_eq!(&first(3)[1..3], ["7", "5"], "{}", out[3]);
    assert_eq!(
        first(4),
        ["1", "1", "1"],
        "one visit, returning: {}",
        out[4]
    );
    assert_eq!(first(5), ["acme-1", "2026-03-20", "60", "30"], "{}", out[5]);
    assert_eq!(&first(6)[..4], ["spring", "acme", "c", "2"], "{}", out[6]);
    assert_eq!(
        &first(7)[..3],
        ["s-a", "acme-1", "1773997200000"],
        "{}",
        out[7]
    );
    assert_eq!(first(8), ["s-a", "malformed_json", "1"], "{}", out[8]);
    assert_eq!(first(9), ["s-a", "1"], "{}", out[9]);
}
