//! The report as one self-contained HTML page: inline CSS and SVG, no script, no external
//! resource, so it can be mailed, archived and opened offline.

use std::fmt::Write;

use super::charts::{curves_chart, hit_rate_chart};
use super::coldstart::{ColdTable, cold_footnote};
use super::format::{count, duration, half_width, is_block_max, mean, metric_title, split_rows};
use super::grid::{GridReport, ModelKind, Variant};
use super::svg::escape;
use super::table3::{TABLE3_METRICS, Table3, footnote};
use crate::eval::Estimate;

const STYLE: &str = r#"
:root { --ink:#1f2329; --muted:#5f6670; --rule:#dfe3e8; --soft:#f5f7f9; --accent:#4e79a7; }
* { box-sizing:border-box; }
html { -webkit-text-size-adjust:100%; }
body { margin:0; background:#fff; color:var(--ink);
  font:15px/1.55 Inter, "Segoe UI", "Helvetica Neue", Helvetica, Arial, sans-serif; }
main { max-width:1040px; margin:0 auto; padding:40px 40px 64px; }
header { border-bottom:1px solid var(--rule); padding-bottom:20px; margin-bottom:8px; }
.eyebrow { text-transform:uppercase; letter-spacing:.09em; font-size:12px; font-weight:600;
  color:var(--accent); margin:0 0 6px; }
h1 { font-size:28px; line-height:1.25; margin:0 0 10px; font-weight:700; letter-spacing:-.01em; }
h2 { font-size:19px; margin:40px 0 4px; font-weight:650; }
h2 .num { color:var(--muted); font-weight:500; margin-right:.35em; }
.lede { color:var(--muted); margin:0; }
.summary { display:flex; gap:28px; flex-wrap:wrap; margin:18px 0 0; padding:0; list-style:none; }
.summary li { font-size:13px; color:var(--muted); }
.summary b { display:block; font-size:20px; color:var(--ink); font-variant-numeric:tabular-nums; }
nav { margin-top:16px; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; margin-right:16px; }
.sub { color:var(--muted); font-size:13.5px; margin:0 0 14px; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; font-size:14px; }
th, td { padding:6px 12px; text-align:right; border-bottom:1px solid var(--rule); white-space:nowrap; }
th:first-child, td:first-child, th.l, td.l { text-align:left; }
thead th { font-size:12px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted);
  font-weight:600; border-bottom:2px solid var(--ink); }
tbody.block tr:first-child td { border-top:2px solid var(--rule); }
th.model, td.model { width:130px; }
td.model { font-weight:650; vertical-align:top; background:var(--soft); }
tr.random td { color:var(--muted); }
.letter { display:inline-block; width:1.6em; color:var(--muted); font-size:12px; }
.best { color:var(--accent); font-size:11px; margin-left:4px; }
.hw { color:var(--muted); font-size:12px; margin-left:3px; }
sup { color:var(--accent); font-size:10.5px; font-weight:600; margin-left:1px; vertical-align:6px;
  line-height:0; display:inline-block; min-width:3.4em; text-align:left; }
td.max .v { font-weight:700; }
.footnote { font-size:12.5px; color:var(--muted); margin:10px 0 0; max-width:110ch; }
figure { margin:8px 0 0; }
figure svg { width:100%; height:auto; display:block; }
figcaption { font-size:12.5px; color:var(--muted); margin-top:6px; }
.cols { display:grid; grid-template-columns:1fr 1.6fr; gap:40px; }
.kv td { text-align:left; font-size:13px; white-space:normal; }
.kv td:first-child { font-family:ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  color:var(--muted); width:38%; }
footer { margin-top:48px; font-size:12px; color:var(--muted); border-top:1px solid var(--rule); padding-top:12px; }
@media print { main { padding:0; } h2 { break-after:avoid; } figure, table { break-inside:avoid; } }
"#;

