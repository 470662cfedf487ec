//! The grids a service runs, on the data it serves: the dataset folder of its settings,
//! opened with the split `audiorec split` saved (as `audiorec experiment --data` opens
//! it), so an experiment posted to the service and the same configuration run from the
//! command line on that folder are one experiment, with one id. The dataset is read on
//! the first experiment and kept (the service does not otherwise hold the split), and so
//! is what a plan records of each backend (its width and its file's hash): reading a
//! 1,024-d matrix and hashing its file took seconds on every posted experiment.
//!
//! Every method blocks (reading files, training): call it from a blocking thread.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::runtime::Handle;

use super::grid::{BackendFacts, Plan, backend_facts, plan_with_facts, run_grid};
use super::{ExperimentConfig, GridObserver};
use crate::dataset::{Dataset, Layout, MissingTracks, Split};
use crate::store::Store;

/// A dataset and its split, as grids read them.
pub struct GridData {
    pub dataset: Dataset,
    pub split: Split,
    /// Backends of the dataset, in the folder's order.
    pub backends: Vec<String>,
}

pub struct GridSource {
    layout: Layout,
    device: String,
    loaded: Mutex<Option<Arc<GridData>>>,
    facts: Mutex<BTreeMap<String, BackendFacts>>,
}

impl GridSource {
    /// Grids over the dataset folder `layout`, training on `device` (`cpu`, `cuda:N`).
    pub fn new(layout: Layout, device: &str) -> Self {
        Self {
            layout,
            device: device.to_string(),
            loaded: Mutex::new(None),
            facts: Mutex::default(),
        }
    }

    /// The dataset and split, read on first use.
    pub fn data(&self) -> anyhow::Result<Arc<GridData>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(data) = loaded.as_ref() {
            return Ok(data.clone());
        }
        let (dataset, split) = Dataset::open_split(&self.layout, None, MissingTracks::Skip)?;
        let backends = self.layout.backends()?;
        let data = Arc::new(GridData {
            dataset,
            split,
            backends,
        });
        *loaded = Some(data.clone());
        Ok(data)
    }

    /// The plan of `config` (its id, cells and estimates); `config` must be valid.
    pub fn plan(&self, config: &ExperimentConfig) -> anyhow::Result<Plan> {
        let data = self.data()?;
        self.plan_on(&data, config)
    }

    fn plan_on(&self, data: &GridData, config: &ExperimentConfig) -> anyhow::Result<Plan> {
        let facts = |backend: &str| {
            let known = self.facts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(f) = known.get(backend) {
                return Ok(f.clone());
            }
            drop(known);
            let f = backend_facts(&data.dataset, backend)?;
            let mut known = self.facts.lock().unwrap_or_else(PoisonError::into_inner);
            known.insert(backend.to_string(), f.clone());
            Ok(f)
        };
        plan_with_facts(config, &data.dataset, &data.split, &self.device, &facts)
    }

    /// Runs (or resumes) the grid of `config`, which must plan to `id`: the data may not
    /// have changed since the experiment was accepted.
    pub fn run(
        &self,
        id: &str,
        config: &ExperimentConfig,
        store: &Store,
        runtime: &Handle,
        observer: &dyn GridObserver,
    ) -> anyhow::Result<usize> {
        let data = self.data()?;
        let plan = self.plan_on(&data, config)?;
        anyhow::ensure!(
            plan.id == id,
            "the dataset changed since experiment `{id}` was accepted (it now plans to `{}`): post it again",
            plan.id
        );
        let device = crate::model::parse_device(&self.device).map_err(anyhow::Error::msg)?;
        run_grid(
            &plan,
            config,
            &data.dataset,
            &data.split,
            store,
            runtime,
            &device,
            observer,
        )
    }
}
