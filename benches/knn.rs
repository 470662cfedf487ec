//! KNN at the paper's scale: our HNSW graph and the `hnsw_rs` crate's against the exact
//! scan (recall@50 and queries/s at several `ef`, build time, memory), the batched exact scan against faiss's flat index over every held-out
//! user, a duplicate-heavy catalogue, the time to evaluate every validation and test
//! user, the index build, import throughput and peak memory. Run with
//! `cargo bench --bench knn`.
//!
//! Data: `$AUDIOREC_BENCH_DATA` (default `/tmp/paper`), generated as `paper` demo data
//! (seed 7) when missing. Every speed is printed next to a baseline measured in this run.
//! The faiss peer runs when `$AUDIOREC_FAISS_PYTHON` (default `python3`) can import
//! faiss (`pip install faiss-cpu numpy`); `benches/knn_faiss.py` is the script.
//! `$AUDIOREC_BENCH_BACKENDS` (comma-separated) narrows the graph comparison's backends.
//!
//! Over 400 lines on purpose: every KNN figure of the README comes from this one run, so
//! that they share one import and split and each is read against a baseline of that run.

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
use audiorec::index::{
    self, ExactIndex, HnswIndex, HnswParams, HnswRsIndex, IndexKind, NeighbourIndex,
};
use audiorec::io::le;
use audiorec::recommend::knn::KnnRecommender;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const K: usize = 50;
/// Every demo backend gets the graph comparison (`$AUDIOREC_BENCH_BACKENDS`, comma-separated,
/// narrows it); the paper's two the batched exact scan and the CLI's memory too.
const BACKENDS: &str = "musicnn,mert,mfcc,noise";
const BATCHED: [&str; 2] = ["musicnn", "mert"];
const EFS: [usize; 3] = [100, 200, 400];
/// Queries timed per backend (held-out users spread evenly over validation and test).
const QUERIES: usize = 1000;
/// Paired rounds of the exact scan and a graph over the queries (see `bench_backend`).
const ROUNDS: usize = 5;
const SEED: u64 = 7;
/// The targets.
const TARGET_RECALL: f64 = 0.98;
const TARGET_SPEEDUP: f64 = 10.0;
const TARGET_EVAL_SECONDS: f64 = 10.0;
const TARGET_ROWS_PER_SECOND: f64 = 2e6;
const TARGET_PEAK_BYTES: f64 = 2.0 * (1u64 << 30) as f64;
/// The exact evaluation's memory target (issue 13): under 1 GB.
const TARGET_EXACT_PEAK_BYTES: f64 = 1e9;

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
    let backends = std::env::var("AUDIOREC_BENCH_BACKENDS").unwrap_or_else(|_| BACKENDS.into());
    for backend in backends.split(',') {
        let emb = dataset.load_embeddings(backend)?;
        bench_backend(&emb, &split, &sample)?;
        if BATCHED.contains(&backend) {
            bench_batched_exact(&emb, &split, &held)?;
        }
    }
    bench_duplicates();

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

/// A graph under test: both kinds take a new `ef` between runs.
trait Graph: NeighbourIndex {
    fn set_ef(&self, ef: usize);
    /// What the bench prints it as.
    fn label(&self) -> String;
}

impl Graph for HnswIndex {
    fn set_ef(&self, ef: usize) {
        self.set_ef_search(ef)
    }

    fn label(&self) -> String {
        format!("audiorec HNSW (searched at {}-d)", self.graph_dim())
    }
}

impl Graph for HnswRsIndex {
    fn set_ef(&self, ef: usize) {
        self.set_ef_search(ef)
    }

    fn label(&self) -> String {
        "hnsw_rs 0.3.5 (full width)".into()
    }
}

/// A built graph, its name, build seconds and the resident memory its build added.
struct Built {
    name: String,
    graph: Box<dyn Graph>,
    seconds: f64,
    bytes: f64,
}

/// Our graph (the default) and hnsw_rs's, at the same parameters, built one after the
/// other on all threads.
fn build_graphs(dim: usize, ids: &[u32], rows: &[f32], params: HnswParams) -> Vec<Built> {
    let timed = |build: &dyn Fn() -> Box<dyn Graph>| {
        let before = vm_rss_self().unwrap_or(0.0);
        let t = Instant::now();
        let graph = build();
        let seconds = t.elapsed().as_secs_f64();
        Built {
            name: graph.label(),
            graph,
            seconds,
            bytes: vm_rss_self().unwrap_or(0.0) - before,
        }
    };
    vec![
        timed(&|| Box::new(HnswIndex::build(dim, ids, rows.to_vec(), params))),
        timed(&|| Box::new(HnswRsIndex::build(dim, ids, rows, params))),
    ]
}

