//! The estimates of one report (ATTRIBUTION.md, "Estimands" and "Inference"), per window
//! over the devices followed up for all of it: the comparison with its intervals
//! ([`crate::stats`]), and one module per estimator: [`stratified`], [`bootstrap`] (the
//! board-day cluster bootstrap), [`cuped`], [`permutation`], and the store-level [`geo`]
//! estimate beside the device comparison. Then revenue, people-scale
//! figures, the falsification checks and the gates; and the lift by board and the curves.

pub mod bootstrap;
pub mod cuped;
pub mod geo;
pub mod permutation;
pub mod stratified;

use std::collections::HashMap;

use serde::Serialize;

use self::bootstrap::{Draw, Sums};
use crate::data::Inputs;
use crate::design::{Design, Params, Unit, DAY_MS, HOUR_MS};
use crate::stats::{self, Comparison, Interval};

/// An estimate with its interval.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Estimate {
    pub estimate: f64,
    pub interval: Interval,
}

#[derive(Debug, Serialize)]
pub struct Revenue {
    /// The cap (the 99th percentile of the spenders' revenue); None when fewer than k
    /// spenders reach it, since it would then be about one person's receipts.
    pub winsorized_at: Option<f64>,
    pub per_device_exposed: f64,
    pub per_device_control: f64,
    pub incremental: Estimate,
    pub iroas: Option<Estimate>,
}

/// What loyalty programmes judge a campaign by, among the loyalty-linked devices of each
/// arm (their receipts at the brand's stores within the window, also when there are none):
/// receipts per device (purchase frequency) and the mean check (what the receipts came to
/// over their number), exposed minus control, with the board-day cluster bootstrap's
/// intervals (NaN without one).
#[derive(Debug, Serialize)]
pub struct LoyaltyOutcomes {
    pub linked_exposed: u64,
    pub linked_control: u64,
    /// Linked devices with at least one receipt.
    pub buyers_exposed: u64,
    pub buyers_control: u64,
    pub frequency_exposed: f64,
    pub frequency_control: f64,
    pub frequency_difference: Estimate,
    pub check_exposed: f64,
    pub check_control: f64,
    pub check_difference: Option<Estimate>,
}

#[derive(Debug, Serialize)]
pub struct People {
    pub incremental_visitors: Estimate,
    pub cost_per_incremental_visitor: Option<f64>,
}

/// The lift D and the interval the report leads with. Devices that passed one board on one
/// day share the weather, an event, the crowd: they are not independent, so with at least
/// `gate_clusters` board-day clusters the interval is the cluster bootstrap's
/// (ATTRIBUTION.md: the primary SE), and Newcombe's, which assumes independent devices,
/// stands beside it in the comparison. With fewer clusters the bootstrap has too little to
/// resample and Newcombe's leads.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Headline {
    pub method: HeadlineMethod,
    pub estimate: f64,
    pub interval: Interval,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadlineMethod {
    ClusterBootstrap,
    Newcombe,
}

impl Headline {
    /// The bootstrap's interval with at least `min_clusters` clusters, else Newcombe's.
    fn choose(
        d: f64,
        newcombe: Interval,
        bootstrap: Option<Interval>,
        clusters: usize,
        min_clusters: usize,
    ) -> Headline {
        match bootstrap {
            Some(interval) if clusters >= min_clusters => Headline {
                method: HeadlineMethod::ClusterBootstrap,
                estimate: d,
                interval,
            },
            _ => Headline {
                method: HeadlineMethod::Newcombe,
                estimate: d,
                interval: newcombe,
            },
        }
    }
}

impl HeadlineMethod {
    /// The method's name in a sentence of the report.
    pub fn label(self) -> &'static str {
        match self {
            HeadlineMethod::ClusterBootstrap => "board-day cluster bootstrap",
            HeadlineMethod::Newcombe => "Newcombe, devices independent",
        }
    }
}

