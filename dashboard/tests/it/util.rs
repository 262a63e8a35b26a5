//! What every dashboard test needs: the schema in a real ClickHouse, the binary serving
//! it with two users, and an HTTP client that keeps redirects and errors for the test.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use testkit::{free_port, wait_for, ClickHouse};

/// A ClickHouse with the collector's schema.
pub fn clickhouse() -> ClickHouse {
    let ch = ClickHouse::start();
    migrate(&ch.url());
    ch
}

/// The collector's schema on the ClickHouse at `clickhouse` (lines of the [clickhouse]
/// section may follow the URL).
pub fn migrate(clickhouse: &str) {
    let cfg = collector::config::Config::parse(&format!(
        "version = 1\n[clickhouse]\nurl = \"{clickhouse}\"\n"
    ))
    .expect("config");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(collector::migrate::migrate(cfg.clickhouse()))
        .expect("migrate");
}

/// The dashboard process, stopped when dropped.
pub struct Dashboard {
    child: Child,
    pub base: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_footfall-dashboard")
}

pub fn add_user(users: &Path, name: &str, password: &str, brands: &str) {
    let mut args = vec!["add-user", "--users", users.to_str().expect("utf-8"), name];
    if !brands.is_empty() {
        args.extend(["--brands", brands]);
    }
    let mut child = Command::new(bin())
        .args(&args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("add-user");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("password");
    assert!(child.wait().expect("wait").success());
}

pub fn start(dir: &Path, ch: &ClickHouse) -> Dashboard {
    start_on(dir, &ch.url())
}

/// As [`start`], on the ClickHouse at `clickhouse` (lines of the [clickhouse] section may
/// follow the URL).
pub fn start_on(dir: &Path, clickhouse: &str) -> Dashboard {
    let key = dir.join("session.key");
    std::fs::write(&key, (0..64u8).collect::<Vec<u8>>()).expect("key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("mode");
    let users = dir.join("users");
    add_user(&users, "ana", "ana's long password", "");
    add_user(&users, "bo", "bo's long password!", "bolt-cola");
    let port = free_port();
    let cfg = dir.join("dashboard.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[clickhouse]\nurl = \"{clickhouse}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
             [auth]\nusers_file = \"{}\"\nsession_key_file = \"{}\"\n[privacy]\nmin_devices = 20\ncount_min_devices = 15\n\
             [reports]\ndir = \"{}\"\n",
            users.display(),
            key.display(),
            dir.join("reports").display()
        ),
    )
    .expect("config");
    let child = Command::new(bin())
        .args(["serve", "--config", cfg.to_str().expect("utf-8")])
        .spawn()
        .expect("serve");
    let base = format!("http://127.0.0.1:{port}");
    let d = Dashboard { child, base };
    wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("the dashboard listens");
    d
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).build()
}

/// Status, headers we look at, body.
pub fn get(url: &str, cookie: Option<&str>) -> (u16, ureq::Response) {
    let mut r = agent().get(url);
    if let Some(c) = cookie {
        r = r.set("Cookie", c);
    }
    match r.call() {
        Ok(res) => (res.status(), res),
        Err(ureq::Error::Status(code, res)) => (code, res),
        Err(e) => panic!("{url}: {e}"),
    }
}

pub fn post(
    url: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, ureq::Response) {
    let mut r = agent().post(url);
    if let Some(c) = cookie {
        r = r.set("Cookie", c);
    }
    if let Some(o) = origin {
        r = r.set("Origin", o);
    }
    match r.send_form(form) {
        Ok(res) => (res.status(), res),
        Err(ureq::Error::Status(code, res)) => (code, res),
        Err(e) => panic!("{url}: {e}"),
    }
}

pub fn sign_in(base: &str, user: &str, password: &str) -> String {
    let (status, res) = post(
        &format!("{base}/login"),
        None,
        None,
        &[("user", user), ("password", password), ("next", "/stores")],
    );
    assert_eq!(status, 303, "{user}");
    let set = res
        .header("Set-Cookie")
        .expect("a session cookie")
        .to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(set.contains(attr), "{set}");
    }
    set.split(';').next().expect("name=value").to_owned()
}

