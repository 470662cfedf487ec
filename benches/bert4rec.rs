//! BERT4Rec speed and memory: seconds per epoch and peak RSS on `small` demo data (max
//! length 300, batch 64) and on `paper` data with the 1024-d `mert` backend (a few
//! batches, extrapolated to an epoch), one-user latency with a 300-track history, and the
//! ratios of the training pass and of the validation pass against the faster of two plain
//! PyTorch versions (transformers' BertModel and torch's nn.TransformerEncoder,
//! benches/bert4rec_torch.py) run on this machine in the same benchmark. On the CPU, also
//! the encoder's linear products on faer's kernels against candle's matmul.
//!
//! `cargo bench --bench bert4rec`. Paper data: `cargo run --release -- demo-data --scale
//! paper --out /tmp/paper` (or set AUDIOREC_BENCH_PAPER); skipped when absent.
//! AUDIOREC_BENCH_PYTHON names a Python with torch and transformers (default python3);
//! AUDIOREC_DEVICE=cuda runs both on the GPU (a build with `--features cuda`).

/// The binary's process settings: benchmarks train, so they ask glibc what `train` does.
#[path = "../src/process.rs"]
#[allow(dead_code)]
mod process;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use audiorec::dataset::demo::{Scale, generate};
use audiorec::dataset::{Dataset, ImportOptions, Layout, Split, SplitConfig};
use audiorec::embeddings::Embeddings;
use audiorec::model::bert4rec::kernels;
use audiorec::model::bert4rec::{Bert4RecConfig, Encoder, FitConfig, ItemInit, ModelConfig};
use audiorec::model::checkpoint::{self, CheckpointPaths};
use audiorec::recommend::bert4rec::Bert4RecRecommender;
use audiorec::recommend::{Query, Recommender};
use audiorec::train::adam::Adam;
use audiorec::train::bert4rec::fit::{
    TrainData, epoch_batches, fresh_checkpoint, run_epoch, train_sequences, validate,
    validation_order,
};
use audiorec::train::fit::Quiet;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `AUDIOREC_DEVICE` (default cpu): `AUDIOREC_DEVICE=cuda` runs this on a GPU.
static DEVICE: std::sync::LazyLock<Device> =
    std::sync::LazyLock::new(|| audiorec::model::device_from_env().expect("AUDIOREC_DEVICE"));

const SEED: u64 = 42;
const MAX_LEN: usize = 300;
const BATCH: usize = 64;
const SMALL_BACKEND: &str = "musicnn";
/// Full-length batches timed for the PyTorch comparison on `small`.
const FIXED_BATCHES: usize = 4;
const PAPER_DEFAULT: &str = "/tmp/paper";
const PAPER_BACKEND: &str = "mert";
/// Full-length batches timed on `paper` data (after one warm-up), extrapolated to an epoch.
const PAPER_BATCHES: usize = 1;
const LATENCY_QUERIES: usize = 20;
/// Users ranked at once to compare the padded-batch path with parallel single queries.
const BATCH_USERS: usize = 256;