/// How the stratified estimate used the strata: each dense one on its own, the sparse ones
/// (an arm under `min_stratum_devices`) by Mantel-Haenszel, and the devices of strata where
/// the other arm has nobody, which compare nothing and are left out.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct StrataUse {
    pub dense: usize,
    pub sparse: usize,
    pub excluded_devices: u64,
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
    /// The lift D with the interval the report leads with ([`Headline`]).
    pub headline: Headline,
    /// Counts, rates and the interval statistics (Newcombe, Katz, Wald, p-value).
    pub comparison: Comparison,
    /// Over board x day-of-week x hour-block strata, exposed-weighted, sparse strata by
    /// Mantel-Haenszel ([`stratified`]); the bootstrap's interval, or the analytic one.
    pub stratified: Option<Estimate>,
    /// The analytic SE of the stratified estimate, and how its strata were used.
    pub stratified_se: Option<f64>,
    pub strata: Option<StrataUse>,
    /// Day-cluster (board-day) bootstrap percentile interval of D, and its SE.
    pub bootstrap: Option<Estimate>,
    pub bootstrap_se: Option<f64>,
    pub design_effect: Option<f64>,
    pub cuped: Option<Estimate>,
    pub cuped_theta: Option<f64>,
    /// x_e: converters among the exposed.
    pub attributed_converters: u64,
    /// n_e * D, with the headline interval scaled.
    pub incremental_converters: Estimate,
    pub attributable_fraction: Option<f64>,
    pub revenue: Revenue,
    /// Purchase frequency and mean check of the loyalty-linked devices; None when there
    /// are none or they are suppressed (`loyalty_suppressed`: an arm under k linked devices
    /// or k buyers).
    pub loyalty: Option<LoyaltyOutcomes>,
    pub loyalty_suppressed: bool,
    pub people: Option<People>,
    /// The placebo brand's comparison; None when there is none or it is suppressed (an arm
    /// under k converters).
    pub placebo_brand: Option<Comparison>,
    pub placebo_suppressed: bool,
    /// Mean pre-period visits per arm, and the difference with a Welch interval.
    pub pre_period_exposed: f64,
    pub pre_period_control: f64,
    pub pre_period_difference: Estimate,
    pub randomization_p: Option<f64>,
}

