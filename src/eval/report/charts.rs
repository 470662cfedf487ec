//! The report's two charts: HitRate@k per backend grouped by recommender with 95% error
//! bars, and the validation-loss curves of every trained cell. Each bar and line has a
//! `<title>` tooltip.

use std::fmt::Write;

use super::grid::{GridReport, ModelKind, Variant};
use super::svg::{AXIS, FONT, colour, escape, legend, legend_entries, tick_label, ticks, y_axis};
use super::table3::Table3;

/// HitRate@k on test users per row, grouped by recommender, with 95% error bars.
pub fn hit_rate_chart(report: &GridReport, table: &Table3) -> String {
    let (w, h) = (960.0, 350.0);
    let (left, right, top, bottom) = (58.0, 16.0, 44.0, 36.0);
    let top_value = table
        .blocks
        .iter()
        .flat_map(|b| &b.rows)
        .map(|r| r.test.hit_rate.mean + r.test.hit_rate.half_width.unwrap_or(0.0))
        .fold(0.0, f64::max);
    let (ticks, lo, hi) = ticks(0.0, top_value.max(1e-3) * 1.08);
    let y = |v: f64| top + (h - top - bottom) * (1.0 - (v - lo) / (hi - lo));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"chart-hit-rate\" viewBox=\"0 0 {w} {h}\" \
         role=\"img\" aria-labelledby=\"chart-hit-rate-title\" {FONT}>\
         <title id=\"chart-hit-rate-title\">HitRate@{k} on test users per backend, grouped by \
         recommender, with 95% confidence intervals</title>",
        k = table.k
    );
    y_axis(&mut svg, &ticks, y, left, w - right);
    let _ = write!(
        svg,
        "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\" fill=\"{AXIS}\">HitRate@{}</text>",
        (top + h - bottom) / 2.0,
        table.k
    );
    let with_random = table
        .blocks
        .iter()
        .any(|b| b.rows.iter().any(|r| r.variant == Variant::Random));
    legend(
        &mut svg,
        &legend_entries(report, with_random, false),
        left,
        16.0,
    );
    let group_w = (w - left - right) / table.blocks.len().max(1) as f64;
    for (g, block) in table.blocks.iter().enumerate() {
        let n = block.rows.len() as f64;
        let bar_w = (group_w * 0.78 / n).min(40.0);
        let gap = bar_w * 0.18;
        let x_start = left + group_w * g as f64 + (group_w - n * bar_w) / 2.0;
        for (i, row) in block.rows.iter().enumerate() {
            let e = row.test.hit_rate;
            let x = x_start + i as f64 * bar_w;
            let (y0, y1) = (y(lo.max(0.0)), y(e.mean));
            let fill = colour(report, row.variant, &row.label);
            let hatch = if row.variant != Variant::Content {
                " fill-opacity=\"0.55\""
            } else {
                ""
            };
            let hw = e.half_width.map_or(String::new(), |h| format!(" ± {h:.3}"));
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{y1:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"2\" fill=\"{fill}\"{hatch}>\
                 <title>{} / {}: {:.3}{hw}</title></rect>",
                x + gap / 2.0,
                bar_w - gap,
                (y0 - y1).max(0.0),
                block.model.label(),
                escape(&row.label),
                e.mean
            );
            let cx = x + bar_w / 2.0;
            let mut label_y = y1 - 5.0;
            if let Some(hw) = e.half_width {
                let (ya, yb) = (y((e.mean - hw).max(lo)), y(e.mean + hw));
                label_y = yb - 5.0;
                let _ = write!(
                    svg,
                    "<path d=\"M{cx:.1} {ya:.1}V{yb:.1}M{:.1} {ya:.1}h{:.1}M{:.1} {yb:.1}h{:.1}\" stroke=\"#2b2f36\" stroke-width=\"1.2\" fill=\"none\"/>",
                    cx - 4.0,
                    8.0,
                    cx - 4.0,
                    8.0
                );
            }
            let best = if block.best == Some(i) { "◆ " } else { "" };
            let _ = write!(
                svg,
                "<text x=\"{cx:.1}\" y=\"{label_y:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#2b2f36\">{best}{}</text>",
                format!("{:.3}", e.mean).trim_start_matches('0')
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"600\" fill=\"#2b2f36\">{}</text>",
            left + group_w * (g as f64 + 0.5),
            h - bottom + 24.0,
            block.model.label()
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{AXIS}\"/></svg>",
        w - right,
        y(lo.max(0.0)),
        y(lo.max(0.0))
    );
    svg
}

/// Validation loss per epoch of every trained cell: one panel per recommender, one line
/// per cell, a dot at the epoch with the lowest validation loss.
pub fn curves_chart(report: &GridReport) -> Option<String> {
    let panels: Vec<ModelKind> = ModelKind::ALL
        .into_iter()
        .filter(|m| {
            report
                .cells
                .iter()
                .any(|c| c.model == *m && !c.curve.is_empty())
        })
        .collect();
    if panels.is_empty() {
        return None;
    }
    let (w, h) = (960.0, 340.0);
    let panel_w = w / panels.len() as f64;
    let (top, bottom) = (56.0, 44.0);
    let with_random = report
        .cells
        .iter()
        .any(|c| c.variant == Variant::Random && !c.curve.is_empty());
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"chart-curves\" viewBox=\"0 0 {w} {h}\" \
         role=\"img\" aria-labelledby=\"chart-curves-title\" {FONT}>\
         <title id=\"chart-curves-title\">Validation loss per epoch of every trained cell</title>"
    );
    legend(
        &mut svg,
        &legend_entries(report, with_random, true),
        58.0,
        16.0,
    );
    for (p, model) in panels.iter().enumerate() {
        let cells = report.block_cells(*model);
        let cells: Vec<_> = cells.into_iter().filter(|c| !c.curve.is_empty()).collect();
        let losses = cells
            .iter()
            .flat_map(|c| c.curve.iter().map(|e| e.validation_loss));
        let (min, max) = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let epochs = cells
            .iter()
            .flat_map(|c| c.curve.iter().map(|e| e.epoch))
            .max()
            .unwrap_or(1);
        let pad = ((max - min) * 0.05).max(1e-6);
        let (yt, lo, hi) = ticks(min - pad, max + pad);
        let (xt, _, x_hi) = ticks(0.0, epochs as f64);
        let (x0, x1) = (panel_w * p as f64 + 58.0, panel_w * (p + 1) as f64 - 16.0);
        let x = |e: f64| x0 + (x1 - x0) * e / x_hi;
        let y = |v: f64| top + (h - top - bottom) * (1.0 - (v - lo) / (hi - lo));
        y_axis(&mut svg, &yt, y, x0, x1);
        let x_step = if xt.len() > 1 { xt[1] - xt[0] } else { 1.0 };
        for &t in &xt {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{AXIS}\">{}</text>",
                x(t),
                h - bottom + 16.0,
                tick_label(t, x_step)
            );
        }
        let _ = write!(
            svg,
            "<line x1=\"{x0:.1}\" x2=\"{x1:.1}\" y1=\"{yb:.1}\" y2=\"{yb:.1}\" stroke=\"{AXIS}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"600\" fill=\"#2b2f36\">{} — validation loss</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{AXIS}\">epoch</text>",
            (x0 + x1) / 2.0,
            top - 10.0,
            model.label(),
            (x0 + x1) / 2.0,
            h - bottom + 34.0,
            yb = y(lo)
        );
        for c in cells {
            let colour = colour(report, c.variant, &c.label());
            let dash = if c.variant != Variant::Content {
                " stroke-dasharray=\"5 4\""
            } else {
                ""
            };
            let points: Vec<String> = c
                .curve
                .iter()
                .map(|e| format!("{:.1},{:.1}", x(e.epoch as f64), y(e.validation_loss)))
                .collect();
            let best = c
                .curve
                .iter()
                .min_by(|a, b| a.validation_loss.total_cmp(&b.validation_loss));
            let _ = write!(
                svg,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\" stroke-linejoin=\"round\"{dash}>\
                 <title>{} / {}: {} epochs</title></polyline>",
                points.join(" "),
                model.label(),
                escape(&c.label()),
                c.curve.len()
            );
            if let Some(b) = best {
                let _ = write!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.2\" fill=\"{colour}\" stroke=\"#fff\" stroke-width=\"1\">\
                     <title>{}: best epoch {} (validation loss {:.4})</title></circle>",
                    x(b.epoch as f64),
                    y(b.validation_loss),
                    escape(&c.label()),
                    b.epoch,
                    b.validation_loss
                );
            }
        }
    }
    svg.push_str("</svg>");
    Some(svg)
}
