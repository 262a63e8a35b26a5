//! The stratified difference: strata of board x weekday x hour block of t0, each stratum's
//! difference weighted by its share of the exposed (w_s = n_es / n_e). Strata with fewer
//! than `min` devices in an arm are pooled into one crude cell (ATTRIBUTION.md asks for
//! Mantel-Haenszel there; issue 14).

use std::collections::BTreeMap;

/// One stratum's `[n_e, x_e, n_c, x_c]`.
pub type Cell = [f64; 4];

/// The exposed-weighted difference over `cells`; None without exposed devices in a used
/// stratum. The strata are summed in their order (a `BTreeMap`), so the same devices give
/// the same figure to the last digit in every run.
pub fn stratified(cells: &BTreeMap<usize, Cell>, min: f64) -> Option<f64> {
    let mut used: Vec<Cell> = Vec::new();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-worked case: two strata of 100 exposed / 100 control at 10 % vs 5 %, and
    /// 300 / 100 at 20 % vs 20 %. Weights 1/4 and 3/4: D = 0.25 * 0.05 + 0.75 * 0 = 0.0125,
    /// where the crude difference, (10 + 60) / 400 - (5 + 20) / 200 = 0.05, is confounded by
    /// the strata's base rates.
    #[test]
    fn weights_each_strata_difference_by_its_share_of_the_exposed() {
        let cells = BTreeMap::from([
            (0, [100.0, 10.0, 100.0, 5.0]),
            (1, [300.0, 60.0, 100.0, 20.0]),
        ]);
        let d = stratified(&cells, 20.0).expect("strata");
        assert!((d - 0.0125).abs() < 1e-12, "{d}");
    }

    #[test]
    fn sparse_strata_are_pooled_and_a_lone_arm_is_left_out() {
        // Two sparse strata pool into one cell [20, 4, 20, 2]: D = 0.2 - 0.1.
        let cells = BTreeMap::from([(0, [10.0, 2.0, 10.0, 1.0]), (1, [10.0, 2.0, 10.0, 1.0])]);
        let d = stratified(&cells, 20.0).expect("pooled");
        assert!((d - 0.1).abs() < 1e-12, "{d}");
        // Exposed only: nothing to compare.
        let cells = BTreeMap::from([(0, [10.0, 2.0, 0.0, 0.0])]);
        assert_eq!(stratified(&cells, 20.0), None);
    }
}
