//! The store-level (geo) estimate: the brand's stores near the campaign's boards against its
//! other stores, from the people the store sensors count (the collector's `traffic`), linkable
//! devices or not. The device comparison sees only the few phones with a stable address; this
//! sees everyone, and answers a different question: did the nearby stores' traffic rise, over
//! the test period (the flight and the primary window), beyond the other stores'?
//!
//! Per store i: r_i = ln(mean daily visitors in the test period / in the pre-period), the
//! pre-period being the `pre_days` before the flight (from the store's first day of data).
//! The estimate is the difference in differences of logs, θ = mean(r | treated) -
//! mean(r | control); the lift on the treated stores' visitors is e^θ - 1. A store is treated
//! when it is within `radius_m` of one of the campaign's boards.
//!
//! Inference is randomization inference, the placebo inference of synthetic control and of
//! GeoLift: θ over the assignments of the treated count to the stores (every one of them up to
//! [`EXACT_MAX`], else [`DRAWS`] seeded draws plus the observed one); the two-sided p-value
//! is the share with |θ_A| >= |θ|. The interval inverts the test under a constant effect τ on
//! the treated stores' log ratio (the τ not rejected at 1 - confidence). Since subtracting τ
//! from the treated stores moves θ_A by τ (|A ∩ T|/k - |T \ A|/(n - k)), each assignment is
//! kept as that pair and the test at any τ is one pass over them.
//!
//! With few stores no assignment can be rare enough: when the smallest p-value attainable
//! (the observed assignment, and its mirror when both groups have the same size, out of all
//! of them) is above 1 - confidence, there is no interval, and the status says so.

use std::collections::HashMap;

use serde::Serialize;

use crate::data::{GeoInputs, Place};
use crate::stats::{self, Interval, Rng};

/// Up to this many assignments, all are enumerated (the exact test).
pub const EXACT_MAX: u64 = 20_000;
/// Otherwise this many seeded draws, and the observed assignment.
pub const DRAWS: usize = 9_999;

/// The geo estimate's settings.
#[derive(Clone, Debug)]
pub struct GeoParams {
    pub radius_m: f64,
    /// The pre-period's first day and the test period's first and last (days since 1970).
    pub pre_first: i64,
    pub test_first: i64,
    pub test_last: i64,
    pub confidence: f64,
    pub seed: u64,
}

/// Whether the geo estimate has an interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GeoStatus {
    Ok,
    /// Both groups exist, but too few stores for any assignment to be rare at the level.
    TooFewStores,
    /// No store near the boards, or none away from them.
    NoComparison,
}

