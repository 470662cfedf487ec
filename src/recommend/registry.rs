//! The recommenders a running service offers, keyed by (model, backend), over one catalog,
//! and where each one stands: a service listens before its indexes are built and may
//! train models while it serves, so entries become ready over time (see
//! [`super::loader`] for the start-up, and [`State`]).
//!
//! The service serves every catalog track (not only train tracks): a track added with its
//! rows ([`Registry::apply`]) joins the backends' matrices and every serving model that
//! can know a track by its content, in the next answer and without a rebuild.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use super::Recommender;
use super::catalogue::{Catalogue, CatalogueError, Change};
use super::knn::KnnRecommender;
use super::readiness::State;
use crate::dataset::Vocab;
use crate::embeddings::Embeddings;
use crate::embeddings::added::RowError;

/// Everything the API needs to answer from memory: the catalog, the frozen matrices and
/// the models built on them, as they become ready.
pub struct Registry {
    pub catalog: Catalogue,
    pub backends: BTreeMap<String, Arc<Embeddings>>,
    entries: RwLock<BTreeMap<(String, String), Entry>>,
    knn: RwLock<BTreeMap<String, Arc<KnnRecommender>>>,
    /// Start-up tasks still running: the loading (until every entry it planned is ready
    /// or failed), and the dataset's import into an empty database when there is one.
    started: (Mutex<usize>, Condvar),
    /// Held by whoever fetches and applies catalogue changes (see [`Registry::syncing`]).
    syncing: tokio::sync::Mutex<()>,
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

/// Why a catalogue change was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error(transparent)]
    Row(#[from] RowError),
    #[error("no served backend `{0}`")]
    UnknownBackend(String),
}

/// Admits `track` to `recommender`; a failure is logged and leaves it out of that
/// model's answers only.
fn admit(recommender: &dyn Recommender, track: u32) {
    if let Err(e) = recommender.admit(track) {
        tracing::error!(model = recommender.model(), backend = recommender.backend(), track, error = %e, "an added track could not join the model");
    }
}

fn key(model: &str, backend: &str) -> (String, String) {
    (model.to_string(), backend.to_string())
}

impl Registry {
    /// A registry of `backends` over `catalog` with nothing loaded yet.
    pub fn new(catalog: Vocab, backends: Vec<Embeddings>) -> Self {
        Self {
            catalog: Catalogue::new(catalog),
            backends: backends
                .into_iter()
                .map(|e| (e.backend.clone(), Arc::new(e)))
                .collect(),
            entries: RwLock::default(),
            knn: RwLock::default(),
            started: (Mutex::new(1), Condvar::new()),
            syncing: tokio::sync::Mutex::new(()),
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

    /// Serves `recommender` under its (model, backend) name from now on, ready. It was
    /// built over the catalogue as it was when its build began, so the tracks added since
    /// are admitted to it here (a track added meanwhile reaches it through one path or
    /// both; admitting is idempotent).
    pub fn add(&self, recommender: Arc<dyn Recommender>) {
        let key = key(recommender.model(), recommender.backend());
        let entry = Entry {
            serving: Some(recommender.clone()),
            state: State::Ready,
        };
        self.entries
            .write()
            .expect("registry lock")
            .insert(key, entry);
        let imported = self.catalog.imported().len() as u32;
        for track in imported..self.catalog.len() as u32 {
            admit(recommender.as_ref(), track);
        }
    }

    /// Applies one catalogue change: an added track's rows join the backends (none in a
    /// backend the change does not name) and it joins every serving model that can
    /// know it by content; a withdrawn track leaves every answer (see
    /// [`Catalogue::visible`]). A change already applied is skipped (`Ok(false)`); one
    /// that does not fit (a gap, a bad row) changes nothing.
    pub fn apply(&self, change: &Change) -> Result<bool, ApplyError> {
        let applied = self.catalog.apply(change, || {
            let Change::Add { rows, .. } = change else {
                return Ok(());
            };
            for (backend, row) in rows {
                let embeddings = self
                    .backends
                    .get(backend)
                    .ok_or_else(|| ApplyError::UnknownBackend(backend.clone()))?;
                embeddings.check_row(row)?;
            }
            for (name, embeddings) in &self.backends {
                let row = rows.get(name).map(Vec::as_slice);
                embeddings.push_added(row).expect("a checked row");
            }
            Ok::<_, ApplyError>(())
        })?;
        if let (true, Change::Add { index, .. }) = (applied, change) {
            let serving: Vec<Arc<dyn Recommender>> = {
                let entries = self.entries.read().expect("registry lock");
                entries.values().filter_map(|e| e.serving.clone()).collect()
            };
            for recommender in serving {
                admit(recommender.as_ref(), *index);
            }
        }
        Ok(applied)
    }

    /// Serves a backend's KNN recommender, whose index also answers "similar tracks".
    pub fn add_knn(&self, knn: Arc<KnnRecommender>) {
        self.knn
            .write()
            .expect("registry lock")
            .insert(knn.backend().to_string(), knn.clone());
        self.add(knn);
    }

    /// The lock to hold while fetching stored catalogue changes and applying them: a
    /// caller that finds its change already applied by another (a replica's poll) then
    /// returns only after that one has also admitted it to every model.
    pub fn syncing(&self) -> &tokio::sync::Mutex<()> {
        &self.syncing
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

    /// Counts one more start-up task besides the loading (see [`Registry::starting`]),
    /// which ends with its own [`Registry::finish_start`].
    pub fn add_start_task(&self) {
        *self.started.0.lock().expect("registry lock") += 1;
    }

    /// Declares one start-up task over: the loading (see [`super::loader`]) or one
    /// added with [`Registry::add_start_task`].
    pub fn finish_start(&self) {
        let (pending, changed) = &self.started;
        let mut pending = pending.lock().expect("registry lock");
        *pending = pending.saturating_sub(1);
        changed.notify_all();
    }

    /// Whether a start-up task is still going on.
    pub fn starting(&self) -> bool {
        *self.started.0.lock().expect("registry lock") > 0
    }

    /// Blocks until every start-up task is over.
    pub fn wait_started(&self) {
        let (pending, changed) = &self.started;
        let guard = pending.lock().expect("registry lock");
        let _done = changed
            .wait_while(guard, |pending| *pending > 0)
            .expect("registry lock");
    }
}
