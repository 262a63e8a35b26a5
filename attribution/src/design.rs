//! The design of the comparison (ATTRIBUTION.md): the method's settings ([`Params`]), and
//! from the query's rows the assigned devices ([`Unit`]: arm, t0, stratum, cluster,
//! outcomes per window) and what was set aside ([`Exclusions`]).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::data::{Inputs, Loyalty};
pub use crate::units::PassClass;

pub const DAY_MS: i64 = 86_400_000;
pub const HOUR_MS: i64 = 3_600_000;

/// The method's settings (ATTRIBUTION.md's defaults).
#[derive(Clone, Debug, Serialize)]
pub struct Params {
    /// d: half the median probe interval; a pass is padded by it on both sides.
    pub pad_secs: u32,
    pub staff_hours_per_day: f64,
    pub staff_days_per_week: u32,
    /// The pre-period for CUPED and the balance check.
    pub pre_days: u32,
    pub windows: Vec<u32>,
    pub primary_window: u32,
    pub bootstrap: usize,
    pub seed: u64,
    pub confidence: f64,
    pub hour_block_hours: u32,
    /// Strata with fewer devices than this in an arm are sparse: combined by Mantel-Haenszel.
    pub min_stratum_devices: u64,
    pub gate_devices: u64,
    pub gate_converters: u64,
    pub gate_clusters: usize,
    pub k_devices: u64,
    pub k_converters: u64,
    pub permutations: usize,
    /// The lift the campaign was planned to detect, percentage points (ATTRIBUTION.md's
    /// reference: +0.4 pp). A report whose interval includes 0 while the minimum detectable
    /// lift exceeds it says `underpowered`, not "no effect".
    pub target_lift_pp: f64,
    /// Capture rates (value, standard error) for people-scale figures.
    pub board_capture: Option<(f64, f64)>,
    pub store_capture: Option<(f64, f64)>,
    /// The store-level estimate's treated stores: within this distance of a campaign board.
    pub geo_radius_m: f64,
}

impl Params {
    /// The defaults for `campaign`: its own window (14 days when it names none) is primary.
    pub fn for_campaign(campaign: &crate::data::Campaign) -> Params {
        Params::defaults(match campaign.window_days {
            0 => 14,
            w => u32::from(w),
        })
    }

    pub fn defaults(primary_window: u32) -> Params {
        let mut windows = vec![1, 3, 7, 14, 30, primary_window];
        windows.sort_unstable();
        windows.dedup();
        Params {
            pad_secs: 15,
            staff_hours_per_day: 4.0,
            staff_days_per_week: 5,
            pre_days: 28,
            windows,
            primary_window,
            bootstrap: 2000,
            seed: 1,
            confidence: 0.95,
            hour_block_hours: 4,
            min_stratum_devices: 20,
            gate_devices: 1000,
            gate_converters: 30,
            gate_clusters: 20,
            k_devices: 50,
            k_converters: 10,
            permutations: 1000,
            target_lift_pp: 0.4,
            board_capture: None,
            store_capture: None,
            geo_radius_m: 1000.0,
        }
    }
}

/// One assigned device.
#[derive(Clone, Debug)]
pub struct Unit {
    pub exposed: bool,
    pub t0: i64,
    pub board: usize,
    pub stratum: usize,
    /// Board-day of t0: the bootstrap's cluster.
    pub cluster: usize,
    /// Visits to the brand's stores in the pre-period.
    pub pre: f64,
    /// The first visit to a brand store after t0.
    pub first_after: Option<i64>,
    /// Per window of the report: converted; converted to the placebo brand; revenue
    /// (loyalty-linked receipts, 0 for a device without a link) and receipts.
    pub converted: Vec<bool>,
    pub placebo: Vec<bool>,
    pub revenue: Vec<f64>,
    pub receipts: Vec<f64>,
    /// Linked to a loyalty card: its receipts are known, also when there are none.
    pub linked: bool,
}

/// Devices and passes set aside, and why.
#[derive(Debug, Default, Serialize)]
pub struct Exclusions {
    /// Passes of linkable devices in the flight, by class.
    pub passes: BTreeMap<PassClass, u64>,
    /// Linkable devices whose passes were all ambiguous, long or out of rotation.
    pub devices_without_a_clean_pass: u64,
    pub staff_devices: u64,
    pub already_inside_devices: u64,
}

/// The assigned devices and what was set aside.
pub struct Design {
    pub units: Vec<Unit>,
    pub exclusions: Exclusions,
    pub boards: Vec<String>,
    /// (board index, day index) per cluster.
    pub clusters: Vec<(usize, i64)>,
    pub strata: Vec<(usize, u32, u32)>,
}

impl Params {
    /// The primary window's index in `windows`.
    pub fn primary_index(&self) -> usize {
        self.windows
            .iter()
            .position(|&w| w == self.primary_window)
            .expect("the primary window is among the windows")
    }

    /// What the queries need.
    pub fn rules(&self) -> crate::data::Rules {
        crate::data::Rules {
            pad_ms: i64::from(self.pad_secs) * 1000,
            pre_ms: i64::from(self.pre_days) * DAY_MS,
            staff_ms_per_day: (self.staff_hours_per_day * HOUR_MS as f64) as i64,
            staff_days_per_week: self.staff_days_per_week,
            windows_days: self.windows.clone(),
        }
    }
}

