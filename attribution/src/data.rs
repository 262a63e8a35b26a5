//! The report's queries, in portable SQL (Debian's 18.16 and current releases; a test runs
//! every query on both). ClickHouse selects the rows, each read once: the passes at the
//! campaign's boards in the flight, the creative's plays there, the loyalty links, and the
//! arms' stays at the stores; [`crate::units`] does the per-device work on them (passes
//! classified, one arm per linkable device from its first clean pass, its outcomes, staff).
//! The queries that need no other's answer run at once. The arms' keys go into the report's
//! session (`report_keys`), which selects their stays; their cards (`report_linked`), whose
//! receipts are summed per window.
//!
//! Device keys change with the epoch. When the report's period crosses a boundary, the keys
//! of the new epoch are followed back through the collector's `bridges` ([`crate::bridge`]):
//! the session selects the pairs of the keys the report meets, and the rows are rekeyed once
//! read.

use std::collections::{BTreeMap, HashMap};

use clickhouse::Row;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use warehouse::parts::{Compacted, REPORTED};

use crate::bridge::{self, Bridge, Links};
use crate::units::{self, PassClass};

pub use crate::units::{Rules, UnitRow, DAY_MS};

/// Why a campaign's rows could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Import campaigns.jsonl first, or check the id.
    #[error("no campaign {0:?} in table campaigns (import campaigns.jsonl first)")]
    NoCampaign(String),
    #[error("campaign {0:?} lists no boards")]
    NoBoards(String),
    /// Import the sites (inventory/sites.csv) with the brand's stores.
    #[error("no store of brand {0:?} in table sites: nothing to convert to")]
    NoStores(String),
    /// ClickHouse is down, or the schema is older than this report needs (run the
    /// collector's migrations).
    #[error("{what}")]
    Query {
        what: &'static str,
        #[source]
        source: clickhouse::error::Error,
    },
}

/// Runs a query, naming it if it fails, and logs (debug) how long it took: a report's time
/// is its queries'. A query the server refuses because the report's session is still busy
/// with the one before (code 373: the server releases a session just after it has sent the
/// response) is sent again, for up to 5 s.
async fn timed<T, F>(what: &'static str, query: impl Fn() -> F) -> Result<T, DataError>
where
    F: std::future::Future<Output = Result<T, clickhouse::error::Error>>,
{
    let t = std::time::Instant::now();
    let r = loop {
        match query().await {
            Err(clickhouse::error::Error::BadResponse(e))
                if e.contains("Code: 373") && t.elapsed() < std::time::Duration::from_secs(5) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            r => break r,
        }
    }
    .map_err(|source| DataError::Query { what, source });
    tracing::debug!(
        query = what,
        ms = t.elapsed().as_millis() as u64,
        "query done"
    );
    r
}

#[derive(Clone, Debug, Row, Deserialize)]
pub struct Campaign {
    pub campaign_id: String,
    pub brand: String,
    pub creative_id: String,
    pub boards: Vec<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub spend: f64,
    pub currency: String,
    pub window_days: u16,
    pub slot_secs: u16,
    pub loop_slots: u16,
}

impl Campaign {
    pub fn loop_ms(&self) -> i64 {
        i64::from(self.slot_secs) * i64::from(self.loop_slots) * 1000
    }
}

#[derive(Row, Deserialize)]
struct LoyaltyRow {
    device: u64,
    cents: Vec<i64>,
    receipts: Vec<u64>,
}

/// A loyalty-linked device's receipts at the brand's stores, per window of the report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loyalty {
    pub cents: Vec<i64>,
    pub receipts: Vec<u64>,
}

#[derive(Row, Deserialize)]
struct PassRow<'a> {
    device: u64,
    epoch: u32,
    site: &'a str,
    first_ms: i64,
    last_ms: i64,
    global: u8,
}

#[derive(Row, Deserialize)]
struct PlayRow<'a> {
    board_id: &'a str,
    start_ms: i64,
    end_ms: i64,
}

#[derive(Row, Deserialize)]
struct LinkRow<'a> {
    epoch: u32,
    device: u64,
    loyalty_id: &'a str,
}

#[derive(Row, Serialize)]
struct KeyRow {
    device: u64,
}

#[derive(Row, Serialize)]
struct LinkedRow {
    device: u64,
    t0: i64,
    loyalty_id: String,
}

#[derive(Row, Deserialize)]
struct StayRow<'a> {
    device: u64,
    epoch: u32,
    site: &'a str,
    day: u16,
    visitor: u8,
    first_ms: i64,
    last_ms: i64,
}

#[derive(Row, Deserialize)]
struct EpochRow {
    epoch: u32,
    began_ms: i64,
}