/// Sites and traffic whose figures are known: acme-1 has 60 visitors (30 devices) and 240
/// passers-by a day from 2026-03-07 to 2026-03-20, except 50 visitors a day in the first
/// week; bolt-1 has 5 devices on two days (under the threshold of 15 for counts); acme-2 nothing.
pub fn fill_stores(ch: &ClickHouse) {
    ch.query(
        "INSERT INTO footfall.sites (site_id, kind, brand, lat, lon, tz, capture_rate, open_hour, \
         close_hour, rssi_threshold_dbm, min_dwell_secs, imported_ms) VALUES \
         ('acme-1', 'store', 'acme', 52.5, 13.4, 'Europe/Berlin', 0.43, 8, 21, -70, 180, 1), \
         ('acme-2', 'store', 'acme', 52.5, 13.4, 'Europe/Berlin', 0, 8, 21, -70, 180, 1), \
         ('bolt-1', 'store', 'bolt-cola', 52.5, 13.4, 'UTC', 0, 8, 21, -70, 180, 1), \
         ('board-1', 'billboard', '', 52.5, 13.4, 'UTC', 0, 6, 24, -75, 0, 1)",
    );
    let mut rows = Vec::new();
    for d in 7..=20 {
        let visitors = if d <= 13 { 50.0 } else { 60.0 };
        rows.push(format!(
            "('acme-1', '2026-03-{d:02}', 10, 0, {visitors}, 240, 30, 120, 400, 0, 1, 5, 15, 8, 2, 0.43, 'v', 0, 1)"
        ));
    }
    for d in [15, 16] {
        rows.push(format!(
            "('bolt-1', '2026-03-{d:02}', 10, 0, 12, 40, 5, 20, 60, 0, 0, 1, 2, 2, 0, 0, 'v', 0, 1)"
        ));
    }
    insert_traffic(ch, &rows);
}

/// Sensors of acme-1 and bolt-1 (after [`fill_stores`]) whose health is known: s-a a minute ago,
/// online, a spool of 3 batches, two refusals in the last day, 2 batches missing in the last
/// day; s-b online but two hours ago, no batch missing; s-c its Last Will a minute ago; s-d
/// never heard.
pub fn fill_sensors(ch: &ClickHouse) {
    ch.query(
        "INSERT INTO footfall.sensors (sensor_id, site_id, kind, lat, lon, imported_ms) VALUES \
         ('s-a', 'acme-1', 'store', 0, 0, 1), ('s-b', 'bolt-1', 'store', 0, 0, 1), \
         ('s-c', 'acme-1', 'store', 0, 0, 1), ('s-d', 'acme-1', 'store', 0, 0, 1)",
    );
    // s-a: a minute ago, online, a spool of 3 batches; s-b: online, but two hours ago;
    // s-c: its Last Will a minute ago (an earlier status said online); s-d: never.
    let status = |sensor: &str, ago_secs: u32, online: u8, spool: u32, synced: u8| {
        format!(
            "('{sensor}', today(), toUInt64(now()) * 1000 - {ago_secs}000, 'x', {online}, 100, \
             5000, 7, 0, {spool}, {}, 0, 1, {synced}, 0)",
            spool * 2048
        )
    };
    ch.query(&format!(
        "INSERT INTO footfall.sensor_status (sensor, day, at_ms, site, online, uptime_secs, \
         frames_captured, frames_dropped, frames_malformed, spool_batches, spool_bytes, \
         spool_dropped_batches, config_version, clock_synced, received_ms) VALUES {}",
        [
            status("s-a", 60, 1, 3, 1),
            status("s-b", 7200, 1, 0, 0),
            status("s-c", 600, 1, 0, 1),
            status("s-c", 60, 0, 0, 1),
        ]
        .join(", ")
    ));
    // Refused from s-a: two malformed messages this hour, one two days ago (not counted).
    ch.query(
        "INSERT INTO footfall.rejected (day, reason, topic, payload_hash, received_ms, detail, \
         payload, payload_bytes) VALUES \
         (today(), 'malformed_json', 'footfall/v1/acme-1/s-a/sightings', 1, toUInt64(now()) * 1000 - 60000, '', '', 3), \
         (today(), 'malformed_json', 'footfall/v1/acme-1/s-a/sightings', 2, toUInt64(now()) * 1000 - 120000, '', '', 3), \
         (today() - 2, 'malformed_json', 'footfall/v1/acme-1/s-a/sightings', 3, toUInt64(now()) * 1000 - 172800000, '', '', 3)",
    );
    // Batches of sightings stored (the collector writes a row for each). s-a sent 10, 11,
    // 13, 14 and 16 in the last hours (12 and 15 missing), 8 25 hours ago and 5 two days
    // ago (not in the last day, or 9 or 6-9 would be missing too); s-b sent 1, 2 and 3.
    let batch = |sensor: &str, site: &str, seq: u32, sent_ago_secs: u32| {
        let sent = format!("toInt64(toUInt64(now()) - {sent_ago_secs}) * 1000");
        format!("('{site}', toDate(toUInt16(intDiv({sent}, 86400000))), '{sensor}', {seq}, {sent})")
    };
    let rows = [
        batch("s-a", "acme-1", 5, 172_800),
        batch("s-a", "acme-1", 8, 90_000),
        batch("s-a", "acme-1", 10, 7200),
        batch("s-a", "acme-1", 11, 7000),
        batch("s-a", "acme-1", 13, 6000),
        batch("s-a", "acme-1", 14, 5000),
        batch("s-a", "acme-1", 16, 60),
        batch("s-b", "bolt-1", 1, 9000),
        batch("s-b", "bolt-1", 2, 8000),
        batch("s-b", "bolt-1", 3, 7500),
    ];
    // Twice, as a redelivery would: the same batches, nothing more missing.
    for _ in 0..2 {
        ch.query(&format!(
            "INSERT INTO footfall.batches (site, day, sensor, seq, sent_ms) VALUES {}",
            rows.join(", ")
        ));
    }
}

