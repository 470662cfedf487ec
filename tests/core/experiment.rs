//! The experiment grid end to end on tiny demo data: interrupted in the middle of a
//! cell's training and run again, it skips the cells it stored and computes the rest; the
//! report is then read back from the database alone, on SQLite and on Postgres.

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;

use audiorec::dataset::demo::{Scale, generate};
use audiorec::dataset::{Dataset, ImportOptions, Layout, Split, SplitConfig};
use audiorec::eval::report::{ModelKind, Variant, render_html};
use audiorec::experiment::grid::plan;
use audiorec::experiment::plan::CellSpec;
use audiorec::experiment::{ExperimentConfig, GridObserver, load_report, run_grid};
use audiorec::model::checkpoint::EpochRecord;
use audiorec::store::Store;
use audiorec::train::fit::{FitObserver, Quiet};
use candle_core::Device;

#[path = "../common/databases.rs"]
mod databases;

/// Records what the grid did; panics in the first epoch of `crash_in`, as a killed
/// process would stop.
#[derive(Default)]
struct Recorder {
    crash_in: Option<String>,
    events: Mutex<Vec<String>>,
}

struct Crash;
impl FitObserver for Crash {
    fn epoch_done(&self, _: &EpochRecord) {
        panic!("interrupted");
    }
}

impl GridObserver for Recorder {
    fn cell_done(&self, _: usize, cell: &CellSpec, _: f64, skipped: bool) {
        let what = if skipped { "skipped" } else { "computed" };
        self.events
            .lock()
            .unwrap()
            .push(format!("{what} {}", cell.key()));
    }

    fn trainer(&self, cell: &CellSpec) -> Box<dyn FitObserver + '_> {
        if self.crash_in.as_deref() == Some(cell.key().as_str()) {
            Box::new(Crash)
        } else {
            Box::new(Quiet)
        }
    }
}

fn config() -> ExperimentConfig {
    let mut c = ExperimentConfig {
        backends: vec!["musicnn".into(), "noise".into()],
        models: vec![ModelKind::Knn, ModelKind::Shallow],
        include_random: true,
        ..ExperimentConfig::default()
    };
    c.shallow.epochs = 2;
    c.shallow.batch_size = 2_000;
    c
}

fn tiny() -> (tempfile::TempDir, Dataset, Split) {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), Scale::Tiny, 3).unwrap();
    let options = ImportOptions {
        keep_from: audiorec::dataset::split::paper_keep_from(),
        missing_tracks: Default::default(),
    };
    let ds = Dataset::open(&Layout::new(dir.path()), options).unwrap();
    let split = Split::new(&ds.interactions, ds.tracks.len(), SplitConfig::default());
    (dir, ds, split)
}

#[test]
fn an_interrupted_grid_resumes_and_its_report_comes_from_the_database() {
    let (_dir, ds, split) = tiny();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db.path().join("e.db").display());
    let store = runtime.block_on(Store::connect(&url)).unwrap();
    let config = config();
    let plan = plan(&config, &ds, &split, "cpu").unwrap();
    assert_eq!(plan.cells.len(), 5);

    let first = Recorder {
        crash_in: Some("shallow/content/noise".into()),
        ..Recorder::default()
    };
    let crashed = std::panic::catch_unwind(AssertUnwindSafe(|| {
        run_grid(
            &plan,
            &config,
            &ds,
            &split,
            &store,
            runtime.handle(),
            &Device::Cpu,
            &first,
        )
    }));
    assert!(crashed.is_err(), "the grid was interrupted");
    assert_eq!(
        *first.events.lock().unwrap(),
        [
            "computed knn/content/musicnn",
            "computed knn/content/noise",
            "computed shallow/content/musicnn"
        ]
    );

    let second = Recorder::default();
    let computed = run_grid(
        &plan,
        &config,
        &ds,
        &split,
        &store,
        runtime.handle(),
        &Device::Cpu,
        &second,
    )
    .unwrap();
    assert_eq!(computed, 2);
    assert_eq!(
        *second.events.lock().unwrap(),
        [
            "skipped knn/content/musicnn",
            "skipped knn/content/noise",
            "skipped shallow/content/musicnn",
            "computed shallow/content/noise",
            "computed shallow/random/musicnn"
        ]
    );

    let report = runtime.block_on(load_report(&store, &plan.id)).unwrap();
    assert_eq!(report.cells.len(), 5);
    let table = report.table3();
    assert_eq!(table.blocks.len(), 2, "a KNN block and a Shallow Net block");
    let html = render_html(&report);
    assert!(html.contains("<svg") && html.contains("musicnn"));
    // Every cell was evaluated on the same users, named by id.
    let users = &report.cells[0].test.user_ids;
    assert!(!users.is_empty());
    assert!(report.cells.iter().all(|c| &c.test.user_ids == users));
    assert!(report.cells[0].index_recall.is_some_and(|r| r > 0.5));
    assert_eq!(report.cells[2].curve.len(), 2, "two epochs trained");
}

