//! `footfall-collector import KIND FILE`: the fleet inventory, proof-of-play logs, campaigns,
//! receipts and device-loyalty links, in the formats the simulator writes (README.md).
//! Good rows are all imported; each bad row is reported as FILE:LINE: reason. Every table
//! is keyed so that importing a file again changes nothing (ReplacingMergeTree on the row's
//! identity).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::ch;
use crate::ch::rows::{
    day_of, CampaignRow, LinkRow, PlayRow, ReceiptRow, SensorRow, SiteCalibrationRow, SiteRow,
};
use crate::counting::{self, Calibration, Fitted};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// inventory/sites.csv
    Sites,
    /// inventory/sensors.csv
    Sensors,
    /// ad_plays.csv
    AdPlays,
    /// campaigns.jsonl
    Campaigns,
    /// receipts.csv
    Receipts,
    /// links.csv
    Links,
    /// A site's counting calibration: the CSV `footfall-collector calibrate` writes.
    Calibrations,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Report {
    pub table: &'static str,
    pub rows: u64,
    /// How many rows were bad.
    pub bad_rows: u64,
    /// "FILE:LINE: reason" of the first [`Report::KEPT`] bad rows, in file order.
    pub bad: Vec<String>,
}

impl Report {
    /// Bad rows whose reason is kept: a file of millions of bad rows (the wrong KIND, say)
    /// says why with its first ones, without holding them all.
    pub const KEPT: usize = 1000;

    fn bad(&mut self, reason: String) {
        self.bad_rows += 1;
        if self.bad.len() < Self::KEPT {
            self.bad.push(reason);
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "imported {} rows into {}", self.rows, self.table)?;
        if self.bad_rows > 0 {
            write!(f, "; {} bad rows:", self.bad_rows)?;
            for b in self.bad.iter().take(50) {
                write!(f, "\n  {b}")?;
            }
            let shown = self.bad.len().min(50) as u64;
            if self.bad_rows > shown {
                write!(f, "\n  ... and {} more", self.bad_rows - shown)?;
            }
        }
        Ok(())
    }
}

/// Why a file could not be imported at all (a bad row is reported in [`Report::bad`]
/// instead, and the good rows are imported).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:1: cannot read the header", path.display())]
    Header {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    /// The file is not of the kind named: check the KIND argument.
    #[error("{}:1: the header has no column {column} (expected {expected})", path.display())]
    MissingColumn {
        path: PathBuf,
        column: String,
        expected: String,
    },
    #[error("insert into {table} failed")]
    Insert {
        table: String,
        #[source]
        source: clickhouse::error::Error,
    },
}

/// One CSV record's fields, by column name.
struct Fields<'a> {
    columns: &'a HashMap<String, usize>,
    record: &'a csv::StringRecord,
}

impl Fields<'_> {
    fn str(&self, name: &str) -> &str {
        // Every record has the header's length (checked before), and `name` is a required
        // column.
        self.record.get(self.columns[name]).unwrap_or("")
    }

    /// An optional column's value: None when the file has no such column or the cell is
    /// empty.
    fn optional(&self, name: &str) -> Option<&str> {
        let i = *self.columns.get(name)?;
        self.record.get(i).filter(|v| !v.is_empty())
    }

    fn parse<T: FromStr>(&self, name: &str, what: &str) -> Result<T, String> {
        let v = self.str(name);
        v.parse()
            .map_err(|_| format!("column {name}: {v:?} is not {what}"))
    }

    fn id(&self, name: &str) -> Result<String, String> {
        let v = self.str(name);
        wire::validate_id(v).map_err(|e| format!("column {name}: {e}"))?;
        Ok(v.to_owned())
    }

    fn time_ms(&self, name: &str) -> Result<i64, String> {
        rfc3339_ms(self.str(name)).map_err(|e| format!("column {name}: {e}"))
    }
}

/// A CSV file (RFC 4180: quoted fields may hold commas, quotes and line breaks) with a
/// header naming at least the required columns, read a chunk of rows at a time: a month of
/// a city's plays is tens of millions of rows, more than the importer should hold.
struct CsvFile<'p> {
    path: &'p Path,
    reader: csv::Reader<std::io::BufReader<std::fs::File>>,
    columns: HashMap<String, usize>,
    record: csv::StringRecord,
}