/// Recall@50 and queries/s of both graphs at several `ef` against the exact scan, one
/// query at a time on one thread, timed in paired rounds.
fn bench_backend(emb: &Embeddings, split: &Split, sample: &[&HeldOut]) -> anyhow::Result<()> {
    let ids = &split.train_items;
    let rows = emb.normalized_rows(ids);
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
    let params = HnswParams::default();
    println!(
        "{} ({}-d, {} items), m {} ef_construction {}: exact scan {exact_qps:.0} queries/s (1 thread, baseline); auto picks {:?}",
        emb.backend,
        emb.dim,
        ids.len(),
        params.m,
        params.ef_construction,
        index::choose(ids.len(), emb.dim, params, || index::strided_sample(
            &rows, emb.dim
        ))
        .0
    );
    for built in build_graphs(emb.dim, ids, &rows, params) {
        println!(
            "  {}: built in {:.1} s, +{} resident",
            built.name,
            built.seconds,
            gib(built.bytes)
        );
        for ef in EFS {
            built.graph.set_ef(ef);
            // Paired rounds: the scan and the graph answer the same fifth of the queries
            // one right after the other, and the speed-up is the median of the rounds'
            // ratios, so that a shared host's load, which drifts over seconds, weighs on
            // both sides alike.
            let mut got: Vec<Vec<u32>> = Vec::with_capacity(queries.len());
            let mut rounds: Vec<(f64, f64)> = Vec::with_capacity(ROUNDS);
            for part in queries.chunks(queries.len().div_ceil(ROUNDS)) {
                let t = Instant::now();
                for (q, ex) in part {
                    std::hint::black_box(exact.search(q, K, ex));
                }
                let scan_s = t.elapsed().as_secs_f64();
                let t = Instant::now();
                got.extend(part.iter().map(|(q, ex)| {
                    let found = built.graph.search(q, K, ex);
                    found.into_iter().map(|n| n.id).collect::<Vec<u32>>()
                }));
                let graph_s = t.elapsed().as_secs_f64();
                rounds.push((scan_s / graph_s, part.len() as f64 / graph_s));
            }
            rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (speedup, qps) = rounds[rounds.len() / 2];
            let recall = got
                .iter()
                .zip(&truth)
                .map(|(g, t)| g.iter().filter(|id| t.contains(id)).count() as f64 / K as f64)
                .sum::<f64>()
                / queries.len() as f64;
            println!(
                "    ef {ef:>3}: recall@50 {recall:.4}  {qps:>7.0} queries/s = {speedup:>5.1}x exact (median of {ROUNDS} paired rounds; all {:.1}-{:.1}x)  [target recall >= {TARGET_RECALL} at >= {TARGET_SPEEDUP}x: {}]",
                rounds[0].0,
                rounds[rounds.len() - 1].0,
                verdict(recall >= TARGET_RECALL && speedup >= TARGET_SPEEDUP)
            );
        }
    }
    Ok(())
}

/// Every held-out user's top-50 (history excluded) by the batched exact scan, and by
/// faiss's `IndexFlatIP` on the same rows and queries when faiss is installed: time,
/// this process's peak memory so far, and how far the two answers agree.
fn bench_batched_exact(emb: &Embeddings, split: &Split, held: &[&HeldOut]) -> anyhow::Result<()> {
    let ids = &split.train_items;
    let rows = emb.normalized_rows(ids);
    let histories: Vec<&[u32]> = held
        .iter()
        .map(|h| split.train[h.user as usize].as_slice())
        .collect();
    let mut flat = Vec::with_capacity(held.len() * emb.dim);
    for h in &histories {
        let mut v = emb.mean(h).expect("held-out users have train tracks");
        l2_normalize(&mut v);
        flat.extend(v);
    }
    let sets: Vec<HashSet<u32>> = histories
        .iter()
        .map(|h| h.iter().copied().collect())
        .collect();
    let excludes: Vec<&HashSet<u32>> = sets.iter().collect();
    let exact = ExactIndex::new(emb.dim, ids.clone(), rows.clone());
    let t = Instant::now();
    let ours = exact.search_batch(&flat, K, &excludes);
    let secs = t.elapsed().as_secs_f64();
    let peer = faiss_flat(emb.dim, ids, &rows, &flat, &histories)?;
    drop(rows);
    let line = format!(
        "{} batched exact scan, {} users x {} items x {}-d, history excluded: {secs:.2} s on {} threads (blocks of {})",
        emb.backend,
        held.len(),
        ids.len(),
        emb.dim,
        rayon::current_num_threads(),
        audiorec::index::exact::BLOCK_USERS
    );
    match peer {
        None => println!("{line}; faiss not available (set AUDIOREC_FAISS_PYTHON)"),
        Some(p) => {
            let (mut overlap, mut worst_gap) = (0.0, 0f32);
            for (o, (pid, psc)) in ours.iter().zip(p.ids.chunks(K).zip(p.scores.chunks(K))) {
                let theirs: HashSet<u32> = pid.iter().copied().collect();
                overlap += o.iter().filter(|n| theirs.contains(&n.id)).count() as f64 / K as f64;
                worst_gap = worst_gap.max((o[K - 1].score - psc[K - 1]).abs());
            }
            println!(
                "{line}; faiss {} IndexFlatIP (baseline): add {:.2} s + search {:.2} s (k + |history| per query, then filtered; {:.2} s with nothing excluded) on {} threads = {:.2}x ours; answers agree on {:.4} of ids, k-th scores within {worst_gap:.1e}  [target no slower than faiss: {}]",
                p.version,
                p.add,
                p.search,
                p.plain,
                p.threads,
                (p.add + p.search) / secs,
                overlap / held.len() as f64,
                verdict(secs <= p.add + p.search)
            );
        }
    }
    println!(
        "  bench process peak RSS so far (VmHWM): {}",
        vm_hwm_self().map_or("?".into(), gib)
    );
    Ok(())
}

