//! What a report reads from ClickHouse. Portable SQL (Debian's 18.16 and current releases):
//! FINAL reads, equi-filters on the tables' sorting keys (site/board, day) so each query
//! touches only the campaign's boards, the brand's stores and the flight's partitions. The
//! per-device logic (passes x plays, arms, windows) runs in Rust over these rows.

use std::collections::HashMap;

use anyhow::{bail, Context};
use clickhouse::Row;
use serde::Deserialize;

const DAY_MS: i64 = 86_400_000;

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

/// A pass: an in-view stay at a board (the stream stage's `visitor` at a board).
#[derive(Clone, Debug, Row, Deserialize)]
pub struct Pass {
    pub site: String,
    pub device: u64,
    pub epoch: u32,
    /// 0 global, 1 local.
    pub class: i8,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// A stay at a store of any brand.
#[derive(Clone, Debug, Row, Deserialize)]
pub struct StoreStay {
    pub site: String,
    pub device: u64,
    pub day: u16,
    pub first_ms: i64,
    pub last_ms: i64,
    /// 1 passer-by, 2 visitor.
    pub kind: i8,
}

#[derive(Clone, Debug, Row, Deserialize)]
pub struct Play {
    pub board_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Clone, Debug, Row, Deserialize)]
pub struct Receipt {
    pub store_id: String,
    pub at_ms: i64,
    pub amount_cents: i64,
    pub loyalty_id: String,
}

#[derive(Clone, Debug, Row, Deserialize)]
pub struct Link {
    pub epoch: u32,
    pub device: u64,
    pub loyalty_id: String,
}

#[derive(Clone, Debug, Row, Deserialize)]
struct Site {
    site_id: String,
    kind: i8,
    brand: String,
}

/// Everything a report needs.
pub struct Inputs {
    pub campaign: Campaign,
    /// Store -> brand.
    pub stores: HashMap<String, String>,
    pub plays: Vec<Play>,
    pub passes: Vec<Pass>,
    pub stays: Vec<StoreStay>,
    pub links: Vec<Link>,
    pub receipts: Vec<Receipt>,
    /// The end of follow-up: the newest sighting.
    pub data_end_ms: i64,
}

/// `'a', 'b'` for an IN list; ids are validated at import ([A-Za-z0-9_.-]), quotes escaped
/// all the same.
fn in_list<'a>(ids: impl IntoIterator<Item = &'a String>) -> String {
    let v: Vec<String> = ids
        .into_iter()
        .map(|s| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect();
    if v.is_empty() {
        "''".to_owned()
    } else {
        v.join(", ")
    }
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// Reads the campaign's rows: plays of its creative at its boards, passes there during the
/// flight, the passers' store stays from `pre_days` before the flight to `post_days` after
/// it, their loyalty links, and the receipts of those loyalty ids.
pub async fn load(
    db: &clickhouse::Client,
    campaign_id: &str,
    pre_days: i64,
    post_days: i64,
) -> anyhow::Result<Inputs> {
    let campaigns: Vec<Campaign> = db
        .query(
            "SELECT campaign_id, brand, creative_id, boards, start_ms, end_ms, spend, currency, \
             window_days, slot_secs, loop_slots FROM campaigns FINAL WHERE campaign_id = ?",
        )
        .bind(campaign_id)
        .fetch_all()
        .await
        .context("reading table campaigns")?;
    let Some(campaign) = campaigns.into_iter().next() else {
        bail!("no campaign {campaign_id:?} in table campaigns (import campaigns.jsonl first)");
    };
    if campaign.boards.is_empty() {
        bail!("campaign {campaign_id:?} lists no boards");
    }
    let sites: Vec<Site> = db
        .query("SELECT site_id, kind, brand FROM sites FINAL")
        .fetch_all()
        .await
        .context("reading table sites")?;
    let stores: HashMap<String, String> = sites
        .into_iter()
        .filter(|s| s.kind == 1)
        .map(|s| (s.site_id, s.brand))
        .collect();
    if !stores.values().any(|b| *b == campaign.brand) {
        bail!(
            "no store of brand {:?} in table sites: nothing to convert to",
            campaign.brand
        );
    }
    let boards = in_list(&campaign.boards);
    let (from, to) = (campaign.start_ms, campaign.end_ms);
    let plays: Vec<Play> = db
        .query(&format!(
            "SELECT board_id, start_ms, end_ms FROM ad_plays FINAL \
             WHERE board_id IN ({boards}) AND day >= toDate(?) AND day <= toDate(?) \
             AND creative_id = ? AND end_ms > ? AND start_ms < ? ORDER BY board_id, start_ms"
        ))
        .bind(date(from - DAY_MS))
        .bind(date(to + DAY_MS))
        .bind(&campaign.creative_id)
        .bind(from - DAY_MS)
        .bind(to + DAY_MS)
        .fetch_all()
        .await
        .context("reading table ad_plays")?;
    let passes_sql = format!(
        "FROM visits FINAL WHERE site IN ({boards}) AND day >= toDate('{}') \
         AND day <= toDate('{}') AND retracted = 0 AND kind = 'visitor' \
         AND first_ms >= {from} AND first_ms < {to}",
        date(from),
        date(to)
    );
    let passes: Vec<Pass> = db
        .query(&format!(
            "SELECT site, device, epoch, class, first_ms, last_ms {passes_sql}"
        ))
        .fetch_all()
        .await
        .context("reading the passes (table visits)")?;
    let store_list = in_list(stores.keys());
    let (lo, hi) = (from - pre_days * DAY_MS, to + post_days * DAY_MS);
    let stays: Vec<StoreStay> = db
        .query(&format!(
            "SELECT site, device, day, first_ms, last_ms, kind FROM visits FINAL \
             WHERE site IN ({store_list}) AND day >= toDate('{}') AND day <= toDate('{}') \
             AND retracted = 0 AND last_ms >= {lo} AND first_ms < {hi} \
             AND device IN (SELECT device {passes_sql})",
            date(lo - DAY_MS),
            date(hi)
        ))
        .fetch_all()
        .await
        .context("reading the passers' store stays (table visits)")?;
    let links: Vec<Link> = db
        .query(&format!(
            "SELECT epoch, device, loyalty_id FROM links FINAL \
             WHERE device IN (SELECT device {passes_sql})"
        ))
        .fetch_all()
        .await
        .context("reading table links")?;
    let receipts: Vec<Receipt> = db
        .query(&format!(
            "SELECT store_id, at_ms, amount_cents, loyalty_id FROM receipts FINAL \
             WHERE store_id IN ({store_list}) AND day >= toDate('{}') AND day <= toDate('{}') \
             AND loyalty_id IN (SELECT loyalty_id FROM links FINAL \
             WHERE device IN (SELECT device {passes_sql}))",
            date(lo - DAY_MS),
            date(hi)
        ))
        .fetch_all()
        .await
        .context("reading table receipts")?;
    let data_end_ms: i64 = db
        .query("SELECT max(last_ms) FROM sightings")
        .fetch_one()
        .await
        .context("reading the end of the data (table sightings)")?;
    Ok(Inputs {
        campaign,
        stores,
        plays,
        passes,
        stays,
        links,
        receipts,
        data_end_ms,
    })
}
