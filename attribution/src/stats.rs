//! Interval statistics for two proportions (ATTRIBUTION.md, "Inference"): Wilson for one
//! proportion, Newcombe's hybrid score interval (method 10) for the difference, Katz's log
//! interval for the risk ratio, Wald for comparison only, the pooled two-proportion z test,
//! and the sample size and minimum detectable effect of a planned campaign.

use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use strength_reduce::StrengthReducedU64;

/// The standard normal CDF.
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function, to about 1e-15: a series for |x| < 2, a continued
/// fraction beyond (where the series would lose digits to cancellation).
pub fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.0 {
        // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
        let mut term = x;
        let mut sum = x;
        let x2 = x * x;
        for n in 1..200 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        1.0 - sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        // Lentz's algorithm for erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...
        let tiny = 1e-300;
        let mut f = x;
        let mut c = x;
        let mut d = 0.0;
        for n in 1..5000 {
            let a = n as f64 / 2.0;
            d = x + a * d;
            d = if d.abs() < tiny { tiny } else { d };
            c = x + a / c;
            c = if c.abs() < tiny { tiny } else { c };
            d = 1.0 / d;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (-x * x).exp() / std::f64::consts::PI.sqrt() / f
    }
}

/// The standard normal quantile: Acklam's approximation refined by Halley steps.
pub fn norm_ppf(p: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0, "a probability in (0, 1), not {p}");
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        let r = (-2.0 * q.ln()).sqrt();
        (((((C[0] * r + C[1]) * r + C[2]) * r + C[3]) * r + C[4]) * r + C[5])
            / ((((D[0] * r + D[1]) * r + D[2]) * r + D[3]) * r + 1.0)
    };
    let mut x = if p < 0.02425 {
        tail(p)
    } else if p > 1.0 - 0.02425 {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    for _ in 0..3 {
        let e = norm_cdf(x) - p;
        let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
        x -= u / (1.0 + x * u / 2.0);
    }
    x
}

/// A two-sided interval at a confidence level.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// No interval (too few data for one).
    pub const NAN: Interval = Interval {
        lo: f64::NAN,
        hi: f64::NAN,
    };
}

impl Interval {
    /// The normal interval `estimate` ± `z` x `se`.
    pub fn normal(estimate: f64, se: f64, z: f64) -> Interval {
        Interval {
            lo: estimate - z * se,
            hi: estimate + z * se,
        }
    }

    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    pub fn width(&self) -> f64 {
        self.hi - self.lo
    }
}

/// z for a two-sided interval at `confidence` (0.95 -> 1.959964...).
pub fn z_of(confidence: f64) -> f64 {
    norm_ppf(1.0 - (1.0 - confidence) / 2.0)
}

/// The quantile of Student's t with `df` degrees of freedom at probability `p`: the normal
/// quantile corrected by the Cornish-Fisher expansion (Abramowitz and Stegun 26.7.5),
/// within 1e-4 of the exact value from 10 degrees of freedom up (the bootstrap's gate is 20
/// clusters).
pub fn t_ppf(p: f64, df: f64) -> f64 {
    let z = norm_ppf(p);
    let (z2, v) = (z * z, df);
    let g1 = (z2 + 1.0) * z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0;
    z + g1 / v + g2 / v.powi(2) + g3 / v.powi(3) + g4 / v.powi(4)
}

/// Wilson score interval for x successes in n.
pub fn wilson(x: u64, n: u64, z: f64) -> Interval {
    if n == 0 {
        return Interval { lo: 0.0, hi: 1.0 };
    }
    let (x, n) = (x as f64, n as f64);
    let z2 = z * z;
    let centre = (x + z2 / 2.0) / (n + z2);
    let half = z / (n + z2) * (x * (n - x) / n + z2 / 4.0).sqrt();
    Interval {
        lo: (centre - half).max(0.0),
        hi: (centre + half).min(1.0),
    }
}

