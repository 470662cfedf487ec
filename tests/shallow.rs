//! The Shallow Net end to end on `small` demo data, through the serving path
//! (`ShallowRecommender`): one short epoch must lower the validation loss below the
//! untrained model's and beat both the untrained model and KNN on validation HitRate@50
//! (the demo backends carry taste-irrelevant style variance that a raw cosine suffers
//! from and the tower learns to project away), and the informative backend must beat the
//! noise backend.

use std::path::Path;
use std::sync::Arc;

use audiorec::dataset::demo::{Scale, generate};
use audiorec::dataset::time::parse_timestamp;
use audiorec::dataset::{Dataset, ImportOptions, Layout, MissingTracks, Split, SplitConfig};
use audiorec::eval::{evaluate, split_cases};
use audiorec::index::{HnswParams, IndexKind};
use audiorec::model::checkpoint::CheckpointPaths;
use audiorec::model::shallow::ShallowParams;
use audiorec::recommend::Recommender;
use audiorec::recommend::knn::KnnRecommender;
use audiorec::recommend::shallow::ShallowRecommender;
use audiorec::train::fit::Quiet;
use audiorec::train::shallow::{TrainData, fit};
use candle_core::Device;

/// `AUDIOREC_DEVICE` (default cpu): `AUDIOREC_DEVICE=cuda` runs this on a GPU.
static DEVICE: std::sync::LazyLock<Device> =
    std::sync::LazyLock::new(|| audiorec::model::device_from_env().expect("AUDIOREC_DEVICE"));

const SEED: u64 = 7;
const EPOCHS: usize = 1;
/// Smaller than the paper's 10,000 so that one epoch takes 100 Adam steps.
const BATCH: usize = 2_000;

fn hit_rate(rec: &dyn Recommender, dataset: &Dataset, split: &Split) -> f64 {
    let users = &dataset.interactions.users;
    let cases = split_cases(split, &split.validation, users);
    let (evaluation, _) = evaluate(rec, &cases, 50).expect("evaluates");
    evaluation.aggregate.hit_rate.mean
}

/// Trains `epochs` epochs (0 = the untrained model) and loads the best checkpoint.
fn train_and_load(
    dataset: &Dataset,
    split: &Split,
    backend: &str,
    epochs: usize,
    models: &Path,
) -> ShallowRecommender {
    let embeddings = Arc::new(dataset.load_embeddings(backend).unwrap());
    let params = ShallowParams {
        max_epochs: epochs,
        batch_size: BATCH,
        ..ShallowParams::new(backend)
    };
    let name = format!("shallow-{backend}-{epochs}");
    let paths = CheckpointPaths::new(models, &name);
    let data = TrainData {
        embeddings: &embeddings,
        split,
        users: &dataset.interactions.users,
    };
    let out = fit(&params, data, &paths, false, &DEVICE, &Quiet).unwrap();
    eprintln!("{backend}: {:?}", out.checkpoint.curve);
    ShallowRecommender::load(
        &paths.weights(),
        embeddings,
        &split.train_items,
        IndexKind::Exact,
        HnswParams::default(),
        &DEVICE,
    )
    .unwrap()
}

#[test]
fn short_training_beats_the_untrained_model_and_knn_and_content_beats_noise() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), Scale::Small, SEED).unwrap();
    let options = ImportOptions {
        keep_from: parse_timestamp(b"2019-02-20").unwrap(),
        missing_tracks: MissingTracks::Skip,
    };
    let dataset = Dataset::open(&Layout::new(dir.path()), options).unwrap();
    let split = Split::new(
        &dataset.interactions,
        dataset.tracks.len(),
        SplitConfig::default(),
    );
    let models = dir.path().join("models");

    let knn = KnnRecommender::new(
        Arc::new(dataset.load_embeddings("musicnn").unwrap()),
        &split.train_items,
        IndexKind::Hnsw,
        HnswParams::default(),
        None,
    );
    let knn_hr = hit_rate(&knn, &dataset, &split);
    let untrained = train_and_load(&dataset, &split, "musicnn", 0, &models);
    let untrained_hr = hit_rate(&untrained, &dataset, &split);
    let trained = train_and_load(&dataset, &split, "musicnn", EPOCHS, &models);
    let trained_hr = hit_rate(&trained, &dataset, &split);
    let noise = train_and_load(&dataset, &split, "noise", EPOCHS, &models);
    let noise_hr = hit_rate(&noise, &dataset, &split);
    eprintln!(
        "validation HitRate@50: knn {knn_hr:.4}, untrained {untrained_hr:.4}, trained {trained_hr:.4}, noise {noise_hr:.4}"
    );
    let c = trained.checkpoint();
    let initial = c.initial_validation_loss.expect("recorded before training");
    assert_eq!(c.curve.len(), EPOCHS);
    assert!(
        c.curve[0].validation_loss < initial,
        "training did not lower the validation loss: {initial} vs {:?}",
        c.curve
    );
    assert_eq!(
        c.best_epoch,
        Some(EPOCHS),
        "the trained epoch is the best checkpoint"
    );
    assert!(
        trained_hr > untrained_hr,
        "{trained_hr} vs untrained {untrained_hr}"
    );
    assert!(trained_hr > knn_hr, "{trained_hr} vs KNN {knn_hr}");
    assert!(trained_hr > noise_hr, "{trained_hr} vs noise {noise_hr}");
}
