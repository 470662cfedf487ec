//! Building the service from settings and running it: demo data when there is no
//! dataset, then axum on a bound socket with graceful shutdown and the job worker beside
//! it, while every backend's KNN index and every checkpoint found are built and loaded in
//! the background ([`crate::recommend::loader`]) and, into an empty database, the dataset
//! is imported: the service answers as soon as it listens, each model serves from the
//! moment it is ready, and routes that need the database from the end of the import.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{AppState, router};
use crate::audio::mfcc;
use crate::config::Settings;
use crate::dataset::demo::{self, Scale};
use crate::dataset::{Dataset, Interactions, Layout, MissingTracks, Vocab};
use crate::embeddings::Embeddings;
use crate::embeddings::manifest::Manifest;
use crate::jobs::{self, Worker, WorkerConfig};
use crate::model::content::{self, AudioEmbedder};
use crate::model::musicnn::{self, Musicnn, PENULTIMATE_DIM};
use crate::recommend::loader::{self, LoadSettings, Loader};
use crate::recommend::registry::Registry;
use crate::store::{Store, StoreError};

/// A bound, ready-to-run service.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    store: Store,
    worker: Worker,
    loader: Loader,
}

impl Application {
    /// Loads the catalog and embeddings, connects and migrates the database, starts
    /// building the models in the background and binds the socket.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let (state, loader) = load_state(settings).await?;
        let store = state.store.clone();
        let worker = Worker::new(
            store.clone(),
            WorkerConfig {
                poll: Duration::from_millis(500),
                stale_after: Duration::from_secs(settings.job_stale_after.max(1)),
                shutdown_grace: Duration::from_secs(settings.shutdown_grace),
            },
        )
        .handle(jobs::EVALUATION, super::eval_jobs::handler(state.clone()))
        .handle(
            jobs::EXPERIMENT,
            jobs::experiment::handler(store.clone(), state.grids.clone(), state.board.clone()),
        );
        let router = router(state, settings);
        let listener = TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("could not listen on {}", settings.bind))?;
        Ok(Self {
            listener,
            router,
            store,
            worker,
            loader,
        })
    }

    /// What the service serves, and a way to serve a model trained while it runs (the
    /// demo's background training uses it).
    pub fn loader(&self) -> Loader {
        self.loader.clone()
    }

    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The database pool the service uses (tests close it to simulate an outage).
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn port(&self) -> u16 {
        self.address().port()
    }

    /// Serves and works jobs until `shutdown` resolves; then finishes in-flight requests,
    /// stops claiming jobs and lets the running one finish within the shutdown grace
    /// (else hands it back to the queue).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let worker = self.worker.spawn(stopped);
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop.send(true);
            })
            .await
            .context("server error");
        if let Err(e) = worker.await {
            tracing::error!(error = %e, "the job worker panicked");
        }
        self.store.close().await;
        served
    }
}

/// Resolves Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}

async fn load_state(settings: &Settings) -> anyhow::Result<(AppState, Loader)> {
    let layout = Layout::new(&settings.data);
    if !settings.data.exists() {
        tracing::info!(dir = %settings.data.display(), scale = ?settings.demo_scale, "no dataset: generating demo data");
        let dir = settings.data.clone();
        let scale: Scale = settings.demo_scale;
        tokio::task::spawn_blocking(move || demo::generate(&dir, scale, 7))
            .await?
            .with_context(|| format!("could not write demo data to {}", settings.data.display()))?;
    }
    let sqlite_dir = settings
        .database_url
        .strip_prefix("sqlite://")
        .and_then(|path| std::path::Path::new(path.split('?').next().unwrap_or(path)).parent());
    if let Some(dir) = sqlite_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    let store = Store::connect(&settings.database_url)
        .await
        .with_context(|| "could not open the database (DATABASE_URL)".to_string())?;

    let load_layout = layout.clone();
    let wanted = settings.backends.clone();
    let (dataset, backends) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let options = crate::dataset::ImportOptions {
            keep_from: i64::MIN,
            missing_tracks: MissingTracks::Skip,
        };
        let dataset = Dataset::open(&load_layout, options)?;
        let names = if wanted.is_empty() {
            load_layout.backends()?
        } else {
            wanted
        };
        let backends = names
            .iter()
            .map(|b| dataset.load_embeddings(b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((dataset, backends))
    })
    .await??;

    // An empty database gets the dataset imported after the socket is bound (12M plays
    // take minutes): until then routes that need the database answer 503 `not-ready`,
    // and routes served from memory answer as soon as their models are ready.
    let empty = store.track_count().await? == 0;
    if !empty && store.imported_track_ids().await? != dataset.tracks.ids().collect::<Vec<_>>() {
        bail!(
            "the database holds a different catalog than {} (use a fresh database for another dataset)",
            layout.track_ids().display()
        );
    }

    let mut backends = backends;
    let audio = audio_backends(&layout, &mut backends, dataset.tracks.len());
    let registry = Arc::new(Registry::new(dataset.tracks, backends));
    let importing = Arc::new(AtomicBool::new(empty));
    if empty {
        registry.add_start_task();
        tokio::spawn(import(
            store.clone(),
            registry.clone(),
            dataset.interactions,
            importing.clone(),
        ));
    } else {
        // Tracks added and withdrawn through the API since the import, before any
        // build, so the first builds index them (and leave withdrawn ones out).
        let replayed = super::catalogue::sync(&store, &registry)
            .await
            .map_err(|e| anyhow::anyhow!("could not replay the catalogue's changes: {e}"))?;
        if replayed > 0 {
            tracing::info!(
                changes = replayed,
                tracks = registry.catalog.served(),
                "catalogue changes replayed"
            );
        }
    }
    tokio::spawn(super::catalogue::poll(
        store.clone(),
        registry.clone(),
        Duration::from_millis(settings.catalogue_poll_ms.max(10)),
    ));
    let load = LoadSettings {
        index: settings.index,
        hnsw: settings.hnsw(),
        index_cache: Some(layout.derived().join("index")),
        remembered_users: settings.remembered_users,
        models_dir: settings.models_dir(),
        device: crate::model::parse_device(&settings.device).map_err(anyhow::Error::msg)?,
        threads: std::thread::available_parallelism().map_or(1, usize::from),
    };
    let loader = loader::start(registry.clone(), &load);
    let state = AppState::new(store, registry, settings, audio, importing);
    Ok((state, loader))
}