/// The whole report as one HTML document.
pub fn render_html(report: &GridReport) -> String {
    let table = report.table3();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>",
        title = escape(&report.title)
    );
    header(&mut h, report, &table);
    h.push_str(
        "<section id=\"results\"><h2><span class=\"num\">Table 3</span>Results on test users</h2>",
    );
    let _ = write!(
        h,
        "<p class=\"sub\">Mean over users at k = {} with 95% half-width; bold is the block's highest.</p>",
        report.k
    );
    table3(&mut h, &table);
    let _ = write!(
        h,
        "<p class=\"footnote\">{}</p></section>",
        escape(&footnote(&table))
    );
    if let Some(cold) = report.cold_table(&table) {
        cold_table(&mut h, &cold);
    }
    let _ = write!(
        h,
        "<section id=\"hit-rate\"><h2>HitRate@{k} by backend</h2><figure>{}<figcaption>Test users; \
         error bars are 95% confidence intervals; ◆ marks each block's best backend on validation.\
         </figcaption></figure></section>",
        hit_rate_chart(report, &table),
        k = report.k
    );
    if let Some(svg) = curves_chart(report) {
        let _ = write!(
            h,
            "<section id=\"curves\"><h2>Training curves</h2><figure>{svg}<figcaption>Validation loss \
             after each epoch; the dot marks the epoch with the lowest validation loss (the \
             checkpoint kept). Random variants dashed.</figcaption></figure></section>"
        );
    }
    h.push_str("<div class=\"cols\">");
    table1(&mut h, report);
    table2(&mut h, report);
    h.push_str("</div>");
    timings(&mut h, report);
    manifest(&mut h, report);
    let _ = writeln!(
        h,
        "<footer>audiorec {} · self-contained report: no scripts, no external resources.</footer></main></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

fn header(h: &mut String, report: &GridReport, table: &Table3) {
    let trained = report
        .cells
        .iter()
        .filter(|c| c.train_seconds.is_some())
        .count();
    let train: f64 = report.cells.iter().filter_map(|c| c.train_seconds).sum();
    let eval: f64 = report.cells.iter().map(|c| c.eval_seconds).sum();
    let _ = write!(
        h,
        "<header><p class=\"eyebrow\">audiorec · experiment report</p><h1>{}</h1>\
         <p class=\"lede\">{} backends under {} recommenders, evaluated at k = {} on held-out \
         listening; significance from paired tests over test users.</p><ul class=\"summary\">\
         <li><b>{}</b>cells</li><li><b>{}</b>trained</li><li><b>{}</b>test users</li>\
         <li><b>{}</b>training</li><li><b>{}</b>evaluation</li></ul>\
         <nav><a href=\"#results\">Results</a><a href=\"#hit-rate\">Chart</a><a href=\"#curves\">Curves</a>\
         <a href=\"#backends\">Backends</a><a href=\"#split\">Split</a><a href=\"#timings\">Timings</a>\
         <a href=\"#manifest\">Manifest</a></nav></header>",
        escape(&report.title),
        report.backends.len(),
        table.blocks.len(),
        report.k,
        report.cells.len(),
        trained,
        count(report.split.test.users),
        duration(train),
        duration(eval)
    );
}

fn table3(h: &mut String, table: &Table3) {
    h.push_str("<table id=\"table-results\"><thead><tr><th class=\"model\">Model</th><th class=\"l\">Backend</th>");
    for m in TABLE3_METRICS {
        let _ = write!(h, "<th>{}</th>", metric_title(m, table.k));
    }
    h.push_str("</tr></thead>");
    for block in &table.blocks {
        h.push_str("<tbody class=\"block\">");
        for (i, row) in block.rows.iter().enumerate() {
            let best = if block.best == Some(i) {
                "<span class=\"best\" title=\"best backend on validation\">◆</span>"
            } else {
                ""
            };
            let first = (i == 0).then_some((block.model, block.rows.len()));
            row_head(h, first, row.variant, row.letter, &row.label, best);
            for m in TABLE3_METRICS {
                let max = is_block_max(&block.rows, i, m);
                value(h, row.test.values()[m], row.marks.values()[m], max);
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody>");
    }
    h.push_str("</table>");
}

/// A row's opening: `<tr>`, the block's model cell on its first row (`first`: the model
/// and the block's row count), and the letter and label.
fn row_head(
    h: &mut String,
    first: Option<(ModelKind, usize)>,
    variant: Variant,
    letter: char,
    label: &str,
    best: &str,
) {
    let class = if variant != Variant::Content {
        " class=\"random\""
    } else {
        ""
    };
    let _ = write!(h, "<tr{class}>");
    if let Some((model, rows)) = first {
        let _ = write!(
            h,
            "<td class=\"model\" rowspan=\"{rows}\">{}</td>",
            model.label()
        );
    }
    let _ = write!(
        h,
        "<td class=\"l\"><span class=\"letter\">({letter})</span>{}{best}</td>",
        escape(label)
    );
}

/// A value cell: mean, half-width and marks, bold when `max`.
fn value(h: &mut String, e: &Estimate, marks: &str, max: bool) {
    let max = if max { " class=\"max\"" } else { "" };
    let _ = write!(
        h,
        "<td{max}><span class=\"v\">{}</span><span class=\"hw\">± {}</span><sup>{marks}</sup></td>",
        mean(e),
        half_width(e)
    );
}

/// The hot and cold table (a split with cold tracks).
fn cold_table(h: &mut String, table: &ColdTable) {
    h.push_str(
        "<section id=\"cold\"><h2>Hot and cold test users</h2><p class=\"sub\">Each subset's \
         tracks ranked alone; shuffled rows are the chance level of content.</p>\
         <table id=\"table-cold\"><thead><tr><th class=\"model\">Model</th><th class=\"l\">Backend</th>",
    );
    for subset in ["Hot", "Cold"] {
        for m in TABLE3_METRICS {
            let _ = write!(h, "<th>{subset} {}</th>", metric_title(m, table.k));
        }
    }
    h.push_str("</tr></thead>");
    for block in &table.blocks {
        h.push_str("<tbody class=\"block\">");
        for (i, row) in block.rows.iter().enumerate() {
            let first = (i == 0).then_some((block.model, block.rows.len()));
            row_head(h, first, row.variant, row.letter, &row.label, "");
            for result in [&row.hot, &row.cold] {
                for m in TABLE3_METRICS {
                    match result {
                        Some(r) => value(h, r.metrics.values()[m], r.marks.values()[m], false),
                        None => h.push_str("<td>–</td>"),
                    }
                }
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody>");
    }
    let _ = write!(
        h,
        "</table><p class=\"footnote\">{}</p></section>",
        escape(&cold_footnote(table))
    );
}

fn table1(h: &mut String, report: &GridReport) {
    h.push_str(
        "<section id=\"backends\"><h2><span class=\"num\">Table 1</span>Backends</h2>\
         <table id=\"table-backends\"><thead><tr><th>Backend</th><th>Dimension</th></tr></thead><tbody>",
    );
    for b in &report.backends {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&b.name),
            count(b.dim)
        );
    }
    h.push_str("</tbody></table></section>");
}

fn table2(h: &mut String, report: &GridReport) {
    h.push_str(
        "<section id=\"split\"><h2><span class=\"num\">Table 2</span>Split</h2>\
         <table id=\"table-split\"><thead><tr><th>Part</th><th>Users</th><th>Items</th>\
         <th>Interactions</th></tr></thead><tbody>",
    );
    for (name, p) in split_rows(&report.split) {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            count(p.users),
            count(p.items),
            count(p.interactions)
        );
    }
    h.push_str("</tbody></table>");
    if report.has_cold() {
        let _ = write!(
            h,
            "<p class=\"sub\">{} cold tracks held out of training; the cold rows count their held-out plays.</p>",
            count(report.split.cold.tracks)
        );
    }
    h.push_str("</section>");
}

fn timings(h: &mut String, report: &GridReport) {
    h.push_str(
        "<section id=\"timings\"><h2>Timings</h2><p class=\"sub\">Per cell; KNN does not train. \
         Index recall: the served approximate index against the exact scan the table uses.</p>\
         <table id=\"table-timings\"><thead><tr><th>Model</th><th class=\"l\">Backend</th><th>Epochs</th>\
         <th>Best epoch</th><th>Train</th><th>Evaluate</th><th>Index recall</th></tr></thead><tbody>",
    );
    for model in ModelKind::ALL {
        for c in report.block_cells(model) {
            let best = c
                .curve
                .iter()
                .min_by(|a, b| a.validation_loss.total_cmp(&b.validation_loss))
                .map_or("–".into(), |e| e.epoch.to_string());
            let epochs = if c.curve.is_empty() {
                "–".into()
            } else {
                c.curve.len().to_string()
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"l\">{}</td><td>{epochs}</td><td>{best}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                model.label(),
                escape(&c.label()),
                c.train_seconds.map_or("–".into(), duration),
                duration(c.eval_seconds),
                c.index_recall.map_or("–".into(), |r| format!("{r:.3}"))
            );
        }
    }
    h.push_str("</tbody></table></section>");
}

fn manifest(h: &mut String, report: &GridReport) {
    h.push_str("<section id=\"manifest\"><h2>Manifest</h2><p class=\"sub\">What produced these numbers.</p><table id=\"table-manifest\" class=\"kv\"><tbody>");
    for (k, v) in &report.manifest {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
    }
    h.push_str("</tbody></table></section>");
}
