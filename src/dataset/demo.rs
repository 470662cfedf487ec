//! Seeded synthetic datasets in the Music4All-Onion layout, with the structure that makes
//! content worth something for recommendation:
//!
//! - tracks belong to latent genres and carry a latent factor vector; popularity is Zipf;
//! - users like a few genres, listen in genre sessions, replay favourites, and their
//!   tastes drift from one genre mix to another over time (signal for sequence models);
//! - each backend is a noisy nonlinear view of the latent factors with its own
//!   informativeness, plus a linear view of per-track *style* factors (production,
//!   loudness, recording era) that no listener cares about: as in real pretrained
//!   embeddings, much of the variance is irrelevant to taste, which hurts a raw cosine
//!   (KNN) and is what a learned projection (the Shallow Net's tower) can remove;
//!   `noise` carries no information at all.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal, StandardNormal};

use super::catalog::write_track_ids;
use super::time::{format_timestamp, parse_timestamp};
use super::{EMBEDDINGS_DIR, PLAYS_FILE, TRACK_IDS_FILE, Vocab};
use crate::embeddings::manifest::{self, BackendInfo, Manifest};
use crate::embeddings::npy::write_f32_matrix;

/// How big a demo dataset to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// 300 users, 800 tracks: unit and HTTP tests.
    Tiny,
    /// 2,000 users, 5,000 tracks, ~250k train pairs: model tests and quick benchmarks.
    Small,
    /// Shaped like the paper's Music4All-Onion data: ~17k users, 56k tracks, ~5M
    /// aggregated train interactions, with a 1024-d backend.
    Paper,
}

/// One synthetic backend: its name, dimension and how much signal it carries.
#[derive(Debug, Clone, Copy)]
pub struct BackendSpec {
    pub name: &'static str,
    pub dim: usize,
    /// Standard deviation of the per-track noise added to the signal; `None` = pure noise.
    pub noise: Option<f32>,
    /// Per-dimension standard deviation of the taste-irrelevant style component (the
    /// taste signal's is about 0.8).
    pub style: f32,
}

/// The demo backends, most informative first: `musicnn` > `mert` > `mfcc` > `noise`.
pub const BACKENDS: [BackendSpec; 4] = [
    BackendSpec {
        name: "musicnn",
        dim: 200,
        noise: Some(0.35),
        style: 2.0,
    },
    BackendSpec {
        name: "mert",
        dim: 1024,
        noise: Some(1.0),
        style: 2.4,
    },
    BackendSpec {
        name: "mfcc",
        dim: 104,
        noise: Some(2.5),
        style: 2.4,
    },
    BackendSpec {
        name: "noise",
        dim: 64,
        noise: None,
        style: 0.0,
    },
];

struct Shape {
    users: usize,
    tracks: usize,
    genres: usize,
    /// Median number of listening sessions per user over the whole period.
    sessions: f64,
}

impl Scale {
    fn shape(self) -> Shape {
        match self {
            Scale::Tiny => Shape {
                users: 300,
                tracks: 800,
                genres: 6,
                sessions: 12.0,
            },
            Scale::Small => Shape {
                users: 2_000,
                tracks: 5_000,
                genres: 12,
                sessions: 30.0,
            },
            Scale::Paper => Shape {
                users: 17_000,
                tracks: 56_000,
                genres: 30,
                sessions: 100.0,
            },
        }
    }
}

const FACTORS: usize = 32;
/// Style factors per track.
const STYLE: usize = 8;

/// The file in a dataset folder that says it is generated demo data (its scale, seed and
/// counts): on demo data, `serve` trains the neural models it has no checkpoint of.
pub const MARKER: &str = "demo.json";

/// Whether `dir` holds generated demo data.
pub fn is_demo(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// Counts of what was written.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct DemoSummary {
    pub users: usize,
    pub tracks: usize,
    pub plays: u64,
}

