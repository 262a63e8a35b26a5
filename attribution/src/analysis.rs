//! From the campaign's rows to the report's numbers (ATTRIBUTION.md): passes classified
//! against the creative's plays, one arm per linkable device from its first qualifying pass,
//! conversions in windows, and the estimates with their intervals.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::data::Inputs;
use crate::stats::{self, Comparison, Interval};

pub const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

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
    /// Strata with fewer devices than this in an arm are pooled.
    pub min_stratum_devices: u64,
    pub gate_devices: u64,
    pub gate_converters: u64,
    pub gate_clusters: usize,
    pub k_devices: u64,
    pub k_converters: u64,
    pub permutations: usize,
    /// Capture rates (value, standard error) for people-scale figures.
    pub board_capture: Option<(f64, f64)>,
    pub store_capture: Option<(f64, f64)>,
}

impl Params {
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
            board_capture: None,
            store_capture: None,
        }
    }
}

/// How a pass compares with the creative's plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PassClass {
    Exposed,
    Control,
    /// Overlaps the creative by less than 1 s.
    Ambiguous,
    /// Longer than a loop: saw every creative.
    Long,
    /// The creative was not in the board's rotation then.
    OutOfRotation,
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
    /// Per window of the report: converted; converted to the placebo brand; revenue.
    pub converted: Vec<bool>,
    pub placebo: Vec<bool>,
    pub revenue: Vec<f64>,
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
    let mut ex = Exclusions::default();
    for (class, n) in &inp.pass_classes {
        let k = match class.as_str() {
            "exposed" => PassClass::Exposed,
            "control" => PassClass::Control,
            "ambiguous" => PassClass::Ambiguous,
            "long" => PassClass::Long,
            _ => PassClass::OutOfRotation,
        };
        *ex.passes.entry(k).or_default() += n;
    }
    ex.devices_without_a_clean_pass = inp.linkable_passers.saturating_sub(inp.units.len() as u64);
    let block = i64::from(p.hour_block_hours.max(1));
    let mut strata: Vec<(usize, u32, u32)> = Vec::new();
    let mut stratum_index: HashMap<(usize, u32, u32), usize> = HashMap::new();
    let mut clusters: Vec<(usize, i64)> = Vec::new();
    let mut cluster_index: HashMap<(usize, i64), usize> = HashMap::new();
    let mut units = Vec::new();
    let none = vec![0i64; p.windows.len()];
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
        let cents = inp.revenue.get(&u.device).unwrap_or(&none);
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
            revenue: cents.iter().map(|&x| x as f64 / 100.0).collect(),
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

/// An estimate with its interval.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Estimate {
    pub estimate: f64,
    pub interval: Interval,
}

#[derive(Debug, Serialize)]
pub struct Revenue {
    pub winsorized_at: f64,
    pub per_device_exposed: f64,
    pub per_device_control: f64,
    pub incremental: Estimate,
    pub iroas: Option<Estimate>,
}

