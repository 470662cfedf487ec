//! Wilcoxon signed-rank test on paired differences, matching `scipy.stats.wilcoxon`'s
//! defaults (scipy 1.17: `zero_method='wilcox'`, two-sided) with `correction=False`:
//!
//! - zero differences are dropped before ranking; |d| ties get average ranks;
//! - `method='auto'`: the exact null distribution when there are at most 50 differences
//!   (zeros included in the count) and no ties or zeros; with ties or zeros and at most
//!   13 differences scipy runs a permutation test over all 2ⁿ sign flips, which is the
//!   same exact distribution of the signed-rank sum conditional on the (average) ranks, so
//!   we compute that; otherwise the normal approximation with the tie correction
//!   Σ(t³ − t)/48 in the variance.
//!
//! Departure: with no non-zero difference scipy answers `nan` above 13 differences; we
//! answer p = 1 (nothing speaks against the null).

use statrs::distribution::{ContinuousCDF, Normal};

/// The outcome of a signed-rank test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignedRank {
    /// min(R⁺, R⁻), the statistic scipy reports for the two-sided test.
    pub statistic: f64,
    pub p: f64,
    /// Whether `p` comes from the exact null distribution.
    pub exact: bool,
}

/// Two-sided Wilcoxon signed-rank test of differences `d` against a zero median.
pub fn wilcoxon(d: &[f64]) -> SignedRank {
    let zeros = d.iter().filter(|x| **x == 0.0).count();
    let mut nz: Vec<f64> = d.iter().copied().filter(|x| *x != 0.0).collect();
    nz.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    let m = nz.len();
    // Twice the average ranks (integers), R⁺ doubled, and the tie term Σ(t³ − t).
    let mut ranks2 = Vec::with_capacity(m);
    let (mut plus2, mut tie_term) = (0u64, 0.0);
    let mut i = 0;
    while i < m {
        let mut j = i;
        while j + 1 < m && nz[j + 1].abs() == nz[i].abs() {
            j += 1;
        }
        let rank2 = (i + j + 2) as u64;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        for x in &nz[i..=j] {
            ranks2.push(rank2);
            if *x > 0.0 {
                plus2 += rank2;
            }
        }
        i = j + 1;
    }
    let total2: u64 = ranks2.iter().sum();
    let r_plus = plus2 as f64 / 2.0;
    let statistic = r_plus.min((total2 - plus2) as f64 / 2.0);
    let ties = tie_term > 0.0;
    let exact = (d.len() <= 50 && !ties && zeros == 0) || d.len() <= 13;
    if m == 0 {
        return SignedRank {
            statistic,
            p: 1.0,
            exact,
        };
    }
    let p = if exact {
        exact_p(&ranks2, plus2)
    } else {
        let mf = m as f64;
        let mean = mf * (mf + 1.0) / 4.0;
        let var = mf * (mf + 1.0) * (2.0 * mf + 1.0) / 24.0 - tie_term / 48.0;
        let z = (r_plus - mean) / var.sqrt();
        let normal = Normal::new(0.0, 1.0).expect("standard normal");
        (2.0 * normal.sf(z.abs())).min(1.0)
    };
    SignedRank {
        statistic,
        p,
        exact,
    }
}

/// Two-sided p of the doubled rank sum `observed2` under all 2ᵐ equally likely sign
/// assignments of the doubled ranks: 2 · min(P(S ≤ s), P(S ≥ s)), capped at 1.
fn exact_p(ranks2: &[u64], observed2: u64) -> f64 {
    let total: usize = ranks2.iter().sum::<u64>() as usize;
    // Probability mass of each doubled sum; halving per rank keeps it a distribution.
    let mut mass = vec![0.0f64; total + 1];
    mass[0] = 1.0;
    let mut reach = 0usize;
    for &r in ranks2 {
        let r = r as usize;
        for s in (0..=reach).rev() {
            let half = mass[s] * 0.5;
            mass[s] = half;
            mass[s + r] += half;
        }
        reach += r;
    }
    let s = observed2 as usize;
    let less: f64 = mass[..=s].iter().sum();
    let greater: f64 = mass[s..].iter().sum();
    (2.0 * less.min(greater)).min(1.0)
}
