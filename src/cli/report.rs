//! `audiorec report EXPERIMENT`: an experiment's report regenerated from the database
//! alone, as one self-contained HTML page, Markdown, CSV and a LaTeX table.

use std::path::{Path, PathBuf};

use anyhow::Context;
use audiorec::eval::report::{GridReport, render_csv, render_html, render_latex, render_markdown};
use audiorec::experiment::load_report;
use audiorec::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment's id (printed by `audiorec experiment`).
    experiment: String,
    /// Where the runs are stored (embedded SQLite by default, or postgres://…).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://audiorec-data/audiorec.db"
    )]
    database_url: String,
    /// Folder for report.html, report.md, report.csv, report.tex and grid.json.
    #[arg(long, default_value = "report")]
    out: PathBuf,
}

/// Writes every format of `report` into `dir` and prints Table 3 as Markdown.
pub fn write_report(report: &GridReport, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let markdown = render_markdown(report);
    let files = [
        ("report.html", render_html(report)),
        ("report.md", markdown.clone()),
        ("report.csv", render_csv(report)),
        ("report.tex", render_latex(report)),
        ("grid.json", serde_json::to_string(report)?),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("could not write {}", path.display()))?;
    }
    println!("{markdown}");
    println!(
        "report written to {}/report.{{html,md,csv,tex}}",
        dir.display()
    );
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let store = Store::connect(&args.database_url)
            .await
            .with_context(|| format!("could not open the database {}", args.database_url))?;
        anyhow::Ok(load_report(&store, &args.experiment).await?)
    })?;
    write_report(&report, &args.out)
}
