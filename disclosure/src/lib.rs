//! The small-cell rule of every published table (ATTRIBUTION.md, "Gates and privacy"): no
//! shown cell counts fewer than k, and no hidden cell follows from the shown ones.
//!
//! A group is a set of cells whose total is published too (a campaign's boards and its
//! primary window, a day's hours and the day). From the total and the shown cells, one can
//! compute exactly one thing about the hidden ones: their sum (the published figures span
//! nothing finer). So a group is safe when no cell is hidden, or when at least two are and
//! their sum is itself not small. [`hide`] hides the small cells, then the smallest shown
//! ones until that holds; [`recoverable`] is the check, for tests.

/// Which cells of a group to hide. `cells[i]` holds cell i's counts (devices first, then
/// e.g. converters); a count under its `k[j]` is small. With `empty_is_safe`, a cell of no
/// devices is shown (an empty hour reveals no one); otherwise a zero is small like any
/// count under k (no converters among a board's passers is a fact about each of them).
/// Complements are taken smallest first (by devices), never an empty cell.
pub fn hide(cells: &[Vec<u64>], k: &[u64], empty_is_safe: bool) -> Vec<bool> {
    let small = |c: &[u64]| c.iter().zip(k).any(|(n, k)| n < k);
    let empty = |c: &[u64]| c.first().is_none_or(|n| *n == 0);
    let mut hidden: Vec<bool> = cells
        .iter()
        .map(|c| !(empty_is_safe && empty(c)) && small(c))
        .collect();
    while hidden.iter().any(|h| *h) && !safe(cells, &hidden, k) {
        let next = (0..cells.len())
            .filter(|&i| !hidden[i] && !empty(&cells[i]))
            .min_by_key(|&i| cells[i].first().copied().unwrap_or(0));
        match next {
            Some(i) => hidden[i] = true,
            // Everything is hidden that can be: the group's total is then the hidden
            // sum, and is small only if the total itself is (hidden where it is published).
            None => break,
        }
    }
    hidden
}

/// [`hide`] for cells of one count each (devices, or passes), empty cells shown.
pub fn hide_counts(counts: &[u64], k: u64) -> Vec<bool> {
    let cells: Vec<Vec<u64>> = counts.iter().map(|&n| vec![n]).collect();
    hide(&cells, &[k], true)
}

/// Whether the hidden cells are at least two and their sum is not small.
fn safe(cells: &[Vec<u64>], hidden: &[bool], k: &[u64]) -> bool {
    let rows: Vec<&Vec<u64>> = cells
        .iter()
        .zip(hidden)
        .filter(|h| *h.1)
        .map(|h| h.0)
        .collect();
    rows.len() >= 2
        && k.iter().enumerate().all(|(j, k)| {
            rows.iter()
                .map(|c| c.get(j).copied().unwrap_or(0))
                .sum::<u64>()
                >= *k
        })
}

