use std::time::Instant;

use anyhow::Context;
use audiorec::dataset::Dataset;
use indicatif::{ProgressBar, ProgressStyle};

use super::DataArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    let dataset = Dataset::import(&args.data.layout(), args.data.options(), &|rows| {
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
    Ok(())
}
