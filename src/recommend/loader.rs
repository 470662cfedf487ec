//! Loading what a registry serves in the background, so that the service listens first:
//! every backend's KNN index and every checkpoint found in the models folder (Shallow
//! Net, BERT4Rec), as jobs run quick ones first, then longest first, one at a time per
//! core. Each graph build is sequential and seeded (so deterministic) and the backends
//! are independent, so whole builds run side by side rather than one build across cores.
//!
//! Until its job is done an entry is `building`, expected ready when the queue in front
//! of it and its own cost ([`cost`]) say; the estimate is redone whenever a job starts
//! or ends, so a build that runs late pushes back the ones queued behind it.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::Device;

use super::Recommender;
use super::bert4rec::Bert4RecRecommender;
use super::knn::KnnRecommender;
use super::readiness::State;
use super::registry::Registry;
use super::shallow::ShallowRecommender;
use crate::embeddings::Embeddings;
use crate::index::{self, HnswParams, IndexKind, sample_positions};

/// Jobs estimated under this (an exact index, an empty backend) run before the others:
/// their backends serve at once, and the long builds behind them start at most this much
/// later. The rest run longest first, which ends the start-up soonest.
const QUICK_JOB: Duration = Duration::from_secs(1);

/// How the served models are built.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    pub index: IndexKind,
    pub hnsw: HnswParams,
    /// Where HNSW graphs are saved and reloaded.
    pub index_cache: Option<PathBuf>,
    /// Stored users whose KNN vector is kept (see [`KnnRecommender::remember_users`]).
    pub remembered_users: usize,
    /// Trained checkpoints named `<model>-<backend>`.
    pub models_dir: PathBuf,
    pub device: Device,
    /// Jobs run at once: one per core.
    pub threads: usize,
}

/// What a job yields.
enum Loaded {
    Knn(Arc<KnnRecommender>),
    Model(Arc<dyn Recommender>),
}

type Run = Box<dyn FnOnce() -> Result<Loaded, String> + Send>;

/// One thing to build or load.
struct Job {
    model: &'static str,
    backend: String,
    /// Estimated duration.
    cost: Duration,
    run: Run,
}

/// A running service's way to load what it serves: the registry, and how its models are
/// built (for a checkpoint trained while it runs).
#[derive(Clone)]
pub struct Loader {
    registry: Arc<Registry>,
    settings: LoadSettings,
}

impl Loader {
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Loads the checkpoint `<model>-<backend>` from the models folder and serves it.
    pub fn load_checkpoint(&self, model: &str, backend: &str) -> Result<(), String> {
        let embeddings = self
            .registry
            .backends
            .get(backend)
            .ok_or_else(|| format!("no backend `{backend}`"))?;
        let items = all_items(&self.registry);
        let job = checkpoint_job(model, embeddings, &items, &self.settings).ok_or_else(|| {
            format!(
                "no checkpoint {model}-{backend} in {}",
                self.settings.models_dir.display()
            )
        })?;
        match (job.run)()? {
            Loaded::Knn(knn) => self.registry.add_knn(knn),
            Loaded::Model(r) => self.registry.add(r),
        }
        Ok(())
    }
}

/// Marks every entry the start-up loads as building, with its expected time, and loads
/// them on a thread of its own (which itself runs `settings.threads` at once); each entry
/// turns ready (or failed) as its job ends, and the registry's start-up ends with the last.
pub fn start(registry: Arc<Registry>, settings: &LoadSettings) -> Loader {
    let mut jobs = plan(&registry, settings);
    jobs.sort_by_key(|j| (j.cost >= QUICK_JOB, std::cmp::Reverse(j.cost)));
    let queue = Queue::new(&jobs, settings.threads.max(1));
    let expected = queue.publish_all(&registry);
    tracing::info!(
        jobs = jobs.len(),
        threads = queue.threads,
        expected_seconds = expected.map_or(0.0, |t| t.duration_since(queue.began).as_secs_f64()),
        "building indexes and loading checkpoints in the background"
    );
    let background = registry.clone();
    std::thread::Builder::new()
        .name("registry-loader".into())
        .spawn(move || run(&background, jobs, queue))
        .expect("spawn the loader thread");
    Loader {
        registry,
        settings: settings.clone(),
    }
}

/// The tracks a build indexes: the catalogue less its withdrawn tracks (a build is where
/// withdrawals are compacted away).
fn all_items(registry: &Registry) -> Arc<[u32]> {
    registry.catalog.served_indices().into()
}

