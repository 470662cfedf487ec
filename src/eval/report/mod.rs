//! The evaluation report: what `audiorec evaluate` prints as a table and writes as JSON.
//! The experiment report (a whole grid: Tables 1–3, significance, charts) lives in the
//! sibling files and is rendered as HTML, Markdown, CSV and LaTeX.

mod charts;
pub mod coldstart;
mod csv;
mod example;
mod format;
pub mod grid;
mod html;
mod latex;
mod markdown;
mod svg;
pub mod table3;
#[cfg(test)]
mod tests;

pub use coldstart::{ColdTable, cold_footnote};
pub use csv::render_csv;
pub use grid::{BackendInfo, Cell, EpochLoss, GridReport, ModelKind, UserScores, Variant};
pub use html::render_html;
pub use latex::render_latex;
pub use markdown::render_markdown;
pub use table3::{Block, Comparison, ComparisonKind, Row, Table3};

use serde::Serialize;

use super::{Estimate, Evaluation, Metrics};

/// One split part's result within a report.
#[derive(Debug, Clone, Serialize)]
pub struct PartReport {
    pub part: String,
    pub users: usize,
    pub seconds: f64,
    pub metrics: Metrics<Estimate>,
}

/// One user's scores, labelled with their id and part.
#[derive(Debug, Clone, Serialize)]
pub struct UserReport {
    pub user_id: String,
    pub part: String,
    pub metrics: Metrics<f64>,
}

/// The whole report: aggregates, the parameters that produced them, every user's scores.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub backend: String,
    pub k: usize,
    pub parameters: serde_json::Value,
    pub parts: Vec<PartReport>,
    pub users: Vec<UserReport>,
}

impl Report {
    /// Adds a part's evaluation; `user_ids` are in the order of its per-user scores.
    pub fn push_part(
        &mut self,
        part: &str,
        evaluation: &Evaluation,
        user_ids: impl Iterator<Item = String>,
    ) {
        self.parts.push(PartReport {
            part: part.into(),
            users: evaluation.per_user.len(),
            seconds: evaluation.seconds,
            metrics: evaluation.aggregate,
        });
        self.users.extend(
            user_ids
                .zip(&evaluation.per_user)
                .map(|(user_id, m)| UserReport {
                    user_id,
                    part: part.into(),
                    metrics: *m,
                }),
        );
    }

    /// A plain-text table: one row per part, `mean ± half-width` per metric.
    pub fn table(&self) -> String {
        let k = self.k;
        let mut out = format!(
            "{} / {} (k = {k})\n{:<16} {:>7} {:>18} {:>18} {:>18} {:>18} {:>18}\n",
            self.model,
            self.backend,
            "part",
            "users",
            format!("HitRate@{k}"),
            format!("Recall@{k}"),
            format!("Precision@{k}"),
            format!("MRR@{k}"),
            format!("NDCG@{k}")
        );
        for p in &self.parts {
            out.push_str(&format!("{:<16} {:>7}", p.part, p.users));
            for e in p.metrics.values() {
                let hw = e.half_width.map_or("-".to_string(), |h| format!("{h:.4}"));
                out.push_str(&format!(" {:>18}", format!("{:.4} ± {hw}", e.mean)));
            }
            out.push('\n');
        }
        out
    }
}