/// Writes a dataset folder: plays TSV, sorted track ids, one `.npy` per backend, the
/// manifest declaring their dimensions and the [`MARKER`] saying it is demo data.
pub fn generate(out: &Path, scale: Scale, seed: u64) -> std::io::Result<DemoSummary> {
    let shape = scale.shape();
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = |rng: &mut StdRng| -> f32 { rng.sample(StandardNormal) };

    // Genres and tracks in latent space.
    let centers: Vec<Vec<f32>> = (0..shape.genres)
        .map(|_| (0..FACTORS).map(|_| normal(&mut rng) * 1.5).collect())
        .collect();
    let genre_of: Vec<usize> = (0..shape.tracks)
        .map(|_| rng.random_range(0..shape.genres))
        .collect();
    let latent: Vec<Vec<f32>> = genre_of
        .iter()
        .map(|&g| centers[g].iter().map(|c| c + normal(&mut rng)).collect())
        .collect();
    // Zipf popularity over a random permutation of tracks.
    let mut order: Vec<usize> = (0..shape.tracks).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut popularity = vec![0f64; shape.tracks];
    for (rank, &t) in order.iter().enumerate() {
        popularity[t] = 1.0 / (rank as f64 + 10.0).powf(0.9);
    }
    // Per genre: its tracks and cumulative popularity, for O(log n) sampling.
    let mut by_genre: Vec<(Vec<usize>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); shape.genres];
    for t in 0..shape.tracks {
        let (tracks, cum) = &mut by_genre[genre_of[t]];
        let last = cum.last().copied().unwrap_or(0.0);
        tracks.push(t);
        cum.push(last + popularity[t]);
    }

    let style: Vec<Vec<f32>> = (0..shape.tracks)
        .map(|_| (0..STYLE).map(|_| normal(&mut rng)).collect())
        .collect();
    let ids: Vec<String> = (0..shape.tracks).map(|_| random_id(&mut rng)).collect();
    let mut sorted: Vec<&str> = ids.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let catalog = Vocab::from_ids(&sorted).expect("random 16-character ids do not collide");

    fs::create_dir_all(out.join(EMBEDDINGS_DIR))?;
    write_track_ids(&out.join(TRACK_IDS_FILE), &catalog)?;
    for spec in BACKENDS {
        let matrix = backend_matrix(&spec, &latent, &style, &ids, &catalog, &mut rng);
        write_f32_matrix(
            &out.join(EMBEDDINGS_DIR).join(format!("{}.npy", spec.name)),
            &matrix,
            shape.tracks,
            spec.dim,
        )?;
    }

    write_manifest(&out.join(EMBEDDINGS_DIR).join(manifest::FILE))?;

    let plays = write_plays(
        &out.join(PLAYS_FILE),
        &shape,
        &centers,
        &latent,
        &by_genre,
        &ids,
        &mut rng,
    )?;
    let summary = DemoSummary {
        users: shape.users,
        tracks: shape.tracks,
        plays,
    };
    let marker = serde_json::json!({"scale": scale, "seed": seed, "summary": summary});
    fs::write(out.join(MARKER), format!("{marker:#}\n"))?;
    Ok(summary)
}

/// Declares the demo backends, so that their names (shared with real models) are checked
/// against these dimensions rather than the built-in paper manifest.
fn write_manifest(path: &Path) -> std::io::Result<()> {
    let backends = BACKENDS
        .iter()
        .map(|b| {
            let description = match b.noise {
                Some(sigma) => format!(
                    "synthetic: tanh of a random projection of the latent track factors, plus a random projection of {STYLE} taste-irrelevant style factors (scale {}), plus N(0, {sigma}^2) noise",
                    b.style
                ),
                None => "synthetic: N(0, 1) noise, no information about the tracks".into(),
            };
            (
                b.name.to_string(),
                BackendInfo {
                    dim: b.dim,
                    description,
                    extractor: None,
                },
            )
        })
        .collect();
    Manifest::write(path, &backends)
}