/// An epoch boundary inside the report's period (pre-period to the longest window's end).
#[derive(Clone, Debug, PartialEq)]
pub struct Boundary {
    /// The epoch that begins.
    pub epoch: u32,
    /// The UTC day its keys first appear in the period's visits.
    pub day: String,
    /// Devices of the epoch before with their next key (the collector's `bridges`); exact
    /// up to 65 536, within about 1 % above.
    pub pairs: u64,
    /// Whether the report follows devices across it (the one boundary it bridges, with pairs).
    pub bridged: bool,
}

#[derive(Clone, Debug, Row, Deserialize)]
struct Site {
    site_id: String,
    kind: i8,
    brand: String,
    lat: f64,
    lon: f64,
}

/// A site where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
}

/// What the store-level estimate reads ([`crate::estimate::geo`]).
#[derive(Clone, Debug, Default)]
pub struct GeoInputs {
    /// The brand's stores.
    pub stores: Vec<Place>,
    /// The campaign's boards found in table `sites`.
    pub boards: Vec<Place>,
    /// (store, day since 1970 on the store's clock, visitors that day: people, from table
    /// `traffic`) over the pre-period and the test period; days without a row had none.
    pub daily: Vec<(String, u16, f64)>,
}

#[derive(Row, Deserialize)]
struct TrafficRow {
    site: String,
    day: u16,
    people: f64,
}

/// What a report reads.
pub struct Inputs {
    pub campaign: Campaign,
    pub placebo_brand: Option<String>,
    pub units: Vec<UnitRow>,
    /// Assigned devices more than 4 h a day, or 5 days a week, at one store.
    pub staff: std::collections::HashSet<u64>,
    /// Per loyalty-linked assigned device (and only those): its receipts at the brand's
    /// stores per window, none for a member who bought nothing.
    pub loyalty: HashMap<u64, Loyalty>,
    /// Passes of linkable devices in the flight, by class.
    pub pass_classes: BTreeMap<PassClass, u64>,
    pub passers: u64,
    pub linkable_passers: u64,
    /// Per day (days since 1970): exposed and control passes of linkable devices.
    pub daily: Vec<(u16, u64, u64)>,
    /// The end of follow-up: the newest sighting.
    pub data_end_ms: i64,
    /// Epoch boundaries inside the report's period.
    pub boundaries: Vec<Boundary>,
    pub geo: GeoInputs,
}

#[cfg(test)]
impl Inputs {
    /// Inputs for unit tests: a 14-day campaign of acme's on `boards`, and nothing else.
    pub(crate) fn for_test(boards: &[&str]) -> Inputs {
        Inputs {
            campaign: Campaign {
                campaign_id: "c".into(),
                brand: "acme".into(),
                creative_id: "x".into(),
                boards: boards.iter().map(|b| (*b).to_owned()).collect(),
                start_ms: 0,
                end_ms: 0,
                spend: 0.0,
                currency: "EUR".into(),
                window_days: 14,
                slot_secs: 10,
                loop_slots: 6,
            },
            placebo_brand: None,
            units: vec![],
            staff: Default::default(),
            loyalty: Default::default(),
            pass_classes: BTreeMap::new(),
            passers: 0,
            linkable_passers: 0,
            daily: vec![],
            data_end_ms: 0,
            boundaries: vec![],
            geo: GeoInputs::default(),
        }
    }
}

/// `'a', 'b'` for an IN list (`''` when empty, which matches no id).
fn in_list<'a>(ids: impl IntoIterator<Item = &'a String>) -> String {
    let v: Vec<String> = ids.into_iter().map(bound).collect();
    if v.is_empty() {
        bound("")
    } else {
        v.join(", ")
    }
}

/// `value` as an SQL literal, written by the clickhouse crate's client-side binding (its
/// escaping, not ours). ClickHouse 18.16 has no server-side query parameters, and the report's
/// queries nest one another, so each value is bound where it appears; the finished text is
/// what both servers run (and what the portability test runs verbatim).
fn bound(value: impl clickhouse::sql::Bind) -> String {
    clickhouse::Client::default()
        .query("?")
        .bind(value)
        .sql_display()
        .to_string()
}

/// `toDate('YYYY-MM-DD')` of the UTC day of `ms`.
fn date(ms: i64) -> String {
    format!("toDate({})", bound(iso_day(ms)))
}

/// Retained visits meeting `cond`, and `pre` before it ([`Compacted::rows_pre`]): `cols`
/// of them (one row per visit, FINAL where a partition is not compacted).
fn visits(compacted: &Compacted, cols: &str, pre: Option<&str>, cond: &str) -> String {
    compacted.rows_pre("visits", cols, pre, &format!("retracted = 0 AND {cond}"))
}

/// The period a report reads, and its partitions' days.
struct Span {
    lo: i64,
    hi: i64,
    s_from: String,
    s_to: String,
}

fn span(c: &Campaign, r: &Rules) -> Span {
    let longest = i64::from(r.windows_days.iter().copied().max().unwrap_or(14)) * DAY_MS;
    let (lo, hi) = (c.start_ms - r.pre_ms, c.end_ms + longest);
    Span {
        lo,
        hi,
        s_from: date(lo - DAY_MS),
        s_to: date(hi + DAY_MS),
    }
}