fn main() -> anyhow::Result<()> {
    process::keep_freed_memory();
    let small = tempfile::tempdir()?;
    generate(small.path(), Scale::Small, SEED)?;
    let (ds, split) = open(small.path())?;
    let emb = Arc::new(ds.load_embeddings(SMALL_BACKEND)?);
    println!(
        "== small ({SMALL_BACKEND}, {}-d, {} tracks), max length {MAX_LEN}, batch {BATCH}",
        emb.dim,
        emb.len()
    );
    let sequences = train_sequences(&split);
    let (enc, varmap) = build(&emb)?;
    let (epoch_s, batches, rss) = timed_batches(&enc, &varmap, &sequences, None)?;
    println!(
        "training pass: {epoch_s:.1} s ({batches} batches, {:.2} s/batch), peak RSS {rss:.0} MiB",
        epoch_s / batches as f64
    );
    compare_torch_epoch(epoch_s, emb.len(), emb.dim, &sequences);
    let cases: Vec<(&[u32], &[u32])> = split
        .validation
        .iter()
        .map(|h| (split.train[h.user as usize].as_slice(), h.tracks.as_slice()))
        .filter(|(history, _)| !history.is_empty())
        .collect();
    let start = Instant::now();
    validate(&enc, &cases, &split.train_items, 50, BATCH)?;
    let validation_s = start.elapsed().as_secs_f64();
    println!(
        "validation pass: {validation_s:.1} s ({} users, next-item loss and HitRate@50)",
        cases.len()
    );
    compare_torch_validation(validation_s, emb.len(), emb.dim, &cases);
    let fixed = fixed_shape(&enc, &varmap, emb.len(), FIXED_BATCHES)?;
    compare_torch(fixed, emb.len(), emb.dim, FIXED_BATCHES);
    latency(&enc, &varmap, &emb, &split, small.path())?;
    if DEVICE.is_cpu() {
        products()?;
    }

    let paper = std::env::var("AUDIOREC_BENCH_PAPER").unwrap_or_else(|_| PAPER_DEFAULT.into());
    if !Path::new(&paper).join("embeddings").is_dir() {
        println!("== paper: no data in {paper}; skipped");
        return Ok(());
    }
    let (ds, split) = open(Path::new(&paper))?;
    let emb = Arc::new(ds.load_embeddings(PAPER_BACKEND)?);
    println!(
        "== paper ({PAPER_BACKEND}, {}-d, {} tracks), max length {MAX_LEN}, batch {BATCH}",
        emb.dim,
        emb.len()
    );
    let (enc, varmap) = build(&emb)?;
    // Most paper users have 300+ train items, so full-length batches are the epoch's shape;
    // timing them gives an upper bound of the epoch (shorter histories pad less).
    let users = split.train.iter().filter(|h| !h.is_empty()).count();
    let fixed = fixed_shape(&enc, &varmap, emb.len(), PAPER_BATCHES)?;
    let per_epoch = users.div_ceil(BATCH);
    println!(
        "peak RSS {:.0} MiB; extrapolated epoch ({users} users, {per_epoch} batches): {:.0} s",
        peak_rss_mib(),
        fixed * per_epoch as f64
    );
    compare_torch(fixed, emb.len(), emb.dim, PAPER_BATCHES);
    latency(&enc, &varmap, &emb, &split, Path::new(&paper))?;
    Ok(())
}

fn open(dir: &Path) -> anyhow::Result<(Dataset, Split)> {
    let options = ImportOptions {
        keep_from: audiorec::dataset::time::parse_timestamp(b"2019-02-20").expect("date"),
        missing_tracks: Default::default(),
    };
    let ds = Dataset::open(&Layout::new(dir), options).context("import")?;
    let split = Split::new(&ds.interactions, ds.tracks.len(), SplitConfig::default());
    Ok((ds, split))
}

fn build(emb: &Embeddings) -> anyhow::Result<(Encoder, VarMap)> {
    let cfg = ModelConfig::paper(ItemInit::Content, emb.len(), emb.dim);
    let varmap = VarMap::new();
    let mut rng = StdRng::seed_from_u64(SEED);
    let enc = Encoder::new(&cfg, Some(emb.raw()), &varmap, &mut rng, &DEVICE)?;
    Ok((enc, varmap))
}

/// Trains over `sequences` (all, or `limit` batches); returns seconds, batches, peak MiB.
fn timed_batches(
    enc: &Encoder,
    varmap: &VarMap,
    sequences: &[&[u32]],
    limit: Option<usize>,
) -> anyhow::Result<(f64, usize, f64)> {
    reset_peak_rss();
    let fc = FitConfig {
        batch_size: BATCH,
        seed: SEED,
        max_batches: limit,
        ..FitConfig::default()
    };
    let mut named: Vec<_> = varmap.data().lock().unwrap().clone().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut opt = Adam::new(named, fc.lr)?;
    let mut rng = StdRng::seed_from_u64(SEED);
    let batches = limit
        .unwrap_or(sequences.len().div_ceil(BATCH))
        .min(sequences.len().div_ceil(BATCH));
    let start = Instant::now();
    run_epoch(enc, &mut opt, sequences, &fc, &mut rng, &Quiet)?;
    Ok((start.elapsed().as_secs_f64(), batches, peak_rss_mib()))
}

/// Seconds per batch of `BATCH` random sequences of exactly `MAX_LEN` tracks (the shape
/// the PyTorch script uses), after one warm-up batch.
fn fixed_shape(
    enc: &Encoder,
    varmap: &VarMap,
    tracks: usize,
    batches: usize,
) -> anyhow::Result<f64> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let seqs: Vec<Vec<u32>> = (0..BATCH * (batches + 1))
        .map(|_| {
            (0..MAX_LEN)
                .map(|_| rng.random_range(0..tracks as u32))
                .collect()
        })
        .collect();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    timed_batches(enc, varmap, &refs[..BATCH], Some(1))?;
    let (s, n, _) = timed_batches(enc, varmap, &refs[BATCH..], Some(batches))?;
    let per = s / n as f64;
    println!("fixed shape {BATCH} x {MAX_LEN}: candle {per:.2} s/batch");
    Ok(per)
}