/// Imports the dataset into the empty database, then declares this start-up task over
/// and opens the routes that need the database. Another instance importing the same
/// dataset into the same database first is waited for. A failed import is logged and
/// leaves the service not ready (those routes keep answering 503).
async fn import(
    store: Store,
    registry: Arc<Registry>,
    interactions: Interactions,
    importing: Arc<AtomicBool>,
) {
    let tracks = registry.catalog.imported();
    tracing::info!(
        tracks = tracks.len(),
        users = interactions.users.len(),
        pairs = interactions.len(),
        database = store.kind(),
        "importing the dataset into the database (in the background)"
    );
    let started = std::time::Instant::now();
    let outcome = match store.import(tracks, &interactions).await {
        Err(StoreError::Conflict(_)) => imported_elsewhere(&store, tracks).await,
        outcome => outcome.map_err(anyhow::Error::from),
    };
    match outcome {
        Ok(()) => {
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "dataset imported: every route is open"
            );
            importing.store(false, Ordering::Release);
            registry.finish_start();
        }
        Err(e) => {
            tracing::error!(error = %e, "could not import the dataset: routes that need the database stay unavailable");
        }
    }
}

/// Waits for another instance's import of the same catalogue to commit (an import is
/// one transaction, so it is there whole or not at all).
async fn imported_elsewhere(store: &Store, tracks: &Vocab) -> anyhow::Result<()> {
    let ours: Vec<&str> = tracks.ids().collect();
    loop {
        let stored = store.imported_track_ids().await?;
        if stored == ours {
            return Ok(());
        }
        if !stored.is_empty() {
            bail!("another instance imported a different catalog into this database");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// MusiCNN and MFCC for uploads, if the MusiCNN weights are installed: each kind of row
/// joins the served backend whose manifest entry names its extractor, or else a backend
/// of its own (`musicnn-audio`, `mfcc-audio`) that holds uploaded tracks only: rows
/// computed here never mix with rows made another way. Without weights, why not.
fn audio_backends(
    layout: &Layout,
    backends: &mut Vec<Embeddings>,
    catalogue: usize,
) -> Result<AudioEmbedder, String> {
    let dir = musicnn::default_dir();
    let model = Musicnn::load(&dir, &candle_core::Device::Cpu).map_err(|e| e.to_string())?;
    let manifest = Manifest::for_dir(&layout.embeddings_dir()).map_err(|e| e.to_string())?;
    let mut target = |extractor: &str, own: &str, dim: usize| {
        let declared = (manifest.backends.iter())
            .find(|(name, info)| {
                info.extractor.as_deref() == Some(extractor)
                    && backends.iter().any(|b| &b.backend == *name)
            })
            .map(|(name, _)| name.clone());
        declared.unwrap_or_else(|| {
            backends.push(Embeddings::content_only(own, dim, catalogue));
            own.to_string()
        })
    };
    let musicnn_backend = target(content::MUSICNN_EXTRACTOR, "musicnn-audio", PENULTIMATE_DIM);
    let mfcc_backend = target(content::MFCC_EXTRACTOR, "mfcc-audio", mfcc::TRACK_DIM);
    tracing::info!(musicnn = %musicnn_backend, mfcc = %mfcc_backend, weights = %dir.display(), "audio uploads are embedded in-process");
    Ok(AudioEmbedder::new(model, musicnn_backend, mfcc_backend))
}
