//! Running one cell: train where the recommender learns (resuming a checkpoint of the
//! same parameters and data), then evaluate validation and test users through the same
//! recommender the service would load (and, on a split with cold tracks, the test users'
//! hot and cold held-out tracks apart; see `crate::eval`). KNN uses the exact scan (the paper's method) and
//! reports the recall of the served HNSW index against it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;

use super::ExperimentConfig;
use super::plan::CellSpec;
use crate::dataset::split::{Part, Subset};
use crate::dataset::{Dataset, Split};
use crate::embeddings::Embeddings;
use crate::eval::report::{EpochLoss, ModelKind, Variant};
use crate::eval::{Evaluation, evaluate, evaluate_held, list_recall, split_cases};
use crate::index::{HnswParams, IndexKind};
use crate::model::bert4rec::{Bert4RecConfig, FitConfig, ItemInit, ModelConfig};
use crate::model::checkpoint::{CheckpointPaths, EpochRecord};
use crate::model::shallow::{Init, ShallowParams};
use crate::recommend::bert4rec::Bert4RecRecommender;
use crate::recommend::knn::KnnRecommender;
use crate::recommend::shallow::ShallowRecommender;
use crate::recommend::{Recommender, Scored};
use crate::train::fit::FitObserver;
use crate::train::{bert4rec, shallow};

/// What a finished cell reports.
pub struct CellOutcome {
    pub validation: Evaluation,
    pub test: Evaluation,
    /// Test users on their held-out hot tracks, hot tracks ranked alone (a split with
    /// cold tracks only).
    pub hot: Option<Evaluation>,
    /// Test users on their held-out cold tracks, cold tracks ranked alone (a split with
    /// cold tracks, a recommender that reads content).
    pub cold: Option<Evaluation>,
    pub curve: Vec<EpochLoss>,
    pub train_seconds: Option<f64>,
    pub eval_seconds: f64,
    pub index_recall: Option<f64>,
}

/// Everything a cell reads.
pub struct CellContext<'a> {
    pub config: &'a ExperimentConfig,
    pub dataset: &'a Dataset,
    pub split: &'a Split,
    pub embeddings: Arc<Embeddings>,
    /// Checkpoints of this experiment.
    pub models: &'a Path,
    pub device: &'a Device,
}

fn curve(records: &[EpochRecord]) -> Vec<EpochLoss> {
    records
        .iter()
        .map(|r| EpochLoss {
            epoch: r.epoch,
            train_loss: r.train_loss,
            validation_loss: r.validation_loss,
        })
        .collect()
}

/// A trained cell: its checkpoint's files and its validation curve.
pub struct Trained {
    pub paths: CheckpointPaths,
    pub curve: Vec<EpochRecord>,
    pub seconds: f64,
}

/// Trains a Shallow Net or BERT4Rec cell into `cx.models` under the cell's checkpoint
/// name, continuing a checkpoint of the same parameters and data there; a KNN cell has
/// nothing to train (`None`).
pub fn train_cell(
    cell: &CellSpec,
    cx: &CellContext,
    observer: &dyn FitObserver,
) -> anyhow::Result<Option<Trained>> {
    let paths = CheckpointPaths::new(cx.models, &cell.checkpoint_name());
    let resume = paths.config().is_file();
    let backend = &cx.embeddings.backend;
    let (curve, seconds) = match cell.model {
        ModelKind::Knn => return Ok(None),
        ModelKind::Shallow => {
            let s = &cx.config.shallow;
            let params = ShallowParams {
                init: match cell.variant {
                    Variant::Content | Variant::Shuffled => Init::Content,
                    Variant::Random => Init::Random,
                },
                max_epochs: s.epochs,
                batch_size: s.batch_size,
                negative_sampling: s.negative_sampling,
                freeze_items: s.freeze_items,
                freeze_users: s.freeze_users,
                seed: s.seed,
                ..ShallowParams::new(backend)
            };
            let data = shallow::TrainData {
                embeddings: &cx.embeddings,
                split: cx.split,
                users: &cx.dataset.interactions.users,
            };
            let out = shallow::fit(&params, data, &paths, resume, cx.device, observer)?;
            (out.checkpoint.curve.clone(), out.checkpoint.train_seconds())
        }
        ModelKind::Bert4rec => {
            let b = &cx.config.bert4rec;
            let e = &cx.embeddings;
            let (init, hidden) = match cell.variant {
                Variant::Content | Variant::Shuffled => (ItemInit::Content, e.dim),
                Variant::Random => (ItemInit::Random, b.random_hidden),
            };
            let config = Bert4RecConfig {
                model: ModelConfig {
                    max_len: b.max_len,
                    ..ModelConfig::paper(init, e.len(), hidden)
                },
                fit: FitConfig {
                    max_epochs: b.epochs,
                    batch_size: b.batch_size,
                    max_batches: b.max_batches,
                    seed: b.seed,
                    ..FitConfig::default()
                },
            };
            let data = bert4rec::TrainData {
                embeddings: e,
                split: cx.split,
            };
            let out = bert4rec::fit(&config, data, &paths, resume, cx.device, observer)?;
            (out.checkpoint.curve.clone(), out.checkpoint.train_seconds())
        }
    };
    Ok(Some(Trained {
        paths,
        curve,
        seconds,
    }))
}

