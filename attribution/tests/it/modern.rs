//! The report's queries also run on a current ClickHouse: chdb-core embeds 26.x in-process.
//! Each test runs the report's flow there: its session's setup, the flight's passes, the
//! creative's plays and the links, the bridge's pairs, the arms `units::flight` assigns
//! from them and their keys written into `report_keys`, then the queries that read them.

use std::collections::HashMap;

use attribution::bridge::{self, Bridge, Links};
use attribution::data::{
    data_end_query, epoch_days_query, epochs_query, links_query, pairs_query, queries, Campaign,
    Queries, Rules, BEFORE, KEYS, LINKED, NEXT,
};
use attribution::design::{Params, PassClass};
use attribution::units::{self, Flight, Pass, Play, Plays, Stay};
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

/// The UTC day of a TSV date, days since 1970.
fn day(text: &str) -> u16 {
    let d = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date");
    (d - chrono::NaiveDate::default()).num_days() as u16
}

/// A number in a TSV answer.
fn num<T: std::str::FromStr>(field: &str) -> T {
    field.parse().ok().expect("a number")
}

/// The rows of one TSV answer (`;` between rows).
fn rows(answer: &str) -> Vec<Vec<&str>> {
    answer
        .split(';')
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').collect())
        .collect()
}

/// `INSERT INTO {table} VALUES ...` of `rows` (none for no rows).
fn insert(table: &str, rows: impl IntoIterator<Item = String>) -> Option<String> {
    let rows: Vec<String> = rows.into_iter().collect();
    (!rows.is_empty()).then(|| format!("INSERT INTO {table} VALUES {}", rows.join(", ")))
}

/// `device` rows.
fn keys(table: &str, keys: &[u64]) -> Option<String> {
    insert(table, keys.iter().map(|k| format!("({k})")))
}

/// Pairs (next key, key before) from a pairs query's answer.
fn pairs(answer: &str) -> Vec<(u64, u64)> {
    rows(answer)
        .iter()
        .map(|r| (num(r[0]), num(r[1])))
        .collect()
}

/// What the report's flow read on chdb: the flight, the bridge and the arms' stays.
struct Read {
    flight: Flight,
    stays: Vec<Stay>,
    /// The answers of the queries after the stays.
    after: Vec<String>,
}

/// One report's flow on chdb: its queries and links query (`links_query`), the epoch it
/// bridges from, and its stores by index.
struct Report<'a> {
    c: &'a Campaign,
    rules: &'a Rules,
    q: Queries,
    links: String,
    bridged: Option<u32>,
    stores: &'a [&'a str],
}

