//! The Sensors page against a real ClickHouse: offline sensors first (silent too long, or
//! their Last Will), spool depth, frames dropped, clock sync, refusals and batches missing in
//! the last day.

use crate::util::{clickhouse, fill_sensors, fill_stores, get, sign_in, start};

#[test]
fn offline_sensors_come_first_with_their_health_and_refusals() {
    let ch = clickhouse();
    let dir = tempfile::tempdir().expect("tempdir");
    fill_stores(&ch);
    fill_sensors(&ch);
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
        (a[7], a[8], a[10], a[11], a[12]),
        ("3", "6144", "true", "malformed_json=2", "2")
    );
    let missing: Vec<&str> = rows.iter().map(|r| r[12]).collect();
    assert_eq!(missing, ["0", "0", "0", "2"], "{csv}");
    assert_eq!(rows[0][10], "false", "s-b's clock");
    assert_eq!(rows[2][3], "", "s-d never sent a status");
    let (_, res) = get(&format!("{}/sensors", d.base), Some(&ana));
    let html = res.into_string().expect("body");
    assert!(html.contains("Sensors: 3 offline of 4"), "{html}");
    // s-a's row as people read it: spool, refusals; s-d never heard.
    let row = |sensor: &str| {
        html.split("<tr>")
            .find(|r| r.contains(&format!("<td>{sensor}</td>")))
            .unwrap_or_else(|| panic!("{sensor}'s row: {html}"))
            .to_owned()
    };
    let a = row("s-a");
    assert!(a.contains("<td>3 batches, 6 KiB</td>"), "{a}");
    assert!(a.contains("<td>malformed_json: 2</td>"), "{a}");
    assert!(a.contains("<td class=\"error\">2</td>"), "{a}");
    assert!(row("s-b").contains("<td>0</td>\n</tr>"), "{html}");
    assert!(row("s-d").contains("<td>never</td>"), "{html}");
    // A user limited to bolt-cola sees its sensor only.
    let bo = sign_in(&d.base, "bo", "bo's long password!");
    let (_, res) = get(&format!("{}/sensors.json", d.base), Some(&bo));
    let json: serde_json::Value =
        serde_json::from_str(&res.into_string().expect("body")).expect("json");
    assert_eq!(json["sensors"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["sensors"][0]["sensor"], "s-b");
}