/// What the faiss script measured and answered.
struct Faiss {
    version: String,
    threads: u64,
    add: f64,
    search: f64,
    /// The same queries' top-k with nothing excluded (faiss's lower bound).
    plain: f64,
    ids: Vec<u32>,
    scores: Vec<f32>,
}

/// Runs `benches/knn_faiss.py` on these rows and queries; `None` when faiss is missing.
fn faiss_flat(
    dim: usize,
    ids: &[u32],
    rows: &[f32],
    queries: &[f32],
    histories: &[&[u32]],
) -> anyhow::Result<Option<Faiss>> {
    let python = std::env::var("AUDIOREC_FAISS_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_faiss = Command::new(&python)
        .args(["-c", "import faiss"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_faiss {
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    let write =
        |name: &str, f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| -> anyhow::Result<()> {
            let mut bytes = Vec::new();
            f(&mut bytes)?;
            std::fs::write(dir.path().join(name), bytes)?;
            Ok(())
        };
    write("items.f32", &|w| le::write(w, rows))?;
    write("item_ids.u32", &|w| le::write(w, ids))?;
    write("queries.f32", &|w| le::write(w, queries))?;
    write("hist.u32", &|w| le::write(w, &histories.concat()))?;
    let mut offsets = vec![0i64];
    histories
        .iter()
        .for_each(|h| offsets.push(offsets.last().unwrap() + h.len() as i64));
    write("hist_offsets.i64", &|w| le::write(w, &offsets))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/knn_faiss.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(dir.path())
        .args([dim.to_string(), K.to_string()])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "faiss script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(Some(Faiss {
        version: v["faiss"].as_str().unwrap_or("?").into(),
        threads: v["threads"].as_u64().unwrap_or(0),
        add: v["add_seconds"].as_f64().unwrap_or(f64::NAN),
        search: v["search_seconds"].as_f64().unwrap_or(f64::NAN),
        plain: v["plain_search_seconds"].as_f64().unwrap_or(f64::NAN),
        ids: le::decode(&std::fs::read(dir.path().join("faiss_ids.u32"))?),
        scores: le::decode(&std::fs::read(dir.path().join("faiss_scores.f32"))?),
    }))
}

/// A catalogue of the paper's size whose vectors repeat: 56,000 tracks over 2,000
/// distinct 32-d vectors drawn with a 1/rank skew, queries the means of 40-track
/// histories (excluded). HNSW (forced, over the distinct vectors) against the exact scan,
/// compared by the k-th score since ties make track identity ambiguous.
fn bench_duplicates() {
    let (items, distinct, dim) = (56_000usize, 2_000usize, 32usize);
    let mut rng = StdRng::seed_from_u64(SEED);
    let bases: Vec<Vec<f32>> = (0..distinct)
        .map(|_| {
            let mut v: Vec<f32> = (0..dim)
                .map(|_| rng.sample(rand_distr::StandardNormal))
                .collect();
            l2_normalize(&mut v);
            v
        })
        .collect();
    let cumulative: Vec<f64> = (0..distinct)
        .scan(0.0, |acc, j| {
            *acc += 1.0 / (j + 1) as f64;
            Some(*acc)
        })
        .collect();
    let total = *cumulative.last().expect("distinct > 0");
    let mut rows = Vec::with_capacity(items * dim);
    for _ in 0..items {
        let u = rng.random::<f64>() * total;
        let j = cumulative.partition_point(|&c| c < u).min(distinct - 1);
        rows.extend_from_slice(&bases[j]);
    }
    let ids: Vec<u32> = (0..items as u32).collect();
    let queries: Vec<(Vec<f32>, HashSet<u32>)> = (0..QUERIES)
        .map(|_| {
            let mut q = vec![0f32; dim];
            let mut history = HashSet::new();
            for _ in 0..40 {
                let i = rng.random_range(0..items);
                q.iter_mut()
                    .zip(&rows[i * dim..(i + 1) * dim])
                    .for_each(|(a, b)| *a += b);
                history.insert(i as u32);
            }
            l2_normalize(&mut q);
            (q, history)
        })
        .collect();
    let exact = ExactIndex::new(dim, ids.clone(), rows.clone());
    let t = Instant::now();
    let truth: Vec<f32> = queries
        .iter()
        .map(|(q, ex)| exact.search(q, K, ex)[K - 1].score)
        .collect();
    let exact_qps = queries.len() as f64 / t.elapsed().as_secs_f64();
    let params = HnswParams::default();
    println!(
        "duplicate-heavy: {items} tracks on {distinct} distinct {dim}-d vectors; exact {exact_qps:.0} queries/s (baseline); auto picks {:?}",
        index::choose(items, dim, params, || index::strided_sample(&rows, dim)).0
    );
    for built in build_graphs(dim, &ids, &rows, params) {
        println!("  {}: built in {:.1} s", built.name, built.seconds);
        for ef in EFS {
            built.graph.set_ef(ef);
            let t = Instant::now();
            let kth: Vec<f32> = queries
                .iter()
                .map(|(q, ex)| built.graph.search(q, K, ex)[K - 1].score)
                .collect();
            let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
            let gaps: Vec<f32> = truth.iter().zip(&kth).map(|(t, g)| t - g).collect();
            let mean = gaps.iter().sum::<f32>() / gaps.len() as f32;
            let worst = gaps.iter().copied().fold(0f32, f32::max);
            println!(
                "    ef {ef:>3}: k-th score below exact by {mean:.5} on average, {worst:.5} at worst; {qps:.0} queries/s = {:.1}x exact  [target within 0.01: {}]",
                qps / exact_qps,
                verdict(worst <= 0.01)
            );
        }
    }
}

/// Peak RSS of `audiorec evaluate` run as a child process after deleting the cache, so one
/// process does a fresh import, the split, the HNSW build and the evaluation.
fn peak_memory_of_cli(dir: &Path) -> anyhow::Result<()> {
    for backend in BATCHED {
        run_cli(dir, backend, "exact", false)?;
    }
    run_cli(dir, "musicnn", "hnsw", true)
}

/// Time and peak RSS of one `audiorec evaluate` in a child process; `fresh` deletes the
/// cache first, so that process does the import, the split, the index and the evaluation.
fn run_cli(dir: &Path, backend: &str, index: &str, fresh: bool) -> anyhow::Result<()> {
    let derived = Layout::new(dir).derived();
    if fresh && derived.exists() {
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
    cmd.args(["evaluate", "--backend", backend, "--index", index, "--data"])
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
        Some(kb) => {
            let what = if fresh {
                "fresh import + split + index + evaluate"
            } else {
                "cached import + split + index + evaluate"
            };
            let target = if index == "exact" {
                TARGET_EXACT_PEAK_BYTES
            } else {
                TARGET_PEAK_BYTES
            };
            println!(
                "CLI `audiorec evaluate --backend {backend} --index {index}` ({what}) in a child process: {secs:.1} s, peak RSS {}  [target < {}: {}]",
                gib(kb * 1024.0),
                gib(target),
                verdict(kb * 1024.0 < target)
            )
        }
        None => println!("CLI run took {secs:.1} s; peak RSS unknown (no /usr/bin/time)"),
    }
    Ok(())
}

/// This process's peak resident set size in bytes, from /proc/self/status.
fn vm_hwm_self() -> Option<f64> {
    proc_status_bytes("VmHWM:")
}

/// This process's resident set size in bytes now.
fn vm_rss_self() -> Option<f64> {
    proc_status_bytes("VmRSS:")
}

/// A size field of /proc/self/status (given in kB there), in bytes.
fn proc_status_bytes(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
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