/// What the published figures of a group reveal about its hidden cells: every combination
/// of the total minus a subset of the shown cells (the subtractions a reader can make), as
/// (the hidden cells it covers, its counts), for those that cover fewer than two hidden
/// cells or count fewer than k. Empty when the group is safe. Exponential in the shown
/// cells: for tests.
pub fn recoverable(cells: &[Vec<u64>], hidden: &[bool], k: &[u64]) -> Vec<(Vec<usize>, Vec<u64>)> {
    let shown: Vec<usize> = (0..cells.len()).filter(|&i| !hidden[i]).collect();
    assert!(shown.len() < 20, "exhaustive: a test's group");
    let width = k.len();
    let total: Vec<u64> = (0..width)
        .map(|j| cells.iter().map(|c| c[j]).sum())
        .collect();
    let mut found = Vec::new();
    for mask in 0u32..(1 << shown.len()) {
        let mut rest = total.clone();
        let mut covered: Vec<usize> = (0..cells.len()).filter(|&i| hidden[i]).collect();
        for (b, &i) in shown.iter().enumerate() {
            if mask & (1 << b) != 0 {
                for j in 0..width {
                    rest[j] -= cells[i][j];
                }
            } else {
                covered.push(i);
            }
        }
        // What is left covers the hidden cells and the shown ones not subtracted; it says
        // something new only about the hidden ones, when the rest are all subtracted.
        if covered.iter().all(|&i| hidden[i])
            && !covered.is_empty()
            && (covered.len() < 2 || rest.iter().zip(k).any(|(n, k)| n < k))
        {
            found.push((covered, rest));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &[u64]) -> Vec<Vec<u64>> {
        v.iter().map(|&n| vec![n]).collect()
    }

    #[test]
    fn small_cells_hide_with_complements_until_their_sum_is_not_small() {
        let k = [50];
        // Every cell large: all shown.
        assert_eq!(hide(&one(&[60, 90]), &k, true), [false, false]);
        // One small cell: it and the smallest other (not the empty one) are hidden.
        assert_eq!(
            hide(&one(&[3, 0, 70, 60]), &k, true),
            [true, false, false, true]
        );
        // Two small cells whose sum is small: a third joins them.
        assert_eq!(
            hide(&one(&[3, 4, 70, 90]), &k, true),
            [true, true, true, false]
        );
        // Two small cells whose sum is not: enough.
        assert_eq!(hide(&one(&[30, 40, 70]), &k, true), [true, true, false]);
        // Nothing else to hide: the lone cell alone (its total is then its own).
        assert_eq!(hide(&one(&[3, 0]), &k, true), [true, false]);
        // Zeros are small where they are facts about people.
        assert_eq!(hide(&one(&[0, 80, 90]), &k, false), [true, true, false]);
    }

    #[test]
    fn several_counts_each_have_their_k() {
        // Devices and converters: the middle cell has 8 converters.
        let cells = vec![vec![100, 20], vec![60, 8], vec![400, 50], vec![70, 15]];
        let hidden = hide(&cells, &[50, 10], false);
        // With the 60-device cell, the next smallest (70): 130 devices, 23 converters.
        assert_eq!(hidden, [false, true, false, true]);
        assert!(recoverable(&cells, &hidden, &[50, 10]).is_empty());
    }

    /// Every subtraction a reader can make, on many groups: nothing small comes out, while
    /// the old rule (hide one more only when exactly one is hidden) lets small sums out.
    #[test]
    fn no_subtraction_recovers_a_small_figure() {
        let k = [50, 10];
        let mut next = testkit::xorshift(0x2545_f491_4f6c_dd1d);
        let mut old_rule_leaks = 0;
        for _ in 0..2000 {
            let n = 1 + next(9) as usize;
            let cells: Vec<Vec<u64>> = (0..n)
                .map(|_| {
                    let d = next(150);
                    vec![d, next(d / 3 + 1)]
                })
                .collect();
            let hidden = hide(&cells, &k, false);
            let total_small = (0..2).any(|j| cells.iter().map(|c| c[j]).sum::<u64>() < k[j]);
            let leaks = recoverable(&cells, &hidden, &k);
            // A small total is hidden where it is published; then its group has no safe form.
            assert!(
                leaks.is_empty() || total_small,
                "{cells:?} hidden {hidden:?} reveals {leaks:?}"
            );
            let mut old: Vec<bool> = cells.iter().map(|c| c[0] < 50 || c[1] < 10).collect();
            if old.iter().filter(|h| **h).count() == 1 {
                if let Some(i) = (0..n).filter(|&i| !old[i]).min_by_key(|&i| cells[i][0]) {
                    old[i] = true;
                }
            }
            if !total_small && !recoverable(&cells, &old, &k).is_empty() {
                old_rule_leaks += 1;
            }
        }
        assert!(old_rule_leaks > 0, "the check must be able to fail");
    }
}