impl Report<'_> {
    /// Runs the report's flow on chdb: `data` (the schema and rows), the session's setup, the
    /// passes, plays and links, through the bridge (its pairs selected as the report does);
    /// the arms' keys written and their stays read, the linked arms written, then `after`,
    /// whose answers it returns. Each step is a chdb session of its own over the statements
    /// so far.
    fn run(&self, data: &[String], after: &[String]) -> Read {
        let Report {
            c,
            rules,
            q,
            bridged,
            stores,
            ..
        } = self;
        let bridged = *bridged;
        let mut setup: Vec<String> = data
            .iter()
            .cloned()
            .chain(q.setup.iter().map(|(_, sql)| sql.clone()))
            .collect();
        let read = testkit::chdb_queries(
            &setup,
            &[q.passes.clone(), q.plays.clone(), self.links.clone()],
        );
        let board = |name: &str| c.boards.iter().position(|b| b == name).expect("a board") as u32;
        let mut passes: Vec<Pass> = rows(&read[0])
            .iter()
            .map(|r| Pass {
                device: num(r[0]),
                epoch: num(r[1]),
                board: board(r[2]),
                first_ms: num(r[3]),
                last_ms: num(r[4]),
                linkable: r[5] == "1",
            })
            .collect();
        let plays = rows(&read[1]).into_iter().map(|r| Play {
            board: board(r[0]),
            start_ms: num(r[1]),
            end_ms: num(r[2]),
        });
        let links: Vec<(u32, u64, String)> = rows(&read[2])
            .iter()
            .map(|r| (num(r[0]), num(r[1]), r[2].to_owned()))
            .collect();
        let mut bridge = Bridge::new(bridged);
        if let Some(e) = bridged {
            let wanted = bridge.wanted(&passes, &links);
            setup.extend(keys(NEXT, &wanted.next));
            setup.extend(keys(BEFORE, &wanted.before));
            bridge.add(pairs(&testkit::chdb_queries(&setup, &[pairs_query(e)])[0]));
        }
        let links = Links::new(links, &bridge);
        bridge::follow(&mut passes, &bridge, &links);
        let flight = units::flight(
            &mut passes,
            &Plays::new(c.boards.len(), plays),
            rules.pad_ms,
            c.loop_ms(),
        );
        setup.extend(keys(KEYS, &bridge.stay_keys(&flight.arms)));
        setup.extend(insert(
            LINKED,
            links
                .of(&flight.arms)
                .map(|(device, t0, card)| format!("({device}, {t0}, '{card}')")),
        ));
        let queries: Vec<String> = [q.stays.clone()]
            .into_iter()
            .chain(after.iter().cloned())
            .collect();
        let mut answers = testkit::chdb_queries(&setup, &queries);
        let arms = bridge.arm_keys(&flight.arms);
        let mut stays: Vec<Stay> = rows(&answers.remove(0))
            .iter()
            .filter_map(|r| {
                Some(Stay {
                    device: arms.arm(num(r[1]), num(r[0]))?,
                    store: stores.iter().position(|s| *s == r[2]).expect("a store") as u32,
                    day: day(r[3]),
                    visitor: r[4] == "1",
                    first_ms: num(r[5]),
                    last_ms: num(r[6]),
                })
            })
            .collect();
        units::sort_stays(&mut stays);
        Read {
            flight,
            stays,
            after: answers,
        }
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
        let rules = Params::defaults(14).rules();
        let report = Report {
            c: &campaign,
            rules: &rules,
            q: queries(&campaign, &stores, &rules, &compacted),
            links: links_query(0..=0, &compacted),
            bridged: None,
            stores: &["acme-1", "other-1"],
        };
        let q = &report.q;
        // A pass at a board while the creative played, and a visit after it.
        let data: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|(_, _, sql)| statements(sql))
            .chain([
                "INSERT INTO visits (site, day, device, visit_id, class, first_ms, last_ms, kind, version) \
                 VALUES ('board-1', '2026-03-08', 7, 1, 'global', 1772960000000, 1772960005000, 'visitor', 1)"
                    .to_owned(),
                "INSERT INTO ad_plays VALUES ('board-1', '2026-03-08', 1772959998000, 1772960008000, 'acme-01', 'acme', 'c')"
                    .to_owned(),
                "INSERT INTO visits (site, day, device, visit_id, class, first_ms, last_ms, kind, version) \
                 VALUES ('acme-1', '2026-03-09', 7, 2, 'global', 1773000000000, 1773000600000, 'visitor', 1)"
                    .to_owned(),
                // Device 7 is a loyalty member who bought nothing: it is counted among the
                // members, with no receipts, not left out.
                "INSERT INTO links VALUES (0, 7, 'card-7', 0)".to_owned(),
                // Two more visits on the pass's day, of devices no arm has: one later, and
                // one earlier but retracted. Neither is the epoch's first visit.
                "INSERT INTO visits (site, day, device, visit_id, class, first_ms, last_ms, kind, \
                 retracted, version) VALUES \
                 ('other-1', '2026-03-08', 9, 3, 'local', 1772961000000, 1772961600000, 'visitor', 0, 1), \
                 ('other-1', '2026-03-08', 8, 4, 'local', 1772950000000, 1772950600000, 'visitor', 1, 2)"
                    .to_owned(),
                // Store traffic: an hour written twice (the later version wins), another hour,
                // and a store of another brand.
                "INSERT INTO traffic (site, day, local_hour, hour_ms, visitors, version) VALUES \
                 ('acme-1', '2026-03-09', 10, 1773050400000, 3.5, 1), \
                 ('acme-1', '2026-03-09', 10, 1773050400000, 4.5, 2), \
                 ('acme-1', '2026-03-09', 11, 1773054000000, 2.0, 1), \
                 ('other-1', '2026-03-09', 11, 1773054000000, 9.0, 1)"
                    .to_owned(),
            ])
            .collect();
        let Read {
            flight,
            stays,
            after: lines,
        } = report.run(
            &data,
            &[
                q.revenue.clone(),
                epoch_days_query(&campaign, &rules),
                epochs_query(&campaign, &rules, &[(0, day("2026-03-08"))], true),
                epochs_query(&campaign, &rules, &[(0, day("2026-03-08"))], false),
                q.traffic.clone(),
            ],
        );
        // The one device: exposed (the creative overlapped its pass), converted within a day.
        assert_eq!(flight.arms.len(), 1, "{flight:?}");
        let arm = flight.arms[0];
        assert_eq!(
            (arm.device, arm.exposed, arm.t0, arm.board),
            (7, true, 1772960000000, 0)
        );
        assert_eq!(flight.pass_classes.get(&PassClass::Exposed), Some(&1));
        assert_eq!((flight.passers, flight.linkable_passers), (1, 1));
        let units = units::outcomes(
            &flight.arms,
            &stays,
            &[true, false],
            &[false, true],
            &campaign.boards,
            &rules,
            (
                campaign.start_ms - rules.pre_ms,
                campaign.end_ms + 28 * 86_400_000,
            ),
        );
        assert_eq!(
            units[0].converted,
            [1, 1, 1, 1, 1],
            "converted in every window: {lines:?}"
        );
        assert_eq!(
            lines[0], "7\t[0,0,0,0,0]\t[0,0,0,0,0]",
            "a loyalty member without receipts"
        );
        assert_eq!(
            lines[1], "0\t2026-03-08\t1772960000000",
            "one epoch, from the pass's day, where the pass is its first visit"
        );
        assert_eq!(lines[2], "0\t1772960000000", "its first visit, the pass");
        assert_eq!(lines[3], lines[2], "the same, read on every day");
        assert_eq!(
            lines[4], "acme-1\t2026-03-09\t6.5",
            "the brand's store's visitors that day, the latest version of each hour"
        );
        assert_eq!(lines.len(), 5, "{lines:?}");
    }
}