/// Newcombe's hybrid score interval (method 10) for p_e - p_c.
pub fn newcombe(xe: u64, ne: u64, xc: u64, nc: u64, z: f64) -> Interval {
    let (pe, pc) = (ratio(xe, ne), ratio(xc, nc));
    let (we, wc) = (wilson(xe, ne, z), wilson(xc, nc, z));
    let d = pe - pc;
    Interval {
        lo: d - ((pe - we.lo).powi(2) + (wc.hi - pc).powi(2)).sqrt(),
        hi: d + ((we.hi - pe).powi(2) + (pc - wc.lo).powi(2)).sqrt(),
    }
}

/// Wald interval for p_e - p_c (shown for comparison only: poor for small cells).
pub fn wald(xe: u64, ne: u64, xc: u64, nc: u64, z: f64) -> Interval {
    let (pe, pc) = (ratio(xe, ne), ratio(xc, nc));
    let se = (pe * (1.0 - pe) / ne as f64 + pc * (1.0 - pc) / nc as f64).sqrt();
    Interval::normal(pe - pc, se, z)
}

/// Katz's log interval for the risk ratio p_e / p_c; None when a cell is empty.
pub fn katz(xe: u64, ne: u64, xc: u64, nc: u64, z: f64) -> Option<Interval> {
    if xe == 0 || xc == 0 || ne == 0 || nc == 0 {
        return None;
    }
    let rr = ratio(xe, ne) / ratio(xc, nc);
    let se = (1.0 / xe as f64 - 1.0 / ne as f64 + 1.0 / xc as f64 - 1.0 / nc as f64).sqrt();
    Some(Interval {
        lo: (rr.ln() - z * se).exp(),
        hi: (rr.ln() + z * se).exp(),
    })
}

/// Two-sided p-value of the pooled two-proportion z test.
pub fn p_value(xe: u64, ne: u64, xc: u64, nc: u64) -> f64 {
    if ne == 0 || nc == 0 {
        return 1.0;
    }
    let p = (xe + xc) as f64 / (ne + nc) as f64;
    let se = (p * (1.0 - p) * (1.0 / ne as f64 + 1.0 / nc as f64)).sqrt();
    if se == 0.0 {
        return 1.0;
    }
    let z = (ratio(xe, ne) - ratio(xc, nc)) / se;
    2.0 * (1.0 - norm_cdf(z.abs()))
}

pub fn ratio(x: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        x as f64 / n as f64
    }
}

/// Everything `compare` prints for two arms' counts.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub confidence: f64,
    pub exposed: Arm,
    pub control: Arm,
    /// p_e - p_c.
    pub difference: f64,
    pub newcombe: Interval,
    pub wald: Interval,
    pub risk_ratio: Option<f64>,
    pub katz: Option<Interval>,
    /// RR - 1, with Katz's interval shifted.
    pub relative_lift: Option<f64>,
    pub relative_lift_interval: Option<Interval>,
    pub p_value: f64,
}

#[derive(Debug, Serialize)]
pub struct Arm {
    pub converters: u64,
    pub devices: u64,
    pub rate: f64,
    pub wilson: Interval,
}

pub fn compare(xe: u64, ne: u64, xc: u64, nc: u64, confidence: f64) -> Comparison {
    let z = z_of(confidence);
    let arm = |x, n| Arm {
        converters: x,
        devices: n,
        rate: ratio(x, n),
        wilson: wilson(x, n, z),
    };
    let rr = (xe > 0 && xc > 0).then(|| ratio(xe, ne) / ratio(xc, nc));
    let katz = katz(xe, ne, xc, nc, z);
    Comparison {
        confidence,
        exposed: arm(xe, ne),
        control: arm(xc, nc),
        difference: ratio(xe, ne) - ratio(xc, nc),
        newcombe: newcombe(xe, ne, xc, nc, z),
        wald: wald(xe, ne, xc, nc, z),
        risk_ratio: rr,
        katz,
        relative_lift: rr.map(|r| r - 1.0),
        relative_lift_interval: katz.map(|k| Interval {
            lo: k.lo - 1.0,
            hi: k.hi - 1.0,
        }),
        p_value: p_value(xe, ne, xc, nc),
    }
}

