//! The stratified difference (ATTRIBUTION.md, "Inference"): strata of board x weekday x hour
//! block of t0, weighted by their share of the exposed (w_s = n_es / n_e).
//!
//! - A **dense** stratum (at least `min` devices in each arm) contributes its own difference.
//! - The **sparse** strata (an arm under `min`, both arms present) are combined by the
//!   Mantel-Haenszel risk difference ([`mantel_haenszel`]), which stays unbiased, with a
//!   consistent variance, when the strata are many and small. Together they weigh as much as
//!   their exposed devices.
//! - A stratum with **one arm only** compares nothing: its devices are counted as excluded
//!   ([`Stratified::excluded_devices`]), never mixed into another stratum's comparison.

/// One stratum's `[n_e, x_e, n_c, x_c]`.
pub type Cell = [f64; 4];

/// The stratified estimate of one sample (or bootstrap draw).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stratified {
    pub estimate: f64,
    /// The analytic variance: each dense stratum's binomial variance and the sparse part's
    /// Sato variance, with their weights squared (strata independent).
    pub variance: f64,
    pub dense_strata: usize,
    pub sparse_strata: usize,
    /// Devices in strata where the other arm has nobody.
    pub excluded_devices: f64,
}

/// The exposed-weighted difference over `cells` (indexed by stratum; an empty cell is no
/// stratum); None without a stratum holding both arms. The strata are summed in their order,
/// so the same devices give the same figure to the last digit in every run.
pub fn stratified(cells: &[Cell], min: f64) -> Option<Stratified> {
    let mut dense: Vec<Cell> = Vec::new();
    let mut sparse: Vec<Cell> = Vec::new();
    let mut excluded_devices = 0.0;
    for c in cells {
        if c[0] == 0.0 || c[2] == 0.0 {
            excluded_devices += c[0] + c[2];
        } else if c[0] >= min && c[2] >= min {
            dense.push(*c);
        } else {
            sparse.push(*c);
        }
    }
    let exposed = |cells: &[Cell]| cells.iter().map(|c| c[0]).sum::<f64>();
    let (ne_sparse, ne) = (exposed(&sparse), exposed(&dense) + exposed(&sparse));
    if ne == 0.0 {
        return None;
    }
    let (mut estimate, mut variance) = (0.0, 0.0);
    for &[n1, x1, n0, x0] in &dense {
        let (p1, p0, w) = (x1 / n1, x0 / n0, n1 / ne);
        estimate += w * (p1 - p0);
        variance += w * w * (p1 * (1.0 - p1) / n1 + p0 * (1.0 - p0) / n0);
    }
    if let Some(mh) = mantel_haenszel(&sparse) {
        let w = ne_sparse / ne;
        estimate += w * mh.estimate;
        variance += w * w * mh.variance;
    }
    Some(Stratified {
        estimate,
        variance,
        dense_strata: dense.len(),
        sparse_strata: sparse.len(),
        excluded_devices,
    })
}

/// A Mantel-Haenszel risk difference and its variance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MantelHaenszel {
    pub estimate: f64,
    pub variance: f64,
}