fn random_id(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `tanh(W z) + S c + noise` per track (z its taste factors, c its style factors), scaled
/// to unit root-mean-square, rows in catalog (sorted id) order.
fn backend_matrix(
    spec: &BackendSpec,
    latent: &[Vec<f32>],
    style: &[Vec<f32>],
    ids: &[String],
    catalog: &Vocab,
    rng: &mut StdRng,
) -> Vec<f32> {
    let scale = 1.0 / (FACTORS as f32).sqrt();
    let w: Vec<f32> = (0..spec.dim * FACTORS)
        .map(|_| rng.sample::<f32, _>(StandardNormal) * scale)
        .collect();
    let style_scale = spec.style / (STYLE as f32).sqrt();
    let s_mix: Vec<f32> = (0..spec.dim * STYLE)
        .map(|_| rng.sample::<f32, _>(StandardNormal) * style_scale)
        .collect();
    let mut m = vec![0f32; latent.len() * spec.dim];
    for (t, z) in latent.iter().enumerate() {
        let row = catalog.get(&ids[t]).expect("every id is in the catalog") as usize;
        let dst = &mut m[row * spec.dim..(row + 1) * spec.dim];
        for (j, v) in dst.iter_mut().enumerate() {
            let noise: f32 = rng.sample(StandardNormal);
            *v = match spec.noise {
                Some(sigma) => {
                    let s: f32 = w[j * FACTORS..(j + 1) * FACTORS]
                        .iter()
                        .zip(z)
                        .map(|(a, b)| a * b)
                        .sum();
                    let c: f32 = s_mix[j * STYLE..(j + 1) * STYLE]
                        .iter()
                        .zip(&style[t])
                        .map(|(a, b)| a * b)
                        .sum();
                    s.tanh() + c + sigma * noise
                }
                None => noise,
            };
        }
    }
    // Unit root-mean-square values, as standardised features have: a cosine does not see
    // the scale, but a tied output head (BERT4Rec) would start with huge logits.
    let rms = (m.iter().map(|v| (v * v) as f64).sum::<f64>() / m.len().max(1) as f64).sqrt();
    if rms > 0.0 {
        m.iter_mut().for_each(|v| *v /= rms as f32);
    }
    m
}

#[allow(clippy::too_many_arguments)]
fn write_plays(
    path: &Path,
    shape: &Shape,
    centers: &[Vec<f32>],
    latent: &[Vec<f32>],
    by_genre: &[(Vec<usize>, Vec<f64>)],
    ids: &[String],
    rng: &mut StdRng,
) -> std::io::Result<u64> {
    let start = parse_timestamp(b"2019-01-01").expect("valid date");
    let end = parse_timestamp(b"2020-04-20").expect("valid date");
    let span = (end - start) as f64;
    let sessions = LogNormal::new(shape.sessions.ln(), 0.6).expect("valid lognormal");
    let session_len = Normal::new(6.0f64, 2.5).expect("valid normal");
    let mut w = BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
    writeln!(w, "user_id\ttrack_id\ttimestamp")?;
    let mut rows = 0u64;
    for u in 0..shape.users {
        let user_id = format!("user_{u:06}");
        // Three favourite genres now, and the mix they drift to.
        let favourites = |rng: &mut StdRng| -> Vec<(usize, f64)> {
            (0..3)
                .map(|i| (rng.random_range(0..shape.genres), [0.6, 0.3, 0.1][i]))
                .collect()
        };
        let (from, to) = (favourites(rng), favourites(rng));
        let taste: Vec<f32> = (0..FACTORS)
            .map(|f| {
                from.iter()
                    .map(|&(g, wt)| centers[g][f] * wt as f32)
                    .sum::<f32>()
                    + rng.sample::<f32, _>(StandardNormal) * 0.5
            })
            .collect();
        let n_sessions = sessions.sample(rng).round().max(2.0) as usize;
        let mut times: Vec<f64> = (0..n_sessions).map(|_| rng.random::<f64>()).collect();
        times.sort_by(f64::total_cmp);
        let mut recent: Vec<usize> = Vec::new();
        for &tau in &times {
            // Drift: the later the session, the more it follows the `to` mix.
            let mix = if rng.random::<f64>() < tau {
                &to
            } else {
                &from
            };
            let r = rng.random::<f64>();
            let genre = if r < mix[0].1 {
                mix[0].0
            } else if r < mix[0].1 + mix[1].1 {
                mix[1].0
            } else {
                mix[2].0
            };
            let len = session_len.sample(rng).round().clamp(1.0, 20.0) as usize;
            let mut ts = start as f64 + tau * span;
            for _ in 0..len {
                let track = if !recent.is_empty() && rng.random::<f64>() < 0.25 {
                    recent[rng.random_range(0..recent.len())]
                } else {
                    pick_track(&by_genre[genre], latent, &taste, rng)
                };
                recent.push(track);
                if recent.len() > 30 {
                    recent.remove(0);
                }
                writeln!(
                    w,
                    "{user_id}\t{}\t{}",
                    ids[track],
                    format_timestamp(ts as i64)
                )?;
                rows += 1;
                ts += 180.0 + rng.random::<f64>() * 120.0;
            }
        }
    }
    w.flush()?;
    Ok(rows)
}

/// Four popularity-weighted candidates from the genre; the one closest to the user's taste
/// (with Gumbel noise) wins.
fn pick_track(
    genre: &(Vec<usize>, Vec<f64>),
    latent: &[Vec<f32>],
    taste: &[f32],
    rng: &mut StdRng,
) -> usize {
    let (tracks, cum) = genre;
    let total = *cum.last().expect("every genre has tracks at these scales");
    (0..4)
        .map(|_| {
            let x = rng.random::<f64>() * total;
            let t = tracks[cum.partition_point(|&c| c < x).min(tracks.len() - 1)];
            let affinity: f32 =
                latent[t].iter().zip(taste).map(|(a, b)| a * b).sum::<f32>() / FACTORS as f32;
            let gumbel = -(-(rng.random::<f64>().max(1e-12)).ln()).ln() as f32;
            (t, affinity * 2.0 + gumbel)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("four candidates")
        .0
}
