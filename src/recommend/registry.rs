//! The recommenders a running service offers, keyed by (model, backend), over one catalog.
//!
//! The service serves every catalog track (not only train tracks): a track added with its
//! embedding is recommendable by content-based models as soon as the service loads it.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::path::Path;

use candle_core::Device;
use rayon::prelude::*;

use super::Recommender;
use super::bert4rec::Bert4RecRecommender;
use super::knn::KnnRecommender;
use super::shallow::ShallowRecommender;
use crate::dataset::Vocab;
use crate::embeddings::Embeddings;
use crate::index::{HnswParams, IndexKind};

/// Everything the API needs to answer from memory: the catalog, the frozen matrices and
/// the models built on them.
pub struct Registry {
    pub catalog: Vocab,
    pub backends: BTreeMap<String, Arc<Embeddings>>,
    models: BTreeMap<(String, String), Arc<dyn Recommender>>,
    knn: BTreeMap<String, Arc<KnnRecommender>>,
}

impl Registry {
    /// Builds a KNN recommender over all catalog tracks for each backend, the backends in
    /// parallel; HNSW graphs are cached in `index_cache`; each keeps the user vectors of up to `remembered_users`
    /// stored users (see [`KnnRecommender::remember_users`]).
    pub fn with_knn(
        catalog: Vocab,
        backends: Vec<Embeddings>,
        index: IndexKind,
        params: HnswParams,
        index_cache: Option<&std::path::Path>,
        remembered_users: usize,
    ) -> Self {
        let items: Vec<u32> = (0..catalog.len() as u32).collect();
        let mut registry = Self {
            catalog,
            backends: BTreeMap::new(),
            models: BTreeMap::new(),
            knn: BTreeMap::new(),
        };
        // One backend's index per core: each graph build is sequential and seeded (so
        // deterministic), and the backends are independent, so a start-up with four
        // backends on two cores takes about half as long.
        let built: Vec<(Arc<Embeddings>, Arc<KnnRecommender>)> = backends
            .into_par_iter()
            .map(|embeddings| {
                let embeddings = Arc::new(embeddings);
                let started = std::time::Instant::now();
                let knn = KnnRecommender::new(embeddings.clone(), &items, index, params, index_cache)
                    .remember_users(remembered_users);
                tracing::info!(backend = %embeddings.backend, dim = embeddings.dim, tracks = items.len(), seconds = started.elapsed().as_secs_f64(), "KNN index ready");
                (embeddings, Arc::new(knn))
            })
            .collect();
        for (embeddings, knn) in built {
            let name = embeddings.backend.clone();
            registry.knn.insert(name.clone(), knn.clone());
            registry.add(knn);
            registry.backends.insert(name, embeddings);
        }
        registry
    }

    /// Loads every trained checkpoint in `models_dir` named `<model>-<backend>` (Shallow
    /// Net, BERT4Rec) for a backend this registry serves, over all catalog tracks. A checkpoint that fails to
    /// load is logged and skipped: the service still serves what it can.
    pub fn load_checkpoints(
        &mut self,
        models_dir: &Path,
        device: &Device,
        index: IndexKind,
        params: HnswParams,
    ) {
        let items: Vec<u32> = (0..self.catalog.len() as u32).collect();
        let backends: Vec<(String, Arc<Embeddings>)> = self
            .backends
            .iter()
            .map(|(b, e)| (b.clone(), e.clone()))
            .collect();
        for (backend, embeddings) in backends {
            if models_dir
                .join(format!("shallow-{backend}.safetensors"))
                .is_file()
            {
                let loaded = ShallowRecommender::load(
                    models_dir,
                    embeddings.clone(),
                    &items,
                    index,
                    params,
                    device,
                );
                self.add_loaded("Shallow Net", &backend, loaded);
            }
            let bert = models_dir.join(format!("bert4rec-{backend}"));
            if bert.with_extension("safetensors").is_file() {
                let loaded = Bert4RecRecommender::load(&bert, embeddings.clone(), &items, device);
                self.add_loaded("BERT4Rec", &backend, loaded);
            }
        }
    }

    fn add_loaded<R: Recommender + 'static, E: std::fmt::Display>(
        &mut self,
        what: &str,
        backend: &str,
        loaded: Result<R, E>,
    ) {
        match loaded {
            Ok(model) => {
                tracing::info!(%backend, model = what, "checkpoint loaded");
                self.add(Arc::new(model));
            }
            Err(e) => {
                tracing::error!(%backend, model = what, error = %e, "could not load the checkpoint")
            }
        }
    }

    /// Adds (or replaces) a model under its (model, backend) name.
    pub fn add(&mut self, recommender: Arc<dyn Recommender>) {
        let key = (
            recommender.model().to_string(),
            recommender.backend().to_string(),
        );
        self.models.insert(key, recommender);
    }

    pub fn get(&self, model: &str, backend: &str) -> Option<&Arc<dyn Recommender>> {
        self.models.get(&(model.to_string(), backend.to_string()))
    }

    /// The KNN recommender of a backend, whose index also answers "similar tracks".
    pub fn knn(&self, backend: &str) -> Option<&Arc<KnnRecommender>> {
        self.knn.get(backend)
    }

    /// (model, backend) pairs on offer.
    pub fn models(&self) -> impl Iterator<Item = (&str, &str)> {
        self.models.keys().map(|(m, b)| (m.as_str(), b.as_str()))
    }

    pub fn has_model(&self, model: &str) -> bool {
        self.models.keys().any(|(m, _)| m == model)
    }
}
