//! `audiorec embed`: audio files to backend rows (MusiCNN or MFCC), in parallel, with a
//! progress bar; an unreadable file is reported and skipped while the rest go on.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use audiorec::audio::{self, mel::MelSpectrogram, mfcc};
use audiorec::embeddings::npy::write_f32_matrix;
use audiorec::model::content;
use audiorec::model::musicnn::{self, Musicnn};
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Backend {
    /// MSD_musicnn's 200-d penultimate features, averaged over 3-second patches.
    Musicnn,
    /// 13 MFCCs: mean and upper-triangle covariance, 104-d (Music4All-Onion's MFCC).
    Mfcc,
}

/// Where the MusiCNN weights are.
#[derive(Debug, clap::Args)]
pub struct MusicnnDir {
    /// Folder of the unpacked MSD_musicnn checkpoint (`audiorec setup musicnn` fills it).
    #[arg(long, env = musicnn::DIR_ENV, default_value = musicnn::DEFAULT_DIR)]
    pub musicnn_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which content backend computes the rows.
    #[arg(long, value_enum)]
    backend: Backend,
    /// Audio files (wav, flac, mp3, ogg/vorbis); each file's stem is its track id.
    #[arg(required = true)]
    audio: Vec<PathBuf>,
    /// Write the rows as float32 `.npy` `[files read, dim]` instead of a TSV on stdout.
    #[arg(long, requires = "ids")]
    out: Option<PathBuf>,
    /// With `--out`: the track ids of the rows, `idx,trackid` (trackid_sorted.csv layout).
    #[arg(long, requires = "out")]
    ids: Option<PathBuf>,
    /// Files embedded at the same time (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    #[command(flatten)]
    weights: MusicnnDir,
}

/// One backend, loaded once and shared by the worker threads.
enum Embedder {
    Musicnn(Box<Musicnn>),
    Mfcc(MelSpectrogram),
}

impl Embedder {
    fn embed(&self, path: &Path) -> anyhow::Result<(Vec<f32>, f64)> {
        let decoded = audio::decode::decode_file(path)?;
        let seconds = decoded.duration_s();
        let row = match self {
            Self::Musicnn(model) => content::musicnn_row(model, &decoded)?.penultimate,
            Self::Mfcc(mel) => content::mfcc_row(mel, &decoded)?,
        };
        Ok((row, seconds))
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let embedder = match args.backend {
        Backend::Musicnn => Embedder::Musicnn(Box::new(Musicnn::load(
            &args.weights.musicnn_dir,
            &Device::Cpu,
        )?)),
        Backend::Mfcc => Embedder::Mfcc(MelSpectrogram::new(mfcc::SETTINGS)),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()
        .context("could not start the worker threads")?;
    let bar = ProgressBar::new(args.audio.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed_precise} eta {eta}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let results: Vec<_> = pool.install(|| {
        args.audio
            .par_iter()
            .map(|path| {
                let r = embedder.embed(path);
                if let Err(e) = &r {
                    bar.suspend(|| eprintln!("skipped {}: {e:#}", path.display()));
                }
                bar.inc(1);
                r
            })
            .collect()
    });
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();

    let mut ids = Vec::new();
    let mut rows = Vec::new();
    let mut audio_s = 0.0;
    for (path, r) in args.audio.iter().zip(results) {
        if let Ok((row, seconds)) = r {
            ids.push(track_id(path));
            rows.push(row);
            audio_s += seconds;
        }
    }
    eprintln!(
        "embedded {} of {} files ({audio_s:.1} s of audio) in {elapsed:.2} s: {:.1} s of audio per second",
        rows.len(),
        args.audio.len(),
        audio_s / elapsed.max(1e-9)
    );
    if rows.is_empty() {
        bail!("no file could be embedded");
    }
    match (&args.out, &args.ids) {
        (Some(out), Some(ids_path)) => write_npy_and_ids(out, ids_path, &ids, &rows),
        _ => write_tsv(&ids, &rows),
    }
}

fn track_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn write_npy_and_ids(
    out: &Path,
    ids_path: &Path,
    ids: &[String],
    rows: &[Vec<f32>],
) -> anyhow::Result<()> {
    let dim = rows[0].len();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    write_f32_matrix(out, &flat, rows.len(), dim)
        .with_context(|| format!("could not write {}", out.display()))?;
    let mut w = BufWriter::new(
        std::fs::File::create(ids_path)
            .with_context(|| format!("could not create {}", ids_path.display()))?,
    );
    writeln!(w, "idx,trackid")?;
    for (i, id) in ids.iter().enumerate() {
        writeln!(w, "{i},{id}")?;
    }
    w.flush()
        .with_context(|| format!("could not write {}", ids_path.display()))?;
    eprintln!(
        "wrote {} rows of {dim} to {} and their ids to {}",
        rows.len(),
        out.display(),
        ids_path.display()
    );
    Ok(())
}

/// Music4All-Onion's TSV layout: an `id` column, then one column per dimension.
fn write_tsv(ids: &[String], rows: &[Vec<f32>]) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    write!(w, "id")?;
    for d in 0..rows[0].len() {
        write!(w, "\t{d}")?;
    }
    writeln!(w)?;
    for (id, row) in ids.iter().zip(rows) {
        write!(w, "{id}")?;
        for v in row {
            write!(w, "\t{v}")?;
        }
        writeln!(w)?;
    }
    w.flush()?;
    Ok(())
}