/// One job per backend's KNN index, and per checkpoint found for a served backend.
fn plan(registry: &Registry, s: &LoadSettings) -> Vec<Job> {
    let items = all_items(registry);
    let mut jobs = Vec::new();
    for (backend, embeddings) in &registry.backends {
        let (e, items2, s2) = (embeddings.clone(), items.clone(), s.clone());
        let kind = resolve(s.index, s.hnsw, embeddings, &items);
        jobs.push(Job {
            model: "knn",
            backend: backend.clone(),
            cost: index_cost(kind, s.hnsw, items.len(), e.dim),
            run: Box::new(move || {
                let knn = KnnRecommender::new(e, &items2, kind, s2.hnsw, s2.index_cache.as_deref());
                Ok(Loaded::Knn(Arc::new(
                    knn.remember_users(s2.remembered_users),
                )))
            }),
        });
        for model in ["shallow", "bert4rec"] {
            jobs.extend(checkpoint_job(model, embeddings, &items, s));
        }
    }
    jobs
}

/// The kind of index `kind` builds over a backend's `items`: `Auto` resolved on the rows
/// ([`index::resolve`]) once here, so that the estimate and the build agree.
fn resolve(kind: IndexKind, params: HnswParams, e: &Embeddings, items: &[u32]) -> IndexKind {
    if kind != IndexKind::Auto {
        return kind;
    }
    let with_rows: Vec<u32> = items.iter().copied().filter(|&t| e.has_row(t)).collect();
    let sample = || {
        let ids: Vec<u32> = sample_positions(with_rows.len())
            .map(|i| with_rows[i])
            .collect();
        e.normalized_rows(&ids)
    };
    tracing::info_span!("backend", backend = %e.backend)
        .in_scope(|| index::resolve(kind, with_rows.len(), e.dim, params, sample))
}

/// Loading the checkpoint `<model>-<backend>` (Shallow Net or BERT4Rec), if there is one.
fn checkpoint_job(
    model: &str,
    embeddings: &Arc<Embeddings>,
    items: &Arc<[u32]>,
    s: &LoadSettings,
) -> Option<Job> {
    let (e, items, s) = (embeddings.clone(), items.clone(), s.clone());
    let backend = e.backend.clone();
    let name = s.models_dir.join(format!("{model}-{backend}"));
    if !name.with_extension("safetensors").is_file() {
        return None;
    }
    let n = items.len();
    let (model, cost, run): (&'static str, Duration, Run) = match model {
        "shallow" => {
            // The tower maps every item (d × d multiply-adds), then its index is built.
            let tower = Duration::from_secs_f64(n as f64 * (e.dim * e.dim) as f64 * 1e-9);
            let cost = tower + index_cost(s.index, s.hnsw, n, e.dim);
            let run: Run = Box::new(move || {
                let r =
                    ShallowRecommender::load(&s.models_dir, e, &items, s.index, s.hnsw, &s.device);
                r.map(|r| Loaded::Model(Arc::new(r) as Arc<dyn Recommender>))
                    .map_err(|e| e.to_string())
            });
            ("shallow", cost, run)
        }
        "bert4rec" => {
            let cost = Duration::from_secs_f64(0.5 + n as f64 * e.dim as f64 * 2e-9);
            let run: Run = Box::new(move || {
                let r = Bert4RecRecommender::load(&name, e, &items, &s.device);
                r.map(|r| Loaded::Model(Arc::new(r) as Arc<dyn Recommender>))
                    .map_err(|e| e.to_string())
            });
            ("bert4rec", cost, run)
        }
        _ => return None,
    };
    Some(Job {
        model,
        backend,
        cost,
        run,
    })
}

/// Seconds per graph node inserted at 64-d with the default `m` and `ef_construction`:
/// `cargo bench --bench knn` built the 56,000-track musicnn and mert graphs in about 10 s
/// each on a quiet 2-core machine (README), so this is a little pessimistic there, and a
/// client told to retry rarely comes back too early. Structureless rows (the demo's
/// Gaussian `noise`, 38.9 s) take longer; `auto` serves those exactly (see [`index::choose`]),
/// and the estimate is redone as builds start and end.
const SECONDS_PER_NODE: f64 = 2.5e-4;

/// The estimated time to build an index of `kind` over `items` rows of `dim` values: the
/// exact scan only copies rows; a graph costs per node in proportion to the width it is
/// built in and to its build parameters, with a logarithmic factor for its depth, plus
/// the projection's fit for wide rows. A cached graph reloads far faster than this.
pub fn index_cost(kind: IndexKind, params: HnswParams, items: usize, dim: usize) -> Duration {
    let n = items as f64;
    let seconds = match kind {
        IndexKind::Exact => n * dim as f64 * 1e-9,
        // The crate's graph is built at full width; ours in the reduced space. `Auto`
        // still unresolved (a Shallow Net's index over its tower's rows, resolved when
        // built) is estimated as a graph: a client told to retry later rather than sooner.
        IndexKind::Hnsw | IndexKind::HnswRs | IndexKind::Auto => {
            let graph_dim = match kind {
                IndexKind::Hnsw | IndexKind::Auto => params.graph_dim(dim),
                _ => dim,
            };
            let defaults = HnswParams::default();
            let width = (graph_dim as f64 / 64.0)
                * (params.ef_construction as f64 / defaults.ef_construction as f64)
                * (params.m as f64 / defaults.m as f64);
            let depth = n.max(2.0).ln() / 56_000f64.ln();
            let projection = if graph_dim < dim {
                n * (dim * graph_dim) as f64 * 2e-9
            } else {
                0.0
            };
            n * SECONDS_PER_NODE * width * depth + projection
        }
    };
    Duration::from_secs_f64(seconds)
}