/// The estimates for one window over the units followed up for all of it.
pub fn window(design: &Design, inp: &Inputs, p: &Params, wi: usize) -> WindowResult {
    let window_days = p.windows[wi];
    let units = followed_up(design, inp, window_days);
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
    let cap = revenue_cap(&units, wi);

    let sums = cluster_sums(&units, wi, cap, design.clusters.len());
    let present: Vec<&Sums> = sums
        .iter()
        .filter(|s| s.arms[0].n + s.arms[1].n > 0.0)
        .collect();
    let min = p.min_stratum_devices as f64;
    let point = bootstrap::draw(&present, min);
    let clusters = present.len();
    let draws = bootstrap::resample(
        &present,
        p.bootstrap,
        p.seed ^ u64::from(window_days).wrapping_mul(0x9e37_79b9),
        min,
    );
    // The draws' percentile interval of one estimate, widened about the draws' median for
    // few clusters ([`bootstrap::few_clusters`]), and their sd so corrected (its SE).
    let (widen, se_factor) = bootstrap::few_clusters(clusters, p.confidence);
    let boot = |f: &dyn Fn(&Draw) -> Option<f64>| -> Option<(Interval, f64)> {
        let mut v: Vec<f64> = draws.iter().filter_map(f).collect();
        v.retain(|x| x.is_finite());
        (v.len() >= 2).then(|| {
            v.sort_by(f64::total_cmp);
            let mid = stats::percentile(&v, 0.5);
            let raw = stats::percentile_interval(v.clone(), p.confidence);
            let interval = Interval {
                lo: mid - widen * (mid - raw.lo),
                hi: mid + widen * (raw.hi - mid),
            };
            (interval, stats::sd(&v) * se_factor)
        })
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
    // Stratified: the cluster bootstrap's interval when there is one, the analytic one
    // (strata independent) otherwise.
    let stratified = point.strat.map(|s| Estimate {
        estimate: s.estimate,
        interval: boot(&|d| d.strat.map(|s| s.estimate))
            .map_or(Interval::normal(s.estimate, s.variance.sqrt(), z), |b| b.0),
    });
    // CUPED over every unit (the sample's draw): the point estimate; the cluster
    // bootstrap's interval when there is one (analytic, i.i.d., otherwise).
    let adjusted = point.cuped;
    let cuped = adjusted.map(|c| Estimate {
        estimate: c.difference,
        interval: boot(&|d| d.cuped.map(|c| c.difference))
            .map_or(Interval::normal(c.difference, c.se, z), |b| b.0),
    });

    let d = comparison.difference;
    let headline = Headline::choose(
        d,
        comparison.newcombe,
        d_boot.map(|b| b.0),
        clusters,
        p.gate_clusters,
    );
    let incremental = Estimate {
        estimate: ne as f64 * d,
        interval: Interval {
            lo: ne as f64 * headline.interval.lo,
            hi: ne as f64 * headline.interval.hi,
        },
    };
    let revenue = revenue(
        &units,
        wi,
        cap,
        ne,
        boot(&|d| Some(d.rev)),
        inp.campaign.spend,
        p.k_converters,
    );
    let (loyalty, loyalty_suppressed) = loyalty(&units, wi, p, &point, &boot);
    let people = people(
        p,
        d,
        &incremental,
        d_boot.map_or(binom_var.sqrt(), |b| b.1),
        z,
        inp.campaign.spend,
    );
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
    // The placebo's converters are cells like the brand's: hidden under k.
    let placebo_suppressed = placebo.as_ref().is_some_and(|c| {
        c.exposed.converters < p.k_converters || c.control.converters < p.k_converters
    });
    let placebo = placebo.filter(|_| !placebo_suppressed);
    let (pre_exposed, pre_control, pre_difference) = pre_period_balance(&units, z);
    let randomization_p = (window_days == p.primary_window && p.permutations > 0)
        .then(|| permutation::permutation_p(&units, wi, p.permutations, p.seed, d));

    WindowResult {
        window_days,
        primary: window_days == p.primary_window,
        gate: gate(p, (ne, xe), (nc, xc), clusters),
        clusters,
        headline,
        attributed_converters: xe,
        incremental_converters: incremental,
        attributable_fraction: comparison
            .risk_ratio
            .filter(|rr| *rr > 0.0)
            .map(|rr| (rr - 1.0) / rr),
        comparison,
        stratified,
        stratified_se: point.strat.map(|s| s.variance.sqrt()),
        strata: point.strat.map(|s| StrataUse {
            dense: s.dense_strata,
            sparse: s.sparse_strata,
            excluded_devices: s.excluded_devices as u64,
        }),
        bootstrap: d_boot.map(|b| Estimate {
            estimate: d,
            interval: b.0,
        }),
        bootstrap_se: d_boot.map(|b| b.1),
        design_effect: d_boot.map(|b| b.1.powi(2) / binom_var),
        cuped,
        cuped_theta: adjusted.map(|c| c.theta),
        revenue,
        loyalty,
        loyalty_suppressed,
        people,
        placebo_brand: placebo,
        placebo_suppressed,
        pre_period_exposed: pre_exposed,
        pre_period_control: pre_control,
        pre_period_difference: pre_difference,
        randomization_p,
    }
}

/// The units whose follow-up covers `window_days` after t0.
fn followed_up<'a>(design: &'a Design, inp: &Inputs, window_days: u32) -> Vec<&'a Unit> {
    let w = i64::from(window_days) * DAY_MS;
    design
        .units
        .iter()
        .filter(|u| u.t0 + w <= inp.data_end_ms)
        .collect()
}

fn arm(exposed: bool) -> usize {
    usize::from(!exposed)
}

/// Revenue is winsorized at the 99th percentile of the devices that spent (most spend
/// nothing: the percentile over all devices would cap ordinary baskets).
fn revenue_cap(units: &[&Unit], wi: usize) -> f64 {
    let mut revs: Vec<f64> = units
        .iter()
        .map(|u| u.revenue[wi])
        .filter(|&r| r > 0.0)
        .collect();
    revs.sort_by(|a, b| a.total_cmp(b));
    let cap = stats::percentile(&revs, 0.99);
    if cap.is_finite() {
        cap
    } else {
        0.0
    }
}

