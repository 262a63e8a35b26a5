//! The report's queries also run on a current ClickHouse: chdb-core embeds 26.x in-process.

use std::collections::HashMap;

use attribution::data::{epochs_query, queries, Campaign};
use attribution::design::Params;
use collector::migrate::{statements, MIGRATIONS};
use warehouse::parts::{Compacted, Partition};

/// March 2026 of `visits` one merged part, April two; the other tables one merged part.
fn compacted_layout() -> Compacted {
    let part = |table: &str, partition: &str, parts: &[&str]| Partition {
        table: table.into(),
        partition: partition.into(),
        host: "h".into(),
        parts: parts.iter().map(|p| (*p).to_owned()).collect(),
        min_level: if parts.len() == 1 { 1 } else { 0 },
    };
    Compacted::of(vec![
        part("visits", "202603", &["202603_1_3_1"]),
        part("visits", "202604", &["202604_4_4_0", "202604_5_5_0"]),
        part("ad_plays", "202603", &["202603_1_1_1"]),
        part("receipts", "202603", &["202603_1_1_1"]),
        part("links", "tuple()", &["all_1_1_1"]),
    ])
}

/// acme's campaign of creative acme-01 on `boards`, from `start_ms` to `end_ms` (a 60-s loop).
fn campaign(boards: &[&str], start_ms: i64, end_ms: i64) -> Campaign {
    Campaign {
        campaign_id: "c".into(),
        brand: "acme".into(),
        creative_id: "acme-01".into(),
        boards: boards.iter().map(|b| (*b).to_owned()).collect(),
        start_ms,
        end_ms,
        spend: 1000.0,
        currency: "EUR".into(),
        window_days: 14,
        slot_secs: 10,
        loop_slots: 6,
    }
}

#[test]
fn the_report_queries_run_on_a_current_clickhouse() {
    // With FINAL throughout, and with the compacted partitions read plainly (visits: one
    // month plain, the other with FINAL; the other tables plain): the same answers.
    for compacted in [Compacted::none(), compacted_layout()] {
        let campaign = campaign(
            &["board-1", "board-2"],
            1_772_928_000_000,
            1_773_532_800_000,
        );
        let stores = HashMap::from([
            ("acme-1".to_owned(), "acme".to_owned()),
            ("other-1".to_owned(), "other".to_owned()),
        ]);
        let q = queries(
            &campaign,
            &stores,
            Some("other"),
            &Params::defaults(14).rules(),
            None,
            &compacted,
        );
        let schema: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|(_, _, sql)| statements(sql))
            .collect();
        // A pass at a board while the creative played, and a visit after it.
        let rows = vec![
            "INSERT INTO visits (site, day, device, visit_id, class, first_ms, last_ms, kind, version) \
             VALUES ('board-1', '2026-03-08', 7, 1, 'global', 1772960000000, 1772960005000, 'visitor', 1)"
                .to_owned(),
            "INSERT INTO ad_plays VALUES ('board-1', '2026-03-08', 1772959998000, 1772960008000, 'acme-01', 'acme', 'c')"
                .to_owned(),
            "INSERT INTO visits (site, day, device, visit_id, class, first_ms, last_ms, kind, version) \
             VALUES ('acme-1', '2026-03-09', 7, 2, 'global', 1773000000000, 1773000600000, 'visitor', 1)"
                .to_owned(),
        ];
        // Device 7 is a loyalty member who bought nothing: it is counted among the members,
        // with no receipts, not left out.
        let rows: Vec<String> = rows
            .into_iter()
            .chain(["INSERT INTO links VALUES (0, 7, 'card-7', 0)".to_owned()])
            // Store traffic: an hour written twice (the later version wins), another hour, and a
            // store of another brand.
            .chain([
                "INSERT INTO traffic (site, day, local_hour, hour_ms, visitors, version) VALUES \
                 ('acme-1', '2026-03-09', 10, 1773050400000, 3.5, 1), \
                 ('acme-1', '2026-03-09', 10, 1773050400000, 4.5, 2), \
                 ('acme-1', '2026-03-09', 11, 1773054000000, 2.0, 1), \
                 ('other-1', '2026-03-09', 11, 1773054000000, 9.0, 1)"
                    .to_owned(),
            ])
            .collect();
        let report = vec![
            q.units.clone(),
            q.staff.clone(),
            q.revenue.clone(),
            q.classes.clone(),
            q.passers.clone(),
            q.daily.clone(),
            epochs_query(&campaign, &stores, &Params::defaults(14).rules()),
            q.traffic.clone(),
        ];
        // The report's temporary tables, then its queries, in one session.
        let setup: Vec<String> = schema
            .iter()
            .cloned()
            .chain(rows)
            .chain(q.setup.into_iter().map(|(_, sql)| sql))
            .collect();
        let lines = testkit::chdb_queries(&setup, &report);
        // The one device: exposed (the creative overlapped its pass), converted within a day.
        let unit: Vec<&str> = lines[0].split('\t').collect();
        assert_eq!(
            &unit[..4],
            ["7", "1", "1772960000000", "board-1"],
            "{}",
            lines[0]
        );
        assert_eq!(
            unit[8], "[1,1,1,1,1]",
            "converted in every window: {}",
            lines[0]
        );
        assert_eq!(
            lines[2], "7\t[0,0,0,0,0]\t[0,0,0,0,0]",
            "a loyalty member without receipts"
        );
        assert_eq!(lines[3], "exposed\t1", "pass classes");
        assert_eq!(lines[4], "1\t1", "passers, linkable");
        assert_eq!(lines[6], "0\t1772960000000", "one epoch, from the pass");
        assert_eq!(
            lines[7], "acme-1\t2026-03-09\t6.5",
            "the brand's store's visitors that day, the latest version of each hour"
        );
        assert_eq!(lines.len(), 8, "{lines:?}");
    }
}