/// acme-2 (Europe/Berlin, after [`fill_stores`]) from 2026-03-16 to 2026-03-29, whose figures
/// are known: 30 visitors (25 devices) and 120 passers-by (60) in each hour from 9:00 to
/// 20:00, 90 visitors (75 devices) at 17:00 on Saturdays, 4 (3 devices) at 8:00 on the 18th;
/// visitor stays by dwell 5, 10, 8, 2 an hour. Occupancy: 12 people (9-15) per 15 minutes from
/// 9:00 to 20:00 on the 29th (a DST day), and 7 (5-10) in the 5 minutes from 19:55. Visits of
/// global addresses: 60 devices once in the period (20 of them also on the 1st), 25 devices
/// twice; beside them randomized visitors, global passers-by and a retracted visit, which
/// are not followed.
pub fn fill_store_detail(ch: &ClickHouse) {
    use chrono::{Datelike, TimeZone};
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().expect("tz");
    let at = |date: chrono::NaiveDate, h: u32, m: u32| {
        berlin
            .from_local_datetime(&date.and_hms_opt(h, m, 0).expect("time"))
            .single()
            .expect("a local time")
            .timestamp_millis()
    };
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 3, d).expect("date");
    let mut rows = Vec::new();
    for d in 16..=29 {
        let date = day(d);
        for h in 8..=20 {
            let (v, vd) = match (h, d) {
                (8, 18) => (4.0, 3),
                (8, _) => continue,
                (17, _) if date.weekday() == chrono::Weekday::Sat => (90.0, 75),
                _ => (30.0, 25),
            };
            let dwell = if h == 8 { (0, 0, 0, 0) } else { (5, 10, 8, 2) };
            rows.push(format!(
                "('acme-2', '{date}', {h}, {}, {v}, 120, {vd}, 60, 200, 0, 0, {}, {}, {}, {}, 0, 'v', 0, 1)",
                at(date, h, 0),
                dwell.0,
                dwell.1,
                dwell.2,
                dwell.3
            ));
        }
    }
    insert_traffic(ch, &rows);
    let mut windows = Vec::new();
    for q in 0..44 {
        let start = at(day(29), 9, 0) + q * 900_000;
        windows.push(format!(
            "('acme-2', toDate(toDateTime(intDiv({start}, 1000))), 15, {start}, 12, 9, 15, 5, 20, 0, 'v', 0, 1)"
        ));
    }
    let late = at(day(29), 19, 55);
    windows.push(format!(
        "('acme-2', toDate(toDateTime(intDiv({late}, 1000))), 5, {late}, 7, 5, 10, 10, 15, 0, 'v', 0, 1)"
    ));
    let early = at(day(29), 19, 50);
    windows.push(format!(
        "('acme-2', toDate(toDateTime(intDiv({early}, 1000))), 5, {early}, 9, 6, 12, 10, 15, 0, 'v', 0, 1)"
    ));
    ch.query(&format!(
        "INSERT INTO footfall.occupancy (site, day, window_mins, start_ms, people, lo, hi, \
         global_devices, randomized_devices, fixtures, estimator, calibrated, version) VALUES {}",
        windows.join(", ")
    ));
    let mut visits = Vec::new();
    let mut visit = |device: u32,
                     date: chrono::NaiveDate,
                     class: &str,
                     kind: &str,
                     retracted: u8| {
        let first = at(date, 10, 0);
        visits.push(format!(
            "('acme-2', '{date}', {device}, {}, 1, '{class}', 0, {first}, {}, 600, -50, 3, '{kind}', {retracted}, 1)",
            visits.len(),
            first + 600_000
        ));
    };
    for device in 1..=60 {
        visit(device, day(20), "global", "visitor", 0);
        if device <= 20 {
            visit(device, day(1), "global", "visitor", 0);
        }
    }
    for device in 61..=85 {
        visit(device, day(20), "global", "visitor", 0);
        visit(device, day(22), "global", "visitor", 0);
    }
    for device in 100..=199 {
        visit(device, day(21), "local", "visitor", 0);
    }
    for device in 200..=229 {
        visit(device, day(21), "global", "passer_by", 0);
    }
    visit(300, day(21), "global", "visitor", 1);
    ch.query(&format!(
        "INSERT INTO footfall.visits (site, day, device, visit_id, epoch, class, fingerprint, \
         first_ms, last_ms, dwell_secs, rssi_max, sightings, kind, retracted, version) VALUES {}",
        visits.join(", ")
    ));
}

