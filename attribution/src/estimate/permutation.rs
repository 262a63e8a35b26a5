//! Randomization inference (ATTRIBUTION.md, a check): the arm labels permuted within strata,
//! and the share of permutations whose |D| is at least the observed one.

use std::collections::HashMap;

use strength_reduce::StrengthReducedU64;

use crate::design::Unit;
use crate::stats::Rng;

/// The permutation p-value of `observed` in window `wi`, from `permutations` draws seeded
/// by `seed` (with the +1 correction, so never 0).
///
/// A permutation of a stratum's labels matters only through how many of its converters it
/// labels exposed, and that count is hypergeometric: of the stratum's `n` devices, `k`
/// exposed and `m` converted, the converters drawn as exposed when `k` labels are dealt at
/// random. So each draw deals the smaller of `k` and `m` one at a time, `O(min(k, m))`
/// instead of a shuffle of all `n` labels (the shuffle was most of a month's report after
/// its queries), with the same distribution of the difference.
pub fn permutation_p(
    units: &[&Unit],
    wi: usize,
    permutations: usize,
    seed: u64,
    observed: f64,
) -> f64 {
    // Per stratum: devices, exposed, converters.
    let mut by_stratum: HashMap<usize, (u64, u64, u64)> = HashMap::new();
    for u in units {
        let s = by_stratum.entry(u.stratum).or_default();
        s.0 += 1;
        s.1 += u64::from(u.exposed);
        s.2 += u64::from(u.converted[wi]);
    }
    let mut strata: Vec<Stratum> = by_stratum
        .into_values()
        .map(|(n, k, m)| Stratum {
            n,
            dealt: k.min(m),
            marked: k.max(m),
        })
        .collect();
    // In a fixed order, so the same seed gives the same draws.
    strata.sort_unstable_by_key(|s| (s.n, s.dealt, s.marked));
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
    let converters = units.iter().filter(|u| u.converted[wi]).count() as f64;
    let mut rng = Rng::new(seed.wrapping_add(0x5eed));
    // A deal from a stratum of n draws below n, n - 1, ...: each bound made a
    // multiplication once, not a division per draw.
    let largest = strata.iter().map(|s| s.n).max().unwrap_or(0);
    let bounds: Vec<StrengthReducedU64> =
        (1..=largest.max(1)).map(StrengthReducedU64::new).collect();
    let mut extreme = 0usize;
    for _ in 0..permutations {
        let xe = strata
            .iter()
            .map(|s| s.draw(&mut rng, &bounds))
            .sum::<u64>() as f64;
        let xc = converters - xe;
        if (xe / ne - xc / nc).abs() >= observed.abs() - 1e-12 {
            extreme += 1;
        }
    }
    (extreme + 1) as f64 / (permutations + 1) as f64
}

/// A stratum as a permutation sees it: of its `n` devices, `dealt` (the fewer of the exposed
/// and the converters) are dealt at random, and each that falls on one of the `marked` (the
/// others) is an exposed converter.
struct Stratum {
    n: u64,
    dealt: u64,
    marked: u64,
}

impl Stratum {
    /// One hypergeometric draw: how many of the dealt fall on the marked. `bounds[i]` is
    /// `i + 1`, strength-reduced.
    fn draw(&self, rng: &mut Rng, bounds: &[StrengthReducedU64]) -> u64 {
        let (mut left, mut marked, mut hits) = (self.n, self.marked, 0);
        for _ in 0..self.dealt {
            if marked == 0 {
                break;
            }
            // `left` is at least 1 here: `dealt` is at most `n`.
            if (rng.below_reduced(bounds[(left - 1) as usize]) as u64) < marked {
                hits += 1;
                marked -= 1;
            }
            left -= 1;
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(exposed: bool, converted: bool, stratum: usize) -> Unit {
        Unit {
            exposed,
            t0: 0,
            board: 0,
            stratum,
            cluster: 0,
            pre: 0.0,
            first_after: None,
            converted: vec![converted],
            placebo: vec![false],
            revenue: vec![0.0],
            receipts: vec![0.0],
            linked: false,
        }
    }

    #[test]
    fn a_clear_difference_is_rare_under_permutation_and_no_difference_is_not() {
        // 40 of 50 exposed converted, 5 of 50 control: D = 0.7.
        let mut units: Vec<Unit> = (0..50).map(|i| unit(true, i < 40, 0)).collect();
        units.extend((0..50).map(|i| unit(false, i < 5, 0)));
        let refs: Vec<&Unit> = units.iter().collect();
        let p = permutation_p(&refs, 0, 999, 1, 0.7);
        assert!((p - 1.0 / 1000.0).abs() < 1e-12, "{p}");
        // Nothing observed: every permutation is at least as extreme.
        assert_eq!(permutation_p(&refs, 0, 999, 1, 0.0), 1.0);
        assert_eq!(
            permutation_p(&refs, 0, 999, 1, 0.7),
            p,
            "seeded: reproducible"
        );
    }

    #[test]
    fn labels_move_only_within_strata() {
        // Stratum 0: all exposed converted; stratum 1: nobody converted. Within strata the
        // labels are all alike, so every permutation gives the observed D.
        let mut units: Vec<Unit> = (0..10).map(|_| unit(true, true, 0)).collect();
        units.extend((0..10).map(|_| unit(false, false, 1)));
        let refs: Vec<&Unit> = units.iter().collect();
        assert_eq!(permutation_p(&refs, 0, 99, 3, 1.0), 1.0);
    }

    #[test]
    fn the_p_value_is_the_exact_hypergeometric_one() {
        // One stratum of 20: 10 exposed, 10 control; 7 and 3 converted, D = 0.4. Under the
        // labels dealt at random the exposed converters X are hypergeometric, and the exact
        // p-value is P(|X / 10 - (10 - X) / 10| >= 0.4) = P(X >= 7) + P(X <= 3) = 0.179.
        // (Labels drawn with replacement, a binomial X, would give 0.344.)
        let mut units: Vec<Unit> = (0..10).map(|i| unit(true, i < 7, 0)).collect();
        units.extend((0..10).map(|i| unit(false, i < 3, 0)));
        let refs: Vec<&Unit> = units.iter().collect();
        let choose = |n: u64, k: u64| (0..k).fold(1u64, |c, i| c * (n - i) / (i + 1));
        let pmf = |x: u64| (choose(10, x) * choose(10, 10 - x)) as f64 / choose(20, 10) as f64;
        let exact: f64 = (0..=3).chain(7..=10).map(pmf).sum();
        assert!((exact - 0.1789).abs() < 1e-4, "{exact}");
        let p = permutation_p(&refs, 0, 20_000, 7, 0.4);
        // 20 000 draws: a standard error of 0.0027.
        assert!((p - exact).abs() < 0.01, "{p} against {exact}");
    }
}
