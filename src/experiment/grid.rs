//! Running a grid. The experiment's id is a hash of its configuration and its data
//! (split, catalogue, embedding files), so running the same command again resumes it:
//! cells stored as finished are skipped, and a cell interrupted while training continues
//! from its last finished epoch with its optimiser state (see `train::fit`), so it ends
//! where an uninterrupted run would have.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use tokio::runtime::Handle;

use super::ExperimentConfig;
use super::cell::{CellContext, CellOutcome, run_cell};
use super::manifest::{embedding_entry, manifest};
use super::plan::{CellSpec, Sizes, cells, estimate};
use crate::dataset::split::{Part, Subset};
use crate::dataset::{Dataset, Split};
use crate::embeddings::Embeddings;
use crate::eval::Evaluation;
use crate::eval::report::{BackendInfo, Variant};
use crate::eval::stored::{CellResult, Header};
use crate::io::fnv::Fnv1a;
use crate::store::{CellRecord, NewRun, Store, UserMetricRecord};
use crate::train::fit::FitObserver;

/// Progress of a grid: the CLI draws it, the service logs it.
pub trait GridObserver: Sync {
    /// Cell `index` (0-based) of `total` starts; `eta` is the estimated seconds left for
    /// the whole grid, scaled by how the measured cells compared with their estimates.
    fn cell_started(&self, _index: usize, _total: usize, _cell: &CellSpec, _eta: f64) {}
    fn cell_done(&self, _index: usize, _cell: &CellSpec, _seconds: f64, _skipped: bool) {}
    /// The observer of a cell's training epochs.
    fn trainer(&self, cell: &CellSpec) -> Box<dyn FitObserver + '_>;
}

/// A grid ready to run: its id, cells and estimates.
pub struct Plan {
    pub id: String,
    pub cells: Vec<CellSpec>,
    /// Estimated seconds per cell.
    pub estimates: Vec<f64>,
    pub header: Header,
    /// Where its checkpoints go.
    pub models: PathBuf,
}

/// What a plan records of a backend: its width, and its file named with its hash and
/// width (the experiment's id covers it, so other rows make another experiment).
#[derive(Debug, Clone)]
pub struct BackendFacts {
    pub dim: usize,
    pub entry: String,
}

/// Reads a backend's facts from the dataset folder: the whole matrix (checked against
/// the catalogue and manifest, as training will read it) and the file's hash.
pub fn backend_facts(dataset: &Dataset, backend: &str) -> anyhow::Result<BackendFacts> {
    let path = crate::embeddings::backend_file(&dataset.layout.embeddings_dir(), backend)
        .ok_or_else(|| anyhow::anyhow!("no embeddings for backend `{backend}`"))?;
    let dim = dataset.load_embeddings(backend)?.dim;
    Ok(BackendFacts {
        dim,
        entry: embedding_entry(&path, dim)?,
    })
}

/// Plans the grid of `config` over a dataset and its split: the backends (all, if the
/// config names none), the manifest and the experiment's id.
pub fn plan(
    config: &ExperimentConfig,
    dataset: &Dataset,
    split: &Split,
    device: &str,
) -> anyhow::Result<Plan> {
    plan_with_facts(config, dataset, split, device, &|b| {
        backend_facts(dataset, b)
    })
}

/// [`plan`] with each backend's facts from `facts` (a service keeps them between plans).
pub fn plan_with_facts(
    config: &ExperimentConfig,
    dataset: &Dataset,
    split: &Split,
    device: &str,
    facts: &dyn Fn(&str) -> anyhow::Result<BackendFacts>,
) -> anyhow::Result<Plan> {
    let backends = if config.backends.is_empty() {
        dataset.layout.backends()?
    } else {
        config.backends.clone()
    };
    anyhow::ensure!(!backends.is_empty(), "no backends to compare");
    let mut described = BTreeMap::new();
    let mut infos = Vec::new();
    for b in &backends {
        let BackendFacts { dim, entry } = facts(b)?;
        described.insert(b.clone(), entry);
        infos.push(BackendInfo {
            name: b.clone(),
            dim,
        });
    }
    let cells = cells(config, &backends, split.has_cold());
    let sizes = Sizes {
        train_pairs: split.counts.train.interactions,
        train_users: split.counts.train.users,
        eval_users: split.validation.len() + split.test.len(),
        tracks: split.train_items.len() + split.cold_items.len(),
    };
    let dim_of = |b: &str| infos.iter().find(|i| i.name == b).map_or(0, |i| i.dim);
    let estimates = cells
        .iter()
        .map(|c| estimate(c, dim_of(&c.backend), config, sizes))
        .collect();
    let identity = serde_json::json!({
        "config": config,
        "split": split.config,
        "counts": split.counts,
        "tracks": dataset.tracks.len(),
        "embeddings": described,
    });
    let mut id = Fnv1a::default();
    id.write(identity.to_string().as_bytes());
    let id = id.hex();
    let models = dataset.layout.derived().join("experiments").join(&id);
    Ok(Plan {
        header: Header {
            title: config.name.clone(),
            k: config.k,
            manifest: manifest(config, split, &described, device),
            backends: infos,
            split: split.counts,
        },
        id,
        cells,
        estimates,
        models,
    })
}

