//! Training-loop tests on a tiny hand-made dataset: two genres of tracks, two groups of
//! users, each listening to one genre.
//!
//! Over 400 lines on purpose: the training tests and the serving-against-training tests
//! (`mod serving`) share one fixture, and serving is checked here because `recommend` may
//! not import `train`.

use std::path::Path;

use candle_core::Tensor;

use super::fit::{TrainData, fit};
use super::loss::{batch_loss, batch_scores, batch_scores_with};
use crate::dataset::split::HeldOut;
use crate::dataset::{Split, SplitConfig, SplitCounts, Vocab};
use crate::embeddings::Embeddings;
use crate::model::checkpoint::{CheckpointError, CheckpointPaths};
use crate::model::device::test_device;
use crate::model::shallow::checkpoint::{load, net_from_tensors};
use crate::model::shallow::net::{Table, matrix, random_table};
use crate::model::shallow::{ShallowError, ShallowNet, ShallowParams};
use crate::train::fit::{Quiet, timeless};

const DIM: usize = 6;

pub(crate) struct Fixture {
    pub embeddings: Embeddings,
    pub split: Split,
    pub users: Vocab,
}

/// 12 tracks (0-5 genre A, 6-11 genre B), 8 users (0-3 like A, 4-7 like B).
pub(crate) fn fixture() -> Fixture {
    let mut raw = Vec::new();
    for t in 0..12 {
        let genre = if t < 6 { 0 } else { 1 };
        for c in 0..DIM {
            let signal = if c % 2 == genre { 1.0 } else { 0.1 };
            raw.push(signal + 0.05 * ((t * 7 + c * 3) % 5) as f32);
        }
    }
    let embeddings = Embeddings::new("toy", raw, DIM, Path::new("toy.npy")).unwrap();
    let train: Vec<Vec<u32>> = (0..8)
        .map(|u| {
            let base = if u < 4 { 0 } else { 6 };
            (0..4).map(|i| base + (u as u32 + i) % 6).collect()
        })
        .collect();
    let validation = vec![
        HeldOut {
            user: 1,
            tracks: vec![5],
        },
        HeldOut {
            user: 6,
            tracks: vec![6, 11],
        },
    ];
    Fixture {
        embeddings,
        split: Split {
            config: SplitConfig::default(),
            train,
            train_items: (0..12).collect(),
            cold_items: Vec::new(),
            validation,
            test: Vec::new(),
            counts: SplitCounts::default(),
        },
        users: Vocab::from_ids((0..8).map(|u| format!("u{u}"))).unwrap(),
    }
}

fn small_params() -> ShallowParams {
    ShallowParams {
        batch_size: 8,
        negatives: 3,
        max_epochs: 3,
        lr: 1e-2,
        ..ShallowParams::new("toy")
    }
}

fn net(items_trainable: bool) -> ShallowNet {
    net_on(items_trainable, &test_device())
}

fn net_on(items_trainable: bool, dev: &candle_core::Device) -> ShallowNet {
    let f = fixture();
    let items = Table::new(
        matrix(f.embeddings.raw(), DIM, dev).unwrap(),
        items_trainable,
    )
    .unwrap();
    let users = Table::new(random_table(8, DIM, 1, dev).unwrap(), true).unwrap();
    ShallowNet::new(items, users, 4, 3, dev).unwrap()
}

