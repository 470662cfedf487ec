//! KNN on the small demo data: the HNSW index agrees with the exact scan, exclusions are
//! honoured by both, and HitRate@50 orders the backends by how much signal they carry.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use audiorec::dataset::demo::BACKENDS;
use audiorec::dataset::split::HeldOut;
use audiorec::dataset::{Dataset, Split, SplitConfig};
use audiorec::embeddings::manifest::Manifest;
use audiorec::eval::{Estimate, aggregate, score_user};
use audiorec::index::{ExactIndex, HnswParams, IndexKind, NeighbourIndex};
use audiorec::recommend::knn::KnnRecommender;
use audiorec::recommend::{Query, Recommender, Scored};

use crate::helpers::small_demo;

const K: usize = 50;

fn split(ds: &Dataset) -> Split {
    Split::new(&ds.interactions, ds.tracks.len(), SplitConfig::default())
}

/// Validation and test users together: more users, tighter estimates.
fn held_out(split: &Split) -> Vec<&HeldOut> {
    split.validation.iter().chain(&split.test).collect()
}

fn knn(ds: &Dataset, split: &Split, backend: &str, kind: IndexKind) -> KnnRecommender {
    let emb = Arc::new(ds.load_embeddings(backend).unwrap());
    KnnRecommender::new(emb, &split.train_items, kind, HnswParams::default(), None)
}

/// What several tests share, computed once per process: the paper split of the demo data,
/// the musicnn recommenders over both graphs and the exact top-50 of every held-out user (validation
/// then test) for musicnn. An HNSW build and an unoptimised exact scan over all users are
/// the expensive parts of this binary.
struct Musicnn {
    split: Split,
    hnsw: KnnRecommender,
    /// The same over the `hnsw_rs` crate's graph.
    hnsw_rs: KnnRecommender,
    exact_lists: Vec<Vec<Scored>>,
}

fn musicnn() -> &'static Musicnn {
    static FIXTURE: OnceLock<Musicnn> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ds = small_demo();
        let split = split(ds);
        let hnsw = knn(ds, &split, "musicnn", IndexKind::Hnsw);
        let hnsw_rs = knn(ds, &split, "musicnn", IndexKind::HnswRs);
        let exact = knn(ds, &split, "musicnn", IndexKind::Exact);
        let exact_lists = recommend_all(&exact, &split);
        Musicnn {
            split,
            hnsw,
            hnsw_rs,
            exact_lists,
        }
    })
}