#[derive(Debug, Serialize)]
pub struct People {
    pub incremental_visitors: Estimate,
    pub cost_per_incremental_visitor: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Gate {
    pub passed: bool,
    pub reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct WindowResult {
    pub window_days: u32,
    pub primary: bool,
    pub gate: Gate,
    pub clusters: usize,
    /// Counts, rates and the interval statistics (Newcombe, Katz, Wald, p-value).
    pub comparison: Comparison,
    /// Over board x day-of-week x hour-block strata, exposed-weighted.
    pub stratified: Option<Estimate>,
    /// Day-cluster (board-day) bootstrap percentile interval of D, and its SE.
    pub bootstrap: Option<Estimate>,
    pub bootstrap_se: Option<f64>,
    pub design_effect: Option<f64>,
    pub cuped: Option<Estimate>,
    pub cuped_theta: Option<f64>,
    /// x_e: converters among the exposed.
    pub attributed_converters: u64,
    /// n_e * D, with the Newcombe interval scaled.
    pub incremental_converters: Estimate,
    pub attributable_fraction: Option<f64>,
    pub revenue: Revenue,
    pub people: Option<People>,
    pub placebo_brand: Option<Comparison>,
    /// Mean pre-period visits per arm, and the difference with a Welch interval.
    pub pre_period_exposed: f64,
    pub pre_period_control: f64,
    pub pre_period_difference: Estimate,
    pub randomization_p: Option<f64>,
}

/// Per cluster and arm: the sums the bootstrap needs.
#[derive(Clone, Default)]
struct Sums {
    n: [f64; 2],
    x: [f64; 2],
    pre: [f64; 2],
    pre2: [f64; 2],
    pre_y: [f64; 2],
    rev: [f64; 2],
    strata: Vec<(usize, usize, f64, f64)>,
}

struct Draw {
    d: f64,
    strat: Option<f64>,
    cuped: Option<f64>,
    rev: f64,
}

fn arm(exposed: bool) -> usize {
    usize::from(!exposed)
}

fn stratified(cells: &HashMap<usize, [f64; 4]>, min: f64) -> Option<f64> {
    // [n_e, x_e, n_c, x_c] per stratum; sparse strata pooled into one.
    let mut used: Vec<[f64; 4]> = Vec::new();
    let mut rest = [0.0; 4];
    for c in cells.values() {
        if c[0] >= min && c[2] >= min {
            used.push(*c);
        } else {
            for k in 0..4 {
                rest[k] += c[k];
            }
        }
    }
    if rest[0] > 0.0 && rest[2] > 0.0 {
        used.push(rest);
    }
    let ne: f64 = used.iter().map(|c| c[0]).sum();
    if ne == 0.0 {
        return None;
    }
    Some(
        used.iter()
            .map(|c| c[0] / ne * (c[1] / c[0] - c[3] / c[2]))
            .sum(),
    )
}

fn draw(sums: &[&Sums], min_stratum: f64) -> Draw {
    let mut t = Sums::default();
    let mut cells: HashMap<usize, [f64; 4]> = HashMap::new();
    for s in sums {
        for a in 0..2 {
            t.n[a] += s.n[a];
            t.x[a] += s.x[a];
            t.pre[a] += s.pre[a];
            t.pre2[a] += s.pre2[a];
            t.pre_y[a] += s.pre_y[a];
            t.rev[a] += s.rev[a];
        }
        for &(stratum, a, n, x) in &s.strata {
            let c = cells.entry(stratum).or_default();
            c[2 * a] += n;
            c[2 * a + 1] += x;
        }
    }
    let rate = |a: usize| if t.n[a] > 0.0 { t.x[a] / t.n[a] } else { 0.0 };
    let d = rate(0) - rate(1);
    // CUPED with theta pooled across arms.
    let n = t.n[0] + t.n[1];
    let cuped = (n > 1.0).then(|| {
        let (sx, sxx, sxy, sy) = (
            t.pre[0] + t.pre[1],
            t.pre2[0] + t.pre2[1],
            t.pre_y[0] + t.pre_y[1],
            t.x[0] + t.x[1],
        );
        let var = sxx / n - (sx / n).powi(2);
        let cov = sxy / n - sx / n * sy / n;
        let theta = if var > 0.0 { cov / var } else { 0.0 };
        let mx = sx / n;
        let adj = |a: usize| {
            if t.n[a] > 0.0 {
                rate(a) - theta * (t.pre[a] / t.n[a] - mx)
            } else {
                0.0
            }
        };
        adj(0) - adj(1)
    });
    let rev = |a: usize| if t.n[a] > 0.0 { t.rev[a] / t.n[a] } else { 0.0 };
    Draw {
        d,
        strat: stratified(&cells, min_stratum),
        cuped,
        rev: rev(0) - rev(1),
    }
}

/// A small, seeded generator (splitmix64) for the bootstrap and the permutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn interval_of(mut v: Vec<f64>, confidence: f64) -> Interval {
    v.retain(|x| x.is_finite());
    v.sort_by(|a, b| a.total_cmp(b));
    let tail = (1.0 - confidence) / 2.0;
    Interval {
        lo: percentile(&v, tail),
        hi: percentile(&v, 1.0 - tail),
    }
}

fn sd(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let m = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// The estimates for one window over the units followed up for all of it.
pub fn window(design: &Design, inp: &Inputs, p: &Params, wi: usize) -> WindowResult {
    let window_days = p.windows[wi];
    let w = i64::from(window_days) * DAY_MS;
    let units: Vec<&Unit> = design
        .units
        .iter()
        .filter(|u| u.t0 + w <= inp.data_end_ms)
        .collect();
    let count = |e: bool, f: &dyn Fn(&Unit) -> bool| {
        units.iter().filter(|u| u.exposed == e && f(u)).count() as u64
    };
    let (ne, nc) = (count(true, &|_| true), count(false, &|_| true));
    let (xe, xc) = (
        count(true, &|u| u.converted[wi]),
        count(false, &|u| u.converted[wi]),
    );
    let comparison = stats::compare(xe, ne, xc, nc, p.confidence);
    let z = stats::z_of(p.confidence);

    // Revenue, winsorized at the 99th percentile of the devices that spent (most spend
    // nothing: the percentile over all devices would cap ordinary baskets).
    let mut revs: Vec<f64> = units
        .iter()
        .map(|u| u.revenue[wi])
        .filter(|&r| r > 0.0)
        .collect();
    revs.sort_by(|a, b| a.total_cmp(b));
    let cap = percentile(&revs, 0.99);
    let cap = if cap.is_finite() { cap } else { 0.0 };

    // Per-cluster sums.
    let mut sums: Vec<Sums> = vec![Sums::default(); design.clusters.len()];
    let mut cells: Vec<HashMap<(usize, usize), (f64, f64)>> =
        vec![HashMap::new(); design.clusters.len()];
    for u in &units {
        let a = arm(u.exposed);
        let y = f64::from(u8::from(u.converted[wi]));
        let s = &mut sums[u.cluster];
        s.n[a] += 1.0;
        s.x[a] += y;
        s.pre[a] += u.pre;
        s.pre2[a] += u.pre * u.pre;
        s.pre_y[a] += u.pre * y;
        s.rev[a] += u.revenue[wi].min(cap);
        let c = cells[u.cluster].entry((u.stratum, a)).or_default();
        c.0 += 1.0;
        c.1 += y;
    }
    for (s, c) in sums.iter_mut().zip(cells) {
        s.strata = c
            .into_iter()
            .map(|((st, a), (n, x))| (st, a, n, x))
            .collect();
    }
    let present: Vec<&Sums> = sums.iter().filter(|s| s.n[0] + s.n[1] > 0.0).collect();
    let min = p.min_stratum_devices as f64;
    let point = draw(&present, min);
    let clusters = present.len();

    let mut rng = Rng(p.seed ^ u64::from(window_days).wrapping_mul(0x9e37_79b9));
    let mut draws = Vec::with_capacity(p.bootstrap);
    if clusters >= 2 {
        for _ in 0..p.bootstrap {
            let pick: Vec<&Sums> = (0..clusters)
                .map(|_| present[rng.below(clusters)])
                .collect();
            draws.push(draw(&pick, min));
        }
    }
    let boot = |f: &dyn Fn(&Draw) -> Option<f64>| -> Option<(Interval, f64)> {
        let v: Vec<f64> = draws.iter().filter_map(f).collect();
        (v.len() >= 2).then(|| (interval_of(v.clone(), p.confidence), sd(&v)))
    };
    let d_boot = boot(&|d| Some(d.d));
    let binom_var = {
        let (pe, pc) = (comparison.exposed.rate, comparison.control.rate);
        if ne > 0 && nc > 0 {
            pe * (1.0 - pe) / ne as f64 + pc * (1.0 - pc) / nc as f64
        } else {
            f64::NAN
        }
    };
    let stratified = point.strat.map(|e| Estimate {
        estimate: e,
        interval: boot(&|d| d.strat).map_or(
            Interval {
                lo: f64::NAN,
                hi: f64::NAN,
            },
            |b| b.0,
        ),
    });
    let (theta, cuped) = {
        let n = (ne + nc) as f64;
        let all: Vec<&&Unit> = units.iter().collect();
        let mx = all.iter().map(|u| u.pre).sum::<f64>() / n;
        let my = (xe + xc) as f64 / n;
        let var = all.iter().map(|u| (u.pre - mx).powi(2)).sum::<f64>() / n;
        let cov = all
            .iter()
            .map(|u| (u.pre - mx) * (f64::from(u8::from(u.converted[wi])) - my))
            .sum::<f64>()
            / n;
        let theta = if var > 0.0 { cov / var } else { 0.0 };
        let adjusted = |e: bool| -> Vec<f64> {
            all.iter()
                .filter(|u| u.exposed == e)
                .map(|u| f64::from(u8::from(u.converted[wi])) - theta * (u.pre - mx))
                .collect()
        };
        let (ae, ac) = (adjusted(true), adjusted(false));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let est = (ae.len() > 1 && ac.len() > 1).then(|| {
            let d = mean(&ae) - mean(&ac);
            let se = (sd(&ae).powi(2) / ae.len() as f64 + sd(&ac).powi(2) / ac.len() as f64).sqrt();
            Estimate {
                estimate: d,
                interval: Interval {
                    lo: d - z * se,
                    hi: d + z * se,
                },
            }
        });
        (n > 0.0).then_some(theta).zip(est)
    }
    .map_or((None, None), |(t, e)| (Some(t), Some(e)));
    // The cluster bootstrap's interval when there is one (analytic, i.i.d., otherwise).
    let cuped = cuped.map(|e| Estimate {
        estimate: e.estimate,
        interval: boot(&|d| d.cuped).map_or(e.interval, |b| b.0),
    });

    let d = comparison.difference;
    let incremental = Estimate {
        estimate: ne as f64 * d,
        interval: Interval {
            lo: ne as f64 * comparison.newcombe.lo,
            hi: ne as f64 * comparison.newcombe.hi,
        },
    };
    let rev_boot = boot(&|d| Some(d.rev));
    let mean_rev = |e: bool| {
        let v: Vec<f64> = units
            .iter()
            .filter(|u| u.exposed == e)
            .map(|u| u.revenue[wi].min(cap))
            .collect();
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let (re, rc) = (mean_rev(true), mean_rev(false));
    let incr_rev = Estimate {
        estimate: ne as f64 * (re - rc),
        interval: rev_boot.map_or(
            Interval {
                lo: f64::NAN,
                hi: f64::NAN,
            },
            |b| Interval {
                lo: ne as f64 * b.0.lo,
                hi: ne as f64 * b.0.hi,
            },
        ),
    };
    let spend = inp.campaign.spend;
    let revenue = Revenue {
        winsorized_at: cap,
        per_device_exposed: re,
        per_device_control: rc,
        incremental: incr_rev,
        iroas: (spend > 0.0).then(|| Estimate {
            estimate: incr_rev.estimate / spend,
            interval: Interval {
                lo: incr_rev.interval.lo / spend,
                hi: incr_rev.interval.hi / spend,
            },
        }),
    };
    let people = match (p.board_capture, p.store_capture) {
        (Some((cb, sb)), Some((cs, ss))) if d > 0.0 && cb > 0.0 && cs > 0.0 => {
            let se_d = d_boot.map_or(binom_var.sqrt(), |b| b.1);
            let i = incremental.estimate / (cb * cs);
            let se_ln = ((se_d / d).powi(2) + (sb / cb).powi(2) + (ss / cs).powi(2)).sqrt();
            Some(People {
                incremental_visitors: Estimate {
                    estimate: i,
                    interval: Interval {
                        lo: i * (-z * se_ln).exp(),
                        hi: i * (z * se_ln).exp(),
                    },
                },
                cost_per_incremental_visitor: (spend > 0.0).then(|| spend / i),
            })
        }
        _ => None,
    };
    let placebo = inp.placebo_brand.as_ref().map(|_| {
        let conv = |e: bool| {
            units
                .iter()
                .filter(|u| u.exposed == e)
                .filter(|u| u.placebo[wi])
                .count() as u64
        };
        stats::compare(conv(true), ne, conv(false), nc, p.confidence)
    });
    let pre = |e: bool| -> Vec<f64> {
        units
            .iter()
            .filter(|u| u.exposed == e)
            .map(|u| u.pre)
            .collect()
    };
    let (pe_pre, pc_pre) = (pre(true), pre(false));
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let diff = mean(&pe_pre) - mean(&pc_pre);
    let se = (sd(&pe_pre).powi(2) / pe_pre.len() as f64
        + sd(&pc_pre).powi(2) / pc_pre.len() as f64)
        .sqrt();
    let randomization_p = (window_days == p.primary_window && p.permutations > 0)
        .then(|| permutation_p(&units, wi, p, d));

    let mut reasons = Vec::new();
    for (name, n, x) in [("exposed", ne, xe), ("control", nc, xc)] {
        if n < p.gate_devices {
            reasons.push(format!("{name}: {n} devices < {}", p.gate_devices));
        }
        if x < p.gate_converters {
            reasons.push(format!("{name}: {x} converters < {}", p.gate_converters));
        }
    }
    if clusters < p.gate_clusters {
        reasons.push(format!(
            "{clusters} board-day clusters < {}",
            p.gate_clusters
        ));
    }
    WindowResult {
        window_days,
        primary: window_days == p.primary_window,
        gate: Gate {
            passed: reasons.is_empty(),
            reasons,
        },
        clusters,
        attributed_converters: xe,
        incremental_converters: incremental,
        attributable_fraction: comparison
            .risk_ratio
            .filter(|rr| *rr > 0.0)
            .map(|rr| (rr - 1.0) / rr),
        comparison,
        stratified,
        bootstrap: d_boot.map(|b| Estimate {
            estimate: d,
            interval: b.0,
        }),
        bootstrap_se: d_boot.map(|b| b.1),
        design_effect: d_boot.map(|b| b.1.powi(2) / binom_var),
        cuped,
        cuped_theta: theta,
        revenue,
        people,
        placebo_brand: placebo,
        pre_period_exposed: mean(&pe_pre),
        pre_period_control: mean(&pc_pre),
        pre_period_difference: Estimate {
            estimate: diff,
            interval: Interval {
                lo: diff - z * se,
                hi: diff + z * se,
            },
        },
        randomization_p,
    }
}

/// Randomization inference: arm labels permuted within strata; the share of permutations
/// with |D| at least the observed.
fn permutation_p(units: &[&Unit], wi: usize, p: &Params, observed: f64) -> f64 {
    let mut by_stratum: HashMap<usize, Vec<(bool, bool)>> = HashMap::new();
    for u in units {
        by_stratum
            .entry(u.stratum)
            .or_default()
            .push((u.exposed, u.converted[wi]));
    }
    let mut groups: Vec<Vec<(bool, bool)>> = by_stratum.into_values().collect();
    groups.sort();
    let (ne, nc) = units.iter().fold((0.0, 0.0), |(e, c), u| {
        if u.exposed {
            (e + 1.0, c)
        } else {
            (e, c + 1.0)
        }
    });
    if ne == 0.0 || nc == 0.0 {
        return 1.0;
    }
    let mut rng = Rng(p.seed.wrapping_add(0x5eed));
    let mut extreme = 0usize;
    for _ in 0..p.permutations {
        let (mut xe, mut xc) = (0.0f64, 0.0f64);
        for g in &mut groups {
            // Fisher-Yates on the labels.
            for i in (1..g.len()).rev() {
                let j = rng.below(i + 1);
                let (a, b) = (g[i].0, g[j].0);
                g[i].0 = b;
                g[j].0 = a;
            }
            for &(e, y) in g.iter() {
                if y {
                    if e {
                        xe += 1.0;
                    } else {
                        xc += 1.0;
                    }
                }
            }
        }
        if (xe / ne - xc / nc).abs() >= observed.abs() - 1e-12 {
            extreme += 1;
        }
    }
    (extreme + 1) as f64 / (p.permutations + 1) as f64
}

/// A row of the lift-by-board table; `None` cells are suppressed (k-anonymity).
#[derive(Debug, Serialize)]
pub struct BoardRow {
    pub board: String,
    pub suppressed: bool,
    pub exposed: Option<(u64, u64)>,
    pub control: Option<(u64, u64)>,
    pub difference: Option<Estimate>,
}

/// Lift by board of assignment in the primary window, with small cells suppressed: a row
/// with an arm under k devices or k converters, and then the next smallest row too when
/// only one would be hidden (so the total does not reveal it).
pub fn by_board(design: &Design, inp: &Inputs, p: &Params) -> Vec<BoardRow> {
    let wi = p.primary_index();
    let w = i64::from(p.primary_window) * DAY_MS;
    let mut counts = vec![[0u64; 4]; design.boards.len()];
    for u in design.units.iter().filter(|u| u.t0 + w <= inp.data_end_ms) {
        let c = &mut counts[u.board];
        let a = arm(u.exposed);
        c[2 * a] += 1;
        c[2 * a + 1] += u64::from(u.converted[wi]);
    }
    let small = |c: &[u64; 4]| {
        c[0] < p.k_devices || c[2] < p.k_devices || c[1] < p.k_converters || c[3] < p.k_converters
    };
    let mut hide: Vec<bool> = counts.iter().map(small).collect();
    if hide.iter().filter(|h| **h).count() == 1 {
        if let Some(i) = (0..counts.len())
            .filter(|&i| !hide[i])
            .min_by_key(|&i| counts[i][0] + counts[i][2])
        {
            hide[i] = true;
        }
    }
    let z = stats::z_of(p.confidence);
    design
        .boards
        .iter()
        .zip(counts)
        .zip(hide)
        .map(|((board, c), hidden)| BoardRow {
            board: board.clone(),
            suppressed: hidden,
            exposed: (!hidden).then_some((c[1], c[0])),
            control: (!hidden).then_some((c[3], c[2])),
            difference: (!hidden).then(|| Estimate {
                estimate: stats::ratio(c[1], c[0]) - stats::ratio(c[3], c[2]),
                interval: stats::newcombe(c[1], c[0], c[3], c[2], z),
            }),
        })
        .collect()
}

/// Cumulative conversion of both arms over the primary window: (hours since t0, exposed,
/// control), in hourly steps for windows up to 3 days, daily beyond.
pub fn curves(design: &Design, inp: &Inputs, p: &Params) -> Vec<(f64, f64, f64)> {
    let w = i64::from(p.primary_window) * DAY_MS;
    let step = if p.primary_window <= 3 {
        HOUR_MS
    } else {
        DAY_MS
    };
    let units: Vec<&Unit> = design
        .units
        .iter()
        .filter(|u| u.t0 + w <= inp.data_end_ms)
        .collect();
    let share = |e: bool, t: i64| {
        let arm: Vec<&&Unit> = units.iter().filter(|u| u.exposed == e).collect();
        if arm.is_empty() {
            return 0.0;
        }
        let converted = arm
            .iter()
            .filter(|u| u.first_after.is_some_and(|v| v <= u.t0 + t))
            .count();
        converted as f64 / arm.len() as f64
    };
    (0..=w / step)
        .map(|k| {
            let t = k * step;
            (t as f64 / HOUR_MS as f64, share(true, t), share(false, t))
        })
        .collect()
}
