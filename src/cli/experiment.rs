//! `audiorec experiment`: the paper's grid in one command (train, evaluate, store, report),
//! resumable: run it again after an interruption and it continues where it stopped.

use std::path::PathBuf;

use anyhow::Context;
use audiorec::eval::report::ModelKind;
use audiorec::experiment::grid::{self, Plan};
use audiorec::experiment::plan::CellSpec;
use audiorec::experiment::{ExperimentConfig, GridObserver, load_report, run_grid};
use audiorec::model::parse_device;
use audiorec::store::Store;
use audiorec::train::fit::FitObserver;

use super::DataArgs;
use super::progress::Progress;
use super::report::write_report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Model {
    Knn,
    Shallow,
    Bert4rec,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// A TOML file with the grid's settings (backends, models, epochs, seeds, k); flags
    /// below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Backends to compare, in the report's row order (default: every backend).
    #[arg(long, value_delimiter = ',')]
    backends: Option<Vec<String>>,
    /// Recommenders (default: knn,shallow,bert4rec).
    #[arg(long, value_delimiter = ',', value_enum)]
    models: Option<Vec<Model>>,
    /// Add each neural block's Random row.
    #[arg(long)]
    include_random: bool,
    /// Print the plan and its estimated time; run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where runs are stored (embedded SQLite by default, or postgres://…).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://audiorec-data/audiorec.db"
    )]
    database_url: String,
    /// Where to write the report (default: DIR/.audiorec/experiments/<id>/report).
    #[arg(long)]
    out: Option<PathBuf>,
    /// cpu, cuda or cuda:N for training (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", env = "AUDIOREC_DEVICE")]
    device: String,
}

impl Args {
    fn config(&self) -> anyhow::Result<ExperimentConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("could not read {}", path.display()))?;
                ExperimentConfig::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            None => ExperimentConfig {
                include_random: false,
                ..ExperimentConfig::default()
            },
        };
        if let Some(b) = &self.backends {
            config.backends = b.clone();
        }
        if let Some(m) = &self.models {
            config.models = m
                .iter()
                .map(|m| match m {
                    Model::Knn => ModelKind::Knn,
                    Model::Shallow => ModelKind::Shallow,
                    Model::Bert4rec => ModelKind::Bert4rec,
                })
                .collect();
        }
        config.include_random |= self.include_random;
        Ok(config)
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

fn print_plan(plan: &Plan) {
    println!("experiment {} ({} cells)", plan.id, plan.cells.len());
    for (cell, est) in plan.cells.iter().zip(&plan.estimates) {
        println!("  {:<32} ~{}", cell.to_string(), duration(*est));
    }
    println!(
        "estimated total: {} (a rule fitted to this project's 2-core benchmarks)",
        duration(plan.estimates.iter().sum())
    );
}

/// Cell lines with an ETA, and a bar per training epoch.
struct Display;

impl GridObserver for Display {
    fn cell_started(&self, index: usize, total: usize, cell: &CellSpec, eta: f64) {
        println!(
            "[{}/{total}] {cell} … (about {} left)",
            index + 1,
            duration(eta)
        );
    }

    fn cell_done(&self, index: usize, cell: &CellSpec, seconds: f64, skipped: bool) {
        if skipped {
            println!("[{}] {cell}: stored before, skipped", index + 1);
        } else {
            println!("[{}] {cell}: done in {}", index + 1, duration(seconds));
        }
    }

    fn trainer(&self, cell: &CellSpec) -> Box<dyn FitObserver + '_> {
        Box::new(Progress::new(&cell.to_string()))
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config()?;
    let device = parse_device(&args.device).map_err(|e| anyhow::anyhow!("--device {e}"))?;
    let (dataset, split) = args.data.open_split()?;
    config
        .validate(&dataset.layout.backends()?)
        .map_err(|e| anyhow::anyhow!("the experiment's configuration: {e}"))?;
    let plan = grid::plan(&config, &dataset, &split, &args.device)?;
    print_plan(&plan);
    if args.dry_run {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let store = runtime
        .block_on(Store::connect(&args.database_url))
        .with_context(|| format!("could not open the database {}", args.database_url))?;
    let start = std::time::Instant::now();
    let computed = run_grid(
        &plan,
        &config,
        &dataset,
        &split,
        &store,
        runtime.handle(),
        &device,
        &Display,
    )?;
    println!(
        "{computed} cells computed in {}; experiment {}",
        duration(start.elapsed().as_secs_f64()),
        plan.id
    );
    let report = runtime.block_on(load_report(&store, &plan.id))?;
    let out = args.out.unwrap_or_else(|| plan.models.join("report"));
    write_report(&report, &out)?;
    Ok(())
}
