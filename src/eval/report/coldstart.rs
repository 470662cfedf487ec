//! The hot and cold table of a cold-start split (the authors' journal follow-up reports
//! hot and cold apart): per block, each row's test metrics on the held-out hot tracks
//! (hot tracks ranked alone) and on the held-out cold tracks (cold tracks ranked alone;
//! see `crate::eval` for the definitions), beside the shuffled-embedding control. Each
//! content row is compared with the shuffled control of its backend (else the block's
//! first control) by a paired t-test over the users both have, Holm-corrected over the
//! comparisons of one block, subset and metric; marks as in Table 3. The Random rows have
//! no cold result: their item rows were learned from plays alone.

use serde::Serialize;

use super::grid::{Cell, GridReport, ModelKind, UserScores, Variant};
use super::table3::{ALPHA, Table3};
use crate::eval::{Estimate, Metrics, PairedTest, estimate, holm, paired_test};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdTable {
    pub k: usize,
    pub alpha: f64,
    /// Test users with held-out hot tracks, and with held-out cold tracks.
    pub hot_users: usize,
    pub cold_users: usize,
    pub blocks: Vec<ColdBlock>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdBlock {
    pub model: ModelKind,
    pub rows: Vec<ColdRow>,
}

/// A row of the table; its letter is its letter in Table 3.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdRow {
    pub label: String,
    pub variant: Variant,
    pub letter: char,
    pub hot: Option<SubsetResult>,
    pub cold: Option<SubsetResult>,
}

/// One row's result on one subset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubsetResult {
    pub users: usize,
    pub metrics: Metrics<Estimate>,
    /// Letters of the rows this one is significantly better than, per metric.
    pub marks: Metrics<String>,
    /// Against the shuffled control (content rows with one): its row index in the block,
    /// the test per metric and its Holm-adjusted t-test p-value.
    pub vs_shuffled: Option<(usize, Metrics<(PairedTest, f64)>)>,
}

impl GridReport {
    /// The hot and cold table; `None` when the split has no cold tracks.
    pub fn cold_table(&self, table3: &Table3) -> Option<ColdTable> {
        if !self.has_cold() {
            return None;
        }
        let users = |pick: fn(&Cell) -> Option<&UserScores>| {
            (self.cells.iter().filter_map(pick))
                .map(|s| s.scores.len())
                .max()
                .unwrap_or(0)
        };
        let blocks = table3
            .blocks
            .iter()
            .map(|b| block(b.model, &self.block_cells(b.model), &b.rows))
            .collect();
        Some(ColdTable {
            k: self.k,
            alpha: ALPHA,
            hot_users: users(|c| c.hot.as_ref()),
            cold_users: users(|c| c.cold.as_ref()),
            blocks,
        })
    }
}

fn block(model: ModelKind, cells: &[&Cell], rows3: &[super::table3::Row]) -> ColdBlock {
    let result = |s: Option<&UserScores>| {
        s.map(|s| SubsetResult {
            users: s.scores.len(),
            metrics: Metrics::from_fn(|m| estimate(&s.metric(m))),
            marks: Metrics::default(),
            vs_shuffled: None,
        })
    };
    let mut rows: Vec<ColdRow> = cells
        .iter()
        .zip(rows3)
        .map(|(c, r)| ColdRow {
            label: r.label.clone(),
            variant: c.variant,
            letter: r.letter,
            hot: result(c.hot.as_ref()),
            cold: result(c.cold.as_ref()),
        })
        .collect();
    // Each content row's control: the shuffled row of its backend, else the first.
    let shuffled: Vec<usize> = (0..cells.len())
        .filter(|&i| cells[i].variant == Variant::Shuffled)
        .collect();
    let pairs: Vec<(usize, usize)> = (0..cells.len())
        .filter(|&i| cells[i].variant == Variant::Content)
        .filter_map(|i| {
            let own = shuffled
                .iter()
                .find(|&&j| cells[j].backend == cells[i].backend);
            own.or(shuffled.first()).map(|&j| (i, j))
        })
        .collect();
    for hot in [true, false] {
        compare_subset(&mut rows, cells, &pairs, hot);
    }
    ColdBlock { model, rows }
}