/// Exposed devices needed to detect `lift` (absolute) over baseline `p0` with `ratio`
/// control devices per exposed one, two-sided test at `alpha`, at `power`.
pub fn exposed_needed(p0: f64, lift: f64, ratio: f64, alpha: f64, power: f64) -> u64 {
    let p1 = p0 + lift;
    let (za, zb) = (norm_ppf(1.0 - alpha / 2.0), norm_ppf(power));
    let pbar = (p1 + ratio * p0) / (1.0 + ratio);
    let a = za * (pbar * (1.0 - pbar) * (1.0 + 1.0 / ratio)).sqrt();
    let b = zb * (p1 * (1.0 - p1) + p0 * (1.0 - p0) / ratio).sqrt();
    ((a + b).powi(2) / (lift * lift)).ceil() as u64
}

/// The smallest absolute lift detectable with `n_exposed` devices (and `ratio` control
/// devices per exposed one) at `power`: the inverse of [`exposed_needed`], by bisection.
pub fn minimum_detectable(p0: f64, n_exposed: u64, ratio: f64, alpha: f64, power: f64) -> f64 {
    let (mut lo, mut hi) = (1e-9, 1.0 - p0 - 1e-9);
    if exposed_needed(p0, hi, ratio, alpha, power) > n_exposed {
        return f64::NAN;
    }
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if exposed_needed(p0, mid, ratio, alpha, power) <= n_exposed {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The `q` quantile of `sorted` (ascending), interpolating linearly between order
/// statistics (R's type 7); NaN when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The central `confidence` percentile interval of `v` (non-finite values dropped).
pub fn percentile_interval(mut v: Vec<f64>, confidence: f64) -> Interval {
    v.retain(|x| x.is_finite());
    v.sort_by(|a, b| a.total_cmp(b));
    let tail = (1.0 - confidence) / 2.0;
    Interval {
        lo: percentile(&v, tail),
        hi: percentile(&v, 1.0 - tail),
    }
}

/// The sample standard deviation (n - 1); NaN under two values.
pub fn sd(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let m = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// The seeded generator of the bootstrap and the permutations: SplitMix64 (rand_xoshiro),
/// so a report is reproducible from its seed.
pub struct Rng(rand_xoshiro::SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(rand_xoshiro::SplitMix64::from_seed(seed.to_le_bytes()))
    }

    /// Uniform in `0..n` (by remainder: the bias is below 2^-40 for the n used here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }

    /// [`Rng::below`] for an `n` that repeats, by multiplication, not division: the same
    /// draw.
    pub fn below_reduced(&mut self, n: StrengthReducedU64) -> usize {
        (self.0.next_u64() % n) as usize
    }
}

/// Asserts `a` is within `tol` of `b` (the unit tests' one comparison of figures).
#[cfg(test)]
pub(crate) fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} vs {b}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reduced_bound_draws_what_the_plain_one_draws() {
        for n in [1u64, 2, 3, 7, 1000, 65_537, 1 << 40, u64::MAX] {
            let (mut a, mut b) = (Rng::new(n), Rng::new(n));
            let reduced = StrengthReducedU64::new(n);
            for _ in 0..1000 {
                assert_eq!(a.below(n as usize), b.below_reduced(reduced), "n = {n}");
            }
        }
    }

    #[test]
    fn students_t_matches_tabulated_quantiles() {
        // R: qt(0.975, c(10, 19, 39, 99)), qt(0.95, 29).
        close(t_ppf(0.975, 10.0), 2.228_138_85, 1e-4);
        close(t_ppf(0.975, 19.0), 2.093_024_05, 1e-5);
        close(t_ppf(0.975, 39.0), 2.022_690_89, 1e-6);
        close(t_ppf(0.975, 99.0), 1.984_216_95, 1e-7);
        close(t_ppf(0.95, 29.0), 1.699_127_03, 1e-6);
        close(t_ppf(0.025, 19.0), -2.093_024_05, 1e-5);
    }

    #[test]
    fn the_normal_distribution_matches_known_values() {
        close(norm_ppf(0.975), 1.959_963_984_540_054, 1e-12);
        close(norm_ppf(0.8), 0.841_621_233_572_914_3, 1e-12);
        close(norm_ppf(0.001), -3.090_232_306_167_813_5, 1e-10);
        close(norm_cdf(1.959_963_984_540_054), 0.975, 1e-14);
        close(norm_cdf(-4.0), 3.167_124_183_311_998e-5, 1e-16);
        close(erfc(5.0), 1.537_459_794_428_035e-12, 1e-24);
    }

    /// The test vectors of ATTRIBUTION.md, to 1e-6.
    #[test]
    fn attribution_md_test_vectors() {
        let z = z_of(0.95);
        let w = wilson(288, 12000, z);
        close(w.lo, 0.021410, 1e-6);
        close(w.hi, 0.026894, 1e-6);

        let n = newcombe(288, 12000, 960, 48000, z);
        close(n.lo, 0.001106, 1e-6);
        close(n.hi, 0.007139, 1e-6);
        let k = katz(288, 12000, 960, 48000, z).expect("cells");
        close(k.lo, 1.053553, 1e-6);
        close(k.hi, 1.366803, 1e-6);
        let d = wald(288, 12000, 960, 48000, z);
        close(d.lo, 0.000989, 1e-6);
        close(d.hi, 0.007011, 1e-6);

        let n = newcombe(5, 400, 2, 400, z);
        close(n.lo, -0.007376, 1e-6);
        close(n.hi, 0.024320, 1e-6);
        let k = katz(5, 400, 2, 400, z).expect("cells");
        close(k.lo, 0.48789, 1e-5);
        close(k.hi, 12.81027, 1e-5);
        let d = wald(5, 400, 2, 400, z);
        close(d.lo, -0.005397, 1e-6);
        close(d.hi, 0.020397, 1e-6);
    }

    /// The power table of ATTRIBUTION.md (D = 0.4 pp, 80 %, alpha 0.05).
    #[test]
    fn attribution_md_power_table() {
        for (p0, one_to_one, one_to_five) in [
            (0.01, 11_631, 6_655),
            (0.02, 21_109, 12_356),
            (0.05, 48_364, 28_734),
        ] {
            let a = exposed_needed(p0, 0.004, 1.0, 0.05, 0.8);
            let b = exposed_needed(p0, 0.004, 5.0, 0.05, 0.8);
            assert!(a.abs_diff(one_to_one) <= 1, "p0 {p0} 1:1: {a}");
            assert!(b.abs_diff(one_to_five) <= 1, "p0 {p0} 1:5: {b}");
        }
        let mde = minimum_detectable(0.01, 11_631, 1.0, 0.05, 0.8);
        close(mde, 0.004, 1e-5);
    }

    #[test]
    fn p_values_follow_the_z_statistic() {
        // Equal rates: no evidence.
        close(p_value(50, 1000, 50, 1000), 1.0, 1e-12);
        let p = p_value(288, 12000, 960, 48000);
        assert!(p > 0.005 && p < 0.01, "{p}");
    }

    #[test]
    fn percentiles_interpolate_between_order_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0, 10.0];
        close(percentile(&v, 0.0), 1.0, 0.0);
        close(percentile(&v, 0.5), 3.0, 0.0);
        // R: quantile(c(1,2,3,4,10), 0.9) = 7.6
        close(percentile(&v, 0.9), 7.6, 1e-12);
        assert!(percentile(&[], 0.5).is_nan());
        let i = percentile_interval(vec![f64::NAN, 10.0, 1.0, 4.0, 3.0, 2.0], 0.8);
        // R: quantile(c(1,2,3,4,10), c(0.1, 0.9)) = 1.4, 7.6
        close(i.lo, 1.4, 1e-12);
        close(i.hi, 7.6, 1e-12);
    }

    #[test]
    fn sd_is_the_sample_standard_deviation() {
        // R: sd(c(2,4,4,4,5,5,7,9)) = 2.13809
        close(
            sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]),
            2.138_089_935_299_395,
            1e-12,
        );
        assert!(sd(&[1.0]).is_nan());
    }

    /// SplitMix64's reference outputs (Vigna's splitmix64.c from state 0), so a seed gives
    /// the same bootstrap in every release.
    #[test]
    fn the_generator_is_splitmix64() {
        let mut r = Rng::new(0);
        assert_eq!(r.0.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.0.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert!((0..100).all(|_| a.below(13) == b.below(13)));
    }
}