/// Stores one part's evaluation as a succeeded run; returns its id.
async fn store_run(
    store: &Store,
    cell: &CellSpec,
    part: &str,
    evaluation: &Evaluation,
    users: &[String],
    experiment: &str,
) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let run = NewRun {
        id: id.clone(),
        model: super::plan::model_name(cell.model).into(),
        backend: match cell.variant {
            Variant::Content | Variant::Shuffled => cell.embeddings_name(),
            Variant::Random => "random".into(),
        },
        k: evaluation.k as i64,
        parameters: serde_json::json!({"experiment": experiment, "cell": cell.key(), "part": part})
            .to_string(),
        users: users.len() as i64,
    };
    store.create_run(&run).await?;
    let per_user: Vec<UserMetricRecord> = users
        .iter()
        .zip(&evaluation.per_user)
        .map(|(u, m)| UserMetricRecord {
            label: u.clone(),
            values: m.values().map(|v| *v),
        })
        .collect();
    let metrics = serde_json::to_string(&evaluation.aggregate)?;
    store
        .finish_run(&id, &metrics, evaluation.seconds, &per_user)
        .await?;
    Ok(id)
}

/// Runs every cell of `plan` not yet stored; returns the number of cells computed.
#[allow(clippy::too_many_arguments)]
pub fn run_grid(
    plan: &Plan,
    config: &ExperimentConfig,
    dataset: &Dataset,
    split: &Split,
    store: &Store,
    runtime: &Handle,
    device: &Device,
    observer: &dyn GridObserver,
) -> anyhow::Result<usize> {
    let config_json = serde_json::to_string(config)?;
    let header_json = serde_json::to_string(&plan.header)?;
    runtime.block_on(store.start_experiment(&plan.id, &config.name, &config_json, &header_json))?;
    let done: Vec<String> = runtime
        .block_on(store.experiment_cells(&plan.id))?
        .into_iter()
        .map(|c| c.cell)
        .collect();
    let result = run_cells(
        plan, config, dataset, split, store, runtime, device, observer, &done,
    );
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    runtime.block_on(store.finish_experiment(&plan.id, error.as_deref()))?;
    result
}

#[allow(clippy::too_many_arguments)]
fn run_cells(
    plan: &Plan,
    config: &ExperimentConfig,
    dataset: &Dataset,
    split: &Split,
    store: &Store,
    runtime: &Handle,
    device: &Device,
    observer: &dyn GridObserver,
    done: &[String],
) -> anyhow::Result<usize> {
    let users = &dataset.interactions.users;
    let ids = |held: &[crate::dataset::split::HeldOut]| -> Vec<String> {
        held.iter().map(|h| users.id(h.user).to_string()).collect()
    };
    let (validation_users, test_users) = (ids(&split.validation), ids(&split.test));
    let subset_users = |subset| ids(&split.held_subset(Part::Test, subset));
    let (hot_users, cold_users) = (subset_users(Subset::Hot), subset_users(Subset::Cold));
    let mut loaded: BTreeMap<String, Arc<Embeddings>> = BTreeMap::new();
    let (mut measured, mut estimated, mut computed) = (0.0, 0.0, 0);
    let total = plan.cells.len();
    for (i, cell) in plan.cells.iter().enumerate() {
        if done.contains(&cell.key()) {
            observer.cell_done(i, cell, 0.0, true);
            continue;
        }
        let left: f64 = plan.estimates[i..].iter().sum();
        let scale = if estimated > 0.0 {
            measured / estimated
        } else {
            1.0
        };
        observer.cell_started(i, total, cell, left * scale);
        let start = Instant::now();
        let name = cell.embeddings_name();
        let embeddings = match loaded.get(&name) {
            Some(e) => e.clone(),
            None => {
                let e = Arc::new(dataset.load_embeddings(&name)?);
                loaded.insert(name, e.clone());
                e
            }
        };
        let cx = CellContext {
            config,
            dataset,
            split,
            embeddings,
            models: Path::new(&plan.models),
            device,
        };
        let trainer = observer.trainer(cell);
        let outcome: CellOutcome =
            run_cell(cell, &cx, trainer.as_ref()).map_err(|e| e.context(format!("cell {cell}")))?;
        drop(trainer);
        let record = runtime.block_on(async {
            let validation_run = store_run(
                store,
                cell,
                "validation",
                &outcome.validation,
                &validation_users,
                &plan.id,
            )
            .await?;
            let test_run =
                store_run(store, cell, "test", &outcome.test, &test_users, &plan.id).await?;
            let mut subset_runs = [None, None];
            for (run, (part, evaluation, users)) in subset_runs.iter_mut().zip([
                ("test-hot", &outcome.hot, &hot_users),
                ("test-cold", &outcome.cold, &cold_users),
            ]) {
                if let Some(e) = evaluation {
                    *run = Some(store_run(store, cell, part, e, users, &plan.id).await?);
                }
            }
            let [hot_run, cold_run] = subset_runs;
            let result = CellResult {
                model: cell.model,
                variant: cell.variant,
                backend: cell.backend.clone(),
                index_recall: outcome.index_recall,
                curve: outcome.curve,
                train_seconds: outcome.train_seconds,
                eval_seconds: outcome.eval_seconds,
                hot_run,
                cold_run,
            };
            let record = CellRecord {
                cell: cell.key(),
                position: i as i64,
                result: serde_json::to_string(&result)?,
                validation_run,
                test_run,
            };
            store.finish_cell(&plan.id, &record).await?;
            anyhow::Ok(record)
        })?;
        let seconds = start.elapsed().as_secs_f64();
        measured += seconds;
        estimated += plan.estimates[i];
        computed += 1;
        tracing::debug!(cell = %record.cell, seconds, "cell stored");
        observer.cell_done(i, cell, seconds, false);
    }
    Ok(computed)
}
