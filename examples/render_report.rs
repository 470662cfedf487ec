//! Writes the synthetic example grid's report in every format, for looking at it in a
//! browser (`scripts/render_report.sh` does that headless and takes a screenshot).
//!
//! Usage: cargo run --example render_report -- OUT_DIR

use anyhow::Context;
use audiorec::eval::report::{GridReport, render_csv, render_html, render_latex, render_markdown};

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/report".into());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir}"))?;
    let report = GridReport::example();
    let outputs = [
        ("report.html", render_html(&report)),
        ("report.md", render_markdown(&report)),
        ("report.csv", render_csv(&report)),
        ("table3.tex", render_latex(&report)),
        ("grid.json", serde_json::to_string_pretty(&report)?),
    ];
    for (name, text) in outputs {
        let path = format!("{dir}/{name}");
        std::fs::write(&path, text).with_context(|| format!("writing {path}"))?;
        println!("{path}");
    }
    Ok(())
}