impl<'p> CsvFile<'p> {
    fn open(path: &'p Path, required: &[&str]) -> Result<CsvFile<'p>, ImportError> {
        let file = std::fs::File::open(path).map_err(|source| ImportError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::Headers)
            .from_reader(std::io::BufReader::new(file));
        let columns: HashMap<String, usize> = reader
            .headers()
            .map_err(|source| ImportError::Header {
                path: path.to_owned(),
                source,
            })?
            .iter()
            .enumerate()
            .map(|(i, c)| (c.to_owned(), i))
            .collect();
        if let Some(missing) = required.iter().find(|c| !columns.contains_key(**c)) {
            return Err(ImportError::MissingColumn {
                path: path.to_owned(),
                column: (*missing).to_owned(),
                expected: required.join(","),
            });
        }
        Ok(CsvFile {
            path,
            reader,
            columns,
            record: csv::StringRecord::new(),
        })
    }

    /// The next `n` good rows (fewer at the end of the file; none once it is read), `row`
    /// called per record. A record that cannot be read (wrong field count, invalid UTF-8)
    /// is reported like a bad row, and the rest is read.
    fn chunk<T>(
        &mut self,
        n: usize,
        row: &mut impl FnMut(&Fields) -> Result<T, String>,
        report: &mut Report,
    ) -> Vec<T> {
        let mut out = Vec::new();
        while out.len() < n {
            let line = self.reader.position().line();
            let record = &mut self.record;
            let result = match self.reader.read_record(record) {
                Ok(false) => break,
                Ok(true) if record.iter().all(|f| f.trim().is_empty()) && record.len() == 1 => {
                    continue
                }
                Ok(true) if record.len() != self.columns.len() => Err(format!(
                    "{} fields, the header has {}",
                    record.len(),
                    self.columns.len()
                )),
                Ok(true) => row(&Fields {
                    columns: &self.columns,
                    record,
                }),
                Err(e) => Err(match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
                    _ => e.to_string(),
                }),
            };
            let line = record.position().map_or(line, csv::Position::line);
            match result {
                Ok(r) => out.push(r),
                Err(reason) => report.bad(format!("{}:{line}: {reason}", self.path.display())),
            }
        }
        out
    }
}

/// Rows inserted in one request.
const CHUNK: usize = 100_000;

/// Reads a whole (small) CSV file; see [`CsvFile`].
fn read_csv<T>(
    path: &Path,
    required: &[&str],
    mut row: impl FnMut(&Fields) -> Result<T, String>,
    report: &mut Report,
) -> Result<Vec<T>, ImportError> {
    Ok(CsvFile::open(path, required)?.chunk(usize::MAX, &mut row, report))
}

/// Imports a CSV file into `table` a chunk of rows at a time; the rows imported.
async fn import_csv<T: clickhouse::RowOwned + clickhouse::RowWrite>(
    client: &clickhouse::Client,
    (path, required): (&Path, &[&str]),
    table: &'static str,
    mut row: impl FnMut(&Fields) -> Result<T, String>,
    report: &mut Report,
) -> Result<usize, ImportError> {
    report.table = table;
    let mut file = CsvFile::open(path, required)?;
    let mut n = 0;
    loop {
        let rows = file.chunk(CHUNK, &mut row, report);
        if rows.is_empty() {
            return Ok(n);
        }
        insert(client, table, &rows).await?;
        n += rows.len();
    }
}

/// The columns a calibrations CSV must have (`footfall-collector calibrate` writes them and
/// `fixture_hours`, which a file written before it was fitted lacks: those were fitted with
/// the 4-hour rule, [`counting::FIXTURE_HOURS`]).
pub const CALIBRATION_COLUMNS: [&str; 5] = [
    "site_id",
    "rssi_min_dbm",
    "people_per_device",
    "windows",
    "mae",
];

fn calibration(f: &Fields) -> Result<(String, Calibration), String> {
    let cal = Calibration {
        rssi_min_dbm: f.parse("rssi_min_dbm", "a signal level in dBm")?,
        people_per_device: f.parse("people_per_device", "a number")?,
        fixture_hours: match f.optional("fixture_hours") {
            Some(_) => f.parse("fixture_hours", "a number of hours")?,
            None => counting::FIXTURE_HOURS,
        },
        fitted: Some(Fitted {
            windows: f.parse("windows", "a count of windows")?,
            mae: f.parse("mae", "a number")?,
        }),
    };
    cal.validate().map_err(|e| format!("column {e}"))?;
    Ok((f.id("site_id")?, cal))
}