/// Runs benches/bert4rec_torch.py with the shared shape arguments plus `extra`; its JSON
/// line, or `None` (printed) when no Python with torch and transformers is there.
fn torch(tracks: usize, dim: usize, extra: &[&str]) -> Option<serde_json::Value> {
    let python = std::env::var("AUDIOREC_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let device = std::env::var("AUDIOREC_DEVICE").unwrap_or_else(|_| "cpu".into());
    // Relative: `cargo bench` runs in the package root, and so must a carried binary.
    let out = std::process::Command::new(&python)
        .arg("benches/bert4rec_torch.py")
        .args(["--device", &device])
        .args(["--tracks", &tracks.to_string(), "--dim", &dim.to_string()])
        .args(["--batch", &BATCH.to_string(), "--len", &MAX_LEN.to_string()])
        .args(["--seed", &SEED.to_string()])
        .args(extra)
        .output();
    let parsed = out
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok());
    if parsed.is_none() {
        println!("PyTorch baseline unavailable ({python} with torch and transformers needed)");
    }
    parsed
}

fn print_torch(v: &serde_json::Value, what: &str, candle_s: f64) {
    let torch_s = v["seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "PyTorch {} {} on {} ({} threads), {what}: {torch_s:.2} s, peak RSS {:.0} MiB; candle/PyTorch time ratio {:.2}",
        v["torch"],
        v["arch"],
        v["device"],
        v["threads"],
        v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
        candle_s / torch_s
    );
}

/// The PyTorch versions the bench runs beside candle.
const TORCH_ARCHS: [&str; 2] = ["bert", "encoder"];

/// Runs every PyTorch version with `extra`, prints each, and the ratio against the
/// fastest (the bar candle must clear).
fn compare_torch_all(candle_s: f64, tracks: usize, dim: usize, extra: &[&str], what: &str) {
    let mut fastest = f64::INFINITY;
    for arch in TORCH_ARCHS {
        let mut args = vec!["--arch", arch];
        args.extend_from_slice(extra);
        match torch(tracks, dim, &args) {
            Some(v) => {
                print_torch(&v, what, candle_s);
                fastest = fastest.min(v["seconds"].as_f64().unwrap_or(f64::NAN));
            }
            None => return,
        }
    }
    println!(
        "{what}: candle {candle_s:.2} s, fastest PyTorch {fastest:.2} s, ratio {:.2}",
        candle_s / fastest
    );
}

/// The same fixed-shape step in PyTorch.
fn compare_torch(candle_s: f64, tracks: usize, dim: usize, batches: usize) {
    let n = batches.to_string();
    compare_torch_all(
        candle_s,
        tracks,
        dim,
        &["--batches", &n],
        "one 64 x 300 step",
    );
}

/// Writes `lines` to a temporary file for the PyTorch script.
fn batch_file(lines: &[String]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), lines.join("\n")).expect("write batches");
    file
}

fn ids(items: &[u32]) -> String {
    let ids: Vec<String> = items.iter().map(u32::to_string).collect();
    ids.join(" ")
}

/// The epoch timed above, batch for batch, in PyTorch: padded like ours (to each batch's
/// longest sequence) and padded to the maximum length, as a straightforward
/// implementation (and the authors' code) does.
fn compare_torch_epoch(candle_s: f64, tracks: usize, dim: usize, sequences: &[&[u32]]) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let lines: Vec<String> = epoch_batches(sequences, BATCH, MAX_LEN, &mut rng)
        .iter()
        .map(|rows| {
            let seqs: Vec<String> = rows
                .iter()
                .map(|&i| ids(&sequences[i][sequences[i].len().saturating_sub(MAX_LEN)..]))
                .collect();
            seqs.join(";")
        })
        .collect();
    let file = batch_file(&lines);
    let path = file.path().to_string_lossy().to_string();
    for (pad, what) in [
        ("batch", "training pass, padded per batch"),
        ("max", "training pass, padded to 300"),
    ] {
        compare_torch_all(
            candle_s,
            tracks,
            dim,
            &["--epoch", &path, "--pad", pad],
            what,
        );
    }
}

