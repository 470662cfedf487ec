//! Table 3: every backend under every recommender on test users, with 95% half-widths
//! and paired significance. Per block (recommender): each content row against the
//! block's Random row, and each backend against the block's best backend, chosen on
//! *validation* HitRate@k so the test is not biased by the choice. Each comparison runs
//! a paired t-test and a Wilcoxon signed-rank test over the test users both rows share;
//! Holm corrects each test's p-values over the comparisons of one block and one metric.
//! Marks follow ranx: a row's value carries the letter of every row it is significantly
//! better than (Holm-adjusted t-test p < α).

use serde::Serialize;
use utoipa::ToSchema;

use super::grid::{Cell, GridReport, ModelKind, Variant};
use crate::eval::{Estimate, Metrics, PairedTest, estimate, holm, paired_test};

/// The significance level of the marks.
pub const ALPHA: f64 = 0.05;

/// Columns of Table 3, as indices into `Metrics::NAMES`: HitRate, Recall, NDCG.
pub const TABLE3_METRICS: [usize; 3] = [0, 1, 4];

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Table3 {
    pub k: usize,
    pub alpha: f64,
    pub blocks: Vec<Block>,
}

/// One recommender's rows: its backends in the report's order, then its Random row.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Block {
    pub model: ModelKind,
    pub rows: Vec<Row>,
    /// Index into `rows` of the best backend on validation HitRate@k.
    pub best: Option<usize>,
    /// Every comparison of the block, for every metric, Holm-adjusted per metric.
    pub comparisons: Vec<Comparison>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Row {
    pub label: String,
    pub variant: Variant,
    /// The row's letter, which marks name (a, b, c, … in row order).
    pub letter: char,
    pub test_users: usize,
    /// All five metrics on test users.
    pub test: Metrics<Estimate>,
    pub validation_hit_rate: Estimate,
    pub index_recall: Option<f64>,
    /// Letters of the rows this one is significantly better than, per metric.
    pub marks: Metrics<String>,
}

/// A paired comparison of two rows of a block: `row` minus `against`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Comparison {
    /// The metric compared, as in `Metrics::NAMES`.
    pub metric: &'static str,
    pub row: usize,
    pub against: usize,
    pub kind: ComparisonKind,
    pub users: usize,
    pub test: PairedTest,
    pub t_test_p_holm: f64,
    pub wilcoxon_p_holm: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComparisonKind {
    /// A content row against its block's Random row.
    VsRandom,
    /// A backend against the block's best backend on validation.
    VsBest,
}

impl GridReport {
    /// Cells of one block in row order: content cells by the order of `backends` (unknown
    /// backends after, by name), then the shuffled controls in the same order, then the
    /// random cell.
    pub fn block_cells(&self, model: ModelKind) -> Vec<&Cell> {
        let position = |c: &Cell| {
            let b = c.backend.as_deref().unwrap_or("");
            let known = self.backends.iter().position(|x| x.name == b);
            (
                match c.variant {
                    Variant::Content => 0,
                    Variant::Shuffled => 1,
                    Variant::Random => 2,
                },
                known.unwrap_or(usize::MAX),
                b.to_owned(),
            )
        };
        let mut cells: Vec<&Cell> = self.cells.iter().filter(|c| c.model == model).collect();
        cells.sort_by_key(|c| position(c));
        cells
    }

    /// Table 3 with its significance marks.
    pub fn table3(&self) -> Table3 {
        let blocks = ModelKind::ALL
            .into_iter()
            .map(|model| (model, self.block_cells(model)))
            .filter(|(_, cells)| !cells.is_empty())
            .map(|(model, cells)| block(model, &cells))
            .collect();
        Table3 {
            k: self.k,
            alpha: ALPHA,
            blocks,
        }
    }
}

