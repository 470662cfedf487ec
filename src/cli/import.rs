use std::time::Instant;

use anyhow::Context;
use audiorec::dataset::Dataset;
use indicatif::{ProgressBar, ProgressStyle};

use super::DataArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Also load tracks, users and plays into this database (`postgres://…` uses COPY,
    /// `sqlite://path` one transaction). The tables must be empty.
    #[arg(long, env = "DATABASE_URL")]
    database: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    let dataset = Dataset::import(&args.data.layout(), args.data.options()?, &|rows| {
        bar.set_message(format!("{rows} plays read"));
        bar.tick();
    })
    .with_context(|| format!("import of {} failed", args.data.data.display()))?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let s = &dataset.stats;
    println!(
        "imported {} tracks, {} users, {} (user, track) pairs from {} plays in {secs:.1} s ({:.2}M rows/s)",
        dataset.tracks.len(),
        dataset.interactions.users.len(),
        dataset.interactions.len(),
        s.rows,
        s.rows as f64 / secs / 1e6
    );
    println!(
        "skipped {} plays before --keep-from and {} plays of tracks without embeddings",
        s.before_keep_from, s.unknown_track
    );
    println!("backends: {}", args.data.layout().backends()?.join(", "));
    if let Some(url) = &args.database {
        let started = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime
            .block_on(async {
                let store = audiorec::store::Store::connect(url).await?;
                store.import(&dataset.tracks, &dataset.interactions).await?;
                store.close().await;
                anyhow::Ok(())
            })
            .context("loading the dataset into the database failed; nothing was written")?;
        println!(
            "loaded into the database in {:.1} s ({:.0} plays/s)",
            started.elapsed().as_secs_f64(),
            dataset.interactions.len() as f64 / started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
