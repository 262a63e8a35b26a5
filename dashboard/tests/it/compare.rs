//! The Compare and Campaigns pages against a real ClickHouse: stores side by side, one store
//! over two periods, the campaigns with their reports' headline, and the report itself.

use crate::util::{
    clickhouse, fill_campaigns, fill_store_detail, fill_stores, get, sign_in, start,
};

#[test]
fn stores_side_by_side_one_store_over_two_periods_and_the_campaigns() {
    let ch = clickhouse();
    let dir = tempfile::tempdir().expect("tempdir");
    fill_stores(&ch);
    fill_store_detail(&ch);
    fill_campaigns(&ch, dir.path());
    let d = start(dir.path(), &ch);
    let base = &d.base;
    let ana = sign_in(base, "ana", "ana's long password");
    let json = |path: &str| -> serde_json::Value {
        let (status, res) = get(&format!("{base}{path}"), Some(&ana));
        assert_eq!(status, 200, "{path}");
        serde_json::from_str(&res.into_string().expect("body")).expect("json")
    };

    // Two stores over one week: each column the Stores page's row, and visitors per day.
    let c = json("/compare.json?stores=acme-1,acme-2&from=2026-03-16&to=2026-03-22");
    let columns = c["columns"].as_array().expect("columns");
    assert_eq!(columns.len(), 2);
    let stores = json("/stores.json?from=2026-03-16&to=2026-03-22");
    for (col, name) in columns.iter().zip(["acme-1", "acme-2"]) {
        let row = stores["stores"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["store"] == name)
            .expect("the store's row");
        assert_eq!(col["figures"], *row, "{name}");
    }
    assert_eq!(columns[0]["days"][0], 60.0, "acme-1 on the 16th");
    assert_eq!(columns[1]["days"][5], 420.0, "acme-2 on Saturday the 21st");
    assert_eq!(columns[0]["days"].as_array().map(Vec::len), Some(7));
    assert!(
        columns[0]["days"][6].is_null(),
        "acme-1 has no data on the 22nd"
    );

    // One store over two weeks.
    let c = json(
        "/compare.json?stores=acme-2&from=2026-03-16&to=2026-03-22&from2=2026-03-23&to2=2026-03-29",
    );
    let columns = c["columns"].as_array().expect("columns");
    assert_eq!(
        (&columns[0]["from"], &columns[1]["from"]),
        (&"2026-03-16".into(), &"2026-03-23".into())
    );
    assert_eq!(
        columns[0]["figures"]["visitors"], 2584.0,
        "5 x 360 + 420 + 364"
    );
    assert_eq!(columns[1]["figures"]["visitors"], 2580.0, "6 x 360 + 420");
    let (status, res) = get(
        &format!("{base}/compare?stores=acme-2&from=2026-03-16&to=2026-03-22&from2=2026-03-23&to2=2026-03-29"),
        Some(&ana),
    );
    assert_eq!(status, 200);
    let html = res.into_string().expect("body");
    assert!(html.contains("<th>2026-03-16 to 2026-03-22</th><th>2026-03-23 to 2026-03-29</th>"));
    assert!(html.contains("<span class=\"v\">2584</span>"));
    assert!(html.contains("<span class=\"v\">2580</span>"));
    assert!(html.contains("<svg id=\"chart-compare\""));

    // Bad input: named, 4xx.
    for (q, status, msg) in [
        (
            "stores=acme-1,nowhere",
            404,
            "stores: \"nowhere\" is not a store you can see",
        ),
        (
            "stores=acme-1,acme-2&from2=2026-03-01&to2=2026-03-07",
            400,
            "stores: two periods compare one store, not 2",
        ),
        (
            "stores=acme-1&from2=2026-03-07&to2=2026-03-01",
            400,
            "from2: 2026-03-07 is after to2 (2026-03-01)",
        ),
        (
            "stores=a,b,c,d,e,f,g",
            400,
            "stores: at most 6 side by side, not 7",
        ),
    ] {
        let (got, res) = get(&format!("{base}/compare?{q}"), Some(&ana));
        assert_eq!(got, status, "{q}");
        assert_eq!(res.into_string().expect("body").trim(), msg, "{q}");
    }

    // Campaigns: the report's headline beside each campaign; the report itself, under its
    // own policy; another brand's campaign is not there for a brand-limited user.
    let c = json("/campaigns.json");
    let list = c["campaigns"].as_array().expect("campaigns");
    assert_eq!(list.len(), 2);
    let spring = list
        .iter()
        .find(|x| x["id"] == "acme-spring")
        .expect("spring");
    assert_eq!(
        (&spring["status"], &spring["window_days"]),
        (&"ok".into(), &1.into())
    );
    assert!((spring["lift_pp"].as_f64().expect("lift") - 1.42).abs() < 1e-9);
    let summer = list
        .iter()
        .find(|x| x["id"] == "bolt-summer")
        .expect("summer");
    assert_eq!(summer["status"], "no report");
    let (_, res) = get(&format!("{base}/campaigns"), Some(&ana));
    let html = res.into_string().expect("body");
    assert!(
        html.contains("+1.42 pp") && html.contains("+0.15 to +2.67 pp"),
        "{html}"
    );
    assert!(html.contains("href=\"/campaigns/report?id=acme-spring\""));
    let (status, res) = get(
        &format!("{base}/campaigns/report?id=acme-spring"),
        Some(&ana),
    );
    assert_eq!(status, 200);
    assert!(res
        .header("Content-Security-Policy")
        .is_some_and(|p| p.starts_with("default-src 'none'; style-src 'unsafe-inline'")));
    assert!(res
        .into_string()
        .expect("body")
        .contains("Did the campaign bring people"));
    for (id, status) in [("bolt-summer", 404), ("../acme-spring", 404), ("", 400)] {
        let (got, _) = get(&format!("{base}/campaigns/report?id={id}"), Some(&ana));
        assert_eq!(got, status, "{id:?}");
    }
    let bo = sign_in(base, "bo", "bo's long password!");
    let (_, res) = get(&format!("{base}/campaigns.json"), Some(&bo));
    let c: serde_json::Value =
        serde_json::from_str(&res.into_string().expect("body")).expect("json");
    assert_eq!(c["campaigns"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        get(
            &format!("{base}/campaigns/report?id=acme-spring"),
            Some(&bo)
        )
        .0,
        404
    );
}
