use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let json = audiorec::api::openapi::document().to_pretty_json()?;
    match args.out {
        Some(path) => std::fs::write(&path, json + "\n")
            .with_context(|| format!("could not write {}", path.display())),
        None => {
            println!("{json}");
            Ok(())
        }
    }
}
