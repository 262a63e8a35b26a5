//! The files the collector's importers read, and the truth files. Formats are documented in
//! simulator/README.md.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use wire::Millis;

use crate::activity::Visit;
use crate::plays::{Owner, Plays};
use crate::rng::{hash, Tag};
use crate::scenario::Scenario;
use crate::world::{Micros, SiteKind, World};

/// Why a city's files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The output directory is missing its permissions, or a path names a directory.
    #[error("cannot create {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The disk is full, or the file went away while it was written.
    #[error("writing the city's files failed")]
    Io(#[from] io::Error),
    #[error("writing a CSV file failed")]
    Csv(#[from] csv::Error),
    #[error("encoding JSON failed")]
    Json(#[from] serde_json::Error),
    #[error("encoding the scenario as TOML failed")]
    Toml(#[from] toml::ser::Error),
}

/// `.creating(path)`: names the file an I/O error was met creating.
pub(crate) trait Creating<T> {
    fn creating(self, path: &Path) -> Result<T, Error>;
}

impl<T> Creating<T> for io::Result<T> {
    fn creating(self, path: &Path) -> Result<T, Error> {
        self.map_err(|source| Error::Create {
            path: path.to_owned(),
            source,
        })
    }
}

pub fn create(path: &Path) -> Result<BufWriter<File>, Error> {
    Ok(BufWriter::with_capacity(
        1 << 16,
        File::create(path).creating(path)?,
    ))
}

/// A CSV file with its `header` written (the csv crate: a field with a comma, a quote or a
/// line break, such as a brand name, is quoted, as the importers expect).
pub fn csv_file(path: &Path, header: &[&str]) -> Result<csv::Writer<File>, Error> {
    let mut w = csv::Writer::from_writer(File::create(path).creating(path)?);
    w.write_record(header)?;
    Ok(w)
}

/// RFC 3339 UTC with milliseconds.
pub fn ts(t: Micros) -> Millis {
    Millis(t.div_euclid(1000))
}

fn lat_lon(s: &Scenario, x: f64, y: f64) -> (f64, f64) {
    let lat = s.city.origin_lat + y / 111_320.0;
    let lon = s.city.origin_lon + x / (111_320.0 * s.city.origin_lat.to_radians().cos());
    (lat, lon)
}

pub fn brand_of(s: &Scenario, w: &World, site: u32) -> String {
    match w.sites[site as usize].kind {
        SiteKind::Store { brand } => s.brands[usize::from(brand)].name.clone(),
        SiteKind::Billboard => String::new(),
    }
}

pub fn inventory(s: &Scenario, w: &World, dir: &Path) -> Result<(), Error> {
    let mut f = csv_file(
        &dir.join("sites.csv"),
        &[
            "site_id",
            "kind",
            "brand",
            "lat",
            "lon",
            "open_hour",
            "close_hour",
            "rssi_threshold_dbm",
            "min_dwell_secs",
        ],
    )?;
    for (i, site) in w.sites.iter().enumerate() {
        let (lat, lon) = lat_lon(s, site.x, site.y);
        let (kind, rssi, dwell) = match site.kind {
            SiteKind::Store { .. } => (
                "store",
                s.stores.rssi_threshold_dbm,
                s.stores.min_dwell_secs,
            ),
            SiteKind::Billboard => ("billboard", s.billboards.rssi_threshold_dbm, 0),
        };
        f.serialize((
            &site.id,
            kind,
            brand_of(s, w, i as u32),
            format!("{lat:.6}"),
            format!("{lon:.6}"),
            site.open_hour,
            site.close_hour,
            rssi,
            dwell,
        ))?;
    }
    f.flush()?;
    let mut f = csv_file(
        &dir.join("sensors.csv"),
        &["sensor_id", "site_id", "kind", "lat", "lon"],
    )?;
    for sensor in &w.sensors {
        let site = &w.sites[sensor.site as usize];
        let (lat, lon) = lat_lon(s, site.x, site.y);
        let kind = match site.kind {
            SiteKind::Store { .. } => "store",
            SiteKind::Billboard => "billboard",
        };
        f.serialize((
            &sensor.id,
            &site.id,
            kind,
            format!("{lat:.6}"),
            format!("{lon:.6}"),
        ))?;
    }
    f.flush()?;
    Ok(())
}

#[derive(Serialize)]
struct CampaignLine<'a> {
    id: &'a str,
    brand: &'a str,
    creative: &'a str,
    boards: Vec<&'a str>,
    start: Millis,
    end: Millis,
    spend: f64,
    currency: &'a str,
    window_days: u32,
    slot_secs: u32,
    loop_slots: u32,
    slots_per_loop: u32,
}

pub fn campaigns(s: &Scenario, w: &World, path: &Path) -> Result<(), Error> {
    let mut f = create(path)?;
    for c in &s.campaigns {
        let boards = if c.boards == 0 {
            &w.boards[..]
        } else {
            &w.boards[..c.boards as usize]
        };
        let line = CampaignLine {
            id: &c.id,
            brand: &c.brand,
            creative: &c.creative,
            boards: boards
                .iter()
                .map(|&b| w.sites[b as usize].id.as_str())
                .collect(),
            start: ts(w.day_start(c.start_day)),
            end: ts(w.day_start(c.start_day + c.days)),
            spend: c.spend,
            currency: &s.city.currency,
            window_days: c.window_days,
            slot_secs: s.billboards.slot_secs,
            loop_slots: s.billboards.loop_slots,
            slots_per_loop: c.slots_per_loop,
        };
        serde_json::to_writer(&mut f, &line)?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(())
}

/// Proof of play for day `d`, every board; returns the number of plays.
pub fn plays_of_day(
    s: &Scenario,
    w: &World,
    plays: &Plays,
    d: u32,
    f: &mut csv::Writer<File>,
) -> Result<u64, Error> {
    let mut n = 0;
    for &b in &w.boards {
        // Plays that start this day (one crossing midnight belongs to the day it starts).
        let from = w.day_start(d);
        for p in plays
            .between(b, from, w.day_start(d + 1))
            .filter(|p| p.start >= from)
        {
            let (creative, brand, campaign) = match p.owner {
                Owner::Campaign(c) => {
                    let camp = &s.campaigns[c];
                    (camp.creative.clone(), camp.brand.as_str(), camp.id.as_str())
                }
                Owner::Other(o) => {
                    let brand = s.billboards.other_brands[o].as_str();
                    (format!("{brand}-house"), brand, "")
                }
            };
            f.serialize((
                &w.sites[b as usize].id,
                ts(p.start).to_string(),
                ts(p.end).to_string(),
                creative,
                brand,
                campaign,
            ))?;
            n += 1;
        }
    }
    Ok(n)
}

/// A person's loyalty id at a brand (stable, not derived from anything the sensors see).
pub fn loyalty_id(w: &World, brand: &str, person: u32) -> String {
    let h = hash(&[w.seed, Tag::Receipt as u64, u64::from(person), 0x10a1]);
    format!("{brand}-L{:010x}", h & 0xff_ffff_ffff)
}

pub fn receipts(s: &Scenario, w: &World, visits: &[Visit], path: &Path) -> Result<u64, Error> {
    let mut rows: Vec<(&Visit, crate::activity::Receipt)> = visits
        .iter()
        .filter_map(|v| v.receipt.map(|r| (v, r)))
        .collect();
    rows.sort_by_key(|(v, r)| (r.at, v.store, r.id));
    let mut f = csv_file(
        path,
        &[
            "receipt_id",
            "store_id",
            "at",
            "amount",
            "currency",
            "loyalty_id",
        ],
    )?;
    for (v, r) in &rows {
        let brand = &s.brands[usize::from(v.brand)].name;
        let loyalty = if w.people[v.person as usize].member[usize::from(v.brand)] {
            loyalty_id(w, brand, v.person)
        } else {
            String::new()
        };
        f.serialize((
            format!("r-{:016x}", r.id),
            &w.sites[v.store as usize].id,
            ts(r.at).to_string(),
            format!("{}.{:02}", r.cents / 100, r.cents % 100),
            &s.city.currency,
            loyalty,
        ))?;
    }
    f.flush()?;
    Ok(rows.len() as u64)
}