/// A store left out of the geo estimate, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GeoExcluded {
    pub store: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Geo {
    pub status: GeoStatus,
    pub radius_m: f64,
    /// First and last day of each period, as dates.
    pub pre_period: [String; 2],
    pub test_period: [String; 2],
    pub treated: Vec<String>,
    pub control: Vec<String>,
    pub excluded: Vec<GeoExcluded>,
    /// Visitors a day over the group's stores (the sum of their daily means), pre and test.
    pub treated_daily: [f64; 2],
    pub control_daily: [f64; 2],
    /// θ, the difference in differences of log visitors.
    pub log_effect: Option<f64>,
    /// e^θ - 1: the treated stores' visitors above what the control stores' trend predicts.
    pub lift: Option<f64>,
    /// The lift's interval (randomization inference inverted), with `status` ok.
    pub interval: Option<Interval>,
    pub p_value: Option<f64>,
    /// The treated stores' visitors in the test period beyond the counterfactual, and its
    /// interval.
    pub incremental_visitors: Option<f64>,
    pub incremental_interval: Option<Interval>,
    /// How many assignments the test ran over, whether all of them.
    pub assignments: usize,
    pub exact: bool,
    /// The smallest p-value attainable with these groups.
    pub min_p: f64,
    /// The smallest lift detectable with 80 % power (from the assignments' spread of θ).
    pub mde: Option<f64>,
    /// A placebo in time: the same estimate between the pre-period's halves, where there was
    /// no campaign. A small p-value says the two groups' trends differed before the flight,
    /// and the estimate above may be that trend.
    pub pre_trend: Option<PreTrend>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct PreTrend {
    pub lift: f64,
    pub p_value: f64,
}

/// The geo estimate of a campaign's report: the test period is the flight and the primary
/// window after it, up to the last day the data cover (a day counts when they reach its last
/// hour, when stores are closed); the pre-period, the `pre_days` before the flight.
pub fn of_campaign(inp: &crate::data::Inputs, p: &crate::design::Params) -> Geo {
    use crate::design::{DAY_MS, HOUR_MS};
    let c = &inp.campaign;
    let day = |ms: i64| ms.div_euclid(DAY_MS);
    let test_first = day(c.start_ms);
    let window_end = c.end_ms + i64::from(p.primary_window) * DAY_MS;
    let covered = day(inp.data_end_ms + HOUR_MS) - 1;
    estimate(
        &inp.geo,
        &GeoParams {
            radius_m: p.geo_radius_m,
            pre_first: test_first - i64::from(p.pre_days),
            test_first,
            test_last: day(window_end - 1).min(covered),
            confidence: p.confidence,
            seed: p.seed,
        },
    )
}

/// Great-circle distance, metres.
fn distance_m(a: &Place, b: &Place) -> f64 {
    const R: f64 = 6_371_008.8;
    let (la, lb) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lb - la;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la.cos() * lb.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().asin()
}

/// One store's daily means, pre and test.
struct StoreMeans {
    id: String,
    treated: bool,
    pre: f64,
    test: f64,
    /// ln(mean of the pre-period's second half / its first half), when both had visitors.
    pre_trend: Option<f64>,
}

/// The geo estimate for `inp` with `p`.
pub fn estimate(inp: &GeoInputs, p: &GeoParams) -> Geo {
    let day = |d: i64| crate::data::iso_day(d * crate::data::DAY_MS);
    let mut by_store: HashMap<&str, Vec<(i64, f64)>> = HashMap::new();
    for (id, d, v) in &inp.daily {
        by_store.entry(id).or_default().push((i64::from(*d), *v));
    }
    let test_days = p.test_last - p.test_first + 1;
    let mut excluded = Vec::new();
    let mut stores = Vec::new();
    for s in &inp.stores {
        let rows = by_store.get(s.id.as_str()).map_or(&[][..], Vec::as_slice);
        let Some(first) = rows.iter().map(|r| r.0).min() else {
            excluded.push(GeoExcluded {
                store: s.id.clone(),
                reason: "no traffic",
            });
            continue;
        };
        let pre_first = p.pre_first.max(first);
        let sum = |lo: i64, hi: i64| -> f64 {
            rows.iter()
                .filter(|(d, _)| (lo..=hi).contains(d))
                .map(|r| r.1)
                .sum()
        };
        let pre_days = p.test_first - pre_first;
        let (pre, test) = (
            sum(pre_first, p.test_first - 1),
            sum(p.test_first, p.test_last),
        );
        let reason = if pre_days <= 0 || pre <= 0.0 {
            Some("no visitors in the pre-period")
        } else if test_days <= 0 || test <= 0.0 {
            Some("no visitors in the test period")
        } else {
            None
        };
        if let Some(reason) = reason {
            excluded.push(GeoExcluded {
                store: s.id.clone(),
                reason,
            });
            continue;
        }
        let mid = pre_first + pre_days / 2;
        let (early, late) = (sum(pre_first, mid - 1), sum(mid, p.test_first - 1));
        stores.push(StoreMeans {
            id: s.id.clone(),
            treated: inp.boards.iter().any(|b| distance_m(s, b) <= p.radius_m),
            pre: pre / pre_days as f64,
            test: test / test_days as f64,
            pre_trend: (pre_days >= 2 && early > 0.0 && late > 0.0).then(|| {
                ((late / (p.test_first - mid) as f64) / (early / (mid - pre_first) as f64)).ln()
            }),
        });
    }
    let group =
        |t: bool| -> Vec<&StoreMeans> { stores.iter().filter(|s| s.treated == t).collect() };
    let (treated, control) = (group(true), group(false));
    let daily = |g: &[&StoreMeans]| {
        [
            g.iter().map(|s| s.pre).sum::<f64>(),
            g.iter().map(|s| s.test).sum::<f64>(),
        ]
    };
    let mut geo = Geo {
        status: GeoStatus::NoComparison,
        radius_m: p.radius_m,
        pre_period: [day(p.pre_first), day(p.test_first - 1)],
        test_period: [day(p.test_first), day(p.test_last)],
        treated: treated.iter().map(|s| s.id.clone()).collect(),
        control: control.iter().map(|s| s.id.clone()).collect(),
        excluded,
        treated_daily: daily(&treated),
        control_daily: daily(&control),
        log_effect: None,
        lift: None,
        interval: None,
        p_value: None,
        incremental_visitors: None,
        incremental_interval: None,
        assignments: 0,
        exact: false,
        min_p: 1.0,
        mde: None,
        pre_trend: None,
    };
    if treated.is_empty() || control.is_empty() {
        return geo;
    }
    let r: Vec<f64> = stores.iter().map(|s| (s.test / s.pre).ln()).collect();
    let is_treated: Vec<bool> = stores.iter().map(|s| s.treated).collect();
    let test = RandomizationTest::new(&r, &is_treated, p.seed);
    let theta = test.theta;
    let alpha = 1.0 - p.confidence;
    // The treated stores' test-period visitors, and what they would have been at effect θ'.
    let visitors: f64 = treated.iter().map(|s| s.test).sum::<f64>() * test_days as f64;
    let incremental = |t: f64| visitors * (1.0 - (-t).exp());
    geo.log_effect = Some(theta);
    geo.lift = Some(theta.exp_m1());
    geo.p_value = Some(test.p_value(0.0));
    geo.incremental_visitors = Some(incremental(theta));
    geo.assignments = test.pairs.len();
    geo.exact = test.exact;
    geo.min_p = test.min_p();
    let z = stats::z_of(p.confidence) + stats::norm_ppf(0.8);
    geo.mde = Some((z * stats::sd(&test.pairs.iter().map(|a| a.0).collect::<Vec<_>>())).exp_m1());
    let trends: Option<Vec<f64>> = stores.iter().map(|s| s.pre_trend).collect();
    geo.pre_trend = trends.map(|t| {
        let placebo = RandomizationTest::new(&t, &is_treated, p.seed);
        PreTrend {
            lift: placebo.theta.exp_m1(),
            p_value: placebo.p_value(0.0),
        }
    });
    geo.status = GeoStatus::TooFewStores;
    if let Some((lo, hi)) = test.inverted(alpha) {
        geo.status = GeoStatus::Ok;
        geo.interval = Some(Interval {
            lo: lo.exp_m1(),
            hi: hi.exp_m1(),
        });
        geo.incremental_interval = Some(Interval {
            lo: incremental(lo),
            hi: incremental(hi),
        });
    }
    geo
}

/// The randomization distribution of θ: per assignment A, (θ_A at τ = 0, how θ_A moves per
/// unit of τ).
struct RandomizationTest {
    theta: f64,
    pairs: Vec<(f64, f64)>,
    exact: bool,
}

impl RandomizationTest {
    fn new(r: &[f64], treated: &[bool], seed: u64) -> RandomizationTest {
        let n = r.len();
        let k = treated.iter().filter(|t| **t).count();
        let pair = |a: &[bool]| {
            let (mut st, mut sc, mut tt, mut tc) = (0.0, 0.0, 0.0, 0.0);
            for i in 0..n {
                let was = if treated[i] { 1.0 } else { 0.0 };
                if a[i] {
                    st += r[i];
                    tt += was;
                } else {
                    sc += r[i];
                    tc += was;
                }
            }
            let (k, m) = (k as f64, (n - k) as f64);
            (st / k - sc / m, tt / k - tc / m)
        };
        let exact = choose(n, k) <= EXACT_MAX;
        let mut pairs = Vec::new();
        if exact {
            let mut idx: Vec<usize> = (0..k).collect();
            loop {
                let mut a = vec![false; n];
                for &i in &idx {
                    a[i] = true;
                }
                pairs.push(pair(&a));
                if !next_combination(&mut idx, n) {
                    break;
                }
            }
        } else {
            pairs.push(pair(treated));
            let mut rng = Rng::new(seed.wrapping_add(0x6e0));
            let mut a = treated.to_vec();
            for _ in 0..DRAWS {
                for i in (1..n).rev() {
                    a.swap(i, rng.below(i + 1));
                }
                pairs.push(pair(&a));
            }
        }
        RandomizationTest {
            theta: pair(treated).0,
            pairs,
            exact,
        }
    }

    /// The p-value of "the effect is τ" (log scale).
    fn p_value(&self, tau: f64) -> f64 {
        let observed = (self.theta - tau).abs();
        let tol = 1e-12 * (1.0 + observed);
        let extreme = self
            .pairs
            .iter()
            .filter(|(a, b)| (a - tau * b).abs() >= observed - tol)
            .count();
        extreme as f64 / self.pairs.len() as f64
    }

    /// The smallest p-value any τ can give: assignments that move with τ exactly as the
    /// observed one (itself, and its mirror with equal groups) always count.
    fn min_p(&self) -> f64 {
        let always = self
            .pairs
            .iter()
            .filter(|(_, b)| (b.abs() - 1.0).abs() < 1e-9)
            .count();
        always as f64 / self.pairs.len() as f64
    }

    /// The τ not rejected at `alpha`, as (lowest, highest); None when every τ is kept.
    fn inverted(&self, alpha: f64) -> Option<(f64, f64)> {
        if self.min_p() > alpha {
            return None;
        }
        let spread = self
            .pairs
            .iter()
            .map(|p| p.0.abs())
            .fold(0.0, f64::max)
            .max(1e-6);
        let bound = |dir: f64| {
            // Out from θ until rejected, then bisect between kept and rejected.
            let (mut kept, mut out) = (self.theta, self.theta + dir * spread);
            for _ in 0..64 {
                if self.p_value(out) <= alpha {
                    break;
                }
                kept = out;
                out = self.theta + 2.0 * (out - self.theta);
            }
            for _ in 0..64 {
                let mid = (kept + out) / 2.0;
                if self.p_value(mid) > alpha {
                    kept = mid;
                } else {
                    out = mid;
                }
            }
            kept
        };
        Some((bound(-1.0), bound(1.0)))
    }
}

/// n choose k, saturating.
fn choose(n: usize, k: usize) -> u64 {
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        c = c * (n - i) as u128 / (i + 1) as u128;
        if c > u128::from(u64::MAX) {
            return u64::MAX;
        }
    }
    c as u64
}

