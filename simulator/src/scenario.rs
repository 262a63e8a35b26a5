//! Scenario files: TOML over the defaults (or a preset), typed and validated with the field
//! named in every error.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub const DEFAULTS: &str = include_str!("../presets/defaults.toml");

/// The built-in presets: name, overlay over [`DEFAULTS`].
pub const PRESETS: [(&str, &str); 3] = [
    ("tiny", include_str!("../presets/tiny.toml")),
    ("demo", include_str!("../presets/demo.toml")),
    ("city", include_str!("../presets/city.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("scenario field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    #[error("unknown preset {0:?} (tiny, demo, city)")]
    UnknownPreset(String),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub city: City,
    pub population: Population,
    pub devices: Devices,
    pub radio: Radio,
    pub stores: Stores,
    pub billboards: Billboards,
    pub brands: Vec<Brand>,
    pub campaigns: Vec<Campaign>,
    pub output: Output,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct City {
    pub start: NaiveDate,
    pub days: u32,
    pub width_m: f64,
    pub height_m: f64,
    pub origin_lat: f64,
    pub origin_lon: f64,
    pub tenant_secret: String,
    pub epoch_days: u32,
    /// The agents' `identity.bridge_days`.
    pub bridge_days: u32,
    pub currency: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Population {
    pub people: u32,
    pub devices_per_person: [f64; 3],
    pub employed_share: f64,
    pub pedestrian_share: f64,
    pub work_spread: f64,
    pub leisure_trips_per_day: f64,
    pub loyalty_share: f64,
    pub link_consent_share: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    pub shares: BTreeMap<String, f64>,
    pub screen_on_share: f64,
    pub burst_interval_on_secs: f64,
    pub burst_interval_off_secs: f64,
    pub state_mean_secs: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Radio {
    pub tx_dbm_at_1m: f64,
    pub path_loss_outdoor: f64,
    pub path_loss_indoor: f64,
    pub wall_loss_db: f64,
    pub shadowing_sigma_db: f64,
    pub fading_sigma_db: f64,
    pub sensitivity_dbm: f64,
    pub frame_capture: f64,
    pub frame_gap_ms: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stores {
    pub visitor_distance_m: [f64; 2],
    pub frontage_m: f64,
    pub sensors_per_store: u32,
    pub detect_prob: f64,
    pub rssi_threshold_dbm: i8,
    pub min_dwell_secs: u32,
    pub visit_gap_mins: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Billboards {
    pub count: u32,
    pub sensors_per_board: u32,
    pub detect_prob: f64,
    pub view_radius_m: f64,
    pub approach_m: [f64; 2],
    pub slot_secs: u32,
    pub loop_slots: u32,
    pub open_hour: u32,
    pub close_hour: u32,
    pub other_brands: Vec<String>,
    pub rssi_threshold_dbm: i8,
    pub pass_gap_mins: u32,
    pub pad_secs: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Brand {
    pub name: String,
    pub stores: u32,
    pub daily_visit_rate: f64,
    pub affinity_shape: f64,
    pub open_hour: u32,
    pub close_hour: u32,
    pub dwell_median_mins: f64,
    pub dwell_sigma: f64,
    pub purchase_share: f64,
    pub basket_median: f64,
    pub basket_sigma: f64,
    pub staff_per_store: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub id: String,
    pub brand: String,
    pub creative: String,
    pub boards: u32,
    pub start_day: u32,
    pub days: u32,
    pub slots_per_loop: u32,
    pub spend: f64,
    pub true_lift_pp: f64,
    pub effect_days: u32,
    pub window_days: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Pcap,
    Envelopes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityTruth {
    All,
    Linkable,
    None,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    pub mode: Mode,
    pub beacons_per_minute: f64,
    pub noise_per_minute: f64,
    pub corrupt_share: f64,
    pub identity_truth: IdentityTruth,
    pub rssi_floor_dbm: i8,
    pub sighting_gap_secs: u32,
    pub batch_max_sightings: u32,
    pub batch_max_age_secs: u32,
}

/// The device families the simulator models (profiles in `world`).
pub const FAMILIES: [&str; 4] = ["ios", "android-random", "android-global", "laptop"];

impl Scenario {
    /// A preset by name.
    pub fn preset(name: &str) -> Result<Scenario, ScenarioError> {
        Self::from_overlay(&format!("preset = {name:?}\n"), "preset")
    }

    /// Reads a scenario file: its fields over its `preset` (if any) over the defaults.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_overlay(&text, &path.display().to_string())
    }

    /// Parses `text` (a scenario TOML) over its preset and the defaults, and validates it.
    pub fn from_overlay(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let parse = |t: &str, o: &str| {
            t.parse::<toml::Table>().map_err(|e| ScenarioError::Parse {
                origin: o.to_string(),
                message: e.to_string(),
            })
        };
        let mut user = parse(text, origin)?;
        let mut merged = parse(DEFAULTS, "defaults")?;
        if let Some(preset) = user.remove("preset") {
            let name = preset
                .as_str()
                .ok_or_else(|| invalid("preset", "must be a string"))?;
            let (_, overlay) = PRESETS
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| ScenarioError::UnknownPreset(name.to_string()))?;
            firmware_config::merge_toml(&mut merged, parse(overlay, name)?);
        }
        firmware_config::merge_toml(&mut merged, user);
        let scenario: Scenario =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| ScenarioError::Parse {
                    origin: origin.to_string(),
                    message: e.to_string(),
                })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The secret's bytes, as an agent reads them from the key file.
    pub fn tenant_secret(&self) -> Vec<u8> {
        self.city.tenant_secret.as_bytes().to_vec()
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let c = &self.city;
        positive("city.days", c.days)?;
        if c.days > 400 {
            return Err(invalid("city.days", "at most 400"));
        }
        finite_pos("city.width_m", c.width_m)?;
        finite_pos("city.height_m", c.height_m)?;
        if !(-80.0..=80.0).contains(&c.origin_lat) {
            return Err(invalid("city.origin_lat", "must be within [-80, 80]"));
        }
        if !(-180.0..=180.0).contains(&c.origin_lon) {
            return Err(invalid("city.origin_lon", "must be within [-180, 180]"));
        }
        if c.tenant_secret.len() < 32 || !c.tenant_secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "city.tenant_secret",
                "must be at least 32 printable characters without spaces",
            ));
        }
        positive("city.epoch_days", c.epoch_days)?;
        if c.bridge_days >= c.epoch_days {
            return Err(invalid(
                "city.bridge_days",
                "must be less than city.epoch_days",
            ));
        }

        let p = &self.population;
        positive("population.people", p.people)?;
        if p.devices_per_person
            .iter()
            .any(|x| !(0.0..=1.0).contains(x))
            || (p.devices_per_person.iter().sum::<f64>() - 1.0).abs() > 1e-6
        {
            return Err(invalid(
                "population.devices_per_person",
                "three probabilities in [0, 1] that sum to 1",
            ));
        }
        share("population.employed_share", p.employed_share)?;
        share("population.pedestrian_share", p.pedestrian_share)?;
        share("population.loyalty_share", p.loyalty_share)?;
        share("population.link_consent_share", p.link_consent_share)?;
        finite_pos("population.work_spread", p.work_spread)?;
        non_negative("population.leisure_trips_per_day", p.leisure_trips_per_day)?;

        let d = &self.devices;
        for name in d.shares.keys() {
            if !FAMILIES.contains(&name.as_str()) {
                return Err(invalid(
                    format!("devices.shares.{name}"),
                    format!("unknown family (known: {})", FAMILIES.join(", ")),
                ));
            }
        }
        for (name, v) in &d.shares {
            non_negative(&format!("devices.shares.{name}"), *v)?;
        }
        if d.shares.values().sum::<f64>() <= 0.0 {
            return Err(invalid(
                "devices.shares",
                "at least one share must be positive",
            ));
        }
        share("devices.screen_on_share", d.screen_on_share)?;
        finite_pos("devices.burst_interval_on_secs", d.burst_interval_on_secs)?;
        finite_pos("devices.burst_interval_off_secs", d.burst_interval_off_secs)?;
        finite_pos("devices.state_mean_secs", d.state_mean_secs)?;

        let r = &self.radio;
        finite_pos("radio.path_loss_outdoor", r.path_loss_outdoor)?;
        finite_pos("radio.path_loss_indoor", r.path_loss_indoor)?;
        non_negative("radio.wall_loss_db", r.wall_loss_db)?;
        non_negative("radio.shadowing_sigma_db", r.shadowing_sigma_db)?;
        non_negative("radio.fading_sigma_db", r.fading_sigma_db)?;
        if !(-110.0..=-40.0).contains(&r.sensitivity_dbm) {
            return Err(invalid(
                "radio.sensitivity_dbm",
                "must be within [-110, -40]",
            ));
        }
        if !(-80.0..=0.0).contains(&r.tx_dbm_at_1m) {
            return Err(invalid("radio.tx_dbm_at_1m", "must be within [-80, 0]"));
        }
        share("radio.frame_capture", r.frame_capture)?;
        finite_pos("radio.frame_gap_ms", r.frame_gap_ms)?;

        let s = &self.stores;
        if !(s.visitor_distance_m[0] >= 1.0 && s.visitor_distance_m[1] >= s.visitor_distance_m[0]) {
            return Err(invalid(
                "stores.visitor_distance_m",
                "[min, max] with 1 <= min <= max",
            ));
        }
        finite_pos("stores.frontage_m", s.frontage_m)?;
        positive("stores.sensors_per_store", s.sensors_per_store)?;
        share("stores.detect_prob", s.detect_prob)?;
        positive("stores.visit_gap_mins", s.visit_gap_mins)?;

        let b = &self.billboards;
        positive("billboards.count", b.count)?;
        positive("billboards.sensors_per_board", b.sensors_per_board)?;
        share("billboards.detect_prob", b.detect_prob)?;
        finite_pos("billboards.view_radius_m", b.view_radius_m)?;
        if !(b.approach_m[0] >= 0.0
            && b.approach_m[0] <= b.approach_m[1]
            && b.approach_m[1] <= b.view_radius_m)
        {
            return Err(invalid(
                "billboards.approach_m",
                "[min, max] with 0 <= min <= max <= view_radius_m",
            ));
        }
        positive("billboards.slot_secs", b.slot_secs)?;
        positive("billboards.loop_slots", b.loop_slots)?;
        hours("billboards", b.open_hour, b.close_hour)?;
        if b.other_brands.is_empty() {
            return Err(invalid("billboards.other_brands", "at least one brand"));
        }
        positive("billboards.pass_gap_mins", b.pass_gap_mins)?;

        if self.brands.is_empty() {
            return Err(invalid("brands", "at least one brand"));
        }
        for (i, br) in self.brands.iter().enumerate() {
            let f = |name: &str| format!("brands[{i}].{name}");
            wire::validate_id(&br.name).map_err(|e| invalid(f("name"), e.to_string()))?;
            if self.brands[..i].iter().any(|o| o.name == br.name) {
                return Err(invalid(f("name"), "brand names must be unique"));
            }
            positive(&f("stores"), br.stores)?;
            non_negative(&f("daily_visit_rate"), br.daily_visit_rate)?;
            if br.daily_visit_rate > 1.0 {
                return Err(invalid(f("daily_visit_rate"), "at most 1 visit per day"));
            }
            finite_pos(&f("affinity_shape"), br.affinity_shape)?;
            hours(&format!("brands[{i}]"), br.open_hour, br.close_hour)?;
            finite_pos(&f("dwell_median_mins"), br.dwell_median_mins)?;
            non_negative(&f("dwell_sigma"), br.dwell_sigma)?;
            share(&f("purchase_share"), br.purchase_share)?;
            finite_pos(&f("basket_median"), br.basket_median)?;
            non_negative(&f("basket_sigma"), br.basket_sigma)?;
        }

        for (i, c) in self.campaigns.iter().enumerate() {
            let f = |name: &str| format!("campaigns[{i}].{name}");
            wire::validate_id(&c.id).map_err(|e| invalid(f("id"), e.to_string()))?;
            wire::validate_id(&c.creative).map_err(|e| invalid(f("creative"), e.to_string()))?;
            if self.campaigns[..i].iter().any(|o| o.id == c.id) {
                return Err(invalid(f("id"), "campaign ids must be unique"));
            }
            if !self.brands.iter().any(|b| b.name == c.brand) {
                return Err(invalid(f("brand"), format!("no brand named {:?}", c.brand)));
            }
            if c.boards > self.billboards.count {
                return Err(invalid(
                    f("boards"),
                    format!("only {} boards exist", self.billboards.count),
                ));
            }
            positive(&f("days"), c.days)?;
            if c.start_day + c.days > self.city.days {
                return Err(invalid(f("days"), "the flight must end within city.days"));
            }
            positive(&f("slots_per_loop"), c.slots_per_loop)?;
            non_negative(&f("spend"), c.spend)?;
            if !(0.0..100.0).contains(&c.true_lift_pp) {
                return Err(invalid(f("true_lift_pp"), "must be within [0, 100)"));
            }
            positive(&f("effect_days"), c.effect_days)?;
            positive(&f("window_days"), c.window_days)?;
        }
        for (i, c) in self.campaigns.iter().enumerate() {
            // Campaigns in the same days share the loop (conservatively, whatever their boards).
            let slots: u32 = self.campaigns[..=i]
                .iter()
                .filter(|o| {
                    o.start_day < c.start_day + c.days && c.start_day < o.start_day + o.days
                })
                .map(|o| o.slots_per_loop)
                .sum();
            if slots >= self.billboards.loop_slots {
                return Err(invalid(
                    format!("campaigns[{i}].slots_per_loop"),
                    format!(
                        "campaigns running together need fewer than billboards.loop_slots = {} \
                         slots (a control needs other creatives)",
                        self.billboards.loop_slots
                    ),
                ));
            }
        }

        let o = &self.output;
        non_negative("output.beacons_per_minute", o.beacons_per_minute)?;
        non_negative("output.noise_per_minute", o.noise_per_minute)?;
        share("output.corrupt_share", o.corrupt_share)?;
        positive("output.sighting_gap_secs", o.sighting_gap_secs)?;
        positive("output.batch_max_sightings", o.batch_max_sightings)?;
        positive("output.batch_max_age_secs", o.batch_max_age_secs)?;
        Ok(())
    }
}

fn positive(field: &str, v: u32) -> Result<(), ScenarioError> {
    if v == 0 {
        return Err(invalid(field, "must be positive"));
    }
    Ok(())
}

fn finite_pos(field: &str, v: f64) -> Result<(), ScenarioError> {
    if !(v.is_finite() && v > 0.0) {
        return Err(invalid(
            field,
            format!("must be a positive number (got {v})"),
        ));
    }
    Ok(())
}

fn non_negative(field: &str, v: f64) -> Result<(), ScenarioError> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(invalid(field, format!("must be >= 0 (got {v})")));
    }
    Ok(())
}

fn share(field: &str, v: f64) -> Result<(), ScenarioError> {
    if !(0.0..=1.0).contains(&v) {
        return Err(invalid(field, format!("must be within [0, 1] (got {v})")));
    }
    Ok(())
}

fn hours(prefix: &str, open: u32, close: u32) -> Result<(), ScenarioError> {
    if open >= 24 {
        return Err(invalid(format!("{prefix}.open_hour"), "must be 0-23"));
    }
    if close <= open || close > 24 {
        return Err(invalid(
            format!("{prefix}.close_hour"),
            "must be after open_hour and at most 24",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid() {
        for (name, _) in PRESETS {
            let s = Scenario::preset(name).expect(name);
            assert!(s.population.people > 0);
        }
        assert_eq!(Scenario::preset("demo").expect("demo").billboards.count, 8);
    }

    #[test]
    fn a_file_overrides_its_preset() {
        let s = Scenario::from_overlay("preset = \"tiny\"\n[population]\npeople = 7\n", "t.toml")
            .expect("valid");
        assert_eq!(s.population.people, 7);
        assert_eq!(s.city.days, 3, "the rest comes from the preset");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("[population]\ndevices_per_person = [0.5, 0.2, 0.2]", "population.devices_per_person"),
            ("[city]\ntenant_secret = \"abc\"", "city.tenant_secret"),
            ("[devices.shares]\nnokia = 1.0", "devices.shares.nokia"),
            ("[radio]\nframe_capture = 1.5", "radio.frame_capture"),
            ("[stores]\ndetect_prob = -0.1", "stores.detect_prob"),
            ("[billboards]\nclose_hour = 5", "billboards.close_hour"),
            ("[[campaigns]]\nid = \"x\"\nbrand = \"nope\"\ncreative = \"c\"\nboards = 0\nstart_day = 1\ndays = 1\nslots_per_loop = 1\nspend = 1.0\ntrue_lift_pp = 1.0\neffect_days = 1\nwindow_days = 1", "campaigns[0].brand"),
        ];
        for (text, field) in cases {
            let err = Scenario::from_overlay(text, "t.toml").expect_err(text);
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
        let err = Scenario::from_overlay("[city]\nstart = \"2026-13-01\"", "t.toml")
            .expect_err("bad date");
        assert!(err.to_string().contains("start"), "{err}");
        let err = Scenario::from_overlay("[city]\nsize = 3", "t.toml").expect_err("unknown field");
        assert!(err.to_string().contains("size"), "{err}");
        let err =
            Scenario::from_overlay("preset = \"huge\"", "t.toml").expect_err("unknown preset");
        assert!(err.to_string().contains("huge"), "{err}");
    }
}