fn abs_sum(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn gradients_reach_the_tower_and_users_but_never_a_frozen_item_table() {
    let net = net(false);
    // Margin 2 > any cosine gap, so every hinge term is active.
    let loss = batch_loss(&net, &[0, 5, 2], &[1, 7, 3], &[4, 6, 1, 0, 3, 7], 2, 2.0).unwrap();
    let grads = loss.backward().unwrap();
    let vars = net.named_vars();
    assert_eq!(vars.len(), 3);
    for (i, v) in vars.iter().map(|(_, v)| v).enumerate() {
        let g = grads
            .get(v)
            .unwrap_or_else(|| panic!("var {i} got no gradient"));
        assert!(abs_sum(g) > 0.0, "var {i} got a zero gradient");
    }
    assert!(
        grads.get(net.items.tensor()).is_none(),
        "the frozen item table got a gradient"
    );
    // The random variant learns the item table too.
    let net = net_random();
    let loss = batch_loss(&net, &[0, 5], &[1, 7], &[4, 6, 1, 0], 2, 2.0).unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(net.named_vars().len(), 4);
    for (_, v) in net.named_vars() {
        assert!(abs_sum(grads.get(&v).expect("a gradient")) > 0.0);
    }
}

fn net_random() -> ShallowNet {
    net(true)
}

/// On the CPU, where the fused pair-dot op runs (CUDA trains through the gather path).
#[test]
fn the_fused_and_gather_score_paths_agree() {
    let net = net_on(false, &candle_core::Device::Cpu);
    let (users, items, negs) = (
        [0u32, 5, 2, 5],
        [1u32, 7, 3, 1],
        [4u32, 6, 1, 0, 3, 7, 7, 1],
    );
    let (p1, n1) = batch_scores_with(&net, &users, &items, &negs, 2, true).unwrap();
    let (p2, n2) = batch_scores_with(&net, &users, &items, &negs, 2, false).unwrap();
    let close = |a: &Tensor, b: &Tensor| {
        let d = (a - b).unwrap();
        assert!(abs_sum(&d) < 1e-5, "{a} vs {b}");
    };
    close(&p1, &p2);
    close(&n1, &n2);
}

#[test]
fn training_leaves_a_frozen_item_table_byte_identical_and_learns() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let paths = CheckpointPaths::new(dir.path(), "toy");
    let data = TrainData {
        embeddings: &f.embeddings,
        split: &f.split,
        users: &f.users,
    };
    let params = small_params();
    let out = fit(&params, data, &paths, false, &test_device(), &Quiet).unwrap();
    let items: Vec<f32> = out
        .net
        .items
        .tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&items),
        bits(f.embeddings.raw()),
        "frozen items changed"
    );
    let first_user_init = f.embeddings.mean(&f.split.train[0]).unwrap();
    let first_user: Vec<f32> = out.net.users.tensor().get(0).unwrap().to_vec1().unwrap();
    assert_ne!(
        bits(&first_user),
        bits(&first_user_init),
        "the user table did not move"
    );
    let c = &out.checkpoint;
    assert_eq!(c.curve.len(), 3);
    assert_eq!(
        c.net.user_ids,
        (0..8).map(|u| format!("u{u}")).collect::<Vec<_>>()
    );
    assert!(
        c.curve[2].train_loss < c.curve[0].train_loss,
        "{:?}",
        c.curve
    );
    assert!(paths.weights().is_file() && paths.last().is_file() && paths.config().is_file());
    // The latest weights load back into a net that scores exactly as the trained one.
    let (ckpt, tensors) = load(&paths, true, &test_device()).unwrap();
    assert!(
        !tensors.contains_key("items"),
        "a frozen table is not stored"
    );
    let back = net_from_tensors(&ckpt.net, &tensors, f.embeddings.raw(), &test_device()).unwrap();
    let args = ([0u32, 7], [2u32, 9], [3u32, 4, 1, 2]);
    let (p1, n1) = batch_scores(&out.net, &args.0, &args.1, &args.2, 2).unwrap();
    let (p2, n2) = batch_scores(&back, &args.0, &args.1, &args.2, 2).unwrap();
    assert_eq!(p1.to_vec1::<f32>().unwrap(), p2.to_vec1::<f32>().unwrap());
    assert_eq!(n1.to_vec2::<f32>().unwrap(), n2.to_vec2::<f32>().unwrap());
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does_and_refuses_other_parameters() {
    let f = fixture();
    let data = TrainData {
        embeddings: &f.embeddings,
        split: &f.split,
        users: &f.users,
    };
    let whole_dir = tempfile::tempdir().unwrap();
    let whole_paths = CheckpointPaths::new(whole_dir.path(), "toy");
    let mut params = ShallowParams {
        max_epochs: 4,
        ..small_params()
    };
    let whole = fit(&params, data, &whole_paths, false, &test_device(), &Quiet).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let paths = CheckpointPaths::new(dir.path(), "toy");
    params.max_epochs = 2;
    let first = fit(&params, data, &paths, false, &test_device(), &Quiet).unwrap();
    assert_eq!(
        first.checkpoint.state.finished.as_deref(),
        Some("max epochs")
    );
    params.max_epochs = 4;
    let resumed = fit(&params, data, &paths, true, &test_device(), &Quiet).unwrap();
    assert_eq!(
        timeless(&resumed.checkpoint.curve),
        timeless(&whole.checkpoint.curve),
        "optimiser moments and random draws continue as if never interrupted"
    );
    let users = |n: &ShallowNet| n.users.tensor().to_vec2::<f32>().unwrap();
    assert_eq!(users(&resumed.net), users(&whole.net));
    params.lr = 0.5;
    params.max_epochs = 6;
    match fit(&params, data, &paths, true, &test_device(), &Quiet) {
        Err(ShallowError::Checkpoint(CheckpointError::Mismatch { .. })) => {}
        other => panic!(
            "expected a mismatch, got {:?}",
            other.map(|o| o.checkpoint.curve.len())
        ),
    }
}

/// What is served is what was trained: the recommender against the trained net.
mod serving {
    use std::path::Path;
    use std::sync::Arc;

    use candle_core::{Device, Tensor};

