//! The collector's stream stages alone, at city scale: the visits ([`Visits`]) and the
//! people counting ([`Occupancy`]: occupancy windows and store traffic), fed one city's
//! sightings in the order its sensors sent them, with the watermark the stage's clock would
//! give (the newest sighting less the lateness, in buckets), on one thread, with no broker
//! or ClickHouse beside them. Where `benches/city.sh` measures the collector's whole CPU
//! per sighting, this says what each stage costs of it, and runs in minutes where the
//! city's ingest takes a quarter of an hour: the bench to profile the stages with. Beside
//! them, the ingest's sort of each batch into the sightings table's order (the commit's,
//! [`SightingRow::sort_table_order`]), over the same rows in batches of
//! `ingest.batch_max_rows`.
//!
//! Input: the `.msgs` files `publish-city prepare` wrote for a city (`benches/city.sh` keeps
//! them in `DIR/msgs`) and its inventory (`DIR/city/inventory`): the first `DAYS` days of
//! messages (default 4: the stages hold `HORIZON_HOURS`, default the collector's 48, so the
//! last two are in steady state; `benches/city.sh` runs the collector with 6), decoded as
//! the collector decodes them before the clock starts.
//!
//! Usage: `cargo bench --profile ci -p benches --bench stages -- MSGS INVENTORY [DAYS
//! [HORIZON_HOURS]]` (absolute paths: cargo runs a bench in its package's directory).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use collector::ch::rows::{SightingRow, VisitRow};
use collector::config::Config;
use collector::decode::{decode, Decoded};
use collector::occupancy::{Counted, Occupancy};
use collector::visits::{Rules, Seen, SiteRule, Visits};

