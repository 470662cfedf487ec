#!/usr/bin/env python3
"""Writes tests/fixtures/stats.json: reference values from scipy for the paired tests,
half-widths, effect size and confidence interval of `src/eval/stats`.

Run from the repository root with scipy installed (we used scipy 1.17.1):
    python3 scripts/stats_fixtures.py

Each case is a pair of samples (a, b) of per-user scores with the property it checks
(ties, zeros, tiny n, n = 1000, identical samples, all-zero differences). The Rust test
`eval::stats::fixture_tests` reads the file and compares with a stated tolerance.
Non-finite scipy results (nan, inf) are written as null.
"""
import json
import math

import numpy as np
import scipy
from scipy import stats


def finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


def case(name, a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = a - b
    n = len(d)
    with np.errstate(all="ignore"):
        t = stats.ttest_rel(a, b)
        try:
            w = stats.wilcoxon(a, b, zero_method="wilcox", correction=False,
                               alternative="two-sided", method="auto")
            w_p, w_stat = finite(w.pvalue), finite(w.statistic)
        except ValueError:
            w_p, w_stat = None, None
        sd = d.std(ddof=1) if n > 1 else float("nan")
        mean = d.mean()
        dz = mean / sd if n > 1 else float("nan")
        if n > 1:
            ci = stats.t.interval(0.95, n - 1, loc=mean, scale=sd / math.sqrt(n))
            half = (ci[1] - ci[0]) / 2
            a_sd = a.std(ddof=1)
            a_half = stats.t.ppf(0.975, n - 1) * a_sd / math.sqrt(n)
        else:
            ci, half, a_half = (None, None), None, None
    return {
        "name": name,
        "a": a.tolist(),
        "b": b.tolist(),
        "mean_difference": float(mean),
        "t_test_p": finite(t.pvalue),
        "wilcoxon_statistic": w_stat,
        "wilcoxon_p": w_p,
        "effect_size_dz": finite(dz),
        "difference_ci": [finite(ci[0]) if ci[0] is not None else None,
                          finite(ci[1]) if ci[1] is not None else None],
        "difference_half_width": finite(half) if half is not None else None,
        "a_half_width": finite(a_half) if a_half is not None else None,
    }


def main():
    rng = np.random.default_rng(20240917)
    cases = []
    # Exact distribution: n <= 50, no ties, no zeros.
    cases.append(case("tiny_exact_n6",
                      [0.9, 0.8, 0.7, 0.85, 0.6, 0.75],
                      [0.5, 0.6, 0.68, 0.7, 0.55, 0.4]))
    cases.append(case("tiny_n2", [0.3, 0.1], [0.1, 0.4]))
    cases.append(case("exact_n20_continuous",
                      rng.normal(0.2, 0.1, 20).round(4), rng.normal(0.15, 0.1, 20).round(4)))
    cases.append(case("exact_n50_continuous",
                      rng.normal(0.3, 0.2, 50).round(4), rng.normal(0.28, 0.2, 50).round(4)))
    # Ties and zeros with n <= 13: scipy runs an exact permutation test over all sign flips.
    cases.append(case("ties_zeros_n10_hits",
                      [1, 1, 0, 1, 0, 1, 1, 0, 1, 1],
                      [0, 1, 0, 0, 1, 0, 1, 0, 0, 0]))
    cases.append(case("ties_n8_no_zeros",
                      [0.5, 0.25, 0.75, 0.5, 1.0, 0.25, 0.5, 0.0],
                      [0.25, 0.5, 0.25, 0.0, 0.5, 0.0, 0.25, 0.25]))
    cases.append(case("zero_n12_continuous",
                      [0.31, 0.22, 0.45, 0.12, 0.5, 0.61, 0.33, 0.2, 0.44, 0.18, 0.27, 0.39],
                      [0.31, 0.2, 0.41, 0.15, 0.43, 0.55, 0.3, 0.21, 0.37, 0.1, 0.2, 0.3]))
    # Ties or zeros with 13 < n <= 50: normal approximation with tie correction.
    hits_a = (rng.random(40) < 0.6).astype(float)
    hits_b = (rng.random(40) < 0.35).astype(float)
    cases.append(case("ties_zeros_n40_hits", hits_a, hits_b))
    # n > 50: normal approximation, whatever the data.
    cases.append(case("approx_n60_continuous",
                      rng.normal(0.2, 0.1, 60).round(4), rng.normal(0.18, 0.1, 60).round(4)))
    # n = 1000 per-user NDCG-like scores: mostly zeros, many ties.
    base = rng.random(1000)
    nd_a = np.where(base < 0.3, np.round(rng.random(1000), 2), 0.0)
    nd_b = np.where(base < 0.22, np.round(rng.random(1000), 2), 0.0)
    cases.append(case("n1000_sparse_ties", nd_a, nd_b))
    cases.append(case("n1000_continuous",
                      rng.normal(0.1, 0.05, 1000).round(4), rng.normal(0.1, 0.05, 1000).round(4)))
    # Degenerate: identical samples, all-zero differences, constant shift.
    same = rng.random(30).round(3)
    cases.append(case("identical_n30", same, same))
    cases.append(case("all_zero_differences_n5", [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]))
    cases.append(case("all_zero_differences_n80", np.ones(80), np.ones(80)))
    cases.append(case("constant_shift_n7", np.arange(7) + 0.5, np.arange(7)))
    out = {
        "scipy": scipy.__version__,
        "settings": "ttest_rel; wilcoxon(zero_method='wilcox', correction=False, "
                    "alternative='two-sided', method='auto'); t interval 0.95",
        "cases": cases,
    }
    with open("tests/fixtures/stats.json", "w") as f:
        json.dump(out, f, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
