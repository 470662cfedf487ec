//! Shallow Net training speed and quality.
//!
//! 1. `small` demo data, every backend: seconds per epoch and validation HitRate@50 of
//!    the best epoch (exact scan), against KNN's HitRate@50 on the same users.
//! 2. `small`, musicnn: seconds per batch of the CPU score path (fused pair-dot op)
//!    against the gather path (`index_select` + batched matmul), same batches.
//! 3. `paper` demo data, mert (1,024-d): seconds per batch over `PAPER_BATCHES` batches,
//!    extrapolated to an epoch (a full epoch is ~500 batches).
//!
//! Compare with `python3 benches/shallow_torch.py DIR BACKEND [--batches N]`, the same
//! model in PyTorch, on the same machine. Run: `cargo bench --bench shallow`.

/// The binary's process settings: benchmarks train, so they ask glibc what `train` does.
#[path = "../src/process.rs"]
#[allow(dead_code)]
mod process;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use audiorec::dataset::demo::{Scale, generate};
use audiorec::dataset::time::parse_timestamp;
use audiorec::dataset::{Dataset, ImportOptions, Layout, MissingTracks, Split, SplitConfig};
use audiorec::eval::{evaluate, split_cases};
use audiorec::index::{HnswParams, IndexKind};
use audiorec::model::checkpoint::CheckpointPaths;
use audiorec::model::shallow::net::{Table, matrix};
use audiorec::model::shallow::{NegativeSampling, ShallowNet, ShallowParams};
use audiorec::recommend::Recommender;
use audiorec::recommend::knn::KnnRecommender;
use audiorec::recommend::shallow::ShallowRecommender;
use audiorec::train::adam::Adam;
use audiorec::train::fit::Quiet;
use audiorec::train::shallow::loss::{batch_scores_with, hinge};
use audiorec::train::shallow::sampling::{NegativeSampler, Pairs};
use audiorec::train::shallow::{TrainData, fit};
use candle_core::Device;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// `AUDIOREC_DEVICE` (default cpu): `AUDIOREC_DEVICE=cuda` runs this on a GPU.
static DEVICE: std::sync::LazyLock<Device> =
    std::sync::LazyLock::new(|| audiorec::model::device_from_env().expect("AUDIOREC_DEVICE"));

const SMALL_DIR: &str = "/tmp/shallow-bench-small";
const PAPER_DIR: &str = "/tmp/paper";
const SEED: u64 = 42;
/// Epochs per backend on `small` (env SHALLOW_BENCH_EPOCHS overrides).
const EPOCHS: usize = 10;
const BATCH: usize = 10_000;
/// Batches timed per score path, and on paper data (env SHALLOW_BENCH_PAPER_BATCHES).
const PATH_BATCHES: usize = 5;
const PAPER_BATCHES: usize = 10;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(dir: &str, scale: Scale) -> (Dataset, Split) {
    if !Path::new(dir).join("trackid_sorted.csv").is_file() {
        eprintln!("generating {scale:?} demo data in {dir}");
        generate(Path::new(dir), scale, SEED).expect("demo data");
    }
    let options = ImportOptions {
        keep_from: parse_timestamp(b"2019-02-20").unwrap(),
        missing_tracks: MissingTracks::Skip,
    };
    let dataset = Dataset::open(&Layout::new(dir), options).expect("dataset");
    let split = Split::new(
        &dataset.interactions,
        dataset.tracks.len(),
        SplitConfig::default(),
    );
    (dataset, split)
}

fn hit_rate(rec: &dyn Recommender, dataset: &Dataset, split: &Split) -> f64 {
    let users = &dataset.interactions.users;
    let cases = split_cases(split, &split.validation, users);
    evaluate(rec, &cases, 50).unwrap().0.aggregate.hit_rate.mean
}