/// Two campaigns: acme's spring flight, whose report (status ok, +1.42 pp in [+0.15, +2.67]
/// over 1 day) is in `<dir>/reports/acme-spring/`, and bolt-cola's, without a report yet.
pub fn fill_campaigns(ch: &ClickHouse, dir: &Path) {
    ch.query(
        "INSERT INTO footfall.campaigns (campaign_id, brand, creative_id, boards, start_ms, end_ms, \
         spend, currency, window_days, slot_secs, loop_slots, slots_per_loop, imported_ms) VALUES \
         ('acme-spring', 'acme', 'acme-01', ['board-1', 'board-2'], 1773014400000, 1773619200000, \
          40000, 'EUR', 14, 10, 12, 1, 1), \
         ('bolt-summer', 'bolt-cola', 'bolt-01', ['board-1'], 1780000000000, 1780600000000, \
          9000, 'EUR', 14, 10, 12, 1, 1)",
    );
    let report = dir.join("reports/acme-spring");
    std::fs::create_dir_all(&report).expect("mkdir");
    std::fs::write(
        report.join("report.json"),
        r#"{"status": "ok", "windows": [{"window_days": 1, "primary": true, "comparison":
            {"difference": 0.0142, "newcombe": {"lo": 0.0015, "hi": 0.0267}}}]}"#,
    )
    .expect("report.json");
    std::fs::write(
        report.join("report.html"),
        "<!doctype html><html lang=\"en\"><head><title>Campaign lift: acme-spring</title>\
         <style>body{font:15px system-ui}</style></head><body><h1>Did the campaign bring people \
         to the stores?</h1><p class=\"headline\">+1.42 pp</p></body></html>",
    )
    .expect("report.html");
}

/// `rows`: `traffic` rows as SQL tuples, in the table's column order.
fn insert_traffic(ch: &ClickHouse, rows: &[String]) {
    ch.query(&format!(
        "INSERT INTO footfall.traffic (site, day, local_hour, hour_ms, visitors, passers_by, \
         visitor_devices, passer_by_devices, addresses, unlinked_devices, fixtures, dwell_under_5, \
         dwell_5_20, dwell_20_60, dwell_over_60, capture_rate, estimator, calibrated, version) \
         VALUES {}",
        rows.join(", ")
    ));
}
