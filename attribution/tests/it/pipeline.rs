//! A simulated city through the real pipeline: its envelopes published with mosquitto_pub to
//! a real Mosquitto, the collector (in-process, its own code) writing to a real ClickHouse,
//! the report computed from there and checked against the simulator's truth.

use std::time::Duration;

use attribution::design::Params;
use simulator::scenario::Scenario;
use testkit::{city_envelopes, mosquitto_pub_lines, wait_for, ClickHouse, Mosquitto};
use tokio_util::sync::CancellationToken;

const BRAND: &str = "acme<img src=x onerror=alert(1)>&";
const CURRENCY: &str = "EUR<script>alert(1)</script>";

#[test]
fn a_simulated_campaigns_report_agrees_with_the_truth() {
    let ch = ClickHouse::start();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let city = dir.path().join("city");
    let s = Scenario::from_overlay(
        "preset = \"demo\"\n[output]\nmode = \"envelopes\"\n",
        "test",
    )
    .expect("scenario");
    let truth = simulator::generate(&s, 3, &city, 2, &mut |_| {}).expect("generate");
    // Markup in every imported free-text field the report shows (the brand, the currency;
    // ids are refused unless plain): the page must show it as text.
    for (file, from, to) in [
        ("inventory/sites.csv", ",acme,", format!(",{BRAND},")),
        ("ad_plays.csv", ",acme,", format!(",{BRAND},")),
        (
            "campaigns.jsonl",
            "\"brand\":\"acme\"",
            format!("\"brand\":\"{BRAND}\""),
        ),
        (
            "campaigns.jsonl",
            "\"currency\":\"EUR\"",
            format!("\"currency\":\"{CURRENCY}\""),
        ),
        ("receipts.csv", ",EUR,", format!(",{CURRENCY},")),
    ] {
        let path = city.join(file);
        let text = std::fs::read_to_string(&path).expect("a city file");
        assert!(text.contains(from), "{file} has {from}");
        std::fs::write(&path, text.replace(from, &to)).expect("write");
    }

    let cfg = collector::config::Config::parse(&format!(
        "version = 1\n[clickhouse]\nurl = \"{}\"\n[mqtt]\nurl = \"{}\"\nclient_id = \"report-test\"\n\
         [ingest]\nbatch_max_age_ms = 200\nmax_age_days = 3650\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        ch.url(),
        broker.url()
    ))
    .expect("config");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (db, _) = cfg.clickhouse().clients();
    let tables = cfg.clickhouse().clone();
    runtime.block_on(async {
        collector::migrate::migrate(cfg.clickhouse())
            .await
            .expect("migrate");
        for (kind, file) in [
            (collector::import::Kind::Sites, "inventory/sites.csv"),
            (collector::import::Kind::Sensors, "inventory/sensors.csv"),
            (collector::import::Kind::AdPlays, "ad_plays.csv"),
            (collector::import::Kind::Campaigns, "campaigns.jsonl"),
            (collector::import::Kind::Receipts, "receipts.csv"),
            (collector::import::Kind::Links, "links.csv"),
        ] {
            let r = collector::import::import(&db, kind, &city.join(file))
                .await
                .expect("import");
            assert!(r.bad.is_empty(), "{file}: {r}");
        }
    });
    let shutdown = CancellationToken::new();
    let run = runtime.spawn(collector::run(cfg, shutdown.clone()));
    wait_for(Duration::from_secs(20), || {
        broker
            .log()
            .contains("SUBSCRIBE from report-test")
            .then_some(())
    })
    .expect("the collector subscribes");
    mosquitto_pub_lines(
        broker.port,
        dir.path(),
        &city_envelopes(&city),
        21,
        Duration::ZERO,
    );
    let want = truth.sightings.to_string();
    wait_for(Duration::from_secs(300), || {
        (ch.query("SELECT count() FROM footfall.sightings FINAL")
            .trim()
            == want)
            .then_some(())
    })
    .expect("every sighting in ClickHouse");
    // Stopping writes the stays still open.
    shutdown.cancel();
    runtime
        .block_on(run)
        .expect("the collector task")
        .expect("the collector");

    let p = Params::defaults(1);
    let inputs = runtime
        .block_on(async {
            let c = attribution::data::campaign(&db, "acme-spring").await?;
            attribution::data::load(&tables, c, &p.rules()).await
        })
        .expect("load");
    let r = attribution::report::build(&inputs, &p);
    // The same report from compacted months, read without FINAL.
    let again = runtime
        .block_on(async {
            let merged = collector::retention::compact(&tables, 0)
                .await
                .expect("compact");
            assert!(
                merged.iter().any(|(t, _)| *t == "visits"),
                "compacted: {merged:?}"
            );
            let read = warehouse::parts::Compacted::read(&db, &tables, warehouse::parts::REPORTED)
                .await
                .expect("parts");
            assert_eq!(
                read.rows("visits", "device", "1"),
                "(SELECT device FROM visits WHERE (1))"
            );
            let c = attribution::data::campaign(&db, "acme-spring").await?;
            attribution::data::load(&tables, c, &p.rules()).await
        })
        .expect("load from compacted months");
    assert_eq!(
        serde_json::to_value(attribution::report::build(&again, &p)).expect("json"),
        serde_json::to_value(&r).expect("json"),
        "the report from compacted months"
    );
    let out = dir.path().join("report");
    attribution::report::write(&r, &out).expect("write");

    let t: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(city.join("truth/summary.json")).expect("truth"),
    )
    .expect("json");
    let d = &t["campaigns"][0]["devices"];
    let primary = r.windows.iter().find(|w| w.primary).expect("primary");
    let c = &primary.comparison;
    // The same devices as the truth's device-level analysis (staff found from the data,
    // not known: a few differ).
    eprintln!(
        "report: exposed {}/{} control {}/{} lift {:.4} {:?}; truth: n {} / {}, observed {} pp, target {} pp",
        c.exposed.converters,
        c.exposed.devices,
        c.control.converters,
        c.control.devices,
        c.difference,
        c.newcombe,
        d["n_exposed"],
        d["n_control"],
        d["observed_lift_pp"],
        d["target_lift_pp"]
    );
    let near = |got: u64, want: u64| (got as f64 - want as f64).abs() <= 0.03 * want as f64;
    let (ne, nc) = (
        d["n_exposed"].as_u64().expect("n"),
        d["n_control"].as_u64().expect("n"),
    );
    assert!(
        near(c.exposed.devices, ne),
        "exposed {} vs truth {ne}",
        c.exposed.devices
    );
    assert!(
        near(c.control.devices, nc),
        "control {} vs truth {nc}",
        c.control.devices
    );
    // The lift the truth observed on its devices, and the interval covering the true one.
    let observed = d["observed_lift_pp"].as_f64().expect("pp") / 100.0;
    let target = d["target_lift_pp"].as_f64().expect("pp") / 100.0;
    assert!(
        (c.difference - observed).abs() < 0.005,
        "lift {} vs the truth's observed {observed}",
        c.difference
    );
    // The headline interval is the board-day cluster bootstrap's (the city has far more
    // than 20 board-day clusters), and the page names it.
    assert_eq!(
        primary.headline.method,
        attribution::estimate::HeadlineMethod::ClusterBootstrap,
        "{} clusters",
        primary.clusters
    );
    assert!(
        primary.headline.interval.contains(target),
        "{:?} misses the true device-level lift {target}",
        primary.headline.interval
    );
    // The gates pass; a lift that the interval cannot tell from 0, with a minimum
    // detectable lift above the planned 0.4 pp, is reported as underpowered.
    assert!(primary.gate.passed, "{:?}", primary.gate.reasons);
    let mde = r.mde_pp.expect("a minimum detectable lift");
    let expected = if primary.headline.interval.contains(0.0) && mde > r.params.target_lift_pp {
        "underpowered"
    } else {
        "ok"
    };
    assert_eq!(
        r.status, expected,
        "interval {:?}, MDE {mde} pp",
        primary.headline.interval
    );
    assert!(primary.bootstrap.is_some() && primary.cuped.is_some());
    let share = r.linkable_share.expect("a published linkable share");
    assert!(share > 0.0 && share < 1.0);
    // k-anonymity on the windows and totals: every published window is empty, the primary
    // or at least k in each cell, and over the same devices two published windows differ
    // by at least k converters; every published total is at least k, and a group with a
    // hidden part hides two.
    let (kd, kc) = (r.params.k_devices, r.params.k_converters);
    eprintln!("suppressed windows: {:?}", r.suppressed_windows);
    let cells = |w: &attribution::estimate::WindowResult| {
        let c = &w.comparison;
        [
            c.exposed.devices,
            c.exposed.converters,
            c.control.devices,
            c.control.converters,
        ]
    };
    for w in &r.windows {
        let c = cells(w);
        assert!(
            w.primary || c[0] + c[2] == 0 || (c[0] >= kd && c[2] >= kd && c[1] >= kc && c[3] >= kc),
            "{} d: {c:?}",
            w.window_days
        );
    }
    for (a, b) in r.windows.iter().zip(r.windows.iter().skip(1)) {
        let (x, y) = (cells(a), cells(b));
        if x[0] == y[0] && x[2] == y[2] && x[0] > 0 {
            assert!(
                x[1].abs_diff(y[1]) >= kc && x[3].abs_diff(y[3]) >= kc,
                "{} d and {} d differ by a small cell: {x:?} {y:?}",
                a.window_days,
                b.window_days
            );
        }
    }
    let t = &r.totals;
    let group = [
        t.exposed_devices,
        t.control_devices,
        t.staff_devices,
        t.already_inside_devices,
        t.devices_without_a_clean_pass,
    ];
    assert!(
        group.iter().flatten().all(|&n| n == 0 || n >= kd),
        "{group:?}"
    );
    assert_ne!(group.iter().filter(|n| n.is_none()).count(), 1, "{group:?}");
    assert!(
        t.exposed_devices.is_some_and(|n| n >= c.exposed.devices),
        "the arms are published: {:?}",
        t.exposed_devices
    );
    // The placebo brand shows no lift, or has too few converters to be published.
    match primary.placebo_brand.as_ref() {
        Some(placebo) => assert!(placebo.newcombe.contains(0.0), "{:?}", placebo.newcombe),
        None => assert!(primary.placebo_suppressed, "a placebo brand"),
    }
    // Loyalty outcomes over every linked device of each arm, buyers or not (most members
    // buy nothing within a day; a join on receipts alone would see buyers only).
    let l = primary
        .loyalty
        .as_ref()
        .expect("loyalty-linked devices in both arms");
    eprintln!(
        "loyalty: linked {} / {}, buyers {} / {}, purchases per device {:.4} vs {:.4}, check {:.2} vs {:.2}",
        l.linked_exposed,
        l.linked_control,
        l.buyers_exposed,
        l.buyers_control,
        l.frequency_exposed,
        l.frequency_control,
        l.check_exposed,
        l.check_control
    );
    assert!(l.linked_exposed <= c.exposed.devices && l.linked_control <= c.control.devices);
    assert!(
        l.buyers_exposed < l.linked_exposed && l.buyers_control < l.linked_control,
        "buyers are a part of the members"
    );
    assert!(
        (l.frequency_difference.estimate - (l.frequency_exposed - l.frequency_control)).abs()
            < 1e-12
    );
    assert!(l.frequency_difference.interval.lo < l.frequency_difference.interval.hi);
    assert!(l.check_exposed > 0.0 && l.check_control > 0.0);
    // With a few dozen buyers, the revenue cap (their 99th percentile) is about one
    // person's receipts: not published.
    if l.buyers_exposed + l.buyers_control < 900 {
        assert_eq!(primary.revenue.winsorized_at, None);
    }
    // The conversion curves give away no small group of converters: every published
    // point, and every step between published points, is at least k converters.
    let w = r.windows.iter().find(|w| w.primary).expect("primary");
    for (arm, n) in [
        (1, w.comparison.exposed.devices),
        (2, w.comparison.control.devices),
    ] {
        let counts: Vec<u64> = r
            .curves
            .iter()
            .filter_map(|c| if arm == 1 { c.1 } else { c.2 })
            .map(|share| (share * n as f64).round() as u64)
            .collect();
        assert!(counts.len() >= 2, "arm {arm}: a curve to draw: {counts:?}");
        assert_eq!(counts[0], 0, "the origin");
        for pair in counts.windows(2) {
            assert!(
                pair[1] >= pair[0] + r.params.k_converters,
                "arm {arm}: a step of fewer than k converters: {counts:?}"
            );
        }
    }
    let html = std::fs::read_to_string(out.join("report.html")).expect("html");
    assert!(
        !html.contains("<img") && !html.contains("<script"),
        "imported markup reached the page as markup"
    );
    for text in [
        "acme&lt;img src=x onerror=alert(1)&gt;&amp;",
        "EUR&lt;script&gt;alert(1)&lt;/script&gt;",
    ] {
        assert!(html.contains(text), "the page shows {text} as text");
    }
    assert_eq!(html.matches("<svg").count(), 4, "four charts");
    // The page states the level the intervals were computed at.
    let mut p90 = p.clone();
    p90.confidence = 0.9;
    let out90 = dir.path().join("report-90");
    attribution::report::write(&attribution::report::build(&inputs, &p90), &out90).expect("write");
    let html90 = std::fs::read_to_string(out90.join("report.html")).expect("html");
    assert!(html.contains("95 % interval") && !html.contains("90 % interval"));
    assert!(
        html90.contains("90 % interval") && !html90.contains("95 %"),
        "the level"
    );
    assert!(html.contains("more often than devices that passed the same boards"));
    assert_eq!(
        html.contains("<b>Underpowered.</b>"),
        r.status == "underpowered",
        "the page says so when it is"
    );
    assert!(html.contains("purchases each at"), "the loyalty outcomes");
    assert!(
        html.contains("board-day cluster bootstrap;"),
        "the headline's method"
    );
    // The store-level estimate: the demo's four acme stores, each in one group, all with
    // traffic; four stores cannot give a 95 % interval, and the page says so.
    let g = &r.geo;
    let mut stores: Vec<&String> = g.treated.iter().chain(&g.control).collect();
    stores.sort();
    assert_eq!(
        stores,
        ["acme-001", "acme-002", "acme-003", "acme-004"],
        "{g:?}"
    );
    assert!(g.excluded.is_empty(), "{:?}", g.excluded);
    assert_eq!(g.interval, None, "{g:?}");
    if g.treated.is_empty() || g.control.is_empty() {
        assert!(html.contains("No store-level comparison"));
    } else {
        assert!(g.min_p > 0.05 && g.lift.is_some(), "{g:?}");
        assert!(html.contains("Too few stores for a store-level interval"));
        // Visitors counted in both periods, by both groups.
        assert!(
            g.treated_daily
                .iter()
                .chain(&g.control_daily)
                .all(|v| *v > 1.0),
            "{g:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("geo_stores.csv"))
            .expect("geo_stores.csv")
            .lines()
            .count(),
        5,
        "a header and the four stores"
    );
    for f in [
        "report.json",
        "windows.csv",
        "boards.csv",
        "daily.csv",
        "curves.csv",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
}