/// The epochs of the retained visits in the report's period at any site, each with the
/// first day it has one (days since 1970) and the start of its first visit that day, from
/// `visit_epochs` (the days each epoch has retained visits on, kept from the visits by the
/// collector's migration 13): a few rows, where the visits' own columns are a row per visit
/// (a city's month: 100 M rows, a seventh of ClickHouse's CPU in a report).
pub fn epoch_days_query(c: &Campaign, r: &Rules) -> String {
    let s = span(c, r);
    format!(
        "SELECT epoch, day, minMerge(first_ms) FROM visit_epochs WHERE day >= {} AND day <= {} \
         GROUP BY epoch, day ORDER BY epoch, day LIMIT 1 BY epoch",
        s.s_from, s.s_to
    )
}

/// Of the epochs `days` ((epoch, first day), from [`epoch_days_query`], whose first day is
/// not inside the period), those with retained visits in the period, each with its first
/// visit: where keys changed. At any site: every sensor of a tenant changes keys at once.
/// With `near`, an epoch's visits are read on its first days only ([`near_days`]; the key
/// index finds them): a visit's `day` is its first millisecond's, so a first visit found
/// there is the epoch's. An epoch with none there is asked for again without `near`
/// ([`first_visits`]).
pub fn epochs_query(c: &Campaign, r: &Rules, days: &[(u32, u16)], near: bool) -> String {
    let s = span(c, r);
    // The `near` days of an epoch first seen on `d`, as dates.
    let dates = |d: u16| -> Vec<String> {
        near_days(&s, d)
            .map(|d| date(i64::from(d) * DAY_MS))
            .collect()
    };
    let which = days
        .iter()
        .map(|&(e, d)| {
            if near {
                format!("(epoch = {e} AND day IN ({}))", dates(d).join(", "))
            } else {
                format!("epoch = {e}")
            }
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    // Also as a condition on `day` alone, which the key index uses.
    let first_days = if near {
        format!(
            " AND day IN ({})",
            days.iter()
                .flat_map(|&(_, d)| dates(d))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        String::new()
    };
    format!(
        "SELECT epoch, min(first_ms) AS began_ms FROM visits WHERE day >= {} AND day <= {}\
         {first_days} AND retracted = 0 AND last_ms >= {} AND first_ms < {} AND ({which}) \
         GROUP BY epoch ORDER BY epoch",
        s.s_from, s.s_to, s.lo, s.hi
    )
}

/// Whether a visit whose first millisecond is on `day` (days since 1970) surely overlaps
/// the period `s`: the day lies strictly between the period's first and last days.
fn inside(s: &Span, day: u16) -> bool {
    let day = i64::from(day);
    day > s.lo.div_euclid(DAY_MS) && day < s.hi.div_euclid(DAY_MS)
}

/// The days an epoch's first visit in the period `s` is looked for on, given its first day
/// there: that day alone when it lies inside the period (its visits there all overlap it),
/// else that day and the next (its visits there may all end before the period).
fn near_days(s: &Span, first: u16) -> impl Iterator<Item = u16> {
    first..=first + u16::from(!inside(s, first))
}

/// The epochs of the report's period: the first, and each later one with its first visit
/// (where keys changed). The first's first visit is never read: a boundary is where a later
/// epoch begins.
struct Epochs {
    first: u32,
    later: Vec<EpochRow>,
}

/// The epochs of the report's period, each later one with its first visit: the first start
/// on its first day ([`epoch_days_query`]) when that day lies inside the period (every
/// visit of it overlaps the period), else read from the visits ([`epochs_query`]).
async fn first_visits(
    db: &clickhouse::Client,
    c: &Campaign,
    r: &Rules,
) -> Result<Option<Epochs>, DataError> {
    let days: Vec<(u32, u16, i64)> = timed("the epochs' first days", || {
        db.query(&epoch_days_query(c, r)).fetch_all()
    })
    .await?;
    let Some(&(first, first_day, _)) = days.first() else {
        return Ok(None);
    };
    let s = span(c, r);
    // The first epoch needs no read when it surely has a visit in the period.
    let sure = inside(&s, first_day);
    let asked = if sure { &days[1..] } else { &days[..] };
    let (known, unknown): (Vec<_>, Vec<_>) = asked.iter().partition(|d| inside(&s, d.1));
    let mut epochs: Vec<EpochRow> = known
        .iter()
        .map(|&&(epoch, _, began_ms)| EpochRow { epoch, began_ms })
        .collect();
    // The others' first visits read from the visits: near their first days, then, for an
    // epoch with none there, anywhere in the period.
    let mut missing: Vec<(u32, u16)> = unknown.iter().map(|&&(e, d, _)| (e, d)).collect();
    for (near, what) in [
        (true, "the epochs' first visits"),
        (false, "the epochs' later first visits"),
    ] {
        if missing.is_empty() {
            break;
        }
        let found: Vec<EpochRow> = timed(what, || {
            db.query(&epochs_query(c, r, &missing, near)).fetch_all()
        })
        .await?;
        missing.retain(|&(e, _)| !found.iter().any(|f| f.epoch == e));
        epochs.extend(found);
    }
    epochs.sort_unstable_by_key(|e| e.epoch);
    Ok(if sure {
        Some(Epochs {
            first,
            later: epochs,
        })
    } else {
        (!epochs.is_empty()).then(|| Epochs {
            first: epochs[0].epoch,
            later: epochs.split_off(1),
        })
    })
}

/// The epoch boundaries of the report's period, each with its pairs, the epoch before the
/// one it bridges ([`bridged`]), and the loyalty links of the period's epochs.
async fn boundaries_and_links(
    db: &clickhouse::Client,
    c: &Campaign,
    r: &Rules,
    compacted: &Compacted,
) -> Result<(Vec<Boundary>, Option<u32>, Vec<(u32, u64, String)>), DataError> {
    let Some(epochs) = first_visits(db, c, r).await? else {
        return Ok((Vec::new(), None, Vec::new()));
    };
    let mut boundaries = Vec::new();
    let mut before = epochs.first;
    for after in &epochs.later {
        let pairs: u64 = timed("reading table bridges", || {
            // uniq: exact up to 65 536 devices, within about 1 % above (a month of a city's
            // 16 M pairs: 0.07 s, where uniqExact took 1.3 s).
            db.query("SELECT uniq(device) FROM bridges WHERE epoch = ?")
                .bind(before)
                .fetch_one()
        })
        .await?;
        boundaries.push(Boundary {
            epoch: after.epoch,
            day: iso_day(after.began_ms),
            pairs,
            bridged: false,
        });
        before = after.epoch;
    }
    let bridge_epoch = bridged(&mut boundaries, &epochs.later, c.start_ms);
    let links_sql = links_query(epochs.first..=before, compacted);
    let links = timed("the loyalty links", || {
        each::<LinkRow<'_>, _>(db, &links_sql, |r| {
            Some((r.epoch, r.device, r.loyalty_id.to_owned()))
        })
    })
    .await?;
    Ok((boundaries, bridge_epoch, links))
}

/// The end of the data: the latest end of a sighting that began on the last two UTC days
/// the sightings' parts hold ([`warehouse::parts::last_day`]). Read so, it is two days of
/// one column, not the month's (a city's: 0.15 against 0.48 s), and finding the last day
/// reads no row. A sighting that began earlier (a device seen without a break for over a
/// day: a fixture) ends later than all of those only if no other device was seen after its
/// last update; the end read is then earlier, never later.
async fn data_end(
    db: &clickhouse::Client,
    ch: &warehouse::ClickHouseConfig,
) -> Result<i64, DataError> {
    let last = timed("the sightings' last day (system.parts)", || {
        warehouse::parts::last_day(db, ch, "sightings")
    })
    .await?;
    timed("reading the end of the data (table sightings)", || {
        db.query(&data_end_query(last)).fetch_one::<i64>()
    })
    .await
}

/// The latest end of a sighting that began on `last` (days since 1970) or the day before.
pub fn data_end_query(last: u16) -> String {
    format!(
        "SELECT max(last_ms) FROM sightings WHERE day >= {}",
        date(i64::from(last.saturating_sub(1)) * DAY_MS)
    )
}

/// The temporary tables of the report's session: what its later statements select by.
/// The keys of the flight's passes and links whose pairs the report reads
/// ([`crate::bridge::Bridge::wanted`]): the next epoch's, by their next key ...
pub const NEXT: &str = "report_next";
/// ... and those of the epoch before the boundary, by their key there.
pub const BEFORE: &str = "report_before";
/// The arms' keys: their own, and the next keys paired with them
/// ([`crate::bridge::Bridge::stay_keys`]): their stays are selected by them.
pub const KEYS: &str = "report_keys";
/// The linked arms' cards (device, t0, card), whose receipts are the revenue.
pub const LINKED: &str = "report_linked";

/// Creates the session's temporary table `name`. Created, then filled: 18.16 runs a
/// CREATE ... AS SELECT in the default database, not the session's.
fn temporary(name: &'static str, columns: &str) -> (&'static str, String) {
    (
        name,
        format!("CREATE TEMPORARY TABLE {name} ({columns}) ENGINE = Memory"),
    )
}

/// The report's SQL, built for one campaign.
pub struct Queries {
    /// Creates the session's tables ([`NEXT`], [`BEFORE`], [`KEYS`], [`LINKED`]), empty:
    /// what each statement does (for the log and errors), and its SQL.
    pub setup: Vec<(&'static str, String)>,
    /// The flight's passes under their own keys: device, epoch, board, first and last ms,
    /// a global address.
    pub passes: String,
    /// The creative's plays at the campaign's boards around the flight: board, start, end.
    pub plays: String,
    /// The arms' stays (by [`KEYS`]) at every store over the report's period, under their
    /// own keys: device, epoch, store, day, visitor, first and last ms.
    pub stays: String,
    /// Per linked arm (in [`LINKED`]), its receipts at the brand's stores per window.
    pub revenue: String,
    /// Visitors (people) per brand store and day over the report's period.
    pub traffic: String,
}

/// The loyalty links of the epochs `epochs`: epoch, device, card.
pub fn links_query(epochs: std::ops::RangeInclusive<u32>, compacted: &Compacted) -> String {
    format!(
        "SELECT epoch, device, loyalty_id FROM {}",
        compacted.rows(
            "links",
            "epoch, device, loyalty_id",
            &format!("epoch >= {} AND epoch <= {}", epochs.start(), epochs.end())
        )
    )
}

/// The pairs (next key, key before) of `bridges` from epoch `e` whose next key is in
/// [`NEXT`] or whose key before is in [`BEFORE`], one per next key.
pub fn pairs_query(e: u32) -> String {
    format!(
        "SELECT next, any(device) FROM bridges WHERE epoch = {e} \
         AND (next GLOBAL IN (SELECT device FROM {NEXT}) \
         OR device GLOBAL IN (SELECT device FROM {BEFORE})) GROUP BY next"
    )
}

/// Builds the queries. `stores` maps store -> brand.
pub fn queries(
    c: &Campaign,
    stores: &HashMap<String, String>,
    r: &Rules,
    compacted: &Compacted,
) -> Queries {
    let boards = in_list(&c.boards);
    let brand_stores = in_list(
        stores
            .iter()
            .filter(|(_, b)| **b == c.brand)
            .map(|(s, _)| s),
    );
    let all_stores = in_list(stores.keys());
    let (from, to, lp) = (c.start_ms, c.end_ms, c.loop_ms());
    let reach = r.pad_ms.max(lp);
    let Span { s_from, s_to, .. } = span(c, r);
    // The flight's days, with a day either side (a pass or a play near midnight, UTC).
    let (d_from, d_to) = (date(from - DAY_MS), date(to + DAY_MS));
    let setup = vec![
        temporary(NEXT, "device UInt64"),
        temporary(BEFORE, "device UInt64"),
        temporary(KEYS, "device UInt64"),
        temporary(LINKED, "device UInt64, t0 Int64, loyalty_id String"),
    ];
    // The campaign's boards' visitors (passes) whose first sighting is in the flight.
    let passes = format!(
        "SELECT device, epoch, site, first_ms, last_ms, class = 'global' FROM {}",
        visits(
            compacted,
            "device, epoch, site, first_ms, last_ms, class",
            None,
            &format!(
                "site IN ({boards}) AND day >= {d_from} AND day <= {d_to} AND kind = 'visitor' \
                 AND first_ms >= {from} AND first_ms < {to}"
            )
        )
    );
    let plays = format!(
        "SELECT board_id, start_ms, end_ms FROM {}",
        compacted.rows(
            "ad_plays",
            "board_id, start_ms, end_ms",
            &format!(
                "board_id IN ({boards}) AND day >= {d_from} AND day <= {d_to} \
                 AND creative_id = {} AND end_ms >= {} AND start_ms < {}",
                bound(&c.creative_id),
                (from - reach).div_euclid(60_000) * 60_000,
                ((to + lp).div_euclid(60_000) + 1) * 60_000,
            )
        )
    );
    // The arms' stays at every store over the report's period, for the staff rule and the
    // outcomes: by the arms' keys first, which keep an eighth of the stores' visits in a
    // month of a city (the rest of the condition is then evaluated on those alone).
    let stays = format!(
        "SELECT device, epoch, site, day, kind = 'visitor', first_ms, last_ms FROM {}",
        visits(
            compacted,
            "device, epoch, site, day, kind, first_ms, last_ms",
            Some(&format!("device GLOBAL IN (SELECT device FROM {KEYS})")),
            &format!("site IN ({all_stores}) AND day >= {s_from} AND day <= {s_to}")
        )
    );
    // One aggregate per window, over the receipts in (t0, t0 + W].
    let per_window = |aggregate: &dyn Fn(&str) -> String| -> String {
        r.windows_days
            .iter()
            .map(|&w| {
                aggregate(&format!(
                    "at_ms > t0 AND at_ms <= t0 + {}",
                    i64::from(w) * DAY_MS
                ))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Every linked arm, with or without receipts (a LEFT JOIN: a member who bought nothing
    // has at_ms 0, before any t0).
    let revenue = format!(
        "SELECT device, [{}] AS cents, [{}] AS receipts FROM {LINKED} AS linked \
         ALL LEFT JOIN {bought} AS bought USING loyalty_id GROUP BY device",
        per_window(&|c| format!("sumIf(amount_cents, {c})")),
        per_window(&|c| format!("countIf({c})")),
        bought = compacted.rows(
            "receipts",
            "loyalty_id, at_ms, amount_cents",
            &format!("store_id IN ({brand_stores}) AND day >= {s_from} AND day <= {s_to}")
        ),
    );
    let traffic = format!(
        "SELECT site, day, sum(visitors) AS people FROM traffic FINAL WHERE site IN \
         ({brand_stores}) AND day >= {s_from} AND day <= {s_to} GROUP BY site, day \
         ORDER BY site, day"
    );
    Queries {
        setup,
        passes,
        plays,
        stays,
        revenue,
        traffic,
    }
}

/// Reads one campaign from table `campaigns`.
pub async fn campaign(db: &clickhouse::Client, campaign_id: &str) -> Result<Campaign, DataError> {
    let campaigns: Vec<Campaign> = timed("reading table campaigns", || {
        db.query(
            "SELECT campaign_id, brand, creative_id, boards, start_ms, end_ms, spend, currency, \
             window_days, slot_secs, loop_slots FROM campaigns FINAL WHERE campaign_id = ?",
        )
        .bind(campaign_id)
        .fetch_all()
    })
    .await?;
    let Some(campaign) = campaigns.into_iter().next() else {
        return Err(DataError::NoCampaign(campaign_id.to_owned()));
    };
    if campaign.boards.is_empty() {
        return Err(DataError::NoBoards(campaign_id.to_owned()));
    }
    Ok(campaign)
}

/// Runs the report's queries for `campaign` on the tables `ch` names. The compacted
/// partitions of the tables it reads whole months of are read without `FINAL`
/// ([`Compacted`]); if one of them changed while the report read it (a late insert, a merge),
/// the queries run again with `FINAL` throughout.
pub async fn load(
    ch: &warehouse::ClickHouseConfig,
    campaign: Campaign,
    rules: &Rules,
) -> Result<Inputs, DataError> {
    let (db, _) = ch.clients();
    let parts = || {
        timed("listing the tables' parts", || {
            Compacted::read(&db, ch, REPORTED)
        })
    };
    let compacted = parts().await?;
    let plain = compacted.plain();
    tracing::info!(partitions = %plain.join(", "), "compacted: read without FINAL");
    let inputs = read(&db, ch, campaign.clone(), rules, &compacted).await?;
    if plain.is_empty() || compacted.unchanged_in(&parts().await?) {
        return Ok(inputs);
    }
    tracing::warn!(
        "a partition read without FINAL changed while the report read it: reading again with FINAL"
    );
    read(&db, ch, campaign, rules, &Compacted::none()).await
}

/// [`load`] with the partitions `compacted` says.
async fn read(
    db: &clickhouse::Client,
    ch: &warehouse::ClickHouseConfig,
    campaign: Campaign,
    rules: &Rules,
    compacted: &Compacted,
) -> Result<Inputs, DataError> {
    let sites: Vec<Site> = timed("reading table sites", || {
        db.query("SELECT site_id, kind, brand, lat, lon FROM sites FINAL")
            .fetch_all()
    })
    .await?;
    let place = |s: &Site| Place {
        id: s.site_id.clone(),
        lat: s.lat,
        lon: s.lon,
    };
    let mut geo = GeoInputs {
        stores: sites
            .iter()
            .filter(|s| s.kind == 1 && s.brand == campaign.brand)
            .map(place)
            .collect(),
        boards: sites
            .iter()
            .filter(|s| s.kind == 2 && campaign.boards.contains(&s.site_id))
            .map(place)
            .collect(),
        daily: Vec::new(),
    };
    let stores: HashMap<String, String> = sites
        .into_iter()
        .filter(|s| s.kind == 1)
        .map(|s| (s.site_id, s.brand))
        .collect();
    if !stores.values().any(|b| *b == campaign.brand) {
        return Err(DataError::NoStores(campaign.brand));
    }
    let placebo_brand = placebo_of(&stores, &campaign.brand);
    let q = queries(&campaign, &stores, rules, compacted);
    tracing::debug!(passes = %q.passes, stays = %q.stays, revenue = %q.revenue, "the report's queries");
    let boards = indexed(campaign.boards.iter().map(String::as_str));
    // One session for the statements that select by the report's temporary tables: they
    // live in it, and go with it.
    let session = &db.clone().with_setting("session_id", session_id());
    // What needs no other query's answer, at once, so the report's decoding can overlap
    // ClickHouse's reads (on two cores, where ClickHouse is CPU-bound, no faster than one
    // after the other: benches/README.md, "Run 14").
    let ((boundaries, bridge_epoch, links), mut passes, plays, data_end_ms, daily, ()) = tokio::try_join!(
        boundaries_and_links(db, &campaign, rules, compacted),
        timed("the flight's passes", || {
            each::<PassRow<'_>, _>(db, &q.passes, |r| {
                boards.get(r.site).map(|&board| units::Pass {
                    device: r.device,
                    epoch: r.epoch,
                    board,
                    first_ms: r.first_ms,
                    last_ms: r.last_ms,
                    linkable: r.global != 0,
                })
            })
        }),
        timed("the creative's plays", || {
            each::<PlayRow<'_>, _>(db, &q.plays, |r| {
                boards.get(r.board_id).map(|&board| units::Play {
                    board,
                    start_ms: r.start_ms,
                    end_ms: r.end_ms,
                })
            })
        }),
        data_end(db, ch),
        timed("the store traffic query", || db
            .query(&q.traffic)
            .fetch_all::<TrafficRow>()),
        async {
            for (what, sql) in &q.setup {
                timed(what, || session.query(sql).execute()).await?;
            }
            Ok(())
        },
    )?;
    geo.daily = daily
        .into_iter()
        .map(|r| (r.site, r.day, r.people))
        .collect();
    let mut bridge = Bridge::new(bridge_epoch);
    let db = session;
    if let Some(e) = bridge.epoch() {
        let wanted = bridge.wanted(&passes, &links);
        write_keys(db, NEXT, &wanted.next).await?;
        write_keys(db, BEFORE, &wanted.before).await?;
        let pairs = timed("the pairs of the passes and links", || {
            db.query(&pairs_query(e)).fetch_all::<(u64, u64)>()
        })
        .await?;
        bridge.add(pairs);
    }
    let links = Links::new(links, &bridge);
    bridge::follow(&mut passes, &bridge, &links);
    let plays = units::Plays::new(campaign.boards.len(), plays);
    let flight = units::flight(&mut passes, &plays, rules.pad_ms, campaign.loop_ms());
    drop(passes);
    // Every arm before the boundary is a pass's key there, so its pair was read with the
    // passes'.
    write_keys(db, KEYS, &bridge.stay_keys(&flight.arms)).await?;
    // The stores by index: the stays name theirs so.
    let mut names: Vec<&str> = stores.keys().map(String::as_str).collect();
    names.sort_unstable();
    let index = indexed(names.iter().copied());
    let read = timed("the arms' stays at the stores", || {
        each::<StayRow<'_>, _>(db, &q.stays, |r| {
            index.get(r.site).map(|&store| {
                let stay = units::Stay {
                    device: r.device,
                    store,
                    day: r.day,
                    visitor: r.visitor != 0,
                    first_ms: r.first_ms,
                    last_ms: r.last_ms,
                };
                (r.epoch, stay)
            })
        })
    })
    .await?;
    // Each stay under its arm, in a loop of its own once all are read: its lookups of
    // millions of random keys overlap one another there, where between the rows' decoding
    // each waited for memory (a tenth of a report's own time).
    let arms = bridge.arm_keys(&flight.arms);
    let mut stays: Vec<units::Stay> = read
        .into_iter()
        .filter_map(|(epoch, stay)| {
            let device = arms.arm(epoch, stay.device)?;
            Some(units::Stay { device, ..stay })
        })
        .collect();
    units::sort_stays(&mut stays);
    let of = |brand: Option<&str>| -> Vec<bool> {
        names
            .iter()
            .map(|s| stores.get(*s).map(String::as_str) == brand)
            .collect()
    };
    let period = span(&campaign, rules);
    let units = units::outcomes(
        &flight.arms,
        &stays,
        &of(Some(&campaign.brand)),
        &of(placebo_brand.as_deref()),
        &campaign.boards,
        rules,
        (period.lo, period.hi),
    );
    let staff = units::staff(&stays, rules);
    drop(stays);
    let linked: Vec<LinkedRow> = links
        .of(&flight.arms)
        .map(|(device, t0, card)| LinkedRow {
            device,
            t0,
            loyalty_id: card.to_owned(),
        })
        .collect();
    write(db, LINKED, &linked).await?;
    let loyalty: HashMap<u64, Loyalty> = timed("the loyalty receipts query", || {
        db.query(&q.revenue).fetch_all::<LoyaltyRow>()
    })
    .await?
    .into_iter()
    .map(|r| {
        (
            r.device,
            Loyalty {
                cents: r.cents,
                receipts: r.receipts,
            },
        )
    })
    .collect();
    Ok(Inputs {
        campaign,
        placebo_brand,
        units,
        staff,
        loyalty,
        pass_classes: flight.pass_classes,
        passers: flight.passers,
        linkable_passers: flight.linkable_passers,
        daily: flight.daily,
        data_end_ms,
        boundaries,
        geo,
    })
}