/// Paired tests of each (content, control) pair on one subset, Holm-adjusted per metric
/// over the block's pairs; fills the rows' marks and `vs_shuffled`.
fn compare_subset(rows: &mut [ColdRow], cells: &[&Cell], pairs: &[(usize, usize)], hot: bool) {
    let pairs: Vec<(usize, usize, &UserScores, &UserScores)> = pairs
        .iter()
        .filter_map(|&(i, j)| Some((i, j, scores(cells[i], hot)?, scores(cells[j], hot)?)))
        .collect();
    let tests: Vec<Metrics<PairedTest>> = pairs
        .iter()
        .map(|(_, _, a, b)| {
            let matched = a.pairs(b);
            Metrics::from_fn(|m| {
                let xs: Vec<f64> = matched
                    .iter()
                    .map(|&(i, _)| *a.scores[i].values()[m])
                    .collect();
                let ys: Vec<f64> = matched
                    .iter()
                    .map(|&(_, j)| *b.scores[j].values()[m])
                    .collect();
                paired_test(&xs, &ys)
            })
        })
        .collect();
    let adjusted: Vec<Vec<f64>> = (0..Metrics::<f64>::NAMES.len())
        .map(|m| {
            holm(
                &tests
                    .iter()
                    .map(|t| t.values()[m].t_test_p)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    for (n, &(i, j, _, _)) in pairs.iter().enumerate() {
        let tested = Metrics::from_fn(|m| (*tests[n].values()[m], adjusted[m][n]));
        let letters = (rows[i].letter, rows[j].letter);
        for m in 0..Metrics::<f64>::NAMES.len() {
            let (t, p) = *tested.values()[m];
            if p >= ALPHA || t.mean_difference == 0.0 {
                continue;
            }
            let (winner, loser) = if t.mean_difference > 0.0 {
                (i, letters.1)
            } else {
                (j, letters.0)
            };
            let target = subset_mut(&mut rows[winner], hot).expect("a tested row has a result");
            let mut marks: Vec<char> = target.marks.values()[m].chars().collect();
            if !marks.contains(&loser) {
                marks.push(loser);
                marks.sort_unstable();
            }
            set_mark(&mut target.marks, m, marks.into_iter().collect());
        }
        if let Some(r) = subset_mut(&mut rows[i], hot) {
            r.vs_shuffled = Some((j, tested));
        }
    }
}

fn scores(cell: &Cell, hot: bool) -> Option<&UserScores> {
    if hot {
        cell.hot.as_ref()
    } else {
        cell.cold.as_ref()
    }
}

fn subset_mut(row: &mut ColdRow, hot: bool) -> Option<&mut SubsetResult> {
    if hot {
        row.hot.as_mut()
    } else {
        row.cold.as_mut()
    }
}

fn set_mark(marks: &mut Metrics<String>, metric: usize, value: String) {
    match metric {
        0 => marks.hit_rate = value,
        1 => marks.recall = value,
        2 => marks.precision = value,
        3 => marks.mrr = value,
        _ => marks.ndcg = value,
    }
}

/// The sentence under the table.
pub fn cold_footnote(table: &ColdTable) -> String {
    format!(
        "Test users; mean ± 95% half-width. Hot: the {} users with held-out tracks seen in \
         train, hot tracks ranked alone. Cold: the {} users with held-out tracks held out of \
         training, cold tracks ranked alone (recommended from content only). Shuffled: the \
         same backend with its rows permuted among the tracks, the chance level of content. \
         A superscript letter marks a significant difference from the row with that letter \
         (paired t-test against the shuffled control, p < {}, Holm-corrected over one \
         block, subset and metric). Random rows have no cold result: their item rows were \
         learned from plays alone.",
        table.hot_users, table.cold_users, table.alpha
    )
}
