//! Confidence intervals and paired significance tests over per-user scores, so that two
//! embeddings can be called different only when the users say so (the paper's p < 0.05).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

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
            let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
                .expect("n ≥ 2 gives positive degrees of freedom")
                .inverse_cdf(0.975);
            Estimate {
                mean,
                half_width: Some(t * sd / (n as f64).sqrt()),
            }
        }
    }
}

/// Two-sided p-values of a paired comparison of `a` and `b` (same users, same order).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PairedTest {
    /// Mean of a − b.
    pub mean_difference: f64,
    pub t_test_p: f64,
    /// Wilcoxon signed-rank, normal approximation with tie correction, zeros dropped.
    pub wilcoxon_p: f64,
}

pub fn paired_test(a: &[f64], b: &[f64]) -> PairedTest {
    assert_eq!(a.len(), b.len(), "paired samples need the same users");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mean_difference = if d.is_empty() {
        0.0
    } else {
        d.iter().sum::<f64>() / d.len() as f64
    };
    PairedTest {
        mean_difference,
        t_test_p: t_test_p(&d),
        wilcoxon_p: wilcoxon_p(&d),
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
    let dist = StudentsT::new(0.0, 1.0, (d.len() - 1) as f64).expect("positive degrees of freedom");
    2.0 * (1.0 - dist.cdf(t.abs()))
}

fn wilcoxon_p(d: &[f64]) -> f64 {
    let mut nz: Vec<f64> = d.iter().copied().filter(|x| *x != 0.0).collect();
    let n = nz.len();
    if n == 0 {
        return 1.0;
    }
    nz.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Average ranks over ties of |d|, and the tie correction Σ(t³ − t).
    let mut w_plus = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && nz[j + 1].abs() == nz[i].abs() {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        w_plus += nz[i..=j].iter().filter(|x| **x > 0.0).count() as f64 * rank;
        i = j + 1;
    }
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
    if var <= 0.0 {
        return 1.0;
    }
    let z = (w_plus - mean) / var.sqrt();
    2.0 * (1.0 - Normal::new(0.0, 1.0).expect("standard normal").cdf(z.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_width_matches_the_t_table() {
        // n = 4, mean 2.5, sd = sqrt(5/3); t(0.975, 3) = 3.182446.
        let e = estimate(&[1.0, 2.0, 3.0, 4.0]);
        assert!((e.mean - 2.5).abs() < 1e-12);
        let expected = 3.182446305 * (5.0f64 / 3.0).sqrt() / 2.0;
        assert!((e.half_width.unwrap() - expected).abs() < 1e-6);
        assert_eq!(estimate(&[0.3]).half_width, None);
    }

    #[test]
    fn paired_tests_match_scipy() {
        // scipy 1.x: ttest_rel(a, b).pvalue = 0.027269498736607434;
        // wilcoxon(a, b, correction=False, method="approx").pvalue = 0.027707849358079864.
        let a = [0.9, 0.8, 0.7, 0.85, 0.6, 0.75];
        let b = [0.5, 0.6, 0.68, 0.7, 0.55, 0.4];
        let r = paired_test(&a, &b);
        assert!(
            (r.t_test_p - 0.027_269_498_736_607_434).abs() < 1e-9,
            "{}",
            r.t_test_p
        );
        assert!(
            (r.wilcoxon_p - 0.027_707_849_358_079_864).abs() < 1e-9,
            "{}",
            r.wilcoxon_p
        );
        assert!((r.mean_difference - 0.195).abs() < 1e-12);
        assert_eq!(paired_test(&a, &a).t_test_p, 1.0);
        assert_eq!(paired_test(&a, &a).wilcoxon_p, 1.0);
    }
}
