//! The cold-start split and its evaluation (issue 12, item 8): a seeded fraction of the
//! tracks held out of training with their held-out plays kept, checked against a
//! reference computed here from the raw plays; cold tracks recommendable by KNN and the
//! Shallow Net; hot and cold metrics against a hand-computed case.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use audiorec::dataset::demo::{Scale, generate};
use audiorec::dataset::split::{HeldOut, Part, Subset};
use audiorec::dataset::time::parse_timestamp;
use audiorec::dataset::{Dataset, Layout, MissingTracks, Split, SplitConfig};
use audiorec::embeddings::Embeddings;
use audiorec::eval::{Metrics, evaluate_held, split_cases};
use audiorec::index::{HnswParams, IndexKind};
use audiorec::model::checkpoint::CheckpointPaths;
use audiorec::model::shallow::ShallowParams;
use audiorec::recommend::knn::KnnRecommender;
use audiorec::recommend::shallow::ShallowRecommender;
use audiorec::recommend::{Query, Recommender};
use audiorec::train::fit::Quiet;
use candle_core::Device;

use crate::helpers::{TestDir, options};

const TRACKS: usize = 40;
const USERS: usize = 30;

/// Odd track ids (leading zeros, signs, non-ASCII, slashes), in catalog order.
fn track_id(t: usize) -> String {
    match t % 4 {
        0 => format!("0{t:03}"),
        1 => format!("-{t}"),
        2 => format!("trk/ü{t}"),
        _ => format!("x{t}"),
    }
}

/// Plays with skewed popularity (track t is heard by about USERS/(1+t/4) users), many
/// plays sharing one timestamp, repeats, and both sides of the test date.
fn plays() -> Vec<(String, String, String)> {
    let stamps = [
        "2019-03-01 00:00:00",
        "2019-09-09 09:09:09",
        "2020-02-19 23:59:59",
        "2020-02-20 00:00:00",
        "2020-03-01 00:00:00",
    ];
    let mut rows = Vec::new();
    for u in 0..USERS {
        for t in 0..TRACKS {
            let heard = (u * 7 + t * 13) % (1 + t / 4) == 0;
            if heard {
                let user = format!("user {u}");
                let stamp = stamps[(u * 3 + t) % stamps.len()];
                rows.push((user.clone(), track_id(t), stamp.to_string()));
                // A repeat at the same second and one later: ties and play counts.
                rows.push((user.clone(), track_id(t), stamp.to_string()));
                rows.push((user, track_id(t), "2020-04-01 00:00:00".to_string()));
            }
        }
    }
    rows
}

fn odd_dataset() -> (TestDir, Dataset, Vec<(String, String, String)>) {
    let d = TestDir::new();
    let ids: Vec<String> = (0..TRACKS).map(track_id).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    d.track_ids(&id_refs);
    d.npy("feat", TRACKS, 3, |r, c| ((r * 3 + c) % 7) as f32 - 2.5);
    let rows = plays();
    let refs: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(u, t, s)| (u.as_str(), t.as_str(), s.as_str()))
        .collect();
    d.plays(&refs);
    let ds = Dataset::import(&d.layout(), options(MissingTracks::Fail), &|_| {}).unwrap();
    (d, ds, rows)
}

fn cold_config(fraction: f64, seed: u64) -> SplitConfig {
    SplitConfig {
        cold_items: fraction,
        seed,
        ..SplitConfig::default()
    }
}

/// (user id, track id) pairs of a split's held-out parts.
fn held_pairs(ds: &Dataset, split: &Split) -> BTreeSet<(String, String)> {
    (split.validation.iter().chain(&split.test))
        .flat_map(|h| {
            h.tracks.iter().map(move |&t| {
                let user = ds.interactions.users.id(h.user).to_string();
                (user, ds.tracks.id(t).to_string())
            })
        })
        .collect()
}

