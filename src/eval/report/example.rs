//! A realistic synthetic grid (4 backends × KNN, Shallow Net, BERT4Rec, plus the two
//! Random rows) for tests, documentation and the browser check of the HTML report.
//!
//! Nothing is made up at the level of means: each user gets held-out tracks, each cell
//! places them in a top-k list with a probability set by the cell's quality, and the
//! real metric code scores the list. Users share their random draws across cells (some
//! users are easy for every model), which gives the correlated per-user scores that
//! make paired tests worth doing.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::grid::{BackendInfo, Cell, EpochLoss, GridReport, ModelKind, UserScores, Variant};
use crate::dataset::SplitCounts;
use crate::dataset::split::PartCounts;
use crate::eval::score_user;

/// (backend, dimension, per-track find probability per model: KNN, Shallow Net, BERT4Rec).
const BACKENDS: [(&str, usize, [f64; 3]); 4] = [
    ("musicnn", 200, [0.030, 0.125, 0.155]),
    ("mert", 1024, [0.024, 0.110, 0.145]),
    ("mfcc", 104, [0.010, 0.065, 0.118]),
    ("noise", 128, [0.003, 0.010, 0.082]),
];
/// Per-track find probability of the random variants (Shallow Net, BERT4Rec).
const RANDOM: [f64; 2] = [0.007, 0.140];
const USERS_PER_PART: usize = 400;

/// One simulated user: held-out tracks and the shared draws that decide where each lands.
struct SimUser {
    id: String,
    ease: f64,
    draws: Vec<(f64, f64)>,
}

fn users(rng: &mut StdRng, prefix: &str) -> Vec<SimUser> {
    (0..USERS_PER_PART)
        .map(|i| {
            let held = 1 + (rng.random::<f64>().powi(3) * 9.0) as usize;
            SimUser {
                // Odd ids on purpose: hex, mixed length, a separator.
                id: format!("{prefix}-{:x}", 0x3a7 + i * 37),
                ease: 0.4 + 1.2 * rng.random::<f64>(),
                draws: (0..held).map(|_| (rng.random(), rng.random())).collect(),
            }
        })
        .collect()
}

/// Scores each user's simulated top-k for a cell of quality `p` (per-track find probability).
fn scores(users: &[SimUser], p: f64, k: usize) -> UserScores {
    let mut out = UserScores::default();
    for u in users {
        let held: Vec<u32> = (0..u.draws.len() as u32).collect();
        let mut list: Vec<u32> = (1000..1000 + k as u32).collect();
        for (track, &(found, place)) in u.draws.iter().enumerate() {
            if found < (p * u.ease).min(1.0) {
                // Better models put their finds nearer the top.
                let rank = ((place.powf(1.0 + 8.0 * p) * k as f64) as usize).min(k - 1);
                let free = (rank..k).chain(0..rank).find(|&r| list[r] >= 1000);
                if let Some(r) = free {
                    list[r] = track as u32;
                }
            }
        }
        out.user_ids.push(u.id.clone());
        out.scores.push(score_user(&list, &held, k));
    }
    out
}

/// A loss curve that falls towards `floor` and, for early-stopped runs, turns up a little.
fn curve(rng: &mut StdRng, epochs: usize, start: f64, floor: f64, gap: f64) -> Vec<EpochLoss> {
    (1..=epochs)
        .map(|e| {
            let x = e as f64 / epochs as f64;
            let train = floor + (start - floor) * (-4.0 * x).exp();
            let overfit = 0.08 * (start - floor) * (x - 0.7).max(0.0);
            let noise = 1.0 + 0.01 * (rng.random::<f64>() - 0.5);
            EpochLoss {
                epoch: e,
                train_loss: train,
                validation_loss: (train + gap + overfit) * noise,
            }
        })
        .collect()
}

impl GridReport {
    /// The synthetic grid described in this module's documentation (seeded, so stable).
    pub fn example() -> GridReport {
        let k = 50;
        let mut rng = StdRng::seed_from_u64(1997);
        let validation = users(&mut rng, "v");
        let test = users(&mut rng, "t");
        let mut cells = Vec::new();
        let mut cell = |model, variant, backend: Option<&str>, p: f64, rng: &mut StdRng| {
            let (curve, train_seconds) = match model {
                ModelKind::Knn => (Vec::new(), None),
                ModelKind::Shallow => {
                    let epochs = 24 + (p * 200.0) as usize;
                    (
                        curve(rng, epochs, 0.19, 0.17 - 0.8 * p, 0.006),
                        Some(40.0 + 6.0 * epochs as f64),
                    )
                }
                ModelKind::Bert4rec => {
                    let epochs = 40 + (p * 180.0) as usize;
                    (
                        curve(rng, epochs, 8.6, 7.6 - 6.0 * p, 0.12),
                        Some(120.0 + 31.0 * epochs as f64),
                    )
                }
            };
            cells.push(Cell {
                model,
                variant,
                backend: backend.map(str::to_owned),
                validation: scores(&validation, p, k),
                test: scores(&test, p, k),
                hot: None,
                cold: None,
                index_recall: (model == ModelKind::Knn).then(|| 0.95 + 0.04 * rng.random::<f64>()),
                curve,
                train_seconds,
                eval_seconds: 1.5 + 3.0 * rng.random::<f64>(),
            });
        };
        for (m, model) in ModelKind::ALL.into_iter().enumerate() {
            for (name, _, p) in BACKENDS {
                cell(model, Variant::Content, Some(name), p[m], &mut rng);
            }
            if m > 0 {
                cell(model, Variant::Random, None, RANDOM[m - 1], &mut rng);
            }
        }
        let part = |users, items, interactions| PartCounts {
            users,
            items,
            interactions,
        };
        let manifest: BTreeMap<String, String> = [
            ("crate_version", env!("CARGO_PKG_VERSION")),
            ("git_revision", "4d7aecb"),
            ("split.keep_from", "2019-02-20"),
            ("split.test_from", "2020-02-20"),
            ("split.seed", "42"),
            ("embeddings.musicnn.sha256", "9f2c41d07be3a5e8…"),
            ("embeddings.mert.sha256", "51ad0c9e6f1374b2…"),
            ("embeddings.mfcc.sha256", "c07e88a1d2f94b60…"),
            ("embeddings.noise.sha256", "03b9e7f5aa2c61d8…"),
            ("shallow.freeze_items", "true"),
            ("shallow.freeze_users", "false"),
            (
                "shallow.negatives",
                "non-interacting users, 20 per positive",
            ),
            ("bert4rec.freeze_items", "true"),
            ("bert4rec.max_len", "300"),
            (
                "knn.search",
                "exact scan (served index: hnsw, recall beside)",
            ),
            ("machine", "2 cores, cpu"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        GridReport {
            title: "Pretrained audio representations for recommendation — synthetic example".into(),
            k,
            manifest,
            backends: BACKENDS
                .iter()
                .map(|(name, dim, _)| BackendInfo {
                    name: (*name).into(),
                    dim: *dim,
                })
                .collect(),
            split: SplitCounts {
                train: part(1_214, 6_387, 182_405),
                validation: part(USERS_PER_PART, 2_954, 7_861),
                test: part(USERS_PER_PART, 3_012, 8_044),
                cold: Default::default(),
            },
            cells,
        }
    }
}
