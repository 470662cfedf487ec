//! The paper's temporal split (Tamm & Aljanaki, §3.1), every date and ratio a parameter:
//!
//! 1. keep plays from `keep_from` (applied at import, see [`super::ImportOptions`]);
//! 2. train = (user, track) pairs first listened before `test_from`;
//! 3. candidates = pairs whose first (kept) listen is at or after `test_from` — so every
//!    held-out track is new to its user — restricted to users and tracks seen in train;
//! 4. candidate users are shuffled with `seed`; the first `validation_ratio` of them are
//!    validation users, the rest test users;
//! 5. only tracks that occur in train are ever recommended (`train_items`).
//!
//! A cold-start split (`cold_items > 0`, the paper's future work) first draws, seeded by
//! `seed`, that fraction of the tracks occurring in the kept plays as *cold* tracks:
//! their plays leave train altogether, so no model ever learns from them. Plays of a
//! cold track in the held-out period stay held out (step 3 accepts cold tracks beside
//! train tracks); plays of it before `test_from` are dropped, being neither something
//! to learn from nor something new to predict. Users must still occur in train. Cold
//! tracks are recommendable by the models whose item side is a function of content
//! ([`Split::recommendable`]); evaluation reports hot and cold held-out tracks apart
//! ([`Split::held_subset`]).

use std::collections::HashSet;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::Interactions;
use super::time::parse_timestamp;

/// Parameters of the split. Defaults are the paper's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// Plays before this Unix time were dropped at import (step 1). Recorded with the
    /// split so every later command imports the same plays; split files written before it
    /// was recorded read as the paper's date.
    #[serde(default = "paper_keep_from")]
    pub keep_from: i64,
    /// First listens at or after this Unix time are held out.
    pub test_from: i64,
    /// Fraction of candidate users that go to validation; the rest go to test.
    pub validation_ratio: f64,
    pub seed: u64,
    /// Fraction of the tracks in the kept plays held out of training altogether (cold
    /// tracks), drawn with `seed`; 0 = the paper's split. Not written when 0, so splits
    /// and experiment ids from before it read and hash as they did.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cold_items: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// Added to the split's seed for the cold-track draw, so that the draw and the user
/// shuffle are independent streams and a split without cold tracks shuffles users
/// exactly as before.
const COLD_STREAM: u64 = 0x636f_6c64;

/// The paper's first kept day, 2019-02-20.
pub fn paper_keep_from() -> i64 {
    parse_timestamp(b"2019-02-20").expect("valid date")
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            keep_from: paper_keep_from(),
            test_from: parse_timestamp(b"2020-02-20").expect("valid date"),
            validation_ratio: 0.5,
            seed: 42,
            cold_items: 0.0,
        }
    }
}

/// A user's held-out tracks, in first-listen order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldOut {
    pub user: u32,
    pub tracks: Vec<u32>,
}

/// Users, items and interactions of one part (the paper's Table 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartCounts {
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SplitCounts {
    pub train: PartCounts,
    pub validation: PartCounts,
    pub test: PartCounts,
    /// Cold tracks and their held-out plays; absent (all zero) without cold tracks.
    #[serde(default, skip_serializing_if = "ColdCounts::is_empty")]
    pub cold: ColdCounts,
}

/// The cold side of a cold-start split: how many tracks were held out of training, and
/// the users, items and interactions of the held-out parts restricted to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ColdCounts {
    pub tracks: usize,
    pub validation: PartCounts,
    pub test: PartCounts,
}

impl ColdCounts {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Hot (seen in train) or cold (held out of train) held-out tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subset {
    Hot,
    Cold,
}

impl Subset {
    pub fn as_str(self) -> &'static str {
        match self {
            Subset::Hot => "hot",
            Subset::Cold => "cold",
        }
    }
}

/// Which held-out part to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Validation,
    Test,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Validation => "validation",
            Part::Test => "test",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Split {
    pub config: SplitConfig,
    /// Per dataset user: train tracks in first-listen order (empty for users with none).
    pub train: Vec<Vec<u32>>,
    /// Sorted tracks that occur in train (hot tracks): the only ones a model without
    /// content (the Random variants) can recommend.
    pub train_items: Vec<u32>,
    /// Sorted cold tracks: held out of training, recommendable from their content.
    pub cold_items: Vec<u32>,
    pub validation: Vec<HeldOut>,
    pub test: Vec<HeldOut>,
    pub counts: SplitCounts,
}

