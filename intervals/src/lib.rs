//! Confidence intervals of Footfall's people estimates.
//!
//! People are estimated as a count of devices (or of stays) times a scale (people per device,
//! divided by the capture rate where one was measured). Arrivals are a Poisson process, and
//! the devices a sensor hears a thinning of it, so the count is Poisson and its interval,
//! scaled the same way, is the estimate's: it covers the count's sampling noise, not the
//! estimator's bias (the counting bench measures how often it covers the truth). The
//! collector uses it per window, the dashboard on sums over days: both must give the same
//! interval for the same count, hence one function.

use std::sync::OnceLock;

/// The 95 % interval's tails.
const TAIL: f64 = 0.025;
/// The standard normal quantile of 1 - [`TAIL`].
const Z: f64 = 1.959_963_984_540_054;
/// Counts from this on use the Wilson-Hilferty approximation (within 0.05 % of the exact
/// interval there, and constant time: a month of a busy store is tens of thousands).
const APPROXIMATE_FROM: u64 = 100;

/// The exact (Garwood) 95 % interval of a Poisson mean from one count `n` (rounded: a
/// window's devices are a time-weighted mean): the means under which a count of `n` or more
/// (lower end), or of `n` or fewer (upper end), has probability 2.5 %.
///
/// Under [`APPROXIMATE_FROM`] found by bisection on the Poisson distribution function; from
/// there on by the Wilson-Hilferty approximation of the chi-square quantiles the exact
/// interval is made of (lower = chi2(2.5 %, 2n) / 2, upper = chi2(97.5 %, 2n + 2) / 2).
pub fn poisson(n: f64) -> (f64, f64) {
    let k = n.max(0.0).round() as u64;
    if k >= APPROXIMATE_FROM {
        // chi2(p, 2m) / 2 ~= m (1 - 1 / (9m) + z_p / (3 sqrt m))^3.
        let wh = |m: f64, z: f64| m * (1.0 - 1.0 / (9.0 * m) + z / (3.0 * m.sqrt())).powi(3);
        let m = k as f64;
        return (wh(m, -Z), wh(m + 1.0, Z));
    }
    // The exact intervals are a function of k alone: computed once (a few milliseconds),
    // not per window (they were a tenth of the collector's stream stage).
    static EXACT: OnceLock<Vec<(f64, f64)>> = OnceLock::new();
    EXACT.get_or_init(|| (0..APPROXIMATE_FROM).map(exact).collect())[k as usize]
}

/// The exact interval of a count `k`, by bisection (see [`poisson`]).
fn exact(k: u64) -> (f64, f64) {
    // P(X <= k) for a Poisson mean mu, summed in log space.
    let cdf = |k: u64, mu: f64| -> f64 {
        if mu <= 0.0 {
            return 1.0;
        }
        let (mut ln_term, mut sum) = (-mu, (-mu).exp());
        for i in 1..=k {
            ln_term += mu.ln() - (i as f64).ln();
            sum += ln_term.exp();
        }
        sum.min(1.0)
    };
    // The mu in [lo, hi] where f (decreasing in mu) crosses target.
    let solve = |f: &dyn Fn(f64) -> f64, target: f64, mut lo: f64, mut hi: f64| {
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if f(mid) > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    };
    let top = k as f64 + 10.0 * (k as f64 + 1.0).sqrt() + 10.0;
    let upper = solve(&|mu| cdf(k, mu), TAIL, 0.0, top);
    let lower = if k == 0 {
        0.0
    } else {
        solve(&|mu| cdf(k - 1, mu), 1.0 - TAIL, 0.0, k as f64)
    };
    (lower, upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_matches_the_exact_interval_on_both_sides_of_the_approximation() {
        // Garwood 95 % intervals, from chi2.ppf (scipy 1.16):
        // lo = chi2.ppf(0.025, 2n) / 2, hi = chi2.ppf(0.975, 2n + 2) / 2.
        for (n, lo, hi) in [
            (0.0, 0.0, 3.6889),
            (1.0, 0.0253, 5.5716),
            (10.0, 4.7954, 18.3904),
            (99.0, 80.4623, 120.5289),
            (100.0, 81.364, 121.6268),
            (1000.0, 938.973, 1063.9521),
            (50000.0, 49562.6867, 50440.212),
        ] {
            let (l, h) = poisson(n);
            assert!((l - lo).abs() <= 5e-4 * lo.max(0.1), "{n}: {l} vs {lo}");
            assert!((h - hi).abs() <= 5e-4 * hi, "{n}: {h} vs {hi}");
        }
    }

    #[test]
    fn the_interval_widens_with_the_count_and_never_jumps_at_the_switch() {
        // Each end moves by about one per count (the upper by more at small counts: 1.9
        // from 0 to 1), and the step changes smoothly, also where the approximation starts.
        let step = |n: u32| {
            let ((l0, h0), (l1, h1)) = (poisson(f64::from(n - 1)), poisson(f64::from(n)));
            (l1 - l0, h1 - h0)
        };
        for n in 1..300 {
            let (dl, dh) = step(n);
            assert!(dl > 0.0 && dh > 0.0, "{n}: the interval does not widen");
            assert!(dl < 1.0 && dh < 2.0, "{n}: a step of {dl}, {dh}");
        }
        for n in 2..300 {
            let ((dl0, dh0), (dl1, dh1)) = (step(n - 1), step(n));
            assert!(
                (dl1 - dl0).abs() < 0.3 && (dh1 - dh0).abs() < 0.3,
                "{n}: a jump"
            );
        }
        let ((dl0, dh0), (dl1, dh1)) = (step(99), step(100));
        assert!(
            (dl1 - dl0).abs() < 5e-3 && (dh1 - dh0).abs() < 5e-3,
            "a jump at the switch: {dl0} {dh0} then {dl1} {dh1}"
        );
    }
}