#[test]
fn the_seeded_fraction_leaves_train_and_its_held_out_plays_stay() {
    let (_d, ds, rows) = odd_dataset();
    let split = Split::new(&ds.interactions, ds.tracks.len(), cold_config(0.25, 9));
    let cold: BTreeSet<String> = split
        .cold_items
        .iter()
        .map(|&t| ds.tracks.id(t).to_string())
        .collect();

    // The reference, from the raw rows: first listen per (user, track).
    let test_from = SplitConfig::default().test_from;
    let mut first: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (u, t, s) in &rows {
        let ts = parse_timestamp(s.as_bytes()).unwrap();
        let e = first.entry((u.clone(), t.clone())).or_insert(ts);
        *e = (*e).min(ts);
    }
    let occurring: BTreeSet<&String> = first.keys().map(|(_, t)| t).collect();
    assert_eq!(
        cold.len(),
        (occurring.len() as f64 * 0.25).round() as usize,
        "a quarter of the tracks that occur"
    );
    assert!(cold.iter().all(|t| occurring.contains(t)));
    let train: BTreeSet<&(String, String)> = first
        .iter()
        .filter(|((_, t), ts)| **ts < test_from && !cold.contains(t))
        .map(|(k, _)| k)
        .collect();
    let train_users: BTreeSet<&String> = train.iter().map(|(u, _)| u).collect();
    let train_tracks: BTreeSet<&String> = train.iter().map(|(_, t)| t).collect();
    let expected: BTreeSet<(String, String)> = first
        .iter()
        .filter(|((u, t), ts)| {
            **ts >= test_from
                && train_users.contains(u)
                && (train_tracks.contains(t) || cold.contains(t))
        })
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(held_pairs(&ds, &split), expected);

    // No train sequence holds a cold track; the train items are exactly the reference's.
    for seq in &split.train {
        assert!(seq.iter().all(|&t| !split.is_cold(t)));
    }
    let items: BTreeSet<String> = split
        .train_items
        .iter()
        .map(|&t| ds.tracks.id(t).to_string())
        .collect();
    assert_eq!(items, train_tracks.into_iter().cloned().collect());
    assert_eq!(split.counts.train.interactions, train.len());

    // Cold held-out plays exist, are counted, and are what `held_subset` returns.
    let cold_test = split.held_subset(Part::Test, Subset::Cold);
    let hot_test = split.held_subset(Part::Test, Subset::Hot);
    assert!(!cold_test.is_empty() && !hot_test.is_empty());
    let n = |h: &[HeldOut]| h.iter().map(|h| h.tracks.len()).sum::<usize>();
    assert_eq!(n(&cold_test) + n(&hot_test), n(&split.test));
    assert_eq!(split.counts.cold.tracks, cold.len());
    assert_eq!(split.counts.cold.test.interactions, n(&cold_test));
    assert_eq!(split.counts.cold.test.users, cold_test.len());
    assert_eq!(
        split.recommendable().len(),
        split.train_items.len() + cold.len()
    );

    // Same seed, same split; another seed draws other cold tracks.
    let again = Split::new(&ds.interactions, ds.tracks.len(), cold_config(0.25, 9));
    assert_eq!(again.cold_items, split.cold_items);
    assert_eq!(again.train, split.train);
    assert_eq!(again.test, split.test);
    let other = Split::new(&ds.interactions, ds.tracks.len(), cold_config(0.25, 10));
    assert_ne!(other.cold_items, split.cold_items);
}

#[test]
fn without_cold_items_the_split_and_its_file_are_as_before() {
    let (_d, ds, _) = odd_dataset();
    let paper = Split::new(&ds.interactions, ds.tracks.len(), SplitConfig::default());
    let zero = Split::new(&ds.interactions, ds.tracks.len(), cold_config(0.0, 42));
    assert!(zero.cold_items.is_empty() && !zero.has_cold());
    assert_eq!(
        (zero.train, zero.validation, zero.test),
        (paper.train, paper.validation, paper.test)
    );
    assert_eq!(zero.counts, paper.counts);
    let json = serde_json::to_string(&SplitConfig::default()).unwrap();
    assert!(!json.contains("cold"), "{json}");
    let json = serde_json::to_string(&paper.counts).unwrap();
    assert!(!json.contains("cold"), "{json}");
    // A split with cold tracks records the fraction and reads back.
    let c = cold_config(0.1, 3);
    let back: SplitConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

/// Unit vectors at `degrees`: the cosine ranking is the order of angular distance.
fn at_angles(degrees: &[f64]) -> Arc<Embeddings> {
    let raw: Vec<f32> = degrees
        .iter()
        .flat_map(|d| [d.to_radians().cos() as f32, d.to_radians().sin() as f32])
        .collect();
    Arc::new(Embeddings::new("angles", raw, 2, Path::new("angles.npy")).unwrap())
}

#[test]
fn hot_and_cold_metrics_match_a_hand_computed_case() {
    // Hot tracks 0..=3, cold 4..=6. User 0 heard track 0 (0°) and holds out hot 2 and
    // cold 5, 6; user 1 heard track 2 (50°) and holds out hot 3 only.
    let e = at_angles(&[0.0, 10.0, 50.0, 30.0, 20.0, 40.0, 80.0]);
    let split = Split {
        config: cold_config(0.4, 1),
        train: vec![vec![0], vec![2]],
        train_items: vec![0, 1, 2, 3],
        cold_items: vec![4, 5, 6],
        validation: Vec::new(),
        test: vec![
            HeldOut {
                user: 0,
                tracks: vec![2, 5, 6],
            },
            HeldOut {
                user: 1,
                tracks: vec![3],
            },
        ],
        counts: Default::default(),
    };
    let mut users = audiorec::dataset::Vocab::new();
    users.intern("u0");
    users.intern("u1");
    let knn = |items: &[u32]| {
        KnnRecommender::new(
            e.clone(),
            items,
            IndexKind::Exact,
            HnswParams::default(),
            None,
        )
    };
    let k = 3;
    let run = |subset: Option<Subset>| {
        let (items, held) = match subset {
            Some(s) => (
                split.subset_items(s).to_vec(),
                split.held_subset(Part::Test, s),
            ),
            None => (split.recommendable(), split.test.clone()),
        };
        let evaluation = evaluate_held(&knn(&items), &split, &held, &users, k).unwrap();
        (held.len(), evaluation.per_user)
    };
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} != {b}");
    let check = |m: &Metrics<f64>, hit: f64, recall: f64, ndcg: f64| {
        close(m.hit_rate, hit);
        close(m.recall, recall);
        close(m.ndcg, ndcg);
    };
    // Hot: user 0 ranks 1 (10°), 3 (30°), 2 (50°): the hit is third, NDCG 1/log2(4).
    // User 1 ranks 3 (20° away), 1, 0: the hit is first.
    let (n, hot) = run(Some(Subset::Hot));
    assert_eq!(n, 2);
    check(&hot[0], 1.0, 1.0, 0.5);
    check(&hot[1], 1.0, 1.0, 1.0);
    // Cold: only user 0; ranks 4 (20°), 5 (40°), 6 (80°): hits second and third.
    let (n, cold) = run(Some(Subset::Cold));
    assert_eq!(n, 1, "a user without cold held-out tracks is left out");
    let ideal = 1.0 + 1.0 / 3f64.log2();
    check(&cold[0], 1.0, 1.0, (1.0 / 3f64.log2() + 0.5) / ideal);
    // The whole list for user 0 is 1, 4, 3 (10°, 20°, 30°): no held-out track in it.
    let (_, all) = run(None);
    check(&all[0], 0.0, 0.0, 0.0);
    // Through `split_cases` the hot case of user 0 sees the train history only.
    let hot_held = split.held_subset(Part::Test, Subset::Hot);
    let cases = split_cases(&split, &hot_held, &users);
    assert_eq!(
        (cases[0].history, cases[0].held_out),
        (&[0u32][..], &[2u32][..])
    );
}