impl Split {
    /// Splits aggregated interactions (sorted by user, then first listen).
    pub fn new(interactions: &Interactions, n_tracks: usize, config: SplitConfig) -> Self {
        let n_users = interactions.users.len();
        let cold_items = draw_cold(interactions, n_tracks, &config);
        let mut is_cold = vec![false; n_tracks];
        cold_items.iter().for_each(|&t| is_cold[t as usize] = true);
        let mut train = vec![Vec::new(); n_users];
        let mut in_train_item = vec![false; n_tracks];
        let mut train_pairs = 0;
        for i in 0..interactions.len() {
            if interactions.first_ts[i] < config.test_from
                && !is_cold[interactions.track[i] as usize]
            {
                train[interactions.user[i] as usize].push(interactions.track[i]);
                in_train_item[interactions.track[i] as usize] = true;
                train_pairs += 1;
            }
        }
        let mut candidates: Vec<Vec<u32>> = vec![Vec::new(); n_users];
        for i in 0..interactions.len() {
            let (u, t) = (interactions.user[i] as usize, interactions.track[i]);
            if interactions.first_ts[i] >= config.test_from
                && !train[u].is_empty()
                && (in_train_item[t as usize] || is_cold[t as usize])
            {
                candidates[u].push(t);
            }
        }
        let mut users: Vec<u32> = (0..n_users as u32)
            .filter(|&u| !candidates[u as usize].is_empty())
            .collect();
        users.shuffle(&mut StdRng::seed_from_u64(config.seed));
        let n_val = (users.len() as f64 * config.validation_ratio).round() as usize;
        let held = |us: &[u32]| -> Vec<HeldOut> {
            let mut v: Vec<HeldOut> = us
                .iter()
                .map(|&u| HeldOut {
                    user: u,
                    tracks: candidates[u as usize].clone(),
                })
                .collect();
            v.sort_by_key(|h| h.user);
            v
        };
        let validation = held(&users[..n_val]);
        let test = held(&users[n_val..]);
        let train_items: Vec<u32> = (0..n_tracks as u32)
            .filter(|&t| in_train_item[t as usize])
            .collect();
        let counts = SplitCounts {
            train: PartCounts {
                users: train.iter().filter(|h| !h.is_empty()).count(),
                items: train_items.len(),
                interactions: train_pairs,
            },
            validation: part_counts(&validation),
            test: part_counts(&test),
            cold: ColdCounts::default(),
        };
        let mut split = Self {
            config,
            train,
            train_items,
            cold_items,
            validation,
            test,
            counts,
        };
        if !split.cold_items.is_empty() {
            split.counts.cold = ColdCounts {
                tracks: split.cold_items.len(),
                validation: part_counts(&split.held_subset(Part::Validation, Subset::Cold)),
                test: part_counts(&split.held_subset(Part::Test, Subset::Cold)),
            };
        }
        split
    }

    pub fn part(&self, part: Part) -> &[HeldOut] {
        match part {
            Part::Validation => &self.validation,
            Part::Test => &self.test,
        }
    }

    pub fn is_cold(&self, track: u32) -> bool {
        self.cold_items.binary_search(&track).is_ok()
    }

    /// Whether the split holds tracks out of training.
    pub fn has_cold(&self) -> bool {
        !self.cold_items.is_empty()
    }

    /// What a model whose item side is a function of content can recommend: the train
    /// tracks and the cold tracks, sorted. Without cold tracks, the train tracks.
    pub fn recommendable(&self) -> Vec<u32> {
        let mut items: Vec<u32> = self
            .train_items
            .iter()
            .chain(&self.cold_items)
            .copied()
            .collect();
        items.sort_unstable();
        items
    }

    /// The tracks of `subset`: the train tracks (hot) or the cold tracks.
    pub fn subset_items(&self, subset: Subset) -> &[u32] {
        match subset {
            Subset::Hot => &self.train_items,
            Subset::Cold => &self.cold_items,
        }
    }

    /// A part's held-out tracks restricted to `subset`, users left with none dropped:
    /// the users (and targets) of the hot or the cold evaluation.
    pub fn held_subset(&self, part: Part, subset: Subset) -> Vec<HeldOut> {
        let want_cold = subset == Subset::Cold;
        self.part(part)
            .iter()
            .filter_map(|h| {
                let tracks: Vec<u32> = (h.tracks.iter().copied())
                    .filter(|&t| self.is_cold(t) == want_cold)
                    .collect();
                (!tracks.is_empty()).then_some(HeldOut {
                    user: h.user,
                    tracks,
                })
            })
            .collect()
    }
}

/// The cold tracks of `config`: `round(cold_items × n)` of the `n` tracks that occur in
/// the kept plays, drawn uniformly with the split's seed (its own stream), sorted.
fn draw_cold(interactions: &Interactions, n_tracks: usize, config: &SplitConfig) -> Vec<u32> {
    if config.cold_items <= 0.0 {
        return Vec::new();
    }
    let occurring: HashSet<u32> = interactions.track.iter().copied().collect();
    let mut tracks: Vec<u32> = occurring
        .into_iter()
        .filter(|&t| (t as usize) < n_tracks)
        .collect();
    tracks.sort_unstable();
    tracks.shuffle(&mut StdRng::seed_from_u64(
        config.seed.wrapping_add(COLD_STREAM),
    ));
    let n = (tracks.len() as f64 * config.cold_items).round() as usize;
    let mut cold = tracks[..n.min(tracks.len())].to_vec();
    cold.sort_unstable();
    cold
}

fn part_counts(held: &[HeldOut]) -> PartCounts {
    let mut items: Vec<u32> = held.iter().flat_map(|h| h.tracks.iter().copied()).collect();
    let interactions = items.len();
    items.sort_unstable();
    items.dedup();
    PartCounts {
        users: held.len(),
        items: items.len(),
        interactions,
    }
}

/// What `audiorec split` writes, so later commands reuse the same split: the parameters,
/// the Table 2 counts, and the validation and test user ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitFile {
    pub config: SplitConfig,
    pub counts: SplitCounts,
    pub validation_users: Vec<String>,
    pub test_users: Vec<String>,
}

impl SplitFile {
    pub fn new(split: &Split, users: &super::Vocab) -> Self {
        let ids = |h: &[HeldOut]| h.iter().map(|h| users.id(h.user).to_string()).collect();
        Self {
            config: split.config,
            counts: split.counts,
            validation_users: ids(&split.validation),
            test_users: ids(&split.test),
        }
    }

    /// Writes under a unique temporary name, then renames: a command reading the split
    /// while another (or the service's experiment) saves it sees the old or the new file
    /// whole.
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".split.{}.tmp", uuid::Uuid::new_v4()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, path)
    }

    pub fn load(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    }
}