/// Across an epoch boundary: the pass under one key, the store visit (and the loyalty link)
/// under the next epoch's, with the collector's pair between them. Bridged, one unit that
/// converted; not bridged, a unit that did not. A passer seen on both sides is one passer,
/// and a randomized address linked only before the boundary is linkable after it.
#[test]
fn a_bridged_boundary_keeps_one_device_one_unit() {
    let campaign = campaign(
        &["board-1"],
        1_772_928_000_000 - 7 * 86_400_000,
        1_772_928_000_000 + 2 * 86_400_000,
    );
    let stores = HashMap::from([("acme-1".to_owned(), "acme".to_owned())]);
    // Epoch 455 ends at 2026-03-08T00:00Z: device 7's pass on the 7th, its visit (as 8) on
    // the 9th; its loyalty link, which makes it linkable (its address is local), only under
    // the new key. Device 70 (unlinked, so not a unit)
    // passes on the 7th, and as 80 on the 8th. Device 9 passes on the 7th and visits the
    // store as 90, with neither a link nor a pass under its new key. Device 11 (local) is
    // linked under its old key only, and passes as 12 on the 8th, out of rotation.
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
        "INSERT INTO visits (site, day, device, visit_id, epoch, class, first_ms, last_ms, kind, version) \
         VALUES ('board-1', '2026-03-08', 12, 7, 456, 'local', 1773000200000, 1773000205000, 'visitor', 1)",
        "INSERT INTO bridges VALUES (455, 7, 8), (455, 7, 8), (455, 70, 80), (455, 9, 90), \
         (455, 11, 12)",
        "INSERT INTO links VALUES (456, 8, 'card-7', 0), (455, 11, 'card-11', 0)",
        "INSERT INTO receipts VALUES ('acme-1', '2026-03-09', 'r1', 1773000300000, 1250, 'EUR', 'card-7')",
    ];
    let data: Vec<String> = MIGRATIONS
        .iter()
        .flat_map(|(_, _, sql)| statements(sql))
        .chain(rows.map(str::to_owned))
        .collect();
    let rules = Params::defaults(14).rules();
    let period = (
        campaign.start_ms - rules.pre_ms,
        campaign.end_ms + 28 * 86_400_000,
    );
    let run = |bridged: Option<u32>| {
        let report = Report {
            c: &campaign,
            rules: &rules,
            q: queries(&campaign, &stores, &rules, &Compacted::none()),
            links: links_query(455..=456, &Compacted::none()),
            bridged,
            stores: &["acme-1"],
        };
        let Read {
            flight,
            stays,
            after: lines,
        } = report.run(&data, std::slice::from_ref(&report.q.revenue));
        let units = units::outcomes(
            &flight.arms,
            &stays,
            &[true],
            &[false],
            &campaign.boards,
            &rules,
            period,
        );
        (flight, units, lines)
    };
    let (flight, units, lines) = run(Some(455));
    let devices: Vec<(u64, bool)> = units.iter().map(|u| (u.device, u.exposed == 1)).collect();
    assert_eq!(devices, [(7, true), (9, true)], "{lines:?}");
    assert_eq!(units[0].t0, 1772900000000);
    // Each visit is 1.2 days after the pass: converted in the 3-day window and longer.
    for unit in &units {
        assert_eq!(
            unit.converted,
            [0, 1, 1, 1, 1],
            "the visit after the change counts: {lines:?}"
        );
    }
    assert_eq!(
        lines[0], "7\t[0,1250,1250,1250,1250]\t[0,1,1,1,1]",
        "the link under the new key, and its receipt, once"
    );
    assert_eq!(
        (flight.passers, flight.linkable_passers),
        (4, 3),
        "four passers, three linkable (11 as 12 through its old key's link)"
    );
    let (flight, units, lines) = run(None);
    assert_eq!(units.len(), 1, "not bridged, 7 is not linked: {lines:?}");
    assert_eq!(
        units[0].converted,
        [0, 0, 0, 0, 0],
        "not bridged: the visit is another device's: {lines:?}"
    );
    assert_eq!(lines[0], "", "no link for key 7: {lines:?}");
    assert_eq!(
        (flight.passers, flight.linkable_passers),
        (5, 1),
        "not bridged: 70 and 80 are two passers, 7 and 12 are not linked"
    );
}

