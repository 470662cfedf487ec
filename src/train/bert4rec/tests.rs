//! Behaviour of the encoder, loss, training loop and checkpoints on tiny hand-made cases.

use candle_core::Tensor;
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::fit::{TrainData, fit};
use crate::dataset::split::HeldOut;
use crate::dataset::{Split, SplitConfig, SplitCounts};
use crate::embeddings::Embeddings;
use crate::model::bert4rec::batch::{Specials, training_batch};
use crate::model::bert4rec::checkpoint::{self, default_name};
use crate::model::bert4rec::{Bert4RecConfig, Encoder, FitConfig, ItemInit, Mode, ModelConfig};
use crate::model::checkpoint::{
    self as ckpt, Checkpoint, CheckpointPaths, DataFingerprint, FORMAT,
};
use crate::model::device::test_device;
use crate::train::fit::{Quiet, initial_state, timeless};

const N: usize = 24;
const H: usize = 8;

fn config(item_init: ItemInit) -> ModelConfig {
    ModelConfig {
        intermediate: 16,
        max_len: 12,
        ..ModelConfig::paper(item_init, N, H)
    }
}

/// A content matrix with structure: track t is near track t + 1.
fn content() -> Vec<f32> {
    (0..N * H)
        .map(|i| ((i / H) as f32 * 0.3 + (i % H) as f32).sin())
        .collect()
}

fn encoder(item_init: ItemInit, seed: u64) -> (Encoder, VarMap) {
    let varmap = VarMap::new();
    let raw = content();
    let e = Encoder::new(
        &config(item_init),
        Some(&raw),
        &varmap,
        &mut StdRng::seed_from_u64(seed),
        &test_device(),
    )
    .unwrap();
    (e, varmap)
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}

#[test]
fn padding_does_not_change_outputs() {
    let (e, _) = encoder(ItemInit::Content, 1);
    let (mask, pad) = (e.mask_token(), e.pad_token());
    let alone = e
        .forward(&[3, 1, 4, mask], 1, 4, &mut Mode::Eval)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let tokens = [pad, pad, pad, 3, 1, 4, mask, 5, 9, 2, 6, 5, 3, mask];
    let padded = e.forward(&tokens, 2, 7, &mut Mode::Eval).unwrap();
    let first = padded.get(0).unwrap().narrow(0, 3, 4).unwrap();
    close(
        &first.flatten_all().unwrap().to_vec1().unwrap(),
        &alone,
        1e-5,
    );
    let logits_alone = e.next_item_logits(&[3, 1, 4, mask], 1, 4).unwrap();
    let logits_padded = e.next_item_logits(&tokens, 2, 7).unwrap();
    close(
        &logits_padded.get(0).unwrap().to_vec1().unwrap(),
        &logits_alone.get(0).unwrap().to_vec1().unwrap(),
        1e-4,
    );
}

#[test]
fn loss_is_cross_entropy_at_masked_positions_only() {
    // Items (hidden 2): [1,0], [0,1], [1,1]. Hidden states of one row of three positions;
    // position 0 is not masked and would dominate the loss if it were counted.
    let dev = test_device();
    let cfg = ModelConfig {
        intermediate: 4,
        max_len: 4,
        dropout: 0.0,
        ..ModelConfig::paper(ItemInit::Content, 3, 2)
    };
    let items = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let e = Encoder::new(
        &cfg,
        Some(&items),
        &VarMap::new(),
        &mut StdRng::seed_from_u64(0),
        &dev,
    )
    .unwrap();
    let hidden = Tensor::new(&[[[100.0f32, -100.0], [2.0, 0.0], [0.0, 1.0]]], &dev).unwrap();
    // Position 1: logits [2, 0, 2], target 0: -ln(e^2 / (2e^2 + 1)) = ln(2 + e^-2).
    // Position 2: logits [0, 1, 1], target 1: -ln(e / (1 + 2e)) = ln(1 + 2e) - 1.
    let l1 = (2.0 + (-2f64).exp()).ln();
    let l2 = (1.0 + 2.0 * 1f64.exp()).ln() - 1.0;
    let loss = e.masked_loss(&hidden, &[1, 2], &[0, 1]).unwrap();
    let got = loss.to_scalar::<f32>().unwrap() as f64;
    assert!((got - (l1 + l2) / 2.0).abs() < 1e-5, "{got}");
    let one = e.masked_loss(&hidden, &[1], &[0]).unwrap();
    assert!((one.to_scalar::<f32>().unwrap() as f64 - l1).abs() < 1e-5);
}