/// Builds the arms from the query's rows: staff and devices already inside are set aside,
/// each unit gets its stratum (board x weekday x hour block of t0) and cluster (board-day).
pub fn design(inp: &Inputs, p: &Params) -> Design {
    let c = &inp.campaign;
    let boards = c.boards.clone();
    let board_index: HashMap<&str, usize> = boards
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let mut ex = Exclusions {
        passes: inp.pass_classes.clone(),
        devices_without_a_clean_pass: inp.linkable_passers.saturating_sub(inp.units.len() as u64),
        ..Exclusions::default()
    };
    let block = i64::from(p.hour_block_hours.max(1));
    let mut strata: Vec<(usize, u32, u32)> = Vec::new();
    let mut stratum_index: HashMap<(usize, u32, u32), usize> = HashMap::new();
    let mut clusters: Vec<(usize, i64)> = Vec::new();
    let mut cluster_index: HashMap<(usize, i64), usize> = HashMap::new();
    let mut units = Vec::new();
    for u in &inp.units {
        if inp.staff.contains(&u.device) {
            ex.staff_devices += 1;
            continue;
        }
        if u.inside != 0 {
            ex.already_inside_devices += 1;
            continue;
        }
        let Some(&board) = board_index.get(u.board.as_str()) else {
            continue;
        };
        let day = u.t0.div_euclid(DAY_MS);
        // Day 0 (1970-01-01) was a Thursday: 0 = Monday.
        let weekday = ((day + 3).rem_euclid(7)) as u32;
        let hour_block = (u.t0.rem_euclid(DAY_MS) / HOUR_MS / block) as u32;
        let key = (board, weekday, hour_block);
        let stratum = *stratum_index.entry(key).or_insert_with(|| {
            strata.push(key);
            strata.len() - 1
        });
        let cluster = *cluster_index.entry((board, day)).or_insert_with(|| {
            clusters.push((board, day));
            clusters.len() - 1
        });
        let loyalty = inp.loyalty.get(&u.device);
        // Per window, in currency units and receipts; zeros without a link.
        let per_window = |f: &dyn Fn(&Loyalty) -> Vec<f64>| {
            loyalty.map_or_else(|| vec![0.0; p.windows.len()], f)
        };
        units.push(Unit {
            exposed: u.exposed != 0,
            t0: u.t0,
            board,
            stratum,
            cluster,
            pre: u.pre as f64,
            first_after: (u.first_after != 0).then_some(u.first_after),
            converted: u.converted.iter().map(|&x| x != 0).collect(),
            placebo: u.placebo.iter().map(|&x| x != 0).collect(),
            revenue: per_window(&|l| l.cents.iter().map(|&x| x as f64 / 100.0).collect()),
            receipts: per_window(&|l| l.receipts.iter().map(|&x| x as f64).collect()),
            linked: loyalty.is_some(),
        });
    }
    Design {
        units,
        exclusions: ex,
        boards,
        clusters,
        strata,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::data::UnitRow;

    fn row(device: u64, exposed: bool, t0: i64, board: &str) -> UnitRow {
        UnitRow {
            device,
            exposed: u8::from(exposed),
            t0,
            board: board.into(),
            pre: 2,
            inside: 0,
            first_after: 0,
            placebo_after: 0,
            converted: vec![0; 6],
            placebo: vec![0; 6],
        }
    }

    /// Staff and devices already inside are set aside; each unit gets the stratum of its
    /// board, weekday and 4-h block, and the cluster of its board and day.
    #[test]
    fn arms_strata_clusters_and_exclusions() {
        // 2026-03-09 was a Monday.
        let monday_9h = 1_773_014_400_000 + 9 * HOUR_MS;
        let mut inside = row(4, true, monday_9h, "b1");
        inside.inside = 1;
        let inp = Inputs {
            units: vec![
                row(1, true, monday_9h, "b1"),
                row(2, false, monday_9h + 2 * HOUR_MS, "b1"), // same 8-12 h block
                row(3, false, monday_9h + 4 * HOUR_MS, "b1"), // 12-16 h
                inside,
                row(5, true, monday_9h, "b1"), // staff
                row(6, true, monday_9h + DAY_MS, "b2"),
            ],
            staff: [5].into_iter().collect(),
            loyalty: HashMap::from([(
                1,
                Loyalty {
                    cents: vec![250; 6],
                    receipts: vec![1; 6],
                },
            )]),
            pass_classes: BTreeMap::from([(PassClass::Exposed, 4), (PassClass::Long, 2)]),
            passers: 20,
            linkable_passers: 9,
            ..Inputs::for_test(&["b1", "b2"])
        };
        let d = design(&inp, &Params::defaults(14));
        let devices = |f: &dyn Fn(&Unit) -> bool| d.units.iter().filter(|u| f(u)).count();
        assert_eq!(d.units.len(), 4);
        assert_eq!(
            (
                d.exclusions.staff_devices,
                d.exclusions.already_inside_devices
            ),
            (1, 1)
        );
        assert_eq!(d.exclusions.devices_without_a_clean_pass, 9 - 6);
        assert_eq!(d.exclusions.passes[&PassClass::Long], 2);
        assert_eq!(devices(&|u| u.exposed), 2);
        // Strata: (b1, Mon, 8-12 h) twice, (b1, Mon, 12-16 h), (b2, Tue, 8-12 h).
        assert_eq!(d.strata, vec![(0, 0, 2), (0, 0, 3), (1, 1, 2)]);
        let strata: Vec<usize> = d.units.iter().map(|u| u.stratum).collect();
        assert_eq!(strata, vec![0, 0, 1, 2]);
        // Clusters: (b1, Monday) and (b2, Tuesday).
        assert_eq!(d.clusters.len(), 2);
        assert_eq!(d.units[3].cluster, 1);
        assert_eq!(d.units[0].revenue[0], 2.5, "cents to currency units");
        assert_eq!(d.units[1].revenue[0], 0.0, "no receipts");
        assert!(d.units[0].linked && !d.units[1].linked);
        assert_eq!((d.units[0].receipts[0], d.units[1].receipts[0]), (1.0, 0.0));
    }
}
