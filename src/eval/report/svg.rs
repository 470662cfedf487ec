//! SVG primitives for the report's charts, written by hand (no plotting crate): colours,
//! round axis ticks, grid lines, legends and escaping. Plain SVG 1.1, no script, no
//! external font or stylesheet, so the page works offline, without JavaScript and in print.

use std::fmt::Write;

use super::grid::{GridReport, Variant};

/// Colour-blind-friendly categorical colours (Tableau 10), one per backend in order.
const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
];
pub(super) const RANDOM_COLOUR: &str = "#8b929b";
pub(super) const AXIS: &str = "#5f6670";
pub(super) const GRID: &str = "#e3e6ea";
pub(super) const FONT: &str = "font-family=\"Inter, 'Segoe UI', Helvetica, Arial, sans-serif\"";

/// Escapes text for XML and HTML content and attribute values.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The colour of a row: its backend's place in Table 1, grey for Random and the
/// shuffled controls.
pub(super) fn colour(report: &GridReport, variant: Variant, label: &str) -> &'static str {
    if variant != Variant::Content {
        return RANDOM_COLOUR;
    }
    let i = report.backends.iter().position(|b| b.name == label);
    i.map_or(PALETTE[PALETTE.len() - 1], |i| PALETTE[i % PALETTE.len()])
}

/// Round tick values covering `[lo, hi]` (about five), and the axis range they span.
pub(super) fn ticks(lo: f64, hi: f64) -> (Vec<f64>, f64, f64) {
    let span = if hi > lo { hi - lo } else { hi.abs().max(1.0) };
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let (first, last) = (
        (lo / step).floor(),
        (hi / step).ceil().max((lo / step).floor() + 1.0),
    );
    let values = (first as i64..=last as i64)
        .map(|i| i as f64 * step)
        .collect();
    (values, first * step, last * step)
}

pub(super) fn tick_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10()).ceil().max(0.0) as usize
        + usize::from((step / 10f64.powf(step.log10().floor()) - 2.5).abs() < 1e-9);
    format!("{v:.decimals$}")
}

/// Horizontal grid lines with labels on the left of a plot area.
pub(super) fn y_axis(svg: &mut String, ticks: &[f64], y: impl Fn(f64) -> f64, x0: f64, x1: f64) {
    let step = if ticks.len() > 1 {
        ticks[1] - ticks[0]
    } else {
        1.0
    };
    for &t in ticks {
        let yy = y(t);
        let _ = write!(
            svg,
            "<line x1=\"{x0:.1}\" x2=\"{x1:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"{GRID}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"{AXIS}\">{}</text>",
            x0 - 6.0,
            yy + 4.0,
            tick_label(t, step)
        );
    }
}

/// A legend row of coloured swatches, laid out from `x` at height `y`.
pub(super) fn legend(svg: &mut String, entries: &[(String, &str, bool)], x: f64, y: f64) {
    let mut cx = x;
    for (label, colour, dashed) in entries {
        let dash = if *dashed {
            " stroke-dasharray=\"4 3\""
        } else {
            ""
        };
        let _ = write!(
            svg,
            "<line x1=\"{cx:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"8\"{dash}/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#2b2f36\">{}</text>",
            cx + 16.0,
            cx + 22.0,
            y + 4.0,
            escape(label)
        );
        cx += 34.0 + 7.0 * label.chars().count() as f64;
    }
}

/// Backends in Table 1 order, then Random (dashed where lines stand for cells).
pub(super) fn legend_entries(
    report: &GridReport,
    with_random: bool,
    dashed_random: bool,
) -> Vec<(String, &'static str, bool)> {
    let mut entries: Vec<_> = report
        .backends
        .iter()
        .map(|b| {
            (
                b.name.clone(),
                colour(report, Variant::Content, &b.name),
                false,
            )
        })
        .collect();
    if with_random {
        entries.push(("Random".into(), RANDOM_COLOUR, dashed_random));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let (t, lo, hi) = ticks(0.0, 0.41);
        assert_eq!((lo, hi), (0.0, 0.5));
        assert_eq!(t.len(), 6);
        assert_eq!(tick_label(t[1], t[1] - t[0]), "0.1");
        let (t, lo, hi) = ticks(6.93, 8.71);
        assert!(lo <= 6.93 && hi >= 8.71 && t.len() <= 11, "{t:?}");
        assert_eq!(tick_label(0.25, 0.25), "0.25");
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