#[test]
fn every_trainable_variable_gets_a_gradient() {
    for init in [ItemInit::Content, ItemInit::Random] {
        let (e, varmap) = encoder(init, 2);
        let mut rng = StdRng::seed_from_u64(3);
        let seqs: Vec<Vec<u32>> = (0..4).map(|u| (u..u + 3 + 2 * u).collect()).collect();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let s = Specials {
            mask: e.mask_token(),
            pad: e.pad_token(),
        };
        let b = training_batch(&refs, 12, 0.3, s, &mut rng);
        assert!(b.tokens.contains(&s.pad), "the batch must contain padding");
        let hidden = e
            .forward(&b.tokens, b.rows, b.len, &mut Mode::Train(&mut rng))
            .unwrap();
        let loss = e.masked_loss(&hidden, &b.masked, &b.targets).unwrap();
        let grads = loss.backward().unwrap();
        let data = varmap.data().lock().unwrap();
        let expected = 4 + 16 * 2 + usize::from(init == ItemInit::Random);
        assert_eq!(
            data.len(),
            expected,
            "{init:?}: variables {:?}",
            data.keys()
        );
        for (name, var) in data.iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no grad"));
            let norm = g
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{init:?}: {name} has a zero gradient");
        }
    }
}

fn checkpoint_meta(e: &Encoder, fit: FitConfig) -> Checkpoint<Bert4RecConfig> {
    let schedule = crate::train::bert4rec::fit::schedule(&fit);
    Checkpoint {
        format: FORMAT,
        kind: "bert4rec".into(),
        net: Bert4RecConfig {
            model: e.config().clone(),
            fit,
        },
        data: DataFingerprint {
            backend: "toy".into(),
            dim: H,
            tracks: N,
            train_pairs: 0,
            split: SplitConfig::default(),
            train_hash: None,
        },
        device: "cpu".into(),
        initial_validation_loss: None,
        best_epoch: None,
        best_validation_loss: None,
        curve: Vec::new(),
        state: initial_state(&schedule),
    }
}

#[test]
fn checkpoint_round_trip_gives_identical_logits() {
    let dir = tempfile::tempdir().unwrap();
    let raw = content();
    for init in [ItemInit::Content, ItemInit::Random] {
        let (e, varmap) = encoder(init, 5);
        let paths = CheckpointPaths::new(dir.path(), &default_name(init, "toy"));
        varmap.save(paths.weights()).unwrap();
        ckpt::write(&paths, &checkpoint_meta(&e, FitConfig::default())).unwrap();
        let (back, _, meta) = checkpoint::load(&paths, Some(&raw), &test_device()).unwrap();
        assert_eq!(&meta.net.model, e.config());
        let tokens = [
            e.pad_token(),
            7,
            8,
            9,
            e.mask_token(),
            1,
            2,
            3,
            4,
            e.mask_token(),
        ];
        let a = e
            .next_item_logits(&tokens, 2, 5)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let b = back
            .next_item_logits(&tokens, 2, 5)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(a, b, "{init:?}");
    }
}

/// Users walk runs of neighbouring tracks; validation asks for the next one.
fn walks() -> (Embeddings, Split) {
    let train: Vec<Vec<u32>> = (0..40)
        .map(|u| (0..8).map(|i| (u + i) % 20).collect())
        .collect();
    let validation = (0..40)
        .map(|u| HeldOut {
            user: u,
            tracks: vec![(u + 8) % 20],
        })
        .collect();
    let embeddings = Embeddings::new("toy", content(), H, std::path::Path::new("toy.npy")).unwrap();
    let split = Split {
        config: SplitConfig::default(),
        train,
        train_items: (0..N as u32).collect(),
        cold_items: Vec::new(),
        validation,
        test: Vec::new(),
        counts: SplitCounts::default(),
    };
    (embeddings, split)
}

