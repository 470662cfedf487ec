//! Number and name formatting shared by the renderers, so every format shows the same
//! digits.

use crate::dataset::SplitCounts;
use crate::dataset::split::PartCounts;
use crate::eval::Estimate;

const TITLES: [&str; 5] = ["HitRate", "Recall", "Precision", "MRR", "NDCG"];

/// "HitRate@50" for index 0 of `Metrics::NAMES`, and so on.
pub(super) fn metric_title(metric: usize, k: usize) -> String {
    format!("{}@{k}", TITLES[metric])
}

/// The mean with three decimals, as the paper prints it.
pub(super) fn mean(e: &Estimate) -> String {
    format!("{:.3}", e.mean)
}

/// The half-width with three decimals, or a dash when there is none (fewer than two users).
pub(super) fn half_width(e: &Estimate) -> String {
    e.half_width.map_or("–".into(), |h| format!("{h:.3}"))
}

/// Seconds as a reader wants them: "42 s", "12 min 5 s", "1 h 02 min".
pub(super) fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{seconds:.1} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// Integers with thin-space thousands separators: 182 405.
pub(super) fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(ch);
    }
    out
}

/// The rows of Table 2: train, validation and test, and on a split with cold tracks the
/// held-out parts restricted to them.
pub(super) fn split_rows(s: &SplitCounts) -> Vec<(&'static str, PartCounts)> {
    let mut rows = vec![
        ("Train", s.train),
        ("Validation", s.validation),
        ("Test", s.test),
    ];
    if s.cold.tracks > 0 {
        rows.push(("Validation (cold)", s.cold.validation));
        rows.push(("Test (cold)", s.cold.test));
    }
    rows
}

/// Whether row `i` has the highest test mean of its block for `metric` (printed bold).
pub(super) fn is_block_max(rows: &[super::table3::Row], i: usize, metric: usize) -> bool {
    let value = |j: usize| rows[j].test.values()[metric].mean;
    (0..rows.len()).all(|j| value(j) <= value(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_read_well() {
        assert_eq!(metric_title(4, 50), "NDCG@50");
        assert_eq!(duration(3.04), "3.0 s");
        assert_eq!(duration(725.0), "12 min 5 s");
        assert_eq!(duration(3725.0), "1 h 02 min");
        assert_eq!(count(182_405), "182\u{202f}405");
        assert_eq!(count(999), "999");
        let e = Estimate {
            mean: 0.1234,
            half_width: None,
        };
        assert_eq!((mean(&e), half_width(&e)), ("0.123".into(), "–".into()));
    }
}
