//! KNN at the paper's scale: HNSW against the exact scan (recall@50 and queries/s at
//! several `ef`), the time to evaluate every validation and test user, the index build,
//! import throughput and peak memory. Run with `cargo bench --bench knn`.
//!
//! Data: `$AUDIOREC_BENCH_DATA` (default `/tmp/paper`), generated as `paper` demo data
//! (seed 7) when missing. Every speed is printed next to a baseline measured in this run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use audiorec::dataset::demo::{self, Scale};
use audiorec::dataset::plays::read_plays;
use audiorec::dataset::split::HeldOut;
use audiorec::dataset::time::parse_timestamp;
use audiorec::dataset::{Dataset, ImportOptions, Layout, MissingTracks, Split, SplitConfig};
use audiorec::embeddings::{Embeddings, l2_normalize};
use audiorec::eval::{evaluate, split_cases};
use audiorec::index::{ExactIndex, HnswIndex, HnswParams, IndexKind, NeighbourIndex};
use audiorec::recommend::knn::KnnRecommender;

const K: usize = 50;
const BACKENDS: [&str; 2] = ["musicnn", "mert"];
const EFS: [usize; 4] = [50, 100, 200, 400];
/// Graph widths tried per backend (0 = the full width), where narrower than the rows.
const SEARCH_DIMS: [usize; 4] = [0, 128, 64, 32];
/// Queries timed per backend (held-out users spread evenly over validation and test).
const QUERIES: usize = 1000;
const SEED: u64 = 7;
/// The targets.
const TARGET_RECALL: f64 = 0.98;
const TARGET_SPEEDUP: f64 = 10.0;
const TARGET_EVAL_SECONDS: f64 = 10.0;
const TARGET_ROWS_PER_SECOND: f64 = 2e6;
const TARGET_PEAK_BYTES: f64 = 2.0 * (1u64 << 30) as f64;

fn main() -> anyhow::Result<()> {
    let dir =
        PathBuf::from(std::env::var("AUDIOREC_BENCH_DATA").unwrap_or_else(|_| "/tmp/paper".into()));
    let layout = Layout::new(&dir);
    if !layout.plays().is_file() {
        println!("generating paper demo data in {} ...", dir.display());
        demo::generate(&dir, Scale::Paper, SEED)?;
    }
    // The CLI's defaults: plays from 2019-02-20, plays of unknown tracks skipped.
    let options = ImportOptions {
        keep_from: parse_timestamp(b"2019-02-20").expect("valid date"),
        missing_tracks: MissingTracks::Skip,
    };
    println!(
        "data {} on {} threads",
        dir.display(),
        rayon::current_num_threads()
    );

    // Import: the plays parse alone, then the whole fresh import (catalog + every backend
    // checked + plays + cache write).
    let tracks = Dataset::read_catalog(&layout)?;
    let t = Instant::now();
    let (_, stats) = read_plays(
        &layout.plays(),
        &tracks,
        options.keep_from,
        options.missing_tracks,
        &|_| {},
    )?;
    let parse = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let dataset = Dataset::import(&layout, options, &|_| {})?;
    let import = t.elapsed().as_secs_f64();
    let parse_rate = stats.rows as f64 / parse;
    println!(
        "import: {} play rows; plays parse {parse:.2} s = {:.2}M rows/s; full fresh import {import:.2} s = {:.2}M rows/s  [target >= {:.0}M rows/s: {}]",
        stats.rows,
        parse_rate / 1e6,
        stats.rows as f64 / import / 1e6,
        TARGET_ROWS_PER_SECOND / 1e6,
        verdict(parse_rate >= TARGET_ROWS_PER_SECOND)
    );

    let t = Instant::now();
    let split = Split::new(
        &dataset.interactions,
        dataset.tracks.len(),
        SplitConfig::default(),
    );
    let c = split.counts;
    println!(
        "split {:.2} s; Table 2: train {} users / {} items / {} interactions; validation {} / {} / {}; test {} / {} / {}",
        t.elapsed().as_secs_f64(),
        c.train.users,
        c.train.items,
        c.train.interactions,
        c.validation.users,
        c.validation.items,
        c.validation.interactions,
        c.test.users,
        c.test.items,
        c.test.interactions
    );

    let held: Vec<&HeldOut> = split.validation.iter().chain(&split.test).collect();
    let step = (held.len() / QUERIES).max(1);
    let sample: Vec<&HeldOut> = held.iter().step_by(step).take(QUERIES).copied().collect();
    for backend in BACKENDS {
        let emb = dataset.load_embeddings(backend)?;
        bench_backend(&emb, &split, &sample)?;
    }

    // Evaluate every validation and test user with KNN over HNSW (musicnn), as the CLI does.
    let emb = std::sync::Arc::new(dataset.load_embeddings("musicnn")?);
    let rec = KnnRecommender::new(
        emb,
        &split.train_items,
        IndexKind::Hnsw,
        HnswParams::default(),
        Some(&dataset.layout.derived().join("index")),
    );
    let users = &dataset.interactions.users;
    let t = Instant::now();
    let mut hit = Vec::new();
    for part in [&split.validation, &split.test] {
        let cases = split_cases(&split, part, users);
        let (e, _) = evaluate(&rec, &cases, K)?;
        hit.push(e.aggregate.hit_rate.mean);
    }
    let eval = t.elapsed().as_secs_f64();
    println!(
        "evaluate musicnn KNN/HNSW (ef {}): {} users in {eval:.2} s on {} threads; HitRate@50 validation {:.4}, test {:.4}  [target < {TARGET_EVAL_SECONDS} s: {}]",
        HnswParams::default().ef_search,
        held.len(),
        rayon::current_num_threads(),
        hit[0],
        hit[1],
        verdict(eval < TARGET_EVAL_SECONDS)
    );
    println!(
        "bench process peak RSS (VmHWM): {}",
        vm_hwm_self().map_or("?".into(), gib)
    );
    drop(rec);
    drop(dataset);

    peak_memory_of_cli(&dir)?;
    Ok(())
}