/// Seconds per batch of `batches` training steps with the content-initialised model.
fn seconds_per_batch(
    dataset: &Dataset,
    split: &Split,
    backend: &str,
    batches: usize,
    fused: bool,
) -> f64 {
    let e = dataset.load_embeddings(backend).unwrap();
    let dev = DEVICE.clone();
    let train_users: Vec<u32> = (0..split.train.len() as u32)
        .filter(|&u| !split.train[u as usize].is_empty())
        .collect();
    let mut users = Vec::with_capacity(train_users.len() * e.dim);
    for &u in &train_users {
        users.extend(e.mean(&split.train[u as usize]).unwrap());
    }
    let items = Table::new(matrix(e.raw(), e.dim, &dev).unwrap(), false).unwrap();
    let users = Table::new(matrix(&users, e.dim, &dev).unwrap(), true).unwrap();
    let net = ShallowNet::new(items, users, e.dim, SEED, &dev).unwrap();
    let mut opt = Adam::new(net.named_vars(), 1e-3).unwrap();
    let mut pairs: Vec<(u32, u32)> = (train_users.iter().enumerate())
        .flat_map(|(r, &u)| split.train[u as usize].iter().map(move |&t| (r as u32, t)))
        .collect();
    let mut rng = StdRng::seed_from_u64(SEED);
    pairs.shuffle(&mut rng);
    let all = Pairs {
        users: pairs.iter().map(|p| p.0).collect(),
        items: pairs.iter().map(|p| p.1).collect(),
    };
    let sampler = NegativeSampler::new(
        &all,
        train_users.len() as u32,
        e.len(),
        NegativeSampling::NonInteracting,
    );
    let start = Instant::now();
    for chunk in pairs.chunks(BATCH).take(batches) {
        let (u, i): (Vec<u32>, Vec<u32>) = chunk.iter().copied().unzip();
        let batch = Pairs {
            users: u.clone(),
            items: i.clone(),
        };
        let negs = sampler.draw(&batch, 20, &mut rng);
        let (sp, sn) = batch_scores_with(&net, &u, &i, &negs, 20, fused).unwrap();
        opt.backward_step(&hinge(&sp, &sn, 0.2).unwrap()).unwrap();
    }
    let _ = rng.random::<u8>();
    start.elapsed().as_secs_f64() / batches.min(pairs.len().div_ceil(BATCH)) as f64
}

fn main() {
    process::keep_freed_memory();
    let epochs = env_or("SHALLOW_BENCH_EPOCHS", EPOCHS);
    let (dataset, split) = open(SMALL_DIR, Scale::Small);
    let n_batches = split.counts.train.interactions.div_ceil(BATCH);
    println!(
        "small: {} train pairs, {} users, batch {BATCH} ({n_batches} batches/epoch), {epochs} epochs",
        split.counts.train.interactions, split.counts.train.users
    );
    let models = tempfile::tempdir().unwrap();
    println!(
        "{:<10}{:>6}{:>12}{:>14}{:>14}{:>12}",
        "backend", "dim", "s/epoch", "HR@50 shallow", "HR@50 knn", "best epoch"
    );
    for backend in ["musicnn", "mert", "mfcc", "noise"] {
        let embeddings = Arc::new(dataset.load_embeddings(backend).unwrap());
        let params = ShallowParams {
            max_epochs: epochs,
            batch_size: BATCH,
            ..ShallowParams::new(backend)
        };
        let paths = CheckpointPaths::new(models.path(), backend);
        let data = TrainData {
            embeddings: &embeddings,
            split: &split,
            users: &dataset.interactions.users,
        };
        let out = fit(&params, data, &paths, false, &DEVICE, &Quiet).unwrap();
        let curve = &out.checkpoint.curve;
        let s_epoch = curve.iter().map(|r| r.seconds).sum::<f64>() / curve.len() as f64;
        let (kind, hnsw) = (IndexKind::Exact, HnswParams::default());
        let shallow = ShallowRecommender::load(
            &paths.weights(),
            embeddings.clone(),
            &split.train_items,
            kind,
            hnsw,
            &DEVICE,
        )
        .unwrap();
        let knn = KnnRecommender::new(embeddings.clone(), &split.train_items, kind, hnsw, None);
        println!(
            "{backend:<10}{:>6}{s_epoch:>12.2}{:>14.4}{:>14.4}{:>12}",
            embeddings.dim,
            hit_rate(&shallow, &dataset, &split),
            hit_rate(&knn, &dataset, &split),
            out.checkpoint.best_epoch.unwrap_or(0)
        );
    }

    // The fused pair-dot op is a CPU kernel; CUDA trains through the gather path.
    let cpu = DEVICE.is_cpu();
    if cpu {
        let fused = seconds_per_batch(&dataset, &split, "musicnn", PATH_BATCHES, true);
        let gather = seconds_per_batch(&dataset, &split, "musicnn", PATH_BATCHES, false);
        println!(
            "small/musicnn score path: fused {fused:.3} s/batch, gather {gather:.3} s/batch, ratio {:.2}x",
            gather / fused
        );
    }

    let batches = env_or("SHALLOW_BENCH_PAPER_BATCHES", PAPER_BATCHES);
    if batches > 0 {
        let (dataset, split) = open(PAPER_DIR, Scale::Paper);
        let n_batches = split.counts.train.interactions.div_ceil(BATCH);
        let s = seconds_per_batch(&dataset, &split, "mert", batches, cpu);
        println!(
            "paper/mert: {} train pairs, {} users, 1024-d: {s:.3} s/batch over {batches} batches -> {:.0} s/epoch ({n_batches} batches)",
            split.counts.train.interactions,
            split.counts.train.users,
            s * n_batches as f64
        );
    }
}