/// Reads a calibrations CSV: (site, calibration) per good row; the bad rows are in the report.
pub fn read_calibrations(path: &Path) -> Result<(Vec<(String, Calibration)>, Report), ImportError> {
    let mut report = Report {
        table: "site_calibrations",
        ..Report::default()
    };
    let rows = read_csv(path, &CALIBRATION_COLUMNS, calibration, &mut report)?;
    Ok((rows, report))
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn rfc3339_ms(v: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{v:?} is not an RFC 3339 time ({e})"))
}

fn site_kind(v: &str) -> Result<i8, String> {
    match v {
        "store" => Ok(1),
        "billboard" => Ok(2),
        _ => Err(format!("column kind: {v:?} is not store or billboard")),
    }
}

/// A campaign line of campaigns.jsonl.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignLine {
    id: String,
    brand: String,
    creative: String,
    boards: Vec<String>,
    start: String,
    end: String,
    spend: f64,
    currency: String,
    window_days: u16,
    slot_secs: u16,
    loop_slots: u16,
    slots_per_loop: u16,
}

fn lat_lon(f: &Fields) -> Result<(f64, f64), String> {
    let lat: f64 = f.parse("lat", "a latitude")?;
    let lon: f64 = f.parse("lon", "a longitude")?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(format!("lat/lon {lat}, {lon} out of range"));
    }
    Ok((lat, lon))
}

fn amount_cents(v: &str) -> Result<i64, String> {
    let bad = || format!("column amount: {v:?} is not an amount like 12.34");
    let (units, cents) = v.split_once('.').unwrap_or((v, "0"));
    if cents.len() > 2 || units.is_empty() {
        return Err(bad());
    }
    let units: i64 = units.parse().map_err(|_| bad())?;
    let cents: i64 = format!("{cents:0<2}").parse().map_err(|_| bad())?;
    if units < 0 {
        return Err(format!("column amount: {v:?} is negative"));
    }
    Ok(units * 100 + cents)
}

/// Inserts in chunks of [`CHUNK`] rows, so a large file does not make one huge request.
async fn insert<T: clickhouse::RowOwned + clickhouse::RowWrite>(
    client: &clickhouse::Client,
    table: &str,
    rows: &[T],
) -> Result<(), ImportError> {
    for chunk in rows.chunks(CHUNK) {
        ch::insert(client, table, chunk)
            .await
            .map_err(|source| ImportError::Insert {
                table: table.to_owned(),
                source,
            })?;
    }
    Ok(())
}

