//! The report as CSV: one line per row of Table 3 and metric (all five, MRR and Precision
//! included), with full-precision means, half-widths and both comparisons of the row,
//! each with raw and Holm-adjusted p-values of both tests. For spreadsheets and pandas.

use std::fmt::Write;

use super::coldstart::{ColdRow, SubsetResult};
use super::grid::GridReport;
use super::table3::{Comparison, ComparisonKind};
use crate::eval::Metrics;

const COMPARISON_COLUMNS: [&str; 10] = [
    "against",
    "users",
    "mean_difference",
    "difference_ci_low",
    "difference_ci_high",
    "effect_size_dz",
    "t_test_p",
    "t_test_p_holm",
    "wilcoxon_p",
    "wilcoxon_p_holm",
];

/// Columns added per subset on a split with cold tracks.
const SUBSET_COLUMNS: [&str; 6] = [
    "users",
    "mean",
    "half_width",
    "marks",
    "vs_shuffled",
    "vs_shuffled_t_test_p_holm",
];

/// The report as CSV (RFC 4180, header line first). On a split with cold tracks each line
/// gains the row's hot and cold results for its metric (empty where there is none).
pub fn render_csv(report: &GridReport) -> String {
    let table = report.table3();
    let cold = report.cold_table(&table);
    let mut out = String::from(
        "model,variant,backend,letter,best_on_validation,metric,k,test_users,mean,half_width,marks",
    );
    for kind in ["vs_random", "vs_best"] {
        for c in COMPARISON_COLUMNS {
            let _ = write!(out, ",{kind}_{c}");
        }
    }
    if cold.is_some() {
        for subset in ["hot", "cold"] {
            for c in SUBSET_COLUMNS {
                let _ = write!(out, ",{subset}_{c}");
            }
        }
    }
    out.push('\n');
    for (b, block) in table.blocks.iter().enumerate() {
        for (i, row) in block.rows.iter().enumerate() {
            for (metric, name) in Metrics::<f64>::NAMES.iter().enumerate() {
                let e = row.test.values()[metric];
                let _ = write!(
                    out,
                    "{},{},{},{},{},{name},{},{},{},{},{}",
                    serde_plain(&block.model),
                    serde_plain(&row.variant),
                    field(&row.label),
                    row.letter,
                    block.best == Some(i),
                    table.k,
                    row.test_users,
                    e.mean,
                    opt(e.half_width),
                    row.marks.values()[metric]
                );
                for kind in [ComparisonKind::VsRandom, ComparisonKind::VsBest] {
                    let found = block
                        .comparisons
                        .iter()
                        .find(|c| c.metric == *name && c.row == i && c.kind == kind);
                    match found {
                        Some(c) => comparison(&mut out, c, &block.rows[c.against].label),
                        None => out.push_str(&",".repeat(COMPARISON_COLUMNS.len())),
                    }
                }
                if let Some(cold) = &cold {
                    let cold_block = &cold.blocks[b];
                    let r = &cold_block.rows[i];
                    for result in [&r.hot, &r.cold] {
                        subset(&mut out, result.as_ref(), &cold_block.rows, metric);
                    }
                }
                out.push('\n');
            }
        }
    }
    out
}

fn subset(out: &mut String, result: Option<&SubsetResult>, rows: &[ColdRow], metric: usize) {
    let Some(r) = result else {
        out.push_str(&",".repeat(SUBSET_COLUMNS.len()));
        return;
    };
    let e = r.metrics.values()[metric];
    let (against, p) = match &r.vs_shuffled {
        Some((j, tests)) => (field(&rows[*j].label), tests.values()[metric].1.to_string()),
        None => (String::new(), String::new()),
    };
    let _ = write!(
        out,
        ",{},{},{},{},{against},{p}",
        r.users,
        e.mean,
        opt(e.half_width),
        r.marks.values()[metric]
    );
}

fn comparison(out: &mut String, c: &Comparison, against: &str) {
    let t = &c.test;
    let (low, high) = t.difference_ci().unzip();
    let _ = write!(
        out,
        ",{},{},{},{},{},{},{},{},{},{}",
        field(against),
        c.users,
        t.mean_difference,
        opt(low),
        opt(high),
        opt(t.effect_size),
        t.t_test_p,
        c.t_test_p_holm,
        t.wilcoxon_p,
        c.wilcoxon_p_holm
    );
}

fn opt(x: Option<f64>) -> String {
    x.map_or(String::new(), |x| x.to_string())
}

/// The lower-case name serde gives an enum value ("shallow", "random").
fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A field quoted when it holds a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