fn block(model: ModelKind, cells: &[&Cell]) -> Block {
    let mut rows: Vec<Row> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| Row {
            label: c.label(),
            variant: c.variant,
            letter: char::from(b'a' + (i % 26) as u8),
            test_users: c.test.scores.len(),
            test: Metrics::from_fn(|m| estimate(&c.test.metric(m))),
            validation_hit_rate: estimate(&c.validation.metric(0)),
            index_recall: c.index_recall,
            marks: Metrics::default(),
        })
        .collect();
    let best = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.variant == Variant::Content)
        .fold(None::<(usize, f64)>, |best, (i, r)| match best {
            Some((_, m)) if m >= r.validation_hit_rate.mean => best,
            _ => Some((i, r.validation_hit_rate.mean)),
        })
        .map(|(i, _)| i);
    let comparisons: Vec<Comparison> = (0..Metrics::<f64>::NAMES.len())
        .flat_map(|metric| compare(&rows, best, cells, metric))
        .collect();
    let mut marks: Vec<[Vec<char>; 5]> = vec![Default::default(); rows.len()];
    for c in &comparisons {
        if c.t_test_p_holm >= ALPHA || c.test.mean_difference == 0.0 {
            continue;
        }
        let (winner, loser) = if c.test.mean_difference > 0.0 {
            (c.row, c.against)
        } else {
            (c.against, c.row)
        };
        let metric = Metrics::<f64>::NAMES.iter().position(|m| *m == c.metric);
        let letters = &mut marks[winner][metric.expect("a metric name")];
        if !letters.contains(&rows[loser].letter) {
            letters.push(rows[loser].letter);
            letters.sort_unstable();
        }
    }
    for (row, letters) in rows.iter_mut().zip(&marks) {
        row.marks = Metrics::from_fn(|m| letters[m].iter().collect());
    }
    Block {
        model,
        rows,
        best,
        comparisons,
    }
}

/// The comparisons of a block for one metric, Holm-adjusted over them.
fn compare(rows: &[Row], best: Option<usize>, cells: &[&Cell], metric: usize) -> Vec<Comparison> {
    let random = rows.iter().position(|r| r.variant == Variant::Random);
    let mut pairs = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if r.variant != Variant::Content {
            continue;
        }
        if let Some(random) = random {
            pairs.push((i, random, ComparisonKind::VsRandom));
        }
        if let Some(best) = best.filter(|&b| b != i) {
            pairs.push((i, best, ComparisonKind::VsBest));
        }
    }
    let mut out: Vec<Comparison> = pairs
        .into_iter()
        .map(|(row, against, kind)| {
            let (a, b) = (&cells[row].test, &cells[against].test);
            let matched = a.pairs(b);
            let xs: Vec<f64> = matched
                .iter()
                .map(|&(i, _)| *a.scores[i].values()[metric])
                .collect();
            let ys: Vec<f64> = matched
                .iter()
                .map(|&(_, j)| *b.scores[j].values()[metric])
                .collect();
            Comparison {
                metric: Metrics::<f64>::NAMES[metric],
                row,
                against,
                kind,
                users: matched.len(),
                test: paired_test(&xs, &ys),
                t_test_p_holm: f64::NAN,
                wilcoxon_p_holm: f64::NAN,
            }
        })
        .collect();
    let t = holm(&out.iter().map(|c| c.test.t_test_p).collect::<Vec<_>>());
    let w = holm(&out.iter().map(|c| c.test.wilcoxon_p).collect::<Vec<_>>());
    for (c, (t, w)) in out.iter_mut().zip(t.into_iter().zip(w)) {
        c.t_test_p_holm = t;
        c.wilcoxon_p_holm = w;
    }
    out
}

/// The sentence under the table: which test decides the marks and how it was corrected.
pub fn footnote(table: &Table3) -> String {
    format!(
        "Test users; mean ± 95% half-width (Student t). A superscript letter marks a \
         statistically significant improvement over the row with that letter in the same \
         block (paired two-sided t-test over users, p < {}, Holm-corrected over the \
         comparisons of one block and one metric). Compared: each neural row against its \
         block's Random row, and each backend against the block's best backend on \
         validation HitRate@{} (◆). Wilcoxon signed-rank p-values are in the CSV.",
        table.alpha, table.k
    )
}
