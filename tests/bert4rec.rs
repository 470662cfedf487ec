//! BERT4Rec end to end on `small` demo data: a short training run, its checkpoint loaded
//! into the serving recommender, and validation HitRate@50 through the evaluator beating
//! the KNN baseline on the same users. Shorter max length and few epochs keep it quick.

use std::sync::Arc;

use audiorec::dataset::demo::{Scale, generate};
use audiorec::dataset::{Dataset, ImportOptions, Layout, Split, SplitConfig};
use audiorec::eval::{evaluate, split_cases};
use audiorec::index::{HnswParams, IndexKind};
use audiorec::model::bert4rec::{Bert4RecConfig, FitConfig, ItemInit, ModelConfig};
use audiorec::model::checkpoint::CheckpointPaths;
use audiorec::recommend::Recommender;
use audiorec::recommend::bert4rec::Bert4RecRecommender;
use audiorec::recommend::knn::KnnRecommender;
use audiorec::train::bert4rec::{TrainData, fit};
use audiorec::train::fit::Quiet;
use candle_core::Device;

/// `AUDIOREC_DEVICE` (default cpu): `AUDIOREC_DEVICE=cuda` runs this on a GPU.
static DEVICE: std::sync::LazyLock<Device> =
    std::sync::LazyLock::new(|| audiorec::model::device_from_env().expect("AUDIOREC_DEVICE"));

const BACKEND: &str = "musicnn";
const MAX_LEN: usize = 32;
const EPOCHS: usize = 4;

fn hit_rate(r: &dyn Recommender, ds: &Dataset, split: &Split) -> f64 {
    let cases = split_cases(split, &split.validation, &ds.interactions.users);
    evaluate(r, &cases, 50).unwrap().0.aggregate.hit_rate.mean
}

#[test]
fn short_training_on_small_beats_knn_on_validation_hit_rate() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), Scale::Small, 7).unwrap();
    let options = ImportOptions {
        keep_from: audiorec::dataset::time::parse_timestamp(b"2019-02-20").unwrap(),
        missing_tracks: Default::default(),
    };
    let ds = Dataset::open(&Layout::new(dir.path()), options).unwrap();
    let split = Split::new(&ds.interactions, ds.tracks.len(), SplitConfig::default());
    let emb = Arc::new(ds.load_embeddings(BACKEND).unwrap());

    let knn = KnnRecommender::new(
        emb.clone(),
        &split.train_items,
        IndexKind::Hnsw,
        HnswParams::default(),
        None,
    );
    let knn_hr = hit_rate(&knn, &ds, &split);

    let config = Bert4RecConfig {
        model: ModelConfig {
            max_len: MAX_LEN,
            ..ModelConfig::paper(ItemInit::Content, emb.len(), emb.dim)
        },
        fit: FitConfig {
            max_epochs: EPOCHS,
            batch_size: 64,
            ..FitConfig::default()
        },
    };
    let paths = CheckpointPaths::new(dir.path().join("models"), "bert4rec-musicnn");
    let data = TrainData {
        embeddings: &emb,
        split: &split,
    };
    let report = fit(&config, data, &paths, false, &DEVICE, &Quiet).unwrap();
    let best = report.checkpoint.best_epoch.expect("a best epoch");

    let rec = Bert4RecRecommender::load(
        &dir.path().join("models/bert4rec-musicnn"),
        emb,
        &split.train_items,
        &DEVICE,
    )
    .unwrap();
    let bert_hr = hit_rate(&rec, &ds, &split);
    // What the loop recorded for the saved epoch is what the served model scores (up to
    // rank-50 ties that batch padding may order differently).
    let recorded = report.checkpoint.curve[best - 1]
        .validation_hit_rate_50
        .expect("validation users rank");
    assert!(
        (recorded - bert_hr).abs() < 0.005,
        "{recorded} vs {bert_hr}"
    );
    eprintln!("validation HitRate@50: BERT4Rec {bert_hr:.4}, KNN {knn_hr:.4}");
    assert!(
        bert_hr > knn_hr,
        "BERT4Rec HitRate@50 {bert_hr:.4} does not beat KNN {knn_hr:.4}: {:?}",
        report.checkpoint.curve
    );
}
