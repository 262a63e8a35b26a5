//! The Stores page and its CSV/JSON against a real ClickHouse holding the collector's schema,
//! with traffic rows whose sums are known; sign-in, sessions, brand limits, bad parameters.

use std::process::Command;

use crate::util::{bin, clickhouse, fill_stores, get, post, sign_in, start};

#[test]
fn signed_in_analysts_see_each_stores_figures_and_the_same_in_csv_and_json() {
    let ch = clickhouse();
    let dir = tempfile::tempdir().expect("tempdir");
    fill_stores(&ch);
    let d = start(dir.path(), &ch);
    let base = &d.base;
    let period = "from=2026-03-14&to=2026-03-20";

    // Not signed in: to the sign-in page, and back to the page asked for afterwards.
    let (status, res) = get(&format!("{base}/stores?{period}"), None);
    assert_eq!(status, 303);
    assert_eq!(
        res.header("Location"),
        Some("/login?next=/stores%3Ffrom%3D2026-03-14%26to%3D2026-03-20")
    );
    let (status, res) = post(
        &format!("{base}/login"),
        None,
        None,
        &[("user", "ana"), ("password", "not ana's password")],
    );
    assert_eq!(status, 401);
    assert!(res
        .into_string()
        .expect("body")
        .contains("Wrong user name or password."));

    let ana = sign_in(base, "ana", "ana's long password");
    let (status, res) = get(&format!("{base}/stores?{period}"), Some(&ana));
    assert_eq!(status, 200);
    for (h, v) in [
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "no-store"),
    ] {
        assert_eq!(res.header(h), Some(v), "{h}");
    }
    assert!(res
        .header("Content-Security-Policy")
        .is_some_and(|c| c.contains("frame-ancestors 'none'")));
    // The time the page spent in ClickHouse, and the rest, for the browser's tools and the
    // bench.
    let timing = res
        .header("Server-Timing")
        .expect("Server-Timing")
        .to_owned();
    let db: f64 = timing
        .strip_prefix("db;dur=")
        .and_then(|t| t.split(';').next())
        .and_then(|t| t.parse().ok())
        .expect("db;dur=MS");
    assert!(db > 0.0 && timing.contains(", app;dur="), "{timing}");
    let html = res.into_string().expect("body");
    // acme-1: 7 x 60 visitors, 7 x 240 passers-by, capture 25 %, +20 % on the week before
    // (350), and the 20th against the 13th (+20 %); median dwell in 5-20 min.
    let acme1 = html
        .split("<tr>")
        .find(|r| r.contains(">acme-1</a></td>"))
        .expect("acme-1's row");
    for cell in ["420", "1680", "25.0 %", "5-20 min", "+20 %"] {
        assert!(acme1.contains(cell), "{cell} in {acme1}");
    }
    let bolt = html
        .split("<tr>")
        .find(|r| r.contains(">bolt-1</a></td>"))
        .expect("bolt-1's row");
    assert!(
        !bolt.contains("24") && bolt.contains("—"),
        "suppressed: {bolt}"
    );
    assert!(!html.contains("board-1"), "boards are not stores");
    assert!(html.contains("href=\"/definitions#visitor\""));

    let (status, res) = get(
        &format!("{base}/stores.csv?{period}&sort=visitors&order=desc"),
        Some(&ana),
    );
    assert_eq!(status, 200);
    let csv = res.into_string().expect("body");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "store,brand,visitors,visitors_lo,visitors_hi,passers_by,passers_by_lo,passers_by_hi,capture_rate,median_dwell_min,change_previous,last_day,change_week,capture_corrected"
    );
    // 210 and 840 stays, two people each: the exact Poisson intervals (scipy's chi2) doubled.
    assert_eq!(
        lines[1],
        "acme-1,acme,420.0,365.1,480.8,1680.0,1568.3,1797.6,0.2500,5-20,0.2000,60.0,0.2000,true"
    );
    assert_eq!(lines.len(), 4, "{csv}");
    let (_, res) = get(
        &format!("{base}/stores.json?{period}&brand=bolt-cola"),
        Some(&ana),
    );
    let json: serde_json::Value =
        serde_json::from_str(&res.into_string().expect("body")).expect("json");
    assert_eq!(json["stores"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["stores"][0]["store"], "bolt-1");
    assert!(json["stores"][0]["visitors"].is_null());

    // A bad parameter: 400 naming it.
    for (q, msg) in [
        (
            "from=2026-03-32",
            "from: \"2026-03-32\" is not a date (YYYY-MM-DD)",
        ),
        (
            "from=2026-03-20&to=2026-03-01",
            "from: 2026-03-20 is after to (2026-03-01)",
        ),
        (
            "sort=size",
            "sort: \"size\" is not one of store, visitors, passers_by, capture, change",
        ),
    ] {
        let (status, res) = get(&format!("{base}/stores?{q}"), Some(&ana));
        assert_eq!(status, 400, "{q}");
        assert_eq!(res.into_string().expect("body").trim(), msg);
    }

    // A user limited to a brand sees only its stores, and not another brand's by asking.
    let bo = sign_in(base, "bo", "bo's long password!");
    let (_, res) = get(&format!("{base}/stores.csv?{period}"), Some(&bo));
    let csv = res.into_string().expect("body");
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains("bolt-1"));
    let (status, _) = get(&format!("{base}/stores?{period}&brand=acme"), Some(&bo));
    assert_eq!(status, 403);

    // A forged or altered cookie is no session; a form from another origin, or without the
    // session's token, is refused; signing out ends the session.
    let forged = ana.replace("ana", "bo");
    assert_eq!(get(&format!("{base}/stores"), Some(&forged)).0, 303);
    let (status, _) = post(
        &format!("{base}/logout"),
        Some(&ana),
        Some("https://evil.example"),
        &[("csrf", "x")],
    );
    assert_eq!(status, 403);
    let (status, _) = post(
        &format!("{base}/logout"),
        Some(&ana),
        None,
        &[("csrf", "wrong")],
    );
    assert_eq!(status, 403);
    let (status, res) = get(&format!("{base}/stores"), Some(&ana));
    assert_eq!(status, 200);
    let html = res.into_string().expect("body");
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("the form's token");
    let (status, res) = post(
        &format!("{base}/logout"),
        Some(&ana),
        None,
        &[("csrf", token)],
    );
    assert_eq!(status, 303);
    assert!(res
        .header("Set-Cookie")
        .is_some_and(|c| c.contains("footfall_session=;")));
    // The signed-out session's cookie, kept by someone, opens nothing any more.
    assert_eq!(get(&format!("{base}/stores"), Some(&ana)).0, 303);

    // Guessing: five wrong passwords lock the name for a while, the right one included.
    for _ in 0..5 {
        let (status, _) = post(
            &format!("{base}/login"),
            None,
            None,
            &[("user", "bo"), ("password", "a guess at bo's password")],
        );
        assert_eq!(status, 401);
    }
    let (status, res) = post(
        &format!("{base}/login"),
        None,
        None,
        &[("user", "bo"), ("password", "bo's long password!")],
    );
    assert_eq!(status, 429);
    assert!(res
        .into_string()
        .expect("body")
        .contains("Too many failed sign-ins for this user: try again in 15 min."));
}

#[test]
fn a_bad_configuration_names_its_field_and_exits_78() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "version = 1\n[http]\nlisten = \"everywhere\"\n").expect("write");
    let o = Command::new(bin())
        .args(["check-config", cfg.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&o.stderr).contains("http.listen"));
}
