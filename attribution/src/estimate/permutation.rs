//! Randomization inference (ATTRIBUTION.md, a check): the arm labels permuted within strata,
//! and the share of permutations whose |D| is at least the observed one.

use std::collections::HashMap;

use strength_reduce::StrengthReducedU64;

use crate::design::Unit;
use crate::stats::Rng;

/// The permutation p-value of `observed` in window `wi`, from `permutations` draws seeded
/// by `seed` (with the +1 correction, so never 0).
pub fn permutation_p(
    units: &[&Unit],
    wi: usize,
    permutations: usize,
    seed: u64,
    observed: f64,
) -> f64 {
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
    let mut rng = Rng::new(seed.wrapping_add(0x5eed));
    // A shuffle of a group of n draws below n, n - 1, ..., 2, in every permutation: each
    // bound made a multiplication once (a division per draw was most of a report's time
    // after its queries).
    let longest = groups.iter().map(Vec::len).max().unwrap_or(0) as u64;
    let bounds: Vec<StrengthReducedU64> =
        (1..=longest.max(1)).map(StrengthReducedU64::new).collect();
    let mut extreme = 0usize;
    for _ in 0..permutations {
        let (mut xe, mut xc) = (0.0f64, 0.0f64);
        for g in &mut groups {
            // Fisher-Yates on the labels.
            for i in (1..g.len()).rev() {
                let j = rng.below_reduced(bounds[i]);
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
    (extreme + 1) as f64 / (permutations + 1) as f64
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
}
