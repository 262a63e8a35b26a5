//! `footfall-dashboard`: the store-visit dashboards, server-rendered from ClickHouse.
//!
//! Pages (HTML, and the same figures as CSV and JSON): `/stores` (every store over a period,
//! sortable, filtered by brand; the period and filters in the URL), `/sensors` (the fleet's
//! health, offline sensors first), `/definitions` (what every figure means, one click from
//! each). Everything but `/login` needs a session
//! ([`auth`]); every response carries security headers, and a POST from another origin is
//! refused.

pub mod auth;
pub mod campaigns;
mod charts;
pub mod compare;
pub mod config;
mod db;
pub mod period;
pub mod privacy;
pub mod sensors;
pub mod store;
pub mod stores;
pub mod svg;

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRef, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Key, SignedCookieJar};
use serde::Deserialize;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::auth::{Session, User};
use crate::compare::CompareQuery;
use crate::config::Config;
use crate::period::Period;
use crate::privacy::Thresholds;
use crate::store::{StoreDetail, StoreQuery};
use crate::stores::{Sort, StoreFigures};

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    db: clickhouse::Client,
    users: Arc<HashMap<String, User>>,
    key: Key,
    session_secs: i64,
    offline_after_ms: i64,
    thresholds: Thresholds,
    reports: Arc<std::path::PathBuf>,
    guard: Arc<auth::Guard>,
}

impl FromRef<App> for Key {
    fn from_ref(app: &App) -> Key {
        app.key.clone()
    }
}

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Users(#[from] auth::UsersError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// Serves the dashboard until `shutdown` completes.
pub async fn serve(
    cfg: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let users = auth::read_users(cfg.users_file())?;
    let (db, _) = cfg.clickhouse().clients();
    let app = App {
        db,
        users: Arc::new(users),
        // The configuration holds at least the 64 bytes a key needs.
        key: Key::from(cfg.session_key().expose()),
        session_secs: i64::try_from(cfg.session().as_secs()).unwrap_or(i64::MAX),
        offline_after_ms: i64::try_from(cfg.offline_after().as_millis()).unwrap_or(i64::MAX),
        thresholds: cfg.thresholds(),
        reports: Arc::new(cfg.reports().to_owned()),
        guard: Arc::default(),
    };
    let listener = TcpListener::bind(cfg.listen())
        .await
        .map_err(|source| Error::Listen {
            addr: cfg.listen(),
            source,
        })?;
    info!(listen = %cfg.listen(), users = app.users.len(), "dashboard serving");
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}

fn router(app: App) -> Router {
    let signed_in = Router::new()
        .route("/", get(|| async { Redirect::to("/stores") }))
        .route("/stores", get(stores_html))
        .route("/stores.csv", get(stores_csv))
        .route("/stores.json", get(stores_json))
        .route("/store", get(store_html))
        .route("/store.csv", get(store_csv))
        .route("/store.json", get(store_json))
        .route("/compare", get(compare_html))
        .route("/compare.json", get(compare_json))
        .route("/campaigns", get(campaigns_html))
        .route("/campaigns.json", get(campaigns_json))
        .route("/campaigns/report", get(campaign_report))
        .route("/sensors", get(sensors_html))
        .route("/sensors.csv", get(sensors_csv))
        .route("/sensors.json", get(sensors_json))
        .route("/definitions", get(definitions))
        .route("/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_session));
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/static/style.css", get(style))
        .merge(signed_in)
        .layer(middleware::from_fn(same_origin_posts))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(db::timing))
        .with_state(app)
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Pages need a session: without one, to the sign-in page (and back afterwards).
async fn require_session(
    State(app): State<App>,
    jar: SignedCookieJar,
    mut req: Request,
    next: Next,
) -> Response {
    match auth::session(&jar, now_secs())
        .filter(|s| app.users.contains_key(&s.user) && !app.guard.is_revoked(s))
    {
        Some(s) => {
            req.extensions_mut().insert(s);
            next.run(req).await
        }
        None => {
            let path = req
                .uri()
                .path_and_query()
                .map_or("/stores", |p| p.as_str())
                .to_owned();
            Redirect::to(&format!("/login?next={}", stores::percent(&path))).into_response()
        }
    }
}

/// A POST whose Origin is another site's is refused (the session cookie is SameSite=Strict
/// too, and forms post a per-session token).
async fn same_origin_posts(headers: HeaderMap, req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
        if let (Some(origin), Some(host)) = (origin, host) {
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            if origin_host != host {
                return (StatusCode::FORBIDDEN, "cross-origin form refused\n").into_response();
            }
        }
    }
    next.run(req).await
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    // A response that set its own (stricter) policy keeps it.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ),
        );
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}