/// Recall@50 and queries/s of HNSW at several `ef` against the exact scan, one query at a
/// time on one thread.
fn bench_backend(emb: &Embeddings, split: &Split, sample: &[&HeldOut]) -> anyhow::Result<()> {
    let ids = &split.train_items;
    let rows: Vec<f32> = ids
        .iter()
        .flat_map(|&t| emb.normalized_row(t).iter().copied())
        .collect();
    let queries: Vec<(Vec<f32>, HashSet<u32>)> = sample
        .iter()
        .map(|h| {
            let history = &split.train[h.user as usize];
            let mut v = emb.mean(history).expect("held-out users have train tracks");
            l2_normalize(&mut v);
            (v, history.iter().copied().collect())
        })
        .collect();

    let exact = ExactIndex::new(emb.dim, ids.clone(), rows.clone());
    let t = Instant::now();
    let truth: Vec<HashSet<u32>> = queries
        .iter()
        .map(|(q, ex)| exact.search(q, K, ex).into_iter().map(|n| n.id).collect())
        .collect();
    let exact_qps = queries.len() as f64 / t.elapsed().as_secs_f64();

    for search_dim in SEARCH_DIMS.into_iter().filter(|&d| d < emb.dim) {
        let params = HnswParams {
            search_dim,
            ..HnswParams::default()
        };
        let t = Instant::now();
        let hnsw = HnswIndex::build(emb.dim, ids, rows.clone(), params);
        let build = t.elapsed().as_secs_f64();
        println!(
            "{} ({}-d, {} items): HNSW m {} ef_construction {} searched at {}-d, built in {build:.1} s on {} threads; exact scan {exact_qps:.0} queries/s (1 thread, baseline)",
            emb.backend,
            emb.dim,
            ids.len(),
            params.m,
            params.ef_construction,
            hnsw.graph_dim(),
            rayon::current_num_threads()
        );
        for ef in EFS {
            hnsw.set_ef_search(ef);
            let t = Instant::now();
            let got: Vec<Vec<u32>> = queries
                .iter()
                .map(|(q, ex)| hnsw.search(q, K, ex).into_iter().map(|n| n.id).collect())
                .collect();
            let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
            let recall = got
                .iter()
                .zip(&truth)
                .map(|(g, t)| g.iter().filter(|id| t.contains(id)).count() as f64 / K as f64)
                .sum::<f64>()
                / queries.len() as f64;
            let speedup = qps / exact_qps;
            println!(
                "  ef {ef:>3}: recall@50 {recall:.4}  {qps:>7.0} queries/s = {speedup:>5.1}x exact  [target recall >= {TARGET_RECALL} at >= {TARGET_SPEEDUP}x: {}]",
                verdict(recall >= TARGET_RECALL && speedup >= TARGET_SPEEDUP)
            );
        }
    }
    Ok(())
}

/// Peak RSS of `audiorec evaluate` run as a child process after deleting the cache, so one
/// process does a fresh import, the split, the HNSW build and the evaluation.
fn peak_memory_of_cli(dir: &Path) -> anyhow::Result<()> {
    let derived = Layout::new(dir).derived();
    if derived.exists() {
        std::fs::remove_dir_all(&derived)?;
    }
    let bin = env!("CARGO_BIN_EXE_audiorec");
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.is_file() {
        let mut c = Command::new(time);
        c.args(["-f", "AUDIOREC_MAXRSS_KB %M", bin]);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(["evaluate", "--backend", "musicnn", "--data"])
        .arg(dir);
    let t = Instant::now();
    let out = cmd.output()?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "audiorec evaluate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kb = stderr
        .lines()
        .find_map(|l| l.strip_prefix("AUDIOREC_MAXRSS_KB "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    match kb {
        Some(kb) => println!(
            "CLI `audiorec evaluate --backend musicnn` (fresh import + split + HNSW build + evaluate) in a child process: {secs:.1} s, peak RSS {}  [target < 2 GiB: {}]",
            gib(kb * 1024.0),
            verdict(kb * 1024.0 < TARGET_PEAK_BYTES)
        ),
        None => println!("CLI run took {secs:.1} s; peak RSS unknown (no /usr/bin/time)"),
    }
    Ok(())
}

/// This process's peak resident set size in bytes, from /proc/self/status.
fn vm_hwm_self() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

fn gib(bytes: f64) -> String {
    format!("{:.2} GiB", bytes / (1u64 << 30) as f64)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
