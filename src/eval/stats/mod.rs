//! Confidence intervals and paired significance tests over per-user scores, so that two
//! embeddings can be called different only when the users say so (the paper's p < 0.05).
//!
//! Reference: scipy (`scipy.stats.ttest_rel`, `scipy.stats.wilcoxon` with its defaults,
//! `scipy.stats.t.interval`); `scripts/stats_fixtures.py` writes the values the tests
//! compare against. Where scipy answers `nan` (no variation at all) we answer what the
//! data say instead: p = 1 when every difference is zero, p = 0 for a t-test on a constant
//! non-zero difference (as scipy), and no effect size when the differences do not vary.

mod holm;
mod wilcoxon;

#[cfg(test)]
mod tests;

pub use holm::holm;
pub use wilcoxon::{SignedRank, wilcoxon};

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// A mean with its 95% confidence half-width (Student t over users).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Estimate {
    pub mean: f64,
    /// `t(0.975, n−1) · s / √n`; `None` with fewer than two users.
    pub half_width: Option<f64>,
}

fn mean_and_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn students_t(n: usize) -> StudentsT {
    StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("n ≥ 2 gives positive degrees of freedom")
}

pub fn estimate(xs: &[f64]) -> Estimate {
    match xs.len() {
        0 => Estimate {
            mean: 0.0,
            half_width: None,
        },
        1 => Estimate {
            mean: xs[0],
            half_width: None,
        },
        n => {
            let (mean, sd) = mean_and_sd(xs);
            let t = students_t(n).inverse_cdf(0.975);
            Estimate {
                mean,
                half_width: Some(t * sd / (n as f64).sqrt()),
            }
        }
    }
}

/// A paired comparison of `a` and `b` (same users, same order): the size of the
/// difference with its uncertainty, and two-sided p-values of two tests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PairedTest {
    /// Mean of a − b.
    pub mean_difference: f64,
    /// 95% confidence half-width of the mean difference (Student t over users): the
    /// interval is `mean_difference ± difference_half_width`. `None` with fewer than two users.
    pub difference_half_width: Option<f64>,
    /// Cohen's d_z: mean of a − b over its standard deviation. `None` with fewer than two
    /// users or when every difference is the same.
    pub effect_size: Option<f64>,
    /// Paired t-test, two-sided.
    pub t_test_p: f64,
    /// Wilcoxon signed-rank, two-sided, zero differences dropped, no continuity
    /// correction; exact null distribution for small samples as scipy's `method='auto'`,
    /// else the normal approximation with tie correction.
    pub wilcoxon_p: f64,
    /// Whether `wilcoxon_p` comes from the exact null distribution.
    pub wilcoxon_exact: bool,
}

impl PairedTest {
    /// The 95% confidence interval of the mean difference.
    pub fn difference_ci(&self) -> Option<(f64, f64)> {
        self.difference_half_width
            .map(|h| (self.mean_difference - h, self.mean_difference + h))
    }
}

pub fn paired_test(a: &[f64], b: &[f64]) -> PairedTest {
    assert_eq!(a.len(), b.len(), "paired samples need the same users");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let difference = estimate(&d);
    let effect_size = (d.len() >= 2)
        .then(|| mean_and_sd(&d))
        .and_then(|(mean, sd)| (sd > 0.0).then_some(mean / sd));
    let signed_rank = wilcoxon(&d);
    PairedTest {
        mean_difference: difference.mean,
        difference_half_width: difference.half_width,
        effect_size,
        t_test_p: t_test_p(&d),
        wilcoxon_p: signed_rank.p,
        wilcoxon_exact: signed_rank.exact,
    }
}

fn t_test_p(d: &[f64]) -> f64 {
    if d.len() < 2 {
        return 1.0;
    }
    let (mean, sd) = mean_and_sd(d);
    if sd == 0.0 {
        return if mean == 0.0 { 1.0 } else { 0.0 };
    }
    let t = mean / (sd / (d.len() as f64).sqrt());
    (2.0 * students_t(d.len()).sf(t.abs())).min(1.0)
}