/// A 4xx with a message naming what was wrong.
fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response()
}

fn server_error(e: impl std::fmt::Display) -> Response {
    warn!(error = %e, "a page failed");
    (
        StatusCode::BAD_GATEWAY,
        "ClickHouse did not answer; try again\n",
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    next: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

/// Only a local path is followed after sign-in.
fn local_path(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or("/stores")
}

async fn login_page(Query(q): Query<NextParam>) -> Response {
    render(&LoginPage {
        next: local_path(q.next.as_deref()),
        error: None,
    })
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    next: Option<String>,
}

async fn login(State(app): State<App>, jar: SignedCookieJar, Form(f): Form<LoginForm>) -> Response {
    let next = local_path(f.next.as_deref()).to_owned();
    let now = now_secs();
    if let Some(left) = app.guard.locked(&f.user, now) {
        warn!(user = %f.user, "sign-in refused: locked after failures");
        let msg = format!(
            "Too many failed sign-ins for this user: try again in {} min.",
            (left + 59) / 60
        );
        let page = LoginPage {
            next: &next,
            error: Some(&msg),
        };
        return (StatusCode::TOO_MANY_REQUESTS, render(&page)).into_response();
    }
    match app.users.get(&f.user) {
        Some(u) if u.verify(&f.password) => {
            app.guard.succeeded(&f.user);
            info!(user = %f.user, "signed in");
            let jar = jar.add(auth::session_cookie(&f.user, now_secs() + app.session_secs));
            (jar, Redirect::to(&next)).into_response()
        }
        _ => {
            app.guard.failed(&f.user, now);
            warn!(user = %f.user, "sign-in refused");
            let page = LoginPage {
                next: &next,
                error: Some("Wrong user name or password."),
            };
            (StatusCode::UNAUTHORIZED, render(&page)).into_response()
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(app): State<App>,
    jar: SignedCookieJar,
    axum::Extension(s): axum::Extension<Session>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if f.csrf != s.csrf {
        return (
            StatusCode::FORBIDDEN,
            "the form's token is not this session's\n",
        )
            .into_response();
    }
    app.guard.revoke(&s, now_secs());
    (jar.remove(auth::removal()), Redirect::to("/login")).into_response()
}

/// A CSV body, or the error that kept it from being written.
fn csv_response(text: Result<String, csv::Error>) -> Response {
    match text {
        Ok(text) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response(),
        Err(e) => server_error(e),
    }
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => server_error(e),
    }
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css")],
        include_str!("../templates/style.css"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct StoresParams {
    from: Option<String>,
    to: Option<String>,
    brand: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

/// The figures of a request, or the response that says why not.
async fn figures(
    app: &App,
    s: &Session,
    p: &StoresParams,
) -> Result<(stores::Query, Vec<StoreFigures>), Response> {
    let q = stores::Query::parse(
        p.from.as_deref(),
        p.to.as_deref(),
        p.brand.as_deref(),
        p.sort.as_deref(),
        p.order.as_deref(),
        chrono::Utc::now().date_naive(),
    )
    .map_err(bad_request)?;
    let brands = brands_of(app, s);
    if let Some(b) = &q.brand {
        if !brands.is_empty() && !brands.contains(b) {
            return Err((
                StatusCode::FORBIDDEN,
                format!("brand: {b:?} is not yours\n"),
            )
                .into_response());
        }
    }
    let rows = stores::load(&app.db, &q, &brands, &[], app.thresholds.counts)
        .await
        .map_err(server_error)?;
    Ok((q, rows))
}

#[derive(Template)]
#[template(path = "stores.html")]
struct StoresPage<'a> {
    user: &'a str,
    csrf: &'a str,
    q: &'a stores::Query,
    rows: Vec<Row>,
    headers: Vec<(&'static str, String)>,
    brands: Vec<String>,
    min_devices: u32,
    csv: String,
    json: String,
}

/// A row as the page prints it.
struct Row {
    store: String,
    /// The store page's query string for the same period.
    store_link: String,
    brand: String,
    cells: Cells,
}

/// A store's figures as the pages print them (a Stores row, the Store page's summary, a
/// Compare column): people with their 95 % interval beneath.
struct Cells {
    visitors: String,
    visitors_interval: String,
    passers_by: String,
    passers_by_interval: String,
    capture_rate: String,
    median_dwell: String,
    change_previous: String,
    last_day: String,
    change_week: String,
    corrected: bool,
}

impl Cells {
    fn of(f: &stores::StoreFigures) -> Cells {
        let people = |v: f64| format!("{v:.0}");
        let interval =
            |i: Option<[f64; 2]>| i.map_or(String::new(), |[lo, hi]| format!("{lo:.0}–{hi:.0}"));
        Cells {
            visitors: cell(f.visitors, people),
            visitors_interval: interval(f.visitors_interval),
            passers_by: cell(f.passers_by, people),
            passers_by_interval: interval(f.passers_by_interval),
            capture_rate: cell(f.capture_rate, |v| format!("{:.1} %", 100.0 * v)),
            median_dwell: f
                .median_dwell_min
                .map_or("—".into(), |b| format!("{b} min")),
            change_previous: cell(f.change_previous, percent),
            last_day: cell(f.last_day, people),
            change_week: cell(f.change_week, percent),
            corrected: f.capture_corrected,
        }
    }
}

fn cell(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "—".to_owned(), f)
}

fn percent(v: f64) -> String {
    format!("{:+.0} %", 100.0 * v)
}

async fn stores_html(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
    Query(p): Query<StoresParams>,
) -> Response {
    let (q, rows) = match figures(&app, &s, &p).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut brands: Vec<String> = rows.iter().map(|r| r.brand.clone()).collect();
    if let Some(b) = &q.brand {
        brands.push(b.clone());
    }
    brands.sort();
    brands.dedup();
    let headers = Sort::ALL
        .iter()
        .map(|(name, sort)| {
            let descending = q.sort == *sort && !q.descending;
            (*name, q.url_query(*sort, descending))
        })
        .collect();
    let page = StoresPage {
        user: &s.user,
        csrf: &s.csrf,
        q: &q,
        rows: rows
            .iter()
            .map(|r| Row {
                store_link: format!(
                    "{}&from={}&to={}",
                    stores::percent(&r.store),
                    q.period.from,
                    q.period.to
                ),
                store: r.store.clone(),
                brand: r.brand.clone(),
                cells: Cells::of(r),
            })
            .collect(),
        headers,
        brands,
        min_devices: app.thresholds.counts,
        csv: format!("/stores.csv?{}", q.url_query(q.sort, q.descending)),
        json: format!("/stores.json?{}", q.url_query(q.sort, q.descending)),
    };
    render(&page)
}

async fn stores_csv(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
    Query(p): Query<StoresParams>,
) -> Response {
    match figures(&app, &s, &p).await {
        Ok((_, rows)) => csv_response(stores::csv(&rows)),
        Err(r) => r,
    }
}

async fn stores_json(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
    Query(p): Query<StoresParams>,
) -> Response {
    match figures(&app, &s, &p).await {
        Ok((q, rows)) => axum::Json(serde_json::json!({
            "from": q.period.from.to_string(),
            "to": q.period.to.to_string(),
            "brand": q.brand,
            "thresholds": app.thresholds,
            "stores": rows,
        }))
        .into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct StoreParams {
    site: Option<String>,
    from: Option<String>,
    to: Option<String>,
    table: Option<String>,
}

/// The Store page's figures for a request, or the response that says why not.
async fn store_detail(
    app: &App,
    s: &Session,
    p: &StoreParams,
) -> Result<(StoreQuery, StoreDetail, Vec<String>), Response> {
    let q = StoreQuery::parse(
        p.site.as_deref(),
        p.from.as_deref(),
        p.to.as_deref(),
        chrono::Utc::now().date_naive(),
    )
    .map_err(bad_request)?;
    match store::load(&app.db, &q, &brands_of(app, s), app.thresholds).await {
        Ok((detail, names)) => Ok((q, detail, names)),
        Err(e @ store::StoreError::Unknown(_)) => {
            Err((StatusCode::NOT_FOUND, format!("{e}\n")).into_response())
        }
        Err(store::StoreError::ClickHouse(e)) => Err(server_error(e)),
    }
}

/// New and returning visitors as the Store page prints them.
struct ReturningCells {
    linkable: String,
    new: String,
    back: String,
    frequency: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "store.html")]
struct StorePage<'a> {
    user: &'a str,
    csrf: &'a str,
    q: &'a StoreQuery,
    d: &'a StoreDetail,
    stores: Vec<String>,
    cells: Cells,
    latest: String,
    peak_hours: String,
    charts: charts::StoreCharts,
    returning: Option<ReturningCells>,
    link: String,
}

async fn store_html(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
    Query(p): Query<StoreParams>,
) -> Response {
    let (q, d, stores) = match store_detail(&app, &s, &p).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let f = &d.figures;
    let count = |v: Option<u64>| v.map_or("—".to_owned(), |v| v.to_string());
    let page = StorePage {
        user: &s.user,
        csrf: &s.csrf,
        q: &q,
        d: &d,
        stores,
        cells: Cells::of(f),
        latest: d.occupancy_latest.as_ref().map_or("no data".into(), |w| {
            format!(
                "{:.0} people (95 %: {:.0}–{:.0}) at {}",
                w.people, w.lo, w.hi, w.start
            )
        }),
        peak_hours: if d.peak_hours.is_empty() {
            "—".into()
        } else {
            d.peak_hours
                .iter()
                .map(|h| format!("{h:02}:00–{:02}:00", h + 1))
                .collect::<Vec<_>>()
                .join(", ")
        },
        charts: charts::store(&d),
        returning: d.returning.as_ref().map(|r| ReturningCells {
            linkable: format!(
                "{} devices{}",
                r.linkable_devices,
                r.share.map_or(String::new(), |s| format!(
                    ", {:.0} % of the visitor devices",
                    100.0 * s
                ))
            ),
            new: count(r.new),
            back: count(r.returning),
            frequency: r.frequency.iter().map(|(l, v)| (*l, count(*v))).collect(),
        }),
        link: format!(
            "site={}&from={}&to={}",
            stores::percent(&q.site),
            q.period.from,
            q.period.to
        ),
    };
    render(&page)
}

async fn store_csv(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
    Query(p): Query<StoreParams>,
) -> Response {
    match store_detail(&app, &s, &p).await {
        Ok((_, d, _)) => match store::csv(&d, p.table.as_deref().unwrap_or("hours")) {
            Ok(text) => csv_response(text),
            Err(msg) => bad_request(msg),
        },
        Err(r) => r,
    }
}

async fn store_json(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
    Query(p): Query<StoreParams>,
) -> Response {
    match store_detail(&app, &s, &p).await {
        Ok((q, d, _)) => {
            axum::Json(serde_json::json!({ "store": q.site, "detail": d })).into_response()
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct CompareParams {
    stores: Option<String>,
    from: Option<String>,
    to: Option<String>,
    from2: Option<String>,
    to2: Option<String>,
}

async fn comparison(
    app: &App,
    s: &Session,
    p: &CompareParams,
) -> Result<(CompareQuery, Vec<compare::Column>), Response> {
    let today = chrono::Utc::now().date_naive();
    let period = Period::parse(p.from.as_deref(), p.to.as_deref(), today).map_err(bad_request)?;
    let second = match (&p.from2, &p.to2) {
        (None, None) => None,
        (from2, to2) => Some(
            Period::parse_named(("from2", "to2"), from2.as_deref(), to2.as_deref(), today)
                .map_err(bad_request)?,
        ),
    };
    // No stores named: the first the user can see, as many as fit.
    let every = match &p.stores {
        Some(_) => None,
        None => {
            let names: Vec<String> = stores::sites(&app.db, &brands_of(app, s))
                .await
                .map_err(server_error)?
                .into_iter()
                .map(|r| r.site_id)
                .collect();
            Some(names[..names.len().min(compare::MAX_COLUMNS)].join(","))
        }
    };
    let named = p.stores.as_deref().or(every.as_deref());
    let q = CompareQuery::parse(named, period, second).map_err(bad_request)?;
    match compare::load(&app.db, &q, &brands_of(app, s), app.thresholds.counts).await {
        Ok(Ok(columns)) => Ok((q, columns)),
        Ok(Err(msg)) => Err((StatusCode::NOT_FOUND, format!("{msg}\n")).into_response()),
        Err(e) => Err(server_error(e)),
    }
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage<'a> {
    user: &'a str,
    csrf: &'a str,
    columns: Vec<CompareCells>,
    stores: String,
    from: String,
    to: String,
    from2: String,
    to2: String,
    chart: String,
    json: String,
}

/// A column as the page prints it.
struct CompareCells {
    title: String,
    cells: Cells,
}

async fn compare_html(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
    Query(p): Query<CompareParams>,
) -> Response {
    let (q, columns) = match comparison(&app, &s, &p).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let two_periods = q.columns.len() == 2 && q.columns[0].0 == q.columns[1].0;
    let names = q
        .columns
        .iter()
        .take(if two_periods { 1 } else { q.columns.len() })
        .map(|(s, _)| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let title = |c: &compare::Column| {
        if two_periods {
            format!("{} to {}", c.from, c.to)
        } else {
            c.store.clone()
        }
    };
    let page = ComparePage {
        user: &s.user,
        csrf: &s.csrf,
        chart: charts::compare(&columns, &title),
        columns: columns
            .iter()
            .map(|c| CompareCells {
                title: title(c),
                cells: Cells::of(&c.figures),
            })
            .collect(),
        stores: names.clone(),
        from: q.columns[0].1.from.to_string(),
        to: q.columns[0].1.to.to_string(),
        from2: p.from2.clone().unwrap_or_default(),
        to2: p.to2.clone().unwrap_or_default(),
        json: format!(
            "/compare.json?stores={}&from={}&to={}{}",
            stores::percent(&names),
            q.columns[0].1.from,
            q.columns[0].1.to,
            if two_periods {
                format!("&from2={}&to2={}", q.columns[1].1.from, q.columns[1].1.to)
            } else {
                String::new()
            }
        ),
    };
    render(&page)
}

async fn compare_json(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
    Query(p): Query<CompareParams>,
) -> Response {
    match comparison(&app, &s, &p).await {
        Ok((_, columns)) => axum::Json(serde_json::json!({ "columns": columns })).into_response(),
        Err(r) => r,
    }
}

async fn campaign_list(
    app: &App,
    s: &Session,
) -> Result<Vec<campaigns::CampaignFigures>, Response> {
    campaigns::load(&app.db, &brands_of(app, s), &app.reports)
        .await
        .map_err(server_error)
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct CampaignsPage<'a> {
    user: &'a str,
    csrf: &'a str,
    rows: Vec<(campaigns::CampaignFigures, String, String)>,
}

async fn campaigns_html(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
) -> Response {
    let rows = match campaign_list(&app, &s).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let page = CampaignsPage {
        user: &s.user,
        csrf: &s.csrf,
        rows: rows
            .into_iter()
            .map(|c| {
                let lift = c.lift_pp.map_or("—".into(), |l| format!("{l:+.2} pp"));
                let interval = match (c.lo_pp, c.hi_pp) {
                    (Some(lo), Some(hi)) => format!("{lo:+.2} to {hi:+.2} pp"),
                    _ => "—".into(),
                };
                (c, lift, interval)
            })
            .collect(),
    };
    render(&page)
}

async fn campaigns_json(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
) -> Response {
    match campaign_list(&app, &s).await {
        Ok(rows) => axum::Json(serde_json::json!({ "campaigns": rows })).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct ReportParams {
    id: Option<String>,
}

/// The attribution's report.html of a campaign the user can see (its own policy: the report
/// carries its style inline and runs no script).
async fn campaign_report(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
    Query(p): Query<ReportParams>,
) -> Response {
    let Some(id) = p.id.filter(|i| !i.is_empty()) else {
        return bad_request("id: missing (which campaign?)".into());
    };
    let rows = match campaign_list(&app, &s).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            format!("id: {id:?} has no report you can see\n"),
        )
            .into_response()
    };
    if !rows.iter().any(|c| c.id == id && c.has_report) || !campaigns::safe_id(&id) {
        return not_found();
    }
    match tokio::fs::read_to_string(app.reports.join(&id).join("report.html")).await {
        Ok(html) => (
            [(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'",
            )],
            Html(html),
        )
            .into_response(),
        Err(_) => not_found(),
    }
}

#[derive(Template)]
#[template(path = "definitions.html")]
struct DefinitionsPage {
    t: Thresholds,
}

async fn definitions(State(app): State<App>) -> Response {
    render(&DefinitionsPage { t: app.thresholds })
}

/// The signed-in user's brands (empty: every brand).
fn brands_of(app: &App, s: &Session) -> Vec<String> {
    app.users
        .get(&s.user)
        .map(|u| u.brands.clone())
        .unwrap_or_default()
}

async fn sensor_rows(app: &App, s: &Session) -> Result<Vec<sensors::SensorRow>, Response> {
    sensors::load(
        &app.db,
        &brands_of(app, s),
        chrono::Utc::now().timestamp_millis(),
        app.offline_after_ms,
    )
    .await
    .map_err(server_error)
}

#[derive(Template)]
#[template(path = "sensors.html")]
struct SensorsPage<'a> {
    user: &'a str,
    csrf: &'a str,
    rows: &'a [sensors::SensorRow],
    offline: usize,
}

async fn sensors_html(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
) -> Response {
    let rows = match sensor_rows(&app, &s).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    render(&SensorsPage {
        user: &s.user,
        csrf: &s.csrf,
        offline: rows.iter().filter(|r| !r.online).count(),
        rows: &rows,
    })
}

async fn sensors_csv(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
) -> Response {
    match sensor_rows(&app, &s).await {
        Ok(rows) => csv_response(sensors::csv(&rows)),
        Err(r) => r,
    }
}

async fn sensors_json(
    State(app): State<App>,
    axum::Extension(s): axum::Extension<Session>,
) -> Response {
    match sensor_rows(&app, &s).await {
        Ok(rows) => axum::Json(serde_json::json!({ "sensors": rows })).into_response(),
        Err(r) => r,
    }
}
