//! k-anonymity on the pages (ATTRIBUTION.md): no figure built on fewer than k devices, and
//! no figure that the published ones reveal by subtraction.

use serde::Serialize;

/// The fewest devices a shown figure is built on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Figures that follow devices from visit to visit (new and returning, frequency): the
    /// campaign reports' k.
    pub followed: u32,
    /// Counts of stays (visitors, passers-by, dwell buckets): the small-cell rule. (Occupancy,
    /// a modelled count of people present, is not suppressed.)
    pub counts: u32,
}

/// The cells of one group (the hours of a day, the dwell buckets, a weekday's hours) whose
/// total is published elsewhere: `(value, devices)` each. A cell is shown when its devices
/// reach `k`, or when it has none (an empty hour reveals no one); the small ones are hidden
/// with complements, so that the total minus the shown cells gives no small figure away
/// ([`disclosure::hide`], the attribution report's rule too).
pub fn suppress(cells: &[(f64, u64)], k: u64) -> Vec<Option<f64>> {
    let devices: Vec<u64> = cells.iter().map(|&(_, n)| n).collect();
    disclosure::hide_counts(&devices, k)
        .into_iter()
        .zip(cells)
        .map(|(hidden, &(v, _))| (!hidden).then_some(v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_small_cell_takes_the_next_smallest_with_it() {
        let k = 50;
        // Every cell large: all shown.
        assert_eq!(
            suppress(&[(60.0, 60), (90.0, 90)], k),
            vec![Some(60.0), Some(90.0)]
        );
        // One small cell: it and the smallest other (not the empty one) are hidden.
        assert_eq!(
            suppress(&[(3.0, 3), (0.0, 0), (70.0, 70), (60.0, 60)], k),
            vec![None, Some(0.0), Some(70.0), None]
        );
        // Two small cells hide each other when their sum is not small, and take the
        // smallest other with them when it is.
        assert_eq!(
            suppress(&[(30.0, 30), (40.0, 40), (70.0, 70)], k),
            vec![None, None, Some(70.0)]
        );
        assert_eq!(
            suppress(&[(3.0, 3), (4.0, 4), (70.0, 70), (90.0, 90)], k),
            vec![None, None, None, Some(90.0)]
        );
        // Nothing else to hide: the lone cell alone (its group's total is then its own,
        // and hidden where it is published).
        assert_eq!(suppress(&[(3.0, 3), (0.0, 0)], k), vec![None, Some(0.0)]);
    }
}