/// Across an epoch boundary: the pass under one key, the store visit (and the loyalty link)
/// under the next epoch's, with the collector's pair between them. Bridged, one unit that
/// converted; not bridged, a unit that did not. A passer seen on both sides is one passer.
#[test]
fn a_bridged_boundary_keeps_one_device_one_unit() {
    let campaign = campaign(
        &["board-1"],
        1_772_928_000_000 - 7 * 86_400_000,
        1_772_928_000_000 + 2 * 86_400_000,
    );
    let stores = HashMap::from([("acme-1".to_owned(), "acme".to_owned())]);
    let schema = MIGRATIONS.iter().flat_map(|(_, _, sql)| statements(sql));
    // Epoch 455 ends at 2026-03-08T00:00Z: device 7's pass on the 7th, its visit (as 8) on
    // the 9th; its loyalty link, which makes it linkable (its address is local), only under
    // the new key. Device 70 (unlinked, so not a unit)
    // passes on the 7th, and as 80 on the 8th. Device 9 passes on the 7th and visits the
    // store as 90, with neither a link nor a pass under its new key.
    let rows = [
        "INSERT INTO visits (site, day, device, visit_id, epoch, class, first_ms, last_ms, kind, version) \
         VALUES ('board-1', '2026-03-07', 7, 1, 455, 'local', 1772900000000, 1772900005000, 'visitor', 1)",
        "INSERT INTO visits (site, day, device, visit_id, epoch, class, first_ms, last_ms, kind, version) \
         VALUES ('board-1', '2026-03-07', 70, 3, 455, 'local', 1772900100000, 1772900105000, 'visitor', 1), \
         ('board-1', '2026-03-08', 80, 4, 456, 'local', 1773000100000, 1773000105000, 'visitor', 1)",
        "INSERT INTO ad_plays VALUES ('board-1', '2026-03-07', 1772899998000, 1772900008000, 'acme-01', 'acme', 'c')",
        "INSERT INTO visits (site, day, device, visit_id, epoch, class, first_ms, last_ms, kind, version) \
         VALUES ('acme-1', '2026-03-09', 8, 2, 456, 'global', 1773000000000, 1773000600000, 'visitor', 1)",
        "INSERT INTO visits (site, day, device, visit_id, epoch, class, first_ms, last_ms, kind, version) \
         VALUES ('board-1', '2026-03-07', 9, 5, 455, 'global', 1772900001000, 1772900006000, 'visitor', 1), \
         ('acme-1', '2026-03-09', 90, 6, 456, 'global', 1773000000000, 1773000600000, 'visitor', 1)",
        "INSERT INTO bridges VALUES (455, 7, 8), (455, 7, 8), (455, 70, 80), (455, 9, 90)",
        "INSERT INTO links VALUES (456, 8, 'card-7', 0)",
        "INSERT INTO receipts VALUES ('acme-1', '2026-03-09', 'r1', 1773000300000, 1250, 'EUR', 'card-7')",
    ];
    let setup: Vec<String> = schema.chain(rows.map(str::to_owned)).collect();
    let rules = Params::defaults(14).rules();
    let run = |bridge: Option<u32>| {
        let q = queries(&campaign, &stores, None, &rules, bridge, &Compacted::none());
        let setup: Vec<String> = setup
            .iter()
            .cloned()
            .chain(q.setup.into_iter().map(|(_, sql)| sql))
            .collect();
        testkit::chdb_queries(&setup, &[q.units, q.revenue, q.passers])
    };
    let bridged = run(Some(455));
    let units: Vec<Vec<&str>> = bridged[0]
        .split(';')
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(units.len(), 2, "{bridged:?}");
    assert_eq!(
        &units[0][..4],
        ["7", "1", "1772900000000", "board-1"],
        "{bridged:?}"
    );
    assert_eq!(&units[1][..2], ["9", "1"], "{bridged:?}");
    // Each visit is 1.2 days after the pass: converted in the 3-day window and longer.
    for unit in &units {
        assert_eq!(
            unit[8], "[0,1,1,1,1]",
            "the visit after the change counts: {bridged:?}"
        );
    }
    assert_eq!(
        bridged[1], "7\t[0,1250,1250,1250,1250]\t[0,1,1,1,1]",
        "the link under the new key, and its receipt, once"
    );
    assert_eq!(bridged[2], "3\t2", "three passers, two linkable");
    let split = run(None);
    for unit in split[0].split(';') {
        assert_eq!(
            unit.split('\t').nth(8),
            Some("[0,0,0,0,0]"),
            "not bridged: the visit is another device's: {split:?}"
        );
    }
    assert_eq!(split[1], "", "no link for key 7: {split:?}");
    assert_eq!(
        split[2], "4\t1",
        "not bridged: 70 and 80 are two passers, 7 is not linked"
    );
}

