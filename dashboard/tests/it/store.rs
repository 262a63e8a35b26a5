//! The Store page and its CSV/JSON against a real ClickHouse whose figures are known
//! ([`fill_store_detail`]): per day and hour in the store's local time, the busy hours,
//! occupancy, dwell, new and returning visitors; unknown stores and bad parameters.

use crate::util::{clickhouse, fill_store_detail, fill_stores, get, sign_in, start};

#[test]
fn a_stores_page_shows_its_days_hours_occupancy_dwell_and_returning_visitors() {
    let ch = clickhouse();
    let dir = tempfile::tempdir().expect("tempdir");
    fill_stores(&ch);
    fill_store_detail(&ch);
    let d = start(dir.path(), &ch);
    let base = &d.base;
    let ana = sign_in(base, "ana", "ana's long password");
    let q = "site=acme-2&from=2026-03-16&to=2026-03-29";

    let (status, res) = get(&format!("{base}/store.json?{q}"), Some(&ana));
    assert_eq!(status, 200);
    let json: serde_json::Value =
        serde_json::from_str(&res.into_string().expect("body")).expect("json");
    let d0 = &json["detail"];
    // 14 days x 12 hours x 30, two Saturdays' 60 more at 17:00, 4 at 8:00 on the 18th.
    assert_eq!(d0["figures"]["visitors"], 5164.0);
    let days = d0["days"].as_array().expect("days");
    assert_eq!(days.len(), 14);
    assert_eq!(
        (&days[0]["date"], &days[0]["weekday"]),
        (&"2026-03-16".into(), &"Mon".into())
    );
    assert_eq!(days[0]["visitors"], 360.0);
    assert_eq!(days[5]["visitors"], 420.0, "Saturday");
    assert_eq!(days[2]["visitors"], 364.0);
    // The 18th at 8:00 (3 devices) is hidden, and 9:00 with it; hours without data are null.
    let hours = d0["hours"].as_array().expect("hours");
    assert_eq!(hours.len(), 14 * 24);
    let h18 = &hours[2 * 24..3 * 24];
    assert!(h18[8]["visitors"].is_null() && h18[9]["visitors"].is_null());
    assert_eq!(h18[10]["visitors"], 30.0);
    assert!(h18[3]["visitors"].is_null());
    assert_eq!(
        hours[24 * 13 + 20]["visitors"],
        30.0,
        "20:00 on the DST day"
    );
    let profile = d0["hour_profile"].as_array().expect("profile");
    assert!((profile[17].as_f64().expect("17:00") - 540.0 / 14.0).abs() < 1e-9);
    assert_eq!(profile[11], 30.0);
    assert_eq!(d0["peak_hours"], serde_json::json!([17, 10, 11]));
    assert_eq!(d0["weekday_hours"][5][17], 90.0, "Saturdays at 17:00");
    assert_eq!(d0["weekday_hours"][0][8], 0.0, "Mondays at 8:00");
    let shares: Vec<f64> = d0["dwell"]
        .as_array()
        .expect("dwell")
        .iter()
        .map(|b| b["share"].as_f64().expect("share"))
        .collect();
    assert_eq!(shares, [0.2, 0.4, 0.32, 0.08]);
    // Occupancy on the 29th in local time, and its latest 5 minutes.
    let occupancy = d0["occupancy"].as_array().expect("occupancy");
    assert_eq!(occupancy.len(), 44);
    assert_eq!(
        (&occupancy[0]["start"], &occupancy[0]["people"]),
        (&"09:00".into(), &12.0.into())
    );
    assert_eq!(d0["occupancy_latest"]["start"], "2026-03-29 19:55");
    assert_eq!(d0["occupancy_latest"]["hi"], 10.0);
    // Returning: 85 linkable visitor devices, 20 seen on the 1st; 25 visited twice.
    let r = &d0["returning"];
    assert_eq!(
        (&r["linkable_devices"], &r["new"], &r["returning"]),
        (&85.into(), &65.into(), &20.into())
    );
    assert_eq!(r["frequency"][0], serde_json::json!(["1", 60]));
    assert_eq!(r["frequency"][1], serde_json::json!(["2", 25]));

    // The page shows the same figures, and its charts.
    let (status, res) = get(&format!("{base}/store?{q}"), Some(&ana));
    assert_eq!(status, 200);
    let html = res.into_string().expect("body");
    for (id, text) in [
        ("visitors", "5164"),
        ("peak_hours", "17:00–18:00, 10:00–11:00, 11:00–12:00"),
        ("latest", "7 people (95 %: 5–10) at 2026-03-29 19:55"),
        ("new", "65"),
        ("returning_devices", "20"),
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\">{text}<")),
            "{id}: {text}"
        );
    }
    for chart in [
        "chart-days",
        "chart-hours",
        "chart-occupancy",
        "chart-profile",
        "chart-heatmap",
        "chart-dwell",
    ] {
        assert!(html.contains(&format!("<svg id=\"{chart}\"")), "{chart}");
    }
    assert!(html.contains("class=\"band\""), "occupancy's interval");

    // CSV: one table at a time.
    let (status, res) = get(&format!("{base}/store.csv?{q}&table=days"), Some(&ana));
    assert_eq!(status, 200);
    let csv = res.into_string().expect("body");
    assert_eq!(csv.lines().count(), 15, "{csv}");
    // 350 stays on the Saturday, 1.2 people each: the exact Poisson interval (scipy's chi2).
    assert!(
        csv.contains("2026-03-21,Sat,420.00,377.15,466.39,1440.00"),
        "{csv}"
    );

    // Bad input: a clear 4xx naming what was wrong, never a 500 or ClickHouse's words.
    let bo = sign_in(base, "bo", "bo's long password!");
    for (cookie, query, status, msg) in [
        (
            &ana,
            "site=nowhere".to_owned(),
            404,
            "site: \"nowhere\" is not a store you can see",
        ),
        (
            &ana,
            "site=board-1".to_owned(),
            404,
            "site: \"board-1\" is not a store you can see",
        ),
        (
            &ana,
            "site=x%27%3B%20DROP".to_owned(),
            404,
            "site: \"x'; DROP\" is not a store you can see",
        ),
        (
            &bo,
            q.to_owned(),
            404,
            "site: \"acme-2\" is not a store you can see",
        ),
        (
            &ana,
            "from=2026-03-01".to_owned(),
            400,
            "site: missing (which store?)",
        ),
        (
            &ana,
            "site=acme-2&from=2026-03-29&to=2026-03-16".to_owned(),
            400,
            "from: 2026-03-29 is after to (2026-03-16)",
        ),
        (
            &ana,
            "site=acme-2&from=2016-03-01&to=2026-03-01".to_owned(),
            400,
            "from, to: 2016-03-01 to 2026-03-01 is more than 366 days",
        ),
        (
            &ana,
            "site=acme-2&to=soon".to_owned(),
            400,
            "to: \"soon\" is not a date (YYYY-MM-DD)",
        ),
    ] {
        let (got, res) = get(&format!("{base}/store?{query}"), Some(cookie));
        assert_eq!(got, status, "{query}");
        assert_eq!(res.into_string().expect("body").trim(), msg, "{query}");
    }
    let (got, res) = get(&format!("{base}/store.csv?{q}&table=weeks"), Some(&ana));
    assert_eq!(got, 400);
    assert!(res
        .into_string()
        .expect("body")
        .starts_with("table: \"weeks\" is not one of"));
}
