//! The statistics against scipy (`tests/fixtures/stats.json`, written by
//! `scripts/stats_fixtures.py`) and Holm against a hand-computed case.

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    a: Vec<f64>,
    b: Vec<f64>,
    mean_difference: f64,
    t_test_p: Option<f64>,
    wilcoxon_statistic: Option<f64>,
    wilcoxon_p: Option<f64>,
    effect_size_dz: Option<f64>,
    difference_half_width: Option<f64>,
    a_half_width: Option<f64>,
}

/// Relative tolerance for p-values and intervals (scipy and statrs use different special
/// function implementations), with an absolute floor for values near zero.
fn close(ours: f64, scipy: f64) -> bool {
    (ours - scipy).abs() <= 1e-9 * scipy.abs().max(1e-3)
}

#[test]
fn paired_tests_match_scipy_fixtures() {
    let text = include_str!("../../../tests/fixtures/stats.json");
    let fixture: Fixture = serde_json::from_str(text).unwrap();
    assert!(fixture.cases.len() >= 12);
    for c in &fixture.cases {
        let r = paired_test(&c.a, &c.b);
        let name = &c.name;
        assert!(close(r.mean_difference, c.mean_difference), "{name}: mean");
        let all_zero = c.a == c.b;
        match c.t_test_p {
            Some(p) => assert!(close(r.t_test_p, p), "{name}: t {} vs {p}", r.t_test_p),
            // scipy: nan when every difference is zero; we answer 1.
            None => assert!(all_zero && r.t_test_p == 1.0, "{name}: t {}", r.t_test_p),
        }
        match c.wilcoxon_p {
            Some(p) => assert!(
                close(r.wilcoxon_p, p),
                "{name}: wilcoxon {} vs {p}",
                r.wilcoxon_p
            ),
            None => assert!(all_zero && r.wilcoxon_p == 1.0, "{name}: wilcoxon"),
        }
        let d: Vec<f64> = c.a.iter().zip(&c.b).map(|(x, y)| x - y).collect();
        if let Some(s) = c.wilcoxon_statistic {
            assert_eq!(wilcoxon(&d).statistic, s, "{name}: statistic");
        }
        match c.effect_size_dz {
            Some(dz) => assert!(close(r.effect_size.unwrap(), dz), "{name}: d_z"),
            None => assert_eq!(r.effect_size, None, "{name}: d_z"),
        }
        match c.difference_half_width {
            Some(h) => assert!(close(r.difference_half_width.unwrap(), h), "{name}: ci"),
            // scipy: nan for a zero standard deviation; the interval then has no width.
            None => assert_eq!(r.difference_half_width, Some(0.0), "{name}: ci"),
        }
        if let Some(h) = c.a_half_width {
            assert!(
                close(estimate(&c.a).half_width.unwrap(), h),
                "{name}: estimate"
            );
        }
    }
}

#[test]
fn exact_and_approximate_wilcoxon_are_chosen_as_scipy_does() {
    let d6 = [0.4, 0.2, 0.02, 0.15, 0.05, 0.35];
    assert!(wilcoxon(&d6).exact);
    // A tie among 14 non-zero differences: past scipy's permutation limit of 13.
    let mut tied: Vec<f64> = (1..=14).map(f64::from).collect();
    tied[1] = 1.0;
    assert!(!wilcoxon(&tied).exact);
    assert!(wilcoxon(&tied[..13]).exact);
    // 51 distinct differences: the normal approximation.
    let many: Vec<f64> = (1..=51).map(f64::from).collect();
    assert!(!wilcoxon(&many).exact);
    // All positive and exact: p = 2 / 2ⁿ.
    assert!((wilcoxon(&d6).p - 2.0 / 64.0).abs() < 1e-15);
}

#[test]
fn half_width_matches_the_t_table() {
    // n = 4, mean 2.5, sd = sqrt(5/3); t(0.975, 3) = 3.182446.
    let e = estimate(&[1.0, 2.0, 3.0, 4.0]);
    assert!((e.mean - 2.5).abs() < 1e-12);
    let expected = 3.182446305 * (5.0f64 / 3.0).sqrt() / 2.0;
    assert!((e.half_width.unwrap() - expected).abs() < 1e-6);
    assert_eq!(estimate(&[0.3]).half_width, None);
    let r = paired_test(&[0.3], &[0.1]);
    assert_eq!(
        (r.t_test_p, r.difference_ci(), r.effect_size),
        (1.0, None, None)
    );
}

#[test]
fn holm_matches_a_hand_computed_case() {
    // Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → max(0.06, 0.04).
    let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
    let expected = [0.03, 0.06, 0.06, 0.02];
    for (a, e) in adjusted.iter().zip(expected) {
        assert!((a - e).abs() < 1e-15, "{adjusted:?}");
    }
    // Capped at 1, equal p-values keep equal adjustments, empty stays empty.
    assert_eq!(holm(&[0.5, 0.5, 0.9]), vec![1.0, 1.0, 1.0]);
    assert_eq!(holm(&[0.2, 0.2]), vec![0.4, 0.4]);
    assert!(holm(&[]).is_empty());
}