/// The Mantel-Haenszel risk difference over `cells`, RD = sum (x_e n_c - x_c n_e) / N over
/// sum n_e n_c / N, with Sato's (1989) variance, which is consistent both for a few large
/// strata and for many small ones (Greenland and Robins' 1985 variance is not in the
/// latter):
///
/// Var = (RD sum P + sum Q) / (sum n_e n_c / N)^2, with
/// P = (n_e^2 x_c - n_c^2 x_e + n_e n_c (n_c - n_e) / 2) / N^2 and
/// Q = (x_e (n_c - x_c) + x_c (n_e - x_e)) / (2 N).
///
/// A stratum with an empty arm has weight 0. None without a stratum holding both arms.
pub fn mantel_haenszel(cells: &[Cell]) -> Option<MantelHaenszel> {
    let (mut num, mut w, mut p, mut q) = (0.0, 0.0, 0.0, 0.0);
    for &[ne, xe, nc, xc] in cells {
        if ne == 0.0 || nc == 0.0 {
            continue;
        }
        let t = ne + nc;
        num += (xe * nc - xc * ne) / t;
        w += ne * nc / t;
        p += (ne * ne * xc - nc * nc * xe + ne * nc * (nc - ne) / 2.0) / (t * t);
        q += (xe * (nc - xc) + xc * (ne - xe)) / (2.0 * t);
    }
    (w > 0.0).then(|| {
        let estimate = num / w;
        MantelHaenszel {
            estimate,
            variance: (estimate * p + q) / (w * w),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::close;

    /// A hand-worked case: two strata of 100 exposed / 100 control at 10 % vs 5 %, and
    /// 300 / 100 at 20 % vs 20 %. Weights 1/4 and 3/4: D = 0.25 * 0.05 + 0.75 * 0 = 0.0125,
    /// where the crude difference, (10 + 60) / 400 - (5 + 20) / 200 = 0.05, is confounded by
    /// the strata's base rates. Variance: 1/16 (0.09/100 + 0.0475/100) + 9/16 (0.16/300 +
    /// 0.16/100) = 0.0000859375 + 0.0012 = 0.0012859375.
    #[test]
    fn weights_each_strata_difference_by_its_share_of_the_exposed() {
        let cells = [[100.0, 10.0, 100.0, 5.0], [300.0, 60.0, 100.0, 20.0]];
        let s = stratified(&cells, 20.0).expect("strata");
        close(s.estimate, 0.0125, 1e-15);
        close(s.variance, 0.001_285_937_5, 1e-15);
        assert_eq!((s.dense_strata, s.sparse_strata), (2, 0));
    }

    /// One large stratum: the MH difference is the plain difference and Sato's variance is
    /// the binomial one, p_e(1-p_e)/n_e + p_c(1-p_c)/n_c.
    #[test]
    fn one_stratum_gives_the_difference_and_the_binomial_variance() {
        let mh = mantel_haenszel(&[[400.0, 60.0, 1000.0, 100.0]]).expect("a stratum");
        close(mh.estimate, 0.15 - 0.1, 1e-15);
        close(mh.variance, 0.15 * 0.85 / 400.0 + 0.1 * 0.9 / 1000.0, 1e-15);
    }

    /// Matched pairs (one exposed and one control device per stratum), the sparsest design:
    /// RD = (b - c) / N over N pairs, b discordant with the exposed converting, c with the
    /// control converting, and the paired-proportions variance (Agresti, Categorical Data
    /// Analysis, 10.1): ((b + c) - (b - c)^2 / N) / N^2. Here N = 40, b = 9, c = 3 and 5
    /// pairs where both converted: RD = 0.15, Var = (12 - 0.9) / 1600.
    #[test]
    fn matched_pairs_give_the_paired_difference_and_its_variance() {
        let mut pairs = Vec::new();
        pairs.extend(std::iter::repeat_n([1.0, 1.0, 1.0, 0.0], 9));
        pairs.extend(std::iter::repeat_n([1.0, 0.0, 1.0, 1.0], 3));
        pairs.extend(std::iter::repeat_n([1.0, 1.0, 1.0, 1.0], 5));
        pairs.extend(std::iter::repeat_n([1.0, 0.0, 1.0, 0.0], 23));
        let mh = mantel_haenszel(&pairs).expect("pairs");
        close(mh.estimate, 0.15, 1e-15);
        close(mh.variance, (12.0 - 0.9) / 1600.0, 1e-15);
    }

    /// Sparse strata confounded by their base rates: pooled into one crude cell (the old
    /// estimator), 3 + 1 exposed converters of 3 + 17 against 9 + 0 of 17 + 3 give
    /// 0.20 - 0.45 = -0.25, while within each stratum the exposed convert more (1 vs 0.53,
    /// 0.06 vs 0). MH: sum (x_e n_c - x_c n_e)/N = (3*17 - 9*3)/20 + (1*3 - 0)/20 = 1.35,
    /// sum n_e n_c / N = 51/20 + 51/20 = 5.1, RD = 0.264705882...
    #[test]
    fn sparse_strata_are_combined_by_mantel_haenszel_not_pooled() {
        let cells = [[3.0, 3.0, 17.0, 9.0], [17.0, 1.0, 3.0, 0.0]];
        let s = stratified(&cells, 20.0).expect("sparse strata");
        close(s.estimate, 1.35 / 5.1, 1e-15);
        assert_eq!((s.dense_strata, s.sparse_strata), (0, 2));
        // metafor 3.8.1 (R 4.2.2, Debian's r-cran-metafor): rma.mh(ai = c(3, 1),
        // bi = c(0, 16), ci = c(9, 0), di = c(8, 3), measure = "RD") gives se^2 0.005724608.
        close(s.variance, 0.005_724_608, 1e-9);
    }

    /// Eight small strata checked against metafor 3.8.1 (R 4.2.2): rma.mh(ai, bi = n1 - ai,
    /// ci, di = n0 - ci, measure = "RD") with ai = 2,0,5,1,3,4,0,1, n1 = 5,3,12,4,9,10,2,6,
    /// ci = 1,1,2,0,3,1,1,0, n0 = 7,2,10,8,5,13,4,3 gives beta 0.121428464151 and se^2
    /// 7.888777049067e-03.
    #[test]
    fn matches_metafor_on_sparse_strata() {
        let (ai, n1) = (
            [2., 0., 5., 1., 3., 4., 0., 1.],
            [5., 3., 12., 4., 9., 10., 2., 6.],
        );
        let (ci, n0) = (
            [1., 1., 2., 0., 3., 1., 1., 0.],
            [7., 2., 10., 8., 5., 13., 4., 3.],
        );
        let cells: Vec<Cell> = (0..8).map(|i| [n1[i], ai[i], n0[i], ci[i]]).collect();
        let mh = mantel_haenszel(&cells).expect("strata");
        close(mh.estimate, 0.121_428_464_151, 1e-12);
        close(mh.variance, 7.888_777_049_067e-3, 1e-15);
    }

    /// Dense and sparse together: the dense stratum's difference and the sparse part's MH
    /// difference, weighted by their exposed devices; a one-arm stratum is counted, not used.
    #[test]
    fn dense_and_sparse_weigh_by_their_exposed_and_one_arm_strata_are_counted() {
        let cells = [
            [100.0, 10.0, 100.0, 5.0],
            [10.0, 2.0, 10.0, 1.0],
            [10.0, 2.0, 10.0, 1.0],
            [7.0, 2.0, 0.0, 0.0],
        ];
        let s = stratified(&cells, 20.0).expect("strata");
        // 100/120 * 0.05 + 20/120 * 0.1.
        close(s.estimate, 100.0 / 120.0 * 0.05 + 20.0 / 120.0 * 0.1, 1e-15);
        assert_eq!((s.dense_strata, s.sparse_strata), (1, 2));
        assert_eq!(s.excluded_devices, 7.0);
        // Exposed only: nothing to compare.
        let cells = [[10.0, 2.0, 0.0, 0.0]];
        assert_eq!(stratified(&cells, 20.0), None);
        assert_eq!(mantel_haenszel(&[[10.0, 2.0, 0.0, 0.0]]), None);
    }
}