/// The jobs' places in time, and their entries' names. The lock is held while the
/// registry is told, so an entry is never marked building after its job has ended.
struct Queue {
    began: Instant,
    threads: usize,
    names: Vec<(&'static str, String)>,
    slots: Mutex<Vec<Slot>>,
}

#[derive(Clone, Copy)]
struct Slot {
    cost: Duration,
    started: Option<Instant>,
    done: bool,
}

impl Queue {
    fn new(jobs: &[Job], threads: usize) -> Self {
        let slot = |j: &Job| Slot {
            cost: j.cost,
            started: None,
            done: false,
        };
        Self {
            began: Instant::now(),
            threads,
            names: jobs.iter().map(|j| (j.model, j.backend.clone())).collect(),
            slots: Mutex::new(jobs.iter().map(slot).collect()),
        }
    }

    /// When each job not yet done is expected to end, seen at `now`: running jobs end at
    /// their start plus their cost (now, if that has passed), and queued ones take the
    /// first thread to come free, in order.
    fn etas(slots: &[Slot], threads: usize, now: Instant) -> Vec<Option<Instant>> {
        let mut free: Vec<Instant> = slots
            .iter()
            .filter(|s| !s.done)
            .filter_map(|s| s.started.map(|t| (t + s.cost).max(now)))
            .collect();
        free.resize(threads.max(free.len()), now);
        slots
            .iter()
            .map(|s| match (s.done, s.started) {
                (true, _) => None,
                (false, Some(t)) => Some((t + s.cost).max(now)),
                (false, None) => {
                    let first = (0..free.len())
                        .min_by_key(|&i| free[i])
                        .expect("at least one thread");
                    free[first] += s.cost;
                    Some(free[first])
                }
            })
            .collect()
    }

    /// Tells the registry every pending entry's expected time; returns the last one.
    fn publish(&self, slots: &[Slot], registry: &Registry) -> Option<Instant> {
        let etas = Self::etas(slots, self.threads, Instant::now());
        for ((model, backend), eta) in self.names.iter().zip(&etas) {
            if let Some(eta) = eta {
                registry.set_state(model, backend, State::Building { eta: *eta });
            }
        }
        etas.into_iter().flatten().max()
    }

    fn publish_all(&self, registry: &Registry) -> Option<Instant> {
        self.publish(&self.slots.lock().expect("loader lock"), registry)
    }

    /// The next job to run, marked started; `None` when all have been taken.
    fn take(&self, registry: &Registry) -> Option<usize> {
        let mut slots = self.slots.lock().expect("loader lock");
        let next = slots.iter().position(|s| s.started.is_none())?;
        slots[next].started = Some(Instant::now());
        self.publish(&slots, registry);
        Some(next)
    }

    /// Marks job `index` done and applies its outcome to the registry.
    fn finish(&self, index: usize, registry: &Registry, apply: impl FnOnce()) {
        let mut slots = self.slots.lock().expect("loader lock");
        slots[index].done = true;
        apply();
        self.publish(&slots, registry);
    }
}

/// Runs the jobs, `queue.threads` at once, and ends the registry's start-up.
fn run(registry: &Registry, jobs: Vec<Job>, queue: Queue) {
    let runs: Vec<Mutex<Option<Run>>> = jobs.into_iter().map(|j| Mutex::new(Some(j.run))).collect();
    let work = || {
        while let Some(i) = queue.take(registry) {
            let run = runs[i]
                .lock()
                .expect("loader lock")
                .take()
                .expect("run once");
            let (model, backend) = (queue.names[i].0, &queue.names[i].1);
            let started = Instant::now();
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(run))
                .unwrap_or_else(|_| Err("the build panicked (see the log)".into()));
            let seconds = started.elapsed().as_secs_f64();
            queue.finish(i, registry, || match outcome {
                Ok(Loaded::Knn(knn)) => {
                    tracing::info!(%backend, model, seconds, "KNN index ready");
                    registry.add_knn(knn);
                }
                Ok(Loaded::Model(r)) => {
                    tracing::info!(%backend, model, seconds, "checkpoint loaded");
                    registry.add(r);
                }
                Err(reason) => {
                    tracing::error!(%backend, model, error = %reason, "could not load; not served");
                    registry.fail(model, backend, reason);
                }
            });
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..queue.threads {
            scope.spawn(work);
        }
    });
    tracing::info!(
        seconds = queue.began.elapsed().as_secs_f64(),
        "start-up loading done"
    );
    registry.finish_start();
}