const DAY_MS: i64 = 86_400_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (msgs, inventory, days, horizon) = match &args[..] {
        [m, i] => (m, i, 4, 48),
        [m, i, d] => (m, i, d.parse().context("DAYS")?, 48),
        [m, i, d, h] => (
            m,
            i,
            d.parse().context("DAYS")?,
            h.parse().context("HORIZON_HOURS")?,
        ),
        _ => bail!("usage: stages MSGS INVENTORY [DAYS [HORIZON_HOURS]] (see benches/README.md)"),
    };
    let cfg = Config::parse(&format!(
        "version = 1\n[clickhouse]\nurl = \"http://127.0.0.1:1\"\n[mqtt]\n\
         url = \"mqtt://127.0.0.1:1\"\n[ingest]\nmax_age_days = 3650\n\
         [visits]\nhorizon_hours = {horizon}\n"
    ))?;
    let (sensors, rules) = inventory_of(Path::new(inventory), &cfg)?;
    let messages = read(Path::new(msgs), &sensors, &cfg, days)?;
    let sort = commit_sort(&messages, cfg.ingest().batch_max_rows());
    let batches: Vec<(i64, Vec<Seen>)> = (messages.into_iter())
        .map(|(at, rows)| (at, rows.iter().map(|r| Seen::new(r, false)).collect()))
        .collect();
    let sightings: usize = batches.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "{sightings} sightings in {} messages, {days} days",
        batches.len()
    );

    let v = cfg.visits();
    let (bucket_ms, lateness_ms, horizon_ms) = (v.bucket_ms(), v.lateness_ms(), v.horizon_ms());
    let mut visits = Visits::new(i64::MIN);
    let mut occupancy = Occupancy::new(v.max_devices_per_site(), i64::MIN);
    let (mut visit_rows, mut counted) = (Vec::new(), Vec::new());
    let (mut written, mut written_counted) = (0usize, 0usize);
    let (mut t_visits, mut t_occupancy) = (Duration::ZERO, Duration::ZERO);
    let mut newest = i64::MIN;
    let mut bucket: Option<i64> = None;
    let mut version = 0u64;
    let mut tables = Tables::default();
    for (_, batch) in &batches {
        newest = batch.iter().map(|s| s.last_ms).fold(newest, i64::max);
        let now = (newest - lateness_ms).div_euclid(bucket_ms);
        let watermark = bucket.map(|b| b * bucket_ms);
        let t = Instant::now();
        visits.insert_all(batch, &rules, 0, |_| {});
        let t1 = Instant::now();
        occupancy.insert_all(batch, watermark, horizon_ms);
        let t2 = Instant::now();
        t_visits += t1 - t;
        t_occupancy += t2 - t1;
        if bucket.is_none_or(|b| now > b) {
            bucket = Some(now);
            version += 1;
            let w = Some(now * bucket_ms);
            let t = Instant::now();
            visits.emit(w, horizon_ms, &rules, version, &mut visit_rows);
            let t1 = Instant::now();
            occupancy.emit(w, horizon_ms, &rules, version, &mut counted);
            let t2 = Instant::now();
            t_visits += t1 - t;
            t_occupancy += t2 - t1;
            written += visit_rows.len();
            written_counted += counted.len();
            tables.add(&mut visit_rows, &mut counted);
        }
    }
    let t = Instant::now();
    visits.emit(None, horizon_ms, &rules, version + 1, &mut visit_rows);
    let t1 = Instant::now();
    occupancy.emit(None, horizon_ms, &rules, version + 1, &mut counted);
    t_visits += t1 - t;
    t_occupancy += t1.elapsed();
    written += visit_rows.len();
    written_counted += counted.len();
    tables.add(&mut visit_rows, &mut counted);

    let per = |d: Duration| d.as_secs_f64() * 1e6 / sightings.max(1) as f64;
    println!("stages, {sightings} sightings of {days} days, one thread (µs per sighting):");
    println!(
        "  visits     {:>6.3}  ({:.1} s, {written} visit rows)",
        per(t_visits),
        t_visits.as_secs_f64()
    );
    println!(
        "  occupancy  {:>6.3}  ({:.1} s, {written_counted} occupancy and traffic rows)",
        per(t_occupancy),
        t_occupancy.as_secs_f64()
    );
    println!("  both       {:>6.3}", per(t_visits + t_occupancy));
    println!(
        "  and the commit's sort of its batches into the table's order {:.3} ({:.1} s)",
        per(sort),
        sort.as_secs_f64()
    );
    println!(
        "the tables as they would stand (the last version of each row): {} visits, {} occupancy and traffic rows, digest {:016x}",
        tables.visits.len(),
        tables.counted.len(),
        tables.digest()
    );
    Ok(())
}

/// The time the ingest's commit takes to sort the messages' rows into the sightings table's
/// order, in batches of `batch_max_rows` taken in the order the messages were sent.
fn commit_sort(messages: &[(i64, Vec<SightingRow>)], batch_max_rows: usize) -> Duration {
    let mut took = Duration::ZERO;
    let mut batch: Vec<SightingRow> = Vec::with_capacity(batch_max_rows);
    let mut sort = |batch: &mut Vec<SightingRow>| {
        let t = Instant::now();
        SightingRow::sort_table_order(batch);
        took += t.elapsed();
        batch.clear();
    };
    for (_, rows) in messages {
        batch.extend(rows.iter().cloned());
        if batch.len() >= batch_max_rows {
            sort(&mut batch);
        }
    }
    sort(&mut batch);
    took
}

/// The rows' last versions, as a ReplacingMergeTree keeps them: by each table's key, a hash
/// of the row without its version. Its digest tells whether a change to the stages changed
/// what they write, not only how fast.
#[derive(Default)]
struct Tables {
    visits: HashMap<u64, u64>,
    counted: HashMap<u64, u64>,
}

impl Tables {
    fn add(&mut self, visits: &mut Vec<VisitRow>, counted: &mut Vec<Counted>) {
        for mut r in visits.drain(..) {
            r.version = 0;
            let key = hash(&(&r.site, r.day, r.device, r.visit_id));
            self.visits.insert(key, hash(&format!("{r:?}")));
        }
        for c in counted.drain(..) {
            let (key, row) = match c {
                Counted::Occupancy(mut r) => {
                    r.version = 0;
                    (
                        hash(&(&r.site, r.window_mins, r.start_ms)),
                        format!("{r:?}"),
                    )
                }
                Counted::Traffic(mut r) => {
                    r.version = 0;
                    (hash(&(&r.site, r.hour_ms)), format!("{r:?}"))
                }
            };
            self.counted.insert(key, hash(&row));
        }
    }