/// The next k-subset of 0..n in lexicographic order; false after the last.
fn next_combination(idx: &mut [usize], n: usize) -> bool {
    let k = idx.len();
    for i in (0..k).rev() {
        if idx[i] < n - k + i {
            idx[i] += 1;
            for j in i + 1..k {
                idx[j] = idx[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::close;

    /// Four stores, two treated, log ratios 0.3, 0.1 (treated), 0.0, -0.2 (sum 0.2). By hand,
    /// θ_A = S_A/2 - (0.2 - S_A)/2 = S_A - 0.1: {0,1} 0.3, {0,2} 0.2, {0,3} 0.0, {1,2} 0.0,
    /// {1,3} -0.2, {2,3} -0.3. Two of six have |θ| >= 0.3 (the observed and its mirror):
    /// p = 2/6, also the smallest attainable, so there is no 95 % interval.
    #[test]
    fn four_stores_are_too_few_and_the_test_matches_the_hand_count() {
        let t = RandomizationTest::new(&[0.3, 0.1, 0.0, -0.2], &[true, true, false, false], 1);
        close(t.theta, 0.3, 1e-12);
        assert!(t.exact);
        let mut thetas: Vec<f64> = t.pairs.iter().map(|p| p.0).collect();
        thetas.sort_by(f64::total_cmp);
        for (got, want) in thetas.iter().zip([-0.3, -0.2, 0.0, 0.0, 0.2, 0.3]) {
            close(*got, want, 1e-12);
        }
        close(t.p_value(0.0), 2.0 / 6.0, 1e-12);
        close(t.min_p(), 2.0 / 6.0, 1e-12);
        assert_eq!(t.inverted(0.05), None);
    }

    /// Twelve stores, four treated: 495 assignments. The reference is an independent brute
    /// force in Python 3 (itertools.combinations over the stores, the treated stores' values
    /// shifted by τ and every θ recomputed; the interval by stepping τ out from θ by 1e-5 until
    /// rejected): θ = 0.19125, p = 1/495, the 95 % interval of θ [0.10000, 0.28500].
    #[test]
    fn twelve_stores_match_an_independent_brute_force() {
        let r = [
            0.21, 0.15, 0.30, 0.12, 0.02, -0.05, 0.08, 0.01, -0.03, 0.06, -0.10, 0.04,
        ];
        let treated: Vec<bool> = (0..12).map(|i| i < 4).collect();
        let t = RandomizationTest::new(&r, &treated, 1);
        assert!(t.exact);
        assert_eq!(t.pairs.len(), 495);
        close(t.theta, 0.195 - 0.00375, 1e-12);
        close(t.p_value(0.0), 1.0 / 495.0, 1e-12);
        let (lo, hi) = t.inverted(0.05).expect("an interval");
        close(lo, 0.10000, 2e-5);
        close(hi, 0.28500, 2e-5);
    }

    /// Sampled when the assignments are too many; a store set with no effect is not rejected,
    /// a clear one is, and the interval covers the θ it was shifted by.
    #[test]
    fn many_stores_sample_assignments_and_the_interval_covers_the_shift() {
        let n = 40;
        let mut rng = Rng::new(7);
        let noise: Vec<f64> = (0..n)
            .map(|_| (rng.below(1000) as f64 / 1000.0 - 0.5) * 0.2)
            .collect();
        let treated: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let shifted: Vec<f64> = noise
            .iter()
            .zip(&treated)
            .map(|(x, t)| x + if *t { 0.15 } else { 0.0 })
            .collect();
        let t = RandomizationTest::new(&shifted, &treated, 3);
        assert!(!t.exact);
        assert_eq!(t.pairs.len(), DRAWS + 1);
        assert!(t.p_value(0.0) < 0.01, "{}", t.p_value(0.0));
        let (lo, hi) = t.inverted(0.05).expect("an interval");
        assert!(lo < 0.15 && 0.15 < hi && lo > 0.0, "[{lo}, {hi}]");
        let null = RandomizationTest::new(&noise, &treated, 3);
        assert!(null.p_value(0.0) > 0.05, "{}", null.p_value(0.0));
    }

    fn place(id: &str, lat: f64, lon: f64) -> Place {
        Place {
            id: id.into(),
            lat,
            lon,
        }
    }

    /// Stores by distance: 0.009° of latitude is about 1 km. The treated store's visitors
    /// double, the others stay: θ = ln 2, and the incremental visitors are half the treated
    /// store's test-period visitors. Stores without data are left out with the reason.
    #[test]
    fn the_estimate_reads_groups_periods_and_exclusions() {
        let board = place("board-1", 52.0, 13.0);
        let stores = vec![
            place("near", 52.004, 13.0),
            place("far-1", 52.05, 13.0),
            place("far-2", 52.06, 13.0),
            place("silent", 52.07, 13.0),
        ];
        let mut daily = Vec::new();
        for d in 100u16..110 {
            let test = d >= 105;
            daily.push(("near".to_owned(), d, if test { 20.0 } else { 10.0 }));
            daily.push(("far-1".to_owned(), d, 30.0));
            daily.push(("far-2".to_owned(), d, 5.0));
        }
        let inp = GeoInputs {
            stores,
            boards: vec![board],
            daily,
        };
        let p = GeoParams {
            radius_m: 1000.0,
            pre_first: 95,
            test_first: 105,
            test_last: 109,
            confidence: 0.95,
            seed: 1,
        };
        let g = estimate(&inp, &p);
        assert_eq!(g.treated, ["near"]);
        assert_eq!(g.control, ["far-1", "far-2"]);
        assert_eq!(
            g.excluded,
            [GeoExcluded {
                store: "silent".into(),
                reason: "no traffic"
            }]
        );
        close(g.log_effect.expect("θ"), 2f64.ln(), 1e-12);
        close(g.lift.expect("a lift"), 1.0, 1e-12);
        close(g.incremental_visitors.expect("visitors"), 50.0, 1e-9);
        assert_eq!(g.treated_daily, [10.0, 20.0]);
        // Flat before the flight: the placebo between the pre-period's halves finds nothing.
        let trend = g.pre_trend.expect("a pre-trend placebo");
        close(trend.lift, 0.0, 1e-12);
        // The near store already doubling in the pre-period's second half (days 102-104 of
        // 100-104): the placebo finds +100 %.
        let mut trending = inp.clone();
        for (id, d, v) in &mut trending.daily {
            if id == "near" && (102..105).contains(d) {
                *v = 20.0;
            }
        }
        let t = estimate(&trending, &p)
            .pre_trend
            .expect("a pre-trend placebo");
        close(t.lift, 1.0, 1e-12);
        assert_eq!(g.control_daily, [35.0, 35.0]);
        // Three stores: 3 assignments, the observed alone can be extreme: p >= 1/3.
        assert_eq!(g.status, GeoStatus::TooFewStores);
        close(g.min_p, 1.0 / 3.0, 1e-12);
        assert_eq!(
            g.pre_period[0],
            crate::data::iso_day(95 * crate::data::DAY_MS)
        );
        let far = GeoParams {
            radius_m: 100.0,
            ..p
        };
        assert_eq!(estimate(&inp, &far).status, GeoStatus::NoComparison);
    }
}