/// The cell's recommender over `items`, the only tracks it may recommend: the exact scan
/// for KNN, the trained checkpoint otherwise.
fn build_recommender(
    cell: &CellSpec,
    trained: Option<&Trained>,
    cx: &CellContext,
    items: &[u32],
) -> anyhow::Result<Box<dyn Recommender>> {
    let e = cx.embeddings.clone();
    let exact = (IndexKind::Exact, HnswParams::default());
    Ok(match (trained, cell.model) {
        (Some(t), ModelKind::Shallow) => Box::new(ShallowRecommender::load(
            &t.paths.config(),
            e,
            items,
            exact.0,
            exact.1,
            cx.device,
        )?),
        (Some(t), ModelKind::Bert4rec) => Box::new(Bert4RecRecommender::load(
            &t.paths.config(),
            e,
            items,
            cx.device,
        )?),
        _ => Box::new(KnnRecommender::new(e, items, exact.0, exact.1, None)),
    })
}

/// Trains (where needed) and evaluates one cell: validation and test users over the
/// recommender's universe (train and cold tracks when it reads content, train tracks
/// for the Random variants, which cannot know a cold track), and on a split with cold
/// tracks the test users' hot and cold results, each subset ranked alone.
pub fn run_cell(
    cell: &CellSpec,
    cx: &CellContext,
    observer: &dyn FitObserver,
) -> anyhow::Result<CellOutcome> {
    let trained = train_cell(cell, cx, observer)?;
    let reads_content = cell.variant != Variant::Random;
    let universe = if reads_content {
        cx.split.recommendable()
    } else {
        cx.split.train_items.clone()
    };
    let recommender = build_recommender(cell, trained.as_ref(), cx, &universe)?;
    let start = Instant::now();
    let users = &cx.dataset.interactions.users;
    let k = cx.config.k;
    let validation = evaluate_held(
        recommender.as_ref(),
        cx.split,
        &cx.split.validation,
        users,
        k,
    )?;
    let (test, test_lists) = evaluate(
        recommender.as_ref(),
        &split_cases(cx.split, &cx.split.test, users),
        k,
    )?;
    // One model at a time from here on, so memory holds one copy of the catalogue's rows.
    drop(recommender);
    let (mut hot, mut cold) = (None, None);
    if cx.split.has_cold() {
        let subset = |subset: Subset| -> anyhow::Result<Evaluation> {
            let model =
                build_recommender(cell, trained.as_ref(), cx, cx.split.subset_items(subset))?;
            let held = cx.split.held_subset(Part::Test, subset);
            Ok(evaluate_held(model.as_ref(), cx.split, &held, users, k)?)
        };
        hot = Some(subset(Subset::Hot)?);
        cold = reads_content.then(|| subset(Subset::Cold)).transpose()?;
    }
    let eval_seconds = start.elapsed().as_secs_f64();
    let index_recall = match cell.model {
        ModelKind::Knn => Some(served_index_recall(cx, &test_lists, &universe)?),
        _ => None,
    };
    Ok(CellOutcome {
        validation,
        test,
        hot,
        cold,
        curve: trained.as_ref().map_or_else(Vec::new, |t| curve(&t.curve)),
        train_seconds: trained.as_ref().map(|t| t.seconds),
        eval_seconds,
        index_recall,
    })
}

/// Share of the exact top-k lists of the test users (`exact`) that the served HNSW index
/// over `items` returns.
fn served_index_recall(
    cx: &CellContext,
    exact: &[Vec<Scored>],
    items: &[u32],
) -> anyhow::Result<f64> {
    let served = KnnRecommender::new(
        cx.embeddings.clone(),
        items,
        IndexKind::Hnsw,
        HnswParams {
            ef_search: cx.config.ef_search,
            ..HnswParams::default()
        },
        Some(&cx.dataset.layout.derived().join("index")),
    );
    let cases = split_cases(cx.split, &cx.split.test, &cx.dataset.interactions.users);
    let (_, served) = evaluate(&served, &cases, cx.config.k)?;
    Ok(list_recall(exact, &served))
}