/// Per board-day cluster: the sums the estimates and the bootstrap draws need.
fn cluster_sums(units: &[&Unit], wi: usize, cap: f64, clusters: usize) -> Vec<Sums> {
    let mut sums: Vec<Sums> = vec![Sums::default(); clusters];
    let mut cells: Vec<HashMap<(usize, usize), (f64, f64)>> = vec![HashMap::new(); clusters];
    for u in units {
        let a = arm(u.exposed);
        let y = f64::from(u8::from(u.converted[wi]));
        let s = &mut sums[u.cluster];
        s.arms[a].add(u.pre, y);
        s.rev[a] += u.revenue[wi].min(cap);
        if u.linked {
            s.linked[a] += 1.0;
            s.receipts[a] += u.receipts[wi];
            s.spent[a] += u.revenue[wi];
        }
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
    sums
}

/// Revenue per device in each arm, the incremental revenue (n_e x the difference, with the
/// bootstrap's interval `rev_boot`) and the iROAS.
fn revenue(
    units: &[&Unit],
    wi: usize,
    cap: f64,
    ne: u64,
    rev_boot: Option<(Interval, f64)>,
    spend: f64,
    k: u64,
) -> Revenue {
    let at_cap = units
        .iter()
        .filter(|u| u.revenue[wi] >= cap && cap > 0.0)
        .count() as u64;
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
    let incremental = Estimate {
        estimate: ne as f64 * (re - rc),
        interval: rev_boot.map_or(Interval::NAN, |b| Interval {
            lo: ne as f64 * b.0.lo,
            hi: ne as f64 * b.0.hi,
        }),
    };
    Revenue {
        winsorized_at: (at_cap >= k).then_some(cap),
        per_device_exposed: re,
        per_device_control: rc,
        incremental,
        iroas: (spend > 0.0).then(|| Estimate {
            estimate: incremental.estimate / spend,
            interval: Interval {
                lo: incremental.interval.lo / spend,
                hi: incremental.interval.hi / spend,
            },
        }),
    }
}

/// The bootstrap of one estimate: its draws' percentile interval and sd, from a function of
/// a draw.
type Boot<'a> = dyn Fn(&dyn Fn(&Draw) -> Option<f64>) -> Option<(Interval, f64)> + 'a;

/// The loyalty outcomes of window `wi` (the sample's `point` draw, intervals by `boot`), and
/// whether they are suppressed.
fn loyalty(
    units: &[&Unit],
    wi: usize,
    p: &Params,
    point: &Draw,
    boot: &Boot,
) -> (Option<LoyaltyOutcomes>, bool) {
    let of = |e: bool, f: &dyn Fn(&Unit) -> f64| -> f64 {
        units
            .iter()
            .filter(|u| u.exposed == e && u.linked)
            .map(|u| f(u))
            .sum()
    };
    let linked = |e: bool| of(e, &|_| 1.0) as u64;
    let buyers = |e: bool| of(e, &|u| f64::from(u8::from(u.receipts[wi] > 0.0))) as u64;
    let (le, lc, be, bc) = (linked(true), linked(false), buyers(true), buyers(false));
    let Some(frequency) = point.frequency else {
        return (None, false);
    };
    if le.min(lc) < p.k_devices || be.min(bc) < p.k_converters {
        return (None, true);
    }
    let estimate = |x: f64, f: &dyn Fn(&Draw) -> Option<f64>| Estimate {
        estimate: x,
        interval: boot(f).map_or(Interval::NAN, |b| b.0),
    };
    let (re, rc) = (
        of(true, &|u| u.receipts[wi]),
        of(false, &|u| u.receipts[wi]),
    );
    let (se, sc) = (of(true, &|u| u.revenue[wi]), of(false, &|u| u.revenue[wi]));
    (
        Some(LoyaltyOutcomes {
            linked_exposed: le,
            linked_control: lc,
            buyers_exposed: be,
            buyers_control: bc,
            frequency_exposed: re / le as f64,
            frequency_control: rc / lc as f64,
            frequency_difference: estimate(frequency, &|d| d.frequency),
            check_exposed: se / re,
            check_control: sc / rc,
            check_difference: point.check.map(|c| estimate(c, &|d| d.check)),
        }),
        false,
    )
}

/// People-scale incremental visitors: the sensed incremental converters over the board and
/// store capture rates, with their uncertainty propagated on the log scale
/// (Var(ln I) ~ Var(D)/D^2 + Var(c_b)/c_b^2 + Var(c_s)/c_s^2).
fn people(
    p: &Params,
    d: f64,
    incremental: &Estimate,
    se_d: f64,
    z: f64,
    spend: f64,
) -> Option<People> {
    match (p.board_capture, p.store_capture) {
        (Some((cb, sb)), Some((cs, ss))) if d > 0.0 && cb > 0.0 && cs > 0.0 => {
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
    }
}

/// Mean pre-period visits per arm, and their difference with a Welch interval.
fn pre_period_balance(units: &[&Unit], z: f64) -> (f64, f64, Estimate) {
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
    let se = (stats::sd(&pe_pre).powi(2) / pe_pre.len() as f64
        + stats::sd(&pc_pre).powi(2) / pc_pre.len() as f64)
        .sqrt();
    (
        mean(&pe_pre),
        mean(&pc_pre),
        Estimate {
            estimate: diff,
            interval: Interval::normal(diff, se, z),
        },
    )
}

/// ATTRIBUTION.md's gates: devices and converters per arm, and clusters.
fn gate(p: &Params, exposed: (u64, u64), control: (u64, u64), clusters: usize) -> Gate {
    let mut reasons = Vec::new();
    for (name, (n, x)) in [("exposed", exposed), ("control", control)] {
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
    Gate {
        passed: reasons.is_empty(),
        reasons,
    }
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
/// with an arm under k devices or k converters, with complements so that the primary
/// window's counts minus the shown rows reveal nothing small ([`disclosure::hide`]).
pub fn by_board(design: &Design, inp: &Inputs, p: &Params) -> Vec<BoardRow> {
    let wi = p.primary_index();
    let mut counts = vec![[0u64; 4]; design.boards.len()];
    for u in followed_up(design, inp, p.primary_window) {
        let c = &mut counts[u.board];
        let a = arm(u.exposed);
        c[2 * a] += 1;
        c[2 * a + 1] += u64::from(u.converted[wi]);
    }
    let cells: Vec<Vec<u64>> = counts.iter().map(|c| c.to_vec()).collect();
    let (kd, kc) = (p.k_devices, p.k_converters);
    let hide = disclosure::hide(&cells, &[kd, kc, kd, kc], false);
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
///
/// A point is a count of converters, so it is published (per arm) only where it differs by
/// at least k converters from the published points on either side: the curve gives away
/// no small group of converters by difference. Some points are fixed: the origin (nobody
/// converted yet, by definition), the end (the primary window's converters) and the ends
/// of the shorter windows published over the same devices (`anchor_days`: their counts are
/// in the windows table anyway, so a point beside them must keep its distance too).
pub fn curves(
    design: &Design,
    inp: &Inputs,
    p: &Params,
    anchor_days: &[u32],
) -> Vec<(f64, Option<f64>, Option<f64>)> {
    let w = i64::from(p.primary_window) * DAY_MS;
    let step = if p.primary_window <= 3 {
        HOUR_MS
    } else {
        DAY_MS
    };
    let units = followed_up(design, inp, p.primary_window);
    let times: Vec<i64> = (0..=w / step).map(|k| k * step).collect();
    let last = times.len() - 1;
    let fixed: Vec<bool> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            i == 0 || i == last || anchor_days.iter().any(|&d| i64::from(d) * DAY_MS == *t)
        })
        .collect();
    // Per arm: the share at every published time, None elsewhere.
    let arm_curve = |e: bool| -> Vec<Option<f64>> {
        let arm: Vec<&&Unit> = units.iter().filter(|u| u.exposed == e).collect();
        if arm.is_empty() {
            return vec![None; times.len()];
        }
        let converted: Vec<u64> = times
            .iter()
            .map(|&t| {
                arm.iter()
                    .filter(|u| u.first_after.is_some_and(|v| v <= u.t0 + t))
                    .count() as u64
            })
            .collect();
        let k = p.k_converters;
        let mut shown = vec![None; times.len()];
        let mut before = 0;
        for i in 0..times.len() {
            let x = converted[i];
            let next_fixed = (i..times.len())
                .find(|&j| fixed[j])
                .map_or(x, |j| converted[j]);
            if fixed[i] || (x >= before + k && next_fixed >= x + k) {
                shown[i] = Some(x as f64 / arm.len() as f64);
                before = x;
            }
        }
        shown
    };
    let (exposed, control) = (arm_curve(true), arm_curve(false));
    times
        .iter()
        .zip(exposed.into_iter().zip(control))
        .map(|(&t, (e, c))| (t as f64 / HOUR_MS as f64, e, c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 14-day primary window (daily points) whose 1- and 7-day windows are published
    /// over the same devices: those days are points of the curve, kept, and the points
    /// around them are published only k converters away, as is every other point.
    #[test]
    fn curve_points_keep_k_converters_from_every_published_neighbour() {
        use crate::data::Inputs;
        use crate::design::Exclusions;
        // Converters first visiting on each day 1..=14 (exposed arm); the control none.
        let per_day = [12u64, 3, 15, 4, 4, 30, 2, 9, 9, 9, 0, 40, 1, 5];
        let mut units = Vec::new();
        for (d, &n) in per_day.iter().enumerate() {
            for _ in 0..n {
                units.push(unit(true, Some(d as i64 * DAY_MS + HOUR_MS)));
            }
        }
        units.extend((0..300).map(|_| unit(true, None)));
        units.extend((0..300).map(|_| unit(false, None)));
        let design = Design {
            units,
            exclusions: Exclusions::default(),
            boards: vec!["b".into()],
            clusters: vec![(0, 0)],
            strata: vec![(0, 0, 0)],
        };
        let inp = Inputs {
            data_end_ms: 30 * DAY_MS,
            ..Inputs::for_test(&["b"])
        };
        let p = Params::defaults(14);
        let n = (per_day.iter().sum::<u64>() + 300) as f64;
        let curve = curves(&design, &inp, &p, &[1, 7]);
        let counts: Vec<(usize, u64)> = curve
            .iter()
            .enumerate()
            .filter_map(|(day, c)| c.1.map(|s| (day, (s * n).round() as u64)))
            .collect();
        // Cumulative by day: 0, 12, 15, 30, 34, 38, 68, 70, 79, ... 143.
        assert_eq!(counts.first(), Some(&(0, 0)), "the origin");
        assert!(
            counts.contains(&(1, 12)) && counts.contains(&(7, 70)),
            "{counts:?}"
        );
        assert_eq!(counts.last(), Some(&(14, 143)), "the end");
        // Day 6 (68) is only 2 from day 7's anchor: hidden, though 30 above the last point.
        assert!(!counts.iter().any(|c| c.0 == 6), "{counts:?}");
        for pair in counts.windows(2) {
            assert!(pair[1].1 >= pair[0].1 + 10, "{counts:?}");
        }
        // The control arm converted nobody: only its fixed points are shown.
        let control: Vec<usize> = (0..curve.len()).filter(|&d| curve[d].2.is_some()).collect();
        assert_eq!(control, [0, 1, 7, 14]);
    }

    fn unit(exposed: bool, first_after: Option<i64>) -> Unit {
        Unit {
            exposed,
            t0: 0,
            board: 0,
            stratum: 0,
            cluster: 0,
            pre: 0.0,
            first_after,
            converted: vec![false; 6],
            placebo: vec![false; 6],
            revenue: vec![0.0; 6],
            receipts: vec![0.0; 6],
            linked: false,
        }
    }

    #[test]
    fn the_bootstrap_leads_with_enough_clusters_and_newcombe_otherwise() {
        let n = Interval { lo: 0.0, hi: 0.02 };
        let b = Interval {
            lo: -0.01,
            hi: 0.03,
        };
        let h = Headline::choose(0.01, n, Some(b), 20, 20);
        assert_eq!(
            (h.method, h.interval.lo),
            (HeadlineMethod::ClusterBootstrap, -0.01)
        );
        let h = Headline::choose(0.01, n, Some(b), 19, 20);
        assert_eq!((h.method, h.interval.lo), (HeadlineMethod::Newcombe, 0.0));
        let h = Headline::choose(0.01, n, None, 50, 20);
        assert_eq!(h.method, HeadlineMethod::Newcombe);
    }
}