/// The plays a pass is classified by come from the plays query on a current ClickHouse:
/// the creative's alone, at the campaign's boards, around the flight (ATTRIBUTION.md's
/// classes on crafted plays are `units`' unit tests).
#[test]
fn the_plays_query_reads_the_creatives_plays_around_the_flight() {
    const M: i64 = 1_772_959_980_000;
    let campaign = campaign(&["board-1"], M, M + 86_400_000);
    let stores = HashMap::from([("acme-1".to_owned(), "acme".to_owned())]);
    let q = queries(
        &campaign,
        &stores,
        &Params::defaults(14).rules(),
        &Compacted::none(),
    );
    let plays = [
        ("board-1", M + 55_000, "acme-01"),
        ("board-1", M + 125_000, "other-01"),
        ("board-2", M + 175_000, "acme-01"),
        // Ends a minute before the first pass could look for it, or starts after the last.
        ("board-1", M - 130_000, "acme-01"),
        ("board-1", M + 86_400_000 + 120_000, "acme-01"),
        // Ends in the minute a first pass looks from.
        ("board-1", M - 70_000, "acme-01"),
    ];
    let data: Vec<String> = MIGRATIONS
        .iter()
        .flat_map(|(_, _, sql)| statements(sql))
        .chain(plays.iter().map(|(board, start, creative)| {
            format!(
                "INSERT INTO ad_plays VALUES ('{board}', '2026-03-08', {start}, {}, '{creative}', 'x', 'c')",
                start + 10_000
            )
        }))
        .collect();
    let answer = testkit::chdb_queries(&data, &[format!("{} ORDER BY start_ms", q.plays)]);
    assert_eq!(
        answer,
        [format!(
            "board-1\t{}\t{};board-1\t{}\t{}",
            M - 70_000,
            M - 60_000,
            M + 55_000,
            M + 65_000
        )]
    );
}

/// The data's end on a current ClickHouse: the sightings' last day from their parts'
/// `max_date` (three inserts, three parts; none read), then the latest end of a sighting
/// begun on that day or the one before. A sighting begun earlier is not read, though it
/// ends later (a fixture's stay held open: the end is earlier, never later).
#[test]
fn the_data_end_is_found_from_the_sightings_parts_on_a_current_clickhouse() {
    let sighting = |day: &str, last_ms: i64| {
        format!(
            "INSERT INTO sightings (site, day, sensor, seq, idx, first_ms, last_ms) \
             VALUES ('s', '{day}', 'n', 1, 0, 0, {last_ms})"
        )
    };
    let data: Vec<String> = MIGRATIONS
        .iter()
        .flat_map(|(_, _, sql)| statements(sql))
        .chain([
            sighting("2026-03-01", 1_775_000_000_000),
            sighting("2026-03-30", 1_774_900_000_000),
            sighting("2026-03-31", 1_774_950_000_000),
        ])
        .collect();
    let ch = warehouse::ClickHouseConfig::from_raw(warehouse::RawClickHouse {
        url: "http://127.0.0.1:8123".into(),
        database: "footfall".into(),
        compression: "none".into(),
        ..Default::default()
    })
    .expect("a configuration");
    let last_day = clickhouse::Client::default()
        .query(&warehouse::parts::last_day_query(&ch))
        .bind(ch.database())
        .bind(ch.part_table("sightings"))
        .sql_display()
        .to_string();
    let answers = testkit::chdb_queries(&data, &[last_day, data_end_query(day("2026-03-31"))]);
    assert_eq!(answers[0], "2026-03-31", "the last day, from the parts");
    assert_eq!(
        answers[1], "1774950000000",
        "the latest end of the last two days' sightings"
    );
}
