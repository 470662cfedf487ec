//! BERT4Rec serving against its contract, new listens, and tracks added after load.

use super::*;
use crate::model::bert4rec::{Bert4RecConfig, FitConfig, ModelConfig};
use crate::model::checkpoint::{self, Checkpoint, DataFingerprint, FORMAT, TrainState};
use crate::model::device::test_device;
use crate::model::schedule::{EarlyStopping, Plateau};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::rngs::StdRng;

const H: usize = 8;

fn matrix(n: usize) -> Vec<f32> {
    (0..n * H)
        .map(|i| ((i / H) as f32 * 0.7 + (i % H) as f32 * 1.3).sin())
        .collect()
}

/// Saves a seeded (untrained) content model over 30 tracks; returns the stem.
fn saved(dir: &Path) -> std::path::PathBuf {
    let cfg = ModelConfig {
        intermediate: 16,
        max_len: 6,
        ..ModelConfig::paper(ItemInit::Content, 30, H)
    };
    let varmap = VarMap::new();
    let raw = matrix(30);
    let e = Encoder::new(
        &cfg,
        Some(&raw),
        &varmap,
        &mut StdRng::seed_from_u64(1),
        &test_device(),
    )
    .unwrap();
    let paths = CheckpointPaths::new(dir, "bert4rec-toy");
    varmap.save(paths.weights()).unwrap();
    let untrained = Checkpoint {
        format: FORMAT,
        kind: "bert4rec".into(),
        net: Bert4RecConfig {
            model: e.config().clone(),
            fit: FitConfig::default(),
        },
        data: DataFingerprint {
            backend: "toy".into(),
            dim: H,
            tracks: 30,
            train_pairs: 0,
            split: Default::default(),
            train_hash: None,
        },
        device: "cpu".into(),
        initial_validation_loss: None,
        best_epoch: None,
        best_validation_loss: None,
        curve: Vec::new(),
        state: TrainState {
            epochs_done: 0,
            lr: 1e-3,
            plateau: Plateau::new(0.1, 5, 0.0),
            early_stopping: EarlyStopping::new(16),
            finished: None,
            optimizer_steps: 0,
        },
    };
    checkpoint::write(&paths, &untrained).unwrap();
    dir.join("bert4rec-toy")
}

fn embeddings(n: usize) -> Arc<Embeddings> {
    Arc::new(Embeddings::new("toy", matrix(n), H, Path::new("toy.npy")).unwrap())
}

fn ids(list: &[Scored]) -> Vec<u32> {
    list.iter().map(|s| s.track).collect()
}

#[test]
fn serves_the_contract_and_follows_new_listens() {
    let dir = tempfile::tempdir().unwrap();
    let stem = saved(dir.path());
    let items: Vec<u32> = (0..25).collect(); // 25..30 are not recommendable
    let r = Bert4RecRecommender::load(&stem, embeddings(30), &items, &test_device()).unwrap();
    let history: Vec<u32> = vec![1, 2, 3, 4, 5, 6, 7];
    let q = Query {
        user: None,
        history: &history,
        k: 10,
    };
    let list = r.recommend(&q).unwrap();
    assert_eq!(list.len(), 10);
    assert!(list.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(
        list.iter()
            .all(|s| s.track < 25 && !history.contains(&s.track))
    );
    // One more listen: a different answer, no retraining.
    let longer: Vec<u32> = [history.as_slice(), &[20]].concat();
    let after = r
        .recommend(&Query {
            history: &longer,
            ..q
        })
        .unwrap();
    assert_ne!(ids(&after), ids(&list));
    assert!(!ids(&after).contains(&20));
    // Batches answer exactly as single queries do, errors in place.
    let qs = [
        q,
        Query { history: &[], ..q },
        Query {
            history: &longer,
            ..q
        },
    ];
    let batch = r.recommend_padded(&qs);
    let parallel = r.recommend_batch(&qs);
    assert_eq!(ids(parallel[2].as_ref().unwrap()), ids(&after));
    assert_eq!(ids(batch[0].as_ref().unwrap()), ids(&list));
    assert!(matches!(batch[1], Err(RecommendError::EmptyHistory)));
    assert_eq!(ids(batch[2].as_ref().unwrap()), ids(&after));
    assert!(matches!(
        r.recommend(&Query {
            history: &[31],
            ..q
        }),
        Err(RecommendError::UnknownTrack(31))
    ));
}

#[test]
fn a_track_added_after_training_is_recommendable() {
    let dir = tempfile::tempdir().unwrap();
    let stem = saved(dir.path());
    let items: Vec<u32> = (0..31).collect();
    let r = Bert4RecRecommender::load(&stem, embeddings(31), &items, &test_device()).unwrap();
    let q = Query {
        user: None,
        history: &[1, 2, 30],
        k: 31,
    };
    let list = r.recommend(&q).unwrap();
    assert_eq!(list.len(), 28);
    // The new track 30 can also be the input; rank it for another history.
    let list = r
        .recommend(&Query {
            history: &[1, 2],
            ..q
        })
        .unwrap();
    assert!(ids(&list).contains(&30), "the new track is never ranked");
}

/// A track added while served (outside the loaded table) is ranked by its content
/// row exactly as the table would rank it: the same list and scores as a model
/// loaded with that row in its table; a withdrawn-and-unknown one stays out.
#[test]
fn a_track_admitted_while_served_ranks_as_if_it_were_in_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let stem = saved(dir.path());
    let live = embeddings(30);
    let r = Bert4RecRecommender::load(
        &stem,
        live.clone(),
        &(0..30).collect::<Vec<_>>(),
        &test_device(),
    )
    .unwrap();
    let full = matrix(31);
    assert_eq!(live.push_added(Some(&full[30 * H..])), Ok(30));
    let q = Query {
        user: None,
        history: &[1, 2],
        k: 31,
    };
    assert!(
        !ids(&r.recommend(&q).unwrap()).contains(&30),
        "not before it is admitted"
    );
    assert!(r.admit(30).unwrap());
    assert!(r.admit(30).unwrap(), "admitting twice changes nothing");
    let reference = Bert4RecRecommender::load(
        &stem,
        embeddings(31),
        &(0..31).collect::<Vec<_>>(),
        &test_device(),
    )
    .unwrap();
    let (got, want) = (r.recommend(&q).unwrap(), reference.recommend(&q).unwrap());
    assert_eq!(ids(&got), ids(&want));
    for (g, w) in got.iter().zip(&want) {
        assert!((g.score - w.score).abs() < 1e-4, "{g:?} vs {w:?}");
    }
    // The added track may be listened to (it is skipped as input, not an error).
    let with_new = r
        .recommend(&Query {
            history: &[1, 30],
            ..q
        })
        .unwrap();
    assert!(!ids(&with_new).contains(&30));
}
