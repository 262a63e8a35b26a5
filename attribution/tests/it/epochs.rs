//! Where keys changed, as the report finds it on Debian's ClickHouse 18.16: from the days each
//! epoch has visits on (`visit_epochs`, kept from the visits by the collector's migrations),
//! and the first visit of the new epoch that day, retracted versions left out; at the
//! period's edge, from the visits themselves.

use attribution::data::{load, Boundary};
use attribution::design::Params;
use testkit::ClickHouse;

/// 2026-03-08T00:00Z: where epoch 455's keys give way to 456's.
const CHANGE_MS: i64 = 1_772_928_000_000;
const HOUR_MS: i64 = 3_600_000;
/// The report's period begins 28 days before the campaign's start, 3 days before the change.
const PERIOD_MS: i64 = CHANGE_MS - 31 * 24 * HOUR_MS;

#[test]
fn the_report_finds_the_boundary_from_the_new_epochs_first_visit() {
    let ch = ClickHouse::start();
    let cfg = collector::config::Config::parse(&format!(
        "version = 1\n[clickhouse]\nurl = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\
         client_id = \"epochs-test\"\n",
        ch.url()
    ))
    .expect("config");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(collector::migrate::migrate(cfg.clickhouse()))
        .expect("migrate");
    let visit = |site: &str, device: u64, epoch: u32, first_ms: i64, retracted: u8| {
        let day = chrono::DateTime::from_timestamp_millis(first_ms)
            .expect("a time")
            .format("%Y-%m-%d");
        format!(
            "('{site}', '{day}', {device}, {first_ms}, {epoch}, 'global', {first_ms}, {}, \
             'visitor', {retracted}, 1)",
            // A pass at the board lasts 5 s (shorter than a loop of the boards' ads), a
            // store visit 10 min.
            first_ms
                + if site.starts_with("board") {
                    5_000
                } else {
                    600_000
                }
        )
    };
    let visits = [
        // Device 7 passes the board under epoch 455 on the 7th, and visits the store as 8
        // on the 9th.
        visit("board-1", 7, 455, CHANGE_MS - 8 * HOUR_MS, 0),
        visit("acme-1", 8, 456, CHANGE_MS + 34 * HOUR_MS, 0),
        // Epoch 456's first retained visit, on the 8th at 03:00, and a later one. A version
        // of a visit under a key of 456 that began on the 7th was retracted: not where keys
        // changed.
        visit("acme-1", 81, 456, CHANGE_MS + 3 * HOUR_MS, 0),
        visit("acme-1", 83, 456, CHANGE_MS + 5 * HOUR_MS, 0),
        visit("acme-1", 82, 456, CHANGE_MS - 2 * HOUR_MS, 1),
        // At the period's start (2026-02-05: the campaign's start less the 28-day
        // pre-period), two older epochs, one of them still heard after the other began (a
        // sensor late to change keys). 453 is first heard the day before, in a visit that
        // ends before the period, then on the 6th; 454 in a visit that runs into the
        // period. Neither first day lies inside the period, so their first visits in it are
        // read from the visits: 454's near its first day, 453's anywhere in the period.
        visit("acme-1", 453, 453, PERIOD_MS - 20 * HOUR_MS, 0),
        visit("acme-1", 454, 454, PERIOD_MS - 5 * 60_000, 0),
        visit("acme-1", 4530, 453, PERIOD_MS + 25 * HOUR_MS, 0),
    ];
    for sql in [
        "INSERT INTO footfall.sites (site_id, kind, brand, lat, lon) VALUES \
         ('board-1', 'billboard', '', 0, 0), ('acme-1', 'store', 'acme', 0, 0)"
            .to_owned(),
        format!(
            "INSERT INTO footfall.campaigns (campaign_id, brand, creative_id, boards, start_ms, \
             end_ms, window_days, slot_secs, loop_slots) VALUES ('c', 'acme', 'acme-01', \
             ['board-1'], {}, {}, 14, 10, 6)",
            CHANGE_MS - 3 * 24 * HOUR_MS,
            CHANGE_MS + 4 * 24 * HOUR_MS
        ),
        format!(
            "INSERT INTO footfall.ad_plays VALUES ('board-1', '2026-03-07', {}, {}, 'acme-01', \
             'acme', 'c')",
            CHANGE_MS - 8 * HOUR_MS - 5_000,
            CHANGE_MS - 8 * HOUR_MS + 60_000
        ),
        format!(
            "INSERT INTO footfall.visits (site, day, device, visit_id, epoch, class, first_ms, \
             last_ms, kind, retracted, version) VALUES {}",
            visits.join(", ")
        ),
        "INSERT INTO footfall.bridges VALUES (455, 7, 8)".to_owned(),
        format!(
            "INSERT INTO footfall.sightings (site, day, sensor, seq, device, last_ms) VALUES \
             ('acme-1', '2026-03-09', 's', 1, 8, {})",
            CHANGE_MS + 35 * HOUR_MS
        ),
    ] {
        ch.query(&sql);
    }
    let (db, _) = cfg.clickhouse().clients();
    let inputs = runtime
        .block_on(async {
            let c = attribution::data::campaign(&db, "c").await?;
            load(cfg.clickhouse(), c, &Params::defaults(14).rules()).await
        })
        .expect("load");
    assert_eq!(
        inputs.boundaries,
        [
            Boundary {
                epoch: 454,
                day: "2026-02-04".into(),
                pairs: 0,
                bridged: false,
            },
            Boundary {
                epoch: 455,
                day: "2026-03-07".into(),
                pairs: 0,
                bridged: false,
            },
            Boundary {
                epoch: 456,
                day: "2026-03-08".into(),
                pairs: 1,
                bridged: true,
            }
        ]
    );
    // Bridged: device 7's store visit under its new key is its conversion.
    let units: Vec<(u64, u8)> = inputs.units.iter().map(|u| (u.device, u.exposed)).collect();
    assert_eq!(units, [(7, 1)]);
    assert_eq!(inputs.units[0].converted[1], 1, "converted within 3 days");
}
