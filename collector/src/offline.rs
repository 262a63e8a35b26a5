//! The counting estimator offline, for evaluation and calibration: the agent's `replay --out`
//! envelopes in, CSV out (`footfall-collector occupancy`, `footfall-collector calibrate`).
//! The estimate is [`crate::counting`]'s, the code the collector runs, not a copy.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::counting::{Calibration, Sensed, Window};

/// Why an offline input could not be read; each names the file and, where it applies, the line.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: not a file of envelopes of contract version {}-{}: {reason}",
        path.display(),
        wire::MIN_VERSION,
        wire::VERSION
    )]
    Envelope { path: PathBuf, reason: String },
    #[error("{}: envelopes from {n} sites ({sites}); the estimate is per site: pass one site's", path.display())]
    Sites {
        path: PathBuf,
        n: usize,
        sites: String,
    },
    #[error("{}:{line}: {reason}", path.display())]
    Truth {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    /// A calibrations file that cannot be read, a bad row, or no row for the site.
    #[error("{reason}")]
    Calibration { reason: String },
    #[error("cannot write the CSV")]
    Write(#[source] std::io::Error),
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> OfflineError + '_ {
    |source| OfflineError::Read {
        path: path.to_owned(),
        source,
    }
}

/// Every sighting in a file of envelopes of one site (JSON lines or binary: wire docs, "Files
/// of envelopes"), and the site (empty for an empty file). Interim updates are kept: their
/// final version covers the same span, and a device counts once per window anyway.
pub fn read_envelopes(path: &Path) -> Result<(String, Vec<Sensed>), OfflineError> {
    let file = File::open(path).map_err(read_error(path))?;
    let mut sightings = Vec::new();
    let mut sites = std::collections::BTreeSet::new();
    for (i, env) in wire::file::records(BufReader::new(file)).enumerate() {
        let bad = |reason: String| OfflineError::Envelope {
            path: path.to_owned(),
            reason,
        };
        let env = env.map_err(|e| match e {
            wire::file::FileError::Io(source) => OfflineError::Read {
                path: path.to_owned(),
                source,
            },
            e => bad(e.to_string()),
        })?;
        if !wire::readable(env.v) {
            return Err(bad(format!("envelope {} is of version {}", i + 1, env.v)));
        }
        sites.insert(env.site);
        sightings.extend(env.sightings.iter().map(|s| Sensed {
            device: s.device.0,
            link: s.link.map_or(0, |l| l.0),
            global: s.class == wire::IdentityClass::Global,
            fingerprint: s.fingerprint.0,
            first_ms: s.first_seen.0,
            last_ms: s.last_seen.0,
            rssi_max: s.rssi_max,
        }));
    }
    if sites.len() > 1 {
        return Err(OfflineError::Sites {
            path: path.to_owned(),
            n: sites.len(),
            sites: sites.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    Ok((sites.pop_first().unwrap_or_default(), sightings))
}

/// `site`'s calibration from a calibrations CSV (as `calibrate` writes it, and as `import
/// calibrations` reads it), checked.
pub fn read_calibration(path: &Path, site: &str) -> Result<Calibration, OfflineError> {
    let bad = |reason: String| OfflineError::Calibration { reason };
    let (rows, report) = crate::import::read_calibrations(path).map_err(|e| {
        let chain: Vec<String> =
            std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                .map(ToString::to_string)
                .collect();
        bad(chain.join(": "))
    })?;
    if let Some(first) = report.bad.into_iter().next() {
        return Err(bad(first));
    }
    rows.into_iter()
        .find(|(s, _)| s == site)
        .map(|(_, c)| c)
        .ok_or_else(|| {
            bad(format!(
                "{}: no calibration for site {site:?}",
                path.display()
            ))
        })
}

/// A calibrations CSV of one row: `site`'s calibration.
pub fn write_calibration(
    out: impl Write,
    site: &str,
    cal: &Calibration,
) -> Result<(), OfflineError> {
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| OfflineError::Write(e.into());
    let [site_id, floor, scale, windows_column, mae_column] = crate::import::CALIBRATION_COLUMNS;
    w.write_record([
        site_id,
        floor,
        scale,
        "fixture_hours",
        windows_column,
        mae_column,
    ])
    .map_err(io)?;
    let (windows, mae) = cal
        .fitted
        .as_ref()
        .map_or((0, f64::NAN), |f| (f.windows, f.mae));
    w.write_record([
        site.to_owned(),
        cal.rssi_min_dbm.to_string(),
        format!("{:.6}", cal.people_per_device),
        cal.fixture_hours.to_string(),
        windows.to_string(),
        format!("{mae:.4}"),
    ])
    .map_err(io)?;
    w.flush().map_err(OfflineError::Write)
}

/// A truth CSV: header `window_start,people`, one labelled window per row (RFC 3339 start,
/// aligned to `window_ms`; people >= 0).
pub fn read_truth(path: &Path, window_ms: i64) -> Result<BTreeMap<i64, f64>, OfflineError> {
    let mut r = csv::Reader::from_path(path).map_err(|e| OfflineError::Truth {
        path: path.to_owned(),
        line: 0,
        reason: e.to_string(),
    })?;
    let mut truth = BTreeMap::new();
    for rec in r.records() {
        let bad = |line: u64, reason: String| OfflineError::Truth {
            path: path.to_owned(),
            line,
            reason,
        };
        let rec =
            rec.map_err(|e| bad(e.position().map_or(0, csv::Position::line), e.to_string()))?;
        let line = rec.position().map_or(0, csv::Position::line);
        let start = DateTime::parse_from_rfc3339(rec.get(0).unwrap_or_default())
            .map_err(|e| bad(line, format!("window_start: {e}")))?
            .timestamp_millis();
        if start.rem_euclid(window_ms) != 0 {
            return Err(bad(
                line,
                format!(
                    "window_start: not aligned to {} min windows",
                    window_ms / 60_000
                ),
            ));
        }
        let people: f64 = rec
            .get(1)
            .unwrap_or_default()
            .trim()
            .parse()
            .ok()
            .filter(|p: &f64| p.is_finite() && *p >= 0.0)
            .ok_or_else(|| bad(line, "people: not a number >= 0".into()))?;
        truth.insert(start, people);
    }
    Ok(truth)
}

/// RFC 3339 UTC with seconds.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `window_start,people,lo,hi`, people to 0.01.
pub fn write_occupancy(out: impl Write, windows: &[Window]) -> Result<(), OfflineError> {
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| OfflineError::Write(e.into());
    w.write_record(["window_start", "people", "lo", "hi"])
        .map_err(io)?;
    for x in windows {
        w.write_record([
            rfc3339(x.start_ms),
            format!("{:.2}", x.people),
            format!("{:.2}", x.lo),
            format!("{:.2}", x.hi),
        ])
        .map_err(io)?;
    }
    w.flush().map_err(OfflineError::Write)
}
