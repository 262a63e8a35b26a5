//! CUPED (ATTRIBUTION.md): the conversion adjusted by the pre-period visits X,
//! `y - theta (X - mean X)`, with theta pooled across arms, which removes the part of the
//! variance that X predicts. Computed from each arm's sums, so the point estimate and each
//! bootstrap draw (resampled clusters' sums) are the same computation.

/// One arm's sums over its devices: n, sum y, sum X, sum X^2, sum X y (y is 0 or 1).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    pub n: f64,
    pub y: f64,
    pub x: f64,
    pub x2: f64,
    pub xy: f64,
}

impl Moments {
    pub fn add(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        self.y += y;
        self.x += x;
        self.x2 += x * x;
        self.xy += x * y;
    }

    pub fn merge(&mut self, o: &Moments) {
        self.merge_times(o, 1.0);
    }

    /// Merges `o` taken `times` times (a cluster drawn that often).
    pub fn merge_times(&mut self, o: &Moments, times: f64) {
        self.n += times * o.n;
        self.y += times * o.y;
        self.x += times * o.x;
        self.x2 += times * o.x2;
        self.xy += times * o.xy;
    }
}

/// The adjusted difference (exposed - control), theta, and the difference's standard error
/// (each arm's sample variance of the adjusted outcome).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cuped {
    pub theta: f64,
    pub difference: f64,
    pub se: f64,
}

/// CUPED over `[exposed, control]`; None unless each arm has two devices.
pub fn cuped(arms: &[Moments; 2]) -> Option<Cuped> {
    if arms.iter().any(|a| a.n < 2.0) {
        return None;
    }
    let mut t = arms[0];
    t.merge(&arms[1]);
    let mx = t.x / t.n;
    let var = t.x2 / t.n - mx * mx;
    let cov = t.xy / t.n - mx * t.y / t.n;
    let theta = if var > 0.0 { cov / var } else { 0.0 };
    let adjusted = |a: &Moments| {
        // v = y - theta (x - mx): its sum and sum of squares from the arm's sums (y^2 = y).
        let sx_c = a.x - a.n * mx;
        let sxx_c = a.x2 - 2.0 * mx * a.x + a.n * mx * mx;
        let sxy_c = a.xy - mx * a.y;
        let sum = a.y - theta * sx_c;
        let sum2 = a.y - 2.0 * theta * sxy_c + theta * theta * sxx_c;
        let var = ((sum2 - sum * sum / a.n) / (a.n - 1.0)).max(0.0);
        (sum / a.n, var / a.n)
    };
    let ((me, ve), (mc, vc)) = (adjusted(&arms[0]), adjusted(&arms[1]));
    Some(Cuped {
        theta,
        difference: me - mc,
        se: (ve + vc).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::sd;

    fn arms(rows: &[(bool, f64, f64)]) -> [Moments; 2] {
        let mut a = [Moments::default(); 2];
        for &(exposed, x, y) in rows {
            a[usize::from(!exposed)].add(x, y);
        }
        a
    }

    /// Against a direct computation on the devices: theta = cov(X, y) / var(X) over both
    /// arms, the adjusted values per device, their means and sample variances.
    #[test]
    fn matches_the_adjustment_computed_device_by_device() {
        let rows = [
            (true, 0.0, 0.0),
            (true, 1.0, 1.0),
            (true, 3.0, 1.0),
            (true, 0.0, 1.0),
            (false, 2.0, 1.0),
            (false, 0.0, 0.0),
            (false, 1.0, 0.0),
            (false, 4.0, 1.0),
            (false, 0.0, 0.0),
        ];
        let n = rows.len() as f64;
        let mx = rows.iter().map(|r| r.1).sum::<f64>() / n;
        let my = rows.iter().map(|r| r.2).sum::<f64>() / n;
        let var = rows.iter().map(|r| (r.1 - mx).powi(2)).sum::<f64>() / n;
        let cov = rows.iter().map(|r| (r.1 - mx) * (r.2 - my)).sum::<f64>() / n;
        let theta = cov / var;
        let adj = |e: bool| -> Vec<f64> {
            rows.iter()
                .filter(|r| r.0 == e)
                .map(|r| r.2 - theta * (r.1 - mx))
                .collect()
        };
        let (ae, ac) = (adj(true), adj(false));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let se = (sd(&ae).powi(2) / ae.len() as f64 + sd(&ac).powi(2) / ac.len() as f64).sqrt();
        let c = cuped(&arms(&rows)).expect("two per arm");
        assert!((c.theta - theta).abs() < 1e-12, "{c:?} vs theta {theta}");
        assert!(
            (c.difference - (mean(&ae) - mean(&ac))).abs() < 1e-12,
            "{c:?}"
        );
        assert!((c.se - se).abs() < 1e-12, "{c:?} vs se {se}");
    }

    #[test]
    fn without_pre_period_variance_it_is_the_plain_difference() {
        let rows = [
            (true, 1.0, 1.0),
            (true, 1.0, 0.0),
            (false, 1.0, 0.0),
            (false, 1.0, 0.0),
        ];
        let c = cuped(&arms(&rows)).expect("two per arm");
        assert_eq!((c.theta, c.difference), (0.0, 0.5));
        assert_eq!(cuped(&arms(&rows[..3])), None, "one control device");
    }
}