    /// Independent of the order the rows came in.
    fn digest(&self) -> u64 {
        let sum = |m: &HashMap<u64, u64>| {
            m.iter()
                .fold(0u64, |acc, (k, v)| acc.wrapping_add(hash(&(k, v))))
        };
        hash(&(sum(&self.visits), sum(&self.counted)))
    }
}

fn hash(x: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    x.hash(&mut h);
    h.finish()
}

/// The sensors' sites, and the sites' rules over the configuration's defaults (UTC: the
/// simulated cities' inventories name no time zone).
fn inventory_of(dir: &Path, cfg: &Config) -> anyhow::Result<(HashMap<String, String>, Rules)> {
    let mut sensors = HashMap::new();
    for r in csv::Reader::from_path(dir.join("sensors.csv"))?.deserialize() {
        let r: HashMap<String, String> = r?;
        sensors.insert(r["sensor_id"].clone(), r["site_id"].clone());
    }
    let mut rules = Rules::defaults(cfg.visits());
    for r in csv::Reader::from_path(dir.join("sites.csv"))?.deserialize() {
        let r: HashMap<String, String> = r?;
        let num = |k: &str| -> anyhow::Result<f64> {
            r[k].parse()
                .with_context(|| format!("sites.csv {k} {:?}", r[k]))
        };
        let rule = SiteRule {
            board: r["kind"] == "billboard",
            rssi_threshold_dbm: num("rssi_threshold_dbm")? as i8,
            min_dwell_secs: num("min_dwell_secs")? as u32,
            open_hour: num("open_hour")? as u8,
            close_hour: num("close_hour")? as u8,
            tz: chrono_tz::UTC,
            capture_rate: r.get("capture_rate").and_then(|c| c.parse::<f32>().ok()),
        };
        rules.sites.insert(r["site_id"].clone(), rule);
    }
    Ok((sensors, rules))
}

/// The first `days` days of every sensor's messages, decoded into the stage's records, in
/// the order they were sent (by `sent_at`, then sensor).
fn read(
    dir: &Path,
    sensors: &HashMap<String, String>,
    cfg: &Config,
    days: i64,
) -> anyhow::Result<Vec<(i64, Vec<SightingRow>)>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| dir.display().to_string())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    // The first message's day: each file's first `sent_at` follows its topic.
    let mut start = i64::MAX;
    for p in &files {
        let mut head = vec![0u8; 2];
        let mut f = std::fs::File::open(p)?;
        f.read_exact(&mut head)?;
        head.resize(
            2 + usize::from(u16::from_le_bytes([head[0], head[1]])) + 8,
            0,
        );
        f.read_exact(&mut head[2..])?;
        let at = head.len() - 8;
        start = start.min(i64::from_le_bytes(head[at..].try_into()?));
    }
    let end = start.div_euclid(DAY_MS) * DAY_MS + days * DAY_MS;
    let mut out = Vec::new();
    for p in &files {
        let sensor = benches::msgs::messages(&std::fs::read(p)?)?;
        for (sent_at, payload) in sensor.payloads.iter().take_while(|p| p.0 < end) {
            match decode(&sensor.topic, payload, *sent_at, sensors, cfg.ingest()) {
                Decoded::Sightings(rows, _, _) => out.push((*sent_at, rows)),
                Decoded::Status(_) => {}
                Decoded::Rejected(reason, row) => {
                    bail!("{}: {} ({})", sensor.topic, reason.as_str(), row.detail)
                }
            }
        }
    }
    out.sort_by_key(|(sent_at, _)| *sent_at);
    Ok(out)
}