#[test]
fn the_report_reads_back_identically_from_postgres() {
    if databases::postgres_available().is_none() {
        return;
    }
    let (_dir, ds, split) = tiny();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(databases::fresh_postgres());
    let store = runtime.block_on(Store::connect(&url)).unwrap();
    let config = ExperimentConfig {
        models: vec![ModelKind::Knn],
        ..config()
    };
    let plan = plan(&config, &ds, &split, "cpu").unwrap();
    run_grid(
        &plan,
        &config,
        &ds,
        &split,
        &store,
        runtime.handle(),
        &Device::Cpu,
        &Recorder::default(),
    )
    .unwrap();
    let sqlite_dir = tempfile::tempdir().unwrap();
    let sqlite = runtime
        .block_on(Store::connect(&format!(
            "sqlite://{}",
            sqlite_dir.path().join("e.db").display()
        )))
        .unwrap();
    run_grid(
        &plan,
        &config,
        &ds,
        &split,
        &sqlite,
        runtime.handle(),
        &Device::Cpu,
        &Recorder::default(),
    )
    .unwrap();
    let from_pg = runtime.block_on(load_report(&store, &plan.id)).unwrap();
    let from_sqlite = runtime.block_on(load_report(&sqlite, &plan.id)).unwrap();
    assert_eq!(from_pg.cells.len(), 2);
    let scores = |r: &audiorec::eval::report::GridReport| -> Vec<_> {
        r.cells
            .iter()
            .map(|c| (c.test.clone(), c.validation.clone()))
            .collect()
    };
    assert_eq!(scores(&from_pg), scores(&from_sqlite));
}

#[test]
fn a_cold_split_adds_shuffled_controls_and_hot_and_cold_results() {
    let (_dir, ds, _) = tiny();
    let cold = SplitConfig {
        cold_items: 0.2,
        ..SplitConfig::default()
    };
    let split = Split::new(&ds.interactions, ds.tracks.len(), cold);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db.path().join("e.db").display());
    let store = runtime.block_on(Store::connect(&url)).unwrap();
    let config = config();
    let plan = plan(&config, &ds, &split, "cpu").unwrap();
    let keys: Vec<String> = plan.cells.iter().map(CellSpec::key).collect();
    assert_eq!(
        keys,
        [
            "knn/content/musicnn",
            "knn/content/noise",
            "knn/shuffled/musicnn",
            "shallow/content/musicnn",
            "shallow/content/noise",
            "shallow/shuffled/musicnn",
            "shallow/random/musicnn",
        ]
    );
    assert!(plan.header.manifest.contains_key("cold start"));
    let recorder = Recorder::default();
    run_grid(
        &plan,
        &config,
        &ds,
        &split,
        &store,
        runtime.handle(),
        &Device::Cpu,
        &recorder,
    )
    .unwrap();
    let report = runtime.block_on(load_report(&store, &plan.id)).unwrap();
    assert_eq!(report.split.cold.tracks, split.cold_items.len());
    let cold_users = split
        .held_subset(
            audiorec::dataset::split::Part::Test,
            audiorec::dataset::split::Subset::Cold,
        )
        .len();
    for c in &report.cells {
        let hot = c.hot.as_ref().expect("every cell has hot results");
        assert!(!hot.user_ids.is_empty());
        match c.variant {
            Variant::Random => assert!(c.cold.is_none(), "Random cannot know a cold track"),
            _ => assert_eq!(c.cold.as_ref().unwrap().user_ids.len(), cold_users),
        }
    }
    let table = report.table3();
    let cold = report.cold_table(&table).expect("a hot and cold table");
    assert_eq!(cold.cold_users, cold_users);
    let md = audiorec::eval::report::render_markdown(&report);
    assert!(md.contains("musicnn shuffled") && md.contains("## Hot and cold"));
}
