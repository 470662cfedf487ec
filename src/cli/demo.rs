use std::path::PathBuf;

use anyhow::Context;
use audiorec::dataset::demo::{self, Scale};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How big: tiny (tests), small (model tests), paper (shaped like Music4All-Onion).
    #[arg(long, value_enum, default_value_t = Scale::Small)]
    scale: Scale,
    /// Folder to write the dataset into (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let summary = demo::generate(&args.out, args.scale, args.seed)
        .with_context(|| format!("could not write demo data to {}", args.out.display()))?;
    println!(
        "wrote {} users, {} tracks, {} plays and backends {} to {}",
        summary.users,
        summary.tracks,
        summary.plays,
        demo::BACKENDS
            .map(|b| format!("{} ({}-d)", b.name, b.dim))
            .join(", "),
        args.out.display()
    );
    Ok(())
}