fn toy_config(max_epochs: usize) -> Bert4RecConfig {
    Bert4RecConfig {
        model: config(ItemInit::Content),
        fit: FitConfig {
            max_epochs,
            batch_size: 8,
            seed: 7,
            ..FitConfig::default()
        },
    }
}

#[test]
fn training_leaves_a_frozen_table_byte_identical_and_learns() {
    let dir = tempfile::tempdir().unwrap();
    let (embeddings, split) = walks();
    let data = TrainData {
        embeddings: &embeddings,
        split: &split,
    };
    let paths = CheckpointPaths::new(dir.path(), "bert4rec-toy");
    let special = |varmap: &VarMap| {
        varmap.data().lock().unwrap()["special"]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let special_before = special(&encoder(ItemInit::Content, 7).1);
    let out = fit(&toy_config(3), data, &paths, false, &test_device(), &Quiet).unwrap();
    let curve = &out.checkpoint.curve;
    assert_eq!(curve.len(), 3);
    assert!(curve[2].train_loss < curve[0].train_loss, "{curve:?}");
    let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let after = out
        .encoder
        .items()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(
        bits(after),
        bits(content()),
        "the frozen item table changed"
    );
    assert_ne!(
        special(&out.varmap),
        special_before,
        "[MASK]/[PAD] rows were not trained"
    );
    assert!(paths.weights().is_file() && paths.config().is_file());
    let read: Checkpoint<Bert4RecConfig> = ckpt::read(&paths).unwrap();
    assert_eq!(read.curve, *curve);
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let (embeddings, split) = walks();
    let data = TrainData {
        embeddings: &embeddings,
        split: &split,
    };
    let whole_dir = tempfile::tempdir().unwrap();
    let whole_paths = CheckpointPaths::new(whole_dir.path(), "b");
    let whole = fit(
        &toy_config(4),
        data,
        &whole_paths,
        false,
        &test_device(),
        &Quiet,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = CheckpointPaths::new(dir.path(), "b");
    fit(&toy_config(2), data, &paths, false, &test_device(), &Quiet).unwrap();
    let resumed = fit(&toy_config(4), data, &paths, true, &test_device(), &Quiet).unwrap();
    assert_eq!(
        timeless(&resumed.checkpoint.curve),
        timeless(&whole.checkpoint.curve)
    );
}

#[test]
fn dropout_is_seeded_in_training_and_off_in_eval() {
    let (e, _) = encoder(ItemInit::Content, 4);
    let tokens = [1, 2, 3, e.mask_token()];
    let run = |mode: &mut Mode| -> Vec<f32> {
        let h = e.forward(&tokens, 1, 4, mode).unwrap();
        h.flatten_all().unwrap().to_vec1().unwrap()
    };
    let eval = run(&mut Mode::Eval);
    assert_eq!(eval, run(&mut Mode::Eval));
    let a = run(&mut Mode::Train(&mut StdRng::seed_from_u64(9)));
    let b = run(&mut Mode::Train(&mut StdRng::seed_from_u64(9)));
    let c = run(&mut Mode::Train(&mut StdRng::seed_from_u64(10)));
    assert_eq!(a, b, "same seed, same dropout");
    assert_ne!(a, c, "another seed, other dropout");
    assert_ne!(a, eval, "dropout is active in training");
}

/// Without dropout, a training forward pass equals inference; on CUDA this compares
/// candle's fused inference kernels with the generic ops training uses.
#[test]
fn inference_matches_training_without_dropout() {
    let varmap = VarMap::new();
    let cfg = ModelConfig {
        dropout: 0.0,
        ..config(ItemInit::Content)
    };
    let raw = content();
    let e = Encoder::new(
        &cfg,
        Some(&raw),
        &varmap,
        &mut StdRng::seed_from_u64(6),
        &test_device(),
    )
    .unwrap();
    let tokens = [
        e.pad_token(),
        1,
        2,
        3,
        e.mask_token(),
        4,
        5,
        6,
        7,
        e.mask_token(),
    ];
    let run = |mode: &mut Mode| -> Vec<f32> {
        let h = e.forward(&tokens, 2, 5, mode).unwrap();
        h.flatten_all().unwrap().to_vec1().unwrap()
    };
    let slow = run(&mut Mode::Train(&mut StdRng::seed_from_u64(0)));
    close(&run(&mut Mode::Eval), &slow, 1e-4);
}
