//! The report as Markdown (GitHub flavour): Tables 1–3 with marks, timings and manifest,
//! for READMEs, pull requests and notebooks.

use std::fmt::Write;

use super::coldstart::{ColdTable, SubsetResult, cold_footnote};
use super::format::{count, duration, half_width, is_block_max, mean, metric_title, split_rows};
use super::grid::{GridReport, ModelKind};
use super::table3::{TABLE3_METRICS, footnote};

/// The report as one Markdown document.
pub fn render_markdown(report: &GridReport) -> String {
    let table = report.table3();
    let mut md = format!("# {}\n\n", report.title);
    md.push_str("## Table 1 — Backends\n\n| Backend | Dimension |\n|:--|--:|\n");
    for b in &report.backends {
        let _ = writeln!(md, "| {} | {} |", cell(&b.name), b.dim);
    }
    md.push_str(
        "\n## Table 2 — Split\n\n| Part | Users | Items | Interactions |\n|:--|--:|--:|--:|\n",
    );
    for (name, p) in split_rows(&report.split) {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} |",
            count(p.users),
            count(p.items),
            count(p.interactions)
        );
    }
    if report.has_cold() {
        let _ = writeln!(
            md,
            "\n{} cold tracks held out of training (the cold rows: held-out plays of cold tracks).",
            count(report.split.cold.tracks)
        );
    }
    md.push_str("\n## Table 3 — Results on test users\n\n| Model | Backend |");
    for m in TABLE3_METRICS {
        let _ = write!(md, " {} |", metric_title(m, report.k));
    }
    md.push_str("\n|:--|:--|--:|--:|--:|\n");
    for block in &table.blocks {
        for (i, row) in block.rows.iter().enumerate() {
            let model = if i == 0 { block.model.label() } else { "" };
            let best = if block.best == Some(i) { " ◆" } else { "" };
            let _ = write!(
                md,
                "| {model} | ({}) {}{best} |",
                row.letter,
                cell(&row.label)
            );
            for m in TABLE3_METRICS {
                let e = row.test.values()[m];
                let v = if is_block_max(&block.rows, i, m) {
                    format!("**{}**", mean(e))
                } else {
                    mean(e)
                };
                let marks = row.marks.values()[m];
                let sup = if marks.is_empty() {
                    String::new()
                } else {
                    format!("<sup>{marks}</sup>")
                };
                let _ = write!(md, " {v} ± {}{sup} |", half_width(e));
            }
            md.push('\n');
        }
    }
    let _ = writeln!(md, "\n{} Bold: the block's highest.\n", footnote(&table));
    if let Some(cold) = report.cold_table(&table) {
        cold_table(&mut md, &cold);
    }
    md.push_str("## Timings\n\n| Model | Backend | Epochs | Train | Evaluate | Index recall |\n|:--|:--|--:|--:|--:|--:|\n");
    for model in ModelKind::ALL {
        for c in report.block_cells(model) {
            let epochs = if c.curve.is_empty() {
                "–".into()
            } else {
                c.curve.len().to_string()
            };
            let _ = writeln!(
                md,
                "| {} | {} | {epochs} | {} | {} | {} |",
                model.label(),
                cell(&c.label()),
                c.train_seconds.map_or("–".into(), duration),
                duration(c.eval_seconds),
                c.index_recall.map_or("–".into(), |r| format!("{r:.3}"))
            );
        }
    }
    md.push_str("\n## Manifest\n\n| Key | Value |\n|:--|:--|\n");
    for (k, v) in &report.manifest {
        let _ = writeln!(md, "| `{}` | {} |", k.replace('`', "'"), cell(v));
    }
    md
}

/// The hot and cold table (a split with cold tracks).
fn cold_table(md: &mut String, table: &ColdTable) {
    md.push_str("## Hot and cold — test users\n\n| Model | Backend |");
    for subset in ["Hot", "Cold"] {
        for m in TABLE3_METRICS {
            let _ = write!(md, " {subset} {} |", metric_title(m, table.k));
        }
    }
    md.push_str("\n|:--|:--|--:|--:|--:|--:|--:|--:|\n");
    for block in &table.blocks {
        for (i, row) in block.rows.iter().enumerate() {
            let model = if i == 0 { block.model.label() } else { "" };
            let _ = write!(md, "| {model} | ({}) {} |", row.letter, cell(&row.label));
            for result in [&row.hot, &row.cold] {
                for m in TABLE3_METRICS {
                    let _ = write!(md, " {} |", subset_value(result.as_ref(), m));
                }
            }
            md.push('\n');
        }
    }
    let _ = writeln!(md, "\n{}\n", cold_footnote(table));
}

/// `mean ± half-width` with its marks, or a dash for no result.
fn subset_value(result: Option<&SubsetResult>, metric: usize) -> String {
    let Some(r) = result else {
        return "–".into();
    };
    let e = r.metrics.values()[metric];
    let marks = r.marks.values()[metric];
    let sup = if marks.is_empty() {
        String::new()
    } else {
        format!("<sup>{marks}</sup>")
    };
    format!("{} ± {}{sup}", mean(e), half_width(e))
}

/// Text safe inside a table cell: pipes escaped, line breaks flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}
