//! Seconds of audio embedded per second of wall time, MusiCNN and MFCC, on one thread and on
//! all threads, from a WAV file on disk (decode, resample, front end and network included),
//! with the original Python code on the same files as the baseline when it is installed.
//!
//!     cargo bench --bench embed
//!     AUDIOREC_BENCH_PYTHON=/work/venv-audio/bin/python cargo bench --bench embed
//!
//! The one-thread figures come from a child process started with `RAYON_NUM_THREADS=1`
//! (candle's matrix products read it); the Python baseline runs under `taskset -c 0` when
//! taskset exists, so both use one core. MusiCNN needs `audiorec setup musicnn` first.
//!
//! Then the latency from uploading a 30-second clip to the service until it is
//! recommendable (see `embed/upload.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use audiorec::audio::{self, mel::MelSpectrogram, mfcc};
use audiorec::model::content;
use audiorec::model::musicnn::{self, Musicnn};
use candle_core::Device;
use rayon::prelude::*;

#[path = "embed/upload.rs"]
mod upload;

/// The real-music fixture, tiled to a track of `TILES` × 10 s.
const CLIP_16K: &str = "tests/fixtures/audio/wesnoth_battle_16k.wav";
const CLIP_22K: &str = "tests/fixtures/audio/wesnoth_battle_22k.wav";
const TILES_16K: usize = 3;
const TILES_22K: usize = 8;
/// Tracks embedded per measurement on one thread; all threads get this many per thread.
const TRACKS: usize = 4;
/// Repeats of the Python baseline.
const PYTHON_REPEATS: usize = 3;
const CHILD_ENV: &str = "AUDIOREC_BENCH_CHILD";

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("audiorec-bench-embed-{}", std::process::id()));
    if let Ok(backend) = std::env::var(CHILD_ENV) {
        let (path, threads) = (std::env::args().nth(1).unwrap(), 1);
        println!(
            "RESULT {}",
            measure(&backend, Path::new(&path), TRACKS * threads)
        );
        return;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let track16 = tile(&root.join(CLIP_16K), TILES_16K, &dir.join("track16k.wav"));
    let track22 = tile(&root.join(CLIP_22K), TILES_22K, &dir.join("track22k.wav"));
    let threads = rayon::current_num_threads();
    let weights = musicnn_weights(&root);
    println!(
        "embedding throughput, seconds of audio per second (higher is better); {threads} threads"
    );
    println!(
        "{:<10} {:>12} {:>12} {:>16}",
        "backend", "1 thread", "all threads", "python 1 core"
    );
    let python = python_baseline(&root, &track16, &track22);
    for (backend, track) in [("musicnn", &track16), ("mfcc", &track22)] {
        if backend == "musicnn" && weights.is_none() {
            println!("musicnn    skipped: no weights (run `cargo run -- setup musicnn`)");
            continue;
        }
        let one = child(backend, track);
        let all = measure(backend, track, TRACKS * threads);
        let py = python.as_ref().and_then(|p| p.get(backend).copied());
        let py_text = py.map_or("-".to_string(), |p| format!("{p:.1}"));
        println!("{backend:<10} {one:>12.1} {all:>12.1} {py_text:>16}");
        if let Some(p) = py {
            println!("           1 thread vs python: {:.1}x", one / p);
        }
    }
    if let Some(weights) = &weights {
        upload::run(&track16, weights);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Seconds of audio per second for `tracks` copies of `track` embedded in parallel.
fn measure(backend: &str, track: &Path, tracks: usize) -> f64 {
    let embed: Box<dyn Fn() -> f64 + Sync> = match backend {
        "musicnn" => {
            let dir = musicnn_weights(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("weights");
            let model = Musicnn::load(&dir, &Device::Cpu).unwrap();
            Box::new(move || {
                let d = audio::decode::decode_file(track).unwrap();
                std::hint::black_box(content::musicnn_row(&model, &d).unwrap());
                d.duration_s()
            })
        }
        _ => {
            let mel = MelSpectrogram::new(mfcc::SETTINGS);
            Box::new(move || {
                let d = audio::decode::decode_file(track).unwrap();
                std::hint::black_box(content::mfcc_row(&mel, &d).unwrap());
                d.duration_s()
            })
        }
    };
    embed(); // warm-up: page in the weights, plan the FFTs
    let start = Instant::now();
    let audio_s: f64 = (0..tracks).into_par_iter().map(|_| embed()).sum();
    audio_s / start.elapsed().as_secs_f64()
}

/// Runs [`measure`] in a child process limited to one thread.
fn child(backend: &str, track: &Path) -> f64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg(track)
        .env(CHILD_ENV, backend)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "child failed: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// The original musicnn extractor and librosa MFCC, one core, via scripts/embed_baseline.py.
fn python_baseline(
    root: &Path,
    track16: &Path,
    track22: &Path,
) -> Option<std::collections::HashMap<String, f64>> {
    let python = std::env::var("AUDIOREC_BENCH_PYTHON").ok()?;
    let script = root.join("scripts/embed_baseline.py");
    let pinned = Command::new("taskset").arg("--version").output().is_ok();
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", &python]);
        c
    } else {
        Command::new(&python)
    };
    let out = cmd
        .arg(&script)
        .arg(track16)
        .arg(track22)
        .arg(PYTHON_REPEATS.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().rev().find(|l| l.starts_with('{')) else {
        eprintln!(
            "python baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    };
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    println!(
        "python (one core{}): musicnn extractor() {:.1}, musicnn warm session {:.1}, librosa mfcc {:.1}",
        if pinned {
            ", taskset -c 0"
        } else {
            ", not pinned"
        },
        v["musicnn_extractor"].as_f64()?,
        v["musicnn_warm_session"].as_f64()?,
        v["mfcc_librosa"].as_f64()?
    );
    let mut m = std::collections::HashMap::new();
    m.insert("musicnn".to_string(), v["musicnn_warm_session"].as_f64()?);
    m.insert("mfcc".to_string(), v["mfcc_librosa"].as_f64()?);
    Some(m)
}

fn musicnn_weights(root: &Path) -> Option<PathBuf> {
    let dir = musicnn::default_dir();
    let dir = if dir.is_relative() {
        root.join(dir)
    } else {
        dir
    };
    dir.join(".index").is_file().then_some(dir)
}

/// Writes `tiles` back-to-back copies of a WAV clip as one mono 16-bit WAV.
fn tile(clip: &Path, tiles: usize, out: &Path) -> PathBuf {
    let d = audio::decode::decode_file(clip).unwrap();
    let samples: Vec<f32> = d
        .samples
        .iter()
        .copied()
        .cycle()
        .take(d.samples.len() * tiles)
        .collect();
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16).to_le_bytes())
        .collect();
    let mut wav = Vec::with_capacity(44 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&d.sample_rate.to_le_bytes());
    wav.extend_from_slice(&(d.sample_rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(out, wav).unwrap();
    out.to_path_buf()
}