/// Writes `keys` into the session's table `table` (one `device` column).
async fn write_keys(
    db: &clickhouse::Client,
    table: &'static str,
    keys: &[u64],
) -> Result<(), DataError> {
    let rows: Vec<KeyRow> = keys.iter().map(|&device| KeyRow { device }).collect();
    write(db, table, &rows).await
}

/// Adds `rows` to the session's table `table` (none: nothing is sent).
async fn write<T: clickhouse::RowOwned + clickhouse::RowWrite>(
    db: &clickhouse::Client,
    table: &'static str,
    rows: &[T],
) -> Result<(), DataError> {
    timed(table, || warehouse::insert(db, table, rows)).await
}

/// Each name's index in `names` (on FxHash: a report looks up millions of rows' sites).
fn indexed<'a>(names: impl IntoIterator<Item = &'a str>) -> FxHashMap<&'a str, u32> {
    (0u32..).zip(names).map(|(i, name)| (name, i)).collect()
}

/// What `keep` makes of each row of `sql`, as the rows stream in (a row it makes nothing of
/// is left out): a row borrows its strings from the response, so a million rows are not a
/// million allocations.
async fn each<T: clickhouse::RowRead, U>(
    db: &clickhouse::Client,
    sql: &str,
    mut keep: impl FnMut(T::Value<'_>) -> Option<U>,
) -> Result<Vec<U>, clickhouse::error::Error> {
    let mut cursor = db.query(sql).fetch::<T>()?;
    let mut out = Vec::new();
    while let Some(row) = cursor.next().await? {
        out.extend(keep(row));
    }
    Ok(out)
}

/// A session id of this report's own: its process and the wall clock in ns.
fn session_id() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("footfall-report-{}-{ns}", std::process::id())
}

