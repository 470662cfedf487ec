//! `audiorec tags`: the MSD tags MusiCNN hears in a file, most probable first.

use std::path::PathBuf;

use audiorec::audio;
use audiorec::model::musicnn::Musicnn;
use candle_core::Device;

use super::embed::MusicnnDir;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An audio file (wav, flac, mp3, ogg/vorbis).
    audio: PathBuf,
    /// How many tags to print.
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[command(flatten)]
    weights: MusicnnDir,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = Musicnn::load(&args.weights.musicnn_dir, &Device::Cpu)?;
    let samples = audio::decode_file(&args.audio)?;
    let embedding = model.embed(&samples)?;
    println!(
        "{}: {} patches of 3 s",
        args.audio.display(),
        embedding.patches
    );
    for (tag, p) in embedding.top_tags(args.top) {
        println!("{p:.3}  {tag}");
    }
    Ok(())
}