/// Top-50 lists of every held-out user, in `held_out` order.
fn recommend_all(rec: &dyn Recommender, split: &Split) -> Vec<Vec<Scored>> {
    let queries: Vec<Query> = held_out(split)
        .iter()
        .map(|h| Query {
            user: None,
            history: &split.train[h.user as usize],
            k: K,
        })
        .collect();
    rec.recommend_batch(&queries)
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

/// HitRate@50 with its 95% half-width over the held-out users.
fn hit_rate(split: &Split, lists: &[Vec<Scored>]) -> Estimate {
    let per_user: Vec<_> = held_out(split)
        .iter()
        .zip(lists)
        .map(|(h, list)| {
            let ids: Vec<u32> = list.iter().map(|s| s.track).collect();
            score_user(&ids, &h.tracks, K)
        })
        .collect();
    aggregate(&per_user).hit_rate
}

#[test]
fn demo_data_declares_its_backends_in_a_manifest() {
    let ds = small_demo();
    let m = Manifest::for_dir(&ds.layout.embeddings_dir()).unwrap();
    let dims: Vec<(&str, usize)> = m
        .backends
        .iter()
        .map(|(k, v)| (k.as_str(), v.dim))
        .collect();
    let mut expected: Vec<(&str, usize)> = BACKENDS.iter().map(|b| (b.name, b.dim)).collect();
    expected.sort();
    assert_eq!(dims, expected);
}

/// Both graphs (ours and hnsw_rs's) serve valid lists close to the exact scan's.
#[test]
fn hnsw_recall_at_50_against_the_exact_scan_is_at_least_095() {
    let f = musicnn();
    let split = &f.split;
    let items: HashSet<u32> = split.train_items.iter().copied().collect();
    for (graph, rec) in [("ours", &f.hnsw), ("hnsw_rs", &f.hnsw_rs)] {
        let approx = recommend_all(rec, split);
        let mut recall = 0.0;
        for ((h, t), a) in held_out(split).iter().zip(&f.exact_lists).zip(&approx) {
            let history: HashSet<u32> = split.train[h.user as usize].iter().copied().collect();
            for list in [t, a] {
                assert_eq!(list.len(), K, "{graph}");
                assert!(
                    list.iter().all(|s| !history.contains(&s.track)),
                    "{graph}: history excluded"
                );
                assert!(
                    list.iter().all(|s| items.contains(&s.track)),
                    "{graph}: train items only"
                );
                assert!(
                    list.windows(2).all(|w| w[0].score >= w[1].score),
                    "{graph}: sorted"
                );
            }
            let truth: HashSet<u32> = t.iter().map(|s| s.track).collect();
            recall += a.iter().filter(|s| truth.contains(&s.track)).count() as f64 / K as f64;
        }
        let recall = recall / approx.len() as f64;
        assert!(
            recall >= 0.95,
            "{graph} recall@50 vs exact = {recall:.4} over {} users",
            approx.len()
        );
    }
}

#[test]
fn every_index_honours_an_explicit_exclusion_set() {
    let f = musicnn();
    let emb = small_demo().load_embeddings("musicnn").unwrap();
    let ids = &f.split.train_items;
    let rows = emb.normalized_rows(ids);
    let exact = ExactIndex::new(emb.dim, ids.clone(), rows);
    let (hnsw, hnsw_rs) = (f.hnsw.index(), f.hnsw_rs.index());
    let query = emb.normalized_row(ids[17]);
    let top = exact.search(&query, K, &HashSet::new());
    // The query item itself is its own nearest neighbour.
    assert_eq!(top[0].id, ids[17]);
    assert!((top[0].score - 1.0).abs() < 1e-5);
    // Exclude the best 30 and every other id that is even: none may come back.
    let mut exclude: HashSet<u32> = top[..30].iter().map(|n| n.id).collect();
    exclude.extend(ids.iter().filter(|&&t| t % 2 == 0));
    for index in [&exact as &dyn NeighbourIndex, hnsw, hnsw_rs] {
        let got = index.search(&query, K, &exclude);
        assert_eq!(got.len(), K);
        assert!(got.iter().all(|n| !exclude.contains(&n.id)));
    }
    // Excluding all but 60 items: all still find 50, all among the 60 (the graphs widen
    // their beams until they hold k allowed items).
    let allowed: HashSet<u32> = ids
        .iter()
        .step_by(ids.len() / 60)
        .take(60)
        .copied()
        .collect();
    let all_but: HashSet<u32> = ids
        .iter()
        .copied()
        .filter(|t| !allowed.contains(t))
        .collect();
    for index in [&exact as &dyn NeighbourIndex, hnsw, hnsw_rs] {
        let got = index.search(&query, K, &all_but);
        assert_eq!(got.len(), K);
        assert!(got.iter().all(|n| allowed.contains(&n.id)));
    }
    // And the exact answer under exclusion is the unexcluded tail of a larger search.
    let wide = exact.search(&query, ids.len(), &HashSet::new());
    let expected: Vec<u32> = wide
        .iter()
        .map(|n| n.id)
        .filter(|id| !exclude.contains(id))
        .take(K)
        .collect();
    let got: Vec<u32> = exact
        .search(&query, K, &exclude)
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(got, expected);
}

/// HitRate@k of recommending k tracks uniformly at random among the train items the user
/// has not heard: 1 - C(M - h, k) / C(M, k) with M candidates and h held-out tracks.
fn chance_hit_rate(split: &Split, users: &[&HeldOut], k: usize) -> f64 {
    let n = split.train_items.len();
    let per_user = users.iter().map(|h| {
        let m = n - split.train[h.user as usize].len();
        let miss: f64 = (0..k.min(m))
            .map(|i| (m - h.tracks.len()).saturating_sub(i) as f64 / (m - i) as f64)
            .product();
        1.0 - miss
    });
    per_user.sum::<f64>() / users.len() as f64
}

#[test]
fn hit_rate_orders_backends_by_information_and_noise_is_at_chance() {
    let (ds, f) = (small_demo(), musicnn());
    let split = &f.split;
    let users = held_out(split);
    let exact_hit_rate = |backend| {
        hit_rate(
            split,
            &recommend_all(&knn(ds, split, backend, IndexKind::Exact), split),
        )
    };
    let musicnn = hit_rate(split, &f.exact_lists);
    let (mfcc, noise) = (exact_hit_rate("mfcc"), exact_hit_rate("noise"));
    let chance = chance_hit_rate(split, &users, K);
    let n = users.len() as f64;
    // Binomial standard error of a chance-level hit rate over these users.
    let se = (chance * (1.0 - chance) / n).sqrt();
    let report = format!(
        "HitRate@50 musicnn {:.4} ± {:.4}, mfcc {:.4} ± {:.4}, noise {:.4} ± {:.4}, \
         chance {chance:.4} (se {se:.4}, {n} users)",
        musicnn.mean,
        musicnn.half_width.unwrap_or(0.0),
        mfcc.mean,
        mfcc.half_width.unwrap_or(0.0),
        noise.mean,
        noise.half_width.unwrap_or(0.0)
    );
    eprintln!("{report}");
    assert!(musicnn.mean > mfcc.mean, "{report}");
    assert!(mfcc.mean > noise.mean, "{report}");
    assert!((noise.mean - chance).abs() <= 4.0 * se, "{report}");
}

/// A recommender that remembers user vectors answers exactly as one that does not:
/// for a returning user, after a new listen (a changed history), and after the user was
/// evicted to make room for another.
#[test]
fn remembered_user_vectors_never_answer_a_changed_history_stale() {
    let ds = small_demo();
    let split = split(ds);
    let plain = knn(ds, &split, "musicnn", IndexKind::Exact);
    let memo = knn(ds, &split, "musicnn", IndexKind::Exact).remember_users(1);
    let history = &split.train[split.validation[0].user as usize];
    let other = &split.train[split.validation[1].user as usize];
    let grown: Vec<u32> = history.iter().chain(&other[..3]).copied().collect();
    let ask = |r: &KnnRecommender, user: &str, h: &[u32]| {
        r.recommend(&Query {
            user: Some(user),
            history: h,
            k: K,
        })
        .unwrap()
    };
    for (user, h) in [
        ("a", history.as_slice()),
        ("a", history.as_slice()), // remembered
        ("a", grown.as_slice()),   // a new listen: recomputed
        ("b", other.as_slice()),   // evicts "a" (capacity 1)
        ("a", history.as_slice()),
    ] {
        assert_eq!(ask(&memo, user, h), ask(&plain, user, h), "{user}");
    }
    assert_ne!(ask(&plain, "a", history), ask(&plain, "a", &grown));
}