/// The validation pass timed above in PyTorch: the same users in the same batches (in
/// [`validation_order`]), each
/// its last `MAX_LEN - 1` train items plus [MASK] (PyTorch's mask id is `tracks`).
fn compare_torch_validation(candle_s: f64, tracks: usize, dim: usize, cases: &[(&[u32], &[u32])]) {
    let order = validation_order(cases, MAX_LEN);
    let lines: Vec<String> = order
        .chunks(BATCH)
        .map(|chunk| {
            let users: Vec<String> = (chunk.iter().map(|&i| &cases[i]))
                .map(|(history, held)| {
                    let recent = &history[history.len().saturating_sub(MAX_LEN - 1)..];
                    format!("{} {tracks}|{}", ids(recent), ids(held))
                })
                .collect();
            users.join(";")
        })
        .collect();
    let file = batch_file(&lines);
    let path = file.path().to_string_lossy().to_string();
    compare_torch_all(
        candle_s,
        tracks,
        dim,
        &["--validate", &path],
        "validation pass",
    );
}

/// Median time of one recommendation for a user whose history is `MAX_LEN` tracks.
fn latency(
    enc: &Encoder,
    varmap: &VarMap,
    emb: &Arc<Embeddings>,
    split: &Split,
    dir: &Path,
) -> anyhow::Result<()> {
    let models = tempfile::tempdir_in(dir)?;
    let paths = CheckpointPaths::new(models.path(), "bert4rec-bench");
    varmap.save(paths.weights())?;
    let config = Bert4RecConfig {
        model: enc.config().clone(),
        fit: FitConfig::default(),
    };
    let data = TrainData {
        embeddings: emb,
        split,
    };
    checkpoint::write(&paths, &fresh_checkpoint(&config, data, &DEVICE))?;
    let rec = Bert4RecRecommender::load(
        &models.path().join("bert4rec-bench"),
        emb.clone(),
        &split.train_items,
        &DEVICE,
    )?;
    let mut rng = StdRng::seed_from_u64(SEED);
    let history: Vec<u32> = (0..MAX_LEN)
        .map(|_| rng.random_range(0..emb.len() as u32))
        .collect();
    let q = Query {
        user: None,
        history: &history,
        k: 50,
    };
    rec.recommend(&q)?;
    let mut times: Vec<f64> = (0..LATENCY_QUERIES)
        .map(|_| {
            let t = Instant::now();
            rec.recommend(&q).expect("recommends");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "latency, one user with a {MAX_LEN}-track history: median {:.1} ms (min {:.1}, max {:.1})",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );

    let users: Vec<&Vec<u32>> = split
        .train
        .iter()
        .filter(|h| !h.is_empty())
        .take(BATCH_USERS)
        .collect();
    let queries: Vec<Query> = users
        .iter()
        .map(|h| Query {
            user: None,
            history: h,
            k: 50,
        })
        .collect();
    let t = Instant::now();
    let batched = rec.recommend_padded(&queries);
    let batch_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let single: Vec<_> = {
        use rayon::prelude::*;
        queries.par_iter().map(|q| rec.recommend(q)).collect()
    };
    let single_s = t.elapsed().as_secs_f64();
    assert_eq!(batched.len(), single.len());
    println!(
        "{} users: padded batches {batch_s:.2} s, parallel single queries {single_s:.2} s (ratio {:.2})",
        queries.len(),
        batch_s / single_s
    );
    Ok(())
}

/// The encoder's linear layers (`x · wᵀ + b` over 64 × 300 rows, at the `small` shapes) as
/// the CPU encoder runs them, on faer's kernels, against candle's matmul (the `gemm`
/// crate's kernels) plus its bias add, in this process.
fn products() -> anyhow::Result<()> {
    let rows = BATCH * MAX_LEN;
    let best_of = |f: &dyn Fn() -> candle_core::Result<Tensor>| -> anyhow::Result<f64> {
        f()?;
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            f()?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(best)
    };
    // The stacked query/key/value projection, the output projection, and the feed-forward
    // layer's two products (intermediate size 256).
    for (input, output) in [(200, 600), (200, 200), (200, 256), (256, 200)] {
        let x = Tensor::randn(0f32, 1.0, (rows, input), &Device::Cpu)?;
        let w = Tensor::randn(0f32, 1.0, (output, input), &Device::Cpu)?;
        let b = Tensor::zeros(output, DType::F32, &Device::Cpu)?;
        let faer = best_of(&|| kernels::Linear::apply(&x, &w, &b))?;
        let candle = best_of(&|| x.matmul(&w.t()?)?.broadcast_add(&b))?;
        let gflop = 2.0 * (rows * input * output) as f64 / 1e9;
        println!(
            "linear {rows} x {input} -> {output}: faer {:.0} GFLOP/s, candle matmul {:.0} GFLOP/s ({:.1}x)",
            gflop / faer,
            gflop / candle,
            candle / faer
        );
    }
    Ok(())
}

/// Resets the peak resident set size (VmHWM) of this process.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
