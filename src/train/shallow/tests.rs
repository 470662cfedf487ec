//! Training-loop tests on a tiny hand-made dataset: two genres of tracks, two groups of
//! users, each listening to one genre.

use std::path::Path;

use candle_core::Tensor;

use super::checkpoint::{Checkpoint, CheckpointPaths};
use super::fit::{Quiet, TrainData, fit, net_from_checkpoint};
use super::loss::{batch_loss, batch_scores, batch_scores_with};
use super::model::{ShallowNet, Table, matrix, random_table};
use super::{ShallowError, ShallowParams};
use crate::dataset::split::HeldOut;
use crate::dataset::{Split, SplitConfig, SplitCounts, Vocab};
use crate::embeddings::Embeddings;

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
    net_on(items_trainable, &crate::train::test_device())
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
    let vars = net.trainable_vars();
    assert_eq!(vars.len(), 3);
    for (i, v) in vars.iter().enumerate() {
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
    assert_eq!(net.trainable_vars().len(), 4);
    for v in net.trainable_vars() {
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
    let out = fit(
        &params,
        data,
        &paths,
        false,
        &crate::train::test_device(),
        &Quiet,
    )
    .unwrap();
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
    let c = &out.config;
    assert_eq!(c.curve.len(), 3);
    assert_eq!(
        c.user_ids,
        (0..8).map(|u| format!("u{u}")).collect::<Vec<_>>()
    );
    assert!(
        c.curve[2].train_loss < c.curve[0].train_loss,
        "{:?}",
        c.curve
    );
    assert!(paths.weights().is_file() && paths.last().is_file() && paths.config().is_file());
    // The latest weights load back into a net that scores exactly as the trained one.
    let ckpt = Checkpoint::load(&paths, true, &crate::train::test_device()).unwrap();
    assert!(
        !ckpt.tensors.contains_key("items"),
        "a frozen table is not stored"
    );
    let back = net_from_checkpoint(&ckpt, &f.embeddings, &crate::train::test_device()).unwrap();
    let args = ([0u32, 7], [2u32, 9], [3u32, 4, 1, 2]);
    let (p1, n1) = batch_scores(&out.net, &args.0, &args.1, &args.2, 2).unwrap();
    let (p2, n2) = batch_scores(&back, &args.0, &args.1, &args.2, 2).unwrap();
    assert_eq!(p1.to_vec1::<f32>().unwrap(), p2.to_vec1::<f32>().unwrap());
    assert_eq!(n1.to_vec2::<f32>().unwrap(), n2.to_vec2::<f32>().unwrap());
}

#[test]
fn a_resumed_run_continues_the_curve_and_refuses_other_parameters() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let paths = CheckpointPaths::new(dir.path(), "toy");
    let data = TrainData {
        embeddings: &f.embeddings,
        split: &f.split,
        users: &f.users,
    };
    let mut params = ShallowParams {
        max_epochs: 2,
        ..small_params()
    };
    let first = fit(
        &params,
        data,
        &paths,
        false,
        &crate::train::test_device(),
        &Quiet,
    )
    .unwrap();
    assert_eq!(first.config.state.finished.as_deref(), Some("max epochs"));
    params.max_epochs = 4;
    let resumed = fit(
        &params,
        data,
        &paths,
        true,
        &crate::train::test_device(),
        &Quiet,
    )
    .unwrap();
    let epochs: Vec<usize> = resumed.config.curve.iter().map(|r| r.epoch).collect();
    assert_eq!(epochs, vec![1, 2, 3, 4]);
    assert_eq!(resumed.config.curve[..2], first.config.curve[..]);
    params.lr = 0.5;
    params.max_epochs = 6;
    match fit(
        &params,
        data,
        &paths,
        true,
        &crate::train::test_device(),
        &Quiet,
    ) {
        Err(ShallowError::Mismatch { .. }) => {}
        other => panic!(
            "expected a mismatch, got {:?}",
            other.map(|o| o.config.curve.len())
        ),
    }
}