    use super::{Fixture, fixture};
    use crate::embeddings::Embeddings;
    use crate::index::{HnswParams, IndexKind};
    use crate::model::checkpoint::{CheckpointError, CheckpointPaths};
    use crate::model::shallow::checkpoint::{load, net_from_tensors};
    use crate::model::shallow::net::matrix;
    use crate::model::shallow::{ShallowError, ShallowParams};
    use crate::recommend::shallow::ShallowRecommender;
    use crate::recommend::{Query, RecommendError, Recommender};
    use crate::train::fit::Quiet;
    use crate::train::shallow::{TrainData, fit};

    /// Trains the toy model; returns the checkpoint folder and the fixture.
    fn trained() -> (tempfile::TempDir, Fixture) {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let params = ShallowParams {
            batch_size: 8,
            negatives: 3,
            max_epochs: 3,
            lr: 1e-2,
            ..ShallowParams::new("toy")
        };
        let data = TrainData {
            embeddings: &f.embeddings,
            split: &f.split,
            users: &f.users,
        };
        let paths = CheckpointPaths::new(dir.path(), "shallow-toy");
        fit(&params, data, &paths, false, &Device::Cpu, &Quiet).unwrap();
        (dir, f)
    }

    fn expected(net_vec: &Tensor, items: &Tensor) -> Vec<f32> {
        items
            .matmul(&net_vec.t().unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn a_loaded_checkpoint_scores_as_the_trained_net_and_serves_every_kind_of_user() {
        let (dir, f) = trained();
        // One more track than training saw: a track added later, with its embedding.
        let mut raw = f.embeddings.raw().to_vec();
        raw.extend([0.2f32, 1.0, 0.3, 0.9, 0.1, 1.1]);
        let embeddings = Arc::new(Embeddings::new("toy", raw, 6, Path::new("toy.npy")).unwrap());
        let items: Vec<u32> = (0..13).collect();
        let rec = ShallowRecommender::load(
            dir.path(),
            embeddings.clone(),
            &items,
            IndexKind::Exact,
            HnswParams::default(),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(rec.model(), "shallow");
        assert_eq!(rec.index().len(), 13, "the new track is indexed");

        // Reference: the best weights through candle directly.
        let paths = CheckpointPaths::new(dir.path(), "shallow-toy");
        let (ckpt, tensors) = load(&paths, false, &Device::Cpu).unwrap();
        let net = net_from_tensors(&ckpt.net, &tensors, embeddings.raw(), &Device::Cpu).unwrap();
        let item_out = net
            .embed(&matrix(embeddings.raw(), 6, &Device::Cpu).unwrap())
            .unwrap();
        let user_out = net
            .embed(
                net.users
                    .tensor()
                    .get(4)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap()
                    .as_ref(),
            )
            .unwrap();
        let want = expected(&user_out, &item_out);

        // A stored user: their learned row, every track but the history, by score.
        let history = &f.split.train[4];
        let q = Query {
            user: Some("u4"),
            history,
            k: 13,
        };
        let got = rec.recommend(&q).unwrap();
        assert_eq!(got.len(), 13 - history.len());
        assert!(got.windows(2).all(|w| w[0].score >= w[1].score));
        for s in &got {
            assert!(!history.contains(&s.track));
            assert!(
                (s.score - want[s.track as usize]).abs() < 1e-5,
                "{s:?} vs {}",
                want[s.track as usize]
            );
        }
        assert!(
            got.iter().any(|s| s.track == 12),
            "the new track is recommendable"
        );

        // An unknown or anonymous user: the mean of the history through the tower.
        let mean = matrix(&embeddings.mean(history).unwrap(), 6, &Device::Cpu).unwrap();
        let want_anon = expected(&net.embed(&mean).unwrap(), &item_out);
        for user in [None, Some("someone-new")] {
            let got = rec
                .recommend(&Query {
                    user,
                    history,
                    k: 5,
                })
                .unwrap();
            assert_eq!(got.len(), 5);
            for s in &got {
                assert!((s.score - want_anon[s.track as usize]).abs() < 1e-5);
            }
        }
        assert!(matches!(
            rec.recommend(&Query {
                user: None,
                history: &[],
                k: 5
            }),
            Err(RecommendError::EmptyHistory)
        ));
        assert!(matches!(
            rec.recommend(&Query {
                user: None,
                history: &[99],
                k: 5
            }),
            Err(RecommendError::UnknownTrack(99))
        ));
    }

    #[test]
    fn a_checkpoint_refuses_another_backend() {
        let (dir, f) = trained();
        let other =
            Embeddings::new("other", f.embeddings.raw().to_vec(), 6, Path::new("o.npy")).unwrap();
        let err = ShallowRecommender::load(
            &dir.path().join("shallow-toy.json"),
            Arc::new(other),
            &[0, 1],
            IndexKind::Exact,
            HnswParams::default(),
            &Device::Cpu,
        );
        assert!(matches!(
            err,
            Err(ShallowError::Checkpoint(CheckpointError::Mismatch { .. }))
        ));
    }
}
