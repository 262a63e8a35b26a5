//! The fleet inventory as the ingest path and the stream stage need it: which site each
//! sensor belongs to (table `sensors`), each site's visit rules (table `sites`, over the
//! `[visits]` defaults) and counting calibration (table `site_calibrations`). Read at start, again after a message from an unknown sensor (at
//! most every 5 s: a sensor imported since), and every `ingest.inventory_refresh_secs`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use tracing::{info, warn};

use crate::ch::rows::{SensorSite, SiteCalibrationRow, SiteRules};
use crate::ch::{QueryError, What};
use crate::config::{Config, VisitsConfig};
use crate::counting::{Calibration, Fitted};
use crate::visits::{Rules, SiteRule};

/// How soon after the last read a miss reads the sensors again.
const MISS_REREAD: Duration = Duration::from_secs(5);

pub struct Inventory {
    db: clickhouse::Client,
    defaults: VisitsConfig,
    refresh: Duration,
    sensors: HashMap<String, String>,
    /// Shared with the stream stage's workers, which read it at every step.
    rules: Arc<RwLock<Rules>>,
    read_at: Instant,
}

impl Inventory {
    /// Reads the sensors and the sites' rules.
    pub async fn load(db: clickhouse::Client, cfg: &Config) -> Result<Inventory, QueryError> {
        let sensors = load_sensors(&db).await?;
        info!(sensors = sensors.len(), "fleet inventory loaded");
        let rules = load_rules(&db, cfg.visits()).await?;
        Ok(Inventory {
            db,
            defaults: cfg.visits().clone(),
            refresh: cfg.ingest().inventory_refresh(),
            sensors,
            rules: Arc::new(RwLock::new(rules)),
            read_at: Instant::now(),
        })
    }

    /// Sensor id -> site id.
    pub fn sensors(&self) -> &HashMap<String, String> {
        &self.sensors
    }

    /// The sites' rules, as the stream stage shares them.
    pub fn rules(&self) -> Arc<RwLock<Rules>> {
        self.rules.clone()
    }

    /// After a message from a sensor not in the inventory: reads the inventory again unless
    /// they were read (or tried) in the last 5 s. True if it read them (decode the message
    /// again). When ClickHouse cannot answer, the last inventory stays.
    pub async fn reread_after_miss(&mut self) -> bool {
        if self.read_at.elapsed() <= MISS_REREAD {
            return false;
        }
        self.reread().await
    }

    /// Reads the sensors and the rules now (before a replay of held messages). True if it
    /// read them; when ClickHouse cannot answer, the last inventory stays.
    pub async fn reread(&mut self) -> bool {
        self.read_at = Instant::now();
        let read = async {
            Ok::<_, QueryError>((
                load_sensors(&self.db).await?,
                load_rules(&self.db, &self.defaults).await?,
            ))
        };
        match read.await {
            Ok((sensors, rules)) => {
                self.sensors = sensors;
                let mut current = self.rules.write().expect("not poisoned");
                *current = Rules {
                    generation: current.generation + 1,
                    ..rules
                };
                true
            }
            Err(e) => {
                kept_last(&e);
                false
            }
        }
    }

    /// Reads the sensors and the rules again once `inventory_refresh_secs` have passed
    /// since the last read (or try). When ClickHouse cannot answer, the last inventory stays:
    /// an outage does not stop ingest.
    pub async fn refresh_if_due(&mut self) {
        if self.read_at.elapsed() > self.refresh {
            self.reread().await;
        }
    }
}

fn kept_last(e: &QueryError) {
    warn!(error = %e, "cannot read the inventory again; the last one stays in use");
}

async fn load_sensors(db: &clickhouse::Client) -> Result<HashMap<String, String>, QueryError> {
    let rows: Vec<SensorSite> = db
        .query("SELECT sensor_id, site_id FROM sensors FINAL")
        .fetch_all()
        .await
        .what(|| "cannot read the fleet inventory (table sensors)".into())?;
    Ok(rows.into_iter().map(|r| (r.sensor_id, r.site_id)).collect())
}

/// The sites' rules from the inventory, over the configured defaults.
async fn load_rules(db: &clickhouse::Client, v: &VisitsConfig) -> Result<Rules, QueryError> {
    let rows: Vec<SiteRules> = db
        .query(
            "SELECT site_id, kind, tz, capture_rate, rssi_threshold_dbm, min_dwell_secs, \
             open_hour, close_hour FROM sites FINAL",
        )
        .fetch_all()
        .await
        .what(|| "cannot read the sites' rules (table sites)".into())?;
    let calibrations: Vec<SiteCalibrationRow> = db
        .query(
            "SELECT site_id, rssi_min_dbm, people_per_device, fixture_hours, windows, mae, \
             imported_ms \
             FROM site_calibrations FINAL",
        )
        .fetch_all()
        .await
        .what(|| "cannot read the sites' calibrations (table site_calibrations)".into())?;
    Ok(Rules {
        calibrations: calibrations
            .into_iter()
            .map(|r| {
                let cal = Calibration {
                    rssi_min_dbm: r.rssi_min_dbm,
                    people_per_device: r.people_per_device,
                    fixture_hours: r.fixture_hours,
                    fitted: Some(Fitted {
                        windows: r.windows as usize,
                        mae: r.mae,
                    }),
                };
                (r.site_id, cal)
            })
            .collect(),
        sites: rows
            .into_iter()
            .map(|r| {
                // The importer checks the name; a row edited by hand to a bad one is UTC.
                let tz = r.tz.parse().unwrap_or_else(|_| {
                    tracing::warn!(site = %r.site_id, tz = %r.tz, "not an IANA time zone name: UTC");
                    chrono_tz::UTC
                });
                let rule = SiteRule {
                    board: r.kind == 2,
                    rssi_threshold_dbm: r.rssi_threshold_dbm,
                    min_dwell_secs: r.min_dwell_secs,
                    open_hour: r.open_hour,
                    close_hour: r.close_hour,
                    tz,
                    capture_rate: (r.capture_rate > 0.0).then_some(r.capture_rate),
                };
                (r.site_id, rule)
            })
            .collect(),
        ..Rules::defaults(v)
    })
}

impl Rules {
    /// The rules of a site not in the inventory: the `[visits]` defaults, uncalibrated.
    pub fn defaults(v: &VisitsConfig) -> Rules {
        Rules {
            sites: FxHashMap::default(),
            calibrations: FxHashMap::default(),
            default: SiteRule {
                board: false,
                rssi_threshold_dbm: v.rssi_threshold_dbm(),
                min_dwell_secs: v.min_dwell_secs(),
                open_hour: 0,
                close_hour: 24,
                tz: chrono_tz::UTC,
                capture_rate: None,
            },
            store_gap_ms: v.store_gap_ms(),
            board_gap_ms: v.board_gap_ms(),
            max_devices_per_site: v.max_devices_per_site(),
            generation: 0,
        }
    }
}
