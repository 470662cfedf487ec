//! `audiorec setup musicnn`: fetch the pretrained weights the audio backends need.

use std::path::PathBuf;

use audiorec::model::musicnn::{self, setup};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Download the musicnn 0.1.0 wheel with pip (`pip download --no-deps musicnn==0.1.0`)
    /// and unpack its MSD_musicnn checkpoint (ISC licence).
    Musicnn {
        /// Folder to unpack the checkpoint into.
        #[arg(long, env = musicnn::DIR_ENV, default_value = musicnn::DEFAULT_DIR)]
        dir: PathBuf,
        /// The Python whose pip downloads the wheel.
        #[arg(long, default_value = "python3")]
        python: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Musicnn { dir, python } => {
            let files = setup::fetch_weights(&dir, &python)?;
            println!(
                "unpacked {files} files of MSD_musicnn into {}",
                dir.display()
            );
            Ok(())
        }
    }
}
