//! `spawn_app`: a fresh database per test (a temp SQLite file or a uuid-named Postgres
//! database), the tiny demo dataset, the real server on a free port.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use audiorec::api::startup::Application;
use audiorec::config::Settings;
use audiorec::dataset::demo::{self, Scale};
use audiorec::dataset::{Dataset, ImportOptions, Layout, MissingTracks};
use audiorec::index::{HnswParams, IndexKind};
use audiorec::recommend::registry::Registry;
use audiorec::store::Store;
use serde_json::Value;

use crate::databases;

#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Declares one test per database from one async body taking a [`Db`].
macro_rules! on_both_databases {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)(crate::helpers::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(()) = crate::helpers::postgres_available() {
                    ($body)(crate::helpers::Db::Postgres).await
                }
            }
        }
    };
}
pub(crate) use on_both_databases;

pub use databases::postgres_available;

/// The tiny demo dataset, generated and imported once per test process, with a Shallow
/// Net trained for one epoch on `musicnn` by the real CLI, so every app also serves it.
pub fn dataset_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        demo::generate(&dir, Scale::Tiny, 11).expect("demo data");
        let options = ImportOptions {
            keep_from: i64::MIN,
            missing_tracks: MissingTracks::Skip,
        };
        Dataset::import(&Layout::new(&dir), options, &|_| {}).expect("import");
        let trained = std::process::Command::new(env!("CARGO_BIN_EXE_audiorec"))
            .args(["train", "shallow", "--backend", "musicnn", "--epochs", "1"])
            .args(["--batch-size", "2000", "--data"])
            .arg(&dir)
            .output()
            .expect("run audiorec train shallow");
        let stderr = String::from_utf8_lossy(&trained.stderr);
        assert!(trained.status.success(), "{stderr}");
        dir
    })
    .clone()
}

/// The catalog's track ids in index order.
pub fn track_ids() -> Vec<String> {
    let text = std::fs::read_to_string(dataset_dir().join("trackid_sorted.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect()
}

/// A fresh database: a temp SQLite file or a new uuid-named Postgres database.
pub async fn database_url(db: Db) -> String {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir").keep();
            format!("sqlite://{}", dir.join("test.db").display())
        }
        Db::Postgres => databases::fresh_postgres().await,
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub registry: Arc<Registry>,
}

pub fn settings(database_url: String) -> Settings {
    Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url,
        data: dataset_dir(),
        demo_scale: Scale::Tiny,
        backends: Vec::new(),
        models: None,
        api_key: None,
        cors_origins: vec!["*".into()],
        request_timeout: 30,
        body_limit: 1 << 20,
        sync_eval_users: 200,
        catalogue_poll_ms: 100,
        index: IndexKind::Exact,
        ef_search: 100,
        search_dim: HnswParams::default().search_dim,
        remembered_users: 20_000,
        job_stale_after: 30,
        shutdown_grace: 10,
        experiment_budget: 600,
        device: "cpu".into(),
        demo_training: false,
        demo_epochs: None,
    }
}

/// Starts the service on a fresh database; `configure` adjusts the settings first.
pub async fn spawn_app_with(db: Db, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on(database_url(db).await, configure).await
}

/// Starts the service on the database at `url` and waits until what it loads at
/// start-up is loaded (as a load balancer waits for `/ready`).
pub async fn spawn_app_on(url: String, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = settings(url);
    configure(&mut settings);
    let app = spawn_listening(&settings).await;
    while app.registry.starting() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    app
}

/// Starts the service and returns as soon as it listens, its indexes perhaps still
/// building.
pub async fn spawn_listening(settings: &Settings) -> TestApp {
    let app = Application::build(settings)
        .await
        .expect("the service starts");
    let address = format!("http://{}", app.address());
    let store = app.store().clone();
    let registry = app.loader().registry().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        client: reqwest::Client::new(),
        store,
        registry,
    }
}

pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

impl TestApp {
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request");
        decode(r).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .expect("request");
        decode(r).await
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        decode(r).await
    }
}

/// Status and JSON body; problem responses must carry `application/problem+json`.
pub async fn decode(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(
            content_type, "application/problem+json",
            "error {status} without problem+json: {body}"
        );
        assert_eq!(body["status"], status, "problem status matches: {body}");
    }
    (status, body)
}

/// Asserts an error's status and problem type slug.
pub fn assert_problem(response: &(u16, Value), status: u16, slug: &str) {
    assert_eq!(response.0, status, "{}", response.1);
    assert_eq!(
        response.1["type"],
        format!("/problems/{slug}"),
        "{}",
        response.1
    );
    assert!(!response.1["detail"].as_str().unwrap_or_default().is_empty());
}

/// Whether the MusiCNN weights are installed where the service looks for them; says
/// so when not, naming the skipped test.
pub fn musicnn_weights(test: &str) -> bool {
    let found = audio_backends_served();
    if !found {
        let dir = audiorec::model::musicnn::default_dir();
        eprintln!(
            "SKIPPED {test}: no MusiCNN weights in {} (run `cargo run -- setup musicnn` or set {})",
            dir.display(),
            audiorec::model::musicnn::DIR_ENV
        );
    }
    found
}

/// Whether a service started here serves the in-process audio backends (`musicnn-audio`,
/// `mfcc-audio` on demo data): it does when the MusiCNN weights are installed.
pub fn audio_backends_served() -> bool {
    audiorec::model::musicnn::default_dir()
        .join(".index")
        .is_file()
}