/// Each pass's class, from the plays around it (defaults: 15-s pad, a 60-s loop). `M` is the
/// start of a minute; the plays of the creative on board-1 are at M+55..65 s and M+175..185 s
/// (and another brand's at M+125..135 s).
#[test]
fn each_pass_is_classified_by_the_plays_around_it() {
    const M: i64 = 1_772_959_980_000;
    let campaign = campaign(&["board-1"], 1_772_928_000_000, 1_773_532_800_000);
    let q = queries(
        &campaign,
        &HashMap::from([("acme-1".to_owned(), "acme".to_owned())]),
        None,
        &Params::defaults(14).rules(),
        None,
        &Compacted::none(),
    );
    let s = |secs: f64| M + (secs * 1000.0) as i64;
    let passes = [
        // Padded, it meets the play across a minute's end by 600 ms: ambiguous, though the
        // two share two minutes (counted in both, 1.2 s would make it exposed).
        (1, s(30.0), s(40.6), "ambiguous"),
        // In rotation (a play starts 55 s after it), overlapping none (the other brand's).
        (2, s(120.0), s(130.0), "control"),
        (3, s(170.0), s(400.0), "long"),
        // Long, with a play inside it but none starting within a loop of its start.
        (4, s(400.0), s(900.0), "out_of_rotation"),
        // No play for hours: its row is kept.
        (5, s(7200.0), s(7205.0), "out_of_rotation"),
        (6, s(178.0), s(190.0), "exposed"),
    ];
    let plays = [
        (s(55.0), s(65.0), "acme-01"),
        (s(175.0), s(185.0), "acme-01"),
    ]
    .into_iter()
    .chain([
        (s(125.0), s(135.0), "other-01"),
        (s(850.0), s(860.0), "acme-01"),
    ]);
    let rows = passes
        .iter()
        .map(|(device, first, last, _)| {
            format!(
                "INSERT INTO visits (site, day, device, visit_id, class, first_ms, last_ms, kind, version) \
                 VALUES ('board-1', '2026-03-08', {device}, {device}, 'global', {first}, {last}, 'visitor', 1)"
            )
        })
        .chain(plays.map(|(start, end, creative)| {
            format!(
                "INSERT INTO ad_plays VALUES ('board-1', '2026-03-08', {start}, {end}, '{creative}', 'x', 'c')"
            )
        }));
    let setup: Vec<String> = MIGRATIONS
        .iter()
        .flat_map(|(_, _, sql)| statements(sql))
        .chain(rows)
        .collect();
    let setup: Vec<String> = setup
        .into_iter()
        .chain(q.setup.into_iter().map(|(_, sql)| sql))
        .collect();
    let classes = testkit::chdb_queries(
        &setup,
        &["SELECT device, klass FROM report_passes ORDER BY device".to_owned()],
    );
    let expected: Vec<String> = passes
        .iter()
        .map(|(device, _, _, klass)| format!("{device}\t{klass}"))
        .collect();
    assert_eq!(classes, [expected.join(";")]);
}