/// Tiny demo data with a fifth of its tracks cold.
fn tiny_cold() -> (tempfile::TempDir, Dataset, Split) {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), Scale::Tiny, 3).unwrap();
    let ds = Dataset::open(&Layout::new(dir.path()), options(MissingTracks::Fail)).unwrap();
    let split = Split::new(&ds.interactions, ds.tracks.len(), cold_config(0.2, 42));
    assert!(split.has_cold());
    (dir, ds, split)
}

/// How many of the test users' top-50 lists hold a cold track.
fn lists_with_cold(rec: &dyn Recommender, ds: &Dataset, split: &Split) -> usize {
    let users = &ds.interactions.users;
    let queries: Vec<Query> = split_cases(split, &split.test, users)
        .iter()
        .map(|c| Query {
            user: c.user,
            history: c.history,
            k: 50,
        })
        .collect();
    rec.recommend_batch(&queries)
        .into_iter()
        .filter(|l| l.as_ref().unwrap().iter().any(|s| split.is_cold(s.track)))
        .count()
}

#[test]
fn knn_and_the_shallow_net_recommend_cold_tracks_from_their_content() {
    let (dir, ds, split) = tiny_cold();
    let e = Arc::new(ds.load_embeddings("musicnn").unwrap());
    let items = split.recommendable();
    let knn = KnnRecommender::new(
        e.clone(),
        &items,
        IndexKind::Exact,
        HnswParams::default(),
        None,
    );
    assert!(
        lists_with_cold(&knn, &ds, &split) > 0,
        "KNN recommends cold tracks"
    );

    let paths = CheckpointPaths::new(dir.path(), "shallow-musicnn");
    let params = ShallowParams {
        max_epochs: 1,
        batch_size: 2_000,
        ..ShallowParams::new("musicnn")
    };
    let data = audiorec::train::shallow::TrainData {
        embeddings: &e,
        split: &split,
        users: &ds.interactions.users,
    };
    audiorec::train::shallow::fit(&params, data, &paths, false, &Device::Cpu, &Quiet).unwrap();
    let shallow = ShallowRecommender::load(
        &paths.config(),
        e,
        &items,
        IndexKind::Exact,
        HnswParams::default(),
        &Device::Cpu,
    )
    .unwrap();
    assert!(
        lists_with_cold(&shallow, &ds, &split) > 0,
        "the Shallow Net recommends cold tracks"
    );
    // The control is the same backend, rows permuted: loaded by name.
    let shuffled = ds.load_embeddings("musicnn-shuffled").unwrap();
    assert_eq!(shuffled.backend, "musicnn-shuffled");
    assert_ne!(shuffled.raw(), ds.load_embeddings("musicnn").unwrap().raw());
}
