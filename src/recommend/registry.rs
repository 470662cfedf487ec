//! The recommenders a running service offers, keyed by (model, backend), over one catalog,
//! and where each one stands: a service listens before its indexes are built and may
//! train models while it serves, so entries become ready over time (see
//! [`super::loader`] for the start-up, and [`State`]).
//!
//! The service serves every catalog track (not only train tracks): a track added with its
//! embedding is recommendable by content-based models as soon as the service loads it.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use super::Recommender;
use super::knn::KnnRecommender;
use super::readiness::State;
use crate::dataset::Vocab;
use crate::embeddings::Embeddings;

/// Everything the API needs to answer from memory: the catalog, the frozen matrices and
/// the models built on them, as they become ready.
pub struct Registry {
    pub catalog: Vocab,
    pub backends: BTreeMap<String, Arc<Embeddings>>,
    entries: RwLock<BTreeMap<(String, String), Entry>>,
    knn: RwLock<BTreeMap<String, Arc<KnnRecommender>>>,
    /// Whether the start-up loading is over (every entry it planned is ready or failed).
    started: (Mutex<bool>, Condvar),
}

/// One (model, backend): what serves it now, and its state. A model being retrained (a
/// demo model whose training resumes) keeps serving its last checkpoint meanwhile.
struct Entry {
    serving: Option<Arc<dyn Recommender>>,
    state: State,
}

/// What a lookup finds.
pub enum Lookup {
    Ready(Arc<dyn Recommender>),
    /// Not servable yet: building or training (see [`State::retry_after`]).
    Pending(State),
    /// It failed and serves nothing; the reason.
    Failed(String),
    /// No such (model, backend).
    Missing,
}

/// An entry as the API shows it.
#[derive(Debug, Clone)]
pub struct EntryView {
    pub model: String,
    pub backend: String,
    pub state: State,
    /// Whether requests are answered now (a retrained model serves its last checkpoint).
    pub serving: bool,
}

fn key(model: &str, backend: &str) -> (String, String) {
    (model.to_string(), backend.to_string())
}

impl Registry {
    /// A registry of `backends` over `catalog` with nothing loaded yet.
    pub fn new(catalog: Vocab, backends: Vec<Embeddings>) -> Self {
        Self {
            catalog,
            backends: backends
                .into_iter()
                .map(|e| (e.backend.clone(), Arc::new(e)))
                .collect(),
            entries: RwLock::default(),
            knn: RwLock::default(),
            started: (Mutex::new(false), Condvar::new()),
        }
    }

    /// Sets the state of (model, backend), creating the entry; what it serves stays.
    pub fn set_state(&self, model: &str, backend: &str, state: State) {
        let mut entries = self.entries.write().expect("registry lock");
        match entries.get_mut(&key(model, backend)) {
            Some(entry) => entry.state = state,
            None => {
                entries.insert(
                    key(model, backend),
                    Entry {
                        serving: None,
                        state,
                    },
                );
            }
        }
    }

    /// Serves `recommender` under its (model, backend) name from now on, ready.
    pub fn add(&self, recommender: Arc<dyn Recommender>) {
        let key = key(recommender.model(), recommender.backend());
        let entry = Entry {
            serving: Some(recommender),
            state: State::Ready,
        };
        self.entries
            .write()
            .expect("registry lock")
            .insert(key, entry);
    }

    /// Serves a backend's KNN recommender, whose index also answers "similar tracks".
    pub fn add_knn(&self, knn: Arc<KnnRecommender>) {
        self.knn
            .write()
            .expect("registry lock")
            .insert(knn.backend().to_string(), knn.clone());
        self.add(knn);
    }

    /// Marks (model, backend) failed; a model that served before keeps serving.
    pub fn fail(&self, model: &str, backend: &str, reason: String) {
        self.set_state(model, backend, State::Failed(reason));
    }

    pub fn lookup(&self, model: &str, backend: &str) -> Lookup {
        let entries = self.entries.read().expect("registry lock");
        match entries.get(&key(model, backend)) {
            None => Lookup::Missing,
            Some(Entry {
                serving: Some(r), ..
            }) => Lookup::Ready(r.clone()),
            Some(Entry {
                state: State::Failed(reason),
                ..
            }) => Lookup::Failed(reason.clone()),
            Some(e) => Lookup::Pending(e.state.clone()),
        }
    }

    /// The recommender of (model, backend) if it serves.
    pub fn get(&self, model: &str, backend: &str) -> Option<Arc<dyn Recommender>> {
        match self.lookup(model, backend) {
            Lookup::Ready(r) => Some(r),
            _ => None,
        }
    }

    /// The KNN recommender of a backend once its index is built.
    pub fn knn(&self, backend: &str) -> Option<Arc<KnnRecommender>> {
        self.knn
            .read()
            .expect("registry lock")
            .get(backend)
            .cloned()
    }

    /// Every entry, by model then backend.
    pub fn entries(&self) -> Vec<EntryView> {
        let entries = self.entries.read().expect("registry lock");
        entries
            .iter()
            .map(|((model, backend), e)| EntryView {
                model: model.clone(),
                backend: backend.clone(),
                state: e.state.clone(),
                serving: e.serving.is_some(),
            })
            .collect()
    }

    /// (model, backend) pairs that serve now.
    pub fn models(&self) -> Vec<(String, String)> {
        let entries = self.entries.read().expect("registry lock");
        entries
            .iter()
            .filter(|(_, e)| e.serving.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether any backend has (or will have) `model`.
    pub fn has_model(&self, model: &str) -> bool {
        let entries = self.entries.read().expect("registry lock");
        entries.keys().any(|(m, _)| m == model)
    }

    /// Declares the start-up loading over (see [`Registry::starting`]).
    pub fn finish_start(&self) {
        let (done, changed) = &self.started;
        *done.lock().expect("registry lock") = true;
        changed.notify_all();
    }

    /// Whether the start-up loading is still going on.
    pub fn starting(&self) -> bool {
        !*self.started.0.lock().expect("registry lock")
    }

    /// Blocks until the start-up loading is over.
    pub fn wait_started(&self) {
        let (done, changed) = &self.started;
        let guard = done.lock().expect("registry lock");
        let _done = changed
            .wait_while(guard, |done| !*done)
            .expect("registry lock");
    }
}
