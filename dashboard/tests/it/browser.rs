//! The dashboard in a real browser: Debian's Chromium driven through chromedriver
//! (WebDriver). Signs in, opens every page, and checks what a user would see: the numbers on
//! screen equal the JSON endpoints and ClickHouse's own sums, the charts are drawn, the
//! browser logs no error (a script, style or image refused by the Content-Security-Policy
//! would log one), and a wrong password or a missing session gets no page. Screenshots of
//! each page go to `target/tmp/dashboard-browser/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use testkit::{free_port, wait_for, ClickHouse};

use crate::util::{
    clickhouse, fill_campaigns, fill_sensors, fill_store_detail, fill_stores, get, sign_in, start,
};

/// chromedriver on a free loopback port, stopped when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start(log: &Path) -> ChromeDriver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("chromedriver (deploy/setup.sh installs chromium-driver)");
        wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .expect("chromedriver listens");
        ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium with a fresh profile, no network but loopback's, and its console log
/// kept for [`BrowserLog`].
async fn browser(driver: &ChromeDriver, profile: &Path) -> Client {
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1600", format!("--user-data-dir={}", profile.display()),
            ],
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!("an object")
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// chromedriver's console log since the last read (not in the W3C protocol: Chromium's own
/// command, as Selenium's `get_log('browser')` uses it).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// The console's errors since the last call.
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser's log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].to_string())
        .collect()
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Opens `path`, checks that the browser logged no error and that every chart is drawn (an
/// SVG with marks: a non-empty line, bars or cells), saves a screenshot; returns the charts'
/// count.
async fn open(c: &Client, base: &str, path: &str, shots: &Path, name: &str) -> usize {
    c.goto(&format!("{base}{path}")).await.expect("goto");
    let charts = c.find_all(Locator::Css("svg.chart")).await.expect("charts");
    for chart in &charts {
        let id = chart.attr("id").await.expect("id").unwrap_or_default();
        let marks = chart
            .find_all(Locator::Css("path.line, rect.bar, rect.cell, circle"))
            .await
            .expect("marks");
        let mut drawn = 0;
        for m in &marks {
            let d = m.attr("d").await.expect("d").unwrap_or_default();
            let (_, _, w, h) = m.rectangle().await.expect("box");
            // A line has length (a flat one no height); bars, cells and dots an area.
            let visible = if m.tag_name().await.expect("tag") == "path" {
                !d.is_empty() && w + h > 0.0
            } else {
                w * h > 0.0
            };
            if visible {
                drawn += 1;
            }
        }
        assert!(drawn > 0, "{path}: chart {id} is empty");
    }
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(shots.join(format!("{name}.png")), png).expect("write screenshot");
    let errors = console_errors(c).await;
    assert!(errors.is_empty(), "{path}: the browser logged {errors:?}");
    charts.len()
}

fn json(base: &str, path: &str, cookie: &str) -> serde_json::Value {
    let (status, res) = get(&format!("{base}{path}"), Some(cookie));
    assert_eq!(status, 200, "{path}");
    serde_json::from_str(&res.into_string().expect("body")).expect("json")
}

#[test]
fn an_analyst_signs_in_and_every_page_shows_the_endpoints_figures_in_chromium() {
    let ch = clickhouse();
    let dir = tempfile::tempdir().expect("tempdir");
    fill_stores(&ch);
    fill_store_detail(&ch);
    fill_sensors(&ch);
    fill_campaigns(&ch, dir.path());
    let d = start(dir.path(), &ch);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(pages(&ch, &d.base, dir.path()));
}

async fn pages(ch: &ClickHouse, base: &str, dir: &Path) {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let driver = ChromeDriver::start(&dir.join("chromedriver.log"));
    let c = browser(&driver, &dir.join("profile")).await;
    let period = "from=2026-03-14&to=2026-03-20";

    // No session: the sign-in page, whatever was asked for.
    c.goto(&format!("{base}/stores?{period}"))
        .await
        .expect("goto");
    assert_eq!(c.current_url().await.expect("url").path(), "/login");
    // A wrong password: refused, still the sign-in page.
    let sign = |user: &'static str, password: &'static str| {
        let c = c.clone();
        async move {
            let form = c.form(Locator::Css("form")).await.expect("the form");
            form.set_by_name("user", user).await.expect("user");
            form.set_by_name("password", password)
                .await
                .expect("password");
            form.submit().await.expect("submit");
            // The answer: another page, or the form again with its message (a loaded machine
            // takes its time to check a password).
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let url = c.current_url().await.expect("url");
                let message = match c.find(Locator::Css("main")).await {
                    Ok(main) => main.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                if url.path() != "/login" || message.contains("Wrong user name or password.") {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no answer to the sign-in within 20 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    sign("ana", "not ana's password").await;
    assert_eq!(c.current_url().await.expect("url").path(), "/login");
    assert!(text(&c, "main")
        .await
        .contains("Wrong user name or password."));
    let _ = console_errors(&c).await; // the 401 is logged as a failed load: expected
    sign("ana", "ana's long password").await;
    let url = c.current_url().await.expect("url");
    assert_eq!(
        (url.path(), url.query()),
        ("/stores", Some(period)),
        "back to the page asked for"
    );
    let cookie = sign_in(base, "ana", "ana's long password");

    // Stores: each row's visitors on screen = the JSON's = ClickHouse's sum.
    open(&c, base, &format!("/stores?{period}"), &shots, "stores").await;
    let stores = json(base, &format!("/stores.json?{period}"), &cookie);
    for s in stores["stores"].as_array().expect("stores") {
        let name = s["store"].as_str().expect("name");
        let row = c
            .find(Locator::XPath(&format!(
                "//table[@id='stores']//tr[td/a[text()='{name}']]"
            )))
            .await
            .expect("the store's row");
        let cells = row.find_all(Locator::Css("td")).await.expect("cells");
        let shown = cells[2].find(Locator::Css(".v")).await.expect("visitors");
        let expected = s["visitors"]
            .as_f64()
            .map_or("—".to_owned(), |v| format!("{v:.0}"));
        assert_eq!(shown.text().await.expect("text"), expected, "{name}");
        let interval = cells[2].find(Locator::Css(".ci")).await.expect("interval");
        let expected = s["visitors_interval"]
            .as_array()
            .map_or(String::new(), |i| {
                let end = |j: usize| i[j].as_f64().expect("an end");
                format!("{:.0}–{:.0}", end(0), end(1))
            });
        assert_eq!(interval.text().await.expect("text"), expected, "{name}");
    }
    let sum = ch.query(
        "SELECT sum(visitors) FROM footfall.traffic FINAL WHERE site = 'acme-1' \
         AND day BETWEEN '2026-03-14' AND '2026-03-20'",
    );
    assert_eq!(stores["stores"][0]["store"], "acme-1");
    assert_eq!(
        stores["stores"][0]["visitors"].as_f64(),
        sum.trim().parse().ok()
    );

    // Store: the summary on screen = the JSON's = ClickHouse's; every chart drawn.
    let q = "site=acme-2&from=2026-03-16&to=2026-03-29";
    let charts = open(&c, base, &format!("/store?{q}"), &shots, "store").await;
    assert_eq!(
        charts, 6,
        "days, hours, occupancy, hour profile, heatmap, dwell"
    );
    let detail = json(base, &format!("/store.json?{q}"), &cookie);
    let f = &detail["detail"]["figures"];
    let sum = ch.query(
        "SELECT sum(visitors) FROM footfall.traffic FINAL WHERE site = 'acme-2' \
         AND day BETWEEN '2026-03-16' AND '2026-03-29'",
    );
    assert_eq!(f["visitors"].as_f64(), sum.trim().parse().ok());
    assert_eq!(
        text(&c, "#visitors").await,
        format!("{:.0}", f["visitors"].as_f64().expect("v"))
    );
    assert_eq!(
        text(&c, "#passers_by").await,
        format!("{:.0}", f["passers_by"].as_f64().expect("p"))
    );
    let end = |j: usize| f["visitors_interval"][j].as_f64().expect("an interval");
    assert_eq!(
        text(&c, "#visitors_interval").await,
        format!("{:.0}–{:.0}", end(0), end(1))
    );
    let r = &detail["detail"]["returning"];
    assert_eq!(text(&c, "#new").await, r["new"].to_string());
    assert_eq!(
        text(&c, "#returning_devices").await,
        r["returning"].to_string()
    );
    let bars = c
        .find_all(Locator::Css("#chart-profile rect.bar"))
        .await
        .expect("bars");
    let drawn_hours = detail["detail"]["hour_profile"]
        .as_array()
        .expect("profile")
        .iter()
        .filter(|v| !v.is_null())
        .count();
    assert_eq!(bars.len(), drawn_hours, "one bar per shown hour");

    // Compare: every column's visitors on screen = the JSON's; the chart drawn.
    let cq = "stores=acme-1,acme-2&from=2026-03-16&to=2026-03-22";
    assert_eq!(
        open(&c, base, &format!("/compare?{cq}"), &shots, "compare").await,
        1
    );
    let compared = json(base, &format!("/compare.json?{cq}"), &cookie);
    let row = c
        .find(Locator::XPath(
            "//table[@id='compare']//tr[th[starts-with(text(), 'Visitors')]][1]",
        ))
        .await
        .expect("the visitors row");
    let cells = row.find_all(Locator::Css("td")).await.expect("cells");
    for (cell, col) in cells
        .iter()
        .zip(compared["columns"].as_array().expect("columns"))
    {
        let v = col["figures"]["visitors"].as_f64().expect("visitors");
        let shown = cell.find(Locator::Css(".v")).await.expect("value");
        assert_eq!(shown.text().await.expect("text"), format!("{v:.0}"));
    }

    // Campaigns: the headline on screen = the JSON's; its report opens from the list.
    open(&c, base, "/campaigns", &shots, "campaigns").await;
    let campaigns = json(base, "/campaigns.json", &cookie);
    let spring = campaigns["campaigns"]
        .as_array()
        .expect("campaigns")
        .iter()
        .find(|x| x["id"] == "acme-spring")
        .expect("acme-spring");
    let lift = spring["lift_pp"].as_f64().expect("lift");
    let row = c
        .find(Locator::XPath(
            "//table[@id='campaigns']//tr[td[text()='acme-spring']]",
        ))
        .await
        .expect("acme-spring's row")
        .text()
        .await
        .expect("text");
    assert!(row.contains(&format!("{lift:+.2} pp")), "{row}");
    c.find(Locator::LinkText("open"))
        .await
        .expect("the report's link")
        .click()
        .await
        .expect("click");
    assert_eq!(
        text(&c, "h1").await,
        "Did the campaign bring people to the stores?"
    );
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "the report: {errors:?}");

    // Sensors and definitions.
    open(&c, base, "/sensors", &shots, "sensors").await;
    let sensors = json(base, "/sensors.json", &cookie);
    let offline = sensors["sensors"]
        .as_array()
        .expect("sensors")
        .iter()
        .filter(|s| s["online"] == false)
        .count();
    assert!(text(&c, "h1")
        .await
        .contains(&format!("{offline} offline of 4")));
    open(&c, base, "/definitions", &shots, "definitions").await;
    assert!(text(&c, "#visitor").await.contains("Visitor"));

    // Signing out ends the session: the pages send the browser back to sign in.
    c.goto(&format!("{base}/stores")).await.expect("goto");
    c.find(Locator::Css("header form button"))
        .await
        .expect("sign out")
        .click()
        .await
        .expect("click");
    c.goto(&format!("{base}/store?{q}")).await.expect("goto");
    assert_eq!(c.current_url().await.expect("url").path(), "/login");
    c.close().await.expect("close");
}
