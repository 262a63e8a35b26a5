//! The report's queries also run on a current ClickHouse: chdb-core embeds 26.x in-process.

use std::collections::HashMap;

use attribution::data::{queries, Campaign};
use attribution::design::Params;
use collector::migrate::{statements, MIGRATIONS};

#[test]
fn the_report_queries_run_on_a_current_clickhouse() {
    let campaign = Campaign {
        campaign_id: "c".into(),
        brand: "acme".into(),
        creative_id: "acme-01".into(),
        boards: vec!["board-1".into(), "board-2".into()],
        start_ms: 1_772_928_000_000,
        end_ms: 1_773_532_800_000,
        spend: 1000.0,
        currency: "EUR".into(),
        window_days: 14,
        slot_secs: 10,
        loop_slots: 6,
    };
    let stores = HashMap::from([
        ("acme-1".to_owned(), "acme".to_owned()),
        ("other-1".to_owned(), "other".to_owned()),
    ]);
    let q = queries(
        &campaign,
        &stores,
        Some("other"),
        &Params::defaults(14).rules(),
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
        .collect();
    let report = vec![
        q.units.clone(),
        q.staff.clone(),
        q.revenue.clone(),
        q.classes.clone(),
        q.passers.clone(),
        q.daily.clone(),
    ];
    let setup: Vec<String> = schema.into_iter().chain(rows).collect();
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
}