/// Imports `path` as `kind` through `client` (the configured database).
pub async fn import(
    client: &clickhouse::Client,
    kind: Kind,
    path: &Path,
) -> Result<Report, ImportError> {
    let now = wire::Millis::now().0;
    let mut report = Report::default();
    macro_rules! csv {
        ($table:literal, $cols:expr, $row:expr) => {
            import_csv(client, (path, $cols), $table, $row, &mut report).await?
        };
    }
    let n = match kind {
        Kind::Sites => {
            csv!(
                "sites",
                &[
                    "site_id",
                    "kind",
                    "brand",
                    "lat",
                    "lon",
                    "open_hour",
                    "close_hour",
                    "rssi_threshold_dbm",
                    "min_dwell_secs"
                ],
                |f| {
                    let (lat, lon) = lat_lon(f)?;
                    let (open_hour, close_hour): (u8, u8) = (
                        f.parse("open_hour", "an hour")?,
                        f.parse("close_hour", "an hour")?,
                    );
                    if open_hour >= close_hour || close_hour > 24 {
                        return Err(format!("opening hours {open_hour}-{close_hour} are not 0 <= open < close <= 24"));
                    }
                    let tz = f.optional("tz").unwrap_or("UTC");
                    if tz.parse::<chrono_tz::Tz>().is_err() {
                        return Err(format!("column tz: {tz:?} is not an IANA time zone name"));
                    }
                    let capture_rate = match f.optional("capture_rate") {
                        None => 0.0,
                        Some(c) => match c.parse::<f32>() {
                            Ok(r) if r > 0.0 && r <= 1.0 => r,
                            _ => {
                                return Err(format!(
                                    "column capture_rate: {c:?} is not a share in (0, 1]"
                                ))
                            }
                        },
                    };
                    Ok(SiteRow {
                        site_id: f.id("site_id")?,
                        kind: site_kind(f.str("kind"))?,
                        brand: f.str("brand").to_owned(),
                        lat,
                        lon,
                        tz: tz.to_owned(),
                        capture_rate,
                        open_hour,
                        close_hour,
                        rssi_threshold_dbm: f.parse("rssi_threshold_dbm", "a dBm value")?,
                        min_dwell_secs: f.parse("min_dwell_secs", "a number of seconds")?,
                        imported_ms: now,
                    })
                }
            )
        }
        Kind::Sensors => csv!(
            "sensors",
            &["sensor_id", "site_id", "kind", "lat", "lon"],
            |f| {
                let (lat, lon) = lat_lon(f)?;
                Ok(SensorRow {
                    sensor_id: f.id("sensor_id")?,
                    site_id: f.id("site_id")?,
                    kind: site_kind(f.str("kind"))?,
                    lat,
                    lon,
                    imported_ms: now,
                })
            }
        ),
        Kind::AdPlays => csv!(
            "ad_plays",
            &[
                "board_id",
                "start",
                "end",
                "creative_id",
                "brand",
                "campaign_id"
            ],
            |f| {
                let (start_ms, end_ms) = (f.time_ms("start")?, f.time_ms("end")?);
                if end_ms <= start_ms {
                    return Err("end is not after start".into());
                }
                Ok(PlayRow {
                    board_id: f.id("board_id")?,
                    day: day_of(start_ms),
                    start_ms,
                    end_ms,
                    creative_id: f.id("creative_id")?,
                    brand: f.str("brand").to_owned(),
                    campaign_id: f.str("campaign_id").to_owned(),
                })
            }
        ),
        Kind::Receipts => csv!(
            "receipts",
            &[
                "receipt_id",
                "store_id",
                "at",
                "amount",
                "currency",
                "loyalty_id"
            ],
            |f| {
                let at_ms = f.time_ms("at")?;
                Ok(ReceiptRow {
                    store_id: f.id("store_id")?,
                    day: day_of(at_ms),
                    receipt_id: f.id("receipt_id")?,
                    at_ms,
                    amount_cents: amount_cents(f.str("amount"))?,
                    currency: f.str("currency").to_owned(),
                    loyalty_id: f.str("loyalty_id").to_owned(),
                })
            }
        ),
        Kind::Links => csv!("links", &["epoch", "device_key", "loyalty_id"], |f| {
            let key: wire::DeviceKey = f.parse("device_key", "16 hex digits")?;
            let loyalty_id = f.str("loyalty_id");
            if loyalty_id.is_empty() {
                return Err("column loyalty_id is empty".into());
            }
            Ok(LinkRow {
                epoch: f.parse("epoch", "an epoch number")?,
                device: key.0,
                loyalty_id: loyalty_id.to_owned(),
                imported_ms: now,
            })
        }),
        Kind::Calibrations => csv!("site_calibrations", &CALIBRATION_COLUMNS, |f| {
            let (site_id, c) = calibration(f)?;
            let fitted = c.fitted.unwrap_or(Fitted {
                windows: 0,
                mae: f64::NAN,
            });
            Ok(SiteCalibrationRow {
                site_id,
                rssi_min_dbm: c.rssi_min_dbm,
                people_per_device: c.people_per_device,
                fixture_hours: c.fixture_hours,
                windows: u32::try_from(fitted.windows).unwrap_or(u32::MAX),
                mae: fitted.mae,
                imported_ms: now,
            })
        }),
        Kind::Campaigns => {
            report.table = "campaigns";
            let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
                path: path.to_owned(),
                source,
            })?;
            let mut rows = Vec::new();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let parsed = serde_json::from_str::<CampaignLine>(line)
                    .map_err(|e| e.to_string())
                    .and_then(|c| {
                        wire::validate_id(&c.id).map_err(|e| format!("id: {e}"))?;
                        let (start_ms, end_ms) = (rfc3339_ms(&c.start)?, rfc3339_ms(&c.end)?);
                        if end_ms <= start_ms
                            || c.slots_per_loop == 0
                            || c.slots_per_loop >= c.loop_slots
                        {
                            return Err(
                                "needs start < end and 0 < slots_per_loop < loop_slots".to_string()
                            );
                        }
                        Ok(CampaignRow {
                            campaign_id: c.id,
                            brand: c.brand,
                            creative_id: c.creative,
                            boards: c.boards,
                            start_ms,
                            end_ms,
                            spend: c.spend,
                            currency: c.currency,
                            window_days: c.window_days,
                            slot_secs: c.slot_secs,
                            loop_slots: c.loop_slots,
                            slots_per_loop: c.slots_per_loop,
                            imported_ms: now,
                        })
                    });
                match parsed {
                    Ok(r) => rows.push(r),
                    Err(reason) => report.bad(format!("{}:{}: {reason}", path.display(), i + 1)),
                }
            }
            insert(client, "campaigns", &rows).await?;
            rows.len()
        }
    };
    report.rows = n as u64;
    Ok(report)
}