/// Picks the one boundary the report bridges (`later`: the epochs that begin at each): the
/// first whose new keys appear at or after the flight's start (exposures and conversions
/// straddle it), else the last before it (the look-back does), among those with pairs;
/// marks it; returns the epoch before it.
fn bridged(boundaries: &mut [Boundary], later: &[EpochRow], start_ms: i64) -> Option<u32> {
    let firsts: Vec<i64> = later.iter().map(|e| e.began_ms).collect();
    let candidates: Vec<usize> = (0..boundaries.len())
        .filter(|&i| boundaries[i].pairs > 0)
        .collect();
    let chosen = candidates
        .iter()
        .copied()
        .find(|&i| firsts[i] >= start_ms)
        .or_else(|| candidates.last().copied())?;
    boundaries[chosen].bridged = true;
    Some(boundaries[chosen].epoch - 1)
}

/// The UTC day of `ms`, `YYYY-MM-DD`.
pub(crate) fn iso_day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// The other brand with the most stores (ties: the first by name).
fn placebo_of(stores: &HashMap<String, String>, brand: &str) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for b in stores.values().filter(|b| *b != brand) {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(b, n)| (*n, std::cmp::Reverse(*b)))
        .map(|(b, _)| b.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_reach_the_sql_escaped_and_dates_as_utc_days() {
        let c = Campaign {
            campaign_id: "c1".into(),
            brand: "Acme".into(),
            creative_id: r"it's\n".into(),
            boards: vec!["b-1".into(), "b'2".into()],
            start_ms: 1_772_323_200_000, // 2026-03-01T00:00Z
            end_ms: 1_772_323_200_000 + 7 * DAY_MS,
            spend: 0.0,
            currency: "EUR".into(),
            window_days: 14,
            slot_secs: 10,
            loop_slots: 6,
        };
        let rules = Rules {
            pad_ms: 0,
            pre_ms: 0,
            staff_ms_per_day: 0,
            staff_days_per_week: 5,
            windows_days: vec![14],
        };
        let q = queries(&c, &HashMap::new(), &rules, &Compacted::none());
        assert!(q.plays.contains(r"creative_id = 'it\'s\\n'"), "{}", q.plays);
        assert!(
            q.passes.contains(r"site IN ('b-1', 'b\'2')"),
            "{}",
            q.passes
        );
        // A day before the flight, in UTC.
        assert!(
            q.passes.contains("day >= toDate('2026-02-28')"),
            "{}",
            q.passes
        );
        // No store: an IN list that matches nothing, still valid SQL.
        assert!(q.stays.contains("site IN ('')"), "{}", q.stays);
    }

    /// A visit that begins on a day strictly inside the period overlaps it; one on the
    /// period's first day (it may end before the period's start) or last (it may begin
    /// after its end) need not. An epoch's first visit is looked for on its first day alone
    /// only when that day is inside.
    #[test]
    fn an_epochs_first_day_is_inside_the_period_only_strictly_between_its_ends() {
        let s = Span {
            lo: 20_500 * DAY_MS + 3_600_000,
            hi: 20_530 * DAY_MS + 3_600_000,
            s_from: String::new(),
            s_to: String::new(),
        };
        let inside_days: Vec<u16> = (20_498..20_533).filter(|&d| inside(&s, d)).collect();
        assert_eq!(inside_days, (20_501..20_530).collect::<Vec<u16>>());
        assert_eq!(near_days(&s, 20_500).collect::<Vec<_>>(), [20_500, 20_501]);
        assert_eq!(near_days(&s, 20_501).collect::<Vec<_>>(), [20_501]);
        assert_eq!(near_days(&s, 20_530).collect::<Vec<_>>(), [20_530, 20_531]);
    }
}
